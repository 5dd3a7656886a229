"""Installing the pack as users do: the Comfy Registry's metadata checks (comfy-cli) and
ComfyUI-Manager's own CLI installing it from a git URL into a fresh ComfyUI that then loads it."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from tstitch_dev.host import PACK_ROOT

pytestmark = pytest.mark.latest_host_only
BIN = Path(sys.executable).parent


def run(command, cwd, env=None, timeout=600):
    result = subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def test_comfy_cli_validates_the_registry_metadata():
    assert shutil.which("ruff", path=str(BIN)), "comfy node validate skips its security check without ruff"
    code, output = run([str(BIN / "comfy"), "--skip-prompt", "node", "validate"], PACK_ROOT, {"DO_NOT_TRACK": "1"})
    assert code == 0 and "All validation checks passed" in output, output


def test_registry_fields_comfy_cli_does_not_check_are_well_formed():
    project = tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())
    meta, comfy = project["project"], project["tool"]["comfy"]
    # the registry's rules for a node id and a publisher id
    assert re.fullmatch(r"[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*", meta["name"]) and len(meta["name"]) < 100
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert re.fullmatch(r"[a-z][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"].strip()
    assert meta["urls"]["Repository"].startswith("https://")
    assert comfy["requires-comfyui"].startswith(">=")



@pytest.fixture(scope="module")
def fresh_comfyui(tmp_path_factory, comfy_host):
    """A copy of the host's code with an empty custom_nodes/, and ComfyUI-Manager set up to stay offline."""
    root = tmp_path_factory.mktemp("fresh") / "ComfyUI"
    user_state = {"custom_nodes", "user", "models", "output", "temp"}

    def skip(folder, names):
        """Not code the installer needs: git data, virtual environments, caches, the host's own user state."""
        return [n for n in names if n in (".git", "__pycache__") or (Path(folder, n) / "pyvenv.cfg").is_file()
                or (Path(folder) == comfy_host and n in user_state)]

    shutil.copytree(comfy_host, root, ignore=skip)
    (root / "custom_nodes").mkdir()
    config = root / "user" / "__manager" / "config.ini"
    config.parent.mkdir(parents=True)
    config.write_text("[default]\nuse_uv = False\nnetwork_mode = offline\n")
    return root


def test_comfyui_manager_installs_from_a_git_url_and_comfyui_loads_the_nodes(fresh_comfyui, tmp_path):
    from tstitch_dev.server import ComfyServer

    # a local clone named like the repository, as Manager names the folder after the URL
    clone = tmp_path / "comfyui-tstitch"
    assert run(["git", "clone", "--quiet", str(PACK_ROOT), str(clone)], tmp_path)[0] == 0
    code, output = run([str(BIN / "cm-cli"), "install", f"file://localhost{clone}"], fresh_comfyui,
                       {"COMFYUI_PATH": str(fresh_comfyui)})
    # cm-cli exits 0 even when an install fails: its [INSTALLED] line and the files are the evidence
    assert "[INSTALLED]" in output, output
    installed = fresh_comfyui / "custom_nodes" / "comfyui-tstitch"
    assert (installed / "__init__.py").is_file() and (installed / "example_workflows").is_dir()

    with ComfyServer(fresh_comfyui, host=fresh_comfyui, python=sys.executable, link_pack=False) as server:
        info = server.object_info()
        log = server.log_text()
    assert "TStitchModelPair" in info and "TStitchKSampler" in info
    assert info["TStitchModelPair"]["python_module"] == "custom_nodes.comfyui-tstitch"
    import_lines = [line for line in log.splitlines() if "comfyui-tstitch" in line]
    assert import_lines and not any("IMPORT FAILED" in line for line in import_lines), log
    assert "Traceback" not in log, log
