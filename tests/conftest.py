"""Fixtures: the real ComfyUI host, booted once per session with this pack loaded by ComfyUI's
own custom-node loader, and seeded random-weight models loaded through ComfyUI's loaders.

A missing host is an error in every test that needs it, never a skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the repo root for tstitch_core / tstitch_dev; the host is put in front of it, so that ComfyUI's
# nodes.py, not this pack's nodes/ package, is the top-level ``nodes``
sys.path.insert(0, str(ROOT))

from tstitch_dev.testing import CFG, STEPS, CallLog  # noqa: E402


# Under pytest-xdist (``./tstitch test`` runs ``-n auto --dist loadfile``) each worker is a process of its own
# with its own in-process ComfyUI, server and browser; the model files they share are built under a lock.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    # torch's threads split the cores between the workers (before torch is imported, and so for the servers
    # they start): workers of a core's worth of threads each would take turns on every core
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // WORKERS))
# test files that share a session fixture too costly to have on every worker: the server (and its memory)
SHARED_WORKER = {"tests/test_server.py": "server", "tests/test_browser.py": "server",
                 "tests/test_blueprints.py": "server", "tests/test_fuzz.py": "server"}


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hooks, when it is installed
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: no workers when the tests named are all in one file (it would run on one worker anyway,
    after the others had started and booted ComfyUI for nothing); else pytest-xdist's count, one per core."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    files = {arg.split("::")[0] for arg in config.args}
    if len(files) == 1 and Path(config.invocation_params.dir, *files).is_file():
        return 0
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, each file whole on one worker (its module fixtures built once), most tests first,
    with the files in SHARED_WORKER on one worker between them."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SHARED_WORKER.get(scope, scope)

    return Scheduling(config, log)


@pytest.fixture(scope="session")
def gguf_pack() -> tuple[Path | None, str]:
    """(city96's ComfyUI-GGUF checkout at the pinned commit, "") when it can be had, else (None, why not)."""
    from tstitch_dev.thirdparty import find_gguf_pack

    return find_gguf_pack()


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory, gguf_pack) -> Path:
    from tstitch_dev.comfy_env import boot_comfyui

    # third-party packs load as installed beside this one; their ops reach only the models their loaders load
    extra_packs = tuple(path for path in (gguf_pack[0],) if path is not None)
    return boot_comfyui(tmp_path_factory.mktemp("comfyui"), cpu=True, extra_packs=extra_packs)


@pytest.fixture(scope="session")
def gguf_nodes(comfy_host, gguf_pack):
    """ComfyUI-GGUF's node classes by id, loaded by ComfyUI from the pinned checkout; the GGUF tests skip, saying
    why, only where that checkout can't be had (not found, not clonable, no gguf package)."""
    import nodes

    path, reason = gguf_pack
    if path is None:
        pytest.skip(f"ComfyUI-GGUF can't be had: {reason}")
    if "UnetLoaderGGUF" not in nodes.NODE_CLASS_MAPPINGS:
        raise RuntimeError(f"ComfyUI did not load ComfyUI-GGUF from {path} (see its import error logged above).")
    return nodes.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="session")
def comfy_nodes(comfy_host):
    """ComfyUI's ``nodes`` module: NODE_CLASS_MAPPINGS holds every node, this pack's included."""
    import nodes

    return nodes


@pytest.fixture(scope="session")
def node(comfy_nodes):
    return lambda node_id: comfy_nodes.NODE_CLASS_MAPPINGS[node_id]


@pytest.fixture(scope="session")
def run_node(node):
    """Run any node, V1 or V3, by its node id with keyword inputs; returns its outputs as a tuple."""

    def run(node_id, **inputs):
        import torch

        cls = node(node_id)
        with torch.inference_mode():  # as ComfyUI's executor runs nodes
            if hasattr(cls, "GET_SCHEMA"):  # V3
                return tuple(cls.execute(**inputs).result)
            return tuple(getattr(cls(), cls.FUNCTION)(**inputs))

    return run


@pytest.fixture(scope="session")
def load_unet(comfy_nodes):
    """Load a test model spec through ComfyUI's UNETLoader node, building its file on first use."""
    import folder_paths
    from tstitch_dev.models import MODEL_CACHE, ensure_diffusion_model

    folder_paths.add_model_folder_path("diffusion_models", str(MODEL_CACHE))

    def load(spec):
        return comfy_nodes.UNETLoader().load_unet(ensure_diffusion_model(spec).name, "default")[0]

    return load


@pytest.fixture(scope="session")
def small_model(load_unet):
    """The small model of most tests: one level at SD1.5's width, no middle block (BK-SDM-style)."""
    from tstitch_dev.models import MINI_SD15_SMALL

    return load_unet(MINI_SD15_SMALL)


