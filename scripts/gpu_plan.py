r"""Plan the gpu-scale runs of a short GPU session. The minutes it prints are an ESTIMATE,
projected from dry runs on the machine that runs this script (usually a CPU), not measured on a GPU.

For every registered experiment, `labnorm.experiments.common.dry_run(name, "gpu")` builds the real
gpu-scale models and data pipeline and times 2 training steps and 1 evaluation batch per arm
(at most `--batch` images per step), then projects the full run on *this* machine by the rule in
`labnorm.train.dry`. Each timed part is turned into GPU seconds by

    gpu_s = max(cpu_s / FACTOR, steps × STEP_FLOOR_S)

- `FACTOR` (`--factor`, default 1000): the assumed throughput ratio, images per second, of one
  H100/H200-class GPU under bf16 autocast and channels_last (tens of thousands of CIFAR images/s
  for a ResNet-18) to one core of a small shared CPU (tens of images/s at full width). Use about
  100 for a T4-class GPU, which has no bf16 tensor cores.
- `STEP_FLOOR_S` (`--floor`, default 5 ms): the shortest eager step — a step of a small batch is
  bound by kernel launches and host round trips, not by arithmetic, so batch-2 arms cost
  steps × floor however fast the GPU is.

Then the plan, in the order in which results are most useful: experiments from the cheapest up,
each with 3 seeds when they fit (a verdict needs 3 seeds), else 1 seed (a gpu reference curve and
proof that the gpu config runs), else listed as not fitting; the GPU benchmarks (bf16 autocast and
channels_last in `bench_training.py`, `torch.compile` in `bench_norms.py`) go right after the first
experiment. Start-up (CUDA init, data decode) is counted once, and each command pays a
fixed overhead.

    python scripts/gpu_plan.py --batch 8 --images 1024              # print the plan
    python scripts/gpu_plan.py --batch 8 --images 1024 --write scripts/gpu_runs.sh
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

from labnorm.experiments import experiments
from labnorm.experiments.common import dry_run

# Benchmarks and their estimated GPU minutes (not projected by a dry run: a guess from their sizes,
# compile time included); each runs with --device cuda.
BENCHMARKS = [
    ("benchmarks/bench_training.py --device cuda", 1.0, "every model x norm, bf16 autocast + channels_last"),
    ("benchmarks/bench_norms.py --device cuda", 2.0, "BN / GN eager, torch.compile'd and torch's"),
]


def gpu_minutes(result: dict, factor: float, floor: float) -> float:
    """One seed's estimated GPU minutes (see the module doc)."""
    total = 0.0
    for part in result["parts"]:
        steps = part.get("steps") or 0
        total += max(part["projected_s"] / factor, steps * floor)
    return total / 60


def plan(estimates: dict[str, float], budget: float, startup: float, overhead: float) -> list[tuple]:
    """Greedy: cheapest experiment first, 3 seeds if they fit, else 1; benchmarks after the first."""
    left = budget - startup
    steps, skipped = [], []
    for name, per_seed in sorted(estimates.items(), key=lambda kv: kv[1]):
        for seeds in (3, 1):
            cost = seeds * per_seed + overhead
            if cost <= left:
                steps.append(("run", name, seeds, cost))
                left -= cost
                break
        else:
            skipped.append(("skip", name, 0, per_seed + overhead))
        if len(steps) == 1 and steps[0][0] == "run":
            for cmd, minutes, _ in BENCHMARKS:
                if minutes + overhead <= left:
                    steps.append(("bench", cmd, 0, minutes + overhead))
                    left -= minutes + overhead
    return steps + skipped


