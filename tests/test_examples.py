"""The example workflows as ComfyUI's own templates are made (read from the committed files): every loader names
where each of its files comes from, in the form the frontend's missing-models panel offers for download; one note
says what the graph does, what to change first and where each model goes; and no setting is held twice where the
two must agree (the sampler's seed, steps, cfg, sampler and scheduler; a pair's switch)."""

import json

import pytest

from tstitch_dev.examples import DOWNLOADS, EXAMPLES, example_path
from tstitch_dev.host import PACK_ROOT

pytestmark = pytest.mark.latest_host_only  # the committed files, the same on every host: once a run

# each loader's model folder, as ComfyUI's nodes.py (and the pack's DiT loader) read their files: checked against
# the host below, so that a file's directory is where the loader looks
LOADER_FOLDERS = {"CheckpointLoaderSimple": ("checkpoints", "ckpt_name"), "UNETLoader": ("diffusion_models", "unet_name"),
                  "LoraLoaderModelOnly": ("loras", "lora_name"), "VAELoader": ("vae", "vae_name"),
                  "CLIPLoader": ("text_encoders", "clip_name"), "DualCLIPLoader": ("text_encoders", "clip_name1"),
                  "TStitchDiTLoader": ("diffusion_models", "dit_name"),
                  "TStitchBKSDMLoader": ("diffusion_models", "unet_name")}
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")  # the frontend's, and .gguf
NOTE_TYPES = ("MarkdownNote", "Note")
UI_ONLY = {*NOTE_TYPES, "PrimitiveNode", "Reroute"}  # no node definition: the frontend's own
# settings that must agree between every node that holds them: what a sampler samples with (a seed is one
# setting under either name) and, per pair of models, how the pair switches
SAMPLING_SETTINGS = {"seed": ("seed", "noise_seed"), "steps": ("steps",), "cfg": ("cfg",),
                     "sampler_name": ("sampler_name",), "scheduler": ("scheduler",)}
PAIR_SETTINGS = ("small_fraction", "switch_by", "offload_idle_model")
SAVED = PACK_ROOT / "tests" / "saved_workflows"  # workflows as earlier versions of the examples saved them


def committed(name):
    return json.loads(example_path(name).read_text())


def model_files(node):
    return [value for value in node.get("widgets_values") or [] if isinstance(value, str)
            and value.endswith(MODEL_EXTENSIONS)]


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_every_loader_gives_each_of_its_files_with_its_download(name):
    for node in committed(name)["nodes"]:
        files = model_files(node)
        if not files:
            continue
        assert node["type"] in LOADER_FOLDERS, f"{name}: {node['type']} names {files}: which folder is it?"
        folder = LOADER_FOLDERS[node["type"]][0]
        entries = {entry["name"]: entry for entry in node["properties"].get("models", [])}
        published = [file for file in files if DOWNLOADS[folder, file].url]
        assert sorted(entries) == sorted(published), f"{name}: {node['type']} {files}"
        for file, entry in entries.items():
            assert entry == {"name": file, "url": DOWNLOADS[folder, file].url, "directory": folder}
            assert entry["url"].startswith("https://"), entry


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_each_example_has_one_note_saying_where_each_model_goes(name):
    workflow = committed(name)
    notes = [node for node in workflow["nodes"] if node["type"] in NOTE_TYPES]
    assert len(notes) == 1, f"{name}: {len(notes)} notes"
    (text,) = notes[0]["widgets_values"]
    assert "**Change first:**" in text
    files = {(LOADER_FOLDERS[node["type"]][0], file) for node in workflow["nodes"] for file in model_files(node)}
    for folder, file in files:
        download = DOWNLOADS[folder, file]
        # the file, its folder and its link; one published under another name or form says what to do
        shown = f"[{file}]({download.url})" if download.url else file
        assert f"- {shown} in `models/{folder}/`" + (f": {download.how}" if download.how else "") in text, file
        if download.url is None:
            assert download.how, f"{file}: no download and nothing said about it"


