"""Checks that two models can share one trajectory, run before the first step."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .messages import quote_input
from .report import SweepPlan
from .schedule import SWITCH_MODES, SwitchRule, describe_step_prefix

# What a sigma means is fixed by how noise is added at that sigma (``noise_scaling`` in
# ComfyUI's model_sampling). Prediction types that share it (eps, v, x0, EDM) can be mixed.
NOISE_FAMILIES = {
    "EPS": "x = x0 + sigma * noise",
    "V_PREDICTION_DDPM": "x = x0 + sigma * noise",
    "COSMOS_RFLOW": "x = x0 + sigma * noise",
    "CONST": "flow: x = (1 - sigma) * x0 + sigma * noise",
    "IMG_TO_IMG_FLOW": "image-to-image flow",
}


@dataclass(frozen=True)
class ModelFacts:
    """What the stitching checks need to know about one model, read off its patcher."""

    name: str
    latent_format: str
    latent_channels: int
    in_channels: Optional[int]
    noise_scaling: str
    sigma_min: float
    sigma_max: float
    conditioning: str = "a text prompt"

    @property
    def noise_family(self) -> str:
        return NOISE_FAMILIES.get(self.noise_scaling, self.noise_scaling)


def validate_fraction(small_fraction: float) -> float:
    """Return ``small_fraction`` as a float, or raise if it lies outside [0, 1]."""
    fraction = float(small_fraction)
    if not (0.0 <= fraction <= 1.0):
        raise ValueError(f"small_fraction must be between 0 and 1, got {small_fraction!r}: "
                         "it is the share of the trajectory the small model runs.")
    return fraction


def parse_fractions(text: str) -> list[float]:
    """The fractions in a comma- or space-separated list such as "0, 0.2, 0.4", each checked."""
    tokens = text.replace(",", " ").split()
    if not tokens:
        raise ValueError("fractions is empty: give small_fraction values such as 0, 0.2, 0.4, 0.6, 0.8, 1.")
    fractions = []
    for token in tokens:
        try:
            fractions.append(validate_fraction(float(token)))
        except ValueError:  # float()'s own message would quote the whole token
            raise ValueError(f"fractions: {quote_input(token)} is not a small_fraction between 0 and 1.") from None
    return fractions


MAX_FULL_SCHEDULE = 1_000_000  # steps / denoise: ComfyUI computes that many sigmas, then runs the last steps


def validate_denoise(steps: int, denoise: float) -> None:
    """Raise where ``denoise`` is so small that the schedule ComfyUI computes for it, ``steps / denoise`` sigmas
    long, would not fit (5e-324 gave OverflowError: cannot convert float infinity to integer)."""
    if denoise > 0 and steps / denoise > MAX_FULL_SCHEDULE:
        raise ValueError(
            f"T-Stitch: denoise {denoise:g} with {steps} steps asks for a schedule of {steps / denoise:.3g} steps "
            f"(ComfyUI computes steps / denoise of them and runs the last {steps}); at most {MAX_FULL_SCHEDULE} "
            f"fit. Raise denoise to {steps / MAX_FULL_SCHEDULE:g} or more, or set it to 0 to run no step.")


SWEEP_NODE = "T-Stitch Fraction Sweep"
MAX_SWEEP_PLANS = 32  # distinct fractions and windows; the sweep keeps every result, so this bounds its memory


def parse_sweep_plans(text: str) -> tuple[list, int]:
    """(the sweep's distinct plans, in order of first mention; how many repeated ones were merged) from
    "0, 0.4, 0.2-0.7": a small_fraction f (the small model first, to f) or a window a-b (the large model, the
    small one from a to b, the large one again), each checked, at most ``MAX_SWEEP_PLANS``."""
    tokens = text.replace(",", " ").split()
    if not tokens:
        raise ValueError(f"{SWEEP_NODE}: fractions is empty: give small_fraction values such as 0, 0.2, 0.4, 0.6, "
                         "0.8, 1, or windows such as 0.2-0.7.")
    plans = []
    for token in tokens:
        plan = _parse_sweep_plan(token)
        if plan not in plans:
            plans.append(plan)
            if len(plans) > MAX_SWEEP_PLANS:
                raise ValueError(
                    f"{SWEEP_NODE}: fractions {quote_input(text)} gives more than {MAX_SWEEP_PLANS} different "
                    f"fractions and windows; the sweep keeps every result in memory, so it takes at most "
                    f"{MAX_SWEEP_PLANS}. Sweep fewer, or split them over several sweeps.")
    return plans, len(tokens) - len(plans)


def _parse_sweep_plan(token: str) -> SweepPlan:
    # a '-' after an e is an exponent's sign (1e-5), not a window's
    parts = [token] if _is_number(token) else re.split(r"(?<![eE])-", token)
    start, end = ("0", parts[0]) if len(parts) == 1 else parts if len(parts) == 2 else ("", "")
    try:
        start, end = validate_fraction(float(start)), validate_fraction(float(end))
    except ValueError:  # float()'s own message would quote the whole token
        raise ValueError(f"{SWEEP_NODE}: fractions: {quote_input(token)} is not a small_fraction between 0 and 1, "
                         "nor a window a-b of two (such as 0.2-0.7).") from None
    if start >= end and not (start == 0.0 and end == 0.0):
        raise ValueError(f"{SWEEP_NODE}: fractions: the window {quote_input(token)} must start before it ends: a-b "
                         "with a < b runs the small model from a to b of the trajectory, the large model before and "
                         "after.")
    return SweepPlan(start, end)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def validate_rule(rule: SwitchRule) -> SwitchRule:
    """Return ``rule``, or raise if its fraction or mode is unknown."""
    validate_fraction(rule.small_fraction)
    if rule.switch_by not in SWITCH_MODES:
        raise ValueError(f"switch_by must be one of {', '.join(SWITCH_MODES)}, got {quote_input(rule.switch_by)}.")
    return rule


def validate_pair(small: ModelFacts, large: ModelFacts) -> None:
    """Raise ``ValueError`` naming what differs when two models cannot share one trajectory."""
    if small.latent_format != large.latent_format or small.latent_channels != large.latent_channels:
        raise ValueError(
            f"{small.name} and {large.name} work in different latent spaces: {small.name} uses "
            f"{small.latent_format} latents ({small.latent_channels} channels), {large.name} uses "
            f"{large.latent_format} latents ({large.latent_channels} channels). T-Stitch needs two models "
            "of the same family, such as SD1.5 with BK-SDM-Tiny or SDXL with SSD-1B.")
    if small.conditioning != large.conditioning:
        raise ValueError(
            f"{small.name} and {large.name} take different conditioning: {small.name} takes {small.conditioning}, "
            f"{large.name} takes {large.conditioning}. T-Stitch hands both models the same positive and negative, "
            "so pair models of one kind, such as DiT-S with DiT-XL, or BK-SDM-Tiny with SD1.5.")
    if small.in_channels is not None and large.in_channels is not None and small.in_channels != large.in_channels:
        raise ValueError(
            f"{small.name} takes {small.in_channels} input channels and {large.name} takes "
            f"{large.in_channels}: one of them is an inpainting, image-to-video or otherwise image-conditioned "
            "variant. Pair two models of the same variant.")
    if small.noise_family != large.noise_family:
        raise ValueError(
            f"{small.name} and {large.name} use sigmas that mean different things: {small.name} is "
            f"'{small.noise_family}' ({small.noise_scaling}), {large.name} is '{large.noise_family}' "
            f"({large.noise_scaling}). Give both the same model sampling (for example the same "
            "ModelSampling node on each).")


def describe_sigma_range_mismatch(small: ModelFacts, large: ModelFacts, rel_tol: float = 0.01) -> Optional[str]:
    """A warning when the small model was trained on another sigma range than the schedule's, else None."""
    same_min = math.isclose(small.sigma_min, large.sigma_min, rel_tol=rel_tol, abs_tol=1e-6)
    same_max = math.isclose(small.sigma_max, large.sigma_max, rel_tol=rel_tol)
    if same_min and same_max:
        return None
    return (f"{small.name} covers sigmas {small.sigma_min:.4g}..{small.sigma_max:.4g} but the schedule "
            f"comes from {large.name} ({large.sigma_min:.4g}..{large.sigma_max:.4g}); "
            f"{small.name} will see sigmas it was not trained on.")


def validate_stage_order(rules: Sequence[SwitchRule]) -> None:
    """Raise when a nested pair would give a middle model no share of the trajectory."""
    for earlier, later in zip(rules, rules[1:]):
        if earlier.switch_by == later.switch_by and earlier.small_fraction > later.small_fraction:
            raise ValueError(
                f"Nested T-Stitch pairs measure every small_fraction on the same full trajectory, so "
                f"the fractions must not decrease from the first model to the last: the model that runs "
                f"first has {earlier.small_fraction:g} and the next one {later.small_fraction:g}, which "
                "would leave the middle model no steps. Lower the first fraction or raise the second.")


def validate_stage_coverage(rules: Sequence[SwitchRule], covered: Sequence[int], total_steps: int) -> None:
    """Raise when, on the schedule being sampled, an earlier stage covers more steps than the next one.

    Rules of one kind are checked when the pair is made (``validate_stage_order``); a steps rule
    next to a timestep rule can only be compared on the schedule itself.

    Args:
        covered: the leading steps each stage's switch point covers (``count_covered_steps``).
    """
    for (earlier, later), (first, second) in zip(zip(rules, rules[1:]), zip(covered, covered[1:])):
        if first > second:
            raise ValueError(
                f"T-Stitch: nested pairs hand over in trajectory order, but on this schedule the model that runs "
                f"first (small_fraction {earlier.small_fraction:g}, switch_by {earlier.switch_by}) covers "
                f"{describe_step_prefix(first, total_steps)}, while the next one (small_fraction "
                f"{later.small_fraction:g}, switch_by {later.switch_by}) covers only "
                f"{describe_step_prefix(second, total_steps)}: the model between them would get no steps. "
                "Lower the first fraction, raise the second, or give both pairs the same switch_by.")


def validate_timestep_range(model_name: str, timestep_at_sigma_min: float, timestep_at_sigma_max: float) -> None:
    """Raise unless the model's timesteps run from about 0 at its smallest sigma up to T at its largest."""
    if timestep_at_sigma_min < -1e-6 or timestep_at_sigma_max <= timestep_at_sigma_min:
        raise ValueError(
            f"switch_by 'timestep' reads t / T off the timesteps {model_name} sees, which must run from 0 at "
            f"its smallest sigma up to T at its largest, but they run from {timestep_at_sigma_min:.4g} to "
            f"{timestep_at_sigma_max:.4g}. Use switch_by 'steps' with this model.")


# UNet config keys that only count transformer blocks: pruning them (SSD-1B, Vega) keeps every
# block a ControlNet feeds; removing whole blocks (BK-SDM) does not.
_TRANSFORMER_DEPTH_KEYS = ("transformer_depth", "transformer_depth_output", "transformer_depth_middle")


def check_blocks_line_up(small_config: dict, large_config: dict) -> bool:
    """Whether ControlNet residuals made for the large model's blocks fit the small model's, block for block."""
    def layout(config):
        kept = {k: v for k, v in config.items() if k not in _TRANSFORMER_DEPTH_KEYS}
        middle = config.get("transformer_depth_middle")
        kept["has_middle_block"] = middle is None or middle >= -1  # -2 means no middle block
        return kept

    return layout(small_config) == layout(large_config)
