"""tstitch_core.validation: the checks run before the first step (pure, no host)."""

import math

import pytest

from tstitch_core import (ModelFacts, SwitchRule, check_blocks_line_up, describe_sigma_range_mismatch,
                          validate_fraction, validate_pair, validate_rule, validate_stage_coverage,
                          validate_stage_order, validate_timestep_range)

SD15 = ModelFacts("small_model (SD15)", "SD15", 4, 4, "EPS", 0.0292, 14.6146)
SD15_LARGE = ModelFacts("large_model (SD15)", "SD15", 4, 4, "EPS", 0.0292, 14.6146)


def facts(**changes):
    values = dict(SD15_LARGE.__dict__)
    values.update(changes)
    return ModelFacts(**values)


@pytest.mark.parametrize("fraction", [-0.01, 1.01, 2.0, math.nan])
def test_fraction_outside_unit_interval_is_rejected_with_its_value(fraction):
    with pytest.raises(ValueError, match="small_fraction must be between 0 and 1, got"):
        validate_fraction(fraction)


def test_unknown_switch_mode_is_rejected():
    with pytest.raises(ValueError, match="switch_by must be one of steps, timestep, got 'sigma'"):
        validate_rule(SwitchRule(0.4, "sigma"))


def test_same_family_pair_passes():
    validate_pair(SD15, SD15_LARGE)


def test_noise_scalings_with_the_same_formula_may_be_mixed():
    # CogVideoX's v-prediction adds noise as EPS does: the same sigma is the same noise level
    validate_pair(SD15, facts(noise_scaling="V_PREDICTION_DDPM"))


def test_different_latent_formats_name_both_models_and_formats():
    with pytest.raises(ValueError) as error:
        validate_pair(SD15, facts(name="large_model (SDXL)", latent_format="SDXL"))
    message = str(error.value)
    assert "small_model (SD15)" in message and "large_model (SDXL)" in message
    assert "SD15 latents" in message and "SDXL latents" in message


def test_different_latent_channels_are_rejected():
    with pytest.raises(ValueError, match="16 channels"):
        validate_pair(SD15, facts(latent_channels=16))


def test_different_input_channels_name_the_inpainting_variant():
    with pytest.raises(ValueError, match="takes 4 input channels .* takes 9"):
        validate_pair(SD15, facts(in_channels=9))


def test_discrete_and_flow_sigmas_are_rejected_naming_both_families():
    with pytest.raises(ValueError) as error:
        validate_pair(SD15, facts(noise_scaling="CONST"))
    assert "x = x0 + sigma * noise" in str(error.value)
    assert "flow: x = (1 - sigma) * x0 + sigma * noise" in str(error.value)


def test_sigma_range_mismatch_is_described_not_rejected():
    assert describe_sigma_range_mismatch(SD15, SD15_LARGE) is None
    warning = describe_sigma_range_mismatch(SD15, facts(sigma_max=4500.0))
    assert "4500" in warning and "14.61" in warning


def test_nested_fractions_may_not_decrease():
    validate_stage_order([SwitchRule(0.2), SwitchRule(0.5)])
    validate_stage_order([SwitchRule(0.5), SwitchRule(0.5)])
    # different units cannot be compared, so they are not
    validate_stage_order([SwitchRule(0.6, "timestep"), SwitchRule(0.5, "steps")])
    with pytest.raises(ValueError, match="first has 0.6 and the next one 0.4"):
        validate_stage_order([SwitchRule(0.6), SwitchRule(0.4)])


def test_timestep_mode_needs_timesteps_from_zero_to_T():
    validate_timestep_range("large_model (SD15)", 0.0, 999.0)
    validate_timestep_range("large_model (Flux)", 0.001, 1.0)
    with pytest.raises(ValueError, match=r"run from -1\.554 to 1\.095"):
        validate_timestep_range("large_model (EDM)", -1.554, 1.095)


