"""TStitchAgreementProbe on pairs whose answer is known: identical weights, a copy made to diverge below a
chosen sigma, unrelated models; and the suggestion as T-Stitch Model Pair then runs it."""

import pytest
import torch

STEPS = 8


@pytest.fixture(scope="module")
def probe(run_node, conds, latent):
    def run(small, large, min_agreement=0.99, steps=STEPS, sampler_name="euler", **overrides):
        positive, negative = conds
        inputs = dict(small_model=small, large_model=large, seed=3, steps=steps, cfg=5.0, sampler_name=sampler_name,
                      scheduler="normal", positive=positive, negative=negative, latent_image=latent(size=32),
                      denoise=1.0, min_agreement=min_agreement)
        return run_node("TStitchAgreementProbe", **{**inputs, **overrides})

    return run


def rows_of(table: str) -> list[list[str]]:
    lines = table.splitlines()
    return [line.split() for line in lines[2:]]  # the suggestion, the header, then one line per step


@pytest.fixture(scope="module")
def twin(load_unet):
    """The large model loaded a second time: the same weights, another model."""
    from tstitch_dev.models import MINI_SD15_LARGE

    return load_unet(MINI_SD15_LARGE)


def schedule(model, steps=STEPS):
    import comfy.samplers

    return comfy.samplers.KSampler(model, steps, "cpu", scheduler="normal", denoise=1.0).sigmas.tolist()


def test_the_same_weights_agree_at_every_step_and_the_whole_trajectory_is_suggested(probe, twin, large_model):
    plot, table, suggested = probe(twin, large_model, min_agreement=0.9999)
    assert suggested == 1.0
    assert all(float(row[3]) >= 0.9999 and row[5] == "small" for row in rows_of(table))
    assert table.splitlines()[0].startswith(f"The small model agrees (cosine >= 0.9999) for the first {STEPS} of")
    assert plot.shape == (1, 432, 768, 3)


@pytest.mark.parametrize("diverge_after", [2, 5])
def test_a_copy_that_diverges_below_a_sigma_is_suggested_up_to_that_step(probe, twin, large_model, diverge_after):
    _, table, suggested = probe(diverging_copy(twin, large_model, diverge_after), large_model)
    assert suggested == diverge_after / STEPS
    assert [row[5] for row in rows_of(table)] == ["small"] * diverge_after + ["large"] * (STEPS - diverge_after)


def test_unrelated_models_are_suggested_the_large_model_alone_with_a_message(probe, small_model, large_model):
    _, table, suggested = probe(small_model, large_model, min_agreement=0.9999)
    assert suggested == 0.0
    assert table.splitlines()[0].startswith("The small model disagrees from the first step")


def test_the_small_model_is_asked_at_exactly_the_large_models_inputs(probe, twin, large_model):
    """With the same weights the two predictions are the same bits at every step: the small model saw the very
    x, sigma and conditioning the large model's trajectory passed through."""
    _, table, _ = probe(twin, large_model, min_agreement=0.0, sampler_name="dpmpp_2m")
    assert [row[4] for row in rows_of(table)] == ["0.0000"] * STEPS


def diverging_copy(twin, large_model, diverge_after):
    sigmas = schedule(large_model)
    below = (sigmas[diverge_after - 1] + sigmas[diverge_after]) / 2

    def perturbed(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        return out + 10 * torch.randn_like(out) if float(args["timestep"].reshape(-1)[0]) < below else out

    diverging = twin.clone()
    diverging.set_model_unet_function_wrapper(perturbed)
    return diverging


def test_the_timestep_range_it_reports_gives_the_pair_exactly_the_suggested_steps(probe, twin, large_model, run_node):
    import re

    _, table, suggested = probe(diverging_copy(twin, large_model, 5), large_model)
    low, high = map(float, re.search(r"switch_by timestep: small_fraction ([\d.]+) \(up to ([\d.]+)\)",
                                     table.splitlines()[0]).groups())
    for fraction, rule in ((suggested, "steps"), (low, "timestep"), ((low + high) / 2, "timestep")):
        pair = run_node("TStitchModelPair", small_model=twin, large_model=large_model, small_fraction=fraction,
                        switch_by=rule)[0]
        summary = run_node("TStitchSchedulePreview", model=pair, steps=STEPS, scheduler="normal", denoise=1.0)[1]
        assert re.search(rf"small model \([^)]*\): steps 1-5 of {STEPS}\b", summary), (fraction, rule, summary)
