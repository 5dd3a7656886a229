"""T-Stitch Stage Sampler: each stage its own sampler in one pass. Bit for bit against a hand-written sampler that runs
the first sampler's function on the first part of the schedule and the next one's on the rest inside one SamplerCustom
pass (the parts cut by the README's rule, written in the test); within the rounding of a latent round trip of two
chained SamplerCustom passes split at the switch; refusals before step 1."""

import pytest
import torch

from tstitch_dev.testing import CFG, small_runs

STEPS = 8
SIZE = 32


def cut_points(sigmas, rules, model_sampling):
    """Where each handover falls on the schedule, by the README's rule: the steps before cut k start in stages <= k."""
    starts = sigmas.tolist()[:-1]
    return [sum(small_runs(switch_by, fraction, s, sigmas.tolist(), model_sampling) for s in starts)
            for switch_by, fraction in rules]


def reference_sampler(names, cuts):
    """ComfyUI's own sampler functions of ``names``, each on its part of the schedule, one after another."""
    import comfy.samplers

    parts = [comfy.samplers.sampler_object(name) for name in names]

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        bounds = [0, *cuts, len(sigmas) - 1]
        for sampler, (first, end) in zip(parts, zip(bounds, bounds[1:])):
            if end > first:
                x = sampler.sampler_function(model, x, sigmas[first:end + 1], extra_args=dict(extra_args),
                                             callback=None, disable=disable, **sampler.extra_options)
        return x

    return comfy.samplers.KSAMPLER(sample)


@pytest.fixture(scope="module")
def custom(run_node, conds, latent):
    positive, negative = conds

    def sample(model, sampler, sigmas, add_noise=True, latent_image=None):
        return run_node("SamplerCustom", model=model, add_noise=add_noise, noise_seed=3, cfg=CFG, positive=positive,
                        negative=negative, sampler=sampler, sigmas=sigmas,
                        latent_image=latent_image or latent(size=SIZE))[0]

    return sample


def schedule(run_node, model, scheduler="karras", steps=STEPS):
    return run_node("BasicScheduler", model=model, scheduler=scheduler, steps=steps, denoise=1.0)[0]


def stage_sampler(run_node, model, names):
    return run_node("TStitchStageSampler", model=model, sampler_names=names)[0]


@pytest.mark.parametrize("names, switch_by, fraction", [
    ("dpmpp_2m, euler", "steps", 0.4),
    ("euler, dpmpp_2m", "timestep", 0.5),
    ("uni_pc, heun", "steps", 0.25),
    ("dpmpp_2m, dpmpp_2m", "steps", 0.5),  # the same sampler twice: its history starts again at the handover
    ("euler_ancestral, dpmpp_2m_sde", "timestep", 0.4),  # SDE noise drawn from the seed, stage by stage
])
def test_a_pair_equals_the_hand_written_reference_bit_for_bit(names, switch_by, fraction, small_model, large_model,
                                                              run_node, custom, stitch):
    pair = stitch(small_model, large_model, fraction, switch_by)
    sigmas = schedule(run_node, pair)
    cuts = cut_points(sigmas, [(switch_by, fraction)], pair.get_model_object("model_sampling"))
    assert 0 < cuts[0] < STEPS
    ours = custom(pair, stage_sampler(run_node, pair, names), sigmas)["samples"]
    reference = custom(pair, reference_sampler(names.split(", "), cuts), sigmas)["samples"]
    assert torch.equal(ours, reference)


def test_the_same_sampler_twice_is_not_one_sampler_over_the_pass(small_model, large_model, run_node, custom, stitch):
    pair = stitch(small_model, large_model, 0.5)
    sigmas = schedule(run_node, pair)
    twice = custom(pair, stage_sampler(run_node, pair, "dpmpp_2m dpmpp_2m"), sigmas)["samples"]
    once = custom(pair, run_node("KSamplerSelect", sampler_name="dpmpp_2m")[0], sigmas)["samples"]
    assert not torch.equal(twice, once)  # dpmpp_2m's second-order history is cut at the handover


