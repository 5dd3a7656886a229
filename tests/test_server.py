"""The pack in a real ComfyUI server: example workflows queued over HTTP, /object_info, validation
errors, execution errors at the right node, and an interrupt in the middle of a stitched run."""

import copy
import json
import time

import pytest

from tstitch_dev.examples import EXAMPLES, NEEDS_STAND_IN_TEXT_ENCODER, example_path
from tstitch_dev.host import PACK_ROOT
from tstitch_dev.stand_in_nodes import STAND_INS, use_stand_in_text_encoders

pytestmark = pytest.mark.latest_host_only
CPU_SIZE, CPU_STEPS, CPU_FRAMES = 64, 4, 5
# images other than one sampled CPU_SIZE image: the sweep's grid (six fractions, captions) and its speed/quality
# plot, the preview's plot, the probe's plot beside the image
OUTPUT_SIZES = {"sd15_fraction_sweep": {(6 * CPU_SIZE, CPU_SIZE + 26), (768, 432)},
                "sd15_schedule_preview": {(768, 432)}, "sd15_probe_then_pair": {(CPU_SIZE, CPU_SIZE), (768, 432)}}


def load_example(name):
    return json.loads(example_path(name).read_text())


def to_api(server, workflow):
    """UI format to API format, converted as the frontend converts it (comfy-cli's convert_ui_to_api)."""
    from comfy_cli.workflow_to_api import convert_ui_to_api

    return convert_ui_to_api(workflow, server.object_info())


def shrink_for_cpu(api, steps=CPU_STEPS):
    """The same graph at 64x64 pixels (videos of 5 frames) and a few steps: the test models are tiny, the CPU is
    slow. Stage sigmas keep their steps per model: they are what their examples show."""
    api = copy.deepcopy(api)
    for node in api.values():
        inputs = node["inputs"]
        if node["class_type"] in ("EmptyLatentImage", "ImageScale", "EmptyHunyuanLatentVideo", "WanImageToVideo",
                                  "EmptySD3LatentImage", "EmptyLTXVLatentVideo", "EmptyFlux2LatentImage",
                                  "Flux2Scheduler"):
            inputs["width"] = inputs["height"] = CPU_SIZE
        if node["class_type"] in ("EmptyHunyuanLatentVideo", "WanImageToVideo", "EmptyLTXVLatentVideo"):
            inputs["length"] = CPU_FRAMES
        if node["class_type"] in ("KSampler", "TStitchKSampler", "TStitchFractionSweep", "TStitchAgreementProbe",
                                  "BasicScheduler", "TStitchDiTScheduler", "LTXVScheduler", "Flux2Scheduler"):
            inputs["steps"] = steps
    return api


def node_id(api, class_type, title=None):
    return next(key for key, node in api.items()
                if node["class_type"] == class_type and (title is None or node["_meta"]["title"] == title))


def png_pixels(path):
    from PIL import Image

    with Image.open(path) as image:
        return image.size, image.tobytes()


def assert_success(server, entry):
    status = entry["status"]
    assert status["status_str"] == "success" and status["completed"], (status, server.log_tail())


def example_api(server, name):
    """Example ``name`` as the server tests queue it: shrunk for the CPU, a Wan example's text encoder the stand-in."""
    return shrink_for_cpu(use_stand_in_text_encoders(to_api(server, load_example(name))))


@pytest.mark.parametrize("name", [example.name for example in EXAMPLES])
def test_example_workflow_runs_to_an_image(name, server):
    api = example_api(server, name)
    entry = server.run(api)
    assert_success(server, entry)
    images = server.output_images(entry)
    sizes = set()
    for image in images:
        size, pixels = png_pixels(image)
        sizes.add(size)
        assert len(set(pixels)) > 10, image  # an image, not a blank
    assert sizes == OUTPUT_SIZES.get(name, {(CPU_SIZE, CPU_SIZE)}), images


