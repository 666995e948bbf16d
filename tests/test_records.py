"""Records that lose nothing: concurrent runs, damaged files, and command-line options checked like the API.

The two-process tests start real `python -m labnorm run` processes (a tiny registered experiment, see
`_CHILD`) that write one results folder at the same time; each seed waits at a gate the test controls,
so the runs overlap for certain, not by luck of timing.
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labnorm import results
from labnorm.__main__ import main
from labnorm.experiments import Experiment, Report, SeedResult, common, runner
from labnorm.scale import SCALES
from labnorm.train.dry import dry_mode

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class _Config:
    n: int


def _fake(calls: list, arrays: bool = False) -> Experiment:
    def run(config, seed, device):
        calls.append(seed)
        return SeedResult({"value": seed + 0.5}, "toy", {"x": np.full(3, seed)} if arrays else {})

    return Experiment("fake", "a test", {s: _Config(n=1) for s in SCALES}, run, lambda d: {"value": d["value"]},
                      lambda record: Report(record, []))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("LABNORM_RESULTS", str(tmp_path))
    runner.experiments()
    calls = []
    monkeypatch.setitem(runner._REGISTRY, "fake", _fake(calls, arrays=True))
    return calls


# ----------------------------------------------------------------------------- two processes, one record

# The child: registers experiment "fake", whose every seed says it started and then waits for the gate
# the test opens ("all": as soon as `want` seeds of any process have started; else the file "go").
_CHILD = '''
import dataclasses, os, sys, time
from pathlib import Path
from labnorm.__main__ import main
from labnorm.experiments import Experiment, Report, SeedResult, runner
from labnorm.scale import SCALES

GATE, WANT = Path(os.environ["GATE"]), int(os.environ["WANT"])

@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 1

def run(config, seed, device):
    (GATE / f"started-{seed}-{os.getpid()}").touch()
    deadline = time.time() + 60
    while time.time() < deadline and not (GATE / "go").exists() and len(list(GATE.glob("started-*"))) < WANT:
        time.sleep(0.05)
    return SeedResult({"value": seed + 0.5, "pid": os.getpid()}, "toy")

runner.experiments()
runner._REGISTRY["fake"] = Experiment("fake", "a test", {s: Config() for s in SCALES}, run,
                                      lambda d: {"value": d["value"]}, lambda r: Report(r, []))
sys.exit(main(sys.argv[1:]))
'''


def _child(tmp_path, want: int, pythonpath: str = str(REPO)):
    gate = tmp_path / "gate"
    gate.mkdir(exist_ok=True)
    script = tmp_path / "fake_cli.py"
    script.write_text(_CHILD)
    env = {**os.environ, "LABNORM_RESULTS": str(tmp_path / "results"), "LABNORM_SCALE": "smoke", "GATE": str(gate),
           "WANT": str(want), "OMP_NUM_THREADS": "1", "PYTHONPATH": pythonpath}

    def start(*args):
        return subprocess.Popen([sys.executable, str(script), "run", "fake", "--scale", "smoke", "--device", "cpu",
                                 *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    return start, gate


def _wait(procs, timeout=90):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def test_two_processes_running_different_seeds_both_land_in_the_record(tmp_path):
    # Both processes read the (absent) record, both run their seed at the same time, both save
    start, _ = _child(tmp_path, want=2)
    done = _wait([start("--seed", "0"), start("--seed", "1")])
    for rc, stdout, stderr in done:
        assert rc == 0, stderr
        assert stdout.startswith("saved fake__smoke.json")
    record = json.loads((tmp_path / "results" / "fake__smoke.json").read_text())
    assert record["seeds"] == [0, 1] and sorted(record["per_seed"]) == ["0", "1"]
    assert record["summary"]["value"]["n"] == 2
    assert not list((tmp_path / "results").glob("*.part")), "every temporary file was renamed or removed"


def test_a_second_process_running_the_same_seed_is_refused_and_names_the_first(tmp_path):
    start, gate = _child(tmp_path, want=99)  # seeds wait for the file "go"
    first = start("--seed", "0")
    deadline = time.time() + 60
    while not list(gate.glob("started-0-*")) and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    [(rc, stdout, stderr)] = _wait([start("--seed", "0")])
    assert rc == 1 and stdout == ""
    assert f"seed 0 is being run by process {first.pid}" in stderr and "run fake --scale smoke" in stderr
    assert "run the same command again when it has finished" in stderr
    (gate / "go").touch()
    [(rc, stdout, stderr)] = _wait([first])
    assert rc == 0, stderr
    record = json.loads((tmp_path / "results" / "fake__smoke.json").read_text())
    assert record["seeds"] == [0] and record["per_seed"]["0"]["details"]["pid"] == first.pid


def test_a_seed_another_process_is_running_is_left_to_it_and_named_after_the_others(fake, tmp_path):
    path = results.record_path("fake", "smoke")
    with results.claim(path, "seed 1"):  # as if another process were running seed 1 now
        with pytest.raises(results.RecordBusyError, match=rf"seed 1 is being run by process {os.getpid()}"):
            runner.run("fake", "smoke", seeds=3)
    assert fake == [0, 2], "the other seeds ran"
    assert json.loads(path.read_text())["seeds"] == [0, 2], "and were saved"
    assert runner.run("fake", "smoke", seeds=3)["seeds"] == [0, 1, 2] and fake == [0, 2, 1]


def test_a_seed_saved_by_another_process_meanwhile_is_kept_not_rerun(fake, tmp_path, monkeypatch):
    calls = []

    def run(config, seed, device):  # while seed 0 runs here, "another process" saves seed 1
        calls.append(seed)
        if seed == 0:
            other = _fake([], arrays=False)
            monkeypatch.setitem(runner._REGISTRY, "fake", other)
            runner.run("fake", "smoke", seeds=[1])
            monkeypatch.setitem(runner._REGISTRY, "fake", exp)
        return SeedResult({"value": 9.0}, "toy")

    exp = dataclasses.replace(_fake([]), run=run)
    monkeypatch.setitem(runner._REGISTRY, "fake", exp)
    record = runner.run("fake", "smoke", seeds=2)
    assert calls == [0] and record["seeds"] == [0, 1]
    assert record["per_seed"]["1"]["metrics"]["value"] == 1.5, "the other process's seed 1, not a rerun"


# ----------------------------------------------------------------------------- damaged records


def _damage(kind: str, folder: Path) -> str:
    """Damage the saved two-seed record of "fake" as `kind`; return the words the error must contain."""
    path = folder / "fake__smoke.json"
    text = path.read_text()
    if kind == "bad bytes":
        path.write_bytes(b"\xff\xfe" + text.encode())
        return "bad bytes: not UTF-8 text"
    if kind == "truncated":
        path.write_text(text[: len(text) // 2])
        return "truncated"
    if kind == "empty":
        path.write_bytes(b"")
        return "empty (0 bytes)"
    if kind == "another experiment's record":
        path.write_text(text.replace('"experiment": "fake"', '"experiment": "bn_gn_batch_size"'))
        return "holds the record of experiment 'bn_gn_batch_size' at scale 'smoke', not of 'fake'"
    if kind == "missing npz":
        (folder / "fake__smoke__seed1.npz").unlink()
        return "seed 1's arrays file fake__smoke__seed1.npz is missing"
    assert kind == "changed npz"
    np.savez_compressed(folder / "fake__smoke__seed1.npz", x=np.zeros(3))
    return "seed 1's arrays file fake__smoke__seed1.npz: its SHA-256 checksum differs"


KINDS = ["bad bytes", "truncated", "empty", "another experiment's record", "missing npz", "changed npz"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_record_is_named_by_load(fake, tmp_path, kind):
    runner.run("fake", "smoke", seeds=2)
    words = _damage(kind, tmp_path)
    with pytest.raises(results.RecordError, match="^" + str(tmp_path / "fake__smoke.json")) as e:
        runner.load("fake", "smoke")
    assert words in str(e.value)


@pytest.mark.parametrize("kind", KINDS)
def test_list_names_a_damaged_record_and_goes_on(fake, tmp_path, kind, capsys):
    runner.run("fake", "smoke", seeds=2)
    (tmp_path / "bn_gn_batch_size__cpu.json").write_text("{")  # a second damaged record, of another experiment
    words = _damage(kind, tmp_path)
    assert main(["list"]) == 0
    out, err = capsys.readouterr()
    assert f"fake__smoke.json DAMAGED: {words}" in out
    assert "bn_gn_batch_size__cpu.json DAMAGED: truncated" in out
    assert "ws_small_batches:" in out, "every experiment is listed"
    assert "2 damaged record(s)" in err and "--fresh" in err


@pytest.mark.parametrize("kind", KINDS)
def test_run_leaves_a_damaged_record_alone_unless_fresh_which_keeps_a_copy(fake, tmp_path, kind, capsys):
    runner.run("fake", "smoke", seeds=2)
    words = _damage(kind, tmp_path)
    path = tmp_path / "fake__smoke.json"
    before = path.read_bytes()
    fake.clear()
    with pytest.raises(results.RecordError, match="fresh=True") as e:
        runner.run("fake", "smoke", seeds=3)
    assert words in str(e.value)
    assert main(["run", "fake", "--scale", "smoke", "--seeds", "3"]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and words in err and "--fresh" in err
    assert fake == [] and path.read_bytes() == before, "nothing ran, nothing was written"
    with pytest.warns(UserWarning, match="moved aside to fake__smoke.json.damaged-"):
        assert main(["run", "fake", "--scale", "smoke", "--seeds", "2", "--fresh"]) == 0
    [copy] = tmp_path.glob("fake__smoke.json.damaged-*")
    assert copy.read_bytes() == before, "every byte of the damaged record is kept"
    assert runner.load("fake", "smoke")["seeds"] == [0, 1]


# ----------------------------------------------------------------------------- options checked like the API


def _api_error(call) -> str:
    with pytest.raises((TypeError, ValueError)) as e:
        call()
    return str(e.value)


@pytest.mark.parametrize("argv, call", [
    (["fake", "--seeds", "0"], lambda: runner.run("fake", "smoke", seeds=0)),
    (["fake", "--seeds", "-2"], lambda: runner.run("fake", "smoke", seeds=-2)),
    (["fake", "--seed", "-1"], lambda: runner.run("fake", "smoke", seeds=[-1])),
    (["fake", "--seed", "0", "--seed", "-3"], lambda: runner.run("fake", "smoke", seeds=[0, -3])),
    (["fake", "--scale", "big"], lambda: runner.run("fake", "big")),
    (["fake", "--scale", ""], lambda: runner.run("fake", "")),
    (["fake", "--device", ""], lambda: runner.run("fake", "smoke", device="")),
    (["fake", "--device", "abacus"], lambda: runner.run("fake", "smoke", device="abacus")),
    (["nope"], lambda: runner.run("nope", "smoke")),
    (["fake", "--dry-run", "--dry-batch", "0"], lambda: common.dry_run("fake", "smoke", device="cpu", batch=0)),
    (["fake", "--dry-run", "--dry-batch", "1"], lambda: dry_mode(None, 1).__enter__()),
])
def test_cli_refuses_what_the_api_refuses_with_the_same_words(fake, tmp_path, capsys, argv, call):
    words = _api_error(call)
    with pytest.raises(SystemExit) as e:
        main(["run", *argv, *([] if "--scale" in argv else ["--scale", "smoke"])])
    assert e.value.code == 2
    assert words in capsys.readouterr().err
    assert fake == [] and list(tmp_path.iterdir()) == [], "nothing ran, nothing was written"


def test_bad_environment_scale_is_refused_by_the_cli_as_by_the_api(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LABNORM_SCALE", "huge")
    words = _api_error(lambda: runner.run("fake"))
    assert "$LABNORM_SCALE must be one of smoke, cpu, gpu; got 'huge'" in words
    with pytest.raises(SystemExit):
        main(["run", "fake"])
    assert words in capsys.readouterr().err and fake == []


@pytest.mark.parametrize("seeds, error", [
    ("3", "seeds must be a number of seeds or a list of seeds, got '3'"), (True, "got True"),
    ([1.5], "each seed must be an integer, got 1.5"), ([True], "each seed must be an integer, got True"),
    ([], "no seeds given"), (2.0, "got 2.0"),
])
def test_seeds_the_api_would_have_to_guess_at_are_refused(fake, seeds, error):
    with pytest.raises((TypeError, ValueError), match=error):
        runner.run("fake", "smoke", seeds=seeds)
    assert fake == []


def test_options_a_dry_run_would_ignore_are_refused(fake, tmp_path, capsys):
    for extra in (["--seeds", "2"], ["--seed", "1"], ["--fresh"]):
        with pytest.raises(SystemExit):
            main(["run", "fake", "--scale", "smoke", "--dry-run", *extra])
        assert f"{extra[0]}: a dry run runs seed 0 and saves nothing" in capsys.readouterr().err
    assert fake == []


def test_seed_zero_and_default_seeds_are_honoured(fake, tmp_path, capsys):
    assert main(["run", "fake", "--scale", "smoke", "--seed", "0"]) == 0 and fake == [0]
    assert main(["run", "fake", "--scale", "smoke", "--seed", "3", "--device", "cpu"]) == 0 and fake == [0, 3]
    assert "seeds 0, 3" in capsys.readouterr().out
    assert results.record_path("fake", "smoke", "") == Path("fake__smoke.json"), "an empty folder is the current one"


def test_cuda_without_a_gpu_is_refused_by_the_cli_as_by_the_api(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    words = _api_error(lambda: runner.run("fake", "smoke", device="cuda"))
    assert "device 'cuda' is not available here" in words
    with pytest.raises(SystemExit):
        main(["run", "fake", "--scale", "smoke", "--device", "cuda"])
    assert words in capsys.readouterr().err and fake == []
