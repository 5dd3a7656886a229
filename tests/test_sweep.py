"""TStitchFractionSweep: one seed and prompt over several fractions, timed and measured against the large
model alone, in a table, a grid and a trade-off plot."""

import math

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
    images, grid, table, tradeoff = sweep("0, 0.5 1")
    for index, fraction in enumerate([0.0, 0.5, 1.0]):
        samples = ksample(stitch(small_model, large_model, fraction), steps=4)
        expected = run_node("VAEDecode", vae=vae, samples={"samples": samples})[0]
        assert torch.equal(images[index:index + 1], expected), fraction
    rows = parse_table(table)
    assert [(row["fraction"], row["small steps"]) for row in rows] == [("0", "0/4"), ("0.5", "2/4"), ("1", "4/4")]
    assert all(float(row["seconds"]) > 0 for row in rows)
    assert tradeoff.shape == (1, 432, 768, 3)


def parse_table(table: str) -> list[dict]:
    header, *lines = table.split("\n\n")[0].splitlines()  # the notes follow an empty line
    names = [name.strip() for name in header.split("  ") if name.strip()]
    return [dict(zip(names, line.split())) for line in lines]


def test_each_result_is_measured_against_the_large_model_alone_sampled_even_when_not_listed(
        sweep, small_model, large_model, stitch, ksample, vae, run_node):
    import kornia.metrics

    _, _, table, _ = sweep("0.5, 1")
    rows = parse_table(table)
    assert [row["fraction"] for row in rows] == ["0.5", "1"]
    reference = ksample(stitch(small_model, large_model, 0.0), steps=4)
    reference_image = run_node("VAEDecode", vae=vae, samples={"samples": reference})[0]
    for row, fraction in zip(rows, (0.5, 1.0)):
        samples = ksample(stitch(small_model, large_model, fraction), steps=4)
        image = run_node("VAEDecode", vae=vae, samples={"samples": samples})[0]
        mse = ((image.clamp(0, 1) - reference_image.clamp(0, 1)) ** 2).mean().item()
        assert float(row["PSNR dB"]) == pytest.approx(10 * math.log10(1 / mse), abs=0.006)  # PSNR by its formula
        ssim = kornia.metrics.ssim(image.movedim(-1, 1).clamp(0, 1), reference_image.movedim(-1, 1).clamp(0, 1),
                                   window_size=11).mean().item()
        assert float(row["SSIM"]) == pytest.approx(ssim, abs=6e-5)
        assert float(row["latent rel. L2"]) == pytest.approx(
            ((samples - reference).norm() / reference.norm()).item(), abs=6e-5)
        assert float(row["SSIM"]) < 1 and float(row["latent rel. L2"]) > 0  # the models do differ


def test_the_large_model_alone_measures_identical_to_itself(sweep):
    row = parse_table(sweep("0, 1")[2])[0]
    assert (row["fraction"], row["speedup"], row["PSNR dB"], row["identical"], row["SSIM"],
            row["latent rel. L2"]) == ("0", "1.00x", "inf", "1/1", "1.0000", "0.0000")


@pytest.fixture
def sweep_module(node):
    import sys

    return sys.modules[node("TStitchFractionSweep").__module__]


@pytest.fixture
def timeline(monkeypatch, sweep_module, vae):
    """Every sampling (by its small_fraction) and decoding in order, on a fake clock that the timer reads: a
    sampling advances it by the next of ``costs`` (seconds), a decoding not at all."""
    import types

    import comfy.sample

    log = types.SimpleNamespace(events=[], costs=[], now=0.0)
    sample, decode = comfy.sample.sample, vae.decode

    def sampling(model, *args, **kwargs):
        log.events.append(("sample", sweep_module.get_plan(model).stages[0].rule.small_fraction))
        log.now += log.costs.pop(0) if log.costs else 1.0
        return sample(model, *args, **kwargs)

    def decoding(samples, *args, **kwargs):
        log.events.append(("decode", None))
        return decode(samples, *args, **kwargs)

    monkeypatch.setattr(comfy.sample, "sample", sampling)
    monkeypatch.setattr(vae, "decode", decoding)
    monkeypatch.setattr(sweep_module, "time", types.SimpleNamespace(perf_counter=lambda: log.now))
    return log


