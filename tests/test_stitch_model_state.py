"""Each model keeps its own patcher state inside a pair, the inputs stay untouched, and ComfyUI's
model management loads both models."""

import pytest
import torch

from tstitch_dev.testing import snapshot


def weight_patched(model, seed=0):
    """A clone with a LoRA-style weight difference on the output convolution (ComfyUI's patch machinery)."""
    m = model.clone()
    key = "diffusion_model.out.2.weight"
    weight = m.model.state_dict()[key]
    delta = torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed)) * 0.5 * weight.std()
    assert m.add_patches({key: (delta,)}, 1.0) == [key]
    return m


def test_weight_patch_on_the_small_model_changes_small_steps_only(small_model, large_model, stitch, ksample):
    patched = weight_patched(small_model)
    assert torch.equal(ksample(stitch(patched, large_model, 0.0)), ksample(large_model))
    assert torch.equal(ksample(stitch(patched, large_model, 1.0)), ksample(patched))
    assert not torch.equal(ksample(stitch(patched, large_model, 0.4)), ksample(stitch(small_model, large_model, 0.4)))


def test_weight_patch_on_the_large_model_changes_large_steps_only(small_model, large_model, stitch, ksample):
    patched = weight_patched(large_model, seed=1)
    assert torch.equal(ksample(stitch(small_model, patched, 1.0)), ksample(small_model))
    assert torch.equal(ksample(stitch(small_model, patched, 0.0)), ksample(patched))


def attention_recorder(model, seen):
    """A clone whose attn1 patch (a model_options patch) records the sigma of every call it sees."""
    m = model.clone()

    def patch(q, k, v, extra_options):
        seen.append(float(extra_options["sigmas"][0]))
        return q, k, v

    m.set_model_attn1_patch(patch)
    return m


def test_attention_patches_see_only_their_own_models_calls(small_model, large_model, stitch, ksample):
    import comfy.samplers

    small_seen, large_seen = [], []
    model = stitch(attention_recorder(small_model, small_seen), attention_recorder(large_model, large_seen), 0.4)
    ksample(model)
    sigmas = comfy.samplers.KSampler(large_model, 10, "cpu", scheduler="normal").sigmas.tolist()
    assert sorted(set(small_seen), reverse=True) == sigmas[:4]
    assert sorted(set(large_seen), reverse=True) == sigmas[4:10]


@pytest.mark.parametrize("wrapper_type", ["diffusion_model", "apply_model", "calc_cond_batch", "predict_noise"])
def test_wrappers_run_for_their_own_models_calls(wrapper_type, small_model, large_model, stitch, ksample, calls):
    def with_wrapper(model, name):
        m = model.clone()

        def wrapper(executor, *args, **kwargs):
            calls.append((name, None))
            return executor(*args, **kwargs)

        m.add_wrapper_with_key(wrapper_type, "test", wrapper)
        return m

    ksample(stitch(with_wrapper(small_model, "S"), with_wrapper(large_model, "L"), 0.4))
    assert calls.names() == "SSSS" + "LLLLLL"


def test_model_sampling_override_on_the_small_model_mixes_eps_and_v(small_model, large_model, run_node, stitch,
                                                                    ksample):
    small_v = run_node("ModelSamplingDiscrete", model=small_model, sampling="v_prediction", zsnr=False)[0]
    assert torch.equal(ksample(stitch(small_v, large_model, 1.0)), ksample(small_v))
    assert torch.equal(ksample(stitch(small_v, large_model, 0.0)), ksample(large_model))
    mixed = ksample(stitch(small_v, large_model, 0.4))
    assert torch.isfinite(mixed).all()
    assert not torch.equal(mixed, ksample(stitch(small_model, large_model, 0.4)))


def test_cfg_patches_follow_their_model(small_model, large_model, run_node, stitch, ksample):
    small_rescaled = run_node("RescaleCFG", model=small_model, multiplier=0.7)[0]
    assert torch.equal(ksample(stitch(small_rescaled, large_model, 1.0)), ksample(small_rescaled))
    assert torch.equal(ksample(stitch(small_rescaled, large_model, 0.0)), ksample(large_model))