def shell(steps: list[tuple], budget: float, startup: float, header: str) -> str:
    lines = ["#!/usr/bin/env bash", header, "set -u", 'cd "$(dirname "$0")/.."',
             f"DEADLINE=$(( {int(budget * 60)} ))  # seconds for the whole session, start-up included",
             "left() { echo $(( DEADLINE - SECONDS )); }",
             "step() {  # step SECONDS COMMAND...: run with a timeout that never passes the deadline",
             '  local t=$1; shift; local l; l=$(left); (( l < t )) && t=$l',
             '  if (( t <= 10 )); then echo "skipped (no time left): $*"; return; fi',
             '  echo "== $* (timeout ${t}s)"; timeout "$t" "$@" || echo "stopped or failed ($?): $*"',
             "}",
             f"# Start-up, estimated {startup:.1f} min: CUDA init, CIFAR-10 decoded once (then cached); labnorm from",
             "# this checkout (no install: the machine may have no network). $LABNORM_DATA: a folder with the archive.",
             'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"',
             "timeout 300 python -c 'import torch, labnorm; assert torch.cuda.is_available(), \"no GPU\"; "
             'labnorm.load_cifar10("train"); print(torch.cuda.get_device_name())\' || { echo "no GPU or no data"; exit 1; }']
    for kind, what, seeds, cost in steps:
        if kind == "run":
            lines.append(f"# {what}: {seeds} seed(s), estimated {cost:.1f} min (records are saved after each seed)")
            lines.append(f"step {math.ceil(cost * 60 * 1.5)} python -m labnorm run {what} --scale gpu --seeds {seeds}")
        elif kind == "bench":
            lines.append(f"# benchmark, estimated {cost:.1f} min (a guess, not a dry-run projection)")
            lines.append(f"step {math.ceil(cost * 60 * 1.5)} python {what}")
        else:
            lines.append(f"# does not fit: {what}, estimated {cost:.1f} min per seed")
    lines.append('echo "done in ${SECONDS}s; commit results/*__gpu.json and benchmarks/results/*__cuda.json"')
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="at most N images per dry step (default 8)")
    parser.add_argument("--images", type=int, default=1024, help="cut each data split to N images (default 1024)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--factor", type=float, default=1000.0, help="CPU -> GPU throughput ratio (default 1000)")
    parser.add_argument("--floor", type=float, default=0.005, help="shortest GPU step, seconds (default 0.005)")
    parser.add_argument("--budget", type=float, default=12.0, help="GPU minutes, start-up included (default 12)")
    parser.add_argument("--startup", type=float, default=2.0, help="start-up minutes (default 2)")
    parser.add_argument("--overhead", type=float, default=0.25, help="minutes per command (default 0.25)")
    parser.add_argument("--only", default=None, help="comma-separated experiments (default: all)")
    parser.add_argument("--write", default=None, help="also write the plan as a shell script here")
    parser.add_argument("--json", default=None, help="save the dry runs here, or read them when the file exists")
    args = parser.parse_args()

    names = args.only.split(",") if args.only else sorted(experiments())
    saved = json.loads(Path(args.json).read_text()) if args.json and Path(args.json).is_file() else {}
    estimates, rows = {}, []
    for name in names:
        t0 = time.perf_counter()
        result = saved.get(name) or dry_run(name, "gpu", device=args.device, images=args.images, batch=args.batch)
        saved[name] = result
        estimates[name] = gpu_minutes(result, args.factor, args.floor)
        rows.append(f"{name:28s} dry run {time.perf_counter() - t0:6.1f} s | projected here "
                    f"{result['projected_s'] / 60:9.1f} min/seed | estimated GPU {estimates[name]:7.1f} min/seed | "
                    f"peak {result['peak_memory_bytes'] / 2**30:.2f} GiB ({result['peak_memory']})")
        print(rows[-1], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(saved, indent=1))
    write_plan(args, estimates, rows, result["device"])


def write_plan(args: argparse.Namespace, estimates: dict[str, float], rows: list[str], device: str) -> None:
    """Print the plan (and write it as a shell script with `--write`)."""
    steps = plan(estimates, args.budget, args.startup, args.overhead)
    header = (f"# The gpu-scale session plan, written by scripts/gpu_plan.py on {datetime.date.today()} from dry runs on "
              f"{device}\n# (at most {args.batch} images per dry step). The minutes are ESTIMATES: the dry run's "
              f"projection on {device} / {args.factor:g},\n# at least {args.floor * 1e3:g} ms per step; "
              f"budget {args.budget:g} min, start-up {args.startup:g} min, {args.overhead:g} min per command.\n"
              "# Per-seed estimates:\n" + "\n".join(f"#   {r}" for r in rows))
    print()
    total = args.startup
    for kind, what, seeds, cost in steps:
        if kind != "skip":
            total += cost
        label = {"run": f"run {what} --seeds {seeds}", "bench": f"python {what}", "skip": f"does not fit: {what}"}[kind]
        print(f"{label:60s} {cost:6.1f} min" + ("" if kind == "skip" else f"   (cumulative {total:5.1f} min)"))
    if args.write:
        with open(args.write, "w") as f:
            f.write(shell(steps, args.budget, args.startup, header))
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
