r"""Results are data with provenance.

An experiment at one scale has **one record**, `<experiment>__<scale>.json`, in the `results/`
folder of the repository (or in `$LABNORM_RESULTS` when it is set). It holds the experiment's
name and config, every seed that has run — each with its metrics, its details (curves,
per-epoch logs) and its own provenance: labnorm version and git commit, torch version, device,
dataset variant, seed, wall time and date — and, for every metric, its summary over the seeds
(mean, standard deviation, 95% interval; `labnorm.stats`). Notebooks and the site read these
files; no number shown is typed by hand.

A seed may carry NumPy arrays (loss surfaces): they are saved once, when the seed finishes, as
`<experiment>__<scale>__seed<seed>.npz` beside the JSON, which names each file with its SHA-256
and loads it back after checking it.

Records written before seeds were pooled (`<experiment>__<scale>__seed<seed>.json`, one seed
each) are still read: `load_record` turns them into a one-seed record.

Several processes may write one record at once (a second terminal, a re-launched Colab cell): the
record is never rewritten from what a process read when it started. `update_record` reads it again
under a file lock (`filelock`), merges in what the process just finished and writes it through its
own temporary file, renamed over the record in one step; `claim` keeps two processes from running
the same seed (or unit) at once — the second is refused with `RecordBusyError`, which names the
holder. The locks live in `.locks/` beside the records (a folder that ignores itself in git).

A record that cannot be read as it is — bad bytes, truncated JSON, another experiment's record
under this name, a missing or changed `.npz` — raises `RecordError`, which names the file and what
is wrong with it; nothing here overwrites such a file (`set_aside` moves it out of the way, keeping
every byte, for `run(..., fresh=True)`).

Benchmarks write `benchmarks/results/<name>__<device type>.json` (or `$LABNORM_BENCHMARKS`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import filelock

import numpy as np
import torch
from PIL import Image

from ._version import __version__
from .scale import SCALES

__all__ = [
    "provenance",
    "code_version",
    "encode_image",
    "decode_image",
    "results_dir",
    "benchmarks_dir",
    "record_path",
    "arrays_path",
    "save_record",
    "load_record",
    "update_record",
    "claim",
    "set_aside",
    "load_for_update",
    "RecordError",
    "RecordBusyError",
    "find_record",
    "find_reference",
    "provenance_line",
    "save_benchmark",
    "load_benchmark",
]

# The repository root, when labnorm is imported from a checkout.
_REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    """Run git in the repository that holds this package; None outside one."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def device_name(device: torch.device | str | None = None) -> str:
    """A human name for the device a run used, e.g. 'NVIDIA H100 80GB HBM3' or 'cpu (x86_64, 2 threads)'."""
    dev = torch.device(device if device is not None else "cpu")
    world = world_size()
    ranks = f" x {world} processes ({torch.distributed.get_backend()}, data-parallel)" if world > 1 else ""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev) + ranks
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)" + ranks


def world_size() -> int:
    """How many processes this run is one of (`torch.distributed`'s world, launched by torchrun); 1 alone."""
    d = torch.distributed
    return d.get_world_size() if d.is_available() and d.is_initialized() else 1


def code_version() -> dict[str, Any]:
    """The git commit of the code, and whether tracked files differed from it.

    Take it when a run *starts*: edits made while it runs do not change what ran.
    """
    commit = _git("rev-parse", "HEAD")
    # A run from uncommitted code says so: its commit alone does not reproduce it. Saved results
    # are outputs, not code: one run rewriting its JSON does not make the next run's code dirty.
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":(exclude)results", ":(exclude)benchmarks/results")
    return {"commit": commit or "unknown", "commit_dirty": bool(dirty) if dirty is not None else None}


