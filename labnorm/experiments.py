r"""Named experiments at each scale, written as results JSON with provenance.

An experiment is a function `(scale, seed, device) -> (config, metrics, dataset)`
registered with `@experiment(name, description)`. `run_experiment` times it,
adds provenance and saves one JSON file under `results/`; `python -m labnorm run
NAME --scale cpu` does the same from a shell. Notebooks call the same functions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from . import results as _results
from .data import DeviceBatches, default_sizes, load_cifar10, scaled_subset
from .models import SmallCNN, build_model
from .scale import get_scale, pick
from .train.fit import fit, make_optimizer
from .train.lr_finder import LRFinder
from .weight_norm import data_dependent_init

__all__ = ["EXPERIMENTS", "experiment", "run_experiment", "load_or_run", "default_device"]


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
    # Large arrays (loss surfaces) travel beside the JSON, in a .npz (see labnorm.results)
    arrays = metrics.pop("arrays", None)
    record = {
        "experiment": name,
        "description": EXPERIMENTS[name].description,
        "config": config,
        "metrics": metrics,
        "provenance": _results.provenance(scale=scale, seed=seed, dataset=dataset, device=dev, wall_time_s=wall, code=code),
    }
    if arrays:
        record["arrays"] = arrays
    if save:
        record["path"] = str(_results.save_results(record).name)
    return record


def load_or_run(name: str, scale: str | None = None, seed: int = 0, *, rerun: bool = False) -> dict[str, Any]:
    """The saved run of `name` at `scale` if there is one (and not `rerun`), else a live run (not saved).

    The record's `"source"` says which: `"saved"` or `"live"`.
    """
    scale = get_scale(scale)
    path = _results.results_path(name, scale, seed)
    if path.is_file() and not rerun:
        return {**_results.load_results(path), "source": "saved"}
    return {**run_experiment(name, scale, seed, save=False), "source": "live"}


def _cifar_subsets(n_train: int, n_test: int, seed: int):
    """Class-balanced subsets of CIFAR-10's train and test splits (the whole split at gpu scale)."""
    return scaled_subset(load_cifar10("train"), n_train, seed), scaled_subset(load_cifar10("test"), n_test, seed)


def _run_record(hist: dict, seconds: float, **labels: Any) -> dict:
    """One training run of an experiment: its labels, per-epoch metrics, loss curve and final figures."""
    last = hist["epochs"][-1]
    return {
        **labels,
        "epochs": hist["epochs"],
        "loss_curve": _curve(hist["step_loss"]),
        "steps": len(hist["step_loss"]),
        "diverged_at_step": hist["diverged_at_step"],
        "final_test_acc": last.get("test_acc"),
        "final_test_loss": last.get("test_loss"),
        "seconds": seconds,
    }


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
    train, test = _cifar_subsets(n_train, n_test, seed)
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
            runs.append(_run_record(hist, time.perf_counter() - t0, norm=norm, batch_size=bs, lr=lr))
    return config, {"runs": runs}, train.variant


