"""What the compile paths of FRN + TLU, Dynamic Tanh and EvoNorm-B0/S0 buy: each layer under
`torch.compile` as written (`fast_compiled_path=False`) and with its path shaped for inductor
(the default), side by side in one run.

    python benchmarks/bench_compile_paths.py [--device cuda] [--threads 1] [--rounds 7] [--slice 0.3]

Train forward + backward on [N, 64, 32, 32] at batch 128 and 2, timed round-robin with
`torch.nn.BatchNorm2d` (eager) as the denominator, as in `bench_zoo.py`. The paths are described in
`labnorm._compile` (per-channel parameters repeated per sample) and `labnorm.evonorm`
(`_EvoNormB0Function`, `_EvoNormS0Function`: closed-form backwards); tests check that each gives the
values and gradients of the formula. Writes `benchmarks/results/compile_paths__<device type>.json`.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from bench_zoo import BATCHES, CHANNELS, SIZE, _step, round_robin
from torch import nn

import labnorm
from labnorm.results import save_benchmark

LAYERS = {
    "FilterResponseNorm2d+TLU": lambda c: nn.Sequential(labnorm.FilterResponseNorm2d(c), labnorm.TLU(c)),
    "DynamicTanh": lambda c: labnorm.DynamicTanh(c),
    "EvoNorm2dB0": lambda c: labnorm.EvoNorm2dB0(c),
    "EvoNorm2dS0(32)": lambda c: labnorm.EvoNorm2dS0(c, groups=32),
}


def _with_path(layer: nn.Module, fast: bool) -> nn.Module:
    layer = copy.deepcopy(layer)
    for m in layer.modules():
        if hasattr(m, "fast_compiled_path"):
            m.fast_compiled_path = fast
    return layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--slice", type=float, default=0.3)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t_start = time.perf_counter()
    rows = []
    for name, build in LAYERS.items():
        for n in BATCHES:
            torch.manual_seed(0)
            x = torch.randn(n, CHANNELS, SIZE, SIZE, device=device, requires_grad=True)
            g = torch.randn_like(x)
            layer = build(CHANNELS).to(device)
            fns = {
                "torch_bn": _step(nn.BatchNorm2d(CHANNELS).to(device), x, g),
                "formula_compiled": _step(torch.compile(_with_path(layer, False), dynamic=False), x, g),
                "fast_path_compiled": _step(torch.compile(_with_path(layer, True), dynamic=False), x, g),
            }
            times = round_robin(fns, device, args.rounds, args.slice)
            row = {"layer": name, "batch": n, **{f"{k}_ms": t * 1e3 for k, t in times.items()},
                   "formula_over_bn": times["formula_compiled"] / times["torch_bn"],
                   "fast_path_over_bn": times["fast_path_compiled"] / times["torch_bn"],
                   "speedup": times["formula_compiled"] / times["fast_path_compiled"]}
            rows.append(row)
            print(f"{name:<26} N={n:<4} formula {row['formula_over_bn']:.2f}x BN  fast path "
                  f"{row['fast_path_over_bn']:.2f}x BN  speed-up {row['speedup']:.2f}", flush=True)
    if args.no_save:
        return
    out = save_benchmark(
        "compile_paths", device, time.perf_counter() - t_start,
        what="train forward+backward on [N, 64, 32, 32] under torch.compile (inductor): the layer's formula "
             "as written (fast_compiled_path=False) and its compile path (default), median of round-robin "
             "slices in one process; ratios to torch.nn.BatchNorm2d eager, and formula / fast path",
        threads=torch.get_num_threads(), rounds=args.rounds, rows=rows,
    )
    print(f"wrote {out.name}")


if __name__ == "__main__":
    main()
