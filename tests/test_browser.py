"""What users see: the real ComfyUI frontend in headless Chromium, served by the real server.

Screenshots land in artifacts/browser/ as the proof of each check.
"""

import json
import re
import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tstitch_dev.blueprints import BLUEPRINTS
from tstitch_dev.browser import wait_until_ready
from tstitch_dev.comfy_env import PACK_NODE_IDS
from tstitch_dev.examples import EXAMPLES, example_path
from tstitch_dev.host import PACK_ROOT

pytestmark = pytest.mark.latest_host_only
ARTIFACTS = PACK_ROOT / "artifacts" / "browser"


@pytest.fixture(scope="module")
def browser():
    from tstitch_dev.browser import launch_browser

    with launch_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def page(browser, server):
    from tstitch_dev.browser import open_page

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return open_page(browser, server)


def screenshot(page, name):
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def load_workflow(page, workflow):
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
    page.wait_for_timeout(500)


def open_node_search(page):
    """The node search box, opened by a double-click on the emptied canvas."""
    page.evaluate("() => window.app.graph.clear()")
    search = page.get_by_placeholder("Add a node...")
    if search.is_visible():  # left open, or still closing: a box about to go would be filled in vain
        page.keyboard.press("Escape")
    search.wait_for(state="hidden")
    for _ in range(3):  # the first double-click on a page just loaded can land before the canvas takes input
        page.mouse.dblclick(800, 500)
        if search.is_visible() or (page.wait_for_timeout(1000) or search.is_visible()):
            break
    return search


def search_titles(page, search, query: str) -> list[str]:
    """The titles the node search lists for ``query``, in its order (once T-Stitch Model Pair is among them)."""
    search.fill(query)
    page.get_by_role("option", name="T-Stitch Model Pair").first.wait_for()
    return [option.split("\n")[0] for option in page.get_by_role("option").all_inner_texts()]


def pack_titles(server) -> dict[str, str]:
    """{display name: node id} of the pack's nodes, as the server describes them."""
    return {info["display_name"]: node_id for node_id, info in server.object_info().items()
            if info["python_module"] == "custom_nodes.comfyui-tstitch"}


def test_node_search_lists_every_tstitch_node_and_adds_one(page, server):
    search = open_node_search(page)
    titles = search_titles(page, search, "T-Stitch")
    ours = pack_titles(server)
    blueprints = {blueprint.name for blueprint in BLUEPRINTS}  # the pack's subgraph blueprints are found too
    assert len(ours) == len(PACK_NODE_IDS)
    assert set(titles[:len(ours) + len(blueprints)]) == set(ours) | blueprints  # all ours, ahead of anything else
    screenshot(page, "node_search")
    search.press("Enter")
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.app.graph.nodes.map((n) => n.type)") == [ours[titles[0]]]


# How the frontend (1.49.6, NodeSearchService.searchNode) orders what Fuse found: by how the query meets the node
# id or the display name, whichever meets it better (exact, then prefix, word, substring), then by the usage counts
# it ships (assets/sorted-custom-node-map.json; no custom node is in it), then by where the match starts, then by
# the length of the name matched, shortest first. search_aliases (an array) only decide whether a node is found.
# So "T-Stitch" lists the display names that start with it shortest first, and "tstitch" the ids.
RANKED_BY = {"T-Stitch": lambda title, node_id: title, "tstitch": lambda title, node_id: node_id}


@pytest.mark.parametrize("query", list(RANKED_BY))
def test_node_search_lists_the_packs_nodes_shortest_matched_name_first(query, page, server):
    ours = pack_titles(server)
    titles = [title for title in search_titles(page, open_node_search(page), query) if title in ours]
    matched = [RANKED_BY[query](title, ours[title]) for title in titles]
    matched = [name for name in matched if name.lower().startswith(query.lower())]
    assert len(matched) >= 8 and [len(name) for name in matched] == sorted(map(len, matched)), matched
    page.keyboard.press("Escape")


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "the frontend lists shorter names first (see RANKED_BY): T-Stitch Guider and T-Stitch Stages (15 characters) "
    "and T-Stitch KSampler (17) come before T-Stitch Model Pair (19); for tstitch the ids TStitchGuider, "
    "TStitchStages (13) and TStitchKSampler (15) before TStitchModelPair (16). Only renaming can change it."))
