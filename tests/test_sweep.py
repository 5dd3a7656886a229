"""TStitchFractionSweep: one seed and prompt over several fractions, timed, in a grid."""

import pytest
import torch


@pytest.fixture(scope="module")
def sweep(run_node, conds, latent, small_model, large_model, vae):
    def run(fractions, steps=4, latent_image=None, **overrides):
        positive, negative = conds
        inputs = dict(small_model=small_model, large_model=large_model, vae=vae, fractions=fractions,
                      switch_by="steps", seed=0, steps=steps, cfg=5.0, sampler_name="euler", scheduler="normal",
                      positive=positive, negative=negative, latent_image=latent_image or latent(), denoise=1.0)
        return run_node("TStitchFractionSweep", **{**inputs, **overrides})

    return run


def test_each_fraction_is_the_same_sampling_as_its_own_ksampler(sweep, small_model, large_model, stitch, ksample,
                                                                vae, run_node):
    images, grid, timings = sweep("0, 0.5 1")
    for index, fraction in enumerate([0.0, 0.5, 1.0]):
        samples = ksample(stitch(small_model, large_model, fraction), steps=4)
        expected = run_node("VAEDecode", vae=vae, samples={"samples": samples})[0]
        assert torch.equal(images[index:index + 1], expected), fraction
    assert [line.split(":")[0] for line in timings.splitlines()] == [
        "small_fraction 0", "small_fraction 0.5", "small_fraction 1"]
    assert all(float(line.split(": ")[1].rstrip(" s")) > 0 for line in timings.splitlines())


def test_grid_has_a_labelled_column_per_fraction_and_a_row_per_image(sweep, latent):
    images, grid, _ = sweep("0.2, 0.8", latent_image=latent(batch_size=2))
    assert images.shape == (4, 64, 64, 3)
    assert grid.shape == (1, 2 * (64 + 26), 2 * 64, 3)


def test_progress_runs_across_the_whole_sweep(sweep):
    import comfy.utils

    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value,
                                                                                                          total)))
    try:
        sweep("0, 0.5, 1", steps=3)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert updates[-1] == (9, 9) and [v for v, _ in updates] == sorted(v for v, _ in updates)


def test_an_interrupt_stops_the_sweep_and_the_next_one_runs(sweep):
    import comfy.model_management
    import comfy.utils

    def interrupt_at_the_second_fraction(value, total, preview, node_id=None):
        if value == 5:
            comfy.model_management.interrupt_current_processing(True)
        comfy.model_management.throw_exception_if_processing_interrupted()  # as ComfyUI's own hook does

    comfy.utils.set_progress_bar_global_hook(interrupt_at_the_second_fraction)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            sweep("0, 0.5, 1")
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        comfy.model_management.interrupt_current_processing(False)
    assert sweep("0, 1")[0].shape[0] == 2


@pytest.mark.parametrize("fractions, bad", [("0, 1.5", "'1.5'"), ("0.2, half", "'half'"), (" , ", "empty")])
def test_bad_fraction_lists_are_rejected_with_the_bad_value(sweep, fractions, bad):
    with pytest.raises(ValueError, match=bad):
        sweep(fractions)


def test_a_video_sweep_returns_every_frame_and_grids_the_first_frame_of_each_fraction(run_node, load_unet, comfy_host):
    import folder_paths
    from tstitch_dev.models import TINY_WAN_HIGH_NOISE, TINY_WAN_LOW_NOISE, ensure_wan_vae

    vae_path = ensure_wan_vae()
    folder_paths.add_model_folder_path("vae", str(vae_path.parent))
    vae = run_node("VAELoader", vae_name=vae_path.name)[0]
    high, low = (run_node("ModelSamplingSD3", model=load_unet(spec), shift=8.0)[0]
                 for spec in (TINY_WAN_HIGH_NOISE, TINY_WAN_LOW_NOISE))
    generator = torch.Generator().manual_seed(5)
    positive, negative = ([[torch.randn(1, 16, 4096, generator=generator), {}]] for _ in range(2))
    video = run_node("EmptyHunyuanLatentVideo", width=64, height=64, length=5, batch_size=1)[0]  # 5 frames
    images, grid, _ = run_node("TStitchFractionSweep", small_model=high, large_model=low, vae=vae, fractions="0, 1",
                               switch_by="timestep", seed=0, steps=2, cfg=5.0, sampler_name="euler",
                               scheduler="simple", positive=positive, negative=negative, latent_image=video,
                               denoise=1.0)
    assert images.shape == (2 * 5, 64, 64, 3)
    assert grid.shape[2] == 2 * 64
    top = grid.shape[1] - 64  # one row, under its caption
    for column, first_frame in enumerate((0, 5)):
        tile = grid[0, top:, column * 64:(column + 1) * 64]
        assert torch.allclose(tile, images[first_frame].clamp(0, 1), atol=1 / 255)
