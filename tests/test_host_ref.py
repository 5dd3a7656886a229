"""The upstream watch's host path, offline: ./tstitch takes a host by repository and git ref (a branch, a tag, the
newest release tag), fetched anew each run, here from a local repository made of the pinned host's files; without
TSTITCH_COMFYUI_REF nothing changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tstitch_dev.host import PACK_ROOT, comfyui_version

pytestmark = pytest.mark.latest_host_only  # about the harness, not the host: once per run is enough


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


def set_version(repo: Path, version: str) -> None:
    (repo / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    git(repo, "commit", "--quiet", "-am", version)


@pytest.fixture(scope="module")
def upstream(comfy_host, tmp_path_factory) -> Path:
    """A git repository of the pinned host's files: v0.33.0, then release tags v0.33.1 and v0.9.9 (an older line, so
    the newest is found by version, not by date), and master one commit ahead, untagged."""
    repo = tmp_path_factory.mktemp("upstream") / "ComfyUI"
    subprocess.run(["cp", "-r", str(comfy_host), str(repo)], check=True)
    git(repo, "init", "--quiet", "--initial-branch", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "the pinned host")
    git(repo, "tag", "v0.33.0")
    set_version(repo, "0.33.1")
    git(repo, "tag", "v0.33.1")
    git(repo, "checkout", "--quiet", "-b", "old-line", "v0.33.0")
    set_version(repo, "0.9.9")
    git(repo, "tag", "v0.9.9")
    git(repo, "checkout", "--quiet", "master")
    set_version(repo, "0.34.0")
    return repo


def tstitch_test(upstream: Path, tmp_path: Path, ref: str | None):
    env = {**os.environ, "TSTITCH_CACHE": str(tmp_path / "cache"), "TSTITCH_PYTHON": sys.executable,
           "TSTITCH_COMFYUI_REPO": f"file://{upstream}", "TSTITCH_FLOOR_HOSTS": ""}
    env.pop("COMFYUI_PATH", None)
    env.pop("TSTITCH_COMFYUI_REF", None)
    if ref is not None:
        env["TSTITCH_COMFYUI_REF"] = ref
    return subprocess.run([str(PACK_ROOT / "tstitch"), "test", "-q", "-p", "no:cacheprovider", "-n", "0",
                           "tests/test_core_options.py"], cwd=PACK_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("ref, version", [("latest-release", "0.33.1"), ("master", "0.34.0")])
def test_a_host_given_by_ref_is_fetched_and_tested(ref, version, upstream, tmp_path):
    result = tstitch_test(upstream, tmp_path, ref)
    assert result.returncode == 0, result.stderr
    assert f"tstitch: tests on ComfyUI {version} at {tmp_path / 'cache'}" in result.stderr, result.stderr
    assert f"hosts tested: ComfyUI {version} (passed)" in result.stderr


def test_a_moved_branch_is_fetched_anew(upstream, tmp_path):
    assert tstitch_test(upstream, tmp_path, "master").returncode == 0
    set_version(upstream, "0.34.1")
    try:
        result = tstitch_test(upstream, tmp_path, "master")
        assert "tests on ComfyUI 0.34.1" in result.stderr, result.stderr
    finally:
        git(upstream, "reset", "--quiet", "--hard", "HEAD~1")


def test_a_ref_that_is_not_there_fails_loudly(upstream, tmp_path):
    result = tstitch_test(upstream, tmp_path, "no-such-branch")
    assert result.returncode != 0
    assert f"Fetching no-such-branch of file://{upstream} failed" in result.stderr, result.stderr


def test_without_a_ref_the_host_is_found_as_before(upstream, tmp_path, comfy_host):
    result = subprocess.run([sys.executable, "-m", "tstitch_dev.host"], cwd=PACK_ROOT, capture_output=True,
                            text=True, env={**os.environ, "COMFYUI_PATH": str(comfy_host),
                                            "TSTITCH_COMFYUI_REPO": f"file://{upstream}"}, timeout=60)
    assert result.stdout.strip() == str(comfy_host)
    assert comfyui_version(comfy_host) == "0.33.0"
