"""The probe's reading of its figures (pure): NaN never agrees, steps that share a timestep are said to, and the
longest agreeing run is given as T-Stitch Stages' until, exact in the steps rule and as a range in the timestep rule."""

import math
import re

import pytest

from tstitch_core import (StepAgreement, compute_stage_handovers, describe_timestep_fractions, format_agreement_table,
                          format_stages_agreement_table, leading_agreeing_steps)
from tstitch_core.agreement import (describe_timestep_window, describe_window, format_until_fraction,
                                    longest_agreeing_run, suggest_stages)
from tstitch_core.schedule import compute_switch_index

NAN = math.nan


def agreements(cosines, t_over_t_max=None, nonfinite=None):
    t_over_t_max = t_over_t_max or [1 - i / len(cosines) for i in range(len(cosines))]
    nonfinite = nonfinite or ["" if math.isfinite(c) else "small" for c in cosines]
    return [StepAgreement(i, 10.0 - i, t, c, 1 - c, bad)
            for i, (c, t, bad) in enumerate(zip(cosines, t_over_t_max, nonfinite))]


@pytest.mark.parametrize("min_agreement", [-1.0, 0.0, 0.9])
def test_a_nan_step_never_agrees_whatever_the_threshold(min_agreement):
    steps = agreements([0.99, 0.99, NAN, 0.99])
    assert leading_agreeing_steps(steps, min_agreement) == 2
    assert compute_stage_handovers([steps], min_agreement) == [2]


def test_the_table_names_the_steps_whose_prediction_is_not_a_number():
    steps = agreements([0.99, 0.99, NAN, NAN, 0.99, NAN], nonfinite=["", "", "small", "small", "", "both"])
    table = format_agreement_table(steps, -1.0)
    first = table.splitlines()[0]
    assert first.startswith("The small model agrees (cosine >= -1) for the first 2 of 6 steps")
    assert first.endswith("Not a number at steps 3-4: the small model's prediction holds NaN or inf; step 6: the "
                          "small and large models' predictions hold NaN or inf (such a step never agrees: cosine nan "
                          "in the table).")
    assert [line.split()[3] for line in table.splitlines()[3:]] == ["0.99000", "0.99000", "nan", "nan", "0.99000", "nan"]


def test_a_prediction_that_is_nan_from_the_first_step_is_named_not_called_disagreement():
    table = format_agreement_table(agreements([NAN, NAN], nonfinite=["large", "large"]), 0.9)
    assert table.splitlines()[0].startswith("The large model's prediction holds NaN or inf from the first step: "
                                            "suggested small_fraction 0")


def test_nested_models_name_their_nan_steps_too():
    first, second = agreements([0.99, 0.99, 0.5, 0.5]), agreements([0.99, 0.99, 0.99, NAN])
    table = format_stages_agreement_table([first, second], ["small model (SD15)", "model 2 of 3 (SD15)"], 0.9)
    assert table.splitlines()[2].endswith("Alone it agrees for the first 3 steps. Not a number at step 4: the small "
                                          "model's prediction holds NaN or inf (such a step never agrees: cosine nan "
                                          "in the table).")


# a karras tail at many steps on a discrete model: steps 3 and 4 map to the same timestep
TIED = [1.0, 0.6, 0.002, 0.002, 0.001]


def test_steps_that_share_a_timestep_are_said_to_and_the_nearest_split_is_given():
    steps = agreements([1] * 5, TIED)
    text = describe_timestep_fractions(steps, 3)
    assert text.startswith("switch_by timestep: no small_fraction gives exactly 3 steps, since steps 3-4 share one "
                           "timestep (t/T 0.0020) and the rule gives them to the same model; for the first 2, "
                           "small_fraction ")
    low, high = map(float, re.search(r"small_fraction ([\d.]+) to ([\d.]+)$", text).groups())
    for shown in (low, high):  # a step is the small model's when t/T >= 1 - small_fraction
        assert sum(t >= 1 - shown for t in TIED) == 2, (shown, text)


