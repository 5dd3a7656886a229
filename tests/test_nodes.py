"""The nodes as ComfyUI loads and shows them, and TStitchKSampler against KSampler."""

import pytest
import torch

from tstitch_dev.comfy_env import PACK_DIR_NAME
from tstitch_dev.host import PACK_ROOT


def test_pack_is_loaded_by_comfyuis_custom_node_loader(comfy_nodes):
    from pathlib import Path

    assert Path(comfy_nodes.LOADED_MODULE_DIRS[PACK_DIR_NAME]).resolve() == PACK_ROOT
    assert comfy_nodes.NODE_DISPLAY_NAME_MAPPINGS["TStitchModelPair"] == "T-Stitch Model Pair"
    assert comfy_nodes.NODE_DISPLAY_NAME_MAPPINGS["TStitchKSampler"] == "T-Stitch KSampler"


@pytest.mark.parametrize("node_id", ["TStitchModelPair", "TStitchKSampler", "TStitchBKSDMLoader"])
def test_nodes_describe_themselves_and_every_input(node_id, node):
    info = node(node_id).GET_NODE_INFO_V1()
    assert info["category"] == "sampling/T-Stitch"
    assert len(info["description"]) > 40
    for name, (_, options) in info["input"]["required"].items():
        assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_the_dit_only_nodes_sit_in_their_own_subcategory_under_their_ids(comfy_nodes):
    from tstitch_dev.comfy_env import PACK_NODE_IDS

    dit = {"TStitchDiTLoader", "TStitchDiTScheduler", "TStitchImageNetClass", "TStitchClassIndex"}
    categories = {node_id: comfy_nodes.NODE_CLASS_MAPPINGS[node_id].GET_NODE_INFO_V1()["category"]
                  for node_id in PACK_NODE_IDS}
    assert {node_id for node_id, category in categories.items() if category == "sampling/T-Stitch/DiT"} == dit
    assert {category for node_id, category in categories.items() if node_id not in dit} == {"sampling/T-Stitch"}


def test_stitch_ksampler_takes_ksamplers_inputs_with_its_names_defaults_and_ranges(node, comfy_nodes):
    ours = node("TStitchKSampler").INPUT_TYPES()["required"]
    core = comfy_nodes.KSampler.INPUT_TYPES()["required"]
    compared = ("default", "min", "max", "step", "round", "control_after_generate")
    for name, (io_type, options) in core.items():
        if name == "model":
            continue
        our_type, our_options = ours[name]
        if isinstance(io_type, list):
            assert our_options.get("options", our_type) == io_type, name
        else:
            assert our_type == io_type, name
        for key in compared:
            assert our_options.get(key) == options.get(key), f"{name}.{key}"
    assert list(ours)[:4] == ["small_model", "large_model", "small_fraction", "switch_by"]


def stitch_ksample(run_node, conds, latent, small, large, **overrides):
    positive, negative = conds
    inputs = dict(small_model=small, large_model=large, small_fraction=0.4, switch_by="steps", seed=0, steps=10,
                  cfg=5.0, sampler_name="dpmpp_2m", scheduler="karras", positive=positive, negative=negative,
                  latent_image=latent(), denoise=1.0)
    inputs.update(overrides)
    return run_node("TStitchKSampler", **inputs)[0]["samples"]


def test_stitch_ksampler_equals_the_pair_into_ksampler(small_model, large_model, run_node, conds, latent, stitch,
                                                       ksample):
    expected = ksample(stitch(small_model, large_model, 0.4), "dpmpp_2m", "karras")
    assert torch.equal(stitch_ksample(run_node, conds, latent, small_model, large_model), expected)


def test_stitch_ksampler_reports_progress_with_latent_previews(small_model, large_model, run_node, conds, latent):
    import comfy.utils
    from comfy.cli_args import LatentPreviewMethod, args

    updates = []

    def hook(value, total, preview, node_id=None):
        updates.append((value, total, preview is not None))

    method = args.preview_method
    args.preview_method = LatentPreviewMethod.Latent2RGB
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        stitch_ksample(run_node, conds, latent, small_model, large_model, steps=6)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
        args.preview_method = method
    assert updates == [(step, 6, True) for step in range(1, 7)]
