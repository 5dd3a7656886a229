"""tstitch_core.options: what a sampler added to model options at run time (pure, no host)."""

import copy

from tstitch_core import compute_runtime_additions


def nested_copy(options):
    # what ComfyUI's copy_nested_dicts does: new dicts and lists, shared leaves
    out = dict(options)
    for key, value in options.items():
        if isinstance(value, dict):
            out[key] = nested_copy(value)
        elif isinstance(value, list):
            out[key] = list(value)
    return out


def large_model_options():
    def cfg_hook(args):
        return args["denoised"]

    return {"transformer_options": {"patches": {"attn1_patch": [object()]}, "wrappers": {}},
            "sampler_post_cfg_function": [cfg_hook], "model_function_wrapper": object()}


def test_an_untouched_copy_adds_nothing():
    base = large_model_options()
    assert compute_runtime_additions(nested_copy(base), base) == {}


def test_new_keys_and_appended_hooks_are_additions():
    base = large_model_options()
    runtime = nested_copy(base)
    sigmas = object()
    cfg_pp_hook = object()
    runtime["transformer_options"]["sample_sigmas"] = sigmas
    runtime["sampler_post_cfg_function"] = runtime["sampler_post_cfg_function"] + [cfg_pp_hook]
    runtime["disable_cfg1_optimization"] = True
    additions = compute_runtime_additions(runtime, base)
    assert additions == {"transformer_options": {"sample_sigmas": sigmas},
                         "sampler_post_cfg_function": [cfg_pp_hook], "disable_cfg1_optimization": True}
    assert additions["sampler_post_cfg_function"][0] is cfg_pp_hook


def test_the_large_models_own_entries_are_never_additions():
    base = large_model_options()
    runtime = nested_copy(base)
    runtime["transformer_options"]["sample_sigmas"] = [1.0]
    additions = compute_runtime_additions(runtime, base)
    assert "model_function_wrapper" not in additions
    assert "patches" not in additions["transformer_options"]


def test_replaced_leaves_are_additions():
    base = {"transformer_options": {}, "cfg_scale": 1.0}
    runtime = copy.copy(base)
    runtime["cfg_scale"] = 2.0
    assert compute_runtime_additions(runtime, base) == {"cfg_scale": 2.0}


def test_inputs_are_not_modified():
    base = large_model_options()
    runtime = nested_copy(base)
    runtime["transformer_options"]["sample_sigmas"] = [1.0]
    before = (repr(base), repr(runtime))
    compute_runtime_additions(runtime, base)
    assert (repr(base), repr(runtime)) == before
