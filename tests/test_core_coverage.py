"""tstitch_core.coverage: the one rule for a model with no step, and the fractions it offers (pure, no host)."""

import pytest

from tstitch_core import SwitchRule
from tstitch_core.coverage import (count_covered, describe_models_without_steps, fraction_range,
                                   validate_last_model_runs)
from tstitch_core.report import LARGE_ALONE, SweepPlan, resolve_sweep_plan


def flow_timestep(sigma):
    return sigma * 1000.0  # a flow model's timestep: t = 1000 sigma, T = 1000


def shifted_simple(steps, shift):
    """A flow model's simple schedule under ModelSamplingSD3's shift, written out:
    s' = shift s / (1 + (shift - 1) s)."""
    plain = [1 - i / steps for i in range(steps)] + [0.0]
    return [shift * s / (1 + (shift - 1) * s) for s in plain]


SHIFTED = shifted_simple(6, 8.0)  # 1, 0.976, 0.941, 0.889, 0.8, 0.615, 0


def check(counts, rules, sigmas=SHIFTED, names=("small model (X)", "large model (X)"), settings=("small_fraction",)):
    validate_last_model_runs(counts, list(names), rules, list(settings), sigmas, flow_timestep, 1000.0)


def test_the_shifted_schedule_starts_every_step_at_or_above_t_over_T_0_6():
    assert min(SHIFTED[:-1]) == pytest.approx(0.6154, abs=1e-4)
    assert count_covered(SwitchRule(0.4, "timestep"), SHIFTED, flow_timestep, 1000.0) == 6


def test_fraction_range_is_exactly_where_coverage_changes():
    # steps rule on 6 steps: round(6 f) >= 1 from f = 0.084 (0.0833.. rounds up only from 1/12 on), <= 5 below 11/12
    assert fraction_range("steps", 1, 5, SHIFTED, flow_timestep, 1000.0) == (0.084, 0.916)
    # timestep rule: the small model covers t/T >= 1 - f; the first step starts at 1, the last at 0.615
    low, high = fraction_range("timestep", 1, 5, SHIFTED, flow_timestep, 1000.0)
    assert low == 0.001 and high == 0.384
    for k, expected in ((384, 5), (385, 6)):  # each end checked against the routing itself
        assert count_covered(SwitchRule(k / 1000, "timestep"), SHIFTED, flow_timestep, 1000.0) == expected


def test_no_fraction_is_offered_where_none_fits():
    assert fraction_range("steps", 2, 1, SHIFTED, flow_timestep, 1000.0) is None


def test_the_last_model_with_no_step_is_refused_with_the_fractions_that_work():
    with pytest.raises(ValueError) as error:
        check([6, 0], [SwitchRule(0.4, "timestep")])
    message = str(error.value)
    assert message.startswith("T-Stitch: on the schedule being sampled the large model (X) would get no step")
    assert "every step of this schedule starts at or above t/T 0.615" in message
    assert "small model (X): steps 1-6 of 6" in message
    assert "small_fraction from 0.001 to 0.384" in message
    assert "set small_fraction to 1" in message


def test_a_steps_rule_that_rounds_to_every_step_is_refused():
    with pytest.raises(ValueError, match=r"small_fraction 0.95 of 6 steps rounds to all 6\).* small_fraction from "
                                         r"0.084 to 0.916"):
        check([6, 0], [SwitchRule(0.95, "steps")])


@pytest.mark.parametrize("counts, fraction", [
    ([6, 0], 1.0),  # asked for: the small model alone
    ([0, 6], 0.4),  # an earlier model with no step: a low-denoise pass, the later model's
    ([2, 4], 0.4),
])
def test_what_the_user_asked_for_runs(counts, fraction):
    check(counts, [SwitchRule(fraction, "timestep")])


def test_stages_name_each_until_value_and_ask_for_them_increasing():
    names = ["stage 1 (model_1, X, 0 to 0.2)", "stage 2 (model_2, X, 0.2 to 0.5)", "stage 3 (model_1, X, 0.5 to 1)"]
    with pytest.raises(ValueError) as error:
        validate_last_model_runs([1, 5, 0], names, [SwitchRule(0.2, "timestep"), SwitchRule(0.5, "timestep")],
                                 ["until's value 1", "until's value 2"], SHIFTED, flow_timestep, 1000.0,
                                 node="T-Stitch Stages")
    message = str(error.value)
    assert message.startswith("T-Stitch Stages: on the schedule being sampled the stage 3 (model_1, X, 0.5 to 1) "
                              "would get no step")
    # value 1 must leave stage 1 a step and two steps after it; value 2 two steps before it and one after
    assert "until's value 1 from 0.001 to" in message and "until's value 2 from" in message
    assert "(increasing, one step apart or more)" in message


def test_too_few_steps_for_every_model_says_so():
    with pytest.raises(ValueError, match="this schedule has 1 step.s., too few for 2 models: sample more steps"):
        check([1, 0], [SwitchRule(0.4, "timestep")], sigmas=[1.0, 0.0])


def test_models_without_steps_are_named_for_the_progress_text():
    assert describe_models_without_steps([0, 4], ["small model (X)", "large model (X)"]) == \
        "small model (X): no steps of 4"
    assert describe_models_without_steps([1, 3], ["small model (X)", "large model (X)"]) is None


@pytest.mark.parametrize("plan, last_steps, resolved, note", [
    (SweepPlan(0.0, 0.95), 0, SweepPlan(0.0, 1.0), "every step small: the same as 1"),
    (SweepPlan(0.95, 1.0), 0, LARGE_ALONE, "every step large: the same as 0"),
    (SweepPlan(0.2, 0.95), 0, SweepPlan(0.2, 1.0), "the small model to the end: the same as 0.2-1"),
    (SweepPlan(0.0, 0.4), 3, SweepPlan(0.0, 0.4), ""),
    (SweepPlan(0.0, 1.0), 0, SweepPlan(0.0, 1.0), ""),
    (LARGE_ALONE, 6, LARGE_ALONE, ""),
])
def test_a_sweep_setting_whose_last_model_gets_no_step_is_what_it_is_the_same_as(plan, last_steps, resolved, note):
    assert resolve_sweep_plan(plan, last_steps) == (resolved, note)
