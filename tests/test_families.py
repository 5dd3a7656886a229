"""Every family people pair (issue 25): tiny random-weight small/large pairs of Flux.1, SD3.5, LTX-Video, Cosmos
Predict2, Flux.2, Kandinsky 5, Wan and Qwen-Image, built from ComfyUI's own classes and loaded through UNETLoader.
For each: detected as its family; small_fraction 0 and 1 are each model alone, bit for bit; the stitched pass equals
a reference that routes without this pack (testing.reference_model), bit for bit, under both switch rules, through
KSampler and SamplerCustomAdvanced, at a fraction where both models run on the family's own shifted schedule.

Families the version floor can't load at these sizes (families.FamilySpec.why_min) and Qwen-Image (its widths are
fixed by detection: ~1.4 GB a layer in fp32; one case) run on the newest host only; test_the_host_predicate_is_true
checks on every host that exactly those are the ones it lacks."""

import time

import pytest
import torch

from tstitch_dev.families import (FAMILIES, FLUX2_DEV_LARGE, empty_latent, family_switch_range, flux2_dev_conditioning,
                                  host_takes, load_family_model, load_family_pair, switch_table,
                                  timestep_fractions_where_both_run)
from tstitch_dev.host import floor_version
from tstitch_dev.testing import reference_model

STEPS = 4  # the sampling tests; the switch table is at 6 steps, as the README gives it
ENTRIES = ("KSampler", "SamplerCustomAdvanced")
RULES = ("steps", "timestep")


def _version(text):
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _newest_only(name) -> bool:
    family = FAMILIES[name]
    return family.heavy or _version(family.min_comfyui) > _version(floor_version())


def family_params(names=None, heavy=False):
    return [pytest.param(name, id=name, marks=[pytest.mark.latest_host_only] if _newest_only(name) else [])
            for name in (FAMILIES if names is None else names) if FAMILIES[name].heavy == heavy]


LIGHT = family_params()
TIMINGS = {}  # family -> seconds spent sampling, printed at the end of the module (pytest -s)


@pytest.fixture(scope="module")
def pairs(comfy_host):
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = load_family_pair(name)
        return loaded[name]

    yield get
    for name, seconds in sorted(TIMINGS.items()):
        print(f"\n{name}: {seconds:.1f} s sampling")


@pytest.fixture(scope="module")
def sample(run_node):
    """Sample ``model`` through KSampler, or SamplerCustomAdvanced with CFGGuider and BasicScheduler, with the
    family's conditioning, scheduler and sampler; returns the latent tensor."""

    def run(name, model, entry="KSampler", cfg=None):
        family = FAMILIES[name]
        cfg = family.cfg if cfg is None else cfg
        positive, negative = family.make_conditioning(1), family.make_conditioning(2)
        started = time.perf_counter()
        try:
            if entry == "KSampler":
                return run_node("KSampler", model=model, seed=0, steps=STEPS, cfg=cfg,
                                sampler_name=family.sampler_name, scheduler=family.scheduler, positive=positive,
                                negative=negative, latent_image=empty_latent(name), denoise=1.0)[0]["samples"]
            guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=cfg)[0]
            sigmas = run_node("BasicScheduler", model=model, scheduler=family.scheduler, steps=STEPS, denoise=1.0)[0]
            return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                            sampler=run_node("KSamplerSelect", sampler_name=family.sampler_name)[0], sigmas=sigmas,
                            latent_image=empty_latent(name))[0]["samples"]
        finally:
            TIMINGS[name] = TIMINGS.get(name, 0.0) + time.perf_counter() - started

    return run


def fraction_for(name, large, switch_by, entry="KSampler") -> float:
    """Under steps, half the steps; under timestep, the middle of the range where both models run on the family's
    own schedule (its default model sampling, shift included) as ``entry`` samples it."""
    if switch_by == "steps":
        return 0.5
    family = FAMILIES[name]
    low, high = family_switch_range(large, family.scheduler, STEPS,
                                    family.sampler_name if entry == "KSampler" else None)
    return round((low + high) / 2, 3)  # the node rounds small_fraction to 0.001


@pytest.mark.parametrize("name", list(FAMILIES))  # on every host: the floor must really lack what it skips
def test_the_host_predicate_is_true(name, comfy_host):
    """FamilySpec.on_host says which families run here: exactly those whose files this host detects as their family
    and builds with exactly their tensors (read from the shapes: cheap even for Qwen-Image)."""
    family = FAMILIES[name]
    for spec in (family.small, family.large):
        takes, detected = host_takes(spec)
        assert takes == family.on_host(), (spec.name, detected, family.why_min)


@pytest.mark.parametrize("name", LIGHT)
def test_each_model_is_detected_as_its_family(name, pairs):
    family = FAMILIES[name]
    for spec, model in zip((family.small, family.large), pairs(name)):
        config = model.model.model_config
        assert type(config).__name__ == family.detected
        if hasattr(spec, "unet_config"):  # a families.py spec: detection read back what it was built from
            # (0.3.64 reads fewer keys, e.g. no use_keyframes_abs_pos_embedding: those it reads must agree)
            shared = [key for key in spec.unet_config if key in config.unet_config]
            assert {"depth", "num_layers", "num_blocks", "num_visual_blocks"} & set(shared)
            detected = {key: config.unet_config[key] for key in shared}
            assert ({k: (list(v) if isinstance(v, tuple) else v) for k, v in detected.items()}
                    == {key: spec.unet_config[key] for key in shared})


