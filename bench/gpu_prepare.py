"""What ``./tstitch gpu-check`` needs on a GPU machine that reaches nothing outside, built here and carried there.

Such a machine has Python 3.12 with torch, transformers, einops, safetensors, aiohttp and scipy, but no ComfyUI
and none of the packages below, and a call carries at most 64 MiB: the working tree plus named git-ignored
folders. ``--prepare`` (here) downloads the wheels for Python 3.12 on manylinux x86-64 and packs the host's code
into ``.gpu-check/carry-1``, ``carry-2``, ...: each call carries one of them, and every run there first installs
what its call carried (``pip install --no-index --no-deps --target .gpu-check/site``, kept between the calls of a
warm machine) and unpacks the host into ``.gpu-check/host``. Standard library only: it runs before anything else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parent.parent
PREPARED = PACK_ROOT / ".gpu-check"
DOWNLOADS = PREPARED / "downloads"
SITE = PREPARED / "site"
HOST_DIR = PREPARED / "host"
HOST_ARCHIVE = "host.tar.xz"
PLAN = "plan.json"
MIB = 2 ** 20
CARRY_LIMIT = 64 * MIB  # what one call of the GPU machine carries: the tree and the named folders
CARRY_MARGIN = MIB // 4  # for files the tree gains between --prepare and the calls (run them at once)
# what the GPU machines have (besides the standard library and what these require)
GPU_MACHINE_HAS = ("torch", "transformers", "einops", "safetensors", "aiohttp", "scipy")
# Beyond those, what the pack's load and the check import: ComfyUI's core and comfy_api (av, comfy-kitchen,
# comfy-aimdo, torchsde, pillow, psutil, torchaudio: comfy/sd.py imports an audio VAE) and the pack (torchvision,
# kornia). Left out: the requirements only some comfy_extras modules import (spandrel, sqlalchemy, requests, ...):
# those modules are reported as IMPORT FAILED there, and the check uses none of them.
WHEELS = ("comfy-kitchen", "av", "comfy-aimdo", "torchsde", "trampoline", "pillow", "psutil", "torchvision",
          "torchaudio", "kornia", "kornia-rs")
PLATFORM = ("--python-version", "3.12", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
            "--platform", "manylinux2014_x86_64", "--platform", "any")
# the host less its models, its own tests and what the server and frontend alone use
HOST_LEFT_OUT = {".git", ".github", "models", "custom_nodes", "input", "output", "user", "temp", "tests", "tests-unit",
                 "blueprints", "script_examples", "__pycache__"}


class PrepareError(RuntimeError):
    pass


def pinned_versions(requirements: Path, names=WHEELS) -> dict[str, str]:
    """Each wheel's version: the one installed here (what the tests ran on), which must match an ``==`` pin in
    the host's requirements.txt."""
    from importlib.metadata import PackageNotFoundError, version

    pins = {}
    for line in requirements.read_text().splitlines():
        name, _, pin = line.split("#")[0].strip().partition("==")
        if pin:
            pins[canonical(name)] = pin.strip()
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            raise PrepareError(f"T-Stitch gpu-check --prepare: {name} is not installed in {sys.executable}, so there "
                               "is no tested version to download; run it through ./tstitch, which sets up the "
                               "environment.") from None
        if canonical(name) in pins and pins[canonical(name)] != versions[name]:
            raise PrepareError(f"T-Stitch gpu-check --prepare: {name} {versions[name]} is installed here but the "
                               f"host's {requirements} pins {pins[canonical(name)]}; reinstall the environment "
                               "(./tstitch setup) so that the check runs what was tested.")
    return versions


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def download_wheels(versions: dict[str, str], dest: Path = DOWNLOADS) -> list[Path]:
    """The wheels for Python 3.12 on manylinux x86-64, downloaded with pip (it reuses files already in ``dest``)."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", *PLATFORM,
               "--dest", str(dest), *(f"{name}=={v}" for name, v in versions.items())]
    if subprocess.run(command).returncode:
        raise PrepareError("T-Stitch gpu-check --prepare: pip could not download the wheels (above); it needs the "
                           "package index once, here, never on the GPU machine.")
    return find_wheels(versions, dest)


def find_wheels(versions: dict[str, str], folder: Path) -> list[Path]:
    """One wheel per name and version in ``folder``; a clear error for any missing."""
    wheels, missing = [], []
    for name, v in versions.items():
        prefix = f"{name.replace('-', '_')}-{v}-".lower()
        found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
        (wheels.append(found[0]) if found else missing.append(f"{name}=={v}"))
    if missing:
        raise PrepareError(f"T-Stitch gpu-check --prepare: no wheel for {', '.join(missing)} in {folder}.")
    return wheels


def pack_host(host: Path, archive: Path) -> Path:
    """The host's code as ``archive`` (tar.xz, about a fifth of its size), with HOST_LEFT_OUT left out."""
    def keep(info: tarfile.TarInfo):
        parts = Path(info.name).parts
        left_out = (len(parts) > 1 and parts[1] in HOST_LEFT_OUT) or "__pycache__" in parts
        return None if left_out or info.name.endswith(".pyc") else info

    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:xz") as tar:
        tar.add(host, arcname="host", filter=keep)
    os.replace(partial, archive)
    return archive