def test_an_untimed_warmup_runs_first_so_the_reference_pays_no_first_call_costs(sweep, timeline):
    timeline.costs = [100.0]  # the first sampling pays for lazy kernels, a compile, caches; the others 1 s each
    table = sweep("0, 0.5, 1")[2]
    rows = parse_table(table)
    assert [(row["seconds"], row["speedup"]) for row in rows] == [("1.00", "1.00x")] * 3
    # one warm-up: 0.5 runs both models, 1 the small one only
    assert [f for kind, f in timeline.events if kind == "sample"] == [0.5, 0.0, 0.5, 1.0]
    assert ("seconds: one timed run per fraction, after an untimed warm-up run at small_fraction 0.5; decoding "
            "waits until the last timed run.") in table.splitlines()


def test_the_warmup_runs_each_model_when_no_fraction_runs_both(sweep, timeline):
    sweep("0, 1")
    assert [f for kind, f in timeline.events if kind == "sample"][:2] == [1.0, 0.0]  # then the timed 0 and 1


def test_decoding_waits_until_every_timed_sampling_is_done(sweep, timeline):
    sweep("0, 0.5, 1")
    kinds = [kind for kind, _ in timeline.events]
    assert kinds == ["sample"] * 4 + ["decode"] * 3


def test_repeats_take_turns_and_each_fraction_gets_the_median_of_its_runs(sweep, timeline):
    # the warm-up, then three rounds of 0, 0.5, 1
    timeline.costs = [50.0, 10.0, 4.0, 2.0, 30.0, 5.0, 1.0, 20.0, 9.0, 3.0]
    images, _, table, _ = sweep("0, 0.5, 1", repeats=3)
    assert [f for kind, f in timeline.events if kind == "sample"] == [0.5] + [0.0, 0.5, 1.0] * 3
    rows = parse_table(table)
    assert [(row["seconds"], row["speedup"]) for row in rows] == [("20.00", "1.00x"), ("5.00", "4.00x"),
                                                                  ("2.00", "10.00x")]
    assert "the median of 3 timed runs (the fractions taking turns)" in table
    assert images.shape[0] == 3  # one result per fraction, however many runs


def test_an_identical_image_is_counted_apart_and_the_means_are_over_images(sweep, small_model, large_model, stitch,
                                                                         ksample, vae, run_node, latent):
    # image 0 of the batch is masked out of denoising, so every fraction returns it unchanged
    mask = torch.stack([torch.zeros(1, 64, 64), torch.ones(1, 64, 64)])
    masked = {**latent(batch_size=2), "noise_mask": mask}
    _, _, table, _ = sweep("0.5", latent_image=masked)
    row = parse_table(table)[0]
    reference, samples = (ksample(stitch(small_model, large_model, f), steps=4, latent_image=masked) for f in (0, 0.5))
    reference_images, images = (run_node("VAEDecode", vae=vae, samples={"samples": s})[0].clamp(0, 1)
                                for s in (reference, samples))
    assert torch.equal(images[0], reference_images[0]) and not torch.equal(images[1], reference_images[1])
    # the PSNR is image 1's alone, finite; one inf does not make the mean inf: image 0 is counted apart
    mse = ((images[1] - reference_images[1]) ** 2).mean().item()
    assert float(row["PSNR dB"]) == pytest.approx(10 * math.log10(1 / mse), abs=0.006)
    assert row["identical"] == "1/2"
    # the latent distance: image 0 counts 0, image 1 its own relative L2, and the mean of the two
    assert torch.equal(samples[0], reference[0])
    own = ((samples[1] - reference[1]).norm() / reference[1].norm()).item()
    assert float(row["latent rel. L2"]) == pytest.approx(own / 2, abs=6e-5)
    assert "identical: how many are equal to it (PSNR inf) and left out of that mean" in table


