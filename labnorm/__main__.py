"""Command line: `python -m labnorm list` and `python -m labnorm run NAME --scale cpu [--seed N]`."""

from __future__ import annotations

import argparse
import sys

from . import results
from .experiments import EXPERIMENTS, run_experiment
from .scale import SCALES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labnorm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their saved results")
    run = sub.add_parser("run", help="run one experiment and save its results JSON")
    run.add_argument("name", choices=sorted(EXPERIMENTS))
    run.add_argument("--scale", choices=SCALES, default=None, help="default: $LABNORM_SCALE, else cpu")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args = parser.parse_args(argv)

    if args.command == "list":
        folder = results.results_dir()
        for name, exp in sorted(EXPERIMENTS.items()):
            saved = sorted(p.name for p in folder.glob(f"{name}__*.json"))
            print(f"{name}: {exp.description}")
            print(f"    saved: {', '.join(saved) if saved else 'none'}")
        return 0
    record = run_experiment(args.name, args.scale, args.seed, device=args.device)
    print(f"saved {record['path']} ({record['provenance']['wall_time_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
