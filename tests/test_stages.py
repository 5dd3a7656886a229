"""T-Stitch Stages: any model at any stage. Large -> small -> large and small -> large -> small, each cell bit for bit
against a reference that routes without this pack (the last model under ComfyUI's sampler, its calls handed to the
stage's model's apply_model by a test-written model function wrapper); the loads; the refusals."""

import math

import pytest
import torch

from tstitch_dev.testing import CFG, crossed, small_runs

STEPS = 8
SIZE = 32
UNTIL = (0.25, 0.625)  # 2, 3 and 3 steps of 8 with switch_by steps


def stage_of(switch_by, until, sigma, sample_sigmas, model_sampling) -> int:
    """The README's rule, written independently: the first stage whose handover fraction still covers the call
    (each fraction read as a pair's small_fraction), else the last."""
    for index, fraction in enumerate(until):
        if small_runs(switch_by, fraction, sigma, sample_sigmas, model_sampling):
            return index
    return len(until)


def reference_stages(models, switch_by, until, log=None):
    """The last of ``models`` whose calls go to the stage's model's apply_model: no T-Stitch code involved."""
    *earlier, last = models
    reference = last.clone()
    others = []
    for model in earlier:
        if model is not last and all(model is not o for o in others):
            others.append(model)
    reference.set_additional_models("reference", others)
    model_sampling = last.get_model_object("model_sampling")

    def route(apply_model, args):
        sigma = float(args["timestep"][0])
        sample_sigmas = args["c"]["transformer_options"]["sample_sigmas"].tolist()
        index = stage_of(switch_by, until, sigma, sample_sigmas, model_sampling)
        if log is not None:
            log.append(index)
        model = models[index]
        return (apply_model if model is last else model.model.apply_model)(args["input"], args["timestep"],
                                                                           **args["c"])

    reference.set_model_unet_function_wrapper(route)
    return reference


def stages_node(run_node, models, until=UNTIL, switch_by="steps", offload=False):
    inputs = {f"model_{k}": model for k, model in enumerate(models, 1)}
    return run_node("TStitchStages", **inputs, until=", ".join(f"{u:g}" for u in until), switch_by=switch_by,
                    offload_idle_model=offload)[0]


@pytest.fixture(scope="module")
def sample_with(run_node, conds, latent):
    positive, negative = conds

    def sample(entry, model, sampler_name):
        if entry == "KSampler":
            return run_node("KSampler", model=model, seed=0, steps=STEPS, cfg=CFG, sampler_name=sampler_name,
                            scheduler="simple", positive=positive, negative=negative, latent_image=latent(size=SIZE),
                            denoise=1.0)[0]["samples"]
        guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=CFG)[0]
        sigmas = run_node("BasicScheduler", model=model, scheduler="simple", steps=STEPS, denoise=1.0)[0]
        return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                        sampler=run_node("KSamplerSelect", sampler_name=sampler_name)[0], sigmas=sigmas,
                        latent_image=latent(size=SIZE))[0]["samples"]

    return sample


ORDERS = {"LSL": "large small large", "SLS": "small large small"}


@pytest.fixture(scope="module")
def ordered(small_model, large_model):
    return lambda order: [{"L": large_model, "S": small_model}[name] for name in order]


@pytest.fixture(scope="module")
def reference(ordered, sample_with):
    """The reference result of each (order, switch_by, sampler, sampling node), sampled once (offload is not part of
    it) and checked to involve every stage."""
    results = {}

    def get(order, switch_by, sampler_name, entry):
        key = (order, switch_by, sampler_name, entry)
        if key not in results:
            log = []
            results[key] = sample_with(entry, reference_stages(ordered(order), switch_by, UNTIL, log), sampler_name)
            assert set(log) == {0, 1, 2}, log  # every stage takes part, so equality says something
        return results[key]

    return get


@pytest.mark.parametrize("order, switch_by, offload, sampler_name, entry", crossed(
    order=list(ORDERS), switch_by=["steps", "timestep"], offload=[False, True],
    sampler_name=["euler", "heun", "dpmpp_2m", "uni_pc"], entry=["KSampler", "SamplerCustomAdvanced"]))
def test_stages_equal_a_hand_routed_reference_bit_for_bit(order, switch_by, offload, sampler_name, entry, ordered,
                                                          run_node, sample_with, reference):
    got = sample_with(entry, stages_node(run_node, ordered(order), UNTIL, switch_by, offload), sampler_name)
    assert torch.equal(got, reference(order, switch_by, sampler_name, entry))