def provenance(
    *, scale: str, seed: int, dataset: str | None, device: torch.device | str | None,
    wall_time_s: float, code: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a reader needs to know where a number came from."""
    return {
        "labnorm_version": __version__,
        **(code if code is not None else code_version()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "scale": scale,
        "dataset": dataset,
        "seed": seed,
        "wall_time_s": round(wall_time_s, 2),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # A data-parallel run (labnorm.distributed) says on how many processes; wall time is one rank's
        **({"world_size": world_size()} if world_size() > 1 else {}),
    }


def results_dir() -> Path:
    """`$LABNORM_RESULTS` if set, else the repository's `results/` folder. (An empty `LABNORM_RESULTS=`
    counts as unset, as a shell's empty variables usually do: it never means the current folder.)"""
    env = os.environ.get("LABNORM_RESULTS")
    return Path(env) if env else _REPO_ROOT / "results"


def benchmarks_dir() -> Path:
    """`$LABNORM_BENCHMARKS` if set, else the repository's `benchmarks/results/` folder."""
    env = os.environ.get("LABNORM_BENCHMARKS")
    return Path(env) if env else _REPO_ROOT / "benchmarks" / "results"


def record_path(name: str, scale: str, directory: Path | None = None) -> Path:
    """Where the record of experiment `name` at `scale` lives."""
    return (Path(directory) if directory is not None else results_dir()) / f"{name}__{scale}.json"


def arrays_path(name: str, scale: str, seed: int, directory: Path | None = None) -> Path:
    """Where one seed's arrays live (beside the record)."""
    return (Path(directory) if directory is not None else results_dir()) / f"{name}__{scale}__seed{seed}.npz"


class RecordError(ValueError):
    """A saved record (or its `.npz`) that cannot be used as it is: the message names the file and
    what is wrong with it. `path` is the file, `problem` the words without it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


class RecordBusyError(RuntimeError):
    """Another process holds a record's lock, or is running the same seed (unit) of it; the message
    names that process."""


def _atomic_write(path: Path, data: bytes) -> None:
    # Write beside the target, then rename over it: a run killed while saving leaves the old file.
    # Every writer has its own temporary file (pid + random part), so two processes never write into
    # one; a reader sees the old file or the new one, never a mix.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_arrays(path: Path, arrays: dict[str, Any]) -> str:
    """Write `arrays` to a compressed `.npz` at `path`; return its SHA-256."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    data = buf.getvalue()
    _atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def _load_arrays(npz: Path, sha256: str | None, owner: Path, seed: str) -> dict[str, np.ndarray]:
    if not npz.is_file():
        raise RecordError(owner, f"seed {seed}'s arrays file {npz.name} is missing (it should lie beside the record)")
    data = npz.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RecordError(owner, f"seed {seed}'s arrays file {npz.name}: its SHA-256 checksum differs from the one "
                                 "in the record; the arrays do not belong to this run")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:  # a checksum written for a damaged file
        raise RecordError(owner, f"seed {seed}'s arrays file {npz.name} cannot be read: {e}") from e


def save_record(record: dict[str, Any], directory: Path | None = None) -> Path:
    """Write a record (as built by `labnorm.experiments.run`) atomically; return its path.

    This writes what it is given over whatever is on disk: a process that shares the folder with
    others goes through `update_record`, which merges under the record's lock.
    Arrays are not written here: each seed's `.npz` is saved when the seed finishes, and the
    record names it under `per_seed[seed]["arrays_file"]` with its `"arrays_sha256"`.
    """
    for key in ("experiment", "scale", "config", "seeds", "per_seed", "summary", "provenance"):
        if key not in record:
            raise ValueError(f"save_record: the record lacks {key!r}")
    path = record_path(record["experiment"], record["scale"], directory)
    payload = {k: v for k, v in record.items() if k not in ("arrays", "source", "path")}
    _atomic_write(path, (json.dumps(payload, indent=1) + "\n").encode())
    return path


# `<experiment>__<scale>.json` or an earlier `<experiment>__<scale>__seed<seed>.json`
_RECORD_NAME = re.compile(r"(?P<experiment>.+?)__(?P<scale>[a-z]+)(?:__seed(?P<seed>\d+))?\.json")


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    """The JSON object in `data`, or a `RecordError` that says how the bytes are damaged."""
    if not data.strip():
        raise RecordError(path, f"empty ({len(data)} bytes): a record is a JSON object")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(path, f"bad bytes: not UTF-8 text (byte {e.start} of {len(data)} is 0x{data[e.start]:02x}); "
                                "the file is damaged") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        # An error at the very end, or a string that never closes, is what a cut-off write leaves
        cut = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated")
        what = f"truncated: the JSON stops before the record is complete ({len(data)} bytes" if cut else \
            "not valid JSON (at"
        raise RecordError(path, f"{what} line {e.lineno} column {e.colno}: {e.msg})") from None
    if not isinstance(record, dict):
        raise RecordError(path, f"not a labnorm results file (a JSON {type(record).__name__}, not an object)")
    return record


def _check_shape(path: Path, record: dict[str, Any]) -> None:
    """A `RecordError` unless `record` is whole (the keys `save_record` writes, one entry per seed) and
    is the record its file name says: experiment and scale."""
    if "provenance" not in record:
        raise RecordError(path, "not a labnorm results file (no provenance)")
    legacy = "per_seed" not in record
    keys = ("experiment", "config", "metrics") if legacy else ("experiment", "scale", "config", "seeds", "per_seed")
    lacking = [k for k in keys if k not in record]
    if lacking:
        raise RecordError(path, f"not a whole record: it lacks {', '.join(map(repr, lacking))}")
    if not legacy:
        entries = record["per_seed"]
        bad = [str(s) for s, e in entries.items() if not (str(s).isdigit() and isinstance(e, dict)
                                                          and {"metrics", "details", "provenance"} <= set(e))] \
            if isinstance(entries, dict) else ["(per_seed is not an object)"]
        if bad:
            raise RecordError(path, f"not a whole record: the entry of seed {', '.join(bad)} is damaged")
    m = _RECORD_NAME.fullmatch(path.name)
    if m is not None:
        scale = record["provenance"].get("scale") if legacy else record["scale"]
        if (record["experiment"], scale) != (m["experiment"], m["scale"]):
            raise RecordError(path, f"holds the record of experiment {record['experiment']!r} at scale {scale!r}, "
                                    f"not of {m['experiment']!r} at {m['scale']!r} as its name says")


def load_record(path: str | Path, *, arrays: bool = True) -> dict[str, Any]:
    """A saved record with its arrays (`record["arrays"][seed]`, checksum-checked; skipped unless `arrays`).

    A one-seed file of the earlier layout is returned as a one-seed record. A file that is not a
    whole record, or whose arrays are missing or changed, raises `RecordError` naming it.
    """
    path = Path(path)
    record = _parse(path, path.read_bytes())
    _check_shape(path, record)
    if "per_seed" not in record:
        record = _from_single_seed(record, path)
    if not arrays:
        return record
    loaded = {}
    for seed, entry in record["per_seed"].items():
        if "arrays_file" in entry:
            loaded[seed] = _load_arrays(path.parent / entry["arrays_file"], entry.get("arrays_sha256"), path, seed)
    if loaded:
        record["arrays"] = loaded
    return record


# ----------------------------------------------------------------------------- several writers at once

# How long a writer waits for another's read-merge-write of a record (milliseconds each, in practice).
LOCK_WAIT_S = 120.0


def _lock_path(record: Path, what: str = "") -> Path:
    """The lock file of a record (or of one seed/unit of it, `what`), in `.locks/` beside the records."""
    folder = record.parent / ".locks"
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".gitignore").write_text("*\n")  # lock files are no results: the folder ignores itself
    if not what:
        return folder / f"{record.name}.lock"
    # Units may hold "/" or ":": keep the name readable, and unique through a short hash
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", what)
    return folder / f"{record.stem}__{safe}.{hashlib.sha256(what.encode()).hexdigest()[:8]}.lock"