@pytest.mark.parametrize("name", LIGHT)
def test_fractions_0_and_1_are_each_model_alone(name, pairs, sample, stitch):
    """Under switch_by timestep, where the ends are subtle (the first step's t/T is 1, the last's above 0); under
    steps they are round(0 x steps) and round(1 x steps), which test_stitch_routing covers."""
    small, large = pairs(name)
    small_alone, large_alone = sample(name, small), sample(name, large)
    assert not torch.equal(small_alone, large_alone)
    assert torch.equal(sample(name, stitch(small, large, 0.0, "timestep")), large_alone)
    assert torch.equal(sample(name, stitch(small, large, 1.0, "timestep")), small_alone)


@pytest.mark.parametrize("switch_by", RULES)
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("name", LIGHT)
def test_the_stitched_pass_equals_the_hand_routed_reference(name, entry, switch_by, pairs, sample, stitch):
    small, large = pairs(name)
    fraction = fraction_for(name, large, switch_by, entry)
    log = []
    expected = sample(name, reference_model(small, large, switch_by, fraction, log), entry)
    assert "S" in log and "L" in log, (fraction, log)  # both models take part, so equality says something
    assert torch.equal(sample(name, stitch(small, large, fraction, switch_by), entry), expected)


@pytest.mark.parametrize("name", family_params(heavy=True))
def test_the_heavy_family_once(name, sample, stitch):
    """Qwen-Image, whose widths detection fixes: the stitched pass under the timestep rule against the reference
    (cfg 1: one call a step, at ~1.4 GB a layer)."""
    small, large = load_family_pair(name)
    fraction = fraction_for(name, large, "timestep")
    log = []
    expected = sample(name, reference_model(small, large, "timestep", fraction, log), cfg=1.0)
    assert "S" in log and "L" in log, (fraction, log)
    assert torch.equal(sample(name, stitch(small, large, fraction, "timestep"), cfg=1.0), expected)


@pytest.mark.parametrize("name", family_params(["wan", "ltxv"]))
def test_the_switch_range_is_where_both_models_run(name, pairs, sample, stitch, tag, calls):
    """family_switch_range against the pack's own routing: inside the range both models take steps; at or above its
    top the small model would take them all, which the pack refuses before any model runs (its bottom is 0: the
    first step is at sigma_max, t/T = 1)."""
    small, large = pairs(name)
    low, high = family_switch_range(large, FAMILIES[name].scheduler, STEPS, FAMILIES[name].sampler_name)
    assert low == pytest.approx(0.0, abs=1e-6) and 0 < high < 1
    tagged = tag(small, "S"), tag(large, "L")
    for fraction in (0.001, high - 1e-3):
        calls.clear()
        sample(name, stitch(*tagged, fraction, "timestep"))
        assert set(calls.names()) == {"S", "L"}, (fraction, calls.names())
    calls.clear()
    with pytest.raises(ValueError, match=r"the large model \(\w+\) would get no step"):
        sample(name, stitch(*tagged, high + 1e-3, "timestep"))
    assert calls == []


@pytest.mark.latest_host_only  # ComfyUI 0.3.64 has no Flux.2
def test_the_flux2_dev_like_large_model_takes_its_own_width(run_node):
    """Flux.2 dev in miniature, for the refusal of one conditioning across Flux.2 widths: detected as Flux.2 with dev's
    text width (15360) and guidance embedding, and it samples from conditioning of that width."""
    model = load_family_model(FLUX2_DEV_LARGE)
    config = model.model.model_config
    assert type(config).__name__ == "Flux2"
    assert (config.unet_config["context_in_dim"], config.unet_config["guidance_embed"]) == (15360, True)
    out = run_node("KSampler", model=model, seed=0, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple",
                   positive=flux2_dev_conditioning(1), negative=flux2_dev_conditioning(2),
                   latent_image=empty_latent("flux2"), denoise=1.0)[0]["samples"]
    assert out.shape == FAMILIES["flux2"].latent_shape and torch.isfinite(out).all()


# the README's family table: under switch_by timestep, 6 steps of KSampler with each family's usual scheduler and
# sampler on its default model sampling, both models take steps for 0 < small_fraction < this
BOTH_RUN_BELOW = {"flux": 0.6128, "sd35": 0.6208, "ltxv": 0.3185, "cosmos_predict2": 0.9884, "flux2": 0.3987,
                  "kandinsky5": 0.3328, "wan": 0.2378, "qwen_image": 0.6128}


@pytest.mark.parametrize("name", [pytest.param(name, id=name, marks=[pytest.mark.latest_host_only]
                                               if _version(FAMILIES[name].min_comfyui) > _version(floor_version())
                                               else []) for name in FAMILIES])
def test_the_switch_table(name, comfy_host):
    (scheduler, sampler_name, low, high), = switch_table(6, [name]).values()  # 6 steps
    assert (scheduler, sampler_name) == (FAMILIES[name].scheduler, FAMILIES[name].sampler_name)
    assert low == pytest.approx(0.0, abs=1e-6)  # every schedule here starts at sigma_max, t/T = 1
    assert high == pytest.approx(BOTH_RUN_BELOW[name], abs=5e-5)


def test_the_range_is_read_off_the_schedule():
    """timestep_fractions_where_both_run on a hand-made flow schedule (t = sigma, sigma_max 1)."""

    class Flow:
        sigma_max = torch.tensor(1.0)

        @staticmethod
        def timestep(sigma):
            return sigma * 1000

    low, high = timestep_fractions_where_both_run(Flow(), torch.tensor([1.0, 0.9, 0.75, 0.5, 0.0]))
    assert (round(low, 6), round(high, 6)) == (0.0, 0.5)  # t/T of the steps: 1, 0.9, 0.75, 0.5