def test_the_two_stage_case_is_the_pair_bit_for_bit(small_model, large_model, run_node, stitch, ksample):
    for switch_by in ("steps", "timestep"):
        pair = stitch(small_model, large_model, 0.4, switch_by)
        stages = stages_node(run_node, [small_model, large_model], (0.4,), switch_by)
        assert torch.equal(ksample(stages, "dpmpp_2m"), ksample(pair, "dpmpp_2m"))


def test_each_stage_runs_its_own_model_in_order(small_model, large_model, run_node, tag, calls, ksample):
    large, small = tag(large_model, "L"), tag(small_model, "S")
    ksample(stages_node(run_node, [large, small, large]), "euler", steps=STEPS)
    assert calls.names() == "LLSSSLLL"
    calls.clear()
    ksample(stages_node(run_node, [small, large, small]), "euler", steps=STEPS)
    assert calls.names() == "SSLLLSSS"


def test_four_stages(small_model, medium_model, large_model, run_node, tag, calls, ksample):
    large, small, medium = tag(large_model, "L"), tag(small_model, "S"), tag(medium_model, "B")
    ksample(stages_node(run_node, [large, small, medium, large], (0.125, 0.5, 0.75)), "euler", steps=STEPS)
    assert calls.names() == "LSSSBBLL"


@pytest.mark.parametrize("order, expected", [("LSL", ["+L", "-L", "+S", "-S", "+L"]),
                                             ("SLS", ["+S", "-S", "+L", "-L", "+S"])])
def test_offload_loads_a_model_once_per_stage_in_order(order, expected, small_model, large_model, run_node,
                                                       load_events, ksample):
    name, events = load_events
    models = {"L": name(large_model, "L"), "S": name(small_model, "S")}
    ksample(stages_node(run_node, [models[m] for m in order], offload=True), "euler", steps=STEPS)
    assert events == expected


def test_without_offload_a_model_that_runs_twice_is_loaded_once_with_the_others(small_model, large_model, run_node,
                                                                                load_events, ksample):
    name, events = load_events
    large, small = name(large_model, "L"), name(small_model, "S")
    ksample(stages_node(run_node, [large, small, large]), "euler", steps=STEPS)
    assert events == ["+LS"]


