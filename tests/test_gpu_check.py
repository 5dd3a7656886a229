"""./tstitch gpu-check: its help, its CPU smoke in an environment cut down to what the GPU machines have plus the
wheels --prepare carries there, and --prepare's folders (with wheels made here: nothing is downloaded)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from bench import gpu_prepare
from bench.gpu_check import DYNAMIC, NOT_AVAILABLE

ROOT = Path(__file__).resolve().parent.parent
# dynamic VRAM and the host's pins are 0.33's; the floor has neither
pytestmark = pytest.mark.latest_host_only

# the wheels' sizes as `./tstitch gpu-check --prepare` downloaded them on 2026-12-06 (Python 3.12, manylinux x86-64)
DOWNLOADED_BYTES = {"comfy-kitchen": 58541121, "av": 35786210, "comfy-aimdo": 342188, "torchsde": 61232,
                    "trampoline": 5173, "pillow": 7144542, "psutil": 155560, "torchvision": 7522205,
                    "torchaudio": 1771992, "kornia": 1940302, "kornia-rs": 5339861}


def test_help_names_the_prepare_step_and_what_is_checked():
    result = subprocess.run([str(ROOT / "tstitch"), "gpu-check", "--help"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TSTITCH_PYTHON": sys.executable}, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "--prepare" in result.stdout and "--install" in result.stdout and "dynamic VRAM" in result.stdout


def requirement_closure(names) -> set[str]:
    """``names`` and every distribution they require (no extras), as installed here."""
    from packaging.requirements import Requirement

    seen, todo = set(), list(names)
    while todo:
        name = gpu_prepare.canonical(todo.pop())
        if name in seen:
            continue
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo += [r.name for r in map(Requirement, requires) if not r.marker or r.marker.evaluate({"extra": ""})]
    return seen


def gpu_machine_site(dest: Path) -> Path:
    """A site-packages of links to what a GPU machine has and what --prepare carries there: nothing else."""
    keep = requirement_closure(gpu_prepare.GPU_MACHINE_HAS) | {gpu_prepare.canonical(n) for n in gpu_prepare.WHEELS}
    dest.mkdir()
    for dist in metadata.distributions():
        if gpu_prepare.canonical(dist.metadata["Name"]) not in keep:
            continue
        for top in {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (dest / top).exists():
                (dest / top).symlink_to(source)
    return dest


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """(plan, .gpu-check folder) of --prepare with this host and wheels made here at the downloaded wheels' sizes."""
    from tstitch_dev.host import find_comfyui

    base = tmp_path_factory.mktemp("prepare")
    host = find_comfyui(clone=False)
    wheels = fake_wheels(base / "wheels", gpu_prepare.pinned_versions(host / "requirements.txt"), DOWNLOADED_BYTES)
    return gpu_prepare.prepare(host, wheels, base / ".gpu-check"), base / ".gpu-check"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, prepared):
    """The CPU smoke with the optional Wan pair as a GPU machine runs it: the host unpacked from --prepare's archive,
    Python started without this environment's site-packages (-S), on the cut-down one."""
    base = tmp_path_factory.mktemp("gpu-check")
    with tarfile.open(next(prepared[1].glob(f"carry-*/{gpu_prepare.HOST_ARCHIVE}"))) as tar:
        tar.extractall(base, filter="data")
    site = gpu_machine_site(base / "site")
    out = base / "out"
    result = subprocess.run([sys.executable, "-S", "-m", "bench.gpu_check", "--cpu", "--wan", "--out", str(out)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(site), "COMFYUI_PATH": str(base / "host")},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "results.json").read_text())
    return result.stdout, report, (out / "results.md").read_text(), base / "host"


def test_the_smoke_runs_on_the_packed_host_says_dynamic_vram_is_not_available_and_runs_once(smoke):
    stdout, report, _, host = smoke
    assert NOT_AVAILABLE in stdout
    assert report["phases"][DYNAMIC]["host"] == str(host)  # unpacked from --prepare's archive
    assert list(report["phases"]) == [DYNAMIC]  # on the CPU the second phase would run the same code
    phase = report["phases"][DYNAMIC]
    assert (phase["device_type"], phase["dynamic"]) == ("cpu", False)