def _holder(lock: Path) -> str:
    """Who holds `lock`, from the note its holder left (`<lock>.holder`)."""
    try:
        note = json.loads(lock.with_name(lock.name + ".holder").read_text())
        return (f"process {note['pid']} on {note['host']} (`{note['command']}`, holding it since "
                f"{note['since']})")
    except (OSError, ValueError, KeyError):
        return "another process (it has not yet left its note)"


def _command() -> str:
    """This process's command line, short: `python -m labnorm run ...` rather than a path to `__main__.py`."""
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = "python -m labnorm" if first.name == "__main__.py" and first.parent.name == "labnorm" else first.name
    return " ".join([name, *sys.argv[1:]])


@contextlib.contextmanager
def _hold(lock: Path, timeout: float, busy: Callable[[str], str]) -> Iterator[None]:
    """Hold the OS lock on `lock` (waiting up to `timeout` s) with a note naming this process;
    `RecordBusyError(busy(holder))` when another process keeps it."""
    fl = filelock.FileLock(lock, timeout=timeout)
    try:
        fl.acquire()
    except filelock.Timeout:
        raise RecordBusyError(busy(_holder(lock))) from None
    note = lock.with_name(lock.name + ".holder")
    try:
        _atomic_write(note, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
            "since": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}).encode())
        yield
    finally:
        note.unlink(missing_ok=True)  # before the lock goes: a note names a live holder only
        fl.release()