def test_each_models_patches_act_on_its_own_stages_only(small_model, large_model, run_node, ksample, tag, calls):
    """A model function wrapper on the small model (as a patch node would set it) sees its stage's calls only."""
    scaled = small_model.clone()
    seen = []

    def record(apply_model, args):
        seen.append(float(args["timestep"][0]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    scaled.set_model_unet_function_wrapper(record)
    large = tag(large_model, "L")
    ksample(stages_node(run_node, [large, scaled, large]), "euler", steps=STEPS)
    assert len(seen) == 3 and calls.names() == "LLLLL"  # the small model's wrapper saw its 3 steps, and only those


def test_a_sampler_wrapper_on_a_model_that_runs_twice_spans_both_its_stages(small_model, large_model, run_node,
                                                                            ksample):
    """A cache's state lives in its model's sampler-level wrappers (EasyCache's OUTER_SAMPLE): they are set up once
    per sampling pass for the model, so what the model learned in its first stage is there in its second."""
    from comfy.patcher_extension import WrappersMP

    small = small_model.clone()
    passes, calls_seen = [], []

    def outer(executor, *args, **kwargs):
        passes.append(len(calls_seen))
        return executor(*args, **kwargs)

    def count(apply_model, args):
        calls_seen.append(float(args["timestep"][0]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    small.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, "test", outer)
    small.set_model_unet_function_wrapper(count)
    ksample(stages_node(run_node, [small, large_model, small]), "euler", steps=STEPS)
    assert passes == [0] and len(calls_seen) == 5  # one pass around both stages: 2 + 3 steps


def test_stages_do_not_mutate_their_inputs(small_model, large_model, run_node):
    before = (dict(large_model.attachments), dict(large_model.additional_models), dict(large_model.wrappers))
    stages_node(run_node, [large_model, small_model, large_model], offload=True)
    assert (dict(large_model.attachments), dict(large_model.additional_models), dict(large_model.wrappers)) == before


@pytest.mark.parametrize("until, message", [
    ("0.5", "gives 1 fraction(s) for 3 stages"),
    ("0.2, 1.5", "outside 0 to 1"),
    ("0.7, 0.2", "must increase"),
    ("0.4, 0.4", "must increase"),
    ("a, b", "not a list of numbers"),
    ("0.2, nan", "outside 0 to 1"),
])
def test_bad_fractions_are_refused_naming_the_node(until, message, small_model, large_model, run_node):
    with pytest.raises(ValueError, match="T-Stitch Stages") as error:
        run_node("TStitchStages", model_1=large_model, model_2=small_model, model_3=large_model, until=until,
                 switch_by="steps")
    assert message in str(error.value)


def test_two_stages_in_a_row_with_one_model_are_refused(small_model, large_model, run_node):
    with pytest.raises(ValueError, match="stages 2 and 3 both run model_2"):
        run_node("TStitchStages", model_1=large_model, model_2=small_model, model_3=small_model, until="0.2, 0.7",
                 switch_by="steps")


def test_the_same_weights_with_other_patches_in_two_stages_are_refused(small_model, large_model, run_node):
    shifted = run_node("ModelSamplingDiscrete", model=large_model, sampling="eps", zsnr=True)[0]
    with pytest.raises(ValueError, match="model_3 and model_1 are the same loaded weights"):
        run_node("TStitchStages", model_1=large_model, model_2=small_model, model_3=shifted, until="0.2, 0.7",
                 switch_by="steps")


def test_a_gap_and_a_pair_as_a_stage_are_refused(small_model, large_model, run_node, stitch):
    with pytest.raises(ValueError, match="model_4 is connected but model_3 is not"):
        run_node("TStitchStages", model_1=large_model, model_2=small_model, model_4=large_model, until="0.2, 0.7",
                 switch_by="steps")
    with pytest.raises(ValueError, match="model_2 is already a T-Stitch model"):
        run_node("TStitchStages", model_1=large_model, model_2=stitch(small_model, large_model), until="0.5",
                 switch_by="steps")
    stages = stages_node(run_node, [large_model, small_model, large_model])
    for small, large in ((small_model, stages), (stages, large_model)):
        with pytest.raises(ValueError, match="T-Stitch Stages model, which a pair can't take apart"):
            stitch(small, large)


def test_what_the_pair_refuses_is_refused_between_any_two_models(small_model, large_model, run_node, load_unet):
    from tstitch_dev.models import TINY_WAN_SMALL

    wan = load_unet(TINY_WAN_SMALL)
    with pytest.raises(ValueError, match="model_2 .* and model_3 .* work in different latent spaces"):
        run_node("TStitchStages", model_1=large_model, model_2=wan, model_3=large_model, until="0.2, 0.7",
                 switch_by="steps")


def test_the_schedule_follows_the_last_models_sampling(small_model, large_model, run_node):
    # S' -> L -> S': the last model's zero-terminal-SNR sampling sets the schedule (its sigma_max is far larger)
    shifted_small = run_node("ModelSamplingDiscrete", model=small_model, sampling="eps", zsnr=True)[0]
    model = stages_node(run_node, [shifted_small, large_model, shifted_small])
    assert math.isclose(float(model.get_model_object("model_sampling").sigma_max),
                        float(shifted_small.get_model_object("model_sampling").sigma_max))


def test_stage_sigmas_give_each_stage_its_count(small_model, large_model, run_node, tag, calls, conds, latent):
    large, small = tag(large_model, "L"), tag(small_model, "S")
    model = stages_node(run_node, [large, small, large], switch_by="timestep")
    sigmas = run_node("TStitchStageSigmas", model=model, scheduler="simple", steps_per_model="2, 3, 4", denoise=1.0)[0]
    positive, negative = conds
    run_node("SamplerCustom", model=model, add_noise=True, noise_seed=0, cfg=CFG, positive=positive,
             negative=negative, sampler=run_node("KSamplerSelect", sampler_name="euler")[0], sigmas=sigmas,
             latent_image=latent(size=SIZE))
    assert calls.names() == "LLSSSLLLL"


def test_the_preview_colours_each_stage(small_model, large_model, run_node):
    model = stages_node(run_node, [large_model, small_model, large_model])
    summary = run_node("TStitchSchedulePreview", model=model, steps=STEPS, scheduler="simple", denoise=1.0)[1]
    assert summary.splitlines() == [
        "stage 1 (model_1, SD15, 0 to 0.25): steps 1-2 of 8 (25%)",
        "stage 2 (model_2, SD15, 0.25 to 0.625): steps 3-5 of 8 (38%)",
        "stage 3 (model_1, SD15, 0.625 to 1): steps 6-8 of 8 (38%)"]


def test_until_takes_spaces_as_the_sweep_does_and_quotes_a_huge_input_short():
    from tstitch_core.stages import parse_until

    assert parse_until("0.2 0.7", 3) == parse_until("0.2, 0.7", 3) == parse_until(" 0.2 ,0.7;", 3) == [0.2, 0.7]
    with pytest.raises(ValueError) as error:
        parse_until("0.2, " + "x" * 1_000_000, 3)
    assert str(error.value) == (f"T-Stitch Stages: until {'0.2, ' + 'x' * 195!r}... (1000005 characters) is not a list "
                                "of numbers; write the fraction of the trajectory where each model but the last hands "
                                "over, such as \"0.2, 0.7\" for three stages.")
