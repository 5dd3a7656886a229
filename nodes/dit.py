"""The paper's own setting: DiT checkpoints (DiT-S/B/XL) and the class conditioning they take (ImageNet's, or
any other number of classes a DiT was trained on)."""

from __future__ import annotations

import folder_paths
import torch
from comfy_api.latest import io
from torchvision.models import ResNet50_Weights

from ..tstitch_core.dit import NULL_CLASS, check_class_index
from ._dit import dit_cfg_function, dit_class_rows, dit_sigmas, load_dit
from ._schema import schema

WEIGHT_DTYPES = {"default": None, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# which latent channels classifier-free guidance acts on: DiT's own samplers guide three of the four
CFG_CHANNELS = ["first 3 (DiT)", "all 4"]


def imagenet_class_names() -> list[str]:
    """ImageNet-1k's classes in index order, as torchvision (which ComfyUI installs) lists them."""
    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def class_options() -> list[str]:
    return [f"{index} {name}" for index, name in enumerate(imagenet_class_names())]


def class_conditioning(index: int, rows: int = NULL_CLASS + 1) -> list:
    """A CONDITIONING whose one row weighs one class: the DiT's class embedding reads it."""
    weights = torch.zeros(1, 1, rows)
    weights[0, 0, index] = 1.0
    return [[weights, {}]]


class TStitchDiTLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            subcategory="DiT",
            node_id="TStitchDiTLoader",
            display_name="Load DiT Checkpoint (T-Stitch)",
            search_aliases=["dit", "DiT-XL", "DiT-S", "imagenet", "class conditional", "t-stitch", "loader"],
            description=(
                "Loads a class-conditional DiT in its original format (DiT-XL-2-256x256.pt, T-Stitch's dit_s_256.pt, "
                "dit_b_256.pt, dit_xl_256.pt; .pt or .safetensors) from models/diffusion_models. Size, patch and "
                "resolution are read from the weights."),
            inputs=[
                io.Combo.Input("dit_name", options=folder_paths.get_filename_list("diffusion_models"),
                               tooltip="A DiT checkpoint in models/diffusion_models."),
                io.Combo.Input("weight_dtype", options=list(WEIGHT_DTYPES), default="default", tooltip=(
                    "default: what ComfyUI's model management picks for this device (fp16 on most GPUs).")),
                io.Combo.Input("cfg_channels", options=CFG_CHANNELS, default=CFG_CHANNELS[0], optional=True, tooltip=(
                    "first 3 (DiT): classifier-free guidance on latent channels 1 to 3, the 4th left as the class "
                    "predicts it, as DiT's and T-Stitch's own samplers guide. all 4: ComfyUI's usual guidance.")),
            ],
            outputs=[io.Model.Output(tooltip="The DiT, on SD's VAE latents (4 channels, 1/8 size) with "
                                             "the linear 1000-step beta schedule it was trained on.")],
        )

    @classmethod
    def execute(cls, dit_name, weight_dtype="default", cfg_channels=CFG_CHANNELS[0]) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("diffusion_models", dit_name)
        model = load_dit(path, WEIGHT_DTYPES[weight_dtype])
        if cfg_channels == CFG_CHANNELS[0]:
            model.set_model_sampler_cfg_function(dit_cfg_function)
        return io.NodeOutput(model)


class TStitchDiTScheduler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            subcategory="DiT",
            node_id="TStitchDiTScheduler",
            display_name="DiT Scheduler (T-Stitch)",
            search_aliases=["dit", "timesteps", "respacing", "ddim", "scheduler", "sigmas", "t-stitch"],
            description=(
                "The timesteps DiT's and T-Stitch's own samplers take (100 steps: t = 999, 989, ..., 10, 0), "
                "as SIGMAS for SamplerCustom or SamplerCustomAdvanced. With the ddim sampler and the DiT loader's "
                "3-channel guidance this is their DDIM sampling."),
            inputs=[
                io.Model.Input("model", tooltip="The DiT (or a pair of DiTs): its 1000-step table gives the sigmas."),
                io.Int.Input("steps", default=100, min=1, max=1000, tooltip=(
                    "Sampling steps; t runs from 999 down to 0 in steps - 1 even strides, each rounded.")),
            ],
            outputs=[io.Sigmas.Output(tooltip="steps + 1 sigmas, the last 0.")],
        )

    @classmethod
    def execute(cls, model, steps) -> io.NodeOutput:
        return io.NodeOutput(dit_sigmas(model.get_model_object("model_sampling"), steps))


class TStitchImageNetClass(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            subcategory="DiT",
            node_id="TStitchImageNetClass",
            display_name="ImageNet Class (T-Stitch)",
            search_aliases=["imagenet", "class label", "dit", "class conditioning", "t-stitch"],
            description=(
                "The conditioning a class-conditional DiT takes: positive is the chosen ImageNet class, negative "
                "the null class, so KSampler's cfg is DiT's classifier-free guidance (the DiT paper samples "
                "with 1.5 for FID and 4.0 for pictures)."),
            inputs=[io.Combo.Input("class_name", options=class_options(), default="207 golden retriever",
                                   tooltip="An ImageNet-1k class, by index and name: type to search.")],
            outputs=[io.Conditioning.Output(display_name="positive", tooltip="The class."),
                     io.Conditioning.Output(display_name="negative", tooltip="The null class, for guidance.")],
        )

    @classmethod
    def execute(cls, class_name) -> io.NodeOutput:
        index = int(class_name.split(" ", 1)[0])
        return io.NodeOutput(class_conditioning(index), class_conditioning(NULL_CLASS))


class TStitchClassIndex(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            subcategory="DiT",
            node_id="TStitchClassIndex",
            display_name="Class Index (T-Stitch)",
            search_aliases=["class index", "class label", "dit", "class conditioning", "digits", "t-stitch"],
            description=(
                "The conditioning for a class-conditional DiT with classes of its own (trained on your data, not "
                "ImageNet): positive is the class at class_index, negative the null class. The number of classes "
                "is read from the connected model."),
            inputs=[
                io.Model.Input("model", tooltip=(
                    "The DiT (or a pair of DiTs) the conditioning is for: its class table says how many classes "
                    "there are. Only read, never changed.")),
                io.Int.Input("class_index", default=0, min=0, max=1_000_000, tooltip=(
                    "The class, counted from 0 in the order the model was trained with.")),
            ],
            outputs=[io.Conditioning.Output(display_name="positive", tooltip="The class."),
                     io.Conditioning.Output(display_name="negative", tooltip="The null class, for guidance.")],
        )

    @classmethod
    def execute(cls, model, class_index) -> io.NodeOutput:
        rows = dit_class_rows(model)
        if rows is None:
            raise ValueError(
                f"Class Index (T-Stitch): the connected model is {type(model.model).__name__}, not a DiT loaded by "
                "Load DiT Checkpoint (T-Stitch), so it has no class table to index. Connect the DiT (or its pair).")
        index = check_class_index(class_index, rows, "Class Index (T-Stitch)")
        return io.NodeOutput(class_conditioning(index, rows), class_conditioning(rows - 1, rows))
