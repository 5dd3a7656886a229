"""A conditioning a model can't take is refused before any model runs (issue 25, item 2): Flux.2 dev (15360-wide text
embeddings) with a klein-sized small model (7680) on one prompt, through the pair, a nested pair, T-Stitch Stages and
the Guider's per-model prompts; the pair through T-Stitch Guider with each model its own prompt runs. The width table
is checked against each family's real input layers and the widths its text encoders give."""

import pytest
import torch

from tstitch_dev import families as F
from tstitch_dev.testing import CFG

STEPS = 4
flux2 = pytest.mark.skipif(not F.FAMILIES["flux2"].on_host(), reason=F.FAMILIES["flux2"].why_min)


def on_host(name):
    spec = F.FAMILIES[name]
    return pytest.param(name, marks=pytest.mark.skipif(not spec.on_host(), reason=spec.why_min))


@pytest.fixture(scope="module")
def facts_module(comfy_host):
    import sys

    import nodes  # noqa: F401  the host's, booted

    return next(m for name, m in sys.modules.items() if name.endswith("nodes._conditioning") and hasattr(
        m, "read_conditioning_widths"))


def meta_patcher(spec):
    """``spec``'s model built by the class its config is detected as, on the meta device (no weights, no file:
    Qwen-Image is ~1.4 GB), in a ModelPatcher: its layers say what it takes."""
    import comfy.model_detection
    import comfy.model_patcher

    if not isinstance(spec, F.DetectedSpec):  # models.py's tiny Wan: a small file, loaded as users load it
        return F.load_family_model(spec)
    model_config = comfy.model_detection.model_config_from_unet_config(spec.unet_config)
    with torch.device("meta"):
        model = model_config.get_model({}, device="meta")
    return comfy.model_patcher.ModelPatcher(model, torch.device("cpu"), torch.device("cpu"))


@pytest.mark.parametrize("name", [on_host(n) for n in F.FAMILIES])
def test_each_family_takes_the_widths_its_text_encoders_give(name, facts_module):
    spec = F.FAMILIES[name]
    conditioning = spec.make_conditioning(0)[0]
    text = conditioning[0].shape[-1]
    pooled = conditioning[1]["pooled_output"].shape[-1] if "pooled_output" in conditioning[1] else None
    for model_spec in (spec.small, spec.large):
        read_text, read_pooled = facts_module.read_conditioning_widths(meta_patcher(model_spec))
        assert read_text == text, model_spec
        assert read_pooled == pooled, model_spec


@flux2
def test_flux2_dev_takes_15360_and_klein_7680(facts_module):
    assert facts_module.read_conditioning_widths(meta_patcher(F.FLUX2_DEV_LARGE)) == (15360, None)
    assert facts_module.read_conditioning_widths(meta_patcher(F.FLUX2_SMALL)) == (7680, None)


def test_sd_unets_take_their_context_width(small_model, facts_module):
    assert facts_module.read_conditioning_widths(small_model) == (768, None)


@pytest.fixture(scope="module")
def klein_dev(comfy_host):
    return F.load_family_model(F.FLUX2_SMALL), F.load_family_model(F.FLUX2_DEV_LARGE)


@pytest.fixture(scope="module")
def sample(run_node):
    def run(model, conditioning, negative=None, cfg=CFG):
        return run_node("KSampler", model=model, seed=0, steps=STEPS, cfg=cfg, sampler_name="euler",
                        scheduler="simple", positive=conditioning, negative=negative or conditioning,
                        latent_image=F.empty_latent("flux2"), denoise=1.0)[0]["samples"]
    return run


DEV_PROMPT = F.flux2_dev_conditioning(1)
KLEIN_PROMPT = F.flux2_conditioning(2)


@flux2
@pytest.mark.parametrize("prompt, reaches, width, other", [
    (DEV_PROMPT, r"small model \(Flux2\) takes text embeddings 7680", 15360, r"large model \(Flux2\)"),
    (KLEIN_PROMPT, r"large model \(Flux2\) takes text embeddings 15360", 7680, r"small model \(Flux2\)"),
])
def test_one_prompt_for_dev_and_klein_is_refused_before_any_model_runs(prompt, reaches, width, other, klein_dev,
                                                                       run_node, sample, tag, calls):
    small, large = klein_dev
    pair = run_node("TStitchModelPair", small_model=tag(small, "S"), large_model=tag(large, "L"), small_fraction=0.5,
                    switch_by="steps")[0]
    with pytest.raises(ValueError, match=rf"^T-Stitch: the {reaches} wide, but the conditioning that reaches it "
                                         rf"\(positive\) is {width} wide, the width the {other} takes\. .* use "
                                         r"T-Stitch Guider in place of the pair .* its own text encoder"):
        sample(pair, prompt)
    assert calls == []


@flux2
def test_a_nested_pair_and_stages_refuse_it_too(klein_dev, run_node, sample, tag, calls):
    small, large = klein_dev
    other_small = F.load_family_model(F.FLUX2_LARGE)  # klein-like, 7680
    nested = run_node("TStitchModelPair", small_model=run_node(
        "TStitchModelPair", small_model=tag(small, "S"), large_model=tag(other_small, "M"), small_fraction=0.25,
        switch_by="steps")[0], large_model=tag(large, "L"), small_fraction=0.5, switch_by="steps")[0]
    with pytest.raises(ValueError, match=r"T-Stitch: the small model \(Flux2\) takes text embeddings 7680 wide"):
        sample(nested, DEV_PROMPT)
    tagged_large = tag(large, "L")
    stages = run_node("TStitchStages", model_1=tagged_large, model_2=tag(small, "S"), model_3=tagged_large,
                      until="0.25, 0.75", switch_by="steps")[0]
    with pytest.raises(ValueError, match=r"^T-Stitch Stages: the small model \(Flux2\) takes text embeddings 7680 .* "
                                         r"T-Stitch Stages hands every model the sampler's prompt"):
        sample(stages, DEV_PROMPT)
    assert calls == []


