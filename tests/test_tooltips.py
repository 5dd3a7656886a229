"""Tooltips and descriptions a glance long: the full story is the node's help page (web/docs/<node>/)."""

import json

import pytest

from tstitch_dev.comfy_env import PACK_NODE_IDS
from tstitch_dev.docs import LOCALES

GLANCE = 250  # characters: about three lines of a tooltip


def schema_texts(node_class) -> dict[str, str]:
    """{"description" | "input <id>" | "output <n>": text} of one node's schema, as ComfyUI builds it."""
    schema = node_class.define_schema()
    texts = {"description": schema.description or ""}
    texts.update({f"input {item.id}": item.tooltip or "" for item in schema.inputs})
    texts.update({f"output {index} ({item.display_name or item.get_io_type()})": item.tooltip or ""
                  for index, item in enumerate(schema.outputs)})
    return texts


def offenders(texts: dict[str, dict[str, str]]) -> list[str]:
    return [f"{node_id} {where}: {'empty' if not text.strip() else f'{len(text)} characters'}"
            for node_id, by_place in texts.items() for where, text in by_place.items()
            if not text.strip() or len(text) > GLANCE]


def test_every_tooltip_and_description_is_a_glance_long(comfy_nodes):
    texts = {node_id: schema_texts(comfy_nodes.NODE_CLASS_MAPPINGS[node_id]) for node_id in PACK_NODE_IDS}
    assert sum(map(len, texts.values())) > 3 * len(PACK_NODE_IDS)  # the schemas were read, inputs and all
    found = offenders(texts)
    assert not found, f"over {GLANCE} characters or empty (move the detail to the help page):\n" + "\n".join(found)


@pytest.mark.parametrize("language", sorted(path.name for path in LOCALES.iterdir() if path.name != "en"))
def test_every_translated_tooltip_and_description_is_a_glance_long(language):
    nodes = json.loads((LOCALES / language / "main.json").read_text(encoding="utf-8"))["nodeDefs"]
    texts = {node_id: {"description": entry["description"],
                       **{f"input {name}": item["tooltip"] for name, item in entry["inputs"].items()},
                       **{f"output {index}": item["tooltip"] for index, item in entry["outputs"].items()}}
             for node_id, entry in nodes.items()}
    found = offenders(texts)
    assert not found, f"{language}: over {GLANCE} characters or empty:\n" + "\n".join(found)
