"""The subgraph blueprints in subgraphs/: served by the real server at /global_subgraphs, inserted from the node
search into a graph in the real frontend, and sampling exactly as the example workflow each one packs up."""

import json
import time
import urllib.parse

import pytest

from tstitch_dev.blueprints import BLUEPRINTS, BLUEPRINTS_DIR, CATEGORY
from tstitch_dev.examples import Example, build_in_frontend, example_path
from tstitch_dev.stand_in_nodes import use_stand_in_text_encoders

pytestmark = pytest.mark.latest_host_only
CPU_SIZE, CPU_STEPS, CPU_FRAMES = 64, 4, 5  # as tests/test_server.py runs the examples
PACK = "custom_nodes.comfyui-tstitch"


def committed(blueprint):
    return json.loads((BLUEPRINTS_DIR / f"{blueprint.name}.json").read_text())


def test_subgraphs_holds_exactly_the_blueprints_the_generator_makes():
    assert sorted(path.name for path in BLUEPRINTS_DIR.iterdir()) == sorted(f"{b.name}.json" for b in BLUEPRINTS)


@pytest.mark.parametrize("blueprint", BLUEPRINTS, ids=lambda b: b.example)
def test_a_blueprint_is_one_subgraph_node_holding_its_examples_sampling_nodes(blueprint):
    workflow = committed(blueprint)
    (node,) = workflow["nodes"]
    (subgraph,) = workflow["definitions"]["subgraphs"]
    assert node["type"] == subgraph["id"] and node["title"] == subgraph["name"] == blueprint.name
    assert subgraph["category"] == CATEGORY
    assert subgraph["description"] == workflow["extra"]["BlueprintDescription"] == blueprint.description
    # the nodes inside are the example's own, settings and all (node ids are the builder's: spec order, from 1)
    example = blueprint.equivalent()
    exported = {n["id"]: n for n in json.loads(example_path(example.name).read_text())["nodes"]}
    inside = [exported[[n.key for n in example.nodes].index(key) + 1] for key in blueprint.inside]
    assert sorted((n["type"], json.dumps(n.get("widgets_values") or None)) for n in subgraph["nodes"]) == \
           sorted((n["type"], json.dumps(n.get("widgets_values") or None)) for n in inside)
    assert {i["name"] for i in subgraph["inputs"]} >= {name for _, _, name in blueprint.inputs}
    assert [o["type"] for o in subgraph["outputs"]] == ["LATENT"]


def test_the_server_lists_the_blueprints_under_the_pack_and_serves_each_files_data(server):
    listed = {key: entry for key, entry in server.get("/global_subgraphs").items()
              if entry["info"]["node_pack"] == PACK}
    assert sorted(entry["name"] for entry in listed.values()) == sorted(b.name for b in BLUEPRINTS)
    assert all(entry["source"] == "custom_node" and "data" not in entry for entry in listed.values())
    for key, entry in listed.items():
        served = server.get(f"/global_subgraphs/{key}")
        blueprint = next(b for b in BLUEPRINTS if b.name == entry["name"])
        assert served["data"] == (BLUEPRINTS_DIR / f"{blueprint.name}.json").read_text()


@pytest.fixture(scope="module")
def browser():
    from tstitch_dev.browser import launch_browser

    with launch_browser() as launched:
        yield launched


def insert_from_node_search(page, name):
    """Add the node the search box offers as ``name`` (a blueprint's search entry adds it as the node library
    does: addNodeOnGraph); returns the index of the new node in the graph and the lines its search entry shows."""
    # the view moved off the graph built so far: the double-click must land on empty canvas
    page.evaluate("() => { window.app.canvas.ds.offset = [5000, 5000]; window.app.canvas.setDirty(true, true); }")
    search = page.get_by_placeholder("Add a node...")
    for _ in range(3):  # the first double-click on a page just loaded can land before the canvas takes input
        page.mouse.dblclick(700, 700)
        if search.is_visible() or (page.wait_for_timeout(1000) or search.is_visible()):
            break
    search.fill(name)
    page.get_by_role("option", name=name).first.wait_for()
    # the entry named ``name`` itself (one published under a longer name may rank first)
    option = next(o for o in page.get_by_role("option").all() if o.inner_text().split("\n")[0] == name)
    shown = option.inner_text().split("\n")
    option.click()
    page.wait_for_timeout(500)
    return page.evaluate("() => window.app.graph.nodes.length") - 1, shown