@pytest.fixture(scope="session")
def large_model(load_unet):
    from tstitch_dev.models import MINI_SD15_LARGE

    return load_unet(MINI_SD15_LARGE)


@pytest.fixture(scope="session")
def medium_model(load_unet):
    from tstitch_dev.models import MINI_SD15_MEDIUM

    return load_unet(MINI_SD15_MEDIUM)


@pytest.fixture(scope="session")
def deep_pair(load_unet):
    """(small, large) with SD1.5's first two levels (320 and 640 channels), for what needs real blocks:
    ControlNets made for the large layout, FreeU's 640-channel scaling."""
    from tstitch_dev.models import TINY_SD15_LARGE, TINY_SD15_SMALL

    return load_unet(TINY_SD15_SMALL), load_unet(TINY_SD15_LARGE)


@pytest.fixture(scope="session")
def pruned_model(load_unet):
    """An SSD-1B-style pruning of the deep large model: the same blocks, fewer transformers in them."""
    from tstitch_dev.models import TINY_SD15_PRUNED

    return load_unet(TINY_SD15_PRUNED)


@pytest.fixture(scope="session")
def vae(comfy_nodes):
    """The VAE of a test checkpoint, through CheckpointLoaderSimple."""
    import folder_paths
    from tstitch_dev.models import TINY_SD15_LARGE, ensure_checkpoint

    path = ensure_checkpoint(TINY_SD15_LARGE)
    folder_paths.add_model_folder_path("checkpoints", str(path.parent))
    return comfy_nodes.CheckpointLoaderSimple().load_checkpoint(path.name)[2]


@pytest.fixture(scope="session")
def bk_sdm_tool(comfy_host):
    """tools/bk_sdm_to_checkpoint.py as a module, loaded by path as its command line runs it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bk_sdm_to_checkpoint", ROOT / "tools" / "bk_sdm_to_checkpoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def bk_sdm_ldm(comfy_host) -> dict:
    """BK-SDM-shaped seeded random fp16 weights in checkpoint layout, without the prefixes: unet, vae and clip."""
    from tstitch_dev.diffusers_format import BK_SDM_SHAPED, build_ldm_parts

    return build_ldm_parts(BK_SDM_SHAPED)


@pytest.fixture(scope="session")
def bk_sdm_diffusers(bk_sdm_ldm) -> dict:
    """bk_sdm_ldm as a diffusers model's unet, vae and text_encoder weights, as nota-ai publishes BK-SDM."""
    from tstitch_dev.diffusers_format import BK_SDM_SHAPED, diffusers_components

    return diffusers_components(BK_SDM_SHAPED, bk_sdm_ldm)


@pytest.fixture(scope="session")
def bk_sdm_folder(tmp_path_factory, bk_sdm_diffusers) -> Path:
    """bk_sdm_diffusers written as a diffusers model folder (unet/, vae/, text_encoder/), as a download of it."""
    from tstitch_dev.diffusers_format import write_component

    folder = tmp_path_factory.mktemp("diffusers") / "bk-sdm-shaped"
    for component, weights in bk_sdm_diffusers.items():
        write_component(folder, component, weights)
    return folder


@pytest.fixture(scope="session")
def conds(comfy_host):
    """Seeded stand-ins for encoded prompts: (positive, negative) CONDITIONING of SD1.5's shape."""
    import torch

    generator = torch.Generator().manual_seed(1234)
    return tuple([[torch.randn(1, 77, 768, generator=generator), {}]] for _ in range(2))


@pytest.fixture(scope="session")
def latent(comfy_nodes):
    """An empty latent, 64x64 (8x8 in latent space) unless ``size`` says, from ComfyUI's EmptyLatentImage node."""
    return lambda batch_size=1, size=64: comfy_nodes.EmptyLatentImage().generate(size, size, batch_size)[0]


@pytest.fixture(scope="session")
def controlled_conds(comfy_host, run_node, conds):
    """The test conds with a random-weight ControlNet for the large model's layout, applied as users do."""
    import torch
    import folder_paths
    from tstitch_dev.models import TINY_SD15_LARGE, ensure_controlnet

    path = ensure_controlnet(TINY_SD15_LARGE)
    folder_paths.add_model_folder_path("controlnet", str(path.parent))
    control_net = run_node("ControlNetLoader", control_net_name=path.name)[0]
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    positive, negative = conds
    return run_node("ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control_net,
                    image=hint, strength=1.0, start_percent=0.0, end_percent=1.0)[:2]


@pytest.fixture(scope="session")
def lora_hooked(comfy_host, run_node):
    """Conditioning with a scheduled LoRA hook (CreateHookLora + ConditioningSetProperties), for ``spec``'s UNet."""
    import folder_paths
    from tstitch_dev.models import ensure_lora

    def hooked(conditioning, spec, seed=8):
        path = ensure_lora(spec, seed=seed)
        folder_paths.add_model_folder_path("loras", str(path.parent))
        hooks = run_node("CreateHookLora", lora_name=path.name, strength_model=1.0, strength_clip=1.0)[0]
        return run_node("ConditioningSetProperties", cond_NEW=conditioning, strength=1.0, set_cond_area="default",
                        hooks=hooks)[0]

    return hooked