def guider(run_node, small, large, small_prompt, large_prompt, fraction=0.5):
    return run_node("TStitchGuider", small_model=small, large_model=large, small_fraction=fraction, switch_by="steps",
                    small_positive=small_prompt, small_negative=small_prompt, small_cfg=CFG,
                    large_positive=large_prompt, large_negative=large_prompt, large_cfg=CFG)[0]


def custom_sample(run_node, guide, model):
    sigmas = run_node("BasicScheduler", model=model, scheduler="simple", steps=STEPS, denoise=1.0)[0]
    return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guide,
                    sampler=run_node("KSamplerSelect", sampler_name="euler")[0], sigmas=sigmas,
                    latent_image=F.empty_latent("flux2"))[0]["samples"]


@flux2
def test_the_guider_with_each_models_own_prompt_runs_and_each_end_is_that_model_alone(klein_dev, run_node, tag,
                                                                                       calls):
    small, large = klein_dev
    both = custom_sample(run_node, guider(run_node, tag(small, "S"), tag(large, "L"), KLEIN_PROMPT, DEV_PROMPT), large)
    assert calls.names() == "SSLL" and torch.isfinite(both).all()  # 2 + 2 steps
    for fraction, model, prompt in ((1.0, small, KLEIN_PROMPT), (0.0, large, DEV_PROMPT)):
        stitched = custom_sample(run_node, guider(run_node, small, large, KLEIN_PROMPT, DEV_PROMPT, fraction), large)
        alone = run_node("CFGGuider", model=model, positive=prompt, negative=prompt, cfg=CFG)[0]
        assert torch.equal(stitched, custom_sample(run_node, alone, model)), fraction


@flux2
def test_the_guiders_own_prompts_are_checked_against_their_own_model(klein_dev, run_node, tag, calls):
    small, large = klein_dev
    swapped = guider(run_node, tag(small, "S"), tag(large, "L"), DEV_PROMPT, KLEIN_PROMPT)
    with pytest.raises(ValueError, match=r"^T-Stitch: the small model \(Flux2\) takes text embeddings 7680 wide, but "
                                         r"the conditioning that reaches it \(small_positive\) is 15360 wide, the "
                                         r"width the large model \(Flux2\) takes\. .* Encode small_positive with the small "
                                         r"model \(Flux2\)'s own text encoder"):
        custom_sample(run_node, swapped, large)
    assert calls == []


@flux2
def test_a_negative_is_checked_only_where_cfg_runs_it(run_node, sample, comfy_host):
    small, large = F.load_family_pair("flux2")
    pair = run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=0.5,
                    switch_by="steps")[0]
    with pytest.raises(ValueError, match=r"conditioning that reaches it \(negative\) is 15360 wide"):
        sample(pair, KLEIN_PROMPT, negative=DEV_PROMPT)
    # at cfg 1 ComfyUI never runs the negative: the same pair samples, equal to no negative at all
    assert torch.equal(sample(pair, KLEIN_PROMPT, negative=DEV_PROMPT, cfg=1.0), sample(pair, KLEIN_PROMPT, cfg=1.0))


@pytest.mark.skipif(not F.FAMILIES["flux"].on_host(), reason=F.FAMILIES["flux"].why_min)
def test_a_pooled_output_of_another_width_is_refused(run_node, comfy_host, tag, calls):
    small, large = F.load_family_pair("flux")
    text, extra = F.flux_conditioning(0)[0]
    wrong = [[text, {**extra, "pooled_output": torch.randn(1, 1280)}]]
    pair = run_node("TStitchModelPair", small_model=tag(small, "S"), large_model=tag(large, "L"), small_fraction=0.5,
                    switch_by="steps")[0]
    with pytest.raises(ValueError, match=r"the small model \(Flux\) takes a pooled output 768 wide, but the "
                                         r"conditioning that reaches it \(positive\) is 1280 wide\. .* Encode the "
                                         r"prompt with the text encoder of the small model \(Flux\)'s family"):
        run_node("KSampler", model=pair, seed=0, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="simple",
                 positive=wrong, negative=wrong, latent_image=F.empty_latent("flux"), denoise=1.0)
    assert calls == []


def test_an_sd_prompt_of_another_width_is_refused(small_model, large_model, run_node, ksample, tag, calls):
    wide = [[torch.randn(1, 77, 1024), {}]]  # SD2's OpenCLIP width on SD1.5-shaped models
    pair = run_node("TStitchModelPair", small_model=tag(small_model, "S"), large_model=tag(large_model, "L"),
                    small_fraction=0.4, switch_by="steps")[0]
    with pytest.raises(ValueError, match=r"the small model \(SD15\) takes text embeddings 768 wide, but the "
                                         r"conditioning that reaches it \(positive\) is 1024 wide"):
        ksample(pair, conds=(wide, wide))
    assert calls == []