def test_what_the_sampler_sets_at_run_time_reaches_both_models(small_model, large_model, stitch, ksample):
    import comfy.samplers

    seen = {"S": [], "L": []}

    def recorder(model, name):
        m = model.clone()

        def patch(q, k, v, extra_options):
            seen[name].append(extra_options)
            return q, k, v

        m.set_model_attn1_patch(patch)
        return m

    ksample(stitch(recorder(small_model, "S"), recorder(large_model, "L"), 0.4))
    schedule = comfy.samplers.KSampler(large_model, 10, "cpu", scheduler="normal").sigmas
    for name in "SL":
        options = seen[name][0]
        assert torch.equal(options["sample_sigmas"].cpu(), schedule), name
        assert options["cond_or_uncond"] == [1, 0] or options["cond_or_uncond"] == [0, 1], name
        assert "sigmas" in options and "uuids" in options, name


def test_inputs_are_unchanged_after_stitching_and_sampling(small_model, medium_model, large_model, stitch,
                                                           ksample):
    medium = medium_model
    before_large_alone = ksample(large_model, "dpmpp_2m")
    before = [snapshot(m) for m in (small_model, medium, large_model)]
    inner = stitch(medium, large_model, 0.5)
    inner_before = snapshot(inner)
    ksample(stitch(small_model, inner, 0.2), "dpmpp_2m")
    assert [snapshot(m) for m in (small_model, medium, large_model)] == before
    assert snapshot(inner) == inner_before
    assert torch.equal(ksample(large_model, "dpmpp_2m"), before_large_alone)


def test_restitching_never_stacks_wrappers(small_model, medium_model, large_model, stitch):
    nested = stitch(small_model, stitch(medium_model, large_model, 0.5), 0.2)
    for wrapper_type in ("outer_sample", "predict_noise"):
        assert len(nested.get_wrappers(wrapper_type, "tstitch")) == 1
    assert next(iter(nested.wrappers["predict_noise"])) == "tstitch"
    assert len(nested.get_additional_models_with_key("tstitch")) == 2


def test_both_models_are_loaded_by_comfyui_model_management(small_model, large_model, stitch, ksample):
    import comfy.model_management

    model = stitch(small_model, large_model, 0.4)
    ksample(model)
    (stage,) = model.get_additional_models_with_key("tstitch")
    loaded = [m for m in comfy.model_management.loaded_models() if m is not None]
    assert stage.model is small_model.model and model.model is large_model.model
    assert any(m is model for m in loaded) and any(m is stage for m in loaded)


@pytest.mark.parametrize("offload", [False, True])
def test_the_plan_follows_clones_of_the_stitched_model(offload, small_model, medium_model, large_model, run_node,
                                                       stitch, ksample):
    from comfy.patcher_extension import CallbacksMP

    pair = run_node("TStitchModelPair", small_model=small_model, large_model=stitch(medium_model, large_model, 0.5),
                    small_fraction=0.2, switch_by="steps", offload_idle_model=offload)[0]
    patched = run_node("FreeU_V2", model=pair, b1=1.3, b2=1.4, s1=0.9, s2=0.2)[0]  # any patch node clones
    plan, cloned_plan = (m.get_attachment("tstitch") for m in (pair, patched))
    assert [s.patcher.model for s in cloned_plan.stages] == [small_model.model, medium_model.model]
    assert not any(a.patcher is b.patcher for a, b in zip(plan.stages, cloned_plan.stages))
    if not offload:  # the stages are exactly the models ComfyUI loads with the clone
        assert [s.patcher for s in cloned_plan.stages] == patched.get_additional_models_with_key("tstitch")
    # each stage's own state (pre_run, hooks, cleanup) now lives on the clone's patchers
    started = []
    for stage in cloned_plan.stages:
        stage.patcher.add_callback(CallbacksMP.ON_PRE_RUN, lambda p: started.append(p))
    ksample(patched)
    assert started == [s.patcher for s in cloned_plan.stages]