def tree_bytes(root: Path = PACK_ROOT) -> int:
    """What a call carries of the working tree: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sum((root / name).stat().st_size for name in listed if name and (root / name).is_file())


def split_sizes(sizes: dict[str, int], room: int) -> dict[str, int]:
    """``sizes`` with each file larger than ``room`` (a wheel bigger than a call can carry beside the tree) as
    equal parts ``name.partIofN``, which the machine joins once every part has arrived (``install_carried``)."""
    parts = {}
    for name, size in sizes.items():
        count = -(-size // room) if room > 0 else 0
        if count <= 1:
            parts[name] = size
            continue
        step = -(-size // count)
        for index in range(count):
            parts[part_name(name, index, count)] = min(step, size - index * step)
    return parts


def part_name(name: str, index: int, count: int) -> str:
    return f"{name}.part{index + 1}of{count}"


PART = re.compile(r"^(?P<name>.+)\.part(?P<index>\d+)of(?P<count>\d+)$")


def plan_calls(sizes: dict[str, int], tree: int, limit: int = CARRY_LIMIT,
               margin: int = CARRY_MARGIN) -> list[list[str]]:
    """Files (name -> bytes) packed into as few calls as fit, largest first, each call with the tree beside it;
    a file larger than a call's room goes as parts (``split_sizes``)."""
    room = limit - tree - margin
    if room <= 0:
        raise PrepareError(f"T-Stitch gpu-check --prepare: the tree ({tree / MIB:.1f} MiB of {limit / MIB:.0f}) leaves "
                           "no room in a call; move large files the check does not need out of the tree.")
    sizes = split_sizes(sizes, room)
    calls, free = [], []
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        fits = next((i for i, room_left in enumerate(free) if sizes[name] <= room_left), None)
        if fits is None:
            calls.append([]), free.append(room)
            fits = len(calls) - 1
        calls[fits].append(name)
        free[fits] -= sizes[name]
    return calls


