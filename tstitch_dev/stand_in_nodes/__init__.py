"""Test-only ComfyUI nodes, NOT part of the pack: the test server loads this folder as a custom-node package of
its own, beside the pack, so that the Wan examples can run there, and so that the soak (tests/test_soak.py) can
read the server's figures from inside its process (``TStitchSoakStats``).

The Wan examples' text encoder, UMT5-XXL (5.7B parameters, its 4096-wide output fixed in ComfyUI), is too big to
build at test time. ``use_stand_in_text_encoders`` rewrites an API prompt so that each CLIPTextEncode fed by a Wan
CLIPLoader becomes ``StandInUMT5TextEncode`` with the same text (the loader is dropped): a CONDITIONING of
UMT5's shape, seeded from the text. Everything else in the graph runs as the example has it.
"""

from __future__ import annotations

import copy
import hashlib

NODE_ID = "StandInUMT5TextEncode"


class StandInUMT5TextEncode:
    """A seeded random CONDITIONING of UMT5-XXL's shape: 1 x (one token per word, and the end token) x 4096."""

    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)
    DESCRIPTION = "Test stand-in for a UMT5-XXL text encoder: random numbers of its shape, seeded by the text."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True})}}

    def encode(self, text):
        import torch

        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        generator = torch.Generator().manual_seed(seed)
        tokens = len(text.split()) + 1
        return ([[torch.randn(1, tokens, 4096, generator=generator), {}]],)


NODE_CLASS_MAPPINGS = {NODE_ID: StandInUMT5TextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {NODE_ID: "Stand-in UMT5 Text Encode (tests only)"}


def use_stand_in_text_encoders(api: dict) -> dict:
    """A copy of API prompt ``api`` whose text encoders fed by a Wan CLIPLoader are the stand-in, the loaders gone."""
    api = copy.deepcopy(api)
    loaders = {key for key, node in api.items()
               if node["class_type"] == "CLIPLoader" and node["inputs"].get("type") == "wan"}
    for key, node in api.items():
        clip = node["inputs"].get("clip")
        if node["class_type"] == "CLIPTextEncode" and isinstance(clip, list) and clip[0] in loaders:
            api[key] = {"class_type": NODE_ID, "inputs": {"text": node["inputs"]["text"]},
                        "_meta": node.get("_meta", {})}
    for key in loaders:
        if any(isinstance(value, list) and value[:1] == [key] for node in api.values()
               for value in node["inputs"].values()):
            raise ValueError(f"the Wan CLIPLoader {key} feeds a node other than CLIPTextEncode")
        del api[key]
    return api


SOAK_STATS_ID = "TStitchSoakStats"


class TStitchSoakStats:
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


NODE_CLASS_MAPPINGS[SOAK_STATS_ID] = TStitchSoakStats
NODE_DISPLAY_NAME_MAPPINGS[SOAK_STATS_ID] = "T-Stitch Soak Stats (tests only)"