def claim(record: Path, what: str) -> contextlib.AbstractContextManager[None]:
    """Run `what` (e.g. "seed 1") of `record` in this process alone: a context that raises
    `RecordBusyError`, naming the holder, when another process is running the same `what` now.
    The claim is an OS lock, so a process that dies lets it go."""
    return _hold(_lock_path(record, what), 0, lambda who: f"{record.name}: {what} is being run by {who}")


def update_record(
    path: Path, change: Callable[[dict[str, Any] | None], dict[str, Any]], *, replace: bool = False,
) -> dict[str, Any]:
    """Read the record at `path` again under its lock, apply `change(record on disk, or None)` and write
    what it returns atomically; return that.

    This is how a seed joins a record that other processes write too: what they saved since this
    process read the record is on disk, and `change` merges into it. A damaged record is not
    overwritten (`RecordError`); with `replace`, `change` gets None whatever is there, and a
    damaged file is first set aside (`set_aside`).
    """
    with _hold(_lock_path(path), LOCK_WAIT_S,
               lambda who: f"{path.name}: could not lock the record for {LOCK_WAIT_S:.0f} s; it is held by {who}"):
        current = None
        if path.is_file():
            try:
                current = load_record(path, arrays=False)
            except RecordError:
                if not replace:
                    raise
                set_aside(path)
        record = change(None if replace else current)
        if record_path(record["experiment"], record["scale"], path.parent) != path:
            raise ValueError(f"update_record: the change made a record of {record['experiment']!r} at "
                             f"{record['scale']!r}, which does not belong in {path.name}")
        save_record(record, path.parent)
    return record


def load_for_update(path: Path | None, *, fresh: bool = False) -> dict[str, Any] | None:
    """The saved record at `path` that a run adds its seeds to, with its arrays; None when there is
    none, or with `fresh` (a new record). A damaged one raises `RecordError` saying what to do —
    unless `fresh`: then it is set aside (`set_aside`), with a warning naming the copy."""
    if path is None:
        return None
    try:
        record = load_record(path)
    except RecordError as e:
        if not fresh:
            raise RecordError(e.path, f"{e.problem}. run leaves it as it is: repair or move it, or rerun with "
                                      "fresh=True (--fresh), which keeps it as <name>.damaged-<time>") from None
        aside = set_aside(path)
        warnings.warn(f"{path}: {e.problem}; moved aside to {aside.name}, every byte kept; starting a new record",
                      stacklevel=3)
        return None
    return None if fresh else record


def set_aside(path: Path) -> Path:
    """Move a damaged record out of the way, every byte kept, as `<name>.damaged-<UTC time>`; return
    the new path. (Its name no longer ends in `.json`: nothing reads it as a record.)"""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, aside)
    return aside


