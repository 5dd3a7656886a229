"""Load BK-SDM UNet (T-Stitch): the UNet file nota-ai publishes (diffusers layout) loads with no conversion step, as
the same model, bit for bit, as tools/bk_sdm_to_checkpoint.py's checkpoint loaded by ComfyUI's UNETLoader.

The BK-SDM-shaped model is conftest's bk_sdm_* fixtures, the converter's tests' own; its weights are fp16, so the
converter's default fp16 checkpoint holds them unchanged.
"""

import os
import re
import shutil
import sys
from collections import OrderedDict

import pytest
import torch

from tstitch_dev.diffusers_format import WEIGHT_FILES, diffusers_unet, ensure_diffusers_unet, ldm_unet, write_component
from tstitch_dev.models import TINY_SD15_SMALL, TINY_SDXL

NODE = "TStitchBKSDMLoader"
# as `hf download nota-ai/bk-sdm-tiny --include "unet/*" --local-dir models/diffusion_models/bk-sdm-tiny` leaves it
UNET_FILE = f"bk-sdm-shaped/unet/{WEIGHT_FILES['unet']}"
CONVERTED = "bk-sdm-shaped-converted.safetensors"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, comfy_host, bk_sdm_folder, bk_sdm_tool):
    """A diffusion_models folder with the download's unet/ and the converter's checkpoint of the whole download."""
    import folder_paths

    folder = tmp_path_factory.mktemp("diffusion_models")
    shutil.copytree(bk_sdm_folder / "unet", folder / "bk-sdm-shaped" / "unet")
    bk_sdm_tool.convert(bk_sdm_folder, folder / CONVERTED)
    folder_paths.add_model_folder_path("diffusion_models", str(folder))
    return folder


@pytest.fixture(scope="module")
def loader_module(node):
    return sys.modules[node(NODE).__module__]


@pytest.fixture
def conversions(loader_module, monkeypatch) -> list:
    """The UNets the node converts (their weight counts), with an empty cache to begin with."""
    calls = []
    plan = loader_module.plan_unet_conversion

    def spy(unet):
        calls.append(len(unet))
        return plan(unet)

    monkeypatch.setattr(loader_module, "plan_unet_conversion", spy)
    monkeypatch.setattr(loader_module, "_plans", OrderedDict())
    return calls


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous().view(torch.uint8)


def assert_same_weights(model, reference) -> None:
    ours, theirs = model.model.diffusion_model.state_dict(), reference.model.diffusion_model.state_dict()
    assert ours.keys() == theirs.keys()
    for key, tensor in theirs.items():
        assert (ours[key].dtype, ours[key].shape) == (tensor.dtype, tensor.shape), key
        assert torch.equal(bits(ours[key]), bits(tensor)), key


def load(run_node, unet_name=UNET_FILE, weight_dtype="default"):
    return run_node(NODE, unet_name=unet_name, weight_dtype=weight_dtype)[0]


def test_the_weight_dtypes_are_unetloaders(node, comfy_nodes):
    ours = node(NODE).INPUT_TYPES()["required"]["weight_dtype"]
    assert ours[1]["options"] == comfy_nodes.UNETLoader.INPUT_TYPES()["required"]["weight_dtype"][0]


@pytest.mark.parametrize("weight_dtype", ["default", "fp8_e4m3fn"])
def test_the_published_file_loads_as_the_converters_checkpoint_does_through_unetloader(
        weight_dtype, models_dir, run_node, comfy_nodes, conversions):
    import comfy.model_patcher
    import comfy.supported_models

    model = load(run_node, weight_dtype=weight_dtype)
    reference = comfy_nodes.UNETLoader().load_unet(CONVERTED, weight_dtype)[0]
    assert isinstance(model, comfy.model_patcher.ModelPatcher) and type(model) is type(reference)
    assert type(model.model.model_config) is comfy.supported_models.SD15
    assert model.model.model_config.unet_config == reference.model.model_config.unet_config
    assert (model.model.get_dtype(), model.model.manual_cast_dtype) == (
        reference.model.get_dtype(), reference.model.manual_cast_dtype)
    assert_same_weights(model, reference)
    assert len(conversions) == 1


def test_a_diffusers_unet_loads_as_unetloader_loads_the_same_weights_in_comfyuis_layout(run_node, load_unet):
    """Without the converter: the diffusers file made from a UNet in ComfyUI's layout loads as that UNet."""
    assert_same_weights(load(run_node, ensure_diffusers_unet(TINY_SD15_SMALL).name), load_unet(TINY_SD15_SMALL))


