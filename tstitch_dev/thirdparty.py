"""Third-party node packs the tests load beside this pack, found like the host: never part of this repository.

ComfyUI-GGUF (city96), pinned to GGUF_COMMIT: $TSTITCH_GGUF_PATH, else ~/ComfyUI-GGUF, else a clone of that
commit under the cache (needs internet). It imports only where the ``gguf`` package does (the test extra
installs it). ``find_gguf_pack`` returns the checkout, or None and the reason it can't be had: the one case
where the GGUF tests skip.

Run as ``python -m tstitch_dev.thirdparty`` to print the checkout's path (cloning it if needed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .host import CACHE_DIR

GGUF_REPO = os.environ.get("TSTITCH_GGUF_REPO", "https://github.com/city96/ComfyUI-GGUF.git")  # or a mirror
GGUF_COMMIT = "795e45156ece99afbc3efef911e63fcb46e6a20d"  # 2025-12-18, "Use int64 for index in dequant"
GGUF_DIR_NAME = "ComfyUI-GGUF"


def is_gguf_pack(path: Path) -> bool:
    return (path / "nodes.py").is_file() and (path / "loader.py").is_file() and (path / "ops.py").is_file()


def find_gguf_pack(clone: bool = True) -> tuple[Path | None, str]:
    """(the ComfyUI-GGUF checkout, "") by the order in the module docstring, or (None, why not)."""
    try:
        import gguf  # noqa: F401  the pack imports it at load
    except ImportError:
        return None, ("the gguf package is not installed in this environment (pip install gguf; the test extra "
                      "of pyproject.toml has it)")
    explicit = os.environ.get("TSTITCH_GGUF_PATH")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        if is_gguf_pack(path):
            return path, ""
        return None, f"TSTITCH_GGUF_PATH={explicit} is not a ComfyUI-GGUF checkout (no nodes.py, loader.py, ops.py)"
    for path in (Path.home() / GGUF_DIR_NAME, CACHE_DIR / f"{GGUF_DIR_NAME}-{GGUF_COMMIT[:7]}"):
        if is_gguf_pack(path):
            return path, ""
    if not clone:
        return None, f"no ComfyUI-GGUF at ~/{GGUF_DIR_NAME} or in {CACHE_DIR}, and cloning was not asked for"
    try:
        return clone_gguf_pack(CACHE_DIR / f"{GGUF_DIR_NAME}-{GGUF_COMMIT[:7]}"), ""
    except RuntimeError as error:
        return None, (f"no ComfyUI-GGUF at $TSTITCH_GGUF_PATH or ~/{GGUF_DIR_NAME}, and it could not be cloned: "
                      f"{error}")


def clone_gguf_pack(dest: Path) -> Path:
    """A checkout of GGUF_COMMIT at ``dest``, cloned under a temporary name and renamed into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    print(f"tstitch: cloning ComfyUI-GGUF {GGUF_COMMIT[:7]} into {dest}", file=sys.stderr)
    try:
        subprocess.run(["git", "clone", "--quiet", GGUF_REPO, str(partial)], check=True, timeout=300,
                       stdin=subprocess.DEVNULL, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
        subprocess.run(["git", "-C", str(partial), "checkout", "--quiet", GGUF_COMMIT], check=True, timeout=60)
        os.replace(partial, dest)
    except (OSError, subprocess.SubprocessError) as error:
        if is_gguf_pack(dest):  # another process cloned it first
            return dest
        raise RuntimeError(f"the clone of {GGUF_REPO} at {GGUF_COMMIT[:7]} failed: {error}") from error
    finally:
        if partial.exists():
            subprocess.run(["rm", "-rf", str(partial)], check=False)
    if not is_gguf_pack(dest):
        raise RuntimeError(f"the clone at {dest} is not a ComfyUI-GGUF checkout")
    return dest


if __name__ == "__main__":
    found, reason = find_gguf_pack()
    print(found) if found else sys.exit(f"tstitch: {reason}")
