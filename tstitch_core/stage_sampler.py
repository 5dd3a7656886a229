"""T-Stitch Stage Sampler: each stage of a stitched model its own sampler, in one pass.

The schedule is cut where the stages hand over: stage k's sampler runs the steps that start in stage k
(the steps the stitched model routes to stage k's model), from the sigma that starts its first step to the
sigma that ends its last, which starts the next stage. A multistep sampler (dpmpp_2m, uni_pc) starts its
history again at every handover, as two chained passes would, even where two stages name the same sampler.
"""

from __future__ import annotations

from typing import Collection, Sequence

from .messages import quote_input

NODE_NAME = "T-Stitch Stage Sampler"


def parse_sampler_names(text: str, known: Collection[str], stages: int) -> list[str]:
    """The samplers of each stage from "dpmpp_2m, euler": one ComfyUI sampler name per stage, in trajectory order."""
    names = [part for part in text.replace(",", " ").split() if part]
    shown = quote_input(text)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{NODE_NAME}: {quote_input(unknown[0], 60)} in sampler_names {shown} is not a ComfyUI "
                         "sampler; use the names KSampler's sampler_name lists, such as euler, dpmpp_2m, uni_pc.")
    if len(names) != stages:
        raise ValueError(f"{NODE_NAME}: sampler_names {shown} names {len(names)} sampler(s), but the model has "
                         f"{stages} stages; name one sampler per stage, first stage first (for one sampler over the "
                         "whole pass, use KSamplerSelect).")
    return names


def group_steps_by_stage(stage_of_step: Sequence[int]) -> list[tuple[int, int, int]]:
    """(stage, first step, step after the last) of each run of steps in one stage, in order; stages with no step
    are left out. Steps are routed in trajectory order, so each stage is one run."""
    groups: list[tuple[int, int, int]] = []
    for step, stage in enumerate(stage_of_step):
        if groups and groups[-1][0] == stage:
            groups[-1] = (stage, groups[-1][1], step + 1)
        else:
            groups.append((stage, step, step + 1))
    return groups
