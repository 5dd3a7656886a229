"""The README's recipes with tiny random-weight models of each family, through ComfyUI's loaders:
Wan 2.2 A14B's two experts at the published boundary, Wan 2.1 1.3B -> 14B, and SDXL + SSD-1B with a
LoRA and LCM sampling on each model."""

import pytest
import torch

from tstitch_dev.models import (TINY_SDXL, TINY_SDXL_SMALL, TINY_WAN_HIGH_NOISE, TINY_WAN_LARGE, TINY_WAN_LOW_NOISE,
                                TINY_WAN_SMALL, ensure_lora, ensure_wan_vae)


@pytest.fixture(scope="module")
def wan_conds():
    # UMT5-XXL text embeddings' shape; the encoder itself is 5.7B parameters, too big to build here
    generator = torch.Generator().manual_seed(5)
    return tuple([[torch.randn(1, 16, 4096, generator=generator), {}]] for _ in range(2))


@pytest.fixture(scope="module")
def video_latent(run_node):
    return run_node("EmptyHunyuanLatentVideo", width=64, height=64, length=1, batch_size=1)[0]


@pytest.fixture(scope="module")
def shifted(run_node):
    """A model with ModelSamplingSD3's shift, as Wan workflows set it."""
    return lambda model, shift: run_node("ModelSamplingSD3", model=model, shift=shift)[0]


@pytest.mark.parametrize("boundary", [0.875, 0.9])  # Wan 2.2 A14B: text-to-video, image-to-video
def test_wan22_experts_switch_at_the_published_boundary(boundary, load_unet, shifted, stitch, ksample, tag, calls,
                                                        wan_conds, video_latent):
    high = tag(shifted(load_unet(TINY_WAN_HIGH_NOISE), 8.0), "H")
    low = tag(shifted(load_unet(TINY_WAN_LOW_NOISE), 8.0), "L")
    out = ksample(stitch(high, low, round(1 - boundary, 6), "timestep"), "euler", "simple", steps=20,
                  conds=wan_conds, latent_image=video_latent)
    assert torch.isfinite(out).all()
    # the high-noise expert runs every timestep t >= boundary * T, T = 1000 (t / T is sigma for flow models)
    assert [name for name, _ in calls] == ["H" if sigma >= boundary else "L" for _, sigma in calls]
    assert "H" in calls.names() and "L" in calls.names()


def test_the_schedule_follows_the_low_noise_experts_shift(load_unet, shifted, stitch, ksample, tag, calls,
                                                          wan_conds, video_latent):
    import comfy.samplers

    low = shifted(load_unet(TINY_WAN_LOW_NOISE), 8.0)
    # a different shift on the high-noise expert changes neither the schedule nor the boundary
    ksample(stitch(tag(shifted(load_unet(TINY_WAN_HIGH_NOISE), 3.0), "H"), tag(low, "L"), 0.125, "timestep"),
            "euler", "simple", steps=20, conds=wan_conds, latent_image=video_latent)
    schedule = comfy.samplers.calculate_sigmas(low.get_model_object("model_sampling"), "simple", 20).tolist()
    assert [sigma for _, sigma in calls] == pytest.approx(schedule[:-1], rel=1e-6)
    assert [name for name, _ in calls] == ["H" if sigma >= 0.875 else "L" for _, sigma in calls]


def test_wan21_small_model_for_the_first_steps_of_the_large_one(load_unet, shifted, stitch, ksample, tag, calls,
                                                                 wan_conds, video_latent, run_node, comfy_host):
    import folder_paths

    small, large = (shifted(load_unet(spec), 8.0) for spec in (TINY_WAN_SMALL, TINY_WAN_LARGE))
    out = ksample(stitch(tag(small, "S"), tag(large, "L"), 0.4), "uni_pc", "simple", conds=wan_conds,
                  latent_image=video_latent)
    assert calls.names() == "SSSS" + "LLLLLL"
    vae_path = ensure_wan_vae()
    folder_paths.add_model_folder_path("vae", str(vae_path.parent))
    vae = run_node("VAELoader", vae_name=vae_path.name)[0]
    frames = run_node("VAEDecode", vae=vae, samples={"samples": out})[0]
    assert frames.shape == (1, 64, 64, 3) and torch.isfinite(frames).all()


@pytest.fixture(scope="module")
def lcm_with_lora(load_unet, run_node, comfy_host):
    """A test SDXL-family model with its own random LoRA (LoraLoaderModelOnly) and LCM model sampling."""
    import folder_paths

    def make(spec, seed):
        path = ensure_lora(spec, seed)
        folder_paths.add_model_folder_path("loras", str(path.parent))
        model = run_node("LoraLoaderModelOnly", model=load_unet(spec), lora_name=path.name, strength_model=1.0)[0]
        return run_node("ModelSamplingDiscrete", model=model, sampling="lcm", zsnr=False)[0]

    return make


@pytest.fixture(scope="module")
def sdxl_conds():
    generator = torch.Generator().manual_seed(8)
    return tuple([[torch.randn(1, 77, 2048, generator=generator), {"pooled_output": torch.randn(1, 1280,
                                                                                                  generator=generator)}]]
                 for _ in range(2))


def test_sdxl_and_ssd1b_each_with_its_own_lcm_lora(lcm_with_lora, load_unet, run_node, stitch, ksample, sdxl_conds,
                                                   tag, calls):
    small, large = lcm_with_lora(TINY_SDXL_SMALL, 1), lcm_with_lora(TINY_SDXL, 2)
    settings = dict(sampler_name="lcm", scheduler="sgm_uniform", steps=6, cfg=1.5, conds=sdxl_conds)
    ksample(stitch(tag(small, "S"), tag(large, "L"), 0.5), **settings)
    assert calls.names() == "SSS" + "LLL"
    # each model with its own LoRA and LCM sampling: f = 1 and f = 0 are each model's own LCM run
    assert torch.equal(ksample(stitch(small, large, 1.0), **settings), ksample(small, **settings))
    assert torch.equal(ksample(stitch(small, large, 0.0), **settings), ksample(large, **settings))
    lcm_without_lora = run_node("ModelSamplingDiscrete", model=load_unet(TINY_SDXL_SMALL), sampling="lcm",
                                zsnr=False)[0]
    assert not torch.equal(ksample(stitch(small, large, 1.0), **settings),
                           ksample(stitch(lcm_without_lora, large, 1.0), **settings))