SDXL_LIKE = {"model_channels": 320, "channel_mult": [1, 2, 4], "num_res_blocks": [2, 2, 2],
             "transformer_depth": [0, 0, 2, 2, 10, 10], "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "transformer_depth_middle": 10, "context_dim": 2048}


def test_blocks_line_up_when_pruning_only_removes_transformers():
    ssd_1b_like = {**SDXL_LIKE, "transformer_depth": [0, 0, 2, 2, 4, 4],
                   "transformer_depth_output": [0, 0, 0, 1, 1, 1, 4, 4, 4], "transformer_depth_middle": 1}
    assert check_blocks_line_up(ssd_1b_like, SDXL_LIKE)


def test_blocks_do_not_line_up_without_the_same_blocks():
    fewer_res_blocks = {**SDXL_LIKE, "num_res_blocks": [1, 1, 1]}
    no_middle_block = {**SDXL_LIKE, "transformer_depth_middle": -2}
    narrower = {**SDXL_LIKE, "channel_mult": [1, 2, 2]}
    for small in (fewer_res_blocks, no_middle_block, narrower):
        assert not check_blocks_line_up(small, SDXL_LIKE)


def test_stage_coverage_is_checked_on_the_schedule_for_mixed_rules():
    rules = [SwitchRule(0.6, "timestep"), SwitchRule(0.2, "steps")]
    validate_stage_coverage(rules, [2, 6], 10)
    validate_stage_coverage(rules, [4, 4], 10)  # equal: the middle model runs no step, as with equal fractions
    with pytest.raises(ValueError) as error:
        validate_stage_coverage(rules, [6, 2], 10)
    message = str(error.value)
    assert "small_fraction 0.6, switch_by timestep) covers steps 1-6 of 10" in message
    assert "small_fraction 0.2, switch_by steps) covers only steps 1-2 of 10" in message


def test_a_class_conditioned_model_with_a_text_conditioned_one_names_both_conditionings():
    # DiT and SD1.5 share SD's latents and eps sigmas: only what they are conditioned on tells them apart
    dit = ModelFacts("small_model (DiTImageNet)", "SD15", 4, 4, "EPS", 0.01, 157.4, conditioning="an ImageNet class")
    with pytest.raises(ValueError, match="small_model .* takes an ImageNet class, large_model .* takes a text prompt"):
        validate_pair(dit, SD15_LARGE)
    validate_pair(dit, facts(conditioning="an ImageNet class"))


def test_messages_quote_at_most_200_characters_of_an_input_and_say_how_long_it_was():
    from tstitch_core.messages import quote_input

    assert quote_input("0.2, 0.7") == "'0.2, 0.7'"
    assert quote_input("x" * 200) == repr("x" * 200)
    assert quote_input("x" * 201) == f"{'x' * 200!r}... (201 characters)"
    assert quote_input(1.5) == "'1.5'"


def test_the_sweeps_old_fractions_parser_quotes_a_bad_token_short():
    from tstitch_core import parse_fractions

    with pytest.raises(ValueError) as error:
        parse_fractions("0.2 " + "y" * 10_000)
    assert str(error.value) == f"fractions: {'y' * 200!r}... (10000 characters) is not a small_fraction between 0 and 1."


def test_a_denoise_too_small_for_its_schedule_is_refused_with_the_smallest_that_fits():
    from tstitch_core.validation import validate_denoise

    validate_denoise(20, 0.0)  # no step: ComfyUI's own answer
    validate_denoise(10000, 0.01)  # a schedule of 1000000 sigmas
    with pytest.raises(ValueError) as error:  # was OverflowError: cannot convert float infinity to integer
        validate_denoise(2, 5e-324)
    assert str(error.value) == ("T-Stitch: denoise 4.94066e-324 with 2 steps asks for a schedule of inf steps (ComfyUI "
                                "computes steps / denoise of them and runs the last 2); at most 1000000 fit. Raise "
                                "denoise to 2e-06 or more, or set it to 0 to run no step.")
