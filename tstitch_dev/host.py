"""Finding the ComfyUI host the tests, demo and benchmark run against (standard library only).

Order: $COMFYUI_PATH; with $TSTITCH_COMFYUI_REF, a checkout of that git ref of $TSTITCH_COMFYUI_REPO
(a branch such as master, a tag, or "latest-release": the highest vX.Y.Z tag), fetched anew each time
(the upstream watch; needs the repository); the ComfyUI whose custom_nodes/ holds this pack; ~/ComfyUI;
a pinned clone under ~/.cache/comfyui-tstitch (needs internet); otherwise a loud failure.

Run as ``python -m tstitch_dev.host`` to print the host's path (cloning it if needed), with ``--floor``
the version floor's: ~/ComfyUI-<floor>, else a clone of that version under the cache, else a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PINNED_REPO = os.environ.get("TSTITCH_COMFYUI_REPO", "https://github.com/Comfy-Org/ComfyUI.git")  # or a mirror
PINNED_VERSION = "0.33.0"
PACK_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("TSTITCH_CACHE", Path.home() / ".cache" / "comfyui-tstitch"))


class HostNotFound(RuntimeError):
    pass


def is_comfyui(path: Path) -> bool:
    return (path / "comfyui_version.py").is_file() and (path / "comfy" / "samplers.py").is_file()


def comfyui_version(path: Path) -> str:
    match = re.search(r'__version__\s*=\s*"([^"]+)"', (path / "comfyui_version.py").read_text())
    return match.group(1) if match else "unknown"


def find_comfyui(clone: bool = True) -> Path:
    """The ComfyUI checkout to run against, by the order in the module docstring."""
    explicit = os.environ.get("COMFYUI_PATH")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if not is_comfyui(path):
            raise HostNotFound(f"COMFYUI_PATH={explicit} is not a ComfyUI checkout (no comfyui_version.py there).")
        return path
    ref = os.environ.get("TSTITCH_COMFYUI_REF")
    if ref:
        return checkout_ref(ref)
    # installed as <ComfyUI>/custom_nodes/<pack>, possibly through a symlink
    for pack in (Path(__file__).absolute().parent.parent, PACK_ROOT):
        if pack.parent.name == "custom_nodes" and is_comfyui(pack.parent.parent):
            return pack.parent.parent
    home = Path.home() / "ComfyUI"
    if is_comfyui(home):
        return home
    pinned = CACHE_DIR / f"ComfyUI-{PINNED_VERSION}"
    if is_comfyui(pinned):
        return pinned
    if clone:
        try:
            return clone_pinned(pinned)
        except HostNotFound as error:
            raise HostNotFound(f"{_not_found_message()}\n{error}") from error
    raise HostNotFound(_not_found_message())


def floor_version() -> str:
    """The oldest ComfyUI the pack supports: pyproject's ``requires-comfyui = ">=X"``."""
    match = re.search(r'^requires-comfyui\s*=\s*">=\s*([\d.]+)"', (PACK_ROOT / "pyproject.toml").read_text(), re.M)
    if not match:
        raise HostNotFound("pyproject.toml has no requires-comfyui = \">=X\" to take the version floor from.")
    return match.group(1)


def find_floor() -> Path:
    """The version floor's checkout: ~/ComfyUI-<floor>, the cached clone, or a new clone of that tag."""
    version = floor_version()
    for path in (Path.home() / f"ComfyUI-{version}", CACHE_DIR / f"ComfyUI-{version}"):
        if is_comfyui(path):
            return path
    try:
        return clone_pinned(CACHE_DIR / f"ComfyUI-{version}", version)
    except HostNotFound as error:
        raise HostNotFound(f"No checkout of the version floor, ComfyUI {version}, at ~/ComfyUI-{version} or in "
                           f"{CACHE_DIR}, and it could not be cloned: {error}") from error


def clone_pinned(dest: Path, version: str = PINNED_VERSION) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    command = ["git", "clone", "--quiet", "--depth", "1", "--branch", f"v{version}", PINNED_REPO, str(dest)]
    print(f"tstitch: cloning ComfyUI {version} into {dest}", file=sys.stderr)
    try:
        subprocess.run(command, check=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as error:
        raise HostNotFound(f"The clone of ComfyUI {version} from {PINNED_REPO} failed: {error}") from error
    if not is_comfyui(dest):
        raise HostNotFound(f"The clone at {dest} is not a ComfyUI checkout.")
    return dest


LATEST_RELEASE = "latest-release"
_RELEASE_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def resolve_ref(ref: str, repo: str = PINNED_REPO) -> str:
    """``ref`` itself, or for "latest-release" the highest vX.Y.Z tag of ``repo`` (read with git ls-remote)."""
    if ref != LATEST_RELEASE:
        return ref
    try:
        listing = subprocess.run(["git", "ls-remote", "--tags", "--refs", repo], check=True, capture_output=True,
                                 text=True, timeout=120, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise HostNotFound(f"Listing the tags of {repo} failed: {error}") from error
    tags = [line.rsplit("refs/tags/", 1)[-1] for line in listing.splitlines()]
    releases = [tag for tag in tags if _RELEASE_TAG.match(tag)]
    if not releases:
        raise HostNotFound(f"{repo} has no release tag vX.Y.Z.")
    return max(releases, key=lambda tag: tuple(int(part) for part in _RELEASE_TAG.match(tag).groups()))


def checkout_ref(ref: str, repo: str = PINNED_REPO) -> Path:
    """A checkout of ``ref`` of ``repo`` under the cache, fetched anew (a branch moves): for the upstream watch."""
    resolved = resolve_ref(ref, repo)
    dest = CACHE_DIR / f"ComfyUI-ref-{re.sub(r'[^A-Za-z0-9._-]', '_', resolved)}"
    print(f"tstitch: ComfyUI at {resolved} of {repo} into {dest}", file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    git = lambda *args: subprocess.run(["git", "-C", str(dest), *args], check=True, timeout=600,  # noqa: E731
                                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    try:
        if not (dest / ".git").exists():
            git("init", "--quiet")
        git("fetch", "--quiet", "--depth", "1", "--force", repo, resolved)
        git("checkout", "--quiet", "--force", "FETCH_HEAD")
        git("clean", "--quiet", "-fdx")
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or error
        raise HostNotFound(f"Fetching {resolved} of {repo} failed: {detail}") from error
    if not is_comfyui(dest):
        raise HostNotFound(f"{resolved} of {repo} is not a ComfyUI checkout.")
    return dest


def _not_found_message() -> str:
    return ("No ComfyUI host found. Set COMFYUI_PATH to a ComfyUI checkout, install this pack under "
            "<ComfyUI>/custom_nodes/, or put ComfyUI at ~/ComfyUI "
            f"(git clone --branch v{PINNED_VERSION} {PINNED_REPO} ~/ComfyUI).")


if __name__ == "__main__":
    try:
        print(find_floor() if sys.argv[1:] == ["--floor"] else find_comfyui())
    except HostNotFound as error:
        sys.exit(f"tstitch: {error}")
