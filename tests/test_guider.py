"""TStitchGuider: each model's own prompts and CFG scale, one trajectory, through SamplerCustomAdvanced."""

import pytest
import torch


@pytest.fixture(scope="module")
def sample_with_guider(run_node, latent):
    def sample(guider, model, sampler_name="dpmpp_2m", steps=10):
        return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                        sampler=run_node("KSamplerSelect", sampler_name=sampler_name)[0],
                        sigmas=run_node("BasicScheduler", model=model, scheduler="normal", steps=steps,
                                        denoise=1.0)[0],
                        latent_image=latent())[0]["samples"]

    return sample


@pytest.fixture(scope="module")
def guider(run_node):
    def make(small, large, fraction, small_conds, small_cfg, large_conds, large_cfg, switch_by="steps"):
        return run_node("TStitchGuider", small_model=small, large_model=large, small_fraction=fraction,
                        switch_by=switch_by, small_positive=small_conds[0], small_negative=small_conds[1],
                        small_cfg=small_cfg, large_positive=large_conds[0], large_negative=large_conds[1],
                        large_cfg=large_cfg)[0]

    return make


@pytest.fixture(scope="module")
def other_conds():
    generator = torch.Generator().manual_seed(99)
    return tuple([[torch.randn(1, 77, 768, generator=generator), {}]] for _ in range(2))


def test_same_prompts_and_scale_equal_the_pair_in_ksampler(small_model, large_model, conds, guider,
                                                           sample_with_guider, stitch, ksample):
    expected = ksample(stitch(small_model, large_model, 0.4), "dpmpp_2m")
    out = sample_with_guider(guider(small_model, large_model, 0.4, conds, 5.0, conds, 5.0), large_model)
    assert torch.equal(out, expected)


def test_the_small_model_runs_with_its_own_prompts_and_scale(small_model, large_model, conds, other_conds, guider,
                                                             sample_with_guider, ksample):
    # f = 1: every step is the small model's, with its prompts and scale; the large model's never apply
    out = sample_with_guider(guider(small_model, large_model, 1.0, other_conds, 3.0, conds, 9.0), large_model)
    assert torch.equal(out, ksample(small_model, "dpmpp_2m", cfg=3.0, conds=other_conds))


def test_the_large_model_runs_with_its_own_prompts_and_scale(small_model, large_model, conds, other_conds, guider,
                                                             sample_with_guider, ksample):
    out = sample_with_guider(guider(small_model, large_model, 0.0, other_conds, 3.0, conds, 9.0), large_model)
    assert torch.equal(out, ksample(large_model, "dpmpp_2m", cfg=9.0, conds=conds))


def test_each_stage_sees_its_own_scale(small_model, large_model, conds, guider, sample_with_guider, calls):
    seen = []

    def cfg_recorder(model, name):
        m = model.clone()
        m.set_model_sampler_cfg_function(lambda args: seen.append((name, args["cond_scale"])) or
                                         args["uncond"] + (args["cond"] - args["uncond"]) * args["cond_scale"])
        return m

    stitched_guider = guider(cfg_recorder(small_model, "S"), cfg_recorder(large_model, "L"), 0.4, conds, 2.5, conds,
                             7.5)
    sample_with_guider(stitched_guider, large_model, "euler")
    assert seen == [("S", 2.5)] * 4 + [("L", 7.5)] * 6


def test_one_trajectory_with_different_scales(small_model, large_model, conds, guider, sample_with_guider, stitch,
                                              ksample):
    # a lower small-model scale changes the result, and only through the small model's steps
    low = sample_with_guider(guider(small_model, large_model, 0.4, conds, 2.0, conds, 5.0), large_model)
    same = sample_with_guider(guider(small_model, large_model, 0.4, conds, 5.0, conds, 5.0), large_model)
    assert not torch.equal(low, same) and torch.isfinite(low).all()


def prompt_recorder(model, name, seen, prompts):
    """A clone whose calls record (name, which prompt pair it was given, the CFG scale it was given)."""
    m = model.clone()

    def record(apply_model, args):
        rows = args["c"]["c_crossattn"]
        owner = {label for label, tensors in prompts.items() for row in rows
                 if any(torch.equal(row, t[0][0][0]) for t in tensors)}
        seen.append([name, "+".join(sorted(owner))])
        return apply_model(args["input"], args["timestep"], **args["c"])

    def cfg(args):
        seen[-1].append(args["cond_scale"])
        return args["uncond"] + (args["cond"] - args["uncond"]) * args["cond_scale"]

    m.set_model_unet_function_wrapper(record)
    m.set_model_sampler_cfg_function(cfg)
    return m


def test_every_stage_of_a_nested_large_model_takes_the_large_prompts_and_scale(small_model, medium_model,
                                                                               large_model, conds, other_conds,
                                                                               guider, stitch, sample_with_guider):
    seen = []
    prompts = {"small": other_conds, "large": conds}
    s, b, l = (prompt_recorder(m, n, seen, prompts) for m, n in ((small_model, "S"), (medium_model, "B"),
                                                                   (large_model, "L")))
    stitched_guider = guider(s, stitch(b, l, 0.5), 0.2, other_conds, 3.0, conds, 9.0)
    sample_with_guider(stitched_guider, large_model, "euler")
    assert [tuple(x) for x in seen] == ([("S", "small", 3.0)] * 2 + [("B", "large", 9.0)] * 3
                                        + [("L", "large", 9.0)] * 5)


def test_every_stage_of_a_nested_small_model_takes_the_small_prompts_and_scale(small_model, medium_model,
                                                                               large_model, conds, other_conds,
                                                                               guider, stitch, sample_with_guider):
    seen = []
    prompts = {"small": other_conds, "large": conds}
    s, b, l = (prompt_recorder(m, n, seen, prompts) for m, n in ((small_model, "S"), (medium_model, "B"),
                                                                   (large_model, "L")))
    stitched_guider = guider(stitch(s, b, 0.2), l, 0.5, other_conds, 3.0, conds, 9.0)
    sample_with_guider(stitched_guider, large_model, "euler")
    assert [tuple(x) for x in seen] == ([("S", "small", 3.0)] * 2 + [("B", "small", 3.0)] * 3
                                        + [("L", "large", 9.0)] * 5)


def test_hooks_on_the_small_prompts_act_on_the_small_models_steps(small_model, large_model, conds, guider,
                                                                  sample_with_guider, ksample, lora_hooked):
    from tstitch_dev.models import MINI_SD15_SMALL

    hooked = tuple(lora_hooked(c, MINI_SD15_SMALL) for c in conds)
    alone = ksample(small_model, "dpmpp_2m", cfg=3.0, conds=hooked)
    assert not torch.equal(alone, ksample(small_model, "dpmpp_2m", cfg=3.0))  # the hook does something
    out = sample_with_guider(guider(small_model, large_model, 1.0, hooked, 3.0, conds, 9.0), large_model)
    assert torch.equal(out, alone)
