"""BK-SDM (nota-ai's block-removed SD1.x UNets) straight from the diffusers file nota-ai publishes, converted in
memory as it loads, by the same code as tools/bk_sdm_to_checkpoint.py."""

from __future__ import annotations

import inspect
import logging
import os
from collections import OrderedDict

import comfy.sd
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from ..tstitch_core.messages import quote_input
from ._bk_sdm import describe_unet, plan_unet_conversion, rename_unet
from ._schema import schema

log = logging.getLogger(__name__)

NODE_NAME = "Load BK-SDM UNet (T-Stitch)"
# UNETLoader's choices and the model_options it sets for each
WEIGHT_DTYPES = {"default": {}, "fp8_e4m3fn": {"dtype": torch.float8_e4m3fn},
                 "fp8_e4m3fn_fast": {"dtype": torch.float8_e4m3fn, "fp8_optimizations": True},
                 "fp8_e5m2": {"dtype": torch.float8_e5m2}}
# the renaming plans of the files loaded last, by path, mtime and size: in memory, not a converted copy on disk (no
# hidden gigabytes beside the user's models), and names only, not the weights (those would stay in RAM after
# ComfyUI unloads the model; UNETLoader too reads its file at each load). ComfyUI 0.33 loads the file again through
# cached_patcher_init (multi-GPU, non-dynamic clones): that and a second loader of the file reuse the plan.
PLAN_CACHE_SIZE = 8
_plans: OrderedDict[tuple, tuple[dict, dict]] = OrderedDict()


def file_key(path: str) -> tuple:
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_mtime_ns, stat.st_size


def cached_plan(key: tuple, unet: dict) -> tuple[dict, dict]:
    """plan_unet_conversion(unet), kept while the file ``key`` names (path, mtime, size) is unchanged."""
    plan = _plans.get(key)
    if plan is None or plan[0].keys() != unet.keys():  # same mtime and size, other weights: plan again
        plan = _plans[key] = plan_unet_conversion(unet)
    _plans.move_to_end(key)
    while len(_plans) > PLAN_CACHE_SIZE:
        _plans.popitem(last=False)
    return plan


def read_weights(path: str) -> dict:
    name = os.path.basename(path)
    try:
        return comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as error:  # a damaged or foreign file: say which, not a bare error from deep in torch
        raise ValueError(f"{NODE_NAME}: {name} could not be read as weights ({type(error).__name__}: "
                         f"{quote_input(error, 300)}): it may be damaged (download it again) or hold no UNet "
                         "weights.") from error


def load_bk_sdm_unet(path: str, model_options: dict, disable_dynamic: bool = False):
    """A BK-SDM UNet's diffusers weights file as a ComfyUI MODEL, loaded as UNETLoader loads the converted file."""
    key = file_key(path)
    unet = read_weights(path)
    try:
        to_ldm, unet_config = cached_plan(key, unet)
    except ValueError as error:
        raise ValueError(
            f"{NODE_NAME}: {os.path.basename(path)} is not a BK-SDM UNet in diffusers format: {error} Pick the "
            "unet/diffusion_pytorch_model.safetensors of nota-ai/bk-sdm-tiny, -small or -base; load a UNet in "
            "ComfyUI's format with Load Diffusion Model, a checkpoint with Load Checkpoint.") from error
    ldm = rename_unet(unet, to_ldm)
    log.info("T-Stitch: BK-SDM %s from %s", describe_unet(unet_config, ldm), path)
    # 0.3.64's loader has no disable_dynamic: its patchers are all plain
    takes_it = "disable_dynamic" in inspect.signature(comfy.sd.load_diffusion_model_state_dict).parameters
    dynamic = {"disable_dynamic": disable_dynamic} if takes_it else {}
    model = comfy.sd.load_diffusion_model_state_dict(ldm, model_options=model_options, **dynamic)
    model.cached_patcher_init = (load_bk_sdm_unet, (path, model_options))
    return model


class TStitchBKSDMLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchBKSDMLoader",
            display_name=NODE_NAME,
            search_aliases=["bk-sdm", "bk_sdm", "bk-sdm-tiny", "bk-sdm-small", "nota-ai", "diffusers", "unet",
                            "small model", "sd1.5", "t-stitch", "loader"],
            description=(
                "Loads a BK-SDM UNet (nota-ai/bk-sdm-tiny, -small, -base) straight from the diffusers file it is "
                "published as, unet/diffusion_pytorch_model.safetensors, converting it in memory: the small model "
                "of an SD1.x pair, with no conversion step."),
            inputs=[
                io.Combo.Input("unet_name", options=folder_paths.get_filename_list("diffusion_models"), tooltip=(
                    "A BK-SDM download's unet/diffusion_pytorch_model.safetensors (or .bin) in models/diffusion_models "
                    "or models/unet; a folder per model keeps their names apart.")),
                io.Combo.Input("weight_dtype", options=list(WEIGHT_DTYPES), default="default", tooltip=(
                    "As in Load Diffusion Model: default lets ComfyUI pick for this device; fp8 keeps the weights "
                    "in 8 bits.")),
            ],
            outputs=[io.Model.Output(tooltip="The BK-SDM UNet as ComfyUI's SD1.5 model, for any sampler and as "
                                             "T-Stitch's small model beside SD1.x.")],
        )

    @classmethod
    def execute(cls, unet_name, weight_dtype="default") -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("diffusion_models", unet_name)
        return io.NodeOutput(load_bk_sdm_unet(path, dict(WEIGHT_DTYPES[weight_dtype])))
