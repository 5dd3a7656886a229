"""tools/bk_sdm_to_checkpoint.py: a diffusers-format model with BK-SDM's pruned layout, built here from seeded
random weights, becomes a checkpoint that ComfyUI's CheckpointLoaderSimple loads as SD15 with the same weights.

The diffusers-format model comes from conftest's bk_sdm_* fixtures (tstitch_dev/diffusers_format.py: ComfyUI's
own tables read backwards), shared with the BK-SDM loader node's tests.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tstitch_dev.diffusers_format import (BK_SDM_BASE_SHAPED, BK_SDM_SHAPED, WEIGHT_FILES, diffusers_unet, ldm_unet,
                                          write_component)
from tstitch_dev.host import PACK_ROOT
from tstitch_dev.models import TINY_SDXL, unet_config

TOOL = PACK_ROOT / "tools" / "bk_sdm_to_checkpoint.py"
LAYOUT_FIELDS = ("num_res_blocks", "channel_mult", "transformer_depth", "transformer_depth_output",
                 "transformer_depth_middle")


def variant(bk_sdm_folder: Path, tmp_path: Path, **replaced: dict | None) -> Path:
    """The diffusers folder with some components' weights replaced, or left out where given None."""
    folder = tmp_path / "variant"
    folder.mkdir()
    for component in WEIGHT_FILES:
        if component not in replaced:
            (folder / component).symlink_to(bk_sdm_folder / component)
        elif replaced[component] is not None:
            write_component(folder, component, replaced[component])
    return folder


def assert_weights_equal(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key, tensor in expected.items():
        assert actual[key].shape == tensor.shape, key
        assert torch.equal(actual[key].to(tensor.dtype), tensor), key


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's unet, vae and clip weights, each without its prefix."""
    import comfy.utils

    weights = comfy.utils.load_torch_file(str(path))
    parts = {"unet": "model.diffusion_model.", "vae": "first_stage_model.", "clip": "cond_stage_model."}
    split = {part: {key.removeprefix(prefix): t for key, t in weights.items() if key.startswith(prefix)}
             for part, prefix in parts.items()}
    assert sum(map(len, split.values())) == len(weights), "keys outside the three parts"
    return split


def run_tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], check=False, capture_output=True,
                          text=True, timeout=300)


def test_comfyui_alone_cannot_detect_the_diffusers_bk_sdm_unet(comfy_host, bk_sdm_diffusers):
    import comfy.model_detection

    assert comfy.model_detection.unet_config_from_diffusers_unet(bk_sdm_diffusers["unet"]) is None


def test_the_test_models_diffusers_vae_converts_back_by_comfyuis_table(comfy_host, bk_sdm_ldm, bk_sdm_diffusers):
    from comfy.diffusers_convert import convert_vae_state_dict

    assert_weights_equal(convert_vae_state_dict(dict(bk_sdm_diffusers["vae"])), bk_sdm_ldm["vae"])


