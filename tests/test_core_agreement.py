"""The probe's reading of its figures (pure): NaN never agrees, and steps that share a timestep are said to."""

import math
import re

import pytest

from tstitch_core import (StepAgreement, compute_stage_handovers, describe_timestep_fractions, format_agreement_table,
                          format_stages_agreement_table, leading_agreeing_steps)

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
    assert [line.split()[3] for line in table.splitlines()[2:]] == ["0.9900", "0.9900", "nan", "nan", "0.9900", "nan"]


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