def _subsample(values: list[float], points: int = 200) -> list[float]:
    step = max(1, len(values) // points)
    return values[::step]


def _range_test_curve(model, optimizer, batches, cfg: dict, device: torch.device) -> dict:
    """One exponential LR range test with the settings in `cfg` (start_lr, end_lr, num_iter, smooth_f,
    diverge_th): the smoothed curve, the steepest-descent suggestion, where it stopped, seconds."""
    finder = LRFinder(model, optimizer, torch.nn.CrossEntropyLoss(), device=device)
    t0 = time.perf_counter()
    hist = finder.range_test(batches, start_lr=cfg["start_lr"], end_lr=cfg["end_lr"], num_iter=cfg["num_iter"],
                             step_mode="exp", smooth_f=cfg["smooth_f"], diverge_th=cfg["diverge_th"])
    return {"lr": hist["lr"], "loss": hist["loss"],
            "suggested_lr": finder.suggest(skip_start=min(10, len(hist["lr"]) // 5), skip_end=5),
            "stopped_at": len(hist["lr"]), "seconds": time.perf_counter() - t0}


@experiment(
    "lr_range_test_resnet18",
    "LR range test (exponential, smoothed) of a CIFAR ResNet-18 at batch 64 with BN, GN and no norm, "
    "SGD momentum 0.9.",
)
def lr_range_test_resnet18(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    config = {
        "model": "resnet18",
        "width": pick(smoke=0.125, cpu=0.25, gpu=1.0, scale=scale),
        "batch_size": pick(smoke=16, cpu=64, gpu=64, scale=scale),
        "num_iter": pick(smoke=20, cpu=100, gpu=200, scale=scale),
        "start_lr": 1e-5,
        "end_lr": 10.0,
        "step_mode": "exp",
        "smooth_f": 0.05,
        "diverge_th": 5.0,
        "norms": ["bn", "gn", "none"],
        "optimizer": "SGD momentum 0.9, weight decay 5e-4",
    }
    train = load_cifar10("train")
    curves = []
    for norm in config["norms"]:
        torch.manual_seed(seed)
        model = build_model("resnet18", norm, width=config["width"]).to(device)
        opt = make_optimizer(model.parameters(), "sgd", config["start_lr"], 0.9, 5e-4)
        batches = DeviceBatches(train, config["batch_size"], train=True, device=device, seed=seed)
        curves.append({"norm": norm, **_range_test_curve(model, opt, batches, config, device)})
    return config, {"curves": curves}, train.variant


@experiment(
    "one_cycle_fast_resnet",
    "One-cycle training (OneCycleLR, SGD Nesterov, label smoothing 0.2) of the fast ResNet with BN on CIFAR-10.",
)
def one_cycle_fast_resnet(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    n_train, n_test = pick(smoke=(512, 256), cpu=(8000, 2000), gpu=(50000, 10000), scale=scale)
    config = {
        "model": "fast_resnet",
        "norm": "bn",
        "width": pick(smoke=0.125, cpu=0.5, gpu=1.0, scale=scale),
        "epochs": pick(smoke=1, cpu=4, gpu=10, scale=scale),
        "batch_size": pick(smoke=64, cpu=128, gpu=512, scale=scale),
        "max_lr": 0.2,
        "label_smoothing": 0.2,
        "weight_decay": 5e-4,
        "pct_start": 0.25,
        "train_images": n_train,
        "test_images": n_test,
    }
    train, test = _cifar_subsets(n_train, n_test, seed)
    torch.manual_seed(seed)
    model = build_model("fast_resnet", config["norm"], width=config["width"])
    hist = fit(
        model,
        DeviceBatches(train, config["batch_size"], train=True, device=device, seed=seed),
        DeviceBatches(test, 500, train=False, device=device),
        epochs=config["epochs"], lr=config["max_lr"], label_smoothing=config["label_smoothing"],
        weight_decay=config["weight_decay"], pct_start=config["pct_start"], device=device,
    )
    metrics = {
        "epochs": hist["epochs"],
        "loss_curve": _curve(hist["step_loss"]),
        "lr": _subsample(hist["lr"]),
        "steps": len(hist["step_loss"]),
        "final_test_acc": hist["epochs"][-1].get("test_acc"),
        "diverged_at_step": hist["diverged_at_step"],
    }
    return config, metrics, train.variant


@experiment(
    "weight_norm_cifar",
    "The same small CIFAR-10 CNN with no norm, weight norm, WN + data-dependent init, WN + mean-only BN "
    "and batch norm, trained with Adam and with SGD (one-cycle).",
)
def weight_norm_cifar(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    n_train, n_test = pick(smoke=(512, 256), cpu=(10000, 2000), gpu=(50000, 10000), scale=scale)
    config = {
        "model": "SmallCNN",
        "width": pick(smoke=8, cpu=32, gpu=64, scale=scale),
        "epochs": pick(smoke=1, cpu=3, gpu=20, scale=scale),
        "batch_size": 64,
        "train_images": n_train,
        "test_images": n_test,
        "variants": ["none", "wn", "wn+init", "wn+mobn", "bn"],
        "optimizers": {"adam": {"lr": 3e-3, "weight_decay": 0.0}, "sgd": {"lr": 0.05, "weight_decay": 5e-4}},
        "schedule": "OneCycleLR, pct_start 0.25",
        "init_batch": 500,
    }
    train, test = _cifar_subsets(n_train, n_test, seed)
    runs = []
    for opt_name, opt_cfg in config["optimizers"].items():
        for variant in config["variants"]:
            torch.manual_seed(seed)
            norm = "wn" if variant == "wn+init" else variant
            model = SmallCNN(norm=norm, width=config["width"]).to(device)
            if variant == "wn+init":
                # Salimans & Kingma's init on one un-augmented batch of training images
                x, _ = next(iter(DeviceBatches(train, config["init_batch"], train=False, device=device)))
                data_dependent_init(model, x)
            t0 = time.perf_counter()
            hist = fit(
                model,
                DeviceBatches(train, config["batch_size"], train=True, device=device, seed=seed),
                DeviceBatches(test, 500, train=False, device=device),
                epochs=config["epochs"], lr=opt_cfg["lr"], optimizer=opt_name,
                weight_decay=opt_cfg["weight_decay"], device=device, desc=f"{opt_name} {variant}",
            )
            runs.append(_run_record(hist, time.perf_counter() - t0, optimizer=opt_name, variant=variant))
    return config, {"runs": runs}, train.variant


def _dead_channel_fraction(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Fraction of ReLU channels that are zero on at least 99% of their positions for the batch `x`
    (a dead channel is the first kind of elimination singularity in the WS paper)."""
    fractions = []

    def hook(_module, _inputs, out):
        fractions.append((out > 0).float().mean((0, 2, 3)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    alive = torch.cat(fractions)
    return (alive < 0.01).float().mean().item()


@experiment(
    "ws_bcn_vgg",
    "labml's Weight Standardization experiment: the VGG-16 layout on CIFAR-10 with BN, WS+BN, GN, WS+GN and "
    "WS+BCN, one-cycle SGD at batch 64; dead ReLU channels and the WS variants' gaps on the trained weights.",
)
def ws_bcn_vgg(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    from .weight_std import VARIANTS, WSConv2d, weight_standardization

    n_train, n_test = pick(smoke=(512, 256), cpu=(8000, 2000), gpu=(50000, 10000), scale=scale)
    config = {
        "model": "vgg16",
        "width": pick(smoke=0.125, cpu=0.25, gpu=1.0, scale=scale),
        "epochs": pick(smoke=1, cpu=4, gpu=30, scale=scale),
        "batch_size": 64,
        "lr": 0.05,
        "optimizer": "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)",
        "train_images": n_train,
        "test_images": n_test,
        "norms": ["bn", "ws+bn", "gn", "ws+gn", "ws+bcn"],
        "dead_channel_rule": "ReLU channel positive on < 1% of positions of 500 test images",
    }
    train, test = _cifar_subsets(n_train, n_test, seed)
    probe, _ = next(iter(DeviceBatches(test, 500, train=False, device=device)))
    runs, gaps = [], {}
    for norm in config["norms"]:
        torch.manual_seed(seed)
        model = build_model("vgg16", norm, width=config["width"])
        t0 = time.perf_counter()
        hist = fit(
            model,
            DeviceBatches(train, config["batch_size"], train=True, device=device, seed=seed),
            DeviceBatches(test, 500, train=False, device=device),
            epochs=config["epochs"], lr=config["lr"], device=device, desc=norm,
        )
        record = _run_record(hist, time.perf_counter() - t0, norm=norm)
        record["dead_channel_fraction"] = _dead_channel_fraction(model, probe)
        runs.append(record)
        if norm == "ws+bn":
            # How far the named WS variants are from the paper's on the trained weights
            weights = [m.weight.detach().double() for m in model.modules() if isinstance(m, WSConv2d)]
            for variant in VARIANTS:
                diffs = [(weight_standardization(w, variant=variant) - weight_standardization(w)).abs()
                         for w in weights]
                gaps[variant] = {"max_abs": max(d.max().item() for d in diffs),
                                 "mean_abs": sum(d.sum().item() for d in diffs) / sum(d.numel() for d in diffs)}
    return config, {"runs": runs, "variant_gaps_on_trained_ws_bn": gaps}, train.variant


def _blow_up_step(losses: list[float], factor: float = 4.0, smooth_f: float = 0.05) -> int | None:
    """First step (1-based) where the smoothed loss exceeds `factor` × its best so far, or is not finite —
    the LR finder's divergence rule applied to a training run; None if it never does."""
    best = avg = None
    for i, loss in enumerate(losses):
        if loss != loss or abs(loss) == float("inf"):
            return i + 1
        avg = loss if avg is None else smooth_f * loss + (1 - smooth_f) * avg
        best = avg if best is None else min(best, avg)
        if i >= 10 and avg > factor * best:
            return i + 1
    return None


@experiment(
    "ws_small_batches",
    "The WS-on-ResNet post: LR range tests (Adam) of resnet18 and resnet18_ws with BN at batch 64 and 256, "
    "then one-cycle Adam training of BN / WS+BN at batch 64, 2 and 256 and of GN / WS+GN at batch 2.",
)
def ws_small_batches(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    n_train, n_test = pick(smoke=(256, 256), cpu=(5000, 2000), gpu=(50000, 10000), scale=scale)
    config = {
        "model": "resnet18",
        "width": pick(smoke=0.125, cpu=0.25, gpu=1.0, scale=scale),
        # fastai's defaults, as the post used them: Adam, lr_find from 1e-7 to 10 over 100 steps,
        # fit_one_cycle's max lr 3e-3, pct_start 0.25. (fastai's decoupled weight decay 0.01 shrinks
        # the weights by lr * 0.01 <= 3e-5 per step; left out rather than replaced by Adam's L2.)
        "optimizer": "Adam, no weight decay, OneCycleLR pct_start 0.25",
        "range_test": {"start_lr": 1e-7, "end_lr": 10.0, "num_iter": pick(smoke=15, cpu=100, gpu=100, scale=scale),
                       "smooth_f": 0.05, "diverge_th": 5.0, "batch_sizes": [64, 256], "norms": ["bn", "ws+bn"]},
        "max_lr": 3e-3,
        "weight_decay": 0.0,
        "epochs": pick(smoke=1, cpu=2, gpu=5, scale=scale),
        "train_images": n_train,
        "test_images": n_test,
        "runs": [["bn", 64], ["ws+bn", 64], ["bn", 256], ["ws+bn", 256], ["bn", 2], ["ws+bn", 2],
                 ["gn", 2], ["ws+gn", 2]],
        "blow_up_rule": "smoothed loss (factor 0.05) above 4x its best so far after step 10, or not finite",
    }
    if scale == "smoke":
        config["range_test"]["batch_sizes"] = [16, 32]
        config["runs"] = [["bn", 16], ["ws+bn", 16], ["bn", 2], ["ws+bn", 2], ["gn", 2], ["ws+gn", 2]]
    rt = config["range_test"]
    full_train = load_cifar10("train")
    curves = []
    for bs in rt["batch_sizes"]:
        for norm in rt["norms"]:
            torch.manual_seed(seed)
            model = build_model("resnet18", norm, width=config["width"]).to(device)
            opt = make_optimizer(model.parameters(), "adam", rt["start_lr"], 0.9, config["weight_decay"])
            batches = DeviceBatches(full_train, bs, train=True, device=device, seed=seed)
            curves.append({"norm": norm, "batch_size": bs, **_range_test_curve(model, opt, batches, rt, device)})
    train, test = _cifar_subsets(n_train, n_test, seed)
    runs = []
    for norm, bs in config["runs"]:
        torch.manual_seed(seed)
        model = build_model("resnet18", norm, width=config["width"])
        t0 = time.perf_counter()
        hist = fit(
            model,
            DeviceBatches(train, bs, train=True, device=device, seed=seed),
            DeviceBatches(test, 500, train=False, device=device),
            epochs=config["epochs"], lr=config["max_lr"], optimizer="adam",
            weight_decay=config["weight_decay"], device=device, desc=f"{norm} b{bs}",
        )
        record = _run_record(hist, time.perf_counter() - t0, norm=norm, batch_size=bs)
        record["blow_up_step"] = _blow_up_step(hist["step_loss"])
        record["first_steps_loss"] = hist["step_loss"][:200]
        runs.append(record)
    return config, {"range_tests": curves, "runs": runs}, train.variant


@experiment(
    "switch_norm_cifar",
    "The keras-switchnorm toy CIFAR-10 CNN with Switchable Norm: running-average momentum (Keras-equivalent "
    "0.98 / 0.99 / 0.997) against the batch average, and plain BN; importance weights per layer.",
)
def switch_norm_cifar(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    from .switch_norm import SwitchNorm2d, finalize_batch_average

    n_train, n_test = pick(smoke=(512, 256), cpu=(8000, 2000), gpu=(50000, 10000), scale=scale)
    config = {
        "model": "switchnorm_cnn",
        "width": pick(smoke=0.125, cpu=0.25, gpu=1.0, scale=scale),
        "epochs": pick(smoke=2, cpu=12, gpu=25, scale=scale),
        "batch_size": 128,
        "optimizer": "Adam, no weight decay, OneCycleLR (pct_start 0.25)",
        "max_lr": 3e-3,
        "train_images": n_train,
        "test_images": n_test,
        # (label, norm spec): "sn:M" is SN with the Keras momentum M (PyTorch momentum 1 - M)
        "runs": [["sn 0.98", "sn:0.98"], ["sn 0.99", "sn:0.99"], ["sn 0.997", "sn:0.997"],
                 ["sn batch average", "sn-ba"], ["bn", "bn"]],
        "batch_average_batches": pick(smoke=2, cpu=20, gpu=50, scale=scale),
    }
    train, test = _cifar_subsets(n_train, n_test, seed)
    runs = []
    for label, norm in config["runs"]:
        torch.manual_seed(seed)
        model = build_model("switchnorm_cnn", norm, width=config["width"])
        before_eval = None
        if norm == "sn-ba":
            # Fresh pooled BN statistics of K training batches (un-augmented) before every evaluation
            def before_eval(m, k=config["batch_average_batches"]):
                finalize_batch_average(m, DeviceBatches(train, config["batch_size"], train=False, device=device), k)
        t0 = time.perf_counter()
        hist = fit(
            model,
            DeviceBatches(train, config["batch_size"], train=True, device=device, seed=seed),
            DeviceBatches(test, 500, train=False, device=device),
            epochs=config["epochs"], lr=config["max_lr"], optimizer="adam", weight_decay=0.0,
            device=device, desc=label, before_eval=before_eval,
        )
        record = _run_record(hist, time.perf_counter() - t0, label=label, norm=norm)
        record["importance"] = [
            {"mean": torch.softmax(m.mean_weight.detach(), 0).tolist(), "var": torch.softmax(m.var_weight.detach(), 0).tolist()}
            for m in model.modules() if isinstance(m, SwitchNorm2d)
        ]
        runs.append(record)
    return config, {"runs": runs}, train.variant


@experiment(
    "gan_weight_norm_cifar",
    "Xiang & Li's DCGAN on CIFAR-10, vanilla vs BN vs WN (Table 1, Appendix D.3): RMSProp as §5.1, running "
    "reconstruction loss (50 steps on fixed test images), sample grids from fixed codes, final reconstruction loss.",
)
def gan_weight_norm_cifar(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    from .gan import dcgan_discriminator, dcgan_generator, image_grid, reconstruction_loss, train_gan

    iterations = pick(smoke=6, cpu=2000, gpu=50000, scale=scale)
    config = {
        "image_size": 32,
        "code_size": 256,
        "channels": pick(smoke=8, cpu=64, gpu=96, scale=scale),
        "iterations": iterations,
        "batch_size": 32,
        "optimizer": "RMSprop lr 1e-4, alpha 0.9, eps 1e-6 (G and D)",
        "train_images": pick(smoke=512, cpu=50000, gpu=50000, scale=scale),
        "eval_every": pick(smoke=3, cpu=250, gpu=1000, scale=scale),
        "eval_images": pick(smoke=16, cpu=64, gpu=256, scale=scale),
        "eval_steps": 50 if scale != "smoke" else 5,
        "final_images": pick(smoke=32, cpu=256, gpu=2000, scale=scale),
        "final_steps": pick(smoke=20, cpu=300, gpu=2000, scale=scale),
        "sample_codes": 16,
        "sample_at": sorted({0, iterations // 4, iterations // 2, iterations}),
        "norms": ["vanilla", "bn", "wn"],
    }
    train, test = _cifar_subsets(config["train_images"], 10000, seed)
    # Fixed held-out images: the running set first, then the final set after it
    eval_x = test.images[: config["eval_images"]]
    final_x = test.images[config["eval_images"]: config["eval_images"] + config["final_images"]]
    codes = torch.randn(config["sample_codes"], config["code_size"], generator=torch.Generator().manual_seed(seed))
    real = train.images[: config["sample_codes"]].float() / 255
    runs = []
    for norm in config["norms"]:
        torch.manual_seed(seed)
        g = dcgan_generator(norm, 32, config["code_size"], config["channels"])
        d = dcgan_discriminator(norm, 32, config["channels"])
        hist = train_gan(g, d, train.images, iterations, eval_images=eval_x, eval_every=config["eval_every"],
                         eval_steps=config["eval_steps"], sample_codes=codes, sample_at=tuple(config["sample_at"]),
                         seed=seed, device=device, desc=norm)
        t0 = time.perf_counter()
        target = final_x.float().to(device) / 255
        losses, recon = reconstruction_loss(g, target, config["final_steps"])
        # Collapse check: per-pixel spread across the fixed-code samples, relative to real images'
        g.eval()
        with torch.no_grad():
            samples = g(codes.to(device))
        spread = (samples.std(0).mean() / real.to(device).std(0).mean()).item()
        pairs = torch.cat([target[:8], recon[:8]]).cpu()
        runs.append({
            "norm": norm,
            "eval": hist["eval"],
            "loss_curves": {k: _curve(v) for k, v in hist["losses"].items()},
            "diverged_at": hist["diverged_at"],
            "final_reconstruction_loss": losses.mean().item(),
            "final_reconstruction_loss_std": losses.std().item(),
            "sample_spread_vs_real": spread,
            "samples": {str(it): _results.encode_image(grid) for it, grid in hist["samples"].items()},
            "reconstructions": _results.encode_image(image_grid(pairs, rows=2)),
            "seconds": hist["seconds"],
            "final_eval_seconds": time.perf_counter() - t0,
        })
    return config, {"runs": runs}, train.variant


@experiment(
    "loss_landscape_norms",
    "Loss landscapes and smoothness of the same VGG on the same CIFAR-10 images with no norm, BN, GN, WS+BN, "
    "WS+GN, WN and SN: Santurkar et al.'s loss variation, gradient predictiveness and effective beta-smoothness "
    "along one-cycle SGD training, then filter-normalized 1-D and 2-D slices (Li et al.), the path from the "
    "initial to the trained weights, and one weight's slice at the end.",
)
def loss_landscape_norms(scale: str, seed: int, device: torch.device) -> tuple[dict, dict, str]:
    import copy

    from . import landscape

    n_train, n_test = pick(smoke=(512, 256), cpu=(8000, 2000), gpu=(50000, 10000), scale=scale)
    grid = pick(smoke=3, cpu=21, gpu=41, scale=scale)
    config = {
        "model": "vgg16",
        "width": pick(smoke=0.125, cpu=0.25, gpu=1.0, scale=scale),
        "epochs": pick(smoke=1, cpu=4, gpu=15, scale=scale),
        "batch_size": 64,
        "lr": 0.05,
        "optimizer": "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)",
        "train_images": n_train,
        "test_images": n_test,
        "norms": ["none", "bn", "gn", "ws+bn", "ws+gn", "wn", "sn"],
        # PyTorch's default conv init shrinks the signal ~sqrt(3)x per layer: 13 convs without a norm do not learn
        "init": "He (kaiming_normal_, fan_in, ReLU) for every conv weight, conv biases zero; head: PyTorch default",
        # Santurkar et al.'s probes: at every `probe_every`-th step, on that step's batch
        "probe_every": pick(smoke=2, cpu=10, gpu=50, scale=scale),
        "step_sizes": [0.05, 0.1, 0.2, 0.4],
        # Landscapes at the end of training, on fixed un-augmented training images
        "landscape_images": pick(smoke=64, cpu=256, gpu=2048, scale=scale),
        "landscape_batch": pick(smoke=64, cpu=256, gpu=512, scale=scale),
        "bn_mode": "batch (each batch normalized by its own statistics); 'running' also shown in 1-D",
        "direction_seeds": [seed * 100 + 1, seed * 100 + 2],
        "vectors": "zero",
        # Coordinates as numpy.linspace(start, stop, num) arguments
        "alphas_1d": [-1.0, 1.0, pick(smoke=5, cpu=41, gpu=81, scale=scale)],
        "grid_2d": [-1.0, 1.0, grid],
        "interpolation_alphas": [-0.25, 1.25, pick(smoke=4, cpu=31, gpu=61, scale=scale)],
        "parameter_slice": "the largest-magnitude entry of the middle conv's weight, moved by t x its filter's norm",
        "parameter_t": [-1.0, 1.0, pick(smoke=5, cpu=41, gpu=81, scale=scale)],
    }
    alphas, grid_xy, interp, ts = (np.linspace(*config[k]) for k in ("alphas_1d", "grid_2d", "interpolation_alphas", "parameter_t"))
    train, test = _cifar_subsets(n_train, n_test, seed)
    fixed = [(x, y) for x, y in DeviceBatches(train, config["landscape_batch"], train=False, device=device)]
    fixed = _first_images(fixed, config["landscape_images"])
    runs, arrays = [], {}
    for norm in config["norms"]:
        torch.manual_seed(seed)
        model = build_model("vgg16", norm, width=config["width"])
        _he_init_(model)
        model.to(device)
        initial = copy.deepcopy(model)
        probes = []

        def on_step(m, x, y, step):
            if step % config["probe_every"] == 0:
                probes.append({"step": step, **landscape.gradient_smoothness(m, (x.float(), y), config["step_sizes"])})

        t0 = time.perf_counter()
        hist = fit(
            model,
            DeviceBatches(train, config["batch_size"], train=True, device=device, seed=seed),
            DeviceBatches(test, 500, train=False, device=device),
            epochs=config["epochs"], lr=config["lr"], device=device, desc=norm, on_step=on_step,
        )
        record = _run_record(hist, time.perf_counter() - t0, norm=norm)
        record["probes"] = probes
        model = model.float().to(memory_format=torch.contiguous_format)
        t1 = time.perf_counter()
        dx, dy = (landscape.filter_normalized_direction(model, s, vectors=config["vectors"]) for s in config["direction_seeds"])
        key = norm.replace("+", "_")
        one_d = landscape.loss_along_direction(model, fixed, dx, alphas)
        arrays[f"{key}/1d_loss"], arrays[f"{key}/1d_acc"] = one_d["loss"], one_d["acc"]
        if any(True for _ in model.buffers()):
            run_1d = landscape.loss_along_direction(model, fixed, dx, alphas, bn="running")
            arrays[f"{key}/1d_running_loss"] = run_1d["loss"]
        surf = landscape.loss_surface(model, fixed, dx, dy, grid_xy, grid_xy)
        arrays[f"{key}/2d_loss"], arrays[f"{key}/2d_acc"] = surf["loss"], surf["acc"]
        path = landscape.loss_interpolation(initial, model, fixed, interp)
        arrays[f"{key}/interp_loss"] = path["loss"]
        name, index, filter_norm = _middle_conv_entry(model)
        original = dict(model.named_parameters())[name][index].item()
        values = [original + t * filter_norm for t in ts]
        param = landscape.loss_along_parameter(model, fixed, name, index, values)
        arrays[f"{key}/param_loss"] = param["loss"]
        record["parameter_slice"] = {"name": name, "index": list(index), "original": original, "filter_norm": filter_norm}
        record["filter_weight_norm"] = math.sqrt(sum(
            p.detach().double().pow(2).sum().item() for n, p in model.named_parameters() if n in landscape.filter_weights(model)))
        record["landscape_seconds"] = time.perf_counter() - t1
        runs.append(record)
    return config, {"runs": runs, "arrays": arrays}, train.variant


def _he_init_(model: torch.nn.Module) -> None:
    """He et al.'s init for every conv: weights N(0, 2/fan_in), biases 0 (through a weight norm's
    parametrization, whose right inverse sets g = ||w||, v = w)."""
    from torch.nn.utils import parametrize

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                w = torch.nn.init.kaiming_normal_(torch.empty_like(m.weight), mode="fan_in", nonlinearity="relu")
                if parametrize.is_parametrized(m, "weight"):
                    m.weight = w
                else:
                    m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()


def _first_images(batches: list, n: int) -> list:
    """The leading batches holding the first `n` images (the last one cut short if needed)."""
    out, left = [], n
    for x, y in batches:
        if left <= 0:
            break
        out.append((x[:left], y[:left]))
        left -= len(y)
    return out


def _middle_conv_entry(model: torch.nn.Module) -> tuple[str, tuple[int, ...], float]:
    """The middle conv's weight (by order), the index of its largest-magnitude entry, and that entry's filter norm."""
    from .landscape import filter_weights

    names = [n for n, p in model.named_parameters() if n in filter_weights(model) and p.dim() == 4]
    name = names[len(names) // 2]
    w = dict(model.named_parameters())[name].detach()
    flat = int(w.abs().argmax())
    index = tuple(int(i) for i in np.unravel_index(flat, tuple(w.shape)))
    return name, index, w[index[0]].norm().item()