@pytest.mark.parametrize("query", list(RANKED_BY))
def test_node_search_for_the_packs_name_lists_the_model_pair_first(query, page):
    titles = search_titles(page, open_node_search(page), query)
    page.keyboard.press("Escape")
    assert titles[0] == "T-Stitch Model Pair", titles[:5]


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_example_loads_with_no_missing_nodes_and_no_errors(name, page, server):
    assert_loads_clean(page, server, json.loads(example_path(name).read_text()))
    screenshot(page, f"loaded_{name}")


def test_a_workflow_saved_from_an_earlier_example_still_loads(page, server):
    # the Wan Lightning example before T-Stitch Stage Sigmas took a guider: its Stage Sigmas fed by a pair
    saved = PACK_ROOT / "tests" / "saved_workflows" / "wan22_a14b_t2v_lightning_4_4-pair-and-guider.json"
    assert_loads_clean(page, server, json.loads(saved.read_text()))
    in_page = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    (sigmas,) = [node for node in in_page.values() if node["class_type"] == "TStitchStageSigmas"]
    assert in_page[sigmas["inputs"]["model"][0]]["class_type"] == "TStitchModelPair"


def assert_loads_clean(page, server, workflow):
    """``workflow`` loads with every node known, no error shown, and queues as the server tests queue it."""
    from comfy_cli.workflow_to_api import convert_ui_to_api

    load_workflow(page, workflow)
    missing = page.evaluate("(wf) => wf.nodes.filter((n) => !(n.type in LiteGraph.registered_node_types))"
                            ".map((n) => n.type)", workflow)
    assert missing == []
    assert not page.get_by_test_id("error-overlay").is_visible()
    assert page.evaluate("() => window.app.graph.nodes.filter((n) => n.has_errors).map((n) => n.type)") == []
    assert len(page.evaluate("() => window.app.graph.nodes")) == len(workflow["nodes"])
    # the prompt the frontend would queue is the one the server tests queue
    in_page = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    converted = convert_ui_to_api(workflow, server.object_info())
    assert {k: (v["class_type"], v["inputs"]) for k, v in in_page.items()} == \
           {k: (v["class_type"], v["inputs"]) for k, v in converted.items()}


def test_the_template_browser_titles_each_example_by_its_file_and_sorts_the_basic_pair_first(browser, server):
    from tstitch_dev.browser import open_page

    basic = next(example for example in EXAMPLES if example.name == "sd15_bk-sdm-tiny_pair")
    page = open_page(browser, server)
    settings = "window.app.extensionManager.setting"
    try:
        page.evaluate(f"async () => await {settings}.set('Comfy.Templates.SortBy', 'alphabetical')")  # A to Z
        page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
        page.get_by_text("comfyui-tstitch", exact=True).first.click()
        cards = page.locator("[data-testid^='template-workflow-']")
        expect(cards).to_have_count(len(EXAMPLES), timeout=30_000)
        shown = [card.split("\n")[-1] for card in cards.all_inner_texts()]  # the card's title, under its thumbnail
        assert sorted(shown) == sorted(example.title for example in EXAMPLES)
        assert shown[0] == basic.title
        first = cards.first.locator("img").first
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=first.element_handle())
        screenshot(page, "template_browser")
        cards.first.click()  # opens the workflow, its file name and all
        page.wait_for_function("() => window.app.graph.nodes.length > 0")
        workflow = json.loads(example_path(basic.name).read_text())
        assert page.evaluate("() => window.app.graph.nodes.map((n) => n.type)") == [n["type"] for n in workflow["nodes"]]
    finally:
        page.evaluate(f"async () => await {settings}.set('Comfy.Templates.SortBy', 'default')")
        page.close()


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory, comfy_host):
    """The pack served with no model at all: every file an example names is missing."""
    import sys

    from tstitch_dev.server import ComfyServer

    with ComfyServer(tmp_path_factory.mktemp("bare"), host=comfy_host, python=sys.executable) as running:
        yield running


