"""The harness keeps its promises: the version floor is tested or the run fails, and booting ComfyUI in
this process reports real import failures only."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from tstitch_dev.comfy_env import EXTRAS_FAILED, SERVERLESS_EXTRA, ServerlessNoiseFilter
from tstitch_dev.host import PACK_ROOT, comfyui_version

pytestmark = pytest.mark.latest_host_only  # about the harness, not the host: once per run is enough


def run_tstitch_test(comfy_host, tmp_path, floors: str | None):
    """``./tstitch test`` on one fast pure test file, on a machine with no floor checkout and no network."""
    env = {**os.environ, "HOME": str(tmp_path / "home"), "TSTITCH_CACHE": str(tmp_path / "cache"),
           "TSTITCH_PYTHON": sys.executable, "COMFYUI_PATH": str(comfy_host),
           "TSTITCH_COMFYUI_REPO": str(tmp_path / "no-such-repo")}
    env.pop("TSTITCH_FLOOR_HOSTS", None)
    if floors is not None:
        env["TSTITCH_FLOOR_HOSTS"] = floors
    (tmp_path / "home").mkdir(exist_ok=True)
    result = subprocess.run([str(PACK_ROOT / "tstitch"), "test", "-q", "-p", "no:cacheprovider",
                             "tests/test_core_options.py"], cwd=PACK_ROOT, env=env, capture_output=True,
                            text=True, timeout=600)
    return result.returncode, result.stderr


def test_a_run_without_the_version_floor_fails_and_says_how_to_opt_out(comfy_host, tmp_path):
    code, log = run_tstitch_test(comfy_host, tmp_path, floors=None)
    assert code != 0, log
    assert "No checkout of the version floor, ComfyUI 0.3.64" in log and "TSTITCH_FLOOR_HOSTS= " in log, log
    assert f"hosts tested: ComfyUI {comfyui_version(comfy_host)} (passed), floor NOT TESTED" in log, log


def test_an_explicitly_empty_floor_list_opts_out_and_says_so(comfy_host, tmp_path):
    code, log = run_tstitch_test(comfy_host, tmp_path, floors="")
    assert code == 0, log
    assert "(no version floor: TSTITCH_FLOOR_HOSTS is empty)" in log, log


def test_every_listed_floor_is_run_and_named_in_the_summary(comfy_host, tmp_path):
    version = comfyui_version(comfy_host)
    code, log = run_tstitch_test(comfy_host, tmp_path, floors=f"{comfy_host}:{tmp_path / 'missing'}")
    assert code != 0, log  # a listed floor that is not there is a failure, not a skip
    assert (f"hosts tested: ComfyUI {version} (passed), ComfyUI {version} (passed), "
            f"{tmp_path / 'missing'} NOT TESTED") in log, log


def serverless_boot_records(other_failure: str | None = None) -> list[str]:
    """The messages ComfyUI 0.33 logs when nodes_replacements.py finds no server (and maybe one more failure)."""
    failures = [SERVERLESS_EXTRA] + ([other_failure] if other_failure else [])
    return ([f"Error while calling comfy_entrypoint in /ComfyUI/comfy_extras/{SERVERLESS_EXTRA}: "
             "type object 'PromptServer' has no attribute 'instance'",
             "Cannot import /x/custom_nodes/comfyui-tstitch module for custom nodes: boom",
             f"{EXTRAS_FAILED}. This may be because they are missing some dependencies.\n"]
            + [f"IMPORT FAILED: {name}" for name in failures]
            + ["\nThis issue might be caused by new missing dependencies added the last time you updated ComfyUI.",
               "Please do a: pip install -r requirements.txt", "", "after the summary"])


def through_the_filter(messages: list[str]) -> list[str]:
    root, shown = logging.getLogger(), []
    handler = logging.Handler()
    handler.emit = lambda record: shown.append(record.getMessage())
    noise = ServerlessNoiseFilter()
    root.addHandler(handler)
    root.addFilter(noise)
    try:
        for message in messages:
            root.warning(message)
    finally:
        root.removeFilter(noise)
        root.removeHandler(handler)
    return shown


def test_only_the_serverless_import_report_is_dropped():
    assert through_the_filter(serverless_boot_records()) == [
        "Cannot import /x/custom_nodes/comfyui-tstitch module for custom nodes: boom", "after the summary"]


def test_a_real_extras_failure_keeps_its_whole_report():
    shown = through_the_filter(serverless_boot_records(other_failure="nodes_broken.py"))
    assert "IMPORT FAILED: nodes_broken.py" in shown and f"IMPORT FAILED: {SERVERLESS_EXTRA}" not in shown
    assert any(m.startswith(EXTRAS_FAILED) for m in shown) and "Please do a: pip install -r requirements.txt" in shown
    assert shown[-1] == "after the summary"


def test_booting_in_process_reports_no_import_failure(comfy_host, tmp_path):
    boot = ("import sys; from pathlib import Path; from tstitch_dev.comfy_env import boot_comfyui; "
            f"boot_comfyui(Path({str(tmp_path)!r}), cpu=True)")
    result = subprocess.run([sys.executable, "-c", boot], cwd=PACK_ROOT, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "COMFYUI_PATH": str(comfy_host)})
    assert result.returncode == 0, result.stderr
    assert "IMPORT FAILED" not in result.stderr and "Cannot import" not in result.stderr, result.stderr
