r"""Named experiments at each scale, written as results JSON with provenance.

An experiment is a function `(scale, seed, device) -> (config, metrics, dataset)`
registered with `@experiment(name, description)`. `run_experiment` times it,
adds provenance and saves one JSON file under `results/`; `python -m labnorm run
NAME --scale cpu` does the same from a shell. Notebooks call the same functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import results as _results
from .data import DeviceBatches, default_sizes, load_cifar10, scaled_subset
from .models import SmallCNN
from .scale import get_scale, pick
from .train.fit import fit

__all__ = ["EXPERIMENTS", "experiment", "run_experiment", "default_device"]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    fn: Callable[[str, int, torch.device], tuple[dict, dict, str]]


EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, description: str):
    """Register an experiment function under `name`."""

    def wrap(fn):
        if name in EXPERIMENTS:
            raise ValueError(f"experiment {name!r} is already registered")
        EXPERIMENTS[name] = Experiment(name, description, fn)
        return fn

    return wrap


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_experiment(
    name: str, scale: str | None = None, seed: int = 0, *, device: str | None = None, save: bool = True
) -> dict[str, Any]:
    """Run experiment `name` at `scale` (default `$LABNORM_SCALE`); return (and save) its record."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    scale = get_scale(scale)
    dev = torch.device(device) if device else default_device()
    torch.manual_seed(seed)
    code = _results.code_version()
    t0 = time.perf_counter()
    config, metrics, dataset = EXPERIMENTS[name].fn(scale, seed, dev)
    wall = time.perf_counter() - t0
    record = {
        "experiment": name,
        "description": EXPERIMENTS[name].description,
        "config": config,
        "metrics": metrics,
        "provenance": _results.provenance(scale=scale, seed=seed, dataset=dataset, device=dev, wall_time_s=wall, code=code),
    }
    if save:
        record["path"] = str(_results.save_results(record).name)
    return record


def _curve(values: list[float], points: int = 120) -> list[list[float]]:
    """Downsample a per-step loss log to `points` (step, mean loss) pairs for plotting."""
    n = len(values)
    if n == 0:
        return []
    edges = [round(i * n / points) for i in range(points + 1)] if n > points else list(range(n + 1))
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            chunk = values[a:b]
            out.append([b, sum(chunk) / len(chunk)])
    return out


@experiment(
    "bn_gn_batch_size",
    "Batch Norm vs Group Norm on CIFAR-10 as the batch shrinks (2, 8, 64): SmallCNN, one-cycle SGD, "
    "learning rate scaled linearly with the batch size.",
)
def bn_gn_batch_size(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    n_train, n_test = pick(smoke=(512, 256), cpu=(10000, 2000), gpu=(50000, 10000), scale=scale)
    config = {
        "model": "SmallCNN",
        "width": pick(smoke=8, cpu=32, gpu=64, scale=scale),
        "epochs": pick(smoke=1, cpu=4, gpu=20, scale=scale),
        "train_images": n_train,
        "test_images": n_test,
        "batch_sizes": [2, 8, 64],
        "norms": ["bn", "gn:8"],
        # Linear scaling rule (Goyal et al. 2017): lr = base_lr * batch / 64
        "base_lr_at_64": 0.1,
        "optimizer": "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)",
        "augmentation": "random crop (pad 4) + horizontal flip",
    }
    train = scaled_subset(load_cifar10("train"), n_train, seed)
    test = scaled_subset(load_cifar10("test"), n_test, seed)
    runs = []
    for norm in config["norms"]:
        for bs in config["batch_sizes"]:
            torch.manual_seed(seed)
            model = SmallCNN(norm=norm, width=config["width"])
            lr = config["base_lr_at_64"] * bs / 64
            t0 = time.perf_counter()
            hist = fit(
                model,
                DeviceBatches(train, bs, train=True, device=device, seed=seed),
                DeviceBatches(test, 500, train=False, device=device),
                epochs=config["epochs"], lr=lr, device=device, desc=f"{norm} b{bs}",
            )
            last = hist["epochs"][-1]
            runs.append({
                "norm": norm,
                "batch_size": bs,
                "lr": lr,
                "epochs": hist["epochs"],
                "loss_curve": _curve(hist["step_loss"]),
                "steps": len(hist["step_loss"]),
                "diverged_at_step": hist["diverged_at_step"],
                "final_test_acc": last.get("test_acc"),
                "final_test_loss": last.get("test_loss"),
                "seconds": time.perf_counter() - t0,
            })
    return config, {"runs": runs}, train.variant
