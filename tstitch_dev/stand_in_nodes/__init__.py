"""Test-only ComfyUI nodes, NOT part of the pack: the test server loads this folder as a custom-node package of
its own, beside the pack, so that the examples whose text encoders are too big to build can run there, and so
that the soak (tests/test_soak.py) can read the server's figures from inside its process (``StandInSoakStats``).

Their text encoders (UMT5-XXL and T5-XXL at 4.7-5.7B parameters, CLIP-G, Mistral Small 3, Qwen3 4B; output
widths fixed in ComfyUI) cannot be built at test time. ``use_stand_in_text_encoders`` rewrites an API prompt so
that each CLIPTextEncode fed by one of those loaders becomes the stand-in for that loader's output with the same
text (the loader is dropped): a CONDITIONING of the encoder's shape (token width, pooled width, attention mask),
seeded from the text. Everything else in the graph runs as the example has it.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

NODE_ID = "StandInUMT5TextEncode"


@dataclass(frozen=True)
class StandIn:
    encoder: str  # what it stands in for
    width: int  # of each token
    pooled: int | None = None  # width of the pooled output, where the family takes one
    attention_mask: bool = False  # LTX-Video's T5 gives its (integer) mask with the tokens


# one node per output the examples need, by node id
STAND_INS = {
    NODE_ID: StandIn("UMT5-XXL (Wan)", 4096),
    "StandInFluxTextEncode": StandIn("CLIP-L + T5-XXL (Flux.1)", 4096, pooled=768),
    "StandInSD3TextEncode": StandIn("CLIP-L + CLIP-G + T5-XXL (SD3.5)", 4096, pooled=2048),
    "StandInLTXVTextEncode": StandIn("T5-XXL (LTX-Video)", 4096, attention_mask=True),
    "StandInMistralFlux2TextEncode": StandIn("Mistral Small 3 (Flux.2 dev)", 15360),
    "StandInQwen3_4BFlux2TextEncode": StandIn("Qwen3 4B (Flux.2 klein 4B)", 7680),
}


def _node_class(node_id: str, stand_in: StandIn):
    def encode(self, text):
        import torch

        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        generator = torch.Generator().manual_seed(seed)
        tokens = len(text.split()) + 1
        extra = {}
        if stand_in.pooled is not None:
            extra["pooled_output"] = torch.randn(1, stand_in.pooled, generator=generator)
        if stand_in.attention_mask:
            extra["attention_mask"] = torch.ones(1, tokens, dtype=torch.long)
        return ([[torch.randn(1, tokens, stand_in.width, generator=generator), extra]],)

    return type(node_id, (), {
        "__doc__": f"A seeded random CONDITIONING of {stand_in.encoder}'s shape: 1 x (one token per word, and the end "
                   f"token) x {stand_in.width}.",
        "CATEGORY": "testing", "FUNCTION": "encode", "RETURN_TYPES": ("CONDITIONING",),
        "DESCRIPTION": f"Test stand-in for the {stand_in.encoder} text encoder: random numbers of its shape, seeded by "
                       f"the text.",
        "INPUT_TYPES": classmethod(lambda cls: {"required": {"text": ("STRING", {"multiline": True})}}),
        "encode": encode,
    })


NODE_CLASS_MAPPINGS = {node_id: _node_class(node_id, stand_in) for node_id, stand_in in STAND_INS.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: f"Stand-in {stand_in.encoder} Text Encode (tests only)"
                              for node_id, stand_in in STAND_INS.items()}
StandInUMT5TextEncode = NODE_CLASS_MAPPINGS[NODE_ID]


def stand_in_for(node: dict) -> str | None:
    """The stand-in node id for the text encoder loader ``node`` (API format), None where it is not one of those."""
    inputs, kind = node["inputs"], node["class_type"]
    if kind == "CLIPLoader" and inputs.get("type") == "flux2":
        return {"mistral": "StandInMistralFlux2TextEncode", "qwen_3_4b": "StandInQwen3_4BFlux2TextEncode"}.get(
            next((word for word in ("mistral", "qwen_3_4b") if word in str(inputs.get("clip_name"))), None))
    if kind == "CLIPLoader":
        return {"wan": NODE_ID, "ltxv": "StandInLTXVTextEncode"}.get(inputs.get("type"))
    if kind == "DualCLIPLoader" and inputs.get("type") == "flux":
        return "StandInFluxTextEncode"
    if kind == "TripleCLIPLoader" or (kind == "CheckpointLoaderSimple"
                                      and str(inputs.get("ckpt_name")).startswith("sd3.5_")):
        return "StandInSD3TextEncode"  # an SD3.5 checkpoint's own CLIP is these three
    return None


def _clip_output(node: dict) -> int:
    return 1 if node["class_type"] == "CheckpointLoaderSimple" else 0


def use_stand_in_text_encoders(api: dict) -> dict:
    """A copy of API prompt ``api`` whose text encoders fed by a loader of an encoder too big to build are that
    encoder's stand-in, the text encoder loaders gone (a checkpoint loader stays for its model and VAE)."""
    api = copy.deepcopy(api)
    loaders = {key: stand_in for key, node in api.items() if (stand_in := stand_in_for(node))}
    clips = {key: [key, _clip_output(api[key])] for key in loaders}
    for key, node in api.items():
        clip = node["inputs"].get("clip")
        if node["class_type"] == "CLIPTextEncode" and isinstance(clip, list) and clip[0] in loaders \
                and clip == clips[clip[0]]:
            api[key] = {"class_type": loaders[clip[0]], "inputs": {"text": node["inputs"]["text"]},
                        "_meta": node.get("_meta", {})}
    for key, clip in clips.items():
        if any(value == clip for node in api.values() for value in node["inputs"].values()):
            raise ValueError(f"the text encoder of {key} feeds a node other than CLIPTextEncode")
        if api[key]["class_type"] != "CheckpointLoaderSimple":
            del api[key]
    return api


SOAK_STATS_ID = "StandInSoakStats"


class StandInSoakStats:
    """TEST-ONLY, not part of the pack: what the soak (tests/test_soak.py) reads from inside the server process, as
    UI text (a JSON object) in the prompt's /history outputs: ``runs``, the entries of the pack's run registry
    (``_RUNS`` of its nodes/_run.py); ``run_modules``, how many such modules were found (1, or the count means
    nothing); ``loaded_models``, ComfyUI's ``current_loaded_models``; ``rss``, this process's resident bytes."""

    CATEGORY = "testing"
    FUNCTION = "report"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    DESCRIPTION = "Test-only: the T-Stitch run registry, ComfyUI's loaded models and the server's RSS, as text."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, tag):
        return float("nan")  # never equal to itself: the figures are read afresh every time, never from the cache

    def report(self, tag):
        import gc
        import json
        import sys

        import psutil
        from comfy import model_management

        gc.collect()  # garbage not yet collected is not a leak: a steadier RSS
        registries = [module._RUNS for name, module in list(sys.modules.items())
                      if name.endswith("nodes._run") and isinstance(getattr(module, "_RUNS", None), dict)]
        figures = {"tag": tag, "runs": sum(len(r) for r in registries), "run_modules": len(registries),
                   "loaded_models": len(model_management.current_loaded_models),
                   "rss": psutil.Process().memory_info().rss}
        return {"ui": {"text": [json.dumps(figures)]}}


NODE_CLASS_MAPPINGS[SOAK_STATS_ID] = StandInSoakStats
NODE_DISPLAY_NAME_MAPPINGS[SOAK_STATS_ID] = "Soak Stats (tests only)"  # no "T-Stitch": the node search tests
