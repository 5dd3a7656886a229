"""MultiGPU CFG Split (core's MultiGPU_WorkUnits, ComfyUI 0.33+) with a pair: each model's batch split across its
own copies, the routing that of one device and the result too, within what the large model alone needs.

One CPU stands in for two GPUs: a second device name (cpu:0) listed by get_all_torch_devices, as a second GPU would
be. The copies are made by what the MultiGPU_WorkUnits node calls, less its reuse of loaded copies, whose scan fails
(AttributeError on None) on the loaded models whose patchers other tests of this process let go of.
"""

import pytest
import torch

from tstitch_dev.testing import snapshot

pytestmark = pytest.mark.latest_host_only  # comfy/multigpu.py is newer than the version floor

MAIN, OTHER = torch.device("cpu"), torch.device("cpu", 0)
# where MultiGPU CFG Split goes -> the models whose batch is split; after the pair or on the large model, core copies
# the stitched model's additional models (the small model) to each device with the large model's copy
SPLIT = {"pair": "SL", "small": "S", "large": "SL", "both": "SL"}


def two_devices(monkeypatch):
    import comfy.model_management
    import comfy.multigpu

    monkeypatch.setattr(comfy.model_management, "get_all_torch_devices", lambda exclude_current=False: [MAIN, OTHER])
    return lambda model: comfy.multigpu.create_multigpu_deepclones(model, 2)


@pytest.fixture
def split(monkeypatch, comfy_host):
    return two_devices(monkeypatch)


@pytest.fixture(scope="module")
def tolerance(large_model, ksample, conds):
    """Twice what the large model alone differs by split across two device names against one device (a batch of
    two against two batches of one: CPU kernels round them differently); 4.7e-4 here, so 9.5e-4."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        split = two_devices(monkeypatch)
        baseline = float((ksample(large_model) - ksample(split(large_model))).abs().max())
    return 2 * max(baseline, 1e-7)


@pytest.fixture
def device_calls():
    return []


@pytest.fixture
def tag(device_calls):
    """A clone of a model that logs (name, timestep, device, BaseModel) of each batch it runs, on whichever copy: the
    device core's split names (a tensor on cpu:0 reads as cpu), the weights whose apply_model it is."""

    def tagged(model, name):
        m = model.clone()

        def record(apply_model, args):
            device = args["c"]["transformer_options"].get("multigpu_thread_device", MAIN)
            device_calls.append((name, round(float(args["timestep"][0]), 4), device, apply_model.__self__))
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(record)
        return m

    return tagged


def routing(device_calls) -> dict:
    """The devices each model ran each timestep on."""
    steps = {}
    for name, t, device, _ in device_calls:
        steps.setdefault((name, t), set()).add(device)
    return steps


def split_pair(where, small, large, split, pair):
    if where == "pair":
        return split(pair(small, large))
    return pair(split(small) if where in ("small", "both") else small,
                split(large) if where in ("large", "both") else large)


@pytest.mark.parametrize("where", list(SPLIT))
def test_each_model_runs_its_steps_split_across_its_own_copies(where, small_model, large_model, stitch, ksample, tag,
                                                               device_calls, split, tolerance):
    small, large = tag(small_model, "S"), tag(large_model, "L")
    one = ksample(stitch(small, large, 0.4))
    one_device = routing(device_calls)
    del device_calls[:]
    before = [snapshot(m) for m in (small, large)]
    two = ksample(split_pair(where, small, large, split, lambda s, l: stitch(s, l, 0.4)))
    assert [snapshot(m) for m in (small, large)] == before
    two_devices = routing(device_calls)
    assert one_device.keys() == two_devices.keys()  # the same model at every step
    assert [name for name, _ in one_device] == ["S"] * 4 + ["L"] * 6
    for (name, t), devices in two_devices.items():
        assert one_device[(name, t)] == {MAIN}
        assert devices == ({MAIN, OTHER} if name in SPLIT[where] else {MAIN}), (name, t)
    # each model's batches run on its own weights: its copies, never the other model's
    weights = {name: {id(base) for n, *_, base in device_calls if n == name} for name in "SL"}
    assert not weights["S"] & weights["L"]
    assert [len(weights[name]) for name in "SL"] == [2 if name in SPLIT[where] else 1 for name in "SL"]
    difference = float((one - two).abs().max())
    assert difference <= tolerance, (difference, tolerance)
    assert float((one - ksample(large_model)).abs().max()) > 100 * tolerance  # the tolerance tells models apart


@pytest.mark.parametrize("where", ["pair", "small"])
def test_scheduled_lora_hooks_reach_the_copies(where, small_model, large_model, stitch, ksample, lora_hooked, conds,
                                               split, tolerance):
    from tstitch_dev.models import MINI_SD15_SMALL

    hooked = tuple(lora_hooked(c, MINI_SD15_SMALL) for c in conds)  # keys of the blocks both models have
    pair = lambda s, l: stitch(s, l, 0.4)  # noqa: E731
    one = ksample(pair(small_model, large_model), conds=hooked)
    assert float((one - ksample(pair(small_model, large_model))).abs().max()) > 100 * tolerance  # the hook acts
    two = ksample(split_pair(where, small_model, large_model, split, pair), conds=hooked)
    assert float((one - two).abs().max()) <= tolerance


def test_a_clone_of_the_split_pair_carries_copies_of_both_models(small_model, large_model, stitch, ksample, tag,
                                                                 device_calls, split, run_node, tolerance):
    # any patch node after MultiGPU CFG Split clones the pair and its copies
    split_model = split(stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4))
    patched = run_node("ModelSamplingDiscrete", model=split_model, sampling="eps", zsnr=False)[0]
    one = ksample(run_node("ModelSamplingDiscrete", model=stitch(small_model, large_model, 0.4), sampling="eps",
                           zsnr=False)[0])
    two = ksample(patched)
    assert {device for *_, device, _ in device_calls} == {MAIN, OTHER}
    assert len({id(base) for *_, base in device_calls}) == 4
    assert float((one - two).abs().max()) <= tolerance


def test_a_lora_applied_after_the_split_reaches_the_small_models_copy(small_model, large_model, stitch, ksample,
                                                                       run_node, split, tolerance):
    import folder_paths
    from tstitch_dev.models import MINI_SD15_SMALL, ensure_lora

    path = ensure_lora(MINI_SD15_SMALL, seed=8)
    folder_paths.add_model_folder_path("loras", str(path.parent))
    lora = lambda m: run_node("LoraLoaderModelOnly", model=m, lora_name=path.name, strength_model=1.0)[0]  # noqa: E731
    one = ksample(stitch(lora(small_model), large_model, 0.4))
    assert float((one - ksample(stitch(small_model, large_model, 0.4))).abs().max()) > 100 * tolerance
    two = ksample(stitch(lora(split(small_model)), large_model, 0.4))
    assert float((one - two).abs().max()) <= tolerance
