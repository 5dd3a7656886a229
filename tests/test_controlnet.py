"""ControlNet with a stitched model: on small steps when the small model's blocks line up with the large
model's (SSD-1B-style pruning), on large steps only, with a warning, when they don't (BK-SDM-style)."""

import logging

import pytest
import torch


@pytest.fixture
def control_log():
    return []


@pytest.fixture
def control_tag(control_log):
    """A clone that logs, per call, its name and whether ControlNet residuals reached it."""

    def tagged(model, name):
        m = model.clone()

        def record(apply_model, args):
            control_log.append((name, args["c"].get("control") is not None))
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(record)
        return m

    return tagged


def test_control_reaches_a_small_model_with_the_same_blocks(pruned_model, deep_pair, stitch, ksample,
                                                            controlled_conds, control_tag, control_log):
    large_model = deep_pair[1]
    out = ksample(stitch(control_tag(pruned_model, "S"), control_tag(large_model, "L"), 0.4),
                  conds=controlled_conds)
    assert control_log == [("S", True)] * 4 + [("L", True)] * 6
    assert torch.isfinite(out).all()


def test_control_on_the_small_model_is_exactly_its_own_controlled_run(pruned_model, deep_pair, stitch, ksample,
                                                                      controlled_conds):
    large_model = deep_pair[1]
    alone = ksample(pruned_model, "dpmpp_2m", conds=controlled_conds)
    assert torch.equal(ksample(stitch(pruned_model, large_model, 1.0), "dpmpp_2m", conds=controlled_conds), alone)


def test_a_small_model_with_fewer_blocks_runs_uncontrolled_with_a_warning(deep_pair, stitch, ksample, controlled_conds,
                                                                         control_tag, control_log, conds, caplog):
    small_model, large_model = deep_pair
    with caplog.at_level(logging.WARNING):
        out = ksample(stitch(control_tag(small_model, "S"), control_tag(large_model, "L"), 0.4),
                      conds=controlled_conds)
    assert control_log == [("S", False)] * 4 + [("L", True)] * 6
    assert torch.isfinite(out).all()
    assert any("ControlNets and T2I adapters apply to the large model's steps only" in r.message
               for r in caplog.records)
    # the small model's steps are its plain, uncontrolled steps
    assert torch.equal(ksample(stitch(small_model, large_model, 1.0), "dpmpp_2m", conds=controlled_conds),
                       ksample(small_model, "dpmpp_2m", conds=conds))