def test_bk_sdm_shaped_model_becomes_an_fp16_checkpoint_comfyui_loads_as_sd15_with_the_same_weights(
        bk_sdm_folder, bk_sdm_ldm, comfy_host, comfy_nodes, run_node, latent, tmp_path):
    import comfy.supported_models
    import folder_paths

    output = tmp_path / "bk-sdm-shaped.safetensors"
    result = run_tool(bk_sdm_folder, output, "--comfyui", comfy_host)
    assert result.returncode == 0, result.stderr
    assert "2 levels, channel_mult [1, 2], resnets per level [1, 1]" in result.stdout
    assert "no middle block; ComfyUI detects SD15; 81.8M parameters" in result.stdout
    assert f"wrote {output} (fp16" in result.stdout

    checkpoint = read_checkpoint(output)
    assert {t.dtype for part in checkpoint.values() for t in part.values()} == {torch.float16}
    assert_weights_equal(checkpoint["unet"], bk_sdm_ldm["unet"])
    assert_weights_equal(checkpoint["vae"], bk_sdm_ldm["vae"])
    assert_weights_equal(checkpoint["clip"], bk_sdm_ldm["clip"])

    folder_paths.add_model_folder_path("checkpoints", str(tmp_path))
    model, clip, vae = comfy_nodes.CheckpointLoaderSimple().load_checkpoint(output.name)
    assert type(model.model.model_config) is comfy.supported_models.SD15
    config = model.model.model_config.unet_config
    assert [config[field] for field in LAYOUT_FIELDS] == [unet_config(BK_SDM_SHAPED)[f] for f in LAYOUT_FIELDS]
    assert_weights_equal(model.model.diffusion_model.state_dict(), bk_sdm_ldm["unet"])

    positive = run_node("CLIPTextEncode", clip=clip, text="a red fox in the snow")[0]
    assert positive[0][0].shape == (1, 77, 768) and positive[0][0].isfinite().all()
    samples = run_node("KSampler", model=model, seed=0, steps=1, cfg=1.0, sampler_name="euler", scheduler="normal",
                       positive=positive, negative=positive, latent_image=latent(), denoise=1.0)[0]
    image = run_node("VAEDecode", samples=samples, vae=vae)[0]
    assert image.shape == (1, 64, 64, 3) and image.isfinite().all()


def test_base_shaped_unet_with_a_middle_block_converts_exactly_in_fp32(bk_sdm_tool, bk_sdm_folder, tmp_path):
    import comfy.model_detection

    ldm = ldm_unet(BK_SDM_BASE_SHAPED)
    folder = variant(bk_sdm_folder, tmp_path, unet=diffusers_unet(BK_SDM_BASE_SHAPED, ldm))
    output = tmp_path / "base-shaped.safetensors"
    bk_sdm_tool.convert(folder, output, dtype="fp32")

    unet = read_checkpoint(output)["unet"]
    assert {t.dtype for t in unet.values()} == {torch.float32}
    assert_weights_equal(unet, {key: tensor.float() for key, tensor in ldm.items()})
    detected = comfy.model_detection.detect_unet_config(unet, "")
    assert [detected[field] for field in LAYOUT_FIELDS] == [unet_config(BK_SDM_BASE_SHAPED)[f] for f in LAYOUT_FIELDS]


def without(weights: dict, prefix: str) -> dict:
    return {key: tensor for key, tensor in weights.items() if not key.startswith(prefix)}


def with_tensor(weights: dict, key: str, tensor: torch.Tensor) -> dict:
    return {**weights, key: tensor}


UNET_REFUSALS = {
    "extra key": (lambda unet: with_tensor(unet, "down_blocks.0.resnets.0.extra.weight", torch.zeros(3)),
                  ("1 unet weights have no place in the layout read from the others .*"
                   r"down_blocks\.0\.resnets\.0\.extra\.weight")),
    "missing key": (lambda unet: without(unet, "up_blocks.1.attentions.0.proj_out.weight"),
                    (r"the unet weights do not fit .* 1 missing: output_blocks\.2\.1\.proj_out\.weight "
                     r"\(up_blocks\.1\.attentions\.0\.proj_out\.weight\)")),
    "wrong shape": (lambda unet: with_tensor(unet, "down_blocks.0.resnets.0.conv1.bias", torch.zeros(321)),
                    r"input_blocks\.1\.0\.in_layers\.2\.bias is \(321,\), expected \(320,\)"),
    "up blocks not mirroring": (lambda unet: without(unet, "up_blocks.0.resnets.1."),
                                r"up_blocks hold \[1, 2\] resnets per level; .* needs \[2, 2\]"),
    "not a unet": (lambda unet: without(unet, "conv_in."), "no conv_in.weight: this is not a diffusers UNet"),
}


