r"""Loss landscapes and smoothness of one VGG with seven normalizations (notebook 08).

The WS paper argues that WS (like BN) smooths the loss landscape. Here the same He-initialized
VGG is trained with no norm, BN, GN, WS+BN, WS+GN, WN and SN; along one-cycle SGD training,
Santurkar et al.'s probes measure loss variation, gradient predictiveness and the effective
$\beta$-smoothness on each probed step's batch; at the end, filter-normalized 1-D and 2-D slices
(Li et al.), the path from the initial to the trained weights, and one weight's slice are
evaluated on fixed training images. The slices are saved as arrays, per seed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from statistics import median
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .. import landscape
from ..data import DeviceBatches
from ..models import build_model
from ..train.dry import dry_batch, dry_cut, dry_part
from .common import cifar_subsets, train_run
from .claims import verdicts
from .plots import surfaces
from .report import Figure, Report, Table, bands, baseline_note, cell, log_axis, seed_details
from .runner import Experiment, SeedResult


@dataclass(frozen=True)
class Config:
    width: float
    epochs: int
    train_images: int
    test_images: int
    probe_every: int
    landscape_images: int
    landscape_batch: int
    # Coordinates as numpy.linspace(start, stop, num) arguments
    alphas_1d: tuple[float, float, int]
    grid_2d: tuple[float, float, int]
    interpolation_alphas: tuple[float, float, int]
    parameter_t: tuple[float, float, int]
    model: str = "vgg16"
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "SGD, Nesterov momentum 0.9, weight decay 5e-4, OneCycleLR (pct_start 0.25)"
    norms: tuple[str, ...] = ("none", "bn", "gn", "ws+bn", "ws+gn", "wn", "sn")
    # PyTorch's default conv init shrinks the signal ~sqrt(3)x per layer: 13 convs without a norm do not learn
    init: str = "He (kaiming_normal_, fan_in, ReLU) for every conv weight, conv biases zero; head: PyTorch default"
    step_sizes: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    bn_mode: str = "batch (each batch normalized by its own statistics); 'running' also shown in 1-D"
    direction_seeds: str = "seed * 100 + 1 and seed * 100 + 2"
    vectors: str = "zero"
    parameter_slice: str = "the largest-magnitude entry of the middle conv's weight, moved by t x its filter's norm"


CONFIGS = {
    "smoke": Config(width=0.125, epochs=1, train_images=512, test_images=256, probe_every=2, landscape_images=64,
                    landscape_batch=64, alphas_1d=(-1.0, 1.0, 5), grid_2d=(-1.0, 1.0, 3),
                    interpolation_alphas=(-0.25, 1.25, 4), parameter_t=(-1.0, 1.0, 5)),
    "cpu": Config(width=0.25, epochs=4, train_images=8000, test_images=10000, probe_every=10, landscape_images=256,
                  landscape_batch=256, alphas_1d=(-1.0, 1.0, 41), grid_2d=(-1.0, 1.0, 21),
                  interpolation_alphas=(-0.25, 1.25, 31), parameter_t=(-1.0, 1.0, 41)),
    "gpu": Config(width=1.0, epochs=15, train_images=50000, test_images=10000, probe_every=50, landscape_images=2048,
                  landscape_batch=512, alphas_1d=(-1.0, 1.0, 81), grid_2d=(-1.0, 1.0, 41),
                  interpolation_alphas=(-0.25, 1.25, 61), parameter_t=(-1.0, 1.0, 81)),
}


def he_init_(model: nn.Module) -> None:
    """He et al.'s init for every conv: weights N(0, 2/fan_in), biases 0 (through a weight norm's
    parametrization, whose right inverse sets g = ||w||, v = w)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                w = nn.init.kaiming_normal_(torch.empty_like(m.weight), mode="fan_in", nonlinearity="relu")
                if parametrize.is_parametrized(m, "weight"):
                    m.weight = w
                else:
                    m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()


