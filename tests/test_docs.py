"""What the frontend shows beside the nodes: translations and help pages, checked against the nodes themselves."""

import json
import re
import urllib.parse

import pytest

from tstitch_dev.comfy_env import PACK_NODE_IDS
from tstitch_dev.docs import HELP_LOCALES, LOCALES, english_locale
from tstitch_dev.examples import EXAMPLES_DIR
from tstitch_dev.host import PACK_ROOT

pytestmark = pytest.mark.latest_host_only  # files against the node schemas, the same on every host: once a run

HELP_DIR = PACK_ROOT / "web" / "docs"
TRANSLATIONS = sorted(path.name for path in LOCALES.iterdir() if path.name != "en")


def keys_of(tree, prefix=""):
    if isinstance(tree, dict):
        return {key for name, value in tree.items() for key in keys_of(value, f"{prefix}{name}.")}
    return {prefix.rstrip(".")}


def test_the_english_locale_is_what_the_node_schemas_say(comfy_nodes):
    written = json.loads((LOCALES / "en" / "main.json").read_text())
    assert written == english_locale(comfy_nodes.NODE_CLASS_MAPPINGS), \
        "locales/en/main.json is stale: run python -m tstitch_dev.docs"


@pytest.mark.parametrize("language", TRANSLATIONS)
def test_a_translation_has_every_string_of_english_and_translates_the_names(language):
    english = json.loads((LOCALES / "en" / "main.json").read_text())
    translated = json.loads((LOCALES / language / "main.json").read_text(encoding="utf-8"))
    assert keys_of(translated) == keys_of(english)
    for node_id, entry in translated["nodeDefs"].items():
        assert entry["display_name"] != english["nodeDefs"][node_id]["display_name"]
        strings = [entry["display_name"], entry["description"]] + [
            text for part in ("inputs", "outputs") for item in entry[part].values() for text in item.values()]
        assert all(isinstance(text, str) and text.strip() for text in strings), node_id


def labels(locale: str) -> dict:
    """{node id: {input id: the label the frontend shows in ``locale``}}."""
    nodes = json.loads((LOCALES / locale / "main.json").read_text(encoding="utf-8"))["nodeDefs"]
    return {node_id: {name: item["name"] for name, item in entry["inputs"].items()} for node_id, entry in nodes.items()}


@pytest.mark.parametrize("locale", HELP_LOCALES)
@pytest.mark.parametrize("node_id", PACK_NODE_IDS)
def test_each_node_has_a_help_page_naming_every_input_with_working_links(node_id, locale, comfy_nodes):
    page = (HELP_DIR / node_id / f"{locale}.md").read_text(encoding="utf-8")
    schema = comfy_nodes.NODE_CLASS_MAPPINGS[node_id].define_schema()
    shown = labels(locale)[node_id]
    for item in schema.inputs:
        # English: **id**; a translation: **its label**（id）, the label as its UI shows it, the id as workflows keep it
        named = f"**{item.id}**" if locale == "en" else f"**{shown[item.id]}**（{item.id}）"
        assert named in page, f"{node_id} {locale}: input {item.id} not described as {named}"
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", page)
    assert images, "the switch rule in one picture"
    for image in images:  # the frontend resolves them against /extensions/<pack>/docs/
        assert (HELP_DIR / image).is_file(), image
    templates = re.findall(r"\(/api/workflow_templates/comfyui-tstitch/([^)]+)\.json\)", page)
    assert templates, "a link to the matching example workflow"
    for name in templates:  # a title, its spaces written %20
        assert (EXAMPLES_DIR / f"{urllib.parse.unquote(name)}.json").is_file(), name


@pytest.mark.parametrize("locale", [locale for locale in HELP_LOCALES if locale != "en"])
def test_a_translated_help_page_names_inputs_and_outputs_as_its_ui_does(locale, comfy_nodes):
    english = json.loads((LOCALES / "en" / "main.json").read_text(encoding="utf-8"))["nodeDefs"]
    # every input id and named output of the pack (MODEL, SIGMAS and the like are type names, the same everywhere)
    names = {name for entry in english.values() for name in entry["inputs"]} | {
        item["name"] for entry in english.values() for item in entry["outputs"].values() if not item["name"].isupper()}
    values = {option for node_id in PACK_NODE_IDS  # a combo's values are not translated: `steps` is switch_by's too
              for item in comfy_nodes.NODE_CLASS_MAPPINGS[node_id].define_schema().inputs
              if item.get_io_type() == "COMBO" for option in item.options}
    english_name = re.compile(r"(?<![\w.-])(" + "|".join(sorted(names - values, key=len, reverse=True)) + r")(?![\w-])",
                              re.ASCII)
    found = []
    for node_id in PACK_NODE_IDS:
        page = (HELP_DIR / node_id / f"{locale}.md").read_text(encoding="utf-8")
        prose = re.sub(r"（`?[a-z0-9_]+`?）", "", page)  # the id after a label, as the inputs list names it
        prose = re.sub(r"\[[^\]]*\]\(/api/workflow_templates/[^)]*\)", "", prose)  # an example's title is its file's
        prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
        found += [f"{node_id}: line {prose.count(chr(10), 0, match.start()) + 1}: {match.group(1)}"
                  for match in english_name.finditer(prose)]
    assert not found, f"{locale} help pages name these by their English ids, not by the {locale} labels:\n" + \
        "\n".join(found)


def test_help_pictures_are_drawn_for_the_side_panels_width_with_legible_text():
    # the node-help side panel shows a picture about 280 pixels wide (frontend 1.49.6): each help picture is drawn
    # HELP_SIZE with the nodes' smallest text (13 pixels) scaled by HELP_SCALE, 11 pixels or more there
    from PIL import Image

    from tstitch_dev.docs import HELP_ASSETS, HELP_PICTURES, HELP_SCALE, HELP_SHOWN_WIDTH, HELP_SIZE

    shown = {name for page in (PACK_ROOT / "web" / "docs").glob("*/*.md")
             for name in re.findall(r"assets/(\w+\.png)", page.read_text(encoding="utf-8"))}
    assert shown - {"digits_demo.png"} == set(HELP_PICTURES)  # the README's digits picture aside, all drawn here
    assert 13 * HELP_SCALE * HELP_SHOWN_WIDTH / HELP_SIZE[0] >= 11
    for name in HELP_PICTURES:
        with Image.open(HELP_ASSETS / name) as picture:
            assert picture.size == HELP_SIZE, name
