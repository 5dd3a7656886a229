"""Core patch and cache nodes on either model and on the pair's output, with offload on and off.

The rule docs/how-it-works.md states: a node applied to one model acts on that model's steps exactly as it
would on that model alone, and never on the other model's; applied to the pair's output it acts on
the large model's steps. Sampler-level machinery is included: outer-sample and sampler-sample
wrappers (EasyCache, LazyCache) and the denoise mask function (Differential Diffusion)."""

import pytest
import torch

from tstitch_dev.testing import crossed

STEPS = 6
SIZE = 32  # 4x4 latents, as in the matrix
OFFLOAD = pytest.mark.parametrize("offload", [False, True], ids=["resident", "offload"])

# node id -> inputs that make it act visibly on tiny random models in STEPS steps
PATCH_NODES = {
    "FreeU": dict(b1=1.3, b2=1.4, s1=0.9, s2=0.2),
    "FreeU_V2": dict(b1=1.3, b2=1.4, s1=0.9, s2=0.2),
    "PerturbedAttentionGuidance": dict(scale=3.0),
    "SelfAttentionGuidance": dict(scale=0.5, blur_sigma=2.0),
    "RescaleCFG": dict(multiplier=0.7),
    "CFGZeroStar": {},
    "APG": dict(eta=0.5, norm_threshold=5.0, momentum=-0.5),
    "EasyCache": dict(reuse_threshold=0.5, start_percent=0.1, end_percent=0.95, verbose=False),
    "LazyCache": dict(reuse_threshold=0.5, start_percent=0.1, end_percent=0.95, verbose=False),
    "ModelSamplingDiscrete": dict(sampling="v_prediction", zsnr=False),
    "ModelComputeDtype": dict(dtype="bf16"),  # the stage's own compute dtype, cast on the CPU too
}
# bf16 convolutions are slow on a CPU: fewer steps still cast every call
STEPS_OF = {"ModelComputeDtype": 3}
# ComfyUI 0.33's SAG skips latents of 4 or fewer rows or columns ("too small to add padding")
SIZE_OF = {"SelfAttentionGuidance": 48}
# nodes that need what the small test model lacks (a middle block) act on the large model only
LARGE_ONLY = {"PerturbedAttentionGuidance", "SelfAttentionGuidance"}
# FreeU scales SD1.5's 640- and 1280-channel blocks, which the one-level models don't have
NEEDS_DEEPER_MODELS = {"FreeU", "FreeU_V2"}


@pytest.fixture(scope="module")
def ksample(ksample, latent):
    """conftest's KSampler run, on SIZE latents unless a test gives its own."""
    return lambda model, latent_image=None, size=SIZE, **settings: ksample(
        model, latent_image=latent(size=size) if latent_image is None else latent_image, **settings)


@pytest.fixture(scope="module")
def models(small_model, large_model, deep_pair):
    """The (small, large) pair a node is tested on: the cheap one-level pair where the node acts on it."""
    return lambda node_id: deep_pair if node_id in NEEDS_DEEPER_MODELS else (small_model, large_model)


@pytest.fixture(scope="module")
def patched(run_node):
    return lambda node_id, model: run_node(node_id, model=model, **PATCH_NODES[node_id])[0]


@pytest.fixture(scope="module")
def pair(run_node):
    def make(small, large, fraction, offload):
        return run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=fraction,
                        switch_by="steps", offload_idle_model=offload)[0]

    return make


@pytest.fixture(scope="module")
def alone(ksample):
    """Each model alone, sampled once per (node or None, model)."""
    results = {}

    def get(node_id, model, steps=STEPS, size=SIZE):
        key = (node_id, id(model.model), steps, size)
        if key not in results:
            results[key] = ksample(model, steps=steps, size=size)
        return results[key]

    return get


def acts(node_id, name, patched_result, plain_result):
    assert not torch.equal(patched_result, plain_result), f"{node_id} changes nothing on the {name} model"


@pytest.mark.parametrize("node_id, put_on, residency", crossed(
    node_id=list(PATCH_NODES), put_on=["large", "small", "output"], residency=["resident", "offload"],
    where=lambda node_id, put_on, residency: not (put_on == "small" and node_id in LARGE_ONLY)))