def _from_single_seed(old: dict[str, Any], path: Path) -> dict[str, Any]:
    """An earlier one-seed file (`metrics` + `provenance` with its `seed`) as a one-seed record.

    Its summary is filled in by `labnorm.experiments`, which knows the experiment's metrics.
    """
    prov = old["provenance"]
    seed = str(prov.get("seed", 0))
    entry = {"metrics": {}, "details": old["metrics"], "provenance": prov}
    if "arrays_file" in old:
        entry["arrays_file"], entry["arrays_sha256"] = old["arrays_file"], old.get("arrays_sha256")
    return {
        "experiment": old["experiment"], "description": old.get("description", ""), "scale": prov["scale"],
        "config": old["config"], "seeds": [int(seed)], "per_seed": {seed: entry}, "summary": {},
        "provenance": {**prov, "seeds": [int(seed)]}, "converted_from": path.name,
    }


def find_record(name: str, scale: str, directory: Path | None = None) -> Path | None:
    """The file holding experiment `name` at `scale`: the record, else an earlier one-seed file."""
    folder = Path(directory) if directory is not None else results_dir()
    path = record_path(name, scale, folder)
    if path.is_file():
        return path
    legacy = sorted(folder.glob(f"{name}__{scale}__seed*.json"))
    return legacy[0] if legacy else None


def find_reference(name: str, directory: Path | None = None) -> dict[str, Any] | None:
    """The saved record of experiment `name` at the largest scale there is, or None."""
    # Largest scale first: a gpu run is the reference when it exists.
    for scale in reversed(SCALES):
        path = find_record(name, scale, directory)
        if path is not None:
            return load_record(path)
    return None


def provenance_line(record: dict[str, Any]) -> str:
    """One line under a plot or table: device, scale, dataset, seeds, date, commit, wall time."""
    p = record["provenance"]
    commits = p.get("commits") or [p.get("commit") or "unknown"]
    commit = ", ".join(c[:10] for c in commits) + ("+dirty" if p.get("commit_dirty") else "")
    seeds = p.get("seeds", [p.get("seed")])
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(str(s) for s in seeds)}"
    parts = [record.get("experiment") or "benchmark " + record["benchmark"], f"scale={p['scale']}",
             p.get("dataset"), p["device"], seed_text if seeds != [None] else None, p["date"][:10],
             f"commit {commit}", f"torch {p['torch']}", f"{p['wall_time_s'] / 60:.1f} min"]
    return " · ".join(part for part in parts if part)  # benchmarks have no dataset and no seed


def save_benchmark(
    name: str, device: torch.device, wall_time_s: float, directory: Path | None = None, **fields: Any
) -> Path:
    """Write `<name>__<device type>.json` into `directory` (default `benchmarks_dir()`): `fields` plus provenance."""
    record = {"benchmark": name, **fields,
              "provenance": provenance(scale="benchmark", seed=0, dataset=None, device=device,
                                       wall_time_s=wall_time_s)}
    out = (Path(directory) if directory is not None else benchmarks_dir()) / f"{name}__{torch.device(device).type}.json"
    _atomic_write(out, (json.dumps(record, indent=1) + "\n").encode())
    return out


def load_benchmark(name: str, device_type: str = "cpu", directory: Path | None = None) -> dict[str, Any] | None:
    """The committed result of benchmark `name` on `device_type` (in `benchmarks_dir()`), or None."""
    path = (Path(directory) if directory is not None else benchmarks_dir()) / f"{name}__{device_type}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def encode_image(image: torch.Tensor) -> str:
    """uint8 $[H, W, 3]$ -> a PNG as ASCII text, so small images (sample grids) travel inside a results JSON."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[-1] != 3:
        raise ValueError(f"encode_image: expected uint8 [H, W, 3], got {image.dtype} {tuple(image.shape)}")
    buf = io.BytesIO()
    Image.fromarray(image.cpu().numpy()).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_image(text: str):
    """The inverse of `encode_image`: a uint8 numpy array $[H, W, 3]$."""
    return np.array(Image.open(io.BytesIO(base64.b64decode(text))))
