"""tstitch_core.schedule: which stage each model call belongs to (pure, no host)."""

import math

import pytest

from tstitch_core import (ALWAYS, NEVER, SwitchPoint, SwitchRule, compute_switch_index, compute_switch_point,
                          count_covered_steps, count_stage_steps, pick_stage)

# a 10-step schedule, as ComfyUI passes it in transformer_options["sample_sigmas"]
SIGMAS = [14.6, 9.7, 6.6, 4.6, 3.2, 2.2, 1.5, 0.9, 0.5, 0.03, 0.0]


def identity_timestep(sigma):
    return sigma


@pytest.mark.parametrize("steps, fraction, expected", [
    (10, 0.4, 4), (10, 0.0, 0), (10, 1.0, 10), (10, 0.35, 4), (10, 0.45, 5), (5, 0.5, 3), (20, 0.33, 7),
    (3, 0.4, 1), (1, 0.49, 0), (1, 0.5, 1), (25, 0.4, 10),
])
def test_switch_index_is_fraction_of_steps_rounded_half_up(steps, fraction, expected):
    assert compute_switch_index(steps, fraction) == expected


def test_steps_rule_switches_at_the_sigma_that_starts_step_k():
    point = compute_switch_point(SwitchRule(0.4, "steps"), SIGMAS, timestep_max=999.0)
    assert point == SwitchPoint(3.2, inclusive=False)
    stages = [pick_stage([point], s, identity_timestep) for s in SIGMAS[:-1]]
    assert stages == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]


def test_an_evaluation_exactly_at_the_switch_sigma_goes_to_the_later_model():
    point = compute_switch_point(SwitchRule(0.4), SIGMAS, timestep_max=999.0)
    assert pick_stage([point], 3.2, identity_timestep) == 1
    assert pick_stage([point], math.nextafter(3.2, math.inf), identity_timestep) == 0
    # a midpoint inside the last small step (2S and SDE samplers) stays small
    assert pick_stage([point], 3.9, identity_timestep) == 0


@pytest.mark.parametrize("switch_by", ["steps", "timestep"])
def test_fraction_zero_never_and_one_always_runs_the_earlier_model(switch_by):
    assert compute_switch_point(SwitchRule(0.0, switch_by), SIGMAS, 999.0) == NEVER
    assert compute_switch_point(SwitchRule(1.0, switch_by), SIGMAS, 999.0) == ALWAYS
    # even a churned sigma above the schedule's first one (s_churn) stays with the large model at f = 0
    assert pick_stage([NEVER], 20.0, identity_timestep) == 1
    assert pick_stage([ALWAYS], 0.0, identity_timestep) == 0


def test_small_fractions_that_round_to_zero_steps_never_switch():
    assert compute_switch_point(SwitchRule(0.04), SIGMAS, 999.0) == NEVER
    assert compute_switch_point(SwitchRule(0.96), SIGMAS, 999.0) == ALWAYS


def test_timestep_rule_is_t_over_T_at_least_one_minus_f():
    # t = 10 * sigma, T = 100: calls with t / T >= 0.7 go to the small model
    point = compute_switch_point(SwitchRule(0.3, "timestep"), SIGMAS, timestep_max=100.0)
    timestep_of = lambda sigma: 10.0 * sigma  # noqa: E731
    assert pick_stage([point], 7.0, timestep_of) == 0  # t / T == 0.7 exactly: small
    assert pick_stage([point], 6.99, timestep_of) == 1
    assert pick_stage([point], 9.0, timestep_of) == 0


def test_timestep_rule_does_not_depend_on_the_schedule():
    point_a = compute_switch_point(SwitchRule(0.3, "timestep"), SIGMAS, 999.0)
    point_b = compute_switch_point(SwitchRule(0.3, "timestep"), SIGMAS[3:], 999.0)
    assert point_a == point_b


def test_three_stages_take_consecutive_shares_of_one_trajectory():
    points = [compute_switch_point(SwitchRule(f), SIGMAS, 999.0) for f in (0.2, 0.5)]
    assert count_stage_steps(points, SIGMAS, identity_timestep) == [2, 3, 5]


def test_count_stage_steps_counts_each_step_by_its_starting_sigma():
    points = [compute_switch_point(SwitchRule(0.4), SIGMAS, 999.0)]
    assert count_stage_steps(points, SIGMAS, identity_timestep) == [4, 6]
    assert count_stage_steps([NEVER], SIGMAS, identity_timestep) == [0, 10]


def test_steps_rule_does_not_read_timesteps():
    point = compute_switch_point(SwitchRule(0.4), SIGMAS, 999.0)

    def fail(sigma):
        raise AssertionError("steps mode must not convert sigmas to timesteps")

    assert pick_stage([point], 5.0, fail) == 0


def test_stage_steps_are_described_in_words():
    from tstitch_core import describe_stage_steps

    assert describe_stage_steps([4, 6]) == ["steps 1-4 of 10", "steps 5-10 of 10"]
    assert describe_stage_steps([0, 1, 9]) == ["no steps of 10", "step 1 of 10", "steps 2-10 of 10"]


def test_covered_steps_are_each_points_own_prefix_before_routing():
    steps_point = compute_switch_point(SwitchRule(0.2, "steps"), SIGMAS, timestep_max=999.0)
    timestep_point = compute_switch_point(SwitchRule(0.6, "timestep"), SIGMAS, timestep_max=999.0)
    # with t = 100 sigma, t >= 399.6 covers the steps from sigmas 14.6 to 4.6: four
    assert count_covered_steps([steps_point], SIGMAS, identity_timestep) == [2]
    assert count_covered_steps([timestep_point], SIGMAS, lambda s: s * 100) == [4]
    assert count_covered_steps([NEVER, ALWAYS], SIGMAS, identity_timestep) == [0, 10]
