"""Command line: `python -m labnorm list` and `python -m labnorm run NAME --scale cpu --seeds 3`.

`python -m labnorm run NAME --scale gpu --dry-run` builds that scale's real models and data pipeline,
runs 2 training steps and 1 evaluation batch of each arm on the device at hand, and prints the step
times, the projected time of the full run and the peak memory; it saves nothing
(`labnorm.experiments.common.dry_run`; the projection rule is in `labnorm.train.dry`).

Options are checked as the Python API checks its arguments, with the same words
(`labnorm.experiments.runner.check_run`, `labnorm.train.dry.dry_mode`): what `run(...)` refuses,
`python -m labnorm run` refuses before any work. `list` names a damaged record and what is wrong with
it and goes on with the others; `run` leaves a damaged record alone unless `--fresh`, which keeps a
copy. Several `run`s of one experiment may share a results folder: every seed lands in the record.

`torchrun --nproc_per_node=N -m labnorm run NAME ... [--batch-stats per-worker|sync] [--backend gloo|nccl]`
runs it data-parallel on N processes (one per GPU, or CPU processes): `labnorm.distributed`.
"""

from __future__ import annotations

import argparse
import sys

from . import results
from .experiments import experiments, run
from .experiments.common import dry_run, format_dry_run
from .experiments.runner import check_run
from .distributed import BATCH_STATS, launch_from_env
from .experiments.units import missing_units
from .scale import SCALES
from .train.dry import dry_mode


def _list() -> int:
    folder = results.results_dir()
    damaged = 0
    for name, exp in sorted(experiments().items()):
        saved = []
        for scale in SCALES:
            path = results.find_record(name, scale, folder)
            if path is None:
                continue
            try:
                record = results.load_record(path)
            except results.RecordError as e:  # named, and the listing goes on
                damaged += 1
                saved.append(f"{path.name} DAMAGED: {e.problem}")
                continue
            left = sum(map(len, missing_units(record).values()))
            saved.append(f"{path.name} (seeds {', '.join(map(str, record['seeds']))}"
                         + (f"; partial: {left} (unit, seed) runs missing" if left else "") + ")")
        print(f"{name}: {exp.description}")
        print(f"    saved: {'; '.join(saved) if saved else 'none'}")
    if damaged:
        print(f"{damaged} damaged record(s) in {folder}: `run` leaves them as they are; "
              "`run NAME --scale SCALE --fresh` moves one aside (every byte kept) and starts anew", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labnorm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments and their saved records")
    cmd = sub.add_parser("run", help="run one experiment over seeds and save its record (resumable)")
    cmd.add_argument("name", help="the experiment: " + ", ".join(sorted(experiments())))
    cmd.add_argument("--scale", default=None, help=f"{', '.join(SCALES)}; default: $LABNORM_SCALE, else cpu")
    seeds = cmd.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=None, help="run seeds 0..N-1 (default 1); finished seeds are kept")
    seeds.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    cmd.add_argument("--fresh", action="store_true", help="start a new record instead of adding to the saved one "
                     "(a damaged one is kept as <name>.damaged-<time>)")
    cmd.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    cmd.add_argument("--dry-run", action="store_true", help="2 training steps and 1 evaluation batch per arm: print "
                     "step times, the projected full run and peak memory; save nothing")
    cmd.add_argument("--dry-batch", type=int, default=None, metavar="N",
                     help="with --dry-run: at most N images per dry step (time per image is what is projected)")
    cmd.add_argument("--batch-stats", choices=BATCH_STATS, default=None, help="under torchrun (data-parallel): "
                     "each process's batch norms use its own slice of the batch (per-worker, default) or all (sync)")
    cmd.add_argument("--backend", default=None, help="under torchrun: gloo or nccl (default: nccl on GPUs, else gloo)")
    args = parser.parse_args(argv)

    if args.command == "list":
        return _list()
    wanted = args.seed if args.seed is not None else (args.seeds if args.seeds is not None else 1)
    try:  # the API's own checks and words, before any work
        # A torchrun launch: join its process group (labnorm.distributed); rank 0 alone prints and saves
        parallel = launch_from_env(args.batch_stats, args.backend, args.device, experiment=args.name)
        args.device, say = (parallel.device, parallel.rank == 0) if parallel else (args.device, True)
        _, scale, _, _ = check_run(args.name, args.scale, wanted, args.device)
        with dry_mode(None, args.dry_batch):
            pass
    except (TypeError, ValueError, RuntimeError) as e:
        cmd.error(str(e))
    if args.dry_run:
        given = [opt for opt, value in (("--seeds", args.seeds), ("--seed", args.seed), ("--fresh", args.fresh or None))
                 if value is not None]
        if given:
            cmd.error(f"{', '.join(given)}: a dry run runs seed 0 and saves nothing; "
                      f"leave {'them' if len(given) > 1 else 'it'} out")
        result = dry_run(args.name, scale, device=args.device, batch=args.dry_batch)
        if say:
            print(format_dry_run(result))
        return 0
    if args.dry_batch is not None:
        cmd.error("--dry-batch needs --dry-run")
    try:
        record = run(args.name, scale, wanted, device=args.device, fresh=args.fresh)
    except (results.RecordError, results.RecordBusyError) as e:  # named, with what to do; no traceback
        print(f"python -m labnorm run: {e}", file=sys.stderr)
        return 1
    if say:
        print(f"saved {record['path']}: seeds {', '.join(map(str, record['seeds']))} "
              f"({record['provenance']['wall_time_s']:.1f} s of runs in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