def test_the_loader_folders_are_where_comfyui_looks(comfy_nodes, tmp_path):
    # a file put into each folder shows in its loader's list, and so a directory the frontend downloads to is the
    # one the loader reads
    import folder_paths

    for node_type, (folder, widget) in LOADER_FOLDERS.items():
        sentinel = tmp_path / folder / f"tstitch-sentinel-{folder}.safetensors"
        sentinel.parent.mkdir(exist_ok=True)
        sentinel.touch()
        folder_paths.add_model_folder_path(folder, str(sentinel.parent))
        try:
            kind, *options = comfy_nodes.NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES()["required"][widget]
            listed = kind if isinstance(kind, list) else options[0]["options"]  # a V1 list, or a V3 COMBO's options
            assert sentinel.name in listed, node_type
        finally:
            sentinel.unlink()  # the folder stays listed, empty: ComfyUI's file-list cache reads its time


def held_settings(node, node_classes):
    """The widgets ``node`` holds a value of itself: its definition's widget inputs that no link feeds."""
    if node["type"] in UI_ONLY:
        return set()
    inputs = node_classes[node["type"]].INPUT_TYPES()
    widgets = {name for group in ("required", "optional") for name, spec in inputs.get(group, {}).items()
               if isinstance(spec[0], list) or spec[0] in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")}
    return widgets - {slot["name"] for slot in node.get("inputs", []) if slot.get("link") is not None}


def settings_held_twice(workflow, node_classes):
    """Each setting that two nodes of ``workflow`` hold values of where they must agree, with the nodes' ids."""
    held = {node["id"]: held_settings(node, node_classes) for node in workflow["nodes"]}
    twice = []
    for setting, names in SAMPLING_SETTINGS.items():
        holders = [key for key, widgets in held.items() if widgets & set(names)]
        if len(holders) > 1:
            twice.append((setting, holders))
    # a pair's settings, once for each pair of models stitched (a nested pair's two pairs have their own)
    source = {link[0]: (link[1], link[2]) for link in workflow["links"]}
    pairs = {}
    for node in workflow["nodes"]:
        slots = {slot["name"]: slot.get("link") for slot in node.get("inputs", [])}
        if slots.get("small_model") is not None and slots.get("large_model") is not None:
            pairs.setdefault((source[slots["small_model"]], source[slots["large_model"]]), []).append(node["id"])
    for models, nodes in pairs.items():
        for setting in PAIR_SETTINGS:
            holders = [key for key in nodes if setting in held[key]]
            if len(holders) > 1:
                twice.append((setting, holders))
    return twice


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_no_example_holds_a_setting_twice_where_both_must_agree(name, comfy_nodes):
    assert settings_held_twice(committed(name), comfy_nodes.NODE_CLASS_MAPPINGS) == []


def test_a_setting_held_twice_is_found(comfy_nodes):
    # the probe example as it was: the probe and KSampler each with their own seed, steps, cfg, sampler and
    # scheduler; and the Wan Lightning example as it was, the pair and the guider each with their own switch
    probe = committed("sd15_probe_then_pair")
    for node in probe["nodes"]:
        node["inputs"] = [slot for slot in node.get("inputs", []) if "widget" not in slot]
    found = settings_held_twice(probe, comfy_nodes.NODE_CLASS_MAPPINGS)
    assert sorted(setting for setting, _ in found) == sorted(SAMPLING_SETTINGS)
    old_wan = json.loads((SAVED / "wan22_a14b_t2v_lightning_4_4-pair-and-guider.json").read_text())
    found = settings_held_twice(old_wan, comfy_nodes.NODE_CLASS_MAPPINGS)
    assert sorted(setting for setting, _ in found) == sorted(PAIR_SETTINGS)


def test_the_probes_seed_stays_fixed_after_a_run(comfy_nodes):
    # a probe's suggestion holds for its seed: the frontend keeps it unless asked (KSampler's randomizes)
    seed = comfy_nodes.NODE_CLASS_MAPPINGS["TStitchAgreementProbe"].INPUT_TYPES()["required"]["seed"]
    assert seed[1]["control_after_generate"] == "fixed"
