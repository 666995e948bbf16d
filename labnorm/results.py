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

Benchmarks write `benchmarks/results/<name>__<device type>.json` (or `$LABNORM_BENCHMARKS`).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

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
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


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
        **(code or code_version()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "scale": scale,
        "dataset": dataset,
        "seed": seed,
        "wall_time_s": round(wall_time_s, 2),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def results_dir() -> Path:
    """`$LABNORM_RESULTS` if set, else the repository's `results/` folder."""
    env = os.environ.get("LABNORM_RESULTS")
    return Path(env) if env else _REPO_ROOT / "results"


def benchmarks_dir() -> Path:
    """`$LABNORM_BENCHMARKS` if set, else the repository's `benchmarks/results/` folder."""
    env = os.environ.get("LABNORM_BENCHMARKS")
    return Path(env) if env else _REPO_ROOT / "benchmarks" / "results"


def record_path(name: str, scale: str, directory: Path | None = None) -> Path:
    """Where the record of experiment `name` at `scale` lives."""
    return (directory or results_dir()) / f"{name}__{scale}.json"


def arrays_path(name: str, scale: str, seed: int, directory: Path | None = None) -> Path:
    """Where one seed's arrays live (beside the record)."""
    return (directory or results_dir()) / f"{name}__{scale}__seed{seed}.npz"


def _atomic_write(path: Path, data: bytes) -> None:
    # Write beside the target, then rename over it: a run killed while saving leaves the old file.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def save_arrays(path: Path, arrays: dict[str, Any]) -> str:
    """Write `arrays` to a compressed `.npz` at `path`; return its SHA-256."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    data = buf.getvalue()
    _atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def _load_arrays(npz: Path, sha256: str | None, owner: Path) -> dict[str, np.ndarray]:
    data = npz.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{npz.name}: checksum differs from the one in {owner.name}; the arrays do not belong to this run")
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_record(record: dict[str, Any], directory: Path | None = None) -> Path:
    """Write a record (as built by `labnorm.experiments.run`) atomically; return its path.

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


def load_record(path: str | Path) -> dict[str, Any]:
    """A saved record with its arrays (`record["arrays"][seed]`, checksum-checked).

    A one-seed file of the earlier layout is returned as a one-seed record.
    """
    path = Path(path)
    record = json.loads(path.read_text())
    if "provenance" not in record:
        raise ValueError(f"{path}: not a labnorm results file (no provenance)")
    if "per_seed" not in record:
        record = _from_single_seed(record, path)
    arrays = {}
    for seed, entry in record["per_seed"].items():
        if "arrays_file" in entry:
            arrays[seed] = _load_arrays(path.parent / entry["arrays_file"], entry.get("arrays_sha256"), path)
    if arrays:
        record["arrays"] = arrays
    return record


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
    folder = directory or results_dir()
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
    out = (directory or benchmarks_dir()) / f"{name}__{torch.device(device).type}.json"
    _atomic_write(out, (json.dumps(record, indent=1) + "\n").encode())
    return out


def load_benchmark(name: str, device_type: str = "cpu", directory: Path | None = None) -> dict[str, Any] | None:
    """The committed result of benchmark `name` on `device_type` (in `benchmarks_dir()`), or None."""
    path = (directory or benchmarks_dir()) / f"{name}__{device_type}.json"
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