def test_stages_large_small_large_with_three_samplers(small_model, large_model, run_node, custom):
    stages = run_node("TStitchStages", model_1=large_model, model_2=small_model, model_3=large_model,
                      until="0.25, 0.625", switch_by="steps")[0]
    sigmas = schedule(run_node, stages)
    names = "dpmpp_2m, euler, uni_pc"
    ours = custom(stages, stage_sampler(run_node, stages, names), sigmas)["samples"]
    reference = custom(stages, reference_sampler(names.split(", "), [2, 5]), sigmas)["samples"]
    assert torch.equal(ours, reference)


def test_with_stage_sigmas_each_sampler_runs_its_models_count(small_model, large_model, run_node, custom, stitch):
    pair = stitch(small_model, large_model, 0.5, "timestep")
    sigmas = run_node("TStitchStageSigmas", model=pair, scheduler="karras", steps_per_model="3, 5", denoise=1.0)[0]
    ours = custom(pair, stage_sampler(run_node, pair, "dpmpp_2m, euler"), sigmas)["samples"]
    reference = custom(pair, reference_sampler(["dpmpp_2m", "euler"], [3]), sigmas)["samples"]
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("switch_by", ["steps", "timestep"])
def test_it_equals_two_chained_passes_split_at_the_switch_within_the_latent_round_trip(
        switch_by, small_model, large_model, run_node, custom, stitch):
    pair = stitch(small_model, large_model, 0.4, switch_by)
    sigmas = schedule(run_node, pair)
    cut = cut_points(sigmas, [(switch_by, 0.4)], pair.get_model_object("model_sampling"))[0]
    ours = custom(pair, stage_sampler(run_node, pair, "dpmpp_2m, euler"), sigmas)["samples"]
    first = custom(small_model, run_node("KSamplerSelect", sampler_name="dpmpp_2m")[0], sigmas[:cut + 1])
    chained = custom(large_model, run_node("KSamplerSelect", sampler_name="euler")[0], sigmas[cut:], add_noise=False,
                     latent_image=first)["samples"]
    # between the passes the latent is divided by the latent scale and multiplied back: float32 rounding only
    relative = ((ours - chained).norm() / chained.norm()).item()
    assert 0 <= relative < 1e-6, relative


@pytest.mark.parametrize("names, message", [
    ("dpmpp_2m, eulr", r"'eulr' in sampler_names 'dpmpp_2m, eulr' is not a ComfyUI sampler"),
    ("euler", r"names 1 sampler\(s\), but the model has 2 stages"),
    ("euler, euler, euler", r"names 3 sampler\(s\), but the model has 2 stages"),
    ("x" * 5000, r"sampler_names 'x{200}'\.\.\. \(5000 characters\) is not"),
])
def test_bad_names_are_refused_at_the_node(names, message, small_model, large_model, run_node, stitch):
    with pytest.raises(ValueError, match=rf"^T-Stitch Stage Sampler: .*{message}"):
        stage_sampler(run_node, stitch(small_model, large_model), names)


def test_a_plain_model_is_refused_at_the_node_and_when_sampled(small_model, large_model, run_node, custom, stitch,
                                                                tag, calls):
    with pytest.raises(ValueError, match="T-Stitch Stage Sampler: model is not a T-Stitch model"):
        stage_sampler(run_node, large_model, "euler, euler")
    sampler = stage_sampler(run_node, stitch(small_model, large_model), "dpmpp_2m, euler")
    with pytest.raises(ValueError, match="T-Stitch Stage Sampler: the model being sampled is not a T-Stitch model"):
        custom(tag(large_model, "L"), sampler, schedule(run_node, large_model))
    assert calls == []


def test_a_three_model_sampler_on_a_pair_is_refused_before_step_1(small_model, large_model, medium_model, run_node,
                                                                    custom, stitch, tag, calls):
    nested = stitch(small_model, stitch(medium_model, large_model, 0.5), 0.25)
    sampler = stage_sampler(run_node, nested, "euler, euler, euler")
    pair = stitch(tag(small_model, "S"), tag(large_model, "L"))
    with pytest.raises(ValueError, match="names 3 samplers, but the model being sampled has 2 stages"):
        custom(pair, sampler, schedule(run_node, pair))
    assert calls == []
