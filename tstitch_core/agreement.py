"""Where a small model stops agreeing with the large one along the large model's own trajectory, and the
largest small_fraction whose small steps all still agree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class StepAgreement:
    step: int  # 0-based
    sigma: float
    t_over_t_max: float  # the diffusion time the timestep rule reads
    cosine: float  # of the two denoised predictions (x0), flattened
    rel_l2: float  # |small - large| / |large|


def leading_agreeing_steps(agreements: Sequence[StepAgreement], min_agreement: float) -> int:
    """How many steps from the first keep cosine agreement at or above ``min_agreement``."""
    count = 0
    for agreement in agreements:
        if agreement.cosine < min_agreement:
            break
        count += 1
    return count


def suggested_fraction(agreements: Sequence[StepAgreement], min_agreement: float) -> float:
    """The largest small_fraction (switch_by steps, on this schedule) whose small steps all agree: k / N."""
    return leading_agreeing_steps(agreements, min_agreement) / len(agreements)


def timestep_fraction_range(agreements: Sequence[StepAgreement], small_steps: int) -> tuple[float, float]:
    """[low, high): the small_fraction values for switch_by timestep that give the small model exactly the first
    ``small_steps`` steps of this schedule (a call is the small model's when t/T >= 1 - small_fraction)."""
    low = 0.0 if small_steps == 0 else 1.0 - agreements[small_steps - 1].t_over_t_max
    high = 1.0 if small_steps == len(agreements) else 1.0 - agreements[small_steps].t_over_t_max
    return max(0.0, low), min(1.0, high)


def describe_suggestion(agreements: Sequence[StepAgreement], min_agreement: float) -> str:
    steps = len(agreements)
    small = leading_agreeing_steps(agreements, min_agreement)
    if small == 0:
        return (f"The small model disagrees from the first step (cosine {agreements[0].cosine:.3f} < "
                f"{min_agreement:g}): suggested small_fraction 0, the large model alone. Lower min_agreement, or "
                f"pair models that share more (a distilled or pruned copy of the large model).")
    low, high = timestep_fraction_range(agreements, small)
    timestep = f"switch_by timestep: small_fraction {low:.3f} (up to {high:.3f})"
    return (f"The small model agrees (cosine >= {min_agreement:g}) for the first {small} of {steps} steps: "
            f"suggested small_fraction {small / steps:.3f} (switch_by steps); on this schedule, {timestep}.")


def format_agreement_table(agreements: Sequence[StepAgreement], min_agreement: float) -> str:
    small = leading_agreeing_steps(agreements, min_agreement)
    header = ("step", "sigma", "t/T", "cosine", "rel. L2", "model")
    lines = [header] + [(str(a.step + 1), f"{a.sigma:.4g}", f"{a.t_over_t_max:.3f}", f"{a.cosine:.4f}",
                         f"{a.rel_l2:.4f}", "small" if a.step < small else "large") for a in agreements]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)
    return describe_suggestion(agreements, min_agreement) + "\n" + table
