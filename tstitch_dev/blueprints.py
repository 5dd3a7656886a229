"""The subgraph blueprints in subgraphs/: what each holds, and how they are (re)built.

ComfyUI 0.33 serves a pack's ``subgraphs/*.json`` at ``/global_subgraphs``; the frontend lists each in the
node library under "Subgraph Blueprints/<category>", named after its file. ``python -m
tstitch_dev.blueprints`` starts a server, builds each blueprint's equivalent example in the frontend
(examples.py's builder), turns the sampling nodes into a subgraph with the frontend's own Convert to Subgraph,
labels its inputs, sets its description with the frontend's Set Subgraph Description and writes it with the
frontend's Publish Subgraph, as a user publishing one does. The category is then added to the published file:
the frontend reads it there but has no command that sets it (ComfyUI's own blueprints/ carry it the same way).
"""

from __future__ import annotations

import json
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from .examples import EXAMPLES, Example, build_in_frontend
from .host import PACK_ROOT

BLUEPRINTS_DIR = PACK_ROOT / "subgraphs"
CATEGORY = "T-Stitch"


@dataclass
class Blueprint:
    # its file name, which the node library shows; short: the node search of frontend 1.49.6 found nothing for
    # queries of 40 characters or more, and typing the whole name must find it
    name: str
    example: str  # the example workflow it samples like
    inside: list[str]  # the example's nodes (keys) that make up the subgraph
    description: str
    # how the example's other nodes feed it: (from node, output index, the blueprint's input), and what it feeds
    inputs: list[tuple[str, int, str]]
    outputs: list[tuple[int, str, str]]  # (its output index, to node, input name)
    # what the node shows for an input Convert to Subgraph named after the first input it feeds
    labels: dict[str, str] = field(default_factory=dict)

    def equivalent(self) -> Example:
        return next(example for example in EXAMPLES if example.name == self.example)


BLUEPRINTS = [
    Blueprint(
        "T-Stitch Wan 2.2 Lightning 4+4", "wan22_a14b_t2v_lightning_4_4",
        ["stages", "noise", "select", "guider", "sampler"],
        "Wan 2.2 A14B with the Lightning LoRAs: the high-noise expert takes the first 4 steps, the low-noise "
        "expert the last 4 (switch at t = 0.875, euler, simple, cfg 1 each), in one SamplerCustomAdvanced pass "
        "through T-Stitch Guider and Stage Sigmas. Feed it each expert with its LoRA and shift, the prompts and an "
        "empty video latent.",
        [("high_shift", 0, "small_model"), ("low_shift", 0, "large_model"), ("positive", 0, "small_positive"),
         ("negative", 0, "small_negative"), ("latent", 0, "latent_image")],
        [(0, "decode", "samples")],
        {"small_model": "high_noise_model", "large_model": "low_noise_model", "small_positive": "positive",
         "small_negative": "negative"}),
    Blueprint(
        "T-Stitch SD1.5 + BK-SDM sampler", "sd15_bk-sdm-tiny_pair", ["pair", "sampler"],
        "T-Stitch for SD1.5: the small model (BK-SDM-Tiny, -Small or -Base) samples the first 40% of the steps, "
        "SD1.5 the rest, in one KSampler pass (25 dpmpp_2m karras steps, cfg 7.5). Feed it both models, the "
        "prompts and a latent.",
        [("small", 0, "small_model"), ("large", 0, "large_model"), ("positive", 0, "positive"),
         ("negative", 0, "negative"), ("latent", 0, "latent_image")],
        [(0, "decode", "samples")]),
    Blueprint(
        "T-Stitch large-small-large", "sd15_stages_large_small_large", ["stages", "sampler"],
        "T-Stitch Stages in FlowBlending's order: the large model lays out the first 20% of the steps, the small "
        "model runs to 70%, the large model finishes the details, in one KSampler pass (25 dpmpp_2m karras "
        "steps, cfg 7.5). Feed it the large model (stages 1 and 3), the small one, the prompts and a latent.",
        [("large", 0, "model_1"), ("small", 0, "model_2"), ("positive", 0, "positive"),
         ("negative", 0, "negative"), ("latent", 0, "latent_image")],
        [(0, "decode", "samples")], {"model_1": "large_model", "model_2": "small_model"}),
]

