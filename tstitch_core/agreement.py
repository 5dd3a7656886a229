"""Where a small model stops agreeing with the large one along the large model's own trajectory, and the
largest small_fraction whose small steps all still agree; for nested pairs, the same for each model in turn.
Also the longest run of agreeing steps wherever it lies: a window for T-Stitch Stages (large, small, large)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .schedule import compute_switch_index, describe_stage_steps


DEFAULT_MIN_AGREEMENT = 0.9996  # calibrated on the shipped digits pair: bench/results/trained-digits-*


@dataclass(frozen=True)
class StepAgreement:
    step: int  # 0-based
    sigma: float
    t_over_t_max: float  # the diffusion time the timestep rule reads
    cosine: float  # of the two denoised predictions (x0), flattened
    rel_l2: float  # |small - large| / |large|
    nonfinite: str = ""  # which prediction holds NaN or inf: "", "small", "large" or "both"

    def agrees(self, min_agreement: float) -> bool:
        """A NaN cosine (a prediction with NaN in it) is no agreement, whatever the threshold."""
        return self.cosine >= min_agreement


def validate_min_agreement(min_agreement: float) -> float:
    """Return ``min_agreement``, or raise where it is no cosine (-1 to 1): NaN, which every comparison fails, comes
    through the API past the schema's bounds."""
    if not -1.0 <= min_agreement <= 1.0:
        raise ValueError(f"T-Stitch Agreement Probe: min_agreement {min_agreement} is not a cosine similarity; give "
                         "a number from -1 to 1, such as 0.9.")
    return float(min_agreement)


def leading_agreeing_steps(agreements: Sequence[StepAgreement], min_agreement: float, start: int = 0) -> int:
    """How many steps from step ``start`` (0-based) on keep cosine agreement at or above ``min_agreement``."""
    count = 0
    for agreement in agreements[start:]:
        if not agreement.agrees(min_agreement):
            break
        count += 1
    return count


def suggested_fraction(agreements: Sequence[StepAgreement], min_agreement: float) -> float:
    """The largest small_fraction (switch_by steps, on this schedule) whose small steps all agree: k / N."""
    return leading_agreeing_steps(agreements, min_agreement) / len(agreements)


def compute_stage_handovers(stages: Sequence[Sequence[StepAgreement]], min_agreement: float) -> list[int]:
    """The step at which each model of a nested pair hands over to the next, smallest model first: each takes
    every following step that keeps its own agreement with the large model, from where the one before stopped.

    Args:
        stages: each model's agreement at every step of one schedule, in trajectory order (the large model's
            own not included). ``handovers[j] / N`` is the small_fraction of the pair whose small side ends
            with model ``j``; the fractions never decrease, as nested pairs require.
    """
    handovers, start = [], 0
    for agreements in stages:
        start += leading_agreeing_steps(agreements, min_agreement, start)
        handovers.append(start)
    return handovers


def timestep_fraction_range(agreements: Sequence[StepAgreement], small_steps: int) -> tuple[float, float]:
    """[low, high): the small_fraction values for switch_by timestep that give the small model exactly the first
    ``small_steps`` steps of this schedule (a call is the small model's when t/T >= 1 - small_fraction)."""
    low = 0.0 if small_steps == 0 else 1.0 - agreements[small_steps - 1].t_over_t_max
    high = 1.0 if small_steps == len(agreements) else 1.0 - agreements[small_steps].t_over_t_max
    return max(0.0, low), min(1.0, high)


def timestep_can_split(agreements: Sequence[StepAgreement], small_steps: int) -> bool:
    """Whether some switch_by timestep small_fraction gives exactly the first ``small_steps`` steps: not where the
    last of them and the next share a timestep (a discrete model's schedule tail, as karras at many steps)."""
    return small_steps in (0, len(agreements)) or (
        agreements[small_steps - 1].t_over_t_max > agreements[small_steps].t_over_t_max)


