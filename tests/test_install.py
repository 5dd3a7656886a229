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



def test_the_registry_icon_and_banner_are_the_packs_own_files():
    from PIL import Image

    project = tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())
    raw = project["project"]["urls"]["Repository"].replace("https://github.com/", "https://raw.githubusercontent.com/")
    for field, size in (("Icon", (400, 400)), ("Banner", (1280, 320))):
        url = project["tool"]["comfy"][field]
        assert url.startswith(f"{raw}/main/"), url  # the registry shows it from the repository
        with Image.open(PACK_ROOT / url.removeprefix(f"{raw}/main/")) as image:
            assert (image.format, image.size) == ("PNG", size)


def test_the_registry_archive_leaves_out_tests_and_benchmarks(tmp_path):
    import zipfile

    clone = tmp_path / "comfyui-tstitch"
    assert run(["git", "clone", "--quiet", str(PACK_ROOT), str(clone)], tmp_path)[0] == 0
    code, output = run([str(BIN / "comfy"), "--skip-prompt", "node", "pack"], clone, {"DO_NOT_TRACK": "1"})
    assert code == 0, output
    names = zipfile.ZipFile(clone / "node.zip").namelist()
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"tests", "bench", "registry", ".ci", ".github"}, sorted(tops)
    assert not [name for name in names if name.startswith(("tstitch_dev/stand_in_nodes", "tstitch_dev/digits_pair"))]
    for needed in ("__init__.py", "pyproject.toml", "README.md", "LICENSE", "nodes/stitch.py",
                   "tstitch_core/schedule.py", "web/docs/TStitchModelPair/en.md", "locales/zh/main.json",
                   "example_workflows/Basic pair - SD1.5 + BK-SDM-Tiny.json", "tools/bk_sdm_to_checkpoint.py",
                   "subgraphs/T-Stitch SD1.5 + BK-SDM sampler.json"):
        assert needed in names, needed


def test_the_github_workflows_publish_on_a_version_change_and_run_the_readme_test_command():
    import yaml

    workflows = PACK_ROOT / ".github" / "workflows"
    publish = yaml.safe_load((workflows / "publish.yml").read_text())
    triggers = publish[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"] == {"branches": ["main"], "paths": ["pyproject.toml"]}
    steps = publish["jobs"]["publish"]["steps"]
    guard = next(step for step in steps if step.get("id") == "version")
    assert "git diff HEAD^ HEAD -- pyproject.toml" in guard["run"] and "^[+-]version = " in guard["run"]
    action = next(step for step in steps if step.get("uses", "").startswith("Comfy-Org/publish-node-action@"))
    assert action["if"] == "steps.version.outputs.changed == 'true'"
    assert action["with"]["personal_access_token"] == "${{ secrets.REGISTRY_ACCESS_TOKEN }}"

    tests = yaml.safe_load((workflows / "tests.yml").read_text())
    commands = [step.get("run", "") for step in tests["jobs"]["test"]["steps"]]
    ci_run = (PACK_ROOT / ".ci" / "run").read_text()
    assert "./tstitch test" in commands and "exec ./tstitch test" in ci_run  # what CI proves is what users run
    assert any("playwright install" in command and "chromium" in command for command in commands)


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