def test_grid_has_a_labelled_column_per_fraction_and_a_row_per_image(sweep, latent):
    images, grid, _, _ = sweep("0.2, 0.8", latent_image=latent(batch_size=2))
    assert images.shape == (4, 64, 64, 3)
    assert grid.shape == (1, 2 * (64 + 26), 2 * 64, 3)


def test_progress_runs_across_the_whole_sweep(sweep):
    import comfy.utils

    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value,
                                                                                                          total)))
    try:
        sweep("0, 0.5, 1", steps=3, repeats=2)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    # the warm-up (0.5) and two rounds of three fractions, three steps each; then three decodes, three fractions'
    # metrics and three grid tiles
    assert updates[-1] == (30, 30) and [v for v, _ in updates] == sorted(v for v, _ in updates)


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


def test_a_video_sweep_returns_every_frame_and_grids_the_first_frame_of_each_fraction(run_node, load_unet, comfy_host,
                                                                                     stitch):
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
    images, grid, table, _ = run_node("TStitchFractionSweep", small_model=high, large_model=low, vae=vae, fractions="0, 1",
                               switch_by="timestep", seed=0, steps=2, cfg=5.0, sampler_name="euler",
                               scheduler="simple", positive=positive, negative=negative, latent_image=video,
                               denoise=1.0)
    assert images.shape == (2 * 5, 64, 64, 3)
    assert grid.shape[2] == 2 * 64
    # the metrics are the mean over the frames: each frame's PSNR by its formula, averaged
    mse = ((images[5:].clamp(0, 1) - images[:5].clamp(0, 1)) ** 2).mean(dim=(1, 2, 3))
    assert float(parse_table(table)[1]["PSNR dB"]) == pytest.approx((10 * torch.log10(1 / mse)).mean().item(),
                                                                      abs=0.006)
    # and the latent distance the mean of each latent frame's own ([B, 16, T, H, W], T = 2 for 5 frames)
    reference, samples = (run_node("KSampler", model=stitch(high, low, f, "timestep"), seed=0, steps=2, cfg=5.0,
                                   sampler_name="euler", scheduler="simple", positive=positive, negative=negative,
                                   latent_image=video, denoise=1.0)[0]["samples"] for f in (0.0, 1.0))
    assert reference.shape[:3] == (1, 16, 2)
    by_frame = [((samples[:, :, t] - reference[:, :, t]).norm() / reference[:, :, t].norm()).item() for t in range(2)]
    assert float(parse_table(table)[1]["latent rel. L2"]) == pytest.approx(sum(by_frame) / 2, abs=6e-5)
    top = grid.shape[1] - 64  # one row, under its caption
    for column, first_frame in enumerate((0, 5)):
        tile = grid[0, top:, column * 64:(column + 1) * 64]
        assert torch.allclose(tile, images[first_frame].clamp(0, 1), atol=1 / 255)


def test_a_window_is_the_same_sampling_as_stages_large_small_large(sweep, small_model, large_model, ksample, vae,
                                                                    run_node):
    """T-Stitch's order and FlowBlending's at the same small-model share, in one sweep."""
    images, grid, table, tradeoff = sweep("0, 0.5, 0.25-0.75, 0.5-1")
    stages = {
        1: run_node("TStitchModelPair", small_model=small_model, large_model=large_model, small_fraction=0.5,
                    switch_by="steps")[0],
        2: run_node("TStitchStages", model_1=large_model, model_2=small_model, model_3=large_model,
                    until="0.25, 0.75", switch_by="steps")[0],
        3: run_node("TStitchStages", model_1=large_model, model_2=small_model, until="0.5", switch_by="steps")[0]}
    for index, model in stages.items():
        expected = run_node("VAEDecode", vae=vae, samples={"samples": ksample(model, steps=4)})[0]
        assert torch.equal(images[index:index + 1], expected), index
    rows = parse_table(table)
    assert [(row["fraction"], row["small steps"]) for row in rows] == [
        ("0", "0/4"), ("0.5", "2/4"), ("0.25-0.75", "2/4"), ("0.5-1", "2/4")]
    assert len({row["SSIM"] for row in rows[1:]}) == 3  # three different results at one share


