"""Speed of labnorm's BatchNorm2d / GroupNorm relative to torch's fused kernels.

    python benchmarks/bench_norms.py [--device cuda] [--threads 2] [--no-compile]

For each layer and shape, times forward + backward in training mode (and the eval-mode
forward of batch norm) of labnorm's layer run eagerly, of the same layer under
`torch.compile` (inductor), and of torch's layer, in the same process one after the
other, with `torch.utils.benchmark` (which picks the repeat count and reports the median).
Reports the ratios labnorm ÷ torch and writes
`benchmarks/results/norms__<device type>.json` with provenance.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.utils.benchmark as tb
from torch import nn

import labnorm
from labnorm.results import save_benchmark

SHAPES = [(64, 64, 32, 32), (8, 256, 14, 14)]


def _train_step(layer: nn.Module, x: torch.Tensor):
    def step():
        layer(x).sum().backward()

    return step


def measure(device: torch.device, min_run_time: float, compile_: bool) -> list[dict]:
    rows = []
    for shape in SHAPES:
        c = shape[1]
        x = torch.randn(shape, device=device, requires_grad=True)
        cases = {
            "BatchNorm2d train fwd+bwd": (labnorm.BatchNorm2d(c), nn.BatchNorm2d(c), True),
            "BatchNorm2d eval fwd": (labnorm.BatchNorm2d(c).eval(), nn.BatchNorm2d(c).eval(), False),
            "GroupNorm(32) fwd+bwd": (labnorm.GroupNorm(32, c), nn.GroupNorm(32, c), True),
        }
        for name, (ours, ref, backward) in cases.items():
            times = {}
            contenders = [("labnorm", ours.to(device)), ("torch", ref.to(device))]
            if compile_:
                # A fresh copy, so the compiled graph does not share running statistics with `ours`.
                compiled = torch.compile(type(ours)(*ours_args(ours)).to(device).train(ours.training))
                contenders.insert(1, ("labnorm_compiled", compiled))
            for who, layer in contenders:
                if backward:
                    fn = _train_step(layer, x)
                else:
                    def fn(layer=layer):
                        with torch.no_grad():
                            layer(x)
                fn()  # warm-up (and compilation)
                timer = tb.Timer(stmt="fn()", globals={"fn": fn})
                times[who] = timer.blocked_autorange(min_run_time=min_run_time).median
            row = {"case": name, "shape": list(shape)}
            row.update({f"{who}_ms": t * 1e3 for who, t in times.items()})
            row["ratio_labnorm_over_torch"] = times["labnorm"] / times["torch"]
            line = f"{name:<27} {str(shape):<17} labnorm {times['labnorm'] * 1e3:7.2f} ms"
            if "labnorm_compiled" in times:
                row["ratio_compiled_over_torch"] = times["labnorm_compiled"] / times["torch"]
                line += f"  compiled {times['labnorm_compiled'] * 1e3:7.2f} ms"
            line += f"  torch {times['torch'] * 1e3:7.2f} ms  ratio {row['ratio_labnorm_over_torch']:.2f}"
            if "labnorm_compiled" in times:
                line += f" (compiled {row['ratio_compiled_over_torch']:.2f})"
            rows.append(row)
            print(line)
    return rows


def ours_args(layer: nn.Module) -> tuple:
    """Constructor arguments that rebuild `layer`."""
    if isinstance(layer, labnorm.GroupNorm):
        return (layer.num_groups, layer.num_channels)
    return (layer.num_features,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t0 = time.perf_counter()
    rows = measure(device, args.min_run_time, not args.no_compile)
    out = save_benchmark(
        "norms", device, time.perf_counter() - t0,
        what="median time of labnorm's layer (eager and torch.compile'd) and torch's on the same input, "
             "same process; ratio = labnorm / torch",
        threads=torch.get_num_threads(), rows=rows,
    )
    print(f"wrote {out.name}")

if __name__ == "__main__":
    main()