# the text encoders no test can build, by example: the loader (its files) and the stand-in for what it outputs
STOOD_IN = {
    "wan": {("CLIPLoader", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"): "StandInUMT5TextEncode"},
    "flux1_dev_lite_8b_pair": {("DualCLIPLoader", "clip_l.safetensors", "t5xxl_fp16.safetensors"):
                               "StandInFluxTextEncode"},
    "sd35_large_medium_pair": {("CheckpointLoaderSimple", "sd3.5_large_fp8_scaled.safetensors"):
                               "StandInSD3TextEncode"},
    "ltxv_13b_2b_distilled_pair": {("CLIPLoader", "t5xxl_fp16.safetensors"): "StandInLTXVTextEncode"},
    "flux2_dev_klein_4b_guider": {("CLIPLoader", "qwen_3_4b.safetensors"): "StandInQwen3_4BFlux2TextEncode",
                                  ("CLIPLoader", "mistral_3_small_flux2_bf16.safetensors"):
                                  "StandInMistralFlux2TextEncode"},
}
# the widths of what each stands in for (as the family models take them: tstitch_dev/families.py)
STAND_IN_WIDTHS = {"StandInUMT5TextEncode": (4096, None), "StandInFluxTextEncode": (4096, 768),
                   "StandInSD3TextEncode": (4096, 2048), "StandInLTXVTextEncode": (4096, None),
                   "StandInMistralFlux2TextEncode": (15360, None), "StandInQwen3_4BFlux2TextEncode": (7680, None)}


def test_the_examples_with_unbuildable_text_encoders_run_with_stand_ins_and_nothing_else_changed(server):
    # each CLIPTextEncode of such a loader becomes the stand-in for that loader, same text; a text encoder loader
    # goes, a checkpoint loader stays (its model and VAE are used); every other node is as the example has it
    for example in EXAMPLES:
        api = to_api(server, load_example(example.name))
        replaced = use_stand_in_text_encoders(api)
        expected = STOOD_IN["wan" if example.name.startswith("wan") else example.name] \
            if example.name in NEEDS_STAND_IN_TEXT_ENCODER else {}
        files = lambda node: tuple(v for k, v in sorted(node["inputs"].items()) if k.startswith(("clip_name", "ckpt")))
        loaders = {key: expected[(node["class_type"], *files(node))] for key, node in api.items()
                   if (node["class_type"], *files(node)) in expected}
        assert {(api[key]["class_type"], *files(api[key])) for key in loaders} == set(expected), example.name
        clip_of = lambda key: [key, 1 if api[key]["class_type"] == "CheckpointLoaderSimple" else 0]
        encoders = {key: loaders[node["inputs"]["clip"][0]] for key, node in api.items()
                    if node["class_type"] == "CLIPTextEncode" and node["inputs"]["clip"][0] in loaders
                    and node["inputs"]["clip"] == clip_of(node["inputs"]["clip"][0])}
        assert {key: node["class_type"] for key, node in replaced.items() if node["class_type"] in STAND_INS} \
            == encoders, example.name
        assert all(replaced[key]["inputs"] == {"text": api[key]["inputs"]["text"]} for key in encoders)
        removed = {key for key in loaders if api[key]["class_type"] != "CheckpointLoaderSimple"}
        assert set(replaced) == set(api) - removed
        assert {key: node for key, node in replaced.items() if key not in encoders} == \
               {key: node for key, node in api.items() if key not in encoders.keys() | removed}
    # the stand-in package is loaded beside the pack, not as part of it
    info = server.object_info()
    assert {info[node]["python_module"] for node in STAND_INS} == {"custom_nodes.tstitch_stand_in_nodes"}


@pytest.mark.parametrize("node", sorted(STAND_IN_WIDTHS))
def test_each_stand_in_gives_its_encoders_widths_seeded_by_the_text(node):
    from tstitch_dev.stand_in_nodes import NODE_CLASS_MAPPINGS

    encode = lambda text: NODE_CLASS_MAPPINGS[node]().encode(text)[0][0]
    (tokens, extra), (again, _), (other, _) = encode("a red fox"), encode("a red fox"), encode("a blue fox")
    width, pooled = STAND_IN_WIDTHS[node]
    assert tokens.shape == (1, 4, width) and ("pooled_output" in extra) == (pooled is not None)
    if pooled is not None:
        assert extra["pooled_output"].shape == (1, pooled)
    assert ("attention_mask" in extra) == (node == "StandInLTXVTextEncode")
    assert (tokens == again).all() and not (tokens == other).all()


# a workflow saved from the text-to-video example before T-Stitch Stage Sigmas took a guider (its sigmas from a pair
# beside the guider): it still loads and runs as it did
SAVED_LIGHTNING = PACK_ROOT / "tests" / "saved_workflows" / "wan22_a14b_t2v_lightning_4_4-pair-and-guider.json"


@pytest.mark.parametrize("name", ["wan22_a14b_t2v_lightning_4_4", "wan22_a14b_i2v_lightning_4_4", SAVED_LIGHTNING.stem])
def test_the_lightning_examples_give_each_expert_exactly_four_steps(name, server):
    workflow = json.loads(SAVED_LIGHTNING.read_text()) if name == SAVED_LIGHTNING.stem else load_example(name)
    api = shrink_for_cpu(use_stand_in_text_encoders(to_api(server, workflow)))
    sampler = node_id(api, "SamplerCustomAdvanced")
    api[node_id(api, "RandomNoise")]["inputs"]["noise_seed"] = 21  # a prompt the cache has not seen
    assert_success(server, server.run(api))
    texts = server.progress_texts(sampler)
    assert texts[-2:] == ["T-Stitch: small model (WAN21_T2V), steps 1-4 of 8",
                          "T-Stitch: large model (WAN21_T2V), steps 5-8 of 8"], texts


# the examples of the families people pair (issue 25), with the sampler node that reports the steps
FAMILY_EXAMPLES = {"flux1_dev_lite_8b_pair": "KSampler", "sd35_large_medium_pair": "KSampler",
                   "ltxv_13b_2b_distilled_pair": "SamplerCustom", "flux2_dev_klein_4b_guider": "SamplerCustomAdvanced"}


@pytest.mark.parametrize("name", sorted(FAMILY_EXAMPLES))
def test_the_family_examples_give_both_models_steps_on_their_shifted_schedule(name, server):
    api = example_api(server, name)
    sampler = node_id(api, FAMILY_EXAMPLES[name])
    seed = "seed" if FAMILY_EXAMPLES[name] == "KSampler" else "noise_seed"
    noise = sampler if FAMILY_EXAMPLES[name] != "SamplerCustomAdvanced" else node_id(api, "RandomNoise")
    api[noise]["inputs"][seed] = 23  # a prompt the cache has not seen
    assert_success(server, server.run(api))
    texts = server.progress_texts(sampler)
    assert any(text.startswith("T-Stitch: small model") for text in texts), texts
    assert texts[-1].startswith("T-Stitch: large model") and texts[-1].endswith(f"of {CPU_STEPS}"), texts


def test_the_lightning_loras_load_every_key_and_change_the_video(server):
    api = example_api(server, "wan22_a14b_t2v_lightning_4_4")
    api[node_id(api, "RandomNoise")]["inputs"]["noise_seed"] = 22
    log_before = len(server.log_text())
    with_loras = png_pixels(server.output_images(server.run(api))[0])
    assert "lora key not loaded" not in server.log_text()[log_before:]
    for key in [key for key, node in api.items() if node["class_type"] == "LoraLoaderModelOnly"]:
        api[key]["inputs"]["strength_model"] = 0.0
    without = png_pixels(server.output_images(server.run(api))[0])
    assert with_loras[0] == without[0] and with_loras[1] != without[1]


def test_every_example_has_a_thumbnail_and_the_template_list_names_them(server):
    import urllib.parse
    import urllib.request

    listed = server.get("/workflow_templates")
    assert sorted(listed["comfyui-tstitch"]) == sorted(example.title for example in EXAMPLES)
    for name in listed["comfyui-tstitch"]:
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/comfyui-tstitch/"
                                    f"{urllib.parse.quote(name)}.jpg") as response:
            assert response.headers["Content-Type"] == "image/jpeg" and len(response.read()) > 10_000


@pytest.mark.parametrize("node_id_", ["TStitchModelPair", "TStitchKSampler"])
def test_object_info_shows_names_categories_descriptions_and_tooltips(node_id_, server):
    info = server.object_info()[node_id_]
    assert info["display_name"] == {"TStitchModelPair": "T-Stitch Model Pair",
                                    "TStitchKSampler": "T-Stitch KSampler"}[node_id_]
    assert info["category"] == "sampling/T-Stitch"
    assert "T-Stitch" in info["description"]
    assert info["python_module"] == "custom_nodes.comfyui-tstitch"
    for name, (_, options) in info["input"]["required"].items():
        assert options.get("tooltip"), name
    assert all(info["output_tooltips"])
    # the words the README says the node search finds the pair by (the browser test searches "refiner")
    assert {"refiner", "two models", "switch model", "MoE", "high noise expert", "low noise expert", "Wan 2.2",
            "speed up", "faster"} <= set(info["search_aliases"])


def rejected(server, api):
    from tstitch_dev.server import PromptRejected

    with pytest.raises(PromptRejected) as error:
        server.queue(api)
    return error.value


@pytest.fixture(scope="module")
def pair_api(server):
    return shrink_for_cpu(to_api(server, load_example("sd15_bk-sdm-tiny_pair")))


def test_a_fraction_above_one_is_a_validation_error_at_the_pair(server, pair_api):
    api = copy.deepcopy(pair_api)
    pair = node_id(api, "TStitchModelPair")
    api[pair]["inputs"]["small_fraction"] = 2.0
    error = rejected(server, api)
    assert error.status == 400 and error.body["error"]["type"] == "prompt_outputs_failed_validation"
    (problem,) = error.body["node_errors"][pair]["errors"]
    assert problem["type"] == "value_bigger_than_max" and "small_fraction" in problem["details"]


def test_a_missing_model_link_is_a_validation_error_at_the_pair(server, pair_api):
    api = copy.deepcopy(pair_api)
    pair = node_id(api, "TStitchModelPair")
    del api[pair]["inputs"]["large_model"]
    error = rejected(server, api)
    (problem,) = error.body["node_errors"][pair]["errors"]
    assert problem["type"] == "required_input_missing" and problem["extra_info"]["input_name"] == "large_model"


def test_a_wrongly_typed_link_is_a_validation_error_at_the_pair(server, pair_api):
    api = copy.deepcopy(pair_api)
    pair = node_id(api, "TStitchModelPair")
    # the large checkpoint loader's CLIP output (the small model's loader, Load BK-SDM UNet, has only a MODEL)
    api[pair]["inputs"]["small_model"] = [api[pair]["inputs"]["large_model"][0], 1]
    error = rejected(server, api)
    (problem,) = error.body["node_errors"][pair]["errors"]
    assert problem["type"] == "return_type_mismatch" and "CLIP" in problem["details"]


def test_the_server_keeps_serving_after_rejected_prompts(server, pair_api):
    api = copy.deepcopy(pair_api)
    api[node_id(api, "TStitchModelPair")]["inputs"]["small_fraction"] = -1.0
    rejected(server, api)
    assert "KSampler" in server.get("/object_info/KSampler")
    assert_success(server, server.run(pair_api))


def test_incompatible_models_fail_at_the_pair_node_with_both_named(server, pair_api):
    api = copy.deepcopy(pair_api)
    # an SDXL small model from a loader of its own (the example's small loader reads BK-SDM's diffusers UNet only)
    api["sdxl_small"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SSD-1B-A1111.safetensors"}}
    api[node_id(api, "TStitchModelPair")]["inputs"]["small_model"] = ["sdxl_small", 0]
    entry = server.run(api)
    assert entry["status"]["status_str"] == "error"
    (error,) = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert error["node_id"] == node_id(api, "TStitchModelPair") and error["exception_type"] == "ValueError"
    assert "SDXL latents" in error["exception_message"] and "SD15 latents" in error["exception_message"]


def wait_for_sampling_step(server, prompt_id, node, step, timeout=180):
    """Until ``node`` reports a step past ``step``; fails if the prompt ends first (cached, say)."""
    deadline = time.monotonic() + timeout
    while server.sampling_progress(prompt_id, node) <= step:
        assert server.history(prompt_id) is None, "the prompt ended before it could be interrupted"
        assert time.monotonic() < deadline, "no sampling progress came"
        time.sleep(0.05)


def test_interrupting_a_stitched_run_leaves_the_next_run_like_a_clean_one(server, pair_api):
    api = shrink_for_cpu(pair_api, steps=40)
    api[node_id(api, "SaveImage")]["inputs"]["filename_prefix"] = "interrupt_test"
    pair, sampler = node_id(api, "TStitchModelPair"), node_id(api, "KSampler")
    # the clean run first; a fraction with the same 16 of 40 small steps keeps it out of the others' cache
    clean_api = copy.deepcopy(api)
    clean_api[pair]["inputs"]["small_fraction"] = 0.40001
    clean = png_pixels(server.output_images(server.run(clean_api))[0])

    prompt_id = server.queue(api)
    wait_for_sampling_step(server, prompt_id, sampler, 0)
    server.interrupt()
    entry = server.wait(prompt_id)
    interrupted = [data for kind, data in entry["status"]["messages"] if kind == "execution_interrupted"]
    assert entry["status"]["status_str"] == "error" and interrupted and interrupted[0]["node_id"] == sampler

    after = server.run(api)
    assert_success(server, after)
    assert png_pixels(server.output_images(after)[0]) == clean


def test_the_running_node_shows_which_model_runs(server, pair_api):
    api = copy.deepcopy(pair_api)
    api[node_id(api, "KSampler")]["inputs"]["seed"] = 11  # a prompt the cache has not seen
    assert_success(server, server.run(api))
    texts = server.progress_texts(node_id(api, "KSampler"))
    assert texts[-2:] == ["T-Stitch: small model (SD15), steps 1-2 of 4", "T-Stitch: large model (SD15), steps 3-4 of 4"]


def test_interrupting_a_sweep_stops_it_and_the_server_goes_on(server):
    api = shrink_for_cpu(to_api(server, load_example("sd15_fraction_sweep")), steps=20)
    sweep = node_id(api, "TStitchFractionSweep")
    prompt_id = server.queue(api)
    wait_for_sampling_step(server, prompt_id, sweep, 20)  # the second fraction is under way
    server.interrupt()
    entry = server.wait(prompt_id)
    interrupted = [data for kind, data in entry["status"]["messages"] if kind == "execution_interrupted"]
    assert interrupted and interrupted[0]["node_id"] == sweep
    assert 20 < server.sampling_progress(prompt_id, sweep) < 6 * 20
    assert_success(server, server.run(shrink_for_cpu(to_api(server, load_example("sd15_schedule_preview")))))
