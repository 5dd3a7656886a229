"""tstitch_core.dit: what a DiT checkpoint's tensor shapes say (pure, no host)."""

import pytest
import torch

from tstitch_core.dit import (compute_respaced_timesteps, guide_leading_channels, read_dit_shape, sincos_positions,
                              timestep_frequencies, unwrap_training_checkpoint)
from tstitch_dev.models import DIT_XL_2, TINY_DIT_S, DiTSpec, dit_tensor_shapes


def test_every_published_size_is_read_off_its_shapes():
    xl = read_dit_shape(dit_tensor_shapes(DIT_XL_2))
    assert (xl.depth, xl.width, xl.heads, xl.patch_size, xl.grid_size, xl.learned_sigma) == (28, 1152, 16, 2, 16, True)
    assert xl.name == "DiT-XL/2 at 256x256"
    eps_only = read_dit_shape(dit_tensor_shapes(DiTSpec("eps", depth=2, width=768, learned_sigma=False)))
    assert (eps_only.heads, eps_only.out_channels, eps_only.learned_sigma) == (12, 4, False)


def test_a_width_no_published_dit_has_needs_the_heads_its_file_records():
    shapes = dit_tensor_shapes(DiTSpec("narrow", depth=2, width=256))
    with pytest.raises(ValueError, match=r"x.pt is a DiT of width 256, which none of the published DiTs has: .* or "
                                         r"from a .safetensors file whose metadata records dit_heads"):
        read_dit_shape(shapes, "x.pt")
    assert read_dit_shape(shapes, "x.safetensors", heads="4").heads == 4
    # a published width: the file's own record wins over the table
    assert read_dit_shape(dit_tensor_shapes(TINY_DIT_S), heads="3").heads == 3
    for bad in ("5", "0", "four", "-4", ""):
        with pytest.raises(ValueError, match=rf"x.safetensors records dit_heads '{bad}' in its metadata, which is no "
                                             r"number of attention heads for width 256 \(a whole number that divides"):
            read_dit_shape(shapes, "x.safetensors", heads=bad)


def test_a_missing_position_table_is_named():
    shapes = dit_tensor_shapes(TINY_DIT_S)
    del shapes["pos_embed"]
    with pytest.raises(ValueError, match="1 tensors are missing, among them pos_embed"):
        read_dit_shape(shapes, "x.pt")


def test_positions_are_sines_then_cosines_of_the_column_then_the_row():
    table = sincos_positions(8, 2, 3)  # 2 rows, 3 columns; 4 channels per axis, 2 frequencies: 1 and 1/100
    row, col = 1, 2
    patch = table[row * 3 + col]
    expected = [torch.sin(torch.tensor(col / f)) for f in (1.0, 100.0)] + [torch.cos(torch.tensor(col / f)) for f in (1.0, 100.0)]
    expected += [torch.sin(torch.tensor(row / f)) for f in (1.0, 100.0)] + [torch.cos(torch.tensor(row / f)) for f in (1.0, 100.0)]
    torch.testing.assert_close(patch, torch.stack(expected).double(), rtol=0, atol=1e-7)


def test_timestep_features_are_cosines_then_sines_down_to_one_ten_thousandth():
    features = timestep_frequencies(torch.tensor([500.0]), channels=4)  # frequencies 1 and 10000^(-1/2)
    expected = torch.tensor([[torch.cos(torch.tensor(500.0)), torch.cos(torch.tensor(5.0)),
                              torch.sin(torch.tensor(500.0)), torch.sin(torch.tensor(5.0))]])
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-5)


def test_training_checkpoints_give_their_ema_weights():
    assert unwrap_training_checkpoint({"model": {"a": 1}, "ema": {"a": 2}, "args": None}) == {"a": 2}
    assert unwrap_training_checkpoint({"model": {"a": 1}}) == {"a": 1}
    plain = {"x_embedder.proj.weight": 0}
    assert unwrap_training_checkpoint(plain) is plain


def test_respaced_timesteps_are_dits_own_for_100_and_50_steps():
    # space_timesteps(1000, "100") and (1000, "50") of DiT's diffusion/respace.py, largest first
    hundred = compute_respaced_timesteps(100)
    assert hundred[:6] == [999, 989, 979, 969, 959, 949] and hundred[-6:] == [50, 40, 30, 20, 10, 0]
    assert hundred[39:41] == [605, 595]  # the 40th and 41st: T-Stitch at 0.4 switches between them (t / 1000 >= 0.6)
    assert hundred == [round(i * 999 / 99) for i in range(99, -1, -1)]
    fifty = compute_respaced_timesteps(50)
    assert fifty[:4] == [999, 979, 958, 938] and fifty[-4:] == [61, 41, 20, 0]
    assert compute_respaced_timesteps(1) == [0] and compute_respaced_timesteps(1000) == list(range(999, -1, -1))


def test_more_respaced_steps_than_timesteps_is_refused():
    with pytest.raises(ValueError, match="1001 steps of a 1000-step schedule"):
        compute_respaced_timesteps(1001)


def test_guidance_on_the_leading_channels_leaves_the_rest_to_the_conditional_prediction():
    cond, uncond = torch.full((1, 4, 2, 2), 3.0), torch.full((1, 4, 2, 2), 1.0)
    guided = guide_leading_channels(cond, uncond, 4.0)
    assert guided[0, :, 0, 0].tolist() == [9.0, 9.0, 9.0, 3.0]
    assert guide_leading_channels(cond, uncond, 4.0, channels=4)[0, :, 0, 0].tolist() == [9.0] * 4


def test_the_timestep_rule_splits_dits_100_steps_as_t_stitch_does_but_where_its_float_test_falls_short():
    from tstitch_core.schedule import SwitchRule, compute_switch_point

    timesteps = compute_respaced_timesteps(100)
    differ = {}
    for k in range(1, 1000):
        fraction = round(k * 0.001, 3)  # the pair's widget steps by 0.001
        point = compute_switch_point(SwitchRule(fraction, "timestep"), [], timestep_max=999)
        ours = [t >= point.threshold for t in timesteps]  # the pack: t / 999 >= 1 - f, T = 999
        theirs = [t / 1000 >= 1 - fraction for t in timesteps]  # NVlabs T-Stitch's TStitch.forward_with_cfg
        if ours != theirs:
            differ[fraction] = [t for t, a, b in zip(timesteps, ours, theirs) if a != b]
    assert not {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9} & set(differ)
    # t = 1000 (1 - f) exactly, which 1 - f in binary floating point can exceed: the pack gives it to the small model
    assert len(differ) == 17 and differ[0.95] == [50] and differ[0.99] == [10]
    assert all(len(ts) == 1 and abs(ts[0] - 1000 * (1 - f)) < 1e-9 for f, ts in differ.items())
