"""Fuzzing through the real server: every input of every node the pack registers (read from /object_info) given
odd values in API prompts; each answered within 10 s by a validation error or an execution error a user can act
on (or, for a value within the schema, a run that Cancel stops), and the server then runs a valid T-Stitch prompt.

TSTITCH_FUZZ_PER_INPUT (default 2; "all": every odd value of every input) and TSTITCH_FUZZ_SEED (default 0) size
and pick the run."""

import collections
import copy
import os
import time
from pathlib import Path

import pytest

from tstitch_dev import fuzz

pytestmark = pytest.mark.latest_host_only
ANSWER_SECONDS = 10.0


def answer(server, case) -> tuple[str, list[str], float]:
    """(outcome, problems, seconds): outcome rejected (400), failed (execution error), ran, or cancelled (a valid
    run still going after 10 s, which Cancel then stopped)."""
    from tstitch_dev.server import PromptRejected

    start = time.monotonic()
    try:
        prompt_id = server.queue(case.prompt)
    except PromptRejected as rejected:
        if fuzz.answered_by_host(case, rejected.body):
            return "rejected by the host's link check", [], time.monotonic() - start
        return "rejected", fuzz.judge_rejection(case, rejected.body), time.monotonic() - start
    entry = None
    while time.monotonic() - start < ANSWER_SECONDS and entry is None:
        entry = server.history(prompt_id)
        time.sleep(0.05)
    if entry is None:
        server.interrupt()
        stopped = time.monotonic()
        entry = server.wait(prompt_id, timeout=60)
        seconds = time.monotonic() - stopped
        messages = entry["status"]["messages"]
        if not case.value.valid:
            return "cancelled", [f"an invalid value ran for over {ANSWER_SECONDS:.0f} s"], seconds
        if not any(kind == "execution_interrupted" for kind, _ in messages):
            return "cancelled", [f"Cancel did not stop it: {str(messages)[:300]}"], seconds
        return "cancelled", [] if seconds < ANSWER_SECONDS else [f"Cancel took {seconds:.1f} s"], seconds
    seconds = time.monotonic() - start
    if entry["status"]["status_str"] == "success":
        optional = case.input_name in server.object_info()[case.node_type]["input"].get("optional", {})
        ok = case.value.valid or optional and (case.value.missing or case.value.value is None)  # null: not linked
        return "ran", [] if ok else ["ran to success"], seconds
    errors = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    if not errors:
        return "failed", [f"no execution error: {str(entry['status'])[:300]}"], seconds
    return "failed", fuzz.judge_failure(case, errors[0]), seconds


def fuzz_size() -> int | None:
    value = os.environ.get("TSTITCH_FUZZ_PER_INPUT", "2")
    return None if value == "all" else int(value)


def test_odd_values_in_every_input_are_answered_in_a_sentence_and_the_server_goes_on(server, capsys):
    info = server.object_info()
    cases = fuzz.cases(info, seed=int(os.environ.get("TSTITCH_FUZZ_SEED", "0")), per_input=fuzz_size())
    covered = {(c.node_type, c.input_name) for c in cases}
    every_input = {(node, name) for node, spec in fuzz.pack_nodes(info).items()
                   for part in ("required", "optional") for name in spec["input"].get(part, {})}
    assert covered == every_input and len(fuzz.pack_nodes(info)) >= 12

    # loading the checkpoints takes ~15 s on a busy 2-core machine: once, untimed, before the cases
    assert_runs_a_stitched_ksampler(server, seed=122)
    outcomes, problems, slowest = collections.Counter(), [], (0.0, "")
    for case in cases:
        outcome, wrong, seconds = answer(server, case)
        outcomes[outcome] += 1
        slowest = max(slowest, (seconds, case.label))
        problems += [f"{case.label}: {outcome}: {p}" for p in wrong]
        if not outcome.startswith("rejected") and seconds > ANSWER_SECONDS:
            problems.append(f"{case.label}: answered in {seconds:.1f} s")
    (Path(os.environ.get("TSTITCH_FUZZ_REPORT", "/tmp")) / "tstitch-fuzz-problems.txt").write_text("\n".join(problems))
    with capsys.disabled():
        print(f"\nfuzz: {len(cases)} odd values in {len(every_input)} inputs of {len(fuzz.pack_nodes(info))} nodes: "
              f"{dict(outcomes)}; slowest answer {slowest[0]:.1f} s ({slowest[1]})")
    assert not problems, "\n".join(problems)

    assert_runs_a_stitched_ksampler(server, seed=123)  # the server still runs a valid T-Stitch prompt


