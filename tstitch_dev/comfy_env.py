"""Starting ComfyUI in this process and loading the pack through ComfyUI's own custom-node loader."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from .host import PACK_ROOT, comfyui_version, find_comfyui

PACK_DIR_NAME = "comfyui-tstitch"
PACK_NODE_IDS = ("TStitchModelPair", "TStitchKSampler", "TStitchGuider", "TStitchSchedulePreview",
                 "TStitchFractionSweep", "TStitchAgreementProbe", "TStitchDiTLoader", "TStitchImageNetClass",
                 "TStitchDiTScheduler", "TStitchStageSigmas", "TStitchClassIndex", "TStitchStages",
                 "TStitchStageSampler", "TStitchBKSDMLoader")


class PackLoadError(RuntimeError):
    pass


# Registers node replacements with the server; booted in-process there is none, so ComfyUI reports it as
# an IMPORT FAILED with "pip install -r requirements.txt", a false lead. The server tests load it for real.
SERVERLESS_EXTRA = "nodes_replacements.py"
EXTRAS_FAILED = "WARNING: some comfy_extras/ nodes did not import correctly"


class ServerlessNoiseFilter(logging.Filter):
    """Drops exactly ComfyUI's report that SERVERLESS_EXTRA failed for want of a server, nothing else.

    The failure summary is held back until it ends (an empty message) and let through whole, less that one
    line, when anything else failed too."""

    def __init__(self):
        super().__init__()
        self.serverless_failure = False
        self.summary = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if SERVERLESS_EXTRA in message and "PromptServer" in message:
            self.serverless_failure = True
            return False
        if self.summary is not None:
            self.summary.append(record)
            if message == "":
                self._release_summary()
            return False
        if self.serverless_failure and message.startswith(EXTRAS_FAILED):
            self.summary = [record]
            return False
        return True

    def _release_summary(self):
        kept = [r for r in self.summary if r.getMessage() != f"IMPORT FAILED: {SERVERLESS_EXTRA}"]
        self.summary = None
        if any(r.getMessage().startswith("IMPORT FAILED:") for r in kept):
            for record in kept:
                logging.getLogger().callHandlers(record)


def use_host(cpu: bool | None = None, host: Path | None = None) -> Path:
    """Make the ComfyUI host importable in this process; ``cpu=None`` uses the GPU when torch sees one."""
    host = host or find_comfyui()
    if str(host) not in sys.path:
        sys.path.insert(0, str(host))
    from comfy.cli_args import args  # parses no command line unless comfy.options asks it to

    if "comfy.model_management" not in sys.modules:  # it reads the device setting once, on import
        if cpu is None:
            import torch
            cpu = not torch.cuda.is_available()
        args.cpu = cpu
    return host


def boot_comfyui(workdir: Path, cpu: bool | None = None, host: Path | None = None,
                 extra_packs: tuple[Path, ...] = ()) -> Path:
    """Import the ComfyUI host, then load every node the way ComfyUI does, this pack from ``workdir``.

    The pack is linked into ``workdir/custom_nodes`` and that folder is ComfyUI's only custom-node
    folder, so neither the host's installed packs nor its folders take part; ``extra_packs`` (other
    node packs' checkouts, such as ComfyUI-GGUF) are linked there beside it and load as installed.
    """
    host = use_host(cpu, host)
    import folder_paths
    import nodes

    if all(node_id in nodes.NODE_CLASS_MAPPINGS for node_id in PACK_NODE_IDS):
        return host  # booted already in this process
    custom_nodes = workdir / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    link = custom_nodes / PACK_DIR_NAME
    if not link.exists():
        os.symlink(PACK_ROOT, link, target_is_directory=True)
    for pack in extra_packs:
        if not (custom_nodes / pack.name).exists():
            os.symlink(pack, custom_nodes / pack.name, target_is_directory=True)
    folder_paths.folder_names_and_paths["custom_nodes"] = ([str(custom_nodes)], set())
    noise = ServerlessNoiseFilter()
    logging.getLogger().addFilter(noise)  # ComfyUI logs its load reports on the root logger
    try:
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    finally:
        logging.getLogger().removeFilter(noise)
    missing = [node_id for node_id in PACK_NODE_IDS if node_id not in nodes.NODE_CLASS_MAPPINGS]
    if missing:
        raise PackLoadError(f"ComfyUI {comfyui_version(host)} at {host} did not load the pack from {link}: "
                            f"{', '.join(missing)} missing (see the import error logged above).")
    return host
