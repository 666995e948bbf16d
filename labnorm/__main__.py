"""Command line: `python -m labnorm list` and `python -m labnorm run NAME --scale cpu --seeds 3`.

`python -m labnorm run NAME --scale gpu --dry-run` builds that scale's real models and data pipeline,
runs 2 training steps and 1 evaluation batch of each arm on the device at hand, and prints the step
times, the projected time of the full run and the peak memory; it saves nothing
(`labnorm.experiments.common.dry_run`; the projection rule is in `labnorm.train.dry`).
"""

from __future__ import annotations

import argparse
import sys

from . import results
from .experiments import experiments, run
from .experiments.common import dry_run, format_dry_run
from .experiments.units import missing_units
from .scale import SCALES, get_scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labnorm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their saved records")
    cmd = sub.add_parser("run", help="run one experiment over seeds and save its record (resumable)")
    cmd.add_argument("name", choices=sorted(experiments()))
    cmd.add_argument("--scale", choices=SCALES, default=None, help="default: $LABNORM_SCALE, else cpu")
    seeds = cmd.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=None, help="run seeds 0..N-1 (default 1); finished seeds are kept")
    seeds.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    cmd.add_argument("--fresh", action="store_true", help="start a new record instead of adding to the saved one")
    cmd.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    cmd.add_argument("--dry-run", action="store_true", help="2 training steps and 1 evaluation batch per arm: print "
                     "step times, the projected full run and peak memory; save nothing")
    cmd.add_argument("--dry-batch", type=int, default=None, metavar="N",
                     help="with --dry-run: at most N images per dry step (time per image is what is projected)")
    args = parser.parse_args(argv)

    if args.command == "list":
        folder = results.results_dir()
        for name, exp in sorted(experiments().items()):
            saved = []
            for scale in SCALES:
                path = results.find_record(name, scale, folder)
                if path is not None:
                    record = results.load_record(path)
                    left = sum(map(len, missing_units(record).values()))
                    saved.append(f"{path.name} (seeds {', '.join(map(str, record['seeds']))}"
                                 + (f"; partial: {left} (unit, seed) runs missing" if left else "") + ")")
            print(f"{name}: {exp.description}")
            print(f"    saved: {'; '.join(saved) if saved else 'none'}")
        return 0
    if args.dry_run:
        print(format_dry_run(dry_run(args.name, get_scale(args.scale), device=args.device, batch=args.dry_batch)))
        return 0
    if args.dry_batch is not None:
        parser.error("--dry-batch needs --dry-run")
    wanted = args.seed if args.seed else (args.seeds or 1)
    record = run(args.name, args.scale, wanted, device=args.device, fresh=args.fresh)
    print(f"saved {record['path']}: seeds {', '.join(map(str, record['seeds']))} "
          f"({record['provenance']['wall_time_s']:.1f} s of runs in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