def assert_runs_a_stitched_ksampler(server, seed):
    prompt = copy.deepcopy(fuzz.supplier_graph())
    prompt["9"] = {"class_type": "KSampler", "inputs": {
        "model": ["3", 0], "positive": ["4", 0], "negative": ["5", 0], "latent_image": ["6", 0], "seed": seed,
        "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
    prompt["10"] = {"class_type": "PreviewAny", "inputs": {"source": ["9", 0]}}
    entry = server.run(prompt)
    assert entry["status"]["status_str"] == "success", (entry["status"], server.log_tail())


def test_a_value_typed_into_a_model_input_is_an_error_naming_the_node_and_input(server):
    # ComfyUI hands a literal in a link's place to the node unchecked: it was AttributeError: 'int' object has no
    # attribute 'get_attachment'
    prompt = fuzz.baseline("TStitchModelPair", server.object_info()["TStitchModelPair"])
    for value, shown in ((3, "'3'"), (None, "'None'"), ({"a": 1}, "\"{'a': 1}\"")):
        prompt[fuzz.FUZZED]["inputs"]["large_model"] = value
        entry = server.run(prompt)
        (error,) = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
        assert (error["node_id"], error["exception_type"]) == (fuzz.FUZZED, "ValueError")
        assert error["exception_message"].strip() == (
            f"T-Stitch Model Pair: large_model is given the value {shown}, but it takes a MODEL link; connect a node's "
            "MODEL output to it.")


def test_a_denoise_too_small_for_any_schedule_is_an_error_naming_it(server):
    # found by the fuzz (TSTITCH_FUZZ_PER_INPUT=5, seed 1): OverflowError from steps / denoise in ComfyUI's KSampler
    for node_type in ("TStitchKSampler", "TStitchSchedulePreview"):
        prompt = fuzz.baseline(node_type, server.object_info()[node_type])
        prompt[fuzz.FUZZED]["inputs"]["denoise"] = 5e-324
        entry = server.run(prompt)
        (error,) = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
        assert (error["node_id"], error["exception_type"]) == (fuzz.FUZZED, "ValueError")
        assert error["exception_message"].startswith("T-Stitch: denoise 4.94066e-324 with ")


@pytest.mark.parametrize("node_type, name, value", [("TStitchKSampler", "cfg", float("nan")),
                                                     ("TStitchGuider", "large_cfg", float("nan")),
                                                     ("TStitchSchedulePreview", "denoise", float("nan"))])
def test_a_nan_float_through_the_api_is_an_error_naming_the_node_and_input(server, node_type, name, value):
    # NaN passes ComfyUI's min/max checks: a NaN cfg sampled a NaN image, a NaN denoise raised deep in the scheduler
    prompt = fuzz.baseline(node_type, server.object_info()[node_type])
    prompt[fuzz.FUZZED]["inputs"][name] = value
    entry = server.run(prompt)
    (error,) = [data for kind, data in entry["status"]["messages"] if kind == "execution_error"]
    assert (error["node_id"], error["exception_type"]) == (fuzz.FUZZED, "ValueError")
    assert error["exception_message"].startswith(f"{server.object_info()[node_type]['display_name']}: {name} is nan, "
                                                 "which is no number to compute with; give a finite number from ")
