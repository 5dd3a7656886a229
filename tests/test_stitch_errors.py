"""Bad inputs fail at the node, before the first step, with a message that names what differs."""

import pytest

from tstitch_dev.models import TINY_SDXL


@pytest.fixture(scope="module")
def sdxl_model(load_unet):
    return load_unet(TINY_SDXL)


def test_sd15_with_sdxl_names_both_latent_spaces(small_model, sdxl_model, stitch):
    with pytest.raises(ValueError) as error:
        stitch(small_model, sdxl_model)
    message = str(error.value)
    assert "small_model (SD15)" in message and "large_model (KOALA_700M)" in message
    assert "SD15 latents" in message and "SDXL latents" in message


def test_sdxl_small_with_sd15_large_is_rejected_too(sdxl_model, large_model, stitch):
    with pytest.raises(ValueError, match=r"small_model \(KOALA_700M\) uses SDXL latents"):
        stitch(sdxl_model, large_model)


def test_discrete_with_flow_sigmas_names_both_families(small_model, large_model, run_node, stitch):
    large_flow = run_node("ModelSamplingSD3", model=large_model, shift=3.0)[0]
    with pytest.raises(ValueError) as error:
        stitch(small_model, large_flow)
    message = str(error.value)
    assert "sigmas that mean different things" in message
    assert "(EPS)" in message and "(CONST)" in message


@pytest.mark.parametrize("fraction", [-0.1, 1.5, 2.0])
def test_fraction_outside_zero_to_one_is_rejected(fraction, small_model, large_model, stitch):
    with pytest.raises(ValueError, match=f"small_fraction must be between 0 and 1, got {fraction}"):
        stitch(small_model, large_model, fraction)


def test_unknown_switch_mode_is_rejected(small_model, large_model, stitch):
    with pytest.raises(ValueError, match="switch_by must be one of steps, timestep"):
        stitch(small_model, large_model, 0.4, "sigma")


def test_the_same_loaded_model_on_both_sides_is_rejected(small_model, stitch):
    lora_on_a_clone = small_model.clone()
    with pytest.raises(ValueError, match="small_model and large_model are the same loaded model"):
        stitch(lora_on_a_clone, small_model)


def test_nested_fractions_that_starve_the_middle_model_are_rejected(small_model, medium_model, large_model, stitch):
    with pytest.raises(ValueError, match="first has 0.6 and the next one 0.3"):
        stitch(small_model, stitch(medium_model, large_model, 0.3), 0.6)


def test_timestep_mode_needs_timesteps_that_run_from_zero(small_model, large_model, run_node, stitch):
    small_edm, large_edm = (run_node("ModelSamplingContinuousEDM", model=m, sampling="eps", sigma_max=120.0,
                                     sigma_min=0.002)[0] for m in (small_model, large_model))
    stitch(small_edm, large_edm, 0.4, "steps")  # step counting works for any model
    with pytest.raises(ValueError, match="Use switch_by 'steps' with this model"):
        stitch(small_edm, large_edm, 0.4, "timestep")


def test_stitch_ksampler_checks_its_inputs_the_same_way(small_model, sdxl_model, run_node, conds, latent):
    positive, negative = conds
    with pytest.raises(ValueError, match="SD15 latents"):
        run_node("TStitchKSampler", small_model=small_model, large_model=sdxl_model, small_fraction=0.4,
                 switch_by="steps", seed=0, steps=10, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=positive, negative=negative, latent_image=latent())