# what the frontend offers to download: a Hugging Face (or Civitai) URL of a model file (missingModelMetadata.js)
DOWNLOADABLE = re.compile(r"^https://(huggingface\.co|civitai\.com)/.*\.(safetensors|sft|ckpt|pt|pth)(\?.*)?$")


@pytest.mark.parametrize("name", ["sd15_bk-sdm-tiny_pair", "wan22_a14b_t2v_lightning_4_4"])
def test_an_example_opened_without_its_models_offers_each_download(name, browser, bare_server):
    from tstitch_dev.browser import open_page

    workflow = json.loads(example_path(name).read_text())
    entries = {entry["name"]: entry for node in workflow["nodes"] for entry in node["properties"].get("models", [])}
    page = open_page(browser, bare_server)
    try:
        load_workflow(page, workflow)
        overlay = page.get_by_test_id("error-overlay")
        expect(overlay).to_be_visible(timeout=15_000)
        page.get_by_test_id("error-overlay-see-errors").click()  # the errors panel, with its Missing Models card
        buttons = page.get_by_test_id("missing-model-download")
        buttons.first.wait_for(timeout=20_000)
        screenshot(page, f"missing_models_{name}")
        # a Download button for each file whose entry the frontend can download, and what each one fetches (the
        # link the page opens, caught before the browser follows it)
        page.evaluate("""() => { window.__opened = [];
          HTMLAnchorElement.prototype.click = function () { window.__opened.push([this.href, this.download]); }; }""")
        labels = [button.get_attribute("aria-label") for button in buttons.all()]
        offered = {entry["name"] for entry in entries.values() if DOWNLOADABLE.match(entry["url"])}
        assert sorted(labels) == sorted(f"Download {file}" for file in offered)
        for button in buttons.all():
            button.click()
        opened = page.evaluate("() => window.__opened")
        assert sorted(opened) == sorted([entries[file]["url"], file] for file in offered)
        # a file without a download (BK-SDM, to convert) is listed as missing all the same
        files = {value for node in workflow["nodes"] for value in node.get("widgets_values") or []
                 if isinstance(value, str) and value.endswith((".safetensors", ".ckpt", ".pt"))}
        for file in files - offered:
            expect(page.get_by_text(file, exact=True).first).to_be_visible()
    finally:
        page.close()


def test_queueing_an_example_runs_and_shows_the_image(page, server):
    workflow = json.loads(example_path("sd15_bk-sdm-tiny_pair").read_text())
    load_workflow(page, workflow)
    # tiny sizes for the CPU, set in the widgets as a user would
    page.evaluate("""() => {
      for (const node of window.app.graph.nodes) {
        for (const widget of node.widgets ?? []) {
          if (node.type === 'EmptyLatentImage' && ['width', 'height'].includes(widget.name)) widget.value = 64;
          if (node.type === 'KSampler' && widget.name === 'steps') widget.value = 4;
        }
      }
    }""")
    before = len(server.get("/history"))
    page.get_by_test_id("queue-button").click()
    save = next(n["id"] for n in workflow["nodes"] if n["type"] == "SaveImage")
    # the frontend keeps each node's shown outputs in app.nodeOutputs; SaveImage draws its image from there
    page.wait_for_function(f"() => (window.app.nodeOutputs['{save}']?.images ?? []).length > 0", timeout=180_000)
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(1000)
    screenshot(page, "queued_run_shows_image")
    history = server.get("/history")
    assert len(history) == before + 1
    (entry,) = [entry for entry in history.values() if entry["status"]["status_str"] == "success"][-1:]
    assert entry["outputs"][str(save)]["images"][0]["filename"].startswith("tstitch_sd15")


