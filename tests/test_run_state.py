"""A sampling pass leaves no state behind, whatever fails: a stage whose set-up fails part-way undoes what it changed
on its (cached) model, every stage's clean-up is attempted when one fails, and a run of the same model started
inside another's pass (re-entry) leaves the outer one registered."""

import sys

import pytest
import torch

from tstitch_dev.models import MINI_SD15_SMALL


class FailingCast:
    """A wrapper whose ``.to`` raises: cast_to_load_options casts it to the device and then the model's dtype when a
    stage is set up, to the offload device when it is cleaned up."""

    def __init__(self, when: str):
        self.when, self.set_up = when, False

    def __call__(self, executor, *args, **kwargs):
        return executor(*args, **kwargs)

    def to(self, cast):
        if isinstance(cast, torch.dtype):
            self.set_up = True
            if self.when == "set-up":
                raise RuntimeError("test: the set-up cast failed")
        elif self.set_up and self.when == "clean-up":
            raise RuntimeError("test: the clean-up cast failed")
        return self


def failing(model, when):
    m = model.clone()
    m.add_wrapper_with_key("diffusion_model", "test", FailingCast(when))
    return m


@pytest.fixture(scope="module")
def run_module(node):
    package = node("TStitchModelPair").__module__.rsplit(".", 1)[0]
    return sys.modules[package + "._run"], sys.modules[package + "._patching"]


@pytest.fixture(scope="module")
def one_hook_group(lora_hooked, conds):
    hooked = lora_hooked(conds[0], MINI_SD15_SMALL)
    return hooked, hooked  # one hook group: set-up switches the model to MinVram, as CFGGuider does


def hook_state(patcher):
    return patcher.hook_mode, dict(patcher.hook_patches), patcher.hook_patches_backup


def test_a_stage_whose_set_up_fails_restores_its_hook_mode_and_hooks(small_model, large_model, stitch, ksample,
                                                                      run_module, one_hook_group):
    _, patching = run_module
    model = stitch(failing(small_model, "set-up"), large_model, 0.4)
    small = patching.get_plan(model).stages[0].patcher
    before = hook_state(small)
    with pytest.raises(RuntimeError, match="the set-up cast failed"):
        ksample(model, conds=one_hook_group)
    assert hook_state(small) == before


def test_every_stage_is_cleaned_up_when_one_clean_up_fails(small_model, medium_model, large_model, stitch, ksample,
                                                           run_module, one_hook_group):
    _, patching = run_module
    model = stitch(failing(small_model, "clean-up"), stitch(medium_model, large_model, 0.5), 0.2)
    stages = [stage.patcher for stage in patching.get_plan(model).stages]
    before = [hook_state(p) for p in stages]
    with pytest.raises(RuntimeError, match="the clean-up cast failed"):
        ksample(model, conds=one_hook_group)
    assert [hook_state(p) for p in stages] == before  # the failing stage's own restore included


def test_a_run_of_the_same_model_inside_another_leaves_the_outer_one_registered(small_model, large_model, stitch,
                                                                                 run_module):
    import comfy.samplers

    run, patching = run_module
    model = stitch(small_model, large_model, 0.4)
    guider = comfy.samplers.CFGGuider(model)
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", 10)
    plan = patching.get_plan(model)
    with run.started_run(plan, guider, None, None, sampler, sigmas) as outer:
        with run.started_run(plan, guider, None, None, sampler, sigmas) as inner:
            assert run.StitchRun.of_main_model(model) is inner
        assert run.StitchRun.of_main_model(model) is outer
    assert id(model) not in run._RUNS
