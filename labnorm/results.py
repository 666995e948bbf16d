r"""Results are data with provenance.

A run writes one JSON file holding the experiment name, its config, the scale,
metrics (per epoch or step, and final) and where it came from: labnorm version
and git commit, torch version, device, dataset variant, seed, wall time and date.
Notebooks and the site read these files; no number shown is typed by hand.

Files are named `<experiment>__<scale>__seed<seed>.json` and live in the
`results/` folder of the repository, or in `$LABNORM_RESULTS` when it is set.
A record may carry NumPy arrays (loss surfaces) under `"arrays"`: they are saved beside the
JSON as `<same name>.npz`, which the JSON names with its SHA-256, and loaded back with it.
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

from . import __version__
from .scale import SCALES

__all__ = [
    "provenance",
    "encode_image",
    "decode_image",
    "load_benchmark",
    "results_dir",
    "results_path",
    "save_results",
    "load_results",
    "find_reference",
    "provenance_line",
    "save_benchmark",
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


def results_path(name: str, scale: str, seed: int, directory: Path | None = None) -> Path:
    return (directory or results_dir()) / f"{name}__{scale}__seed{seed}.json"


def save_results(record: dict[str, Any], directory: Path | None = None) -> Path:
    """Write a run record (as built by an experiment) and return its path.

    `record["arrays"]`, if present, goes to a `.npz` beside the JSON (compressed), and the JSON
    holds its file name and SHA-256 under `"arrays_file"` / `"arrays_sha256"` instead.
    """
    for key in ("experiment", "config", "metrics", "provenance"):
        if key not in record:
            raise ValueError(f"save_results: the record lacks {key!r}")
    prov = record["provenance"]
    path = results_path(record["experiment"], prov["scale"], prov["seed"], directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in record.items() if k != "arrays"}
    if record.get("arrays"):
        npz = path.with_suffix(".npz")
        np.savez_compressed(npz, **{k: np.asarray(v) for k, v in record["arrays"].items()})
        payload["arrays_file"] = npz.name
        payload["arrays_sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    path.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    return path


def load_results(path: str | Path) -> dict[str, Any]:
    """A saved record; its arrays (if it has any) are loaded into `"arrays"` after a checksum check."""
    path = Path(path)
    record = json.loads(path.read_text())
    if "provenance" not in record:
        raise ValueError(f"{path}: not a labnorm results file (no provenance)")
    if "arrays_file" in record:
        npz = path.parent / record["arrays_file"]
        data = npz.read_bytes()
        if hashlib.sha256(data).hexdigest() != record.get("arrays_sha256"):
            raise ValueError(f"{npz}: checksum differs from the one in {path.name}; the arrays do not belong to this run")
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            record["arrays"] = {k: f[k] for k in f.files}
    return record


def find_reference(name: str, directory: Path | None = None) -> dict[str, Any] | None:
    """The saved run of experiment `name` at the largest scale there is, or None."""
    folder = directory or results_dir()
    # Largest scale first: a gpu run is the reference when it exists.
    for scale in reversed(SCALES):
        hits = sorted(folder.glob(f"{name}__{scale}__seed*.json"))
        if hits:
            return load_results(hits[0])
    return None


def load_benchmark(name: str, device_type: str = "cpu") -> dict[str, Any] | None:
    """The committed result of benchmark `name` on `device_type` (`benchmarks/results/`, next to the
    results folder), or None."""
    path = results_dir().parent / "benchmarks" / "results" / f"{name}__{device_type}.json"
    return load_results(path) if path.is_file() else None


def provenance_line(record: dict[str, Any]) -> str:
    """One line under a plot or table: device, scale, dataset, date, commit, wall time."""
    p = record["provenance"]
    commit = (p.get("commit") or "unknown")[:10] + ("+dirty" if p.get("commit_dirty") else "")
    parts = [record.get("experiment") or "benchmark " + record["benchmark"], f"scale={p['scale']}",
             p["dataset"], p["device"], f"seed {p['seed']}", p["date"][:10], f"commit {commit}",
             f"torch {p['torch']}", f"{p['wall_time_s'] / 60:.1f} min"]
    return " · ".join(part for part in parts if part)  # benchmarks have no dataset


def save_benchmark(
    name: str, device: torch.device, wall_time_s: float, directory: Path | None = None, **fields: Any
) -> Path:
    """Write `benchmarks/results/<name>__<device type>.json` (or into `directory`): `fields` plus provenance."""
    record = {"benchmark": name, **fields,
              "provenance": provenance(scale="benchmark", seed=0, dataset=None, device=device,
                                       wall_time_s=wall_time_s)}
    folder = directory or _REPO_ROOT / "benchmarks" / "results"
    out = folder / f"{name}__{torch.device(device).type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return out


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