def write_part(source: Path, index: int, count: int, target: Path) -> None:
    size = source.stat().st_size
    step = -(-size // count)
    with open(source, "rb") as whole, open(target, "wb") as part:
        whole.seek(index * step)
        part.write(whole.read(step))


def lay_out(files: list[Path], host_archive: Path, tree: int, prepared: Path = PREPARED) -> dict:
    """carry-1, carry-2, ... under ``prepared``, each with its share of ``files`` and the host archive (hard links
    where the file system allows) and a copy of the plan; returns the plan."""
    by_name = {path.name: path for path in [*files, host_archive]}
    calls = plan_calls({name: path.stat().st_size for name, path in by_name.items()}, tree)
    for old in prepared.glob("carry-*"):
        shutil.rmtree(old)
    plan = {"wheels": sorted(path.name for path in files), "tree_bytes": tree, "calls": []}
    for number, names in enumerate(calls, 1):
        folder = prepared / f"carry-{number}"
        folder.mkdir(parents=True)
        for name in names:
            part = PART.match(name)
            if part:
                write_part(by_name[part["name"]], int(part["index"]) - 1, int(part["count"]), folder / name)
                continue
            try:
                os.link(by_name[name], folder / name)
            except OSError:
                shutil.copy2(by_name[name], folder / name)
        plan["calls"].append({"carry": f"{prepared.name}/{folder.name}", "files": sorted(names),
                              "bytes": tree + sum((folder / n).stat().st_size for n in names),
                              "command": "./tstitch gpu-check" + ("" if number == len(calls) else " --install")})
    for number in range(1, len(calls) + 1):
        (prepared / f"carry-{number}" / PLAN).write_text(json.dumps(plan, indent=1))
    return plan


def describe_plan(plan: dict) -> str:
    lines = [f"{len(plan['calls'])} calls to make on the GPU machine, one right after the other (a warm machine "
             "keeps .gpu-check/site between them):"]
    for number, call in enumerate(plan["calls"], 1):
        lines.append(f"  {number}. carry [\"{call['carry']}\"], command: {call['command']}   "
                     f"({call['bytes'] / MIB:.1f} MiB with the tree: {', '.join(call['files'])})")
    return "\n".join(lines)


def prepare(host: Path, wheels_from: Path | None = None, prepared: Path = PREPARED, tree: Path = PACK_ROOT) -> dict:
    """Download (or take from ``wheels_from``) the wheels, pack ``host``, lay the calls out beside the working tree
    ``tree``; returns the plan."""
    versions = pinned_versions(host / "requirements.txt")
    wheels = find_wheels(versions, wheels_from) if wheels_from else download_wheels(versions, prepared / "downloads")
    print(f"T-Stitch gpu-check --prepare: packing ComfyUI's code from {host}", flush=True)
    archive = pack_host(host, prepared / "build" / HOST_ARCHIVE)
    plan = lay_out(wheels, archive, tree_bytes(tree), prepared)
    print(describe_plan(plan))
    return plan


# --- there: what a call carried, installed before anything is imported ---

def carried_plan(prepared: Path = PREPARED) -> dict | None:
    plans = sorted(prepared.glob(f"carry-*/{PLAN}"))
    return json.loads(plans[0].read_text()) if plans else None


def install_carried(prepared: Path = PREPARED, python: str = sys.executable) -> list[str]:
    """Install every carried wheel not installed yet into ``prepared``/site and unpack a carried host archive;
    returns what it did."""
    done, site = [], prepared / "site"
    joined = join_parts(prepared)
    for carry in [*sorted(prepared.glob("carry-*")), joined]:
        wheels = [w for w in sorted(carry.glob("*.whl")) if not (site / ".installed" / w.name).exists()]
        if wheels and has_pip(python):
            command = [python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--upgrade",
                       "--target", str(site), *map(str, wheels)]
            if subprocess.run(command).returncode:
                raise PrepareError(f"T-Stitch gpu-check: installing {', '.join(w.name for w in wheels)} into {site} "
                                   "failed (above).")
        elif wheels:  # no pip there: a wheel without dependencies installs by unpacking it
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(site)
        (site / ".installed").mkdir(parents=True, exist_ok=True)
        for wheel in wheels:
            (site / ".installed" / wheel.name).touch()
            done.append(wheel.name)
        archive = carry / HOST_ARCHIVE
        stamp = prepared / "host" / ".archive-size"
        if archive.exists() and not (stamp.exists() and stamp.read_text() == str(archive.stat().st_size)):
            shutil.rmtree(prepared / "host", ignore_errors=True)
            with tarfile.open(archive) as tar:
                tar.extractall(prepared, filter="data")
            stamp.write_text(str(archive.stat().st_size))
            done.append(HOST_ARCHIVE)
    return done


def join_parts(prepared: Path = PREPARED) -> Path:
    """``prepared``/joined, holding each file whose parts have all arrived (over the calls of a warm machine: the
    carry folders stay) joined again; a file with parts still to come is left out."""
    joined = prepared / "joined"
    joined.mkdir(parents=True, exist_ok=True)
    parts: dict[str, dict[int, Path]] = {}
    counts = {}
    for path in prepared.glob("carry-*/*.part*of*"):
        match = PART.match(path.name)
        if match:
            parts.setdefault(match["name"], {})[int(match["index"])] = path
            counts[match["name"]] = int(match["count"])
    for name, found in parts.items():
        if len(found) == counts[name] and not (joined / name).exists():
            partial = joined / f".{name}.partial"
            with open(partial, "wb") as whole:
                for index in range(1, counts[name] + 1):
                    whole.write(found[index].read_bytes())
            partial.rename(joined / name)
    return joined


def has_pip(python: str) -> bool:
    try:
        return subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0
    except OSError:
        return False


def missing_wheels(prepared: Path = PREPARED) -> list[str]:
    """The plan's wheels that are not installed in ``prepared``/site (none when nothing was carried)."""
    plan = carried_plan(prepared)
    if plan is None:
        return []
    return [name for name in plan["wheels"] if not (prepared / "site" / ".installed" / name).exists()]