def test_ksampler_samples_the_same_latent_as_with_the_converters_checkpoint(
        models_dir, run_node, comfy_nodes, conds, latent):
    positive, negative = conds

    def sample(model):
        return run_node("KSampler", model=model, seed=7, steps=4, cfg=5.0, sampler_name="dpmpp_2m",
                        scheduler="karras", positive=positive, negative=negative, latent_image=latent(),
                        denoise=1.0)[0]["samples"]

    ours = sample(load(run_node))
    reference = sample(comfy_nodes.UNETLoader().load_unet(CONVERTED, "default")[0])
    assert ours.isfinite().all() and ours.abs().sum() > 0
    assert torch.equal(ours, reference)


def test_a_second_load_of_the_unchanged_file_reuses_the_conversion(models_dir, run_node, conversions):
    first = load(run_node)
    second = load(run_node)
    assert len(conversions) == 1
    assert second is not first
    assert_same_weights(second, first)
    os.utime(models_dir / UNET_FILE, ns=(0, os.stat(models_dir / UNET_FILE).st_mtime_ns + 1_000_000_000))
    assert_same_weights(load(run_node), first)
    assert len(conversions) == 2  # a file written anew is converted anew


def test_comfyuis_reload_through_cached_patcher_init_reuses_the_conversion(models_dir, run_node, conversions):
    """ComfyUI 0.33 loads a model again by its cached_patcher_init with disable_dynamic=True (a non-dynamic clone,
    a multi-GPU copy): called as ComfyUI calls it."""
    import comfy.model_patcher

    model = load(run_node)
    loader, arguments = model.cached_patcher_init[:2]
    reloaded = loader(*arguments, disable_dynamic=True)
    assert type(reloaded) is comfy.model_patcher.ModelPatcher
    assert_same_weights(reloaded, model)
    assert len(conversions) == 1


def test_the_cache_keeps_only_the_latest_files(models_dir, run_node, loader_module, conversions, monkeypatch):
    copy = models_dir / "bk-sdm-copy" / "unet" / WEIGHT_FILES["unet"]
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(models_dir / UNET_FILE, copy)
    monkeypatch.setattr(loader_module, "PLAN_CACHE_SIZE", 1)
    for name in (UNET_FILE, "bk-sdm-copy/unet/diffusion_pytorch_model.safetensors", UNET_FILE):
        load(run_node, name)
    assert len(conversions) == 3 and len(loader_module._plans) == 1


def test_the_published_bin_file_loads_the_same_model(models_dir, run_node, bk_sdm_diffusers, conversions):
    path = models_dir / "bk-sdm-bin" / "unet" / "diffusion_pytorch_model.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bk_sdm_diffusers["unet"], path)
    assert_same_weights(load(run_node, "bk-sdm-bin/unet/diffusion_pytorch_model.bin"), load(run_node))


@pytest.fixture(scope="module")
def refused_files(models_dir, comfy_host) -> dict:
    """Files that are not a BK-SDM UNet in diffusers format, by case: name in models_dir."""
    import safetensors.torch
    from tstitch_dev.diffusers_format import BK_SDM_SHAPED

    safetensors.torch.save_file(ldm_unet(BK_SDM_SHAPED), str(models_dir / "bk-sdm-in-comfyuis-format.safetensors"))
    write_component(models_dir / "sdxl-family", "unet", diffusers_unet(TINY_SDXL, ldm_unet(TINY_SDXL)))
    (models_dir / "damaged.safetensors").write_bytes(b"not a safetensors file")
    return {"ComfyUI's layout": "bk-sdm-in-comfyuis-format.safetensors", "checkpoint": CONVERTED,
            "SDXL family": f"sdxl-family/unet/{WEIGHT_FILES['unet']}", "damaged": "damaged.safetensors"}


REFUSALS = {
    "ComfyUI's layout": r"the unet weights have no conv_in\.weight: this is not a diffusers UNet\. Pick the "
                        r"unet/diffusion_pytorch_model\.safetensors of nota-ai/bk-sdm-tiny, -small or -base; load a "
                        r"UNet in ComfyUI's format with Load Diffusion Model, a checkpoint with Load Checkpoint\.",
    "checkpoint": r"the unet weights have no conv_in\.weight",
    "SDXL family": r"ComfyUI detects this UNet as \w+, not SD15: the BK-SDM models .* are SD1\.x-based\. Pick",
    "damaged": r"could not be read as weights \(\w+: .*\): it may be damaged \(download it again\) or hold no UNet",
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_file_that_is_not_a_bk_sdm_diffusers_unet_is_refused_naming_it_and_the_way_out(
        case, refused_files, run_node, loader_module, conversions):
    name = refused_files[case]
    expected = "could not be read" if case == "damaged" else "is not a BK-SDM UNet in diffusers format: "
    with pytest.raises(ValueError, match=r"^Load BK-SDM UNet \(T-Stitch\): ") as error:
        load(run_node, name)
    message = str(error.value)
    assert f"{os.path.basename(name)} {expected}" in message
    assert re.search(REFUSALS[case], message), message
    assert not loader_module._plans
