"""How far the fast CIFAR-10 recipe goes on this machine: test accuracy against minutes, one training run per row.

    python benchmarks/bench_fast_frontier.py --width 1.0 --epochs 10 [--seed 0] [--fp32]
    python benchmarks/bench_fast_frontier.py --width 0.5 --epochs 5 --norm gn:16 --lr 0.375 [--bias-lr-scale 64]

Each call trains `FastCIFAR` with BN (torch's kernel, as the experiments run it) by `train_fast` with
`FastRecipe`'s defaults (airbench94's hyperparameters) at one width and length, on all 50,000 training
images, tests on all 10,000, and adds one row to `benchmarks/results/fast_frontier__<device type>.json`:
accuracy with and without test-time augmentation, wall time (whitening + training + evaluation), and
the machine's 1-minute load average just before the run, so a row timed beside another job says so.
Rows accumulate across calls (a row of the same width, epochs, precision and seed is replaced), each
with its own provenance. One seed per row: a row shows what a configuration reaches, not an interval.

`fast_cifar`'s record is the experiment (3 seeds per norm); this file is where its configuration was
chosen from, and the full-width row is issue 27's headline (the record recipe's length at full width).
`--norm`, `--lr` and `--bias-lr-scale` train another norm, or the recipe at another peak learning rate or
norm-shift learning-rate multiple: the diagnosis of a norm that trains poorly under the recipe
(`benchmarks/README.md`: GN in the grand comparison).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch

from labnorm.data import load_cifar10
from labnorm.models import build_model
from labnorm.results import load_benchmark, provenance, save_benchmark
from labnorm.train.fast import FastRecipe, train_fast
from labnorm.train.kernels import use_torch_kernels

NAME = "fast_frontier"


def run(width: float, epochs: float, seed: int, bf16: bool, norm: str = "bn", lr: float | None = None,
        bias_lr_scale: float | None = None) -> dict:
    train, test = load_cifar10("train"), load_cifar10("test")
    load = os.getloadavg()[0]
    torch.manual_seed(seed)
    model = build_model("fast_cifar", norm, width=width)
    use_torch_kernels(model)
    recipe = FastRecipe(epochs=epochs, bf16=bf16)
    recipe = replace(recipe, lr=recipe.lr if lr is None else lr, bias_lr_scale=recipe.bias_lr_scale if bias_lr_scale is None
                     else bias_lr_scale)
    hist = train_fast(model, train.images, train.labels, test.images, test.labels,
                      recipe=recipe, seed=seed, desc=f"{norm}, width {width:g}, {epochs:g} ep")
    prov = provenance(scale="benchmark", seed=seed, dataset=train.variant, device=torch.device("cpu"),
                      wall_time_s=hist["wall_seconds"])
    return {"norm": norm, "lr": recipe.lr, "bias_lr_scale": recipe.bias_lr_scale, "width": width, "epochs": epochs,
            "seed": seed, "bf16": hist["bf16"], "threads": torch.get_num_threads(),
            "train_loss_per_epoch": [round(e["train_loss"], 4) for e in hist["epochs"]],
            "load_before": round(load, 2),
            **{k: hist[k] for k in ("test_acc", "test_acc_tta", "train_seconds", "eval_seconds", "wall_seconds")},
            # each row's own commit and date (the file's provenance is the last call's)
            **{k: prov[k] for k in ("commit", "commit_dirty", "date") if k in prov}, "dataset": train.variant}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp32", action="store_true", help="float32 instead of bf16 autocast")
    ap.add_argument("--norm", default="bn", help="any norm= of labnorm (default bn)")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's, 1.5)")
    ap.add_argument("--bias-lr-scale", type=float, default=None,
                    help="learning-rate multiple of the norms' shifts (default: the recipe's, 64)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    row = run(args.width, args.epochs, args.seed, not args.fp32, args.norm, args.lr, args.bias_lr_scale)
    old = (load_benchmark(NAME) or {}).get("rows", [])
    defaults = {"norm": "bn", "lr": FastRecipe().lr, "bias_lr_scale": FastRecipe().bias_lr_scale}  # older rows: BN's
    same = ("width", "epochs", "seed", "bf16", "norm", "lr", "bias_lr_scale")
    rows = [r for r in old if any(r.get(k, defaults.get(k)) != row[k] for k in same)] + [row]
    rows.sort(key=lambda r: (r.get("norm", "bn"), r["width"], r["epochs"], r["bf16"], r["seed"], -r.get("lr", 1.5)))
    path = save_benchmark(NAME, torch.device("cpu"), time.perf_counter() - t0, rows=rows,
                          note="FastCIFAR + BN (or the row's norm) by train_fast (FastRecipe defaults, but the row's "
                               "lr and bias_lr_scale), all 50,000 / 10,000 images, one seed per row; wall_seconds = whitening + training + evaluation; load_before = the "
                               "1-minute load average before the run (about 0 on an idle machine: the row's time is "
                               "comparable; well above 0: another job shared the CPU).")
    print(f"{row['norm']} at lr {row['lr']:g}, {row['width']:g} x {row['epochs']:g} epochs: {row['test_acc_tta']:.2%} with TTA "
          f"({row['test_acc']:.2%} without) in {row['wall_seconds'] / 60:.1f} min -> {path.name}")


if __name__ == "__main__":
    main()