@pytest.fixture(scope="session")
def ksample(run_node, conds, latent):
    """Sample through ComfyUI's KSampler node; returns the latent tensor."""

    def sample(model, sampler_name="euler", scheduler="normal", steps=STEPS, cfg=CFG, denoise=1.0, latent_image=None,
               seed=0, conds=conds):
        positive, negative = conds
        latent_image = latent() if latent_image is None else latent_image
        return run_node("KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
                        scheduler=scheduler, positive=positive, negative=negative, latent_image=latent_image,
                        denoise=denoise)[0]["samples"]

    return sample


@pytest.fixture(scope="session")
def stitch(run_node):
    """The stitched MODEL that TStitchModelPair outputs."""

    def make(small, large, small_fraction=0.4, switch_by="steps"):
        return run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=small_fraction,
                        switch_by=switch_by)[0]

    return make


@pytest.fixture
def calls() -> CallLog:
    return CallLog()


@pytest.fixture
def tag(calls):
    """A clone of a model that logs each of its calls under ``name`` (a model_function_wrapper patch)."""

    def tagged(model, name):
        m = model.clone()

        def record(apply_model, args):
            calls.append((name, float(args["timestep"][0])))
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(record)
        return m

    return tagged


@pytest.fixture(scope="session")
def server(tmp_path_factory, comfy_host):
    """The host's main.py serving on 127.0.0.1, this pack loaded, the example workflows' models in place, and
    beside the pack the test-only stand-in nodes (tstitch_dev/stand_in_nodes: text encoders too big to build)."""
    yield from serve(tmp_path_factory, comfy_host)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory, comfy_host):
    """A server like ``server``'s for one test module alone (the soak), so that what a long queue leaves in its
    process never reaches the tests that share ``server`` (the frontend's among them)."""
    yield from serve(tmp_path_factory, comfy_host)


def serve(tmp_path_factory, comfy_host):
    from tstitch_dev.examples import link_example_models
    from tstitch_dev.server import ComfyServer

    base = tmp_path_factory.mktemp("server")
    link_example_models(base)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT / "tstitch_dev" / "stand_in_nodes", base / "custom_nodes" / "tstitch_stand_in_nodes",
               target_is_directory=True)
    with ComfyServer(base, host=comfy_host, python=sys.executable) as running:
        yield running


@pytest.fixture
def load_events(monkeypatch):
    """Which of the named models ComfyUI's model management loads and unloads, in order: 'S' loaded is '+S',
    unloaded '-S'; models loaded together in one call are one event ('+LS'). Everything is unloaded first, so
    that models other tests left loaded do not hide a load. Returns (name(model, label) -> model, events)."""
    import comfy.model_management as mm

    names, events = {}, []

    def loaded():
        return {names[id(m.model)] for m in mm.loaded_models() if m is not None and id(m.model) in names}

    def spied(function):
        def call(*args, **kwargs):
            before = loaded()
            try:
                return function(*args, **kwargs)
            finally:
                after = loaded()
                if before - after:
                    events.append("-" + "".join(sorted(before - after)))
                if after - before:
                    events.append("+" + "".join(sorted(after - before)))
        return call

    for name in ("load_models_gpu", "free_memory", "unload_all_models"):
        monkeypatch.setattr(mm, name, spied(getattr(mm, name)))
    mm.unload_all_models()

    def name(model, label):
        names[id(model.model)] = label
        return model

    return name, events


@pytest.fixture
def progress_updates(monkeypatch, comfy_host):
    """The (value, total) of every progress bar update ComfyUI's hook is sent (the first and the last always;
    the host throttles those between), in order."""
    import comfy.utils

    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview=None, **_: updates.append(
        (value, total)))
    return updates


@pytest.fixture
def cancel_after(monkeypatch, comfy_host):
    """``cancel_after(n)``: Cancel is pressed (ComfyUI's interrupt flag set) at the n-th progress update, every update
    sent (no throttling); returns the values sent. The flag is cleared after the test whatever happened."""
    import comfy.model_management
    import comfy.utils

    def arm(updates: int):
        seen = []

        def hook(value, total, preview=None, **_):
            seen.append(value)
            if len(seen) == updates:
                comfy.model_management.interrupt_current_processing(True)

        monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
        monkeypatch.setattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL", 0.0, raising=False)
        monkeypatch.setattr(comfy.utils, "PROGRESS_THROTTLE_MIN_PERCENT", 0.0, raising=False)
        return seen

    yield arm
    comfy.model_management.interrupt_current_processing(False)
