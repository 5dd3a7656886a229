"""Settings and helpers the test modules share (pytest's importlib mode keeps conftest unimportable)."""

STEPS = 10
CFG = 5.0


def cfg_denoiser(model, positive, negative, cfg):
    """D(x, sigma) of one model with classifier-free guidance, straight from BaseModel.apply_model: a reference
    that runs none of the pack's code (cond and uncond in separate passes, where ComfyUI batches them)."""
    base_model = model.model

    def denoise(x, sigma):
        s = sigma.expand(x.shape[0])
        cond = base_model.apply_model(x, s, c_crossattn=positive.expand(x.shape[0], -1, -1))
        uncond = base_model.apply_model(x, s, c_crossattn=negative.expand(x.shape[0], -1, -1))
        return uncond + (cond - uncond) * cfg

    return denoise


def euler(denoisers, x, sigmas):
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn)."""
    for i in range(len(sigmas) - 1):
        denoised = denoisers[i](x, sigmas[i])
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


class CallLog(list):
    """(name, sigma) of every diffusion-model call, in order, as recorded by tagged models."""

    def names(self) -> str:
        return "".join(name for name, _ in self)


def crossed(where=lambda **cell: True, **dimensions):
    """pytest params for every combination of ``dimensions`` (name -> values) that ``where`` accepts.

    The full product runs on the target host. A covering subset, chosen greedily so that every value of each
    dimension meets every value of every other at least once, runs everywhere; the rest carry the
    ``cross_product`` mark, which the version-floor run deselects."""
    import itertools

    import pytest

    names = list(dimensions)
    cells = [cell for cell in itertools.product(*dimensions.values()) if where(**dict(zip(names, cell)))]
    pairs_of = lambda cell: {((i, cell[i]), (j, cell[j])) for i, j in itertools.combinations(range(len(names)), 2)}
    uncovered = set().union(*map(pairs_of, cells))
    covering = set()
    while uncovered:
        best = max(cells, key=lambda cell: len(pairs_of(cell) & uncovered))  # first of the best, so deterministic
        covering.add(best)
        uncovered -= pairs_of(best)
    return [pytest.param(*cell, id="-".join(str(value) for value in cell),
                         marks=() if cell in covering else pytest.mark.cross_product)
            for cell in cells]


def small_runs(switch_by, fraction, sigma, sample_sigmas, model_sampling) -> bool:
    """The rule as the README states it, written independently of tstitch_core: does the small model take a call
    at ``sigma`` of the schedule ``sample_sigmas``?"""
    import math

    import torch

    if switch_by == "steps":
        steps = len(sample_sigmas) - 1
        k = math.floor(fraction * steps + 0.5)
        return k >= steps or (k > 0 and sigma > float(sample_sigmas[k]))
    t = float(model_sampling.timestep(torch.tensor([sigma])))
    t_max = float(model_sampling.timestep(torch.tensor([float(model_sampling.sigma_max)])))
    return t / t_max >= 1 - fraction


def reference_model(small, large, switch_by, fraction, log=None):
    """``large`` whose calls go to ``small``'s apply_model where the rule says: no T-Stitch code involved."""
    reference = large.clone()
    reference.set_additional_models("reference", [small])  # loaded, object patches applied, by ComfyUI
    model_sampling = large.get_model_object("model_sampling")

    def route(apply_model, args):
        sigma = float(args["timestep"][0])
        sample_sigmas = args["c"]["transformer_options"]["sample_sigmas"].tolist()
        chosen = small_runs(switch_by, fraction, sigma, sample_sigmas, model_sampling)
        if log is not None:
            log.append("S" if chosen else "L")
        return (small.model.apply_model if chosen else apply_model)(args["input"], args["timestep"], **args["c"])

    reference.set_model_unet_function_wrapper(route)
    return reference


def snapshot(patcher):
    """Everything a node could mutate on a ModelPatcher, by value where plain and by identity otherwise."""

    def shape(value):
        if isinstance(value, dict):
            return {repr(k): shape(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [shape(v) for v in value]
        if isinstance(value, (str, int, float, bool, type(None))):
            return value
        return ("id", id(value))

    return shape({
        "model_options": patcher.model_options, "wrappers": patcher.wrappers, "callbacks": patcher.callbacks,
        "attachments": patcher.attachments, "additional_models": patcher.additional_models,
        "patches": patcher.patches, "patches_uuid": str(patcher.patches_uuid), "object_patches": patcher.object_patches,
        "injections": patcher.injections, "model": patcher.model, "model_sampling": patcher.model.model_sampling,
    })