def typed_timestep_fractions(agreements: Sequence[StepAgreement], small_steps: int) -> tuple[str, str]:
    """The lowest and highest switch_by timestep small_fraction, in values of 0.001 that can be typed as shown,
    that give exactly the first ``small_steps`` steps (``timestep_can_split`` must hold): the lowest rounded up,
    the highest the last one below the next step's; more places only when the range is narrower than 0.001."""
    low, high = timestep_fraction_range(agreements, small_steps)
    for places in (3, 6):
        scale = 10 ** places
        # a bound within float noise of a printed value is treated as that value, and that value left out
        first = math.ceil(low * scale + 1e-6) / scale
        last = 1.0 if small_steps == len(agreements) else (math.ceil(high * scale - 1e-6) - 1) / scale
        if first <= last:
            break
    return f"{first:.{places}f}", f"{last:.{places}f}"


def describe_tied_timestep(agreements: Sequence[StepAgreement], small_steps: int) -> str:
    """Which steps around step ``small_steps`` share one timestep, so that the timestep rule cannot split there."""
    t = agreements[small_steps].t_over_t_max
    tied = [a.step + 1 for a in agreements if a.t_over_t_max == t]
    return f"steps {tied[0]}-{tied[-1]} share one timestep (t/T {t:.4f}) and the rule gives them to the same model"


def describe_timestep_fractions(agreements: Sequence[StepAgreement], small_steps: int) -> str:
    """The switch_by timestep small_fractions that give exactly the first ``small_steps`` steps, in values of
    0.001 that can be typed as shown. Where no value can (steps that share a timestep), says so and gives the
    range for the most steps below that it can give."""
    if not timestep_can_split(agreements, small_steps):
        fewer = max(k for k in range(small_steps) if timestep_can_split(agreements, k))
        return (f"switch_by timestep: no small_fraction gives exactly {small_steps} steps, since "
                f"{describe_tied_timestep(agreements, small_steps)}; "
                f"for the first {fewer}, {describe_timestep_fractions(agreements, fewer).split(': ', 1)[1]}")
    if small_steps == 0:
        return "switch_by timestep: small_fraction 0"
    first, last = typed_timestep_fractions(agreements, small_steps)
    return f"switch_by timestep: small_fraction {first} to {last}"


def describe_suggestion(agreements: Sequence[StepAgreement], min_agreement: float) -> str:
    steps = len(agreements)
    small = leading_agreeing_steps(agreements, min_agreement)
    if small == 0:
        if agreements[0].nonfinite:
            return (f"The {prediction_words(agreements[0].nonfinite)} NaN or inf from the first step: suggested "
                    f"small_fraction 0, the large model alone.{describe_nonfinite(agreements)}")
        return (f"The small model disagrees from the first step (cosine {agreements[0].cosine:.5f} < "
                f"{min_agreement:g}): suggested small_fraction 0, the large model alone. Lower min_agreement, or "
                f"pair models that share more (a distilled or pruned copy of the large model).")
    return (f"The small model agrees (cosine >= {min_agreement:g}) for the first {small} of {steps} steps: "
            f"suggested small_fraction {small / steps:.3f} (switch_by steps); on this schedule, "
            f"{describe_timestep_fractions(agreements, small)}.{describe_nonfinite(agreements)}")


def prediction_words(nonfinite: str) -> str:
    return {"small": "small model's prediction holds", "large": "large model's prediction holds",
            "both": "small and large models' predictions hold"}[nonfinite]


def describe_nonfinite(agreements: Sequence[StepAgreement]) -> str:
    """A sentence naming the steps where a prediction is not a number (empty when there are none): they never agree."""
    steps = [a for a in agreements if a.nonfinite]
    if not steps:
        return ""
    runs = []  # (first step, last step, which), consecutive steps with the same model at fault
    for a in steps:
        if runs and runs[-1][1] == a.step and runs[-1][2] == a.nonfinite:
            runs[-1][1] = a.step + 1
        else:
            runs.append([a.step + 1, a.step + 1, a.nonfinite])
    words = "; ".join(f"step{'s' if first != last else ''} {first}{f'-{last}' if first != last else ''}: the "
                      f"{prediction_words(which)} NaN or inf" for first, last, which in runs)
    return f" Not a number at {words} (such a step never agrees: cosine nan in the table)."


def window_models(agreements: Sequence[StepAgreement], min_agreement: float) -> list[str]:
    """The table's "stages" column: the model ``suggest_stages`` gives each step, "small" or "large"."""
    start, end = longest_agreeing_run(agreements, min_agreement)
    return ["small" if start <= step < end else "large" for step in range(len(agreements))]


