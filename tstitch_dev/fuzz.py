"""Fuzzing the pack through a real server: API prompts that put odd values into every input of every node the
pack registers (read from /object_info, so new nodes are covered), and what an answer to each must look like.

A case is one node of the pack in a small graph that would otherwise run (the SD1.5 test pair at 32x32, 2 steps),
with one input replaced: odd and huge strings, numbers at and past the limits, NaN and inf, wrong types, missing
and broken links. ``cases(object_info, seed, per_input)`` makes them; ``judge`` says what is wrong with an answer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

PACK_MODULE = "custom_nodes.comfyui-tstitch"
SMALL_CKPT, LARGE_CKPT = "bk-sdm-tiny.safetensors", "sd-v1-4.ckpt"
FUZZED = "100"  # the node under test; the suppliers have ids below it
# Python's error types whose bare text tells a user nothing about what to change
BARE_ERRORS = ("KeyError", "IndexError", "ZeroDivisionError", "TypeError", "AttributeError", "OverflowError",
               "UnboundLocalError", "NameError", "RecursionError")
SMALL_WIDGETS = {"steps": 2, "repeats": 1}  # keep a case's run short; fuzzing still reaches them


def supplier_graph() -> dict:
    """The nodes every case links its inputs to: two SD1.5-shaped checkpoints, their pair, prompts, a latent,
    sigmas and a guider of the pair."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SMALL_CKPT}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": LARGE_CKPT}},
        "3": {"class_type": "TStitchModelPair", "inputs": {"small_model": ["1", 0], "large_model": ["2", 0],
                                                           "small_fraction": 0.5, "switch_by": "steps"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "a red cube"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 1], "text": "blurry"}},
        "6": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "7": {"class_type": "BasicScheduler", "inputs": {"model": ["3", 0], "scheduler": "normal", "steps": 2,
                                                         "denoise": 1.0}},
        "8": {"class_type": "CFGGuider", "inputs": {"model": ["3", 0], "positive": ["4", 0], "negative": ["5", 0],
                                                    "cfg": 5.0}},
    }


def supply(name: str, kind: str):
    """The link a supplier gives an input of type ``kind`` named ``name``, or None where none is kept."""
    if kind == "MODEL":
        if name == "model":
            return ["3", 0]  # the nodes that take one stitched model
        return ["1", 0] if "small" in name or name == "model_2" else ["2", 0]
    return {"VAE": ["2", 2], "CLIP": ["2", 1], "LATENT": ["6", 0], "SIGMAS": ["7", 0], "GUIDER": ["8", 0],
            "CONDITIONING": ["5", 0] if "negative" in name else ["4", 0]}.get(kind)


def pack_nodes(object_info: dict) -> dict:
    return {name: info for name, info in object_info.items() if info.get("python_module") == PACK_MODULE}


def baseline(node_type: str, info: dict) -> dict:
    """A graph that runs ``node_type`` with its defaults, linked to the suppliers, and an output for it."""
    inputs = {}
    for name, spec in info["input"].get("required", {}).items():
        value = widget_default(name, spec) if not is_link(spec) else supply(name, spec[0])
        if value is not None:
            inputs[name] = value
    if "model" in info["input"].get("optional", {}):  # the preview takes a model or a guider: the model
        inputs["model"] = supply("model", "MODEL")
    graph = supplier_graph()
    graph[FUZZED] = {"class_type": node_type, "inputs": inputs}
    if not info.get("output_node") and info.get("output"):
        graph["101"] = {"class_type": "PreviewAny", "inputs": {"source": [FUZZED, 0]}}
    return graph


def is_link(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, str) and kind not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def widget_default(name: str, spec):
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if name in SMALL_WIDGETS:
        return SMALL_WIDGETS[name]
    if isinstance(kind, list) or kind == "COMBO":
        choices = kind if isinstance(kind, list) else options.get("options", [])
        return options.get("default", choices[0] if choices else "")
    return options.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind])


@dataclass(frozen=True)
class Value:
    kind: str  # what makes it odd: "nan", "past max", "huge string", "missing link", ...
    value: object = None
    missing: bool = False  # the input is left out
    valid: bool = False  # within the schema: a run may succeed (and may take long, but Cancel must reach it)