def test_every_smoke_check_passes_and_the_cpu_is_bitwise(smoke):
    checks = smoke[1]["phases"][DYNAMIC]["checks"]
    names = [c["check"] for c in checks]
    for expected in ("f = 0 equals the large model alone", "f = 1 equals the small model alone",
                     "f = 0.4 equals the hand-routed reference", "offload_idle_model on equals off",
                     "hooked prompts: f = 0 equals the large model alone with them",
                     "hooked prompts: f = 0.4, offload on equals off"):
        assert expected in names
    assert all(c["passed"] for c in checks), checks
    exact = [c for c in checks if c["check"].startswith(("f = ", "hooked", "offload"))]
    assert len(exact) == 7 and all(c["detail"].startswith("bitwise equal") for c in exact), exact
    assert all("is_dynamic() False" in c["detail"] for c in checks if "models loaded" in c["check"])


def test_the_smoke_times_each_pair_and_its_speedups_follow_from_its_own_times(smoke):
    speed = smoke[1]["phases"][DYNAMIC]["speed"]
    assert [(p["title"], p["table"]["rows"][0]["fraction"]) for p in speed] == [
        ("test-sized SD1.5 pair", 0.5), ("test-sized DiT pair", 0.5), ("test-sized Wan pair", 0.4)]
    for pair in speed:
        table = pair["table"]
        (row,) = table["rows"]
        assert row["small_steps"] == 1  # of 2 steps
        assert math.isclose(row["speedup"], table["large"]["median"] / row["stitched"]["median"], rel_tol=1e-12)
        ideal = (table["small"]["median"] + table["large"]["median"]) / 2  # one small and one large step of two
        assert math.isclose(row["ideal"], ideal, rel_tol=1e-12)
    assert "WAN21" in speed[2]["large"] and "WAN21" in speed[2]["small"]


def test_the_memory_runs_hand_over_once_with_offload_off_and_on(smoke):
    memory = smoke[1]["phases"][DYNAMIC]["memory"]
    assert [(m["pair"], m["offload"]) for m in memory] == [
        (pair, offload) for pair in ("test-sized SD1.5 pair", "test-sized DiT pair", "test-sized Wan pair")
        for offload in (False, True)]
    for run in memory:
        assert run["calls"] == "SL"  # 2 steps at 0.4: one small call, then the large
        assert [name for name, _ in run["handovers"]] == ["small", "large"]
        assert run["peak_allocated"] is None and run["least_free"] is None  # no CUDA: nothing made up


def test_the_markdown_has_a_row_per_check_and_per_timed_fraction(smoke):
    _, report, markdown, _ = smoke
    phase = report["phases"][DYNAMIC]
    for check in phase["checks"]:
        assert re.search(rf"^\| {re.escape(check['check'])} \| PASS: ", markdown, re.M), check["check"]
    assert markdown.count("| test-sized SD1.5 pair | dynamic VRAM on | 64x64, 2 steps euler/normal") == 1
    assert markdown.count("| test-sized Wan pair | dynamic VRAM on | 64x64x5 frames, 2 steps euler/simple") == 1
    assert "## Memory" in markdown and markdown.count("| dynamic VRAM on | on |") == 3


def test_compare_is_bitwise_then_within_the_stated_tolerance():
    import torch

    from bench.gpu_check import TOLERANCE, compare

    x = torch.linspace(-2, 2, 64)
    assert compare(x.clone(), x) == (True, "bitwise equal")
    near, far = x + 2 * TOLERANCE / 2, x + 2 * TOLERANCE * 2  # the output's scale is 2: half, twice the tolerance
    assert compare(near, x)[0] and "tolerance" in compare(near, x)[1]
    assert not compare(far, x)[0]
    assert compare(x * float("nan"), x) == (False, "not finite")