def test_a_node_acts_on_the_steps_of_the_model_it_was_put_on(node_id, put_on, residency, models, patched, pair,
                                                             alone, ksample):
    """f = 0 is the large model's run and f = 1 the small model's, each as that model alone would sample."""
    small_model, large_model = models(node_id)
    steps, size = STEPS_OF.get(node_id, STEPS), SIZE_OF.get(node_id, SIZE)
    offload = residency == "offload"

    def stitched(small, large, fraction):
        return ksample(pair(small, large, fraction, offload), steps=steps, size=size)

    if put_on == "large":
        large = patched(node_id, large_model)
        acts(node_id, "large", alone(node_id, large, steps, size), alone(None, large_model, steps, size))
        assert torch.equal(stitched(small_model, large, 0.0), alone(node_id, large, steps, size))
        assert torch.equal(stitched(small_model, large, 1.0), alone(None, small_model, steps, size))
    elif put_on == "small":
        small = patched(node_id, small_model)
        acts(node_id, "small", alone(node_id, small, steps, size), alone(None, small_model, steps, size))
        assert torch.equal(stitched(small, large_model, 1.0), alone(node_id, small, steps, size))
        assert torch.equal(stitched(small, large_model, 0.0), alone(None, large_model, steps, size))
    else:  # on the pair's output: the large model's steps only
        def on_output(fraction):
            return ksample(patched(node_id, pair(small_model, large_model, fraction, offload)), steps=steps, size=size)

        assert torch.equal(on_output(0.0), alone(node_id, patched(node_id, large_model), steps, size))
        assert torch.equal(on_output(1.0), alone(None, small_model, steps, size))


@pytest.mark.parametrize("node_id", ["EasyCache", "LazyCache"])
def test_a_cache_on_the_small_model_is_set_up_and_cleared_every_run(node_id, small_model, large_model, patched, pair, ksample):
    small = patched(node_id, small_model)
    holder = small.model_options["transformer_options"]["easycache"]
    results = [ksample(pair(small, large_model, 1.0, False), steps=STEPS) for _ in range(3)]
    assert torch.equal(results[0], results[1]) and torch.equal(results[1], results[2])
    # the input's holder is only a template: each run works on its own prepared copy
    assert holder.start_t == holder.end_t == 0.0 and holder.x_prev_subsampled is None
    assert not getattr(holder, "uuid_cache_diffs", {})


@OFFLOAD
@pytest.mark.parametrize("node_id", ["EasyCache", "LazyCache"])
def test_each_models_cache_serves_its_own_steps_only(node_id, offload, small_model, large_model, patched, pair, run_node, conds,
                                                     latent, ksample):
    """Euler keeps no history, so the pair equals the same split run as two chained samplers, each model with its
    own cache; a cache that saw the other model's steps would skip or reuse differently."""
    from tstitch_dev.testing import CFG

    small, large = patched(node_id, small_model), patched(node_id, large_model)
    positive, negative = conds
    steps = 10  # enough for either cache to skip some calls
    switch = steps // 2

    def advanced(model, latent_image, add_noise, start, end, leftover):
        return run_node("KSamplerAdvanced", model=model, add_noise=add_noise, noise_seed=0, steps=steps, cfg=CFG,
                        sampler_name="euler", scheduler="normal", positive=positive, negative=negative,
                        latent_image=latent_image, start_at_step=start, end_at_step=end,
                        return_with_leftover_noise=leftover)[0]

    chained = advanced(large, advanced(small, latent(size=SIZE), "enable", 0, switch, "enable"), "disable", switch, 10000,
                       "disable")["samples"]
    stitched = ksample(pair(small, large, 0.5, offload), steps=steps)
    # the chain's latent scaling round trip costs float32 rounding, nothing more
    torch.testing.assert_close(stitched, chained, rtol=1e-4, atol=1e-4 * chained.abs().max().item())
    plain = ksample(pair(small_model, large_model, 0.5, offload), steps=steps)
    assert not torch.allclose(stitched, plain, rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def inpaint(comfy_host, run_node):
    """A latent image to inpaint with a soft mask, the case Differential Diffusion exists for."""
    generator = torch.Generator().manual_seed(11)
    samples = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=generator)
    mask = torch.linspace(0.0, 1.0, SIZE).reshape(1, SIZE, 1).expand(1, SIZE, SIZE).contiguous()
    return run_node("SetLatentNoiseMask", samples={"samples": samples}, mask=mask)[0]