@pytest.mark.parametrize("case", UNET_REFUSALS)
def test_unet_weights_that_do_not_fit_are_refused_by_name(case, bk_sdm_tool, bk_sdm_folder, bk_sdm_diffusers, tmp_path):
    change, message = UNET_REFUSALS[case]
    folder = variant(bk_sdm_folder, tmp_path, unet=change(bk_sdm_diffusers["unet"]))
    with pytest.raises(ValueError, match=message):
        bk_sdm_tool.convert(folder, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_an_sdxl_family_unet_is_refused_as_not_sd15(bk_sdm_tool, bk_sdm_folder, tmp_path):
    folder = variant(bk_sdm_folder, tmp_path, unet=diffusers_unet(TINY_SDXL, ldm_unet(TINY_SDXL)))
    with pytest.raises(ValueError, match="ComfyUI detects this UNet as .*, not SD15"):
        bk_sdm_tool.convert(folder, tmp_path / "out.safetensors")


@pytest.mark.parametrize("component, key, tensor, message", [
    ("vae", "decoder.extra.weight", torch.zeros(3), r"the vae weights do not fit .* left over: decoder\.extra\.weight"),
    ("vae", "encoder.conv_in.bias", torch.zeros(129), r"do not fit ComfyUI's SD VAE: .*encoder\.conv_in\.bias"),
    ("text_encoder", "text_model.extra.weight", torch.zeros(3),
     r"the text_encoder \(CLIP-L\) weights do not fit .* left over: transformer\.text_model\.extra\.weight"),
    ("text_encoder", "text_model.final_layer_norm.bias", torch.zeros(1024),
     r"transformer\.text_model\.final_layer_norm\.bias is \(1024,\), expected \(768,\)"),
])
def test_vae_and_text_encoder_weights_that_do_not_fit_are_refused_by_name(
        component, key, tensor, message, bk_sdm_tool, bk_sdm_folder, bk_sdm_diffusers, tmp_path):
    folder = variant(bk_sdm_folder, tmp_path, **{component: with_tensor(bk_sdm_diffusers[component], key, tensor)})
    with pytest.raises(ValueError, match=message):
        bk_sdm_tool.convert(folder, tmp_path / "out.safetensors")


def test_a_folder_without_unet_is_refused_naming_the_folder(bk_sdm_tool, bk_sdm_folder, tmp_path):
    folder = variant(bk_sdm_folder, tmp_path, unet=None)
    with pytest.raises(ValueError, match=f"{folder} has no unet/ folder; a diffusers-format BK-SDM model"):
        bk_sdm_tool.convert(folder, tmp_path / "out.safetensors")


def test_a_unet_folder_without_weights_is_refused_naming_the_files_looked_for(bk_sdm_tool, bk_sdm_folder, tmp_path):
    folder = variant(bk_sdm_folder, tmp_path, unet=None)
    (folder / "unet").mkdir()
    (folder / "unet" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"unet holds none of diffusion_pytorch_model\.safetensors, "):
        bk_sdm_tool.convert(folder, tmp_path / "out.safetensors")


def test_an_existing_output_is_kept_unless_overwrite_is_given(bk_sdm_tool, bk_sdm_folder, tmp_path):
    output = tmp_path / "bk-sdm-tiny.safetensors"
    output.write_bytes(b"a checkpoint the user has")
    with pytest.raises(ValueError, match="exists; pass --overwrite to replace it"):
        bk_sdm_tool.convert(bk_sdm_folder, output)
    assert output.read_bytes() == b"a checkpoint the user has"


def test_the_command_line_reports_a_refusal_in_one_line_without_traceback(comfy_host, tmp_path):
    result = run_tool(tmp_path, tmp_path / "out.safetensors", "--comfyui", comfy_host)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"bk_sdm_to_checkpoint: {tmp_path} has no unet/ folder; a diffusers-format BK-SDM model has unet/, vae/ "
        "and text_encoder/ (download the whole repository, such as nota-ai/bk-sdm-tiny).")
    assert "Traceback" not in result.stderr


def test_the_command_line_refuses_a_comfyui_path_that_is_not_comfyui(tmp_path):
    result = run_tool(tmp_path, tmp_path / "out.safetensors", "--comfyui", tmp_path)
    assert result.returncode == 1
    assert f"--comfyui {tmp_path} is not a ComfyUI folder" in result.stderr
