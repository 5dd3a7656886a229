"""T-Stitch Stages: any model at any stage (large -> small -> large, as FlowBlending runs them).

A plan of stages lists, for every stage but the last, the model that runs it and the fraction of
the trajectory where it hands over (``until``); the last stage's model runs the rest. Each
fraction is read as the pair's small_fraction is: the stages before the k-th handover run the
first round(u_k x N) of the N steps (switch_by steps), or every call with t/T >= 1 - u_k
(switch_by timestep). So stage k runs between handovers k - 1 and k, and a pair with
small_fraction f is the two stages (small, large) until f.
"""

from __future__ import annotations

from typing import Sequence

from .messages import quote_input
from .schedule import SWITCH_MODES, SwitchRule

NODE_NAME = "T-Stitch Stages"


def parse_until(text: str, stages: int) -> list[float]:
    """The handover fractions from "0.2, 0.7" (or "0.2 0.7"): one per stage but the last, in [0, 1], increasing."""
    parts = text.replace(";", " ").replace(",", " ").split()
    try:
        fractions = [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"{NODE_NAME}: until {quote_input(text)} is not a list of numbers; write the fraction of the trajectory "
                         f"where each model but the last hands over, such as \"0.2, 0.7\" for three stages.") from None
    if len(fractions) != stages - 1:
        raise ValueError(f"{NODE_NAME}: until {quote_input(text)} gives {len(fractions)} fraction(s) for {stages} stages; write "
                         f"{stages - 1}, one where each model but the last hands over (\"0.2, 0.7\" for three).")
    for index, fraction in enumerate(fractions):
        if not 0.0 <= fraction <= 1.0:  # NaN too
            raise ValueError(f"{NODE_NAME}: until {quote_input(text)}: {fraction:g}, where stage {index + 1} hands over, is "
                             "outside 0 to 1; the fractions are shares of the trajectory.")
    for index, (earlier, later) in enumerate(zip(fractions, fractions[1:])):
        if later <= earlier:
            raise ValueError(f"{NODE_NAME}: until {quote_input(text)} must increase: stage {index + 2} would run from "
                             f"{earlier:g} to {later:g}, which is no part of the trajectory. Give each stage a "
                             "larger fraction than the one before it.")
    return fractions


def build_stage_rules(fractions: Sequence[float], switch_by: str) -> list[SwitchRule]:
    if switch_by not in SWITCH_MODES:
        raise ValueError(f"{NODE_NAME}: switch_by must be one of {', '.join(SWITCH_MODES)}, got {quote_input(switch_by)}.")
    return [SwitchRule(fraction, switch_by) for fraction in fractions]


def validate_stage_models(model_ids: Sequence[int], names: Sequence[str]) -> None:
    """Raise where two stages in a row would run the same model: that is one stage."""
    for index, (earlier, later) in enumerate(zip(model_ids, model_ids[1:])):
        if earlier == later:
            raise ValueError(f"{NODE_NAME}: stages {index + 1} and {index + 2} both run {names[index]}: two stages "
                             "in a row with one model are one stage. Remove one of them and its fraction from until.")


def describe_stage(index: int, model_name: str, fractions: Sequence[float]) -> str:
    """"stage 2 (model_2, SD15, 0.2 to 0.7)": how the errors, the log and the preview name a stage."""
    start = 0.0 if index == 0 else fractions[index - 1]
    end = 1.0 if index == len(fractions) else fractions[index]
    return f"stage {index + 1} ({model_name}, {start:g} to {end:g})"


def handover_settings(count: int, stage_names: Sequence[str], stages_node: bool) -> list[str]:
    """How a user sets each of ``count`` handovers, for messages: T-Stitch Stages' until values, or the
    small_fraction of each pair (a nested pair has one per model but the last)."""
    if stages_node:
        return ["until"] if count == 1 else [f"until's value {k + 1}" for k in range(count)]
    if count == 1:
        return ["small_fraction"]
    return [f"the small_fraction where the {name} hands over" for name in stage_names[:count]]