def format_agreement_table(agreements: Sequence[StepAgreement], min_agreement: float) -> str:
    """The suggestion, the window, then each step's figures; "model" is the step's model under
    suggested_fraction, "stages" under suggested_stages."""
    small = leading_agreeing_steps(agreements, min_agreement)
    header = ("step", "sigma", "t/T", "cosine", "rel. L2", "model", "stages")
    lines = [header] + [(str(a.step + 1), f"{a.sigma:.4g}", f"{a.t_over_t_max:.3f}", f"{a.cosine:.5f}",
                         f"{a.rel_l2:.4f}", "small" if a.step < small else "large", window)
                        for a, window in zip(agreements, window_models(agreements, min_agreement))]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)
    return "\n".join([describe_suggestion(agreements, min_agreement), describe_window(agreements, min_agreement),
                      table])


def stage_names(count: int) -> list[str]:
    """Short names for the table's columns: the models before the large one, smallest first."""
    return ["small"] if count == 1 else ["small"] + [f"model{i + 1}" for i in range(1, count)]


def describe_stage_suggestions(stages: Sequence[Sequence[StepAgreement]], labels: Sequence[str],
                               min_agreement: float) -> list[str]:
    handovers = compute_stage_handovers(stages, min_agreement)
    steps = len(stages[0])
    counts = [b - a for a, b in zip([0, *handovers], [*handovers, steps])]
    lines = [f"{len(stages)} models before the large one, each asked at every step of the large model's trajectory; "
             f"each takes the steps that keep its cosine >= {min_agreement:g}, the smallest model first:"]
    for agreements, label, words, handover in zip(stages, labels, describe_stage_steps(counts), handovers):
        alone = leading_agreeing_steps(agreements, min_agreement)
        lines.append(f"- {label}: {words}; it hands over at small_fraction {handover / steps:.3f} (switch_by steps); "
                     f"on this schedule, {describe_timestep_fractions(agreements, handover)}. Alone it agrees for "
                     f"the first {alone} step{'' if alone == 1 else 's'}.{describe_nonfinite(agreements)}")
    return lines


def format_stages_agreement_table(stages: Sequence[Sequence[StepAgreement]], labels: Sequence[str],
                                  min_agreement: float) -> str:
    """The suggestion for every model before the large one, then each step's figures with a column pair per model."""
    if len(stages) == 1:
        return format_agreement_table(stages[0], min_agreement)
    handovers = compute_stage_handovers(stages, min_agreement)
    names = stage_names(len(stages))
    header = ("step", "sigma", "t/T", *(f"{kind} {name}" for name in names for kind in ("cosine", "rel.L2")), "model",
              "stages")
    lines = [header]
    # suggested_stages is the smallest model's window, against the large model alone
    for step, (first, window) in enumerate(zip(stages[0], window_models(stages[0], min_agreement))):
        # the cosine to 5 places: good pairs differ in the fourth (the default threshold is 0.999x)
        figures = [f"{value:.{places}f}" for agreements in stages
                   for value, places in ((agreements[step].cosine, 5), (agreements[step].rel_l2, 4))]
        model = next((name for name, handover in zip(names, handovers) if step < handover), "large")
        lines.append((str(step + 1), f"{first.sigma:.4g}", f"{first.t_over_t_max:.3f}", *figures, model, window))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)
    return "\n".join([*describe_stage_suggestions(stages, labels, min_agreement),
                      describe_window(stages[0], min_agreement, f"the {labels[0]}") + " suggested_stages is the "
                      "smallest model's window, against the large model alone: the models between them play no part "
                      "in it.", table])


def longest_agreeing_run(agreements: Sequence[StepAgreement], min_agreement: float) -> tuple[int, int]:
    """(start, end), 0-based and end excluded: the longest run of consecutive steps that agree, the earliest of
    equally long runs (so a leading run that is as long as any other is T-Stitch's split); (0, 0) when no step
    agrees."""
    best, start = (0, 0), None
    for agreement in [*agreements, None]:  # None closes a run that reaches the last step
        if agreement is not None and agreement.agrees(min_agreement):
            start = agreement.step if start is None else start
            continue
        if start is not None:
            end = agreement.step if agreement is not None else len(agreements)
            if end - start > best[1] - best[0]:
                best = (start, end)
            start = None
    return best


