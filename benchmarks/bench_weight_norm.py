"""A weight-normalized layer's training step ÷ the plain layer's, at CIFAR sizes (goal ≤ 1.05).

    python benchmarks/bench_weight_norm.py [--device cuda]

One training step = forward, backward and an SGD update of the layer alone, on a fixed input;
labnorm's WN layer (recomputing w = g v/||v|| every step) and torch's, against the plain layer,
measured one after the other in the same process with `torch.utils.benchmark` (median).
Writes `benchmarks/results/weight_norm__<device type>.json` with provenance.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.utils.benchmark as tb
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_weight_norm

from labnorm.results import save_benchmark
from labnorm.weight_norm import weight_norm

CASES = [
    ("Conv2d 64→64 3×3", lambda: nn.Conv2d(64, 64, 3, padding=1), (128, 64, 32, 32)),
    ("Conv2d 256→256 3×3", lambda: nn.Conv2d(256, 256, 3, padding=1), (128, 256, 8, 8)),
    ("Linear 512→10", lambda: nn.Linear(512, 10), (128, 512)),
]


def step_time(layer: nn.Module, x: torch.Tensor, min_run_time: float) -> float:
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        layer(x).float().pow(2).mean().backward()
        opt.step()

    step()  # warm-up
    return tb.Timer("step()", globals={"step": step}).blocked_autorange(min_run_time=min_run_time).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    t0 = time.perf_counter()
    rows = []
    for name, make, shape in CASES:
        torch.manual_seed(0)
        plain = make().to(device)
        x = torch.randn(shape, device=device)
        times = {
            "plain": step_time(plain, x, args.min_run_time),
            "labnorm_wn": step_time(weight_norm(copy.deepcopy(plain), dim="output"), x, args.min_run_time),
            "torch_wn": step_time(torch_weight_norm(copy.deepcopy(plain)), x, args.min_run_time),
        }
        row = {"case": name, "input": list(shape), **{f"{k}_ms": v * 1e3 for k, v in times.items()},
               "ratio_labnorm_wn_over_plain": times["labnorm_wn"] / times["plain"],
               "ratio_torch_wn_over_plain": times["torch_wn"] / times["plain"]}
        rows.append(row)
        print(f"{name:<20} plain {row['plain_ms']:8.2f} ms  labnorm WN ×{row['ratio_labnorm_wn_over_plain']:.3f}"
              f"  torch WN ×{row['ratio_torch_wn_over_plain']:.3f}")
    out = save_benchmark("weight_norm", device, time.perf_counter() - t0,
                         what="training step (fwd+bwd+SGD) of a weight-normalized layer / the plain layer; goal <= 1.05",
                         threads=torch.get_num_threads(), rows=rows)
    print(f"wrote {out.name}")


if __name__ == "__main__":
    main()
