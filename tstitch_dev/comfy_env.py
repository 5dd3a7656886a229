"""Starting ComfyUI in this process and loading the pack through ComfyUI's own custom-node loader."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .host import PACK_ROOT, comfyui_version, find_comfyui

PACK_DIR_NAME = "comfyui-tstitch"
PACK_NODE_IDS = ("TStitchModelPair", "TStitchKSampler", "TStitchGuider", "TStitchSchedulePreview",
                 "TStitchFractionSweep")


class PackLoadError(RuntimeError):
    pass


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


def boot_comfyui(workdir: Path, cpu: bool | None = None, host: Path | None = None) -> Path:
    """Import the ComfyUI host, then load every node the way ComfyUI does, this pack from ``workdir``.

    The pack is linked into ``workdir/custom_nodes`` and that folder is ComfyUI's only custom-node
    folder, so neither the host's installed packs nor its folders take part.
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
    folder_paths.folder_names_and_paths["custom_nodes"] = ([str(custom_nodes)], set())
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    missing = [node_id for node_id in PACK_NODE_IDS if node_id not in nodes.NODE_CLASS_MAPPINGS]
    if missing:
        raise PackLoadError(f"ComfyUI {comfyui_version(host)} at {host} did not load the pack from {link}: "
                            f"{', '.join(missing)} missing (see the import error logged above).")
    return host