@pytest.mark.parametrize("small", [1, 2, 4, 5])
def test_the_other_splits_of_a_tied_schedule_are_ranges_that_give_exactly_those_steps(small):
    text = describe_timestep_fractions(agreements([1] * 5, TIED), small)
    match = re.fullmatch(r"switch_by timestep: small_fraction ([\d.]+) to ([\d.]+)", text)
    assert match, text
    for shown in match.groups():
        assert sum(t >= 1 - float(shown) for t in TIED) == small, (small, text)


# the window: the longest agreeing run wherever it lies, as T-Stitch Stages' until

A, D = 0.99, 0.5  # agrees, disagrees at min_agreement 0.9


@pytest.mark.parametrize("cosines, run, until", [
    ([D, A, A, A, D, A, A, D], (1, 4), "0.125, 0.5"),
    ([A, A, D, A, A, A, D, D], (3, 6), "0.375, 0.75"),
    ([A, A, A, D, A, A, A, D], (0, 3), "0.375"),  # as long as a later run: the leading one, T-Stitch's split
    ([D, A, A, D, A, A, D, D], (1, 3), "0.125, 0.375"),  # equally long runs: the earliest
    ([D, D, D, D, D, A, A, A], (5, 8), "0.625, 1"),
    ([A] * 8, (0, 8), "1"),
    ([D] * 8, (0, 0), "0"),
    ([D, NAN, A, NAN], (2, 3), "0.5, 0.75"),  # NaN never agrees
])
def test_the_longest_agreeing_run_and_its_until(cosines, run, until):
    steps = agreements(cosines)
    assert longest_agreeing_run(steps, 0.9) == run
    assert suggest_stages(steps, 0.9) == until


def test_equally_long_runs_are_named_and_the_earliest_given():
    text = describe_window(agreements([D, A, A, D, A, A, D, A, A]), 0.9)
    assert text.startswith('Longest agreeing run of the small model: steps 2-3 of 9: suggested_stages "0.111, 0.333"')
    assert text.endswith("Steps 5-6, 8-9 agree as long; the earliest run is given.")


@pytest.mark.parametrize("steps", [*range(1, 300), 999, 1000, 1001, 1999, 2000, 4096])
def test_until_as_typed_gives_exactly_the_steps_under_the_steps_rule(steps):
    for step in range(steps + 1):
        text = format_until_fraction(step, steps)
        assert compute_switch_index(steps, float(text)) == step, (step, steps, text)
        assert len(text.split(".")[-1]) <= (3 if steps < 1000 else 4), text  # short where three places do


def route(t_over_t_max: float, a: float, b: float) -> str:
    """Models (large, small, large) under the timestep rule: a call goes to the first whose t/T >= 1 - until."""
    return "large" if t_over_t_max >= 1 - a else "small" if t_over_t_max >= 1 - b else "large"


@pytest.mark.parametrize("start, end", [(1, 2), (1, 4), (2, 4), (4, 5), (1, 5)])
def test_the_timestep_window_given_routes_exactly_those_steps_on_a_tied_schedule(start, end):
    steps = agreements([1] * 5, TIED)
    text = describe_timestep_window(steps, start, end)
    if end == 5:
        low_a, high_a = map(float, re.fullmatch(r"switch_by timestep: until a from ([\d.]+) to ([\d.]+), b 1",
                                                text).groups())
        bounds = [(low_a, 1.0), (high_a, 1.0)]
    else:
        match = re.fullmatch(r"switch_by timestep: until a from ([\d.]+) to ([\d.]+), b from ([\d.]+) to ([\d.]+)",
                             text)
        assert match, text
        low_a, high_a, low_b, high_b = map(float, match.groups())
        bounds = [(a, b) for a in (low_a, high_a) for b in (low_b, high_b)]
    for a, b in bounds:
        assert [route(t, a, b) for t in TIED] == ["large"] * start + ["small"] * (end - start) + ["large"] * (
            5 - end), (a, b, text)


@pytest.mark.parametrize("start, end", [(3, 4), (2, 3)])
def test_a_window_edge_between_steps_that_share_a_timestep_is_said_to(start, end):
    text = describe_timestep_window(agreements([1] * 5, TIED), start, end)
    assert text == (f"switch_by timestep: no until gives exactly steps {start + 1}-{end}, since steps 3-4 share one "
                    f"timestep (t/T 0.0020) and the rule gives them to the same model")
