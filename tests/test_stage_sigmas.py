"""TStitchStageSigmas: each model of a pair runs exactly its own steps, spaced by the scheduler with its own
model sampling, through SamplerCustomAdvanced with the pair; bad counts refused before the first step."""

import pytest
import torch

from tstitch_dev.models import TINY_WAN_HIGH_NOISE, TINY_WAN_LOW_NOISE
from tstitch_dev.testing import CFG, cfg_denoiser, euler


def stage_sigmas(run_node, model, counts, scheduler="normal", denoise=1.0):
    return run_node("TStitchStageSigmas", model=model, scheduler=scheduler, steps_per_model=counts,
                    denoise=denoise)[0]


@pytest.fixture(scope="module")
def custom_sample(run_node, conds, latent):
    """Sample ``model`` on ``sigmas`` through SamplerCustomAdvanced (euler, CFG, seed 0); returns the latent."""

    def sample(model, sigmas, conditioning=conds, latent_image=None):
        positive, negative = conditioning
        latent_image = latent() if latent_image is None else latent_image
        noise = run_node("RandomNoise", noise_seed=0)[0]
        guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=CFG)[0]
        sampler = run_node("KSamplerSelect", sampler_name="euler")[0]
        return run_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                        latent_image=latent_image)[0]["samples"]

    return sample


@pytest.fixture(scope="module")
def wan(load_unet, run_node):
    """Wan 2.2's experts as the recipe runs them: the high-noise one with shift 8, the low-noise one with 5."""
    shifted = lambda spec, shift: run_node("ModelSamplingSD3", model=load_unet(spec), shift=shift)[0]
    return shifted(TINY_WAN_HIGH_NOISE, 8.0), shifted(TINY_WAN_LOW_NOISE, 5.0)


@pytest.fixture(scope="module")
def wan_inputs(run_node):
    generator = torch.Generator().manual_seed(5)
    conditioning = tuple([[torch.randn(1, 16, 4096, generator=generator), {}]] for _ in range(2))
    video = run_node("EmptyHunyuanLatentVideo", width=32, height=32, length=1, batch_size=1)[0]
    return dict(conditioning=conditioning, latent_image=video)


def steps_of(calls):
    """The model of each step: euler calls each model once per step, cond and uncond batched."""
    return calls.names()


@pytest.mark.parametrize("rule, fraction", [("timestep", 0.5), ("steps", 0.4)])
@pytest.mark.parametrize("counts", ["2, 3", "4, 1", "1, 6"])
def test_each_sd_model_runs_exactly_its_steps(rule, fraction, counts, small_model, large_model, stitch, tag, calls,
                                              run_node, custom_sample):
    n1, n2 = (int(c) for c in counts.split(","))
    if rule == "steps":
        fraction = n1 / (n1 + n2)
    pair = stitch(tag(small_model, "S"), tag(large_model, "L"), fraction, rule)
    sigmas = stage_sigmas(run_node, pair, counts)
    assert len(sigmas) == n1 + n2 + 1 and float(sigmas[-1]) == 0.0
    custom_sample(pair, sigmas)
    assert steps_of(calls) == "S" * n1 + "L" * n2