def format_until_fraction(step: int, steps: int) -> str:
    """``step / steps`` as T-Stitch Stages' ``until`` is typed: three places, trailing zeros dropped, and more
    places where three would round to another step under the steps rule (round(u * N), above 1000 steps)."""
    for places in range(3, 10):
        text = f"{step / steps:.{places}f}".rstrip("0").rstrip(".")
        if compute_switch_index(steps, float(text)) == step:
            return text
    return repr(step / steps)


def suggest_stages(agreements: Sequence[StepAgreement], min_agreement: float) -> str:
    """T-Stitch Stages' ``until`` for the longest agreeing run (switch_by steps, exact on this schedule):
    "a, b" for models (large, small, large), the small one running steps round(a N) + 1 to round(b N); just "b"
    when the run starts at step 1, for models (small, large): T-Stitch's split, as ``suggested_fraction``; "0"
    when no step agrees (no small steps: the large model alone). A run that reaches the last step gives b = 1,
    an empty last stage."""
    start, end = longest_agreeing_run(agreements, min_agreement)
    steps = len(agreements)
    if start == end:
        return "0"
    if start == 0:
        return format_until_fraction(end, steps)
    return f"{format_until_fraction(start, steps)}, {format_until_fraction(end, steps)}"


def describe_timestep_window(agreements: Sequence[StepAgreement], start: int, end: int) -> str:
    """The switch_by timestep ``until`` values "a, b" that give the small model exactly steps start + 1 to end
    with models (large, small, large): a call goes to the first model whose t/T >= 1 - until, so a ranges as the
    small_fraction of a pair giving the first ``start`` steps and b as one giving the first ``end``."""
    for boundary in (start, end):
        if not timestep_can_split(agreements, boundary):
            return (f"switch_by timestep: no until gives exactly steps {start + 1}-{end}, since "
                    f"{describe_tied_timestep(agreements, boundary)}")
    (a_low, a_high), (b_low, b_high) = (typed_timestep_fractions(agreements, k) for k in (start, end))
    if end == len(agreements):
        return f"switch_by timestep: until a from {a_low} to {a_high}, b 1"
    return f"switch_by timestep: until a from {a_low} to {a_high}, b from {b_low} to {b_high}"


def describe_window(agreements: Sequence[StepAgreement], min_agreement: float, label: str = "the small model") -> str:
    """The table's line on ``suggest_stages``: the longest agreeing run of ``label``, its ``until`` in both
    rules, and the other runs as long as it (the earliest is given)."""
    start, end = longest_agreeing_run(agreements, min_agreement)
    steps, length = len(agreements), end - start
    if length == 0:
        return (f"suggested_stages 0: {label} agrees at no step, so there is no window for it (0 means no small "
                f"steps: the large model alone).")
    until = suggest_stages(agreements, min_agreement)
    runs = f"step {start + 1}" if length == 1 else f"steps {start + 1}-{end}"
    ties = [k for k in range(end, steps - length + 1)
            if all(a.agrees(min_agreement) for a in agreements[k:k + length])
            and (k == 0 or not agreements[k - 1].agrees(min_agreement))]
    tied = (f" Steps {', '.join(f'{k + 1}-{k + length}' for k in ties)} agree as long; the earliest run is given."
            if ties else "")
    if start == 0:
        return (f"Longest agreeing run of {label}: {runs} of {steps}, from the first step: suggested_stages "
                f"\"{until}\" (T-Stitch's split, as suggested_fraction: T-Stitch Stages with {label}, then the large "
                f"model).{tied}")
    a, b = format_until_fraction(start, steps), format_until_fraction(end, steps)
    ending = (f" The run reaches the last step, so the large model's last stage is empty: T-Stitch Stages refuses "
              f"that; give it the large model, then {label}, with until \"{a}\"." if end == steps else "")
    return (f"Longest agreeing run of {label}: {runs} of {steps}: suggested_stages \"{until}\" for T-Stitch Stages "
            f"with the large model, {label}, the large model again (switch_by steps: large until {a}, small until "
            f"{b}, large after); on this schedule, {describe_timestep_window(agreements, start, end)}.{ending}{tied}")