def test_speed_pairs_past_the_budget_are_skipped_but_not_the_wan_pair_asked_for():
    from bench.gpu_check import BUDGET_S, SPEED_RESERVE_S, over_budget

    deadline = 1000.0 + BUDGET_S
    assert over_budget("sd15-bk-sdm-tiny", deadline, deadline - SPEED_RESERVE_S) is None
    assert over_budget("sd15-bk-sdm-tiny", deadline, deadline - SPEED_RESERVE_S + 1) == (
        f"less than {SPEED_RESERVE_S} s of the {BUDGET_S} s budget was left")
    assert over_budget("wan-1.3b-14b", deadline, deadline + 60) is None  # --wan runs outside the budget
    assert over_budget("sd15-bk-sdm-tiny", None, 1e12) is None  # the CPU smoke has no budget


# --- --prepare and what a call installs there ---

def readme_calls() -> list[tuple[str, str]]:
    """(carry folder, command) of each call docs/gpu-check.md lists (the README links it)."""
    import re

    from tstitch_dev.host import PACK_ROOT

    text = (PACK_ROOT / "docs" / "gpu-check.md").read_text()
    return [(carry, command.split(";")[0]) for carry, command in
            re.findall(r'^\d+\. carry `\["(\.gpu-check/carry-\d+)"\]`, command `([^`]+)`', text, re.M)]


def fake_wheels(folder: Path, versions: dict[str, str], sizes: dict[str, int]) -> Path:
    folder.mkdir()
    for name, version in versions.items():
        with open(folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "wb") as wheel:
            wheel.truncate(sizes[name])  # sparse: the size is what the plan reads
    return folder


