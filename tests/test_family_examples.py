"""The family examples' switch settings (issue 25): each small_fraction lies where, under switch_by timestep, both
models take steps on the schedule the example samples, at its own settings and at the server tests' (4 steps,
64 pixels). Read off the examples' graphs (tests/test_browser.py shows the committed files are those graphs)."""

import pytest

from tstitch_dev import families
from tstitch_dev.examples import EXAMPLES

pytestmark = pytest.mark.latest_host_only  # Flux.2 is on the newest host only
TEST_STEPS, TEST_SIZE, TEST_FRAMES = 4, 64, 5  # tests/test_server.py's shrink_for_cpu

LARGE = {"flux1_dev_lite_8b_pair": families.FLUX_LARGE, "sd35_large_medium_pair": families.SD35_LARGE,
         "ltxv_13b_2b_distilled_pair": families.LTXV_LARGE, "flux2_dev_klein_4b_guider": families.FLUX2_DEV_LARGE}


def widgets(example, node_type):
    (node,) = [node for node in example.nodes if node.type == node_type]
    return node.widgets


def sigmas_of(example, run_node, model, shrunk):
    """The schedule the example's sampler gets: (its sigmas, whether KSampler builds them from the model)."""
    if example.name == "ltxv_13b_2b_distilled_pair":
        latent, schedule = widgets(example, "EmptyLTXVLatentVideo"), dict(widgets(example, "LTXVScheduler"))
        size = dict(latent, **({"width": TEST_SIZE, "height": TEST_SIZE, "length": TEST_FRAMES} if shrunk else {}))
        schedule["steps"] = TEST_STEPS if shrunk else schedule["steps"]
        return run_node("LTXVScheduler", **schedule, latent=run_node("EmptyLTXVLatentVideo", **size)[0])[0]
    if example.name == "flux2_dev_klein_4b_guider":
        schedule = widgets(example, "Flux2Scheduler")
        return run_node("Flux2Scheduler", **(dict(steps=TEST_STEPS, width=TEST_SIZE, height=TEST_SIZE) if shrunk
                                             else schedule))[0]
    return None  # KSampler's: family_switch_range builds it


@pytest.mark.parametrize("shrunk", [False, True], ids=["as_shipped", "as_tested"])
@pytest.mark.parametrize("name", sorted(LARGE))
def test_the_family_example_switches_where_both_models_take_steps(name, shrunk, run_node):
    example = next(example for example in EXAMPLES if example.name == name)
    (stitch,) = [node for node in example.nodes if node.type in ("TStitchModelPair", "TStitchGuider")]
    assert stitch.widgets["switch_by"] == "timestep"
    fraction = stitch.widgets["small_fraction"]
    large = families.load_family_model(LARGE[name])
    sigmas = sigmas_of(example, run_node, large, shrunk)
    if sigmas is None:
        sampler = widgets(example, "KSampler")
        low, high = families.family_switch_range(large, sampler["scheduler"],
                                                 TEST_STEPS if shrunk else sampler["steps"], sampler["sampler_name"])
    else:
        low, high = families.timestep_fractions_where_both_run(large.get_model_object("model_sampling"), sigmas)
    assert low <= fraction < high, (fraction, low, high)
    # the title says where the small model stops: t/T >= 1 - fraction
    assert f"t/T >= {1 - fraction:g}" in stitch.title


@pytest.mark.parametrize("name", ["ae.safetensors", "flux2-vae.safetensors", "sd3.5_large_fp8_scaled.safetensors",
                                  "ltxv-13b-0.9.8-dev.safetensors"])
def test_the_family_examples_tiny_vaes_load_as_their_familys_and_decode_its_latents(name, comfy_nodes):
    # VAELoader / CheckpointLoaderSimple read each family's VAE off its weights (LTX-Video's off the checkpoint's
    # config): its latent channels and scale, and a decode of a latent of that family to pixels
    import folder_paths
    import torch

    from tstitch_dev.examples import EXAMPLE_FILES

    folder, path = next((folder, build()) for (folder, file), build in EXAMPLE_FILES.items() if file == name)
    folder_paths.add_model_folder_path(folder, str(path.parent))
    if folder == "vae":
        vae = comfy_nodes.VAELoader().load_vae(path.name)[0]
    else:
        vae = comfy_nodes.CheckpointLoaderSimple().load_checkpoint(path.name)[2]
    channels, latent = {"ae.safetensors": (16, (1, 16, 8, 8)), "flux2-vae.safetensors": (128, (1, 128, 4, 4)),
                        "sd3.5_large_fp8_scaled.safetensors": (16, (1, 16, 8, 8)),
                        "ltxv-13b-0.9.8-dev.safetensors": (128, (1, 128, 2, 2, 2))}[name]
    assert vae.latent_channels == channels
    with torch.inference_mode():
        pixels = vae.decode(torch.randn(latent, generator=torch.Generator().manual_seed(0)))
    frames = (9,) if len(latent) == 5 else ()  # LTX-Video: 1 + 8 frames a latent frame after the first
    assert tuple(pixels.shape) == (1, *frames, 64, 64, 3) and pixels.std() > 0.01