def odd_values(name: str, spec, huge: int = 1_000_000) -> list[Value]:
    """Odd values for one input, by its type and limits."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    common = [Value("missing", missing=True), Value("null", None), Value("list", [1, 2]), Value("object", {"a": 1})]
    if is_link(spec):
        return common + [Value("link to no node", ["999", 0]), Value("link past the outputs", ["2", 9]),
                         Value("link of the wrong type", ["6", 0] if kind != "LATENT" else ["7", 0]),
                         Value("number for a link", 3), Value("string for a link", "MODEL")]
    if kind in ("INT", "FLOAT"):
        low, high = options.get("min", -2 ** 63), options.get("max", 2 ** 64)
        values = [Value("at min", low, valid=True), Value("at max", high, valid=True),
                  Value("below min", low - 1), Value("past max", high + 1), Value("huge", 10 ** 400),
                  Value("-huge", -10 ** 400), Value("nan", math.nan), Value("inf", math.inf),
                  Value("-inf", -math.inf), Value("string", "ten"),
                  # ComfyUI converts these to valid values (int("10000"), int(True)) before a node sees them
                  Value("numeric string", str(high), valid=True), Value("bool", True, valid=low <= 1 <= high)]
        if kind == "FLOAT":
            values += [Value("tiny", 5e-324, valid=low <= 5e-324 <= high), Value("huge float", 1e308)]
        return common + values
    if kind == "BOOLEAN":  # ComfyUI's bool() makes any value valid
        return [Value("missing", missing=True), *(Value(v.kind, v.value, valid=True) for v in common[1:]),
                Value("string", "no", valid=True), Value("number", 7, valid=True)]
    if isinstance(kind, list) or kind == "COMBO":
        return common + [Value("not an option", "no such option"), Value("empty", ""), Value("number", 0),
                         Value("huge string", "x" * huge)]
    return common + [Value("empty", "", valid=True), Value("spaces", "   ", valid=True),
                     Value("huge string", "0.5, " * (huge // 5), valid=True),
                     Value("huge token", "9" * huge, valid=True), Value("commas", ",,,;;", valid=True),
                     Value("nan", "nan", valid=True), Value("inf", "inf, -inf", valid=True),
                     Value("exponent", "1e-5", valid=True), Value("dashes", "-0.5--0.2", valid=True),
                     Value("control characters", "\x00\x1b[31m\u202e\ud800", valid=True),
                     Value("number", 12345, valid=True), Value("float", 0.5, valid=True)]  # str()'d by ComfyUI


@dataclass
class Case:
    node_type: str
    input_name: str
    value: Value
    prompt: dict = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.node_type}.{self.input_name} = {self.value.kind}"


def cases(object_info: dict, seed: int = 0, per_input: int | None = 2) -> list[Case]:
    """``per_input`` odd values (all of them: None) for every input of every node the pack registers, picked with
    ``seed``."""
    rng = random.Random(seed)
    made = []
    for node_type, info in sorted(pack_nodes(object_info).items()):
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for name, spec in specs.items():
            values = odd_values(name, spec)
            if per_input is not None:
                values = rng.sample(values, min(per_input, len(values)))
            for value in values:
                prompt = baseline(node_type, info)
                if value.missing:
                    prompt[FUZZED]["inputs"].pop(name, None)
                else:
                    prompt[FUZZED]["inputs"][name] = value.value
                made.append(Case(node_type, name, value, prompt))
    return made


def bare_error(text: str) -> str | None:
    """The bare Python error type ``text`` is, or shows as its whole message, if any."""
    for name in BARE_ERRORS:
        if text.startswith(name) or f"{name}:" in text:
            return name
    return None


# link values ComfyUI's own validator raises on (prompt[node] KeyError, RETURN_TYPES[slot] IndexError) before any
# node of the pack is asked: the host's answer, a 400 at the node that holds the link, counted apart
HOST_LINK_CHECK = {"list", "link to no node", "link past the outputs"}


def answered_by_host(case: Case, body: dict) -> bool:
    errors = [e for node in body.get("node_errors", {}).values() for e in node.get("errors", [])]
    return case.value.kind in HOST_LINK_CHECK and bool(errors) and all(
        e.get("type") in ("exception_during_validation", "exception_during_inner_validation") for e in errors)


def judge_rejection(case: Case, body: dict) -> list[str]:
    """What is wrong with a 400 answer: it must name the node and the input, with no bare Python error."""
    problems = []
    errors = body.get("node_errors", {}).get(FUZZED, {}).get("errors", [])
    if not errors:
        problems.append(f"no error at the node: {str(body)[:300]}")
    for error in errors:
        where = f"{error.get('details', '')} {error.get('extra_info', {}).get('input_name', '')}"
        if case.input_name not in where:
            problems.append(f"the error does not name {case.input_name}: {str(error)[:300]}")
        for text in (error.get("message", ""), error.get("details", "")):
            if bare_error(str(text)):
                problems.append(f"a bare {bare_error(str(text))}: {str(text)[:300]}")
    return problems


def judge_failure(case: Case, error: dict) -> list[str]:
    """What is wrong with an execution error: at the fuzzed node (or its output), a message a user can act on."""
    problems = []
    message, kind = error.get("exception_message", ""), error.get("exception_type", "")
    if error.get("node_id") not in (FUZZED, "101"):
        problems.append(f"raised at node {error.get('node_id')} ({error.get('node_type')}), not the fuzzed one")
    if kind.split(".")[-1] in BARE_ERRORS or bare_error(message):
        problems.append(f"a bare {kind}: {message[:300]}")
    if "T-Stitch" not in message and case.input_name not in message:
        problems.append(f"the message names neither T-Stitch nor {case.input_name}: {kind}: {message[:300]}")
    if len(message) > 2000:
        problems.append(f"a {len(message)}-character message")
    return problems