def first_images(batches: Iterable, n: int) -> list:
    """The leading batches holding the first `n` images (the last one cut short if needed)."""
    out, left = [], n
    for x, y in batches:
        if left <= 0:
            break
        out.append((x[:left], y[:left]))
        left -= len(y)
    return out


def middle_conv_entry(model: nn.Module) -> tuple[str, tuple[int, ...], float]:
    """The middle conv's weight (by order), the index of its largest-magnitude entry, and that entry's filter norm."""
    names = [n for n, p in model.named_parameters() if n in landscape.filter_weights(model) and p.dim() == 4]
    name = names[len(names) // 2]
    w = dict(model.named_parameters())[name].detach()
    index = tuple(int(i) for i in np.unravel_index(int(w.abs().argmax()), tuple(w.shape)))
    return name, index, w[index[0]].norm().item()


def _landscapes(model, initial, fixed, config: Config, seed: int, key: str, arrays: dict) -> dict:
    """The end-of-training slices of one model into `arrays`; returns the slice's description."""
    alphas, grid, interp, ts = (np.linspace(*getattr(config, k)) for k in
                                ("alphas_1d", "grid_2d", "interpolation_alphas", "parameter_t"))
    dx, dy = (landscape.filter_normalized_direction(model, s, vectors=config.vectors) for s in (seed * 100 + 1, seed * 100 + 2))
    one_d = landscape.loss_along_direction(model, fixed, dx, alphas)
    arrays[f"{key}/1d_loss"], arrays[f"{key}/1d_acc"] = one_d["loss"], one_d["acc"]
    if any(True for _ in model.buffers()):
        arrays[f"{key}/1d_running_loss"] = landscape.loss_along_direction(model, fixed, dx, alphas, bn="running")["loss"]
    surf = landscape.loss_surface(model, fixed, dx, dy, grid, grid)
    arrays[f"{key}/2d_loss"], arrays[f"{key}/2d_acc"] = surf["loss"], surf["acc"]
    arrays[f"{key}/interp_loss"] = landscape.loss_interpolation(initial, model, fixed, interp)["loss"]
    name, index, filter_norm = middle_conv_entry(model)
    original = dict(model.named_parameters())[name][index].item()
    arrays[f"{key}/param_loss"] = landscape.loss_along_parameter(
        model, fixed, name, index, [original + t * filter_norm for t in ts])["loss"]
    return {"name": name, "index": list(index), "original": original, "filter_norm": filter_norm}


def _loss_evaluations(c: Config, running: bool) -> int:
    # Images evaluated by `_landscapes` for one model (`running`: it has buffers, so a second 1-D slice)
    points = (1 + running) * c.alphas_1d[2] + c.grid_2d[2] ** 2 + c.interpolation_alphas[2] + c.parameter_t[2]
    return points * c.landscape_images


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    import time

    # A dry run (labnorm.train.dry) evaluates 1 point per slice on one batch, timed and projected
    full, small = config, dry_batch(config.landscape_batch)
    config = dry_cut(config, landscape_images=small, landscape_batch=small, alphas_1d=(-1.0, 1.0, 1),
                     grid_2d=(-1.0, 1.0, 1), interpolation_alphas=(-0.25, 1.25, 1), parameter_t=(-1.0, 1.0, 1))
    train, test = cifar_subsets(config.train_images, config.test_images, seed)
    fixed = first_images(DeviceBatches(train, config.landscape_batch, train=False, device=device),
                         config.landscape_images)
    runs, arrays = [], {}
    for norm in config.norms:
        probes, initial = [], []

        def prepare(m):
            he_init_(m)
            initial.append(copy.deepcopy(m))

        def on_step(m, x, y, step):
            if step % config.probe_every == 0:
                probes.append({"step": step, **landscape.gradient_smoothness(m, (x.float(), y), list(config.step_sizes))})

        model, record = train_run(lambda: build_model(config.model, norm, width=config.width), train, test,
                                  batch_size=config.batch_size, seed=seed, device=device, epochs=config.epochs,
                                  lr=config.lr, labels={"norm": norm}, prepare=prepare, on_step=on_step)
        record["probes"] = probes
        model = model.float().to(memory_format=torch.contiguous_format)
        t1 = time.perf_counter()
        running = any(True for _ in model.buffers())
        with dry_part(f"{norm}: landscape slices (images evaluated)", _loss_evaluations(full, running),
                      _loss_evaluations(config, running), device,
                      steps=_loss_evaluations(full, running) // full.landscape_batch):
            record["parameter_slice"] = _landscapes(model, initial[0], fixed, config, seed, norm.replace("+", "_"),
                                                    arrays)
        record["filter_weight_norm"] = math.sqrt(sum(
            p.detach().double().pow(2).sum().item() for n, p in model.named_parameters()
            if n in landscape.filter_weights(model)))
        record["landscape_seconds"] = time.perf_counter() - t1
        runs.append(record)
    return SeedResult({"runs": runs}, train.variant, arrays)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for r in details["runs"]:
        n, probes = r["norm"], r["probes"]
        out[f"test_acc/{n}"] = r["final_test_acc"]
        out[f"median_beta/{n}"] = median(p["beta"] for p in probes) if probes else None
        out[f"median_loss_spread/{n}"] = median(max(p["losses"]) - min(p["losses"]) for p in probes) if probes else None
        out[f"median_grad_change/{n}"] = median(p["grad_change"][-1] for p in probes) if probes else None
        out[f"filter_weight_norm/{n}"] = r["filter_weight_norm"]
    return out


def report(record: dict) -> Report:
    norms = [r["norm"] for r in seed_details(record)[0]["runs"]]
    rows = [[n, cell(record, f"test_acc/{n}", 1, percent=True), cell(record, f"median_beta/{n}", 3), cell(record, f"median_loss_spread/{n}"),
             cell(record, f"median_grad_change/{n}"), cell(record, f"filter_weight_norm/{n}", 1)] for n in norms]
    table = Table(["norm", "final test accuracy", "median effective β", "median loss spread over step sizes",
                   "median gradient change (largest step)", "weight norm of the filters at the end"], rows,
                  note="medians over the probed steps of one run (Santurkar et al.'s measures along the gradient, "
                       "step sizes as in the config), then mean ± interval over seeds; smaller is smoother.")

    def draw(fig):
        ax = fig.subplots()
        for k, n in enumerate(norms):
            bands(ax, [[(q["step"], q["beta"]) for q in d["runs"][k]["probes"]] for d in seed_details(record)],
                  color=f"C{k}", label=n)
        ax.set(xlabel="training step", ylabel="effective β-smoothness (log scale)")
        log_axis(ax, "y")
        ax.legend(fontsize=7, ncol=2)

    seed = str(record["seeds"][0])  # the 2-D slices of the first seed, as the notebook shows them
    arrays = record.get("arrays", {}).get(seed, {})
    slices = {n: arrays[f"{n.replace('+', '_')}/2d_loss"] for n in norms if f"{n.replace('+', '_')}/2d_loss" in arrays}
    plots = [surfaces(np.linspace(*record["config"]["grid_2d"]), slices, z_label="training loss",
                      title=f"Filter-normalized 2-D slice of the training loss at the end of training, seed {seed}")] if slices else []
    return Report(record, [table], [Figure("Effective β along training (line: mean over seeds; band: lowest to highest "
                                           "seed)", draw)], verdicts(record),
                  baseline_note(record, [("bn", "test_acc/bn")]), plots)


EXPERIMENT = Experiment(
    name="loss_landscape_norms",
    description="Loss landscapes and smoothness of the same VGG on the same CIFAR-10 images with no norm, BN, GN, "
                "WS+BN, WS+GN, WN and SN: Santurkar et al.'s loss variation, gradient predictiveness and effective "
                "beta-smoothness along one-cycle SGD training, then filter-normalized 1-D and 2-D slices (Li et al.), "
                "the path from the initial to the trained weights, and one weight's slice at the end.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
