"""The Agreement Probe's default against measured quality: on the shipped digits pair, whose curve calibrated the
default, and on a pair held apart from that calibration (the shipped large model with another small one), the
suggestion at the default min_agreement lies in the pair's flat region: at least one small step, and no more than
the measured curve keeps at the large model's quality (bench/results/trained-digits-*, ./tstitch bench --pair
trained-digits [--small held-apart]). Three digits and seeds: seconds, not the bench's minutes. The default is
not inside for every case: the calibration table in each results.md gives the share, and docs/quality.md says it."""

from __future__ import annotations

import json

import pytest
import torch

from tstitch_dev import digits
from tstitch_dev.host import PACK_ROOT

pytestmark = pytest.mark.latest_host_only  # the pack's DiT loader and probe are the same code on both hosts

CURVES = PACK_ROOT / "bench" / "results"
CASES = [(0, 0), (4, 1), (9, 2)]  # (digit, seed): three of the curve's thirty
BATCH = 10  # as the bench probes: the same noise, so these are cases of its calibration table


def measured_flat_steps(small: str) -> int:
    """The committed curve's flat region, in small steps of 20 (the bench writes one folder per setting)."""
    (folder,) = CURVES.glob(f"trained-digits-{small}-cpu-20steps-cfg1.5-*per-class-timestep")
    return json.loads((folder / "results.json").read_text())["probe"]["flat_steps"]


@pytest.fixture(scope="module")
def large(comfy_host):
    return digits.load_trained(digits.shipped_pair()[1])


def small_path(kind: str):
    if kind == "shipped":
        return digits.shipped_pair()[0]
    # trained on first use (about two minutes on 2 cores) and cached with the test models
    return digits.ensure_trained(digits.HELD_APART_SMALL, digits.HELD_APART_SMALL_NAME, log=None)


@pytest.mark.parametrize("kind", ["shipped", "held-apart"])
def test_the_default_suggestion_lies_in_the_measured_flat_region(kind, large, run_node, node):
    flat = measured_flat_steps(kind)
    assert 1 <= flat < 20  # the curve has a flat region and a knee: the test can fail on both sides
    small = digits.load_trained(small_path(kind))
    default = node("TStitchAgreementProbe").INPUT_TYPES()["required"]["min_agreement"][1]["default"]
    sampling = digits.Sampling()
    latent = {"samples": torch.zeros(BATCH, 4, 8, 8)}
    suggested = []
    for digit, seed in CASES:
        positive, negative = run_node("TStitchClassIndex", model=large, class_index=digit)
        _, table, fraction, _ = run_node("TStitchAgreementProbe", small_model=small, large_model=large,
                                         seed=seed * 1000 + digit,
                                         steps=sampling.steps, cfg=sampling.cfg, sampler_name=sampling.sampler,
                                         scheduler=sampling.scheduler, positive=positive, negative=negative,
                                         latent_image=latent, denoise=1.0, min_agreement=default)
        suggested.append(round(fraction * sampling.steps))
    assert all(1 <= steps <= flat for steps in suggested), (kind, flat, suggested)