@OFFLOAD
def test_differential_diffusion_follows_the_model_it_was_put_on(offload, small_model, large_model, run_node, pair, ksample, inpaint):
    def dd(model, strength=1.0):
        return run_node("DifferentialDiffusion", model=model, strength=strength)[0]

    def sample(model):
        return ksample(model, steps=STEPS, latent_image=inpaint)

    small_alone, large_alone = sample(small_model), sample(large_model)
    small_dd, large_dd = sample(dd(small_model)), sample(dd(large_model))
    assert not torch.equal(small_dd, small_alone) and not torch.equal(large_dd, large_alone)
    assert torch.equal(sample(pair(dd(small_model), large_model, 1.0, offload)), small_dd)
    assert torch.equal(sample(pair(dd(small_model), large_model, 0.0, offload)), large_alone)
    assert torch.equal(sample(pair(small_model, dd(large_model), 1.0, offload)), small_alone)
    assert torch.equal(sample(pair(small_model, dd(large_model), 0.0, offload)), large_dd)
    assert torch.equal(sample(dd(pair(small_model, large_model, 1.0, offload))), small_alone)
    assert torch.equal(sample(dd(pair(small_model, large_model, 0.0, offload))), large_dd)


@OFFLOAD
def test_each_models_mask_function_runs_on_its_own_steps(offload, small_model, large_model, run_node, pair, ksample, inpaint):
    """Two strengths, one per model, against a reference that routes both the model calls and the mask function
    by the README's rule, written in the test."""
    from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion

    strengths = {"S": 0.3, "L": 1.0}
    small = run_node("DifferentialDiffusion", model=small_model, strength=strengths["S"])[0]
    large = run_node("DifferentialDiffusion", model=large_model, strength=strengths["L"])[0]
    switch = STEPS // 2

    reference = large_model.clone()
    reference.set_additional_models("reference", [small_model])

    def small_runs(sigma, sigmas):
        return sigma > float(sigmas[switch])

    def route_calls(apply_model, args):
        sigmas = args["c"]["transformer_options"]["sample_sigmas"]
        chosen = small_model.model.apply_model if small_runs(float(args["timestep"][0]), sigmas) else apply_model
        return chosen(args["input"], args["timestep"], **args["c"])

    def route_mask(sigma, denoise_mask, extra_options):
        name = "S" if small_runs(float(sigma[0]), extra_options["sigmas"]) else "L"
        return DifferentialDiffusion.forward(sigma, denoise_mask, extra_options, strength=strengths[name])

    reference.set_model_unet_function_wrapper(route_calls)
    reference.set_model_denoise_mask_function(route_mask)
    expected = ksample(reference, steps=STEPS, latent_image=inpaint)
    assert torch.equal(ksample(pair(small, large, 0.5, offload), steps=STEPS, latent_image=inpaint), expected)


def test_sampler_level_wrappers_of_the_small_model_run_around_the_pass_as_its_own(small_model, large_model, pair, ksample, tag,
                                                                                  calls):
    from comfy.patcher_extension import WrappersMP

    small = tag(small_model, "S")

    def outer(executor, *args, **kwargs):
        guider = executor.class_obj
        calls.append(("outer-enter", guider.model_patcher.model is small_model.model))
        try:
            return executor(*args, **kwargs)
        finally:
            calls.append(("outer-exit", None))

    def sampler_sample(executor, guider, sigmas, extra_args, *args, **kwargs):
        options = extra_args["model_options"]
        calls.append(("sampler-enter", guider.inner_model is small_model.model and "model_function_wrapper" in
                      options and len(sigmas) == 11))
        return executor(guider, sigmas, extra_args, *args, **kwargs)

    small.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, "test", outer)
    small.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, "test", sampler_sample)
    ksample(pair(small, tag(large_model, "L"), 0.4, False))
    assert calls[:2] == [("outer-enter", True), ("sampler-enter", True)]
    assert "".join(n for n, _ in calls[2:-1]) == "SSSS" "LLLLLL" and calls[-1] == ("outer-exit", None)


@OFFLOAD
def test_scheduled_lora_hooks_on_the_prompts_act_on_each_models_steps(offload, small_model, large_model, pair,
                                                                      ksample, lora_hooked, conds):
    from tstitch_dev.models import MINI_SD15_SMALL

    hooked = tuple(lora_hooked(c, MINI_SD15_SMALL) for c in conds)  # keys of the blocks both models have
    small_alone, large_alone = (ksample(m, steps=STEPS, conds=hooked) for m in (small_model, large_model))
    acts("hooks", "small", small_alone, ksample(small_model, steps=STEPS))
    acts("hooks", "large", large_alone, ksample(large_model, steps=STEPS))
    assert torch.equal(ksample(pair(small_model, large_model, 1.0, offload), steps=STEPS, conds=hooked), small_alone)
    assert torch.equal(ksample(pair(small_model, large_model, 0.0, offload), steps=STEPS, conds=hooked), large_alone)
