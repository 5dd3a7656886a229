"""T-Stitch logic with no ComfyUI imports: switch schedules, stage routing, validation."""

from .agreement import (StepAgreement, compute_stage_handovers, describe_stage_suggestions, describe_suggestion,
                        describe_timestep_fractions, format_agreement_table, format_stages_agreement_table,
                        leading_agreeing_steps, stage_names, suggested_fraction, timestep_fraction_range)
from .options import compute_runtime_additions
from .report import SweepRow, format_caption, format_sweep_table, speedup
from .schedule import (ALWAYS, NEVER, SWITCH_BY_STEPS, SWITCH_BY_TIMESTEP, SWITCH_MODES, SwitchPoint, SwitchRule,
                       assign_steps, compute_switch_index, compute_switch_point, count_covered_steps,
                       count_stage_steps, describe_stage_steps, describe_step_prefix, pick_stage)
from .stage_sigmas import (compute_boundary_sigma, compute_stage_ranges, invert_increasing, lay_stage_points,
                           parse_step_counts, validate_stage_counts, validate_steps_rule_counts)
from .validation import (ModelFacts, check_blocks_line_up, describe_sigma_range_mismatch, parse_fractions,
                         validate_fraction, validate_pair, validate_rule, validate_stage_coverage, validate_stage_order,
                         validate_timestep_range)

__all__ = [
    "StepAgreement", "compute_stage_handovers", "describe_stage_suggestions", "describe_suggestion",
    "describe_timestep_fractions", "format_agreement_table", "format_stages_agreement_table",
    "leading_agreeing_steps", "stage_names", "suggested_fraction", "timestep_fraction_range",
    "ALWAYS", "NEVER", "SWITCH_BY_STEPS", "SWITCH_BY_TIMESTEP", "SWITCH_MODES", "ModelFacts", "SweepRow",
    "SwitchPoint", "SwitchRule", "format_caption", "format_sweep_table", "speedup", "assign_steps", "check_blocks_line_up", "compute_runtime_additions", "compute_switch_index",
    "compute_switch_point", "count_covered_steps", "count_stage_steps", "describe_sigma_range_mismatch",
    "describe_stage_steps", "describe_step_prefix", "parse_fractions", "pick_stage", "validate_fraction",
    "validate_pair", "validate_rule", "compute_boundary_sigma", "compute_stage_ranges", "invert_increasing",
    "lay_stage_points", "parse_step_counts", "validate_stage_counts", "validate_steps_rule_counts", "validate_stage_coverage", "validate_stage_order", "validate_timestep_range",
]