# Converts the nodes at ``inside`` (indices into the graph's nodes, in the order the builder added them) to a
# subgraph, labels its inputs (as renaming a subgraph input does), describes and publishes it, each with the
# frontend's own command; returns the subgraph's id.
_PUBLISH_JS = """async ({inside, name, description, labels}) => {
  const app = window.app, graph = app.graph, canvas = app.canvas, command = app.extensionManager.command;
  const failed = (what) => (error) => { throw new Error(`${what}: ${error}`); };
  // the example's reroutes route its links around its layout, not the subgraph's: Convert to Subgraph would keep
  // their ids on the links inside (parentId) without the reroutes
  for (const id of [...graph.reroutes.keys()]) graph.removeReroute(id);
  canvas.deselectAll();
  for (const index of inside) canvas.select(graph.nodes[index]);
  await command.execute('Comfy.Graph.ConvertToSubgraph', {errorHandler: failed('convert')});
  const node = graph.nodes.find((n) => n.isSubgraphNode?.());
  if (!node) throw new Error('Convert to Subgraph made no subgraph node');
  for (const input of node.subgraph.inputs) {
    if (input.name in labels) node.subgraph.renameInput(input, labels[input.name]);
  }
  node.subgraph.description = description;  // serialized with the definition, as ComfyUI's own blueprints have it
  canvas.openSubgraph(node.subgraph, node);  // Set Subgraph Description acts on the subgraph open on the canvas
  await command.execute('Comfy.Subgraph.SetDescription', {metadata: {description}, errorHandler: failed('describe')});
  await command.execute('Comfy.Graph.ExitSubgraph');
  canvas.deselectAll();
  canvas.select(node);
  await command.execute('Comfy.PublishSubgraph', {metadata: {name}, errorHandler: failed('publish')});
  return node.subgraph.id;
}"""


def publish_in_frontend(page, server, blueprint: Blueprint, name: str | None = None) -> dict:
    """Build ``blueprint``'s example, convert its sampling nodes and publish them as the frontend does (under
    ``name``, else the blueprint's); returns the file the frontend wrote to the user's subgraphs/ folder, with
    the category added."""
    example = blueprint.equivalent()
    name = name or blueprint.name
    build_in_frontend(page, example)
    keys = [node.key for node in example.nodes]
    page.evaluate(_PUBLISH_JS, {"inside": [keys.index(key) for key in blueprint.inside], "name": name,
                                "description": blueprint.description, "labels": blueprint.labels})
    published = server.get("/api/userdata/" + urllib.parse.quote(f"subgraphs/{name}.json", safe=""))
    published["definitions"]["subgraphs"][0]["category"] = CATEGORY
    return published


def main() -> int:
    from .browser import launch_browser, open_page
    from .comfy_env import use_host
    from .examples import link_example_models
    from .server import ComfyServer

    use_host(cpu=True)
    BLUEPRINTS_DIR.mkdir(exist_ok=True)
    # the server lists the pack's blueprints once: without the old ones, publishing under their names asks nothing
    for old in BLUEPRINTS_DIR.glob("*.json"):
        old.unlink()
    base = Path(tempfile.mkdtemp(prefix="tstitch-blueprints-"))
    link_example_models(base)
    with ComfyServer(base) as server, launch_browser() as browser:
        for blueprint in BLUEPRINTS:
            page = open_page(browser, server, width=1400, height=900)
            try:
                published = publish_in_frontend(page, server, blueprint)
            finally:
                page.close()
            (BLUEPRINTS_DIR / f"{blueprint.name}.json").write_text(json.dumps(published, indent=2) + "\n")
            print(f"wrote subgraphs/{blueprint.name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