def test_prepare_packs_the_host_code_and_each_call_carries_under_64_mib(prepared):
    plan, prepared = prepared
    wheels = prepared.parent / "wheels"
    assert len(plan["calls"]) == len(readme_calls())  # docs/gpu-check.md lists each call
    assert plan["tree_bytes"] == gpu_prepare.tree_bytes()
    carried = []
    for number, call in enumerate(plan["calls"], 1):
        folder = prepared / f"carry-{number}"
        assert call["carry"] == f".gpu-check/carry-{number}"
        files = sorted(p.name for p in folder.iterdir() if p.name != gpu_prepare.PLAN)
        assert files == call["files"]
        carried_bytes = plan["tree_bytes"] + sum((folder / name).stat().st_size for name in folder.iterdir())
        assert carried_bytes < gpu_prepare.CARRY_LIMIT, (number, carried_bytes)
        assert json.loads((folder / gpu_prepare.PLAN).read_text()) == plan
        carried += files
    # comfy-kitchen (56 MiB) does not fit beside the tree (the trained digits pair is in it): it goes in parts
    whole = {(gpu_prepare.PART.match(name) or {"name": name})["name"] for name in carried}
    assert sorted(whole) == sorted([p.name for p in wheels.iterdir()] + [gpu_prepare.HOST_ARCHIVE])
    assert any(name.startswith("comfy_kitchen") and ".part" in name for name in carried)
    assert [c["command"] for c in plan["calls"]] == [*["./tstitch gpu-check --install"] * (len(plan["calls"]) - 1),
                                                     "./tstitch gpu-check"]
    assert [(call["carry"], call["command"]) for call in plan["calls"]] == readme_calls()
    archive = next(prepared.glob(f"carry-*/{gpu_prepare.HOST_ARCHIVE}"))
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for needed in ("host/comfyui_version.py", "host/nodes.py", "host/comfy/samplers.py",
                   "host/comfy_api/latest/__init__.py", "host/comfy_extras/nodes_hooks.py", "host/requirements.txt"):
        assert needed in names, needed
    assert not any(part in gpu_prepare.HOST_LEFT_OUT for name in names for part in Path(name).parts[1:2])
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_a_version_other_than_the_hosts_pin_is_refused(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("comfy-kitchen==0.0.1\ntorch\n")
    with pytest.raises(gpu_prepare.PrepareError, match=r"T-Stitch gpu-check --prepare: comfy-kitchen .* pins 0\.0\.1"):
        gpu_prepare.pinned_versions(requirements)


def test_a_file_larger_than_a_call_goes_in_parts_and_a_tree_that_leaves_no_room_is_refused():
    mib = gpu_prepare.MIB
    # beside a 20 MiB tree a call has 43.75 MiB: 62 MiB goes as two equal parts
    calls = gpu_prepare.plan_calls({"big.whl": 62 * mib, "small.whl": mib}, tree=20 * mib)
    assert calls == [["big.whl.part1of2", "small.whl"], ["big.whl.part2of2"]]
    assert gpu_prepare.split_sizes({"big.whl": 62 * mib}, 43 * mib) == {"big.whl.part1of2": 31 * mib,
                                                                       "big.whl.part2of2": 31 * mib}
    with pytest.raises(gpu_prepare.PrepareError, match="move large files the check does not need out of the tree"):
        gpu_prepare.plan_calls({"a.whl": 10}, tree=64 * mib)
    assert gpu_prepare.plan_calls({"a": 40, "b": 30, "c": 20, "d": 10}, tree=0, limit=60, margin=0) == [
        ["a", "c"], ["b", "d"]]


def test_a_wheel_in_parts_installs_once_its_last_part_has_arrived(tmp_path):
    host = tmp_path / "ComfyUI"
    (host / "comfy").mkdir(parents=True)
    (host / "comfyui_version.py").write_text('__version__ = "0.33.0"\n')
    built = tmp_path / "built"
    built.mkdir()
    wheel = pure_wheel(built, "tstitch_fake_big", "1.0", padding=8192)
    archive = gpu_prepare.pack_host(host, tmp_path / gpu_prepare.HOST_ARCHIVE)
    room = max(wheel.stat().st_size // 2 + 16, archive.stat().st_size)
    prepared = tmp_path / ".gpu-check"
    plan = gpu_prepare.lay_out([wheel], archive, tree=gpu_prepare.CARRY_LIMIT - gpu_prepare.CARRY_MARGIN - room,
                               prepared=prepared)
    parts = sorted(name for call in plan["calls"] for name in call["files"] if ".part" in name)
    assert parts == [f"{wheel.name}.part1of2", f"{wheel.name}.part2of2"] and plan["wheels"] == [wheel.name]
    last = next(prepared / f"carry-{n}" for n, call in enumerate(plan["calls"], 1) if parts[1] in call["files"])
    held_back = tmp_path / "not-yet"
    shutil.move(last, held_back)  # the call that carries the second part has not been made
    assert wheel.name not in gpu_prepare.install_carried(prepared)
    assert gpu_prepare.missing_wheels(prepared) == [wheel.name]
    shutil.move(held_back, last)
    assert wheel.name in gpu_prepare.install_carried(prepared)
    assert (prepared / "joined" / wheel.name).read_bytes() == wheel.read_bytes()
    assert gpu_prepare.missing_wheels(prepared) == []
    assert (prepared / "site" / "tstitch_fake_big" / "__init__.py").exists()


def pure_wheel(folder: Path, name: str, version: str, padding: int = 0) -> Path:
    """A minimal pure-Python wheel whose package says its name (and holds ``padding`` random bytes)."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", f"NAME = {name!r}\n")
        if padding:
            wheel.writestr(f"{name}/padding.bin", os.urandom(padding))
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL",
                       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.mark.parametrize("python", [sys.executable, "/bin/false"], ids=["pip", "no-pip"])
def test_each_call_installs_what_it_carried_once_and_unpacks_the_host(python, tmp_path):
    host = tmp_path / "ComfyUI"
    (host / "comfy").mkdir(parents=True)
    (host / "comfyui_version.py").write_text('__version__ = "0.33.0"\n')
    (host / "comfy" / "samplers.py").write_text("")
    (host / "models").mkdir()
    (host / "models" / "big.safetensors").write_text("weights")
    built = tmp_path / "built"
    built.mkdir()
    wheels = [pure_wheel(built, "tstitch_fake_one", "1.0"), pure_wheel(built, "tstitch_fake_two", "2.0")]
    prepared = tmp_path / ".gpu-check"
    archive = gpu_prepare.pack_host(host, tmp_path / gpu_prepare.HOST_ARCHIVE)
    # a tree that leaves room for one file a call: the calls split as the large wheels split
    room = max(path.stat().st_size for path in [*wheels, archive])
    plan = gpu_prepare.lay_out(wheels, archive, tree=gpu_prepare.CARRY_LIMIT - gpu_prepare.CARRY_MARGIN - room,
                               prepared=prepared)
    assert len(plan["calls"]) == 3
    assert gpu_prepare.missing_wheels(prepared) == sorted(w.name for w in wheels)
    done = gpu_prepare.install_carried(prepared, python)
    assert sorted(done) == sorted([w.name for w in wheels] + [gpu_prepare.HOST_ARCHIVE])
    assert gpu_prepare.install_carried(prepared, python) == []  # a second call installs nothing again
    assert gpu_prepare.missing_wheels(prepared) == []
    site = prepared / "site"
    assert (site / "tstitch_fake_two" / "__init__.py").read_text() == "NAME = 'tstitch_fake_two'\n"
    assert (prepared / "host" / "comfy" / "samplers.py").exists() and not (prepared / "host" / "models").exists()
    (site / ".installed" / wheels[0].name).unlink()  # as a machine that went back between the calls
    assert gpu_prepare.missing_wheels(prepared) == [wheels[0].name]


def test_through_tstitch_a_call_installs_and_a_machine_that_went_back_is_named(tmp_path):
    # ./tstitch's gpu-check case where no managed environment exists, as on the GPU machines: a copy of the
    # entry point, bench/ and tstitch_dev/, the calls laid out one file each
    tree = tmp_path / "tree"
    tree.mkdir()
    shutil.copy2(ROOT / "tstitch", tree / "tstitch")
    for folder in ("bench", "tstitch_dev"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("results", "__pycache__"))
    host = tmp_path / "ComfyUI"
    host.mkdir()
    (host / "comfyui_version.py").write_text('__version__ = "0.33.0"\n')
    wheels = [pure_wheel(tmp_path, "tstitch_fake_one", "1.0"), pure_wheel(tmp_path, "tstitch_fake_two", "2.0")]
    archive = gpu_prepare.pack_host(host, tmp_path / gpu_prepare.HOST_ARCHIVE)
    room = max(path.stat().st_size for path in [*wheels, archive])
    prepared = tree / ".gpu-check"
    plan = gpu_prepare.lay_out(wheels, archive, gpu_prepare.CARRY_LIMIT - gpu_prepare.CARRY_MARGIN - room, prepared)
    first_wheel = plan["calls"][0]["files"][0]
    assert first_wheel.endswith(".whl")
    env = {key: value for key, value in os.environ.items() if key not in ("TSTITCH_VENV", "COMFYUI_PATH")}
    env.update(TSTITCH_PYTHON=sys.executable, TSTITCH_CACHE=str(tmp_path / "no-environment-here"))
    aside = tmp_path / "aside"
    aside.mkdir()
    for later in ("carry-2", "carry-3"):  # the first call carries only carry-1
        (prepared / later).rename(aside / later)
    first = subprocess.run([str(tree / "tstitch"), "gpu-check", "--install"], cwd=tree, env=env, capture_output=True,
                           text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"installed {first_wheel}" in first.stdout
    assert (prepared / "site" / ".installed" / first_wheel).exists()
    # the machine went back: a fresh one gets only the second call's folders
    shutil.rmtree(prepared / "site")
    shutil.rmtree(prepared / "carry-1")
    for later in ("carry-2", "carry-3"):
        (aside / later).rename(prepared / later)
    second = subprocess.run([str(tree / "tstitch"), "gpu-check"], cwd=tree, env=env, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 1
    assert f"T-Stitch gpu-check: {first_wheel} not installed" in second.stderr and "went back" in second.stderr