def test_a_typed_wan_boundary_reaches_the_server_exactly(page, server):
    # Wan 2.2's text-to-video boundary t = 0.875 is small_fraction 0.125: typed into the widget as a user does
    workflow = json.loads(example_path("sd15_bk-sdm-tiny_pair").read_text())
    load_workflow(page, workflow)
    page.evaluate("""() => {
      for (const node of window.app.graph.nodes) {
        for (const widget of node.widgets ?? []) {
          if (node.type === 'EmptyLatentImage' && ['width', 'height'].includes(widget.name)) widget.value = 64;
          if (node.type === 'KSampler' && widget.name === 'steps') widget.value = 3;
        }
      }
      // the pair node alone at zoom 1 in an empty part of the canvas: nothing else (a node, an image, a text box)
      // may sit where the click lands, whatever view the earlier tests left
      const canvas = window.app.canvas;
      const node = window.app.graph.nodes.find((n) => n.type === 'TStitchModelPair');
      node.pos = [-5000, -5000];
      canvas.ds.scale = 1;
      canvas.ds.offset = [5200, 5200];
      canvas.setDirty(true, true);
    }""")
    page.wait_for_timeout(500)
    # the middle of the widget, on screen: a click there opens litegraph's value prompt
    x, y, widget_y = page.evaluate("""() => {
      const node = window.app.graph.nodes.find((n) => n.type === 'TStitchModelPair');
      const widget = node.widgets.find((w) => w.name === 'small_fraction');
      const [cx, cy] = window.app.canvas.ds.convertOffsetToCanvas(
        [node.pos[0] + node.size[0] / 2, node.pos[1] + widget.y + (widget.computedHeight ?? 20) / 2]);
      const rect = window.app.canvas.canvas.getBoundingClientRect();
      const ratio = window.devicePixelRatio || 1;
      return [rect.left + cx / ratio, rect.top + cy / ratio, (widget.y + (widget.computedHeight ?? 20) / 2) / ratio];
    }""")
    assert page.evaluate("([x, y]) => document.elementFromPoint(x, y) === window.app.canvas.canvas", [x, y])
    # the first press after the node search closed only gives the canvas back: select the node by its title first
    page.mouse.click(x, y - widget_y - 15)
    page.wait_for_timeout(200)
    page.mouse.click(x, y)
    value_input = page.locator(".graphdialog input").first
    value_input.wait_for()
    value_input.fill("0.125")
    value_input.press("Enter")
    page.wait_for_timeout(300)
    screenshot(page, "typed_wan_boundary")
    shown = page.evaluate("() => window.app.graph.nodes.find((n) => n.type === 'TStitchModelPair')"
                          ".widgets.find((w) => w.name === 'small_fraction').value")
    assert shown == 0.125
    before = set(server.get("/history"))
    assert page.evaluate("async () => await window.app.queuePrompt(0, 1)") is not False
    deadline = time.monotonic() + 180
    while not (finished := set(server.get("/history")) - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    (prompt_id,) = finished
    entry = server.history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    pair = next(node for node in entry["prompt"][2].values() if node["class_type"] == "TStitchModelPair")
    assert pair["inputs"]["small_fraction"] == 0.125


@pytest.fixture(scope="module")
def fresh_page(browser, server):
    """A page no workflow has run in: shown outputs resize nodes, and the builder starts without any."""
    from tstitch_dev.browser import open_page

    return open_page(browser, server, width=1400, height=900)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_committed_example_is_what_the_frontend_exports_for_its_graph(example, fresh_page):
    from tstitch_dev.examples import build_in_frontend, export_from_frontend

    page = fresh_page
    def graph_only(workflow):  # the saved viewport (extra.ds) is where the canvas was, not the graph
        return {**workflow, "extra": {k: v for k, v in workflow["extra"].items() if k != "ds"}}

    build_in_frontend(page, example)
    committed = json.loads(example_path(example.name).read_text())
    assert graph_only(export_from_frontend(page)) == graph_only(committed)


@pytest.fixture(scope="module")
def docs_page(browser, server):
    """A page of its own for the node library, help panel and language checks."""
    from tstitch_dev.browser import open_page

    page = open_page(browser, server)
    yield page
    page.close()


def help_page_opening(node_id, locale):
    """The first sentence of a node's help page, as the frontend renders it (markdown emphasis dropped)."""
    text = (PACK_ROOT / "web" / "docs" / node_id / f"{locale}.md").read_text(encoding="utf-8")
    paragraph = re.sub(r"\*\*|`", "", text.split("\n\n")[1].replace("\n", " "))
    return re.split(r"(?<=[.。：:])", paragraph)[0].strip()


def show_help_of(page, node_id):
    """Add the node, select it and open its help the way users do: the selection toolbox's Node Info button."""
    page.evaluate("""(nodeId) => {
      const graph = window.app.graph;
      graph.clear();
      const node = LiteGraph.createNode(nodeId);
      node.pos = [300, 200];
      graph.add(node);
      window.app.canvas.selectNode(node);
      window.app.canvas.setDirty(true, true);
    }""", node_id)
    page.wait_for_timeout(300)
    if not page.locator(".node-help-content").is_visible():
        page.get_by_test_id("info-button").click(timeout=60_000)  # "Node Info", in the page's language
    return page.locator(".node-help-content").first


@pytest.mark.parametrize("node_id", PACK_NODE_IDS)
def test_node_info_shows_the_nodes_own_help_page_with_its_picture(node_id, docs_page):
    content = show_help_of(docs_page, node_id)
    expect(content).to_contain_text(help_page_opening(node_id, "en"), timeout=15_000)
    image = content.locator("img").first
    expect(image).to_have_attribute("src", re.compile(r"/extensions/comfyui-tstitch/docs/assets/\w+\.png$"))
    docs_page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    screenshot(docs_page, f"help_{node_id}")


def test_searching_for_refiner_offers_the_model_pair(docs_page):
    page = docs_page
    page.evaluate("() => window.app.graph.clear()")
    page.mouse.dblclick(700, 500)
    search = page.get_by_placeholder("Add a node...")
    search.fill("refiner")
    page.get_by_role("option", name="T-Stitch Model Pair").first.wait_for()
    screenshot(page, "search_refiner")
    search.press("Escape")


def test_in_chinese_the_nodes_and_their_help_are_translated(docs_page, server):
    page = docs_page
    chinese = json.loads((PACK_ROOT / "locales" / "zh" / "main.json").read_text(encoding="utf-8"))["nodeDefs"]
    page.evaluate("async () => await window.app.extensionManager.setting.set('Comfy.Locale', 'zh')")
    try:
        page.reload()
        wait_until_ready(page)
        content = show_help_of(page, "TStitchModelPair")
        title = page.evaluate("() => window.app.graph.nodes[0].title")
        assert title == chinese["TStitchModelPair"]["display_name"]
        expect(content).to_contain_text(help_page_opening("TStitchModelPair", "zh"), timeout=15_000)
        slots = page.evaluate("() => window.app.graph.nodes[0].inputs.map((slot) => slot.localized_name ?? slot.label)")
        assert chinese["TStitchModelPair"]["inputs"]["small_model"]["name"] in slots
        screenshot(page, "help_zh")
    finally:
        page.evaluate("async () => await window.app.extensionManager.setting.set('Comfy.Locale', 'en')")


@pytest.mark.parametrize("name", ["sd15_schedule_preview", "sd15_stages_large_small_large"])
def test_running_an_example_in_the_frontend_leaves_its_settings_as_committed(name, browser, server):
    # Run, as a user does, with each sampler's steps lowered for the CPU and put back after: what the frontend
    # exports afterwards holds the committed settings (a node that showed outputs may save [] for "no widgets")
    from tstitch_dev.browser import open_page
    from tstitch_dev.examples import MOST_STEPS, export_from_frontend, fit_graph, run_in_frontend

    page = open_page(browser, server, width=1400, height=900)
    try:
        load_workflow(page, json.loads(example_path(name).read_text()))
        fit_graph(page)
        before = export_from_frontend(page)
        assert run_in_frontend(page, server, most_steps=MOST_STEPS.get(name, 2))
        settings = lambda exported: [(n["id"], n["type"], n.get("widgets_values") or None) for n in exported["nodes"]]
        assert settings(export_from_frontend(page)) == settings(before)
    finally:
        page.close()


def test_the_probe_shows_its_plot_on_its_node_after_a_run(browser, server):
    """The probe's own plot, on the probe node, after a run that went on after it (its sampler and decoder at
    64 pixels). The page asks for the plot when the probe ends; the frontend gives up on
    an image after 2 x 8.2 s and never asks again, so a request held while this process waits on the server
    (Playwright routes a request only when called) left the node without its plot."""
    from tstitch_dev.browser import open_page
    from tstitch_dev.examples import build_in_frontend, fit_graph

    probe_example = next(example for example in EXAMPLES if example.name == "sd15_probe_then_pair")
    page = open_page(browser, server, width=1400, height=900)
    try:
        build_in_frontend(page, probe_example)
        page.evaluate("""() => { for (const node of window.app.graph.nodes) for (const w of node.widgets ?? []) {
          if (node.type === 'EmptyLatentImage' && ['width', 'height'].includes(w.name)) w.value = 64;
          if (w.name === 'steps') w.value = 2;
        } }""")
        fit_graph(page)  # the probe on screen: the frontend loads a node's images when it draws the node
        before = set(server.get("/history"))
        assert page.evaluate("async () => await window.app.queuePrompt(0, 1)") is not False
        # wait on the server alone, as run_in_frontend does, then as long again as the rest of the graph runs
        # after the probe: the page is left to itself all along
        deadline = time.monotonic() + 300
        while not (finished := set(server.get("/history")) - before) and time.monotonic() < deadline:
            time.sleep(0.5)
        (prompt_id,) = finished
        entry = server.wait(prompt_id)
        assert entry["status"]["status_str"] == "success"
        time.sleep(20)
        probe = next(node_id for node_id, node in entry["prompt"][2].items()
                     if node["class_type"] == "TStitchAgreementProbe")
        (plot,) = entry["outputs"][probe]["images"]
        shown = """(id) => (window.app.graph.getNodeById(id).imgs ?? []).map((img) => img.complete && img.naturalWidth
          ? [new URL(img.src).searchParams.get('filename'), img.naturalWidth, img.naturalHeight] : null)"""
        page.wait_for_function(f"(id) => ({shown})(id).length > 0 && ({shown})(id).every(Boolean)", arg=probe,
                               timeout=30_000)
        assert page.evaluate(shown, probe) == [[plot["filename"], 768, 432]]  # the probe's own plot
        page.evaluate("() => window.app.graph.setDirtyCanvas(true, true)")
        page.wait_for_timeout(300)
        screenshot(page, "probe_shows_its_plot")
        # outside hosts stay refused by the route (net::ERR_FAILED; a lookup on a machine without network fails
        # otherwise); a navigation, as the server's content policy stops the page's own calls before any request
        with pytest.raises(PlaywrightError, match=r"net::ERR_FAILED"):
            page.goto("http://example.com/tstitch-check")
    finally:
        page.close()


# links that still cross a node they do not join, by example (layout_facts' measure of the committed graph at
# 1366x768, through the reroutes it is drawn through): the layout moves a crossed node down out of a link's way
# while the graph still opens at a zoom of 0.6 or more, then routes a link still through a node by reroutes in the
# gaps between columns; these are the crossings where no such way clears (issue 30; 91 in 16 examples before
# reroutes). Fewer is progress: lower the number; more fails. The probe: Large's VAE to VAE Decode past the pair, and
# the seed Primitive to the probe past the positive prompt; Flux.2: the VAE to VAE Decode past KSamplerSelect.
LINKS_THROUGH_NODES = {"sd15_probe_then_pair": 2, "flux2_dev_klein_4b_guider": 1}


@pytest.fixture(scope="module")
def laptop_page(browser, server):
    """A 1366x768 page at the frontend's default level of detail (nodes drawn without text below a zoom of
    MinFontSizeForLOD 8 / NODE_TEXT_SIZE 14 = 0.571 at devicePixelRatio 1; thumbnails are made with it off)."""
    from tstitch_dev.browser import open_page

    page = open_page(browser, server, width=1366, height=768)
    setting = "window.app.extensionManager.setting"
    was = page.evaluate(f"() => {setting}.get('LiteGraph.Canvas.MinFontSizeForLOD')")
    page.evaluate(f"async () => await {setting}.set('LiteGraph.Canvas.MinFontSizeForLOD', 8)")
    yield page
    page.evaluate(f"async (was) => await {setting}.set('LiteGraph.Canvas.MinFontSizeForLOD', was)", was)
    page.close()


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_an_example_opens_on_a_laptop_at_a_zoom_where_the_frontend_draws_text(name, laptop_page):
    from tstitch_dev.examples import layout_facts, open_as_template

    example = next(example for example in EXAMPLES if example.name == name)
    open_as_template(laptop_page, json.loads(example_path(name).read_text()), example.title)
    facts = layout_facts(laptop_page)
    screenshot(laptop_page, f"laptop_{name}")
    assert facts["canvas"] == [1366, 768] and facts["threshold"] == pytest.approx(8 / 14)
    # with a margin over the threshold: 0.6
    assert facts["scale"] >= 0.6 > facts["threshold"] and not facts["low_quality"], facts["size"]


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_an_examples_links_run_through_no_node_they_do_not_join(name, laptop_page):
    from tstitch_dev.examples import layout_facts, open_as_template

    example = next(example for example in EXAMPLES if example.name == name)
    open_as_template(laptop_page, json.loads(example_path(name).read_text()), example.title)
    crossings = layout_facts(laptop_page)["crossings"]
    assert len(crossings) <= LINKS_THROUGH_NODES.get(name, 0), crossings


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_an_example_shows_every_title_whole_and_each_loaders_downloads(name, laptop_page):
    from tstitch_dev.examples import LOADER_FOLDERS, MODEL_EXTENSIONS, layout_facts, open_as_template

    example = next(example for example in EXAMPLES if example.name == name)
    open_as_template(laptop_page, json.loads(example_path(name).read_text()), example.title)
    assert layout_facts(laptop_page)["titles"] == []  # measured with the canvas's title font against the room
    # each model file a loader names, as the frontend holds the node: an entry with its download link (BK-SDM's
    # through Load BK-SDM UNet from nota-ai's own files; T-Stitch's DiTs a Google Drive page, which the note explains)
    loaders = laptop_page.evaluate("""(extensions) => window.app.graph.nodes.map((node) => ({type: node.type,
      files: (node.widgets ?? []).map((w) => w.value).filter((v) => typeof v === 'string'
        && extensions.some((e) => v.endsWith(e))),
      models: node.properties?.models ?? []})).filter((node) => node.files.length)""", list(MODEL_EXTENSIONS))
    for loader in loaders:
        folder = LOADER_FOLDERS[loader["type"]]
        entries = {entry["name"]: entry for entry in loader["models"]}
        for file in loader["files"]:
            assert entries[file]["url"].startswith("https://") and entries[file]["directory"] == folder, file