_WIRE_JS = """({blueprint, inputs, outputs}) => {
  const nodes = window.app.graph.nodes, node = nodes[blueprint];
  for (const [from, output, input] of inputs) {
    const slot = node.findInputSlot(input);
    if (slot < 0 || !nodes[from].connect(output, node, slot)) throw new Error(`cannot link ${from} to ${input}`);
  }
  for (const [output, to, input] of outputs) {
    if (!node.connect(output, nodes[to], nodes[to].findInputSlot(input))) throw new Error(`cannot link to ${to}`);
  }
}"""


def build_with_blueprint(page, blueprint):
    """The blueprint's example with the blueprint inserted from the node search in place of the nodes it holds,
    wired as the example is; returns the prompt the frontend queues for it (graphToPrompt)."""
    example = blueprint.equivalent()
    outside = [node for node in example.nodes if node.key not in blueprint.inside]
    build_in_frontend(page, Example(example.name, outside, [link for link in example.links
                                                            if not {link[0], link[2]} & set(blueprint.inside)]))
    index, shown = insert_from_node_search(page, blueprint.name)
    assert shown == [blueprint.name, "Blueprint", f"Subgraph Blueprints / {CATEGORY}", blueprint.description]
    keys = [node.key for node in outside]
    page.evaluate(_WIRE_JS, {"blueprint": index,
                             "inputs": [[keys.index(key), output, name] for key, output, name in blueprint.inputs],
                             "outputs": [[output, keys.index(key), name] for output, key, name in blueprint.outputs]})
    return page.evaluate("async () => (await window.app.graphToPrompt()).output")


def for_cpu(api):
    """At test_server.py's CPU size (64 pixels, 5 frames, 4 steps), Wan's text encoder the seeded stand-in."""
    api = use_stand_in_text_encoders(api)
    for node in api.values():
        inputs = node["inputs"]
        if node["class_type"] in ("EmptyLatentImage", "EmptyHunyuanLatentVideo"):
            inputs["width"] = inputs["height"] = CPU_SIZE
        if node["class_type"] == "EmptyHunyuanLatentVideo":
            inputs["length"] = CPU_FRAMES
        if node["class_type"] == "KSampler":
            inputs["steps"] = CPU_STEPS
    return api


def shape(api):
    """The prompt's nodes as (class, inputs) with each link replaced by what it comes from, ids and titles gone."""
    def of(key):
        node = api[key]
        return (node["class_type"], tuple(sorted((name, of(value[0]) + (value[1],) if isinstance(value, list)
                                                  else json.dumps(value)) for name, value in node["inputs"].items())))

    return sorted(map(of, api), key=repr)


def empty_cache(server):
    """Empty ComfyUI's node cache, so that every node of the next prompt runs."""
    # the queue's worker reads the flag after each prompt it runs, before it takes the next: a small prompt
    # (of nodes the tests' graphs have not) makes sure the cache is empty when the next one starts
    server.post("/free", {"free_memory": True})
    server.run({"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 16, "height": 16, "batch_size": 1}},
                "2": {"class_type": "SaveLatent", "inputs": {"samples": ["1", 0], "filename_prefix": "flush"}}})


def assert_ran_whole(server, entry):
    assert entry["status"]["status_str"] == "success", (entry["status"], server.log_tail())
    cached = [data["nodes"] for kind, data in entry["status"]["messages"] if kind == "execution_cached"]
    assert cached == [[]], cached


def run_uncached(server, api):
    empty_cache(server)
    entry = server.run(api)
    assert_ran_whole(server, entry)
    return entry


def pixels(path):
    """Size and pixels of every frame (a Wan video is an animated WEBP; its metadata, the prompt, differs)."""
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return image.size, [frame.convert("RGB").tobytes() for frame in ImageSequence.Iterator(image)]