@pytest.mark.parametrize("fractions, bad", [("0, 0.7-0.2", "must start before it ends"), ("0.2-1.5", "'0.2-1.5'"),
                                            ("0.2-0.4-0.6", "'0.2-0.4-0.6'")])
def test_bad_windows_are_rejected_with_the_bad_value(sweep, fractions, bad):
    with pytest.raises(ValueError, match=bad):
        sweep(fractions)


def test_plans_parse_and_print_as_written():
    from tstitch_core.report import SweepPlan
    from tstitch_core.validation import parse_sweep_plans

    plans, merged = parse_sweep_plans("0, 0.4 0.2-0.7, 0-0.3, 0.6-1")
    assert merged == 0
    assert plans == [SweepPlan(0, 0), SweepPlan(0, 0.4), SweepPlan(0.2, 0.7), SweepPlan(0, 0.3), SweepPlan(0.6, 1)]
    assert [f"{plan:g}" for plan in plans] == ["0", "0.4", "0.2-0.7", "0.3", "0.6-1"]
    assert [round(plan.small_share, 6) for plan in plans] == [0, 0.4, 0.5, 0.3, 0.4]


def test_more_than_32_different_fractions_are_refused_before_any_step(sweep, timeline):
    fractions = ", ".join(f"{i / 100:g}" for i in range(33)) + ", 0.5, 0.5"
    with pytest.raises(ValueError, match=r"T-Stitch Fraction Sweep: fractions '0, 0\.01, .*' gives more than 32 "
                                         r"different fractions and windows; the sweep keeps every result in memory"):
        sweep(fractions)
    assert timeline.events == []
    with pytest.raises(ValueError) as error:  # a 1 MB input gives a short message
        sweep(fractions + " 0.5" * 250_000)
    assert len(str(error.value)) < 700 and f"... ({len(fractions) + 1_000_000} characters)" in str(error.value)


def test_a_fraction_given_twice_is_sampled_once_and_the_table_says_so(sweep, timeline):
    images, grid, table, _ = sweep("0, 0.5 0.5, 1, 0.50")
    assert [f for kind, f in timeline.events if kind == "sample"] == [0.5, 0.0, 0.5, 1.0]
    assert [row["fraction"] for row in parse_table(table)] == ["0", "0.5", "1"] and images.shape[0] == 3
    assert "2 repeated fractions merged: each fraction is sampled once, in the order first given." in table.splitlines()
    assert "merged" not in sweep("0, 0.5")[2]


@pytest.mark.parametrize("updates, decodes", [(8, 0), (9, 1), (12, 2)])
def test_cancel_stops_the_sweep_while_decoding_and_drawing_the_grid_too(sweep, timeline, cancel_after, updates,
                                                                       decodes):
    import comfy.model_management

    # "0, 1" at 2 steps: 2 warm-up and 2 timed runs (8 updates), then a decode per fraction (9, 10), the metrics of
    # each (11, 12) and a grid tile each (13, 14)
    seen = cancel_after(updates)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        sweep("0, 1", steps=2)
    assert [kind for kind, _ in timeline.events].count("decode") == decodes
    assert seen == list(range(1, updates + 1))


def test_the_progress_bar_counts_decoding_the_metrics_and_the_grid(sweep, progress_updates):
    sweep("0, 1", steps=2)
    assert progress_updates[0] == (1, 14) and progress_updates[-1] == (14, 14)


def test_sweep_fractions_take_exponents_and_windows_of_them():
    from tstitch_core.report import SweepPlan
    from tstitch_core.validation import parse_sweep_plans

    assert parse_sweep_plans("1e-5, 1E-1-5e-1 0.2") == ([SweepPlan(0, 1e-5), SweepPlan(0.1, 0.5), SweepPlan(0, 0.2)], 0)
    for bad in ("nan", "inf", "-0.5", "0.2-", "e-5", "0.1-0.2-0.3", "0.5-nan"):
        with pytest.raises(ValueError, match="is not a small_fraction between 0 and 1, nor a window a-b"):
            parse_sweep_plans(bad)