def test_runtime_options_edited_in_place_reach_every_call(small_model, large_model, stitch, run_node, conds, latent):
    # core's ar_video sampler edits extra_args' transformer_options in place between calls
    import comfy.samplers

    seen = []

    def marker_recorder(model, name):
        m = model.clone()
        m.set_model_attn1_patch(lambda q, k, v, extra: seen.append((name, extra.get("step_marker"))) or (q, k, v))
        return m

    def euler_marking_steps(model, x, sigmas, extra_args=None, callback=None, disable=None):
        s_in = x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            extra_args["model_options"]["transformer_options"]["step_marker"] = i
            denoised = model(x, sigmas[i] * s_in, **extra_args)
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        return x

    positive, negative = conds
    model = stitch(marker_recorder(small_model, "S"), marker_recorder(large_model, "L"), 0.5)
    guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=5.0)[0]
    run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
             sampler=comfy.samplers.KSAMPLER(euler_marking_steps),
             sigmas=run_node("BasicScheduler", model=large_model, scheduler="normal", steps=4, denoise=1.0)[0],
             latent_image=latent())
    assert sorted(set(seen)) == [("L", 2), ("L", 3), ("S", 0), ("S", 1)]


def test_a_switch_that_loads_a_controlnet_keeps_the_model_about_to_run(pruned_model, controlled_conds, deep_pair,
                                                                      conds, run_node, latent, monkeypatch):
    import comfy.model_management

    pruned, controlled, large_model = pruned_model, controlled_conds, deep_pair[1]
    requests = []
    load = comfy.model_management.load_models_gpu

    def spy(models, *args, **kwargs):
        requests.append([getattr(m, "model", None) for m in models])
        return load(models, *args, **kwargs)

    monkeypatch.setattr(comfy.model_management, "load_models_gpu", spy)
    positive, negative = conds
    guider = run_node("TStitchGuider", small_model=pruned, large_model=large_model, small_fraction=0.5,
                      switch_by="steps", small_positive=controlled[0], small_negative=controlled[1], small_cfg=5.0,
                      large_positive=positive, large_negative=negative, large_cfg=5.0)[0]
    run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
             sampler=run_node("KSamplerSelect", sampler_name="euler")[0],
             sigmas=run_node("BasicScheduler", model=large_model, scheduler="normal", steps=4, denoise=1.0)[0],
             latent_image=latent())
    # the small model's ControlNet is loaded at its switch, and the small model in the same request
    switch_loads = [models for models in requests if pruned.model in models and large_model.model not in models]
    assert switch_loads, requests


def test_a_model_on_another_device_gets_its_inputs_and_conditioning_there(small_model, large_model, stitch, ksample,
                                                                          monkeypatch):
    """A patcher whose load_device differs (cpu:0 beside cpu here; a second GPU for users): its conditioning is
    processed for its device, its inputs go there, the result comes back, and nothing else changes."""
    import comfy.model_management
    import comfy.samplers

    other = small_model.clone()
    other.load_device = torch.device("cpu", 0)
    processed_for, loaded_on = [], []
    process_conds = comfy.samplers.process_conds

    def spy(model, noise, conds, device, *args, **kwargs):
        processed_for.append((model, device))
        return process_conds(model, noise, conds, device, *args, **kwargs)

    def record(apply_model, args):
        loaded_on.extend(lm.device for lm in comfy.model_management.current_loaded_models
                         if lm.model is not None and lm.model.model is small_model.model)
        return apply_model(args["input"], args["timestep"], **args["c"])

    other.set_model_unet_function_wrapper(record)
    monkeypatch.setattr(comfy.samplers, "process_conds", spy)
    out = ksample(stitch(other, large_model, 0.4))
    assert (small_model.model, torch.device("cpu", 0)) in processed_for
    assert loaded_on and set(loaded_on) == {torch.device("cpu", 0)}
    assert torch.equal(out, ksample(stitch(small_model, large_model, 0.4)))