@pytest.mark.parametrize("blueprint", BLUEPRINTS, ids=lambda b: b.example)
def test_a_blueprint_from_the_node_search_samples_exactly_as_its_example(blueprint, browser, server):
    from comfy_cli.workflow_to_api import convert_ui_to_api
    from tstitch_dev.browser import open_page

    page = open_page(browser, server, width=1400, height=900)
    try:
        page.evaluate("() => window.app.graph.clear()")
        in_page = build_with_blueprint(page, blueprint)
        subgraph_nodes = page.evaluate("() => window.app.graph.nodes.filter((n) => n.isSubgraphNode?.())"
                                       ".map((n) => [n.title, n.subgraph.name])")
        assert subgraph_nodes == [[blueprint.name, blueprint.name]]
        assert page.evaluate("() => window.app.graph.nodes.filter((n) => n.has_errors).map((n) => n.type)") == []
    finally:
        page.close()
    example = json.loads(example_path(blueprint.example).read_text())
    expected = convert_ui_to_api(example, server.object_info())
    # the graph the frontend queues is the example's, node for node
    assert shape(in_page) == shape(expected)

    with_blueprint = run_uncached(server, for_cpu(in_page))
    as_example = run_uncached(server, for_cpu(expected))
    (image,) = server.output_images(with_blueprint)
    (reference,) = server.output_images(as_example)
    assert image != reference and pixels(image) == pixels(reference)
    size, frames = pixels(image)
    assert size == (CPU_SIZE, CPU_SIZE) and len(frames) == (CPU_FRAMES if "wan" in blueprint.example else 1)
    assert len(set(frames[-1])) > 10  # an image, not a blank


def same_but_ids(workflow, name):
    """``workflow`` as text with ``name`` and each UUID (new at every conversion) replaced by its first place."""
    import re

    text = json.dumps(workflow).replace(json.dumps(name)[1:-1], "<name>")
    ids = {}
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                  lambda match: f"<id {ids.setdefault(match[0], len(ids))}>", text)


@pytest.mark.parametrize("blueprint", BLUEPRINTS, ids=lambda b: b.example)
def test_committed_blueprint_is_what_the_frontend_publishes_for_it(blueprint, browser, server):
    from tstitch_dev.blueprints import publish_in_frontend
    from tstitch_dev.browser import open_page

    # under a name of its own: publishing over a blueprint the server lists asks the user first
    name = f"{blueprint.name} (republished)"
    page = open_page(browser, server, width=1400, height=900)
    try:
        published = publish_in_frontend(page, server, blueprint, name)
    finally:
        page.close()
        # gone again from the user's blueprints, which every page opened after would list (and search)
        server.request("DELETE", "/api/userdata/" + urllib.parse.quote(f"subgraphs/{name}.json", safe=""))
    assert same_but_ids(published, name) == same_but_ids(committed(blueprint), blueprint.name)
    assert f"{name}.json" not in server.get("/api/userdata?dir=subgraphs")


# the CPU size set in the page as a user would: the latent's widgets, and the steps inside the blueprint
_CPU_WIDGETS_JS = """([size, steps]) => {
  for (const node of window.app.graph.nodes) {
    for (const widget of node.type === 'EmptyLatentImage' ? node.widgets : []) {
      if (['width', 'height'].includes(widget.name)) widget.value = size;
    }
    for (const inner of (node.subgraph?.nodes ?? []).filter((n) => n.type === 'KSampler')) {
      inner.widgets.find((w) => w.name === 'steps').value = steps;
    }
  }
}"""


# Wan's text encoder can't be built: the page can't queue its graph as it is (the test above runs it stood in)
@pytest.mark.parametrize("blueprint", [b for b in BLUEPRINTS if not b.example.startswith("wan")],
                         ids=lambda b: b.example)
def test_a_blueprint_queued_from_the_page_samples_exactly_as_its_example(blueprint, browser, server):
    from comfy_cli.workflow_to_api import convert_ui_to_api
    from tstitch_dev.browser import open_page

    example = json.loads(example_path(blueprint.example).read_text())
    as_example = run_uncached(server, for_cpu(convert_ui_to_api(example, server.object_info())))
    page = open_page(browser, server, width=1400, height=900)
    try:
        page.evaluate("() => window.app.graph.clear()")
        build_with_blueprint(page, blueprint)
        page.evaluate(_CPU_WIDGETS_JS, [CPU_SIZE, CPU_STEPS])
        empty_cache(server)
        before = set(server.get("/history"))
        assert page.evaluate("async () => await window.app.queuePrompt(0, 1)") is not False
        deadline = time.monotonic() + 300
        while not (queued := set(server.get("/history")) - before) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        page.close()
    (prompt_id,) = queued
    with_blueprint = server.wait(prompt_id)
    assert_ran_whole(server, with_blueprint)
    (image,), (reference,) = server.output_images(with_blueprint), server.output_images(as_example)
    assert pixels(image) == pixels(reference) and pixels(image)[0] == (CPU_SIZE, CPU_SIZE)
