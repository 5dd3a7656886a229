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
