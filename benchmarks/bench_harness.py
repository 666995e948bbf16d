"""Training images/s of the fast CIFAR-10 harness (`labnorm.train.fast`) against a bare loop of the same net.

    python benchmarks/bench_harness.py [--width 0.5] [--batch-size 1024] [--steps 8] [--rounds 3]

Measured in one process, on `labnorm.models.FastCIFAR` with BN (torch's kernel, as the experiments run it):

- **harness**: `train_fast`'s own loop — batches cut from the device-resident split, random translate,
  alternating flip, the SGD step with its parameter groups and schedule, the lookahead every 5 steps;
- **bare**: forward, backward and SGD step on pre-made batches of the same net, nothing else.

Both in bf16 autocast + channels_last (what the harness runs on a CPU with bf16) and in float32 NCHW,
eager and `torch.compile`d; and the single-thread step of the half-width net at batch 256 with labnorm's
`BatchNorm2d` on torch's kernel against the net built with `torch.nn.BatchNorm2d` directly (a plain port).
Rounds alternate between the variants and the median round is kept. Ratios are from this one run.
Writes `benchmarks/results/harness__<device type>.json` with provenance.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from labnorm.models import build_model
from labnorm.results import save_benchmark
from labnorm.train.fast import FastData, FastRecipe, Lookahead, bf16_supported, norm_shift_parameters
from labnorm.train.kernels import use_torch_kernels


def make(norm: str, width: float, bf16: bool, channels_last: bool, compiled: bool, kernels: bool = True):
    torch.manual_seed(0)
    model = build_model("fast_cifar", norm, width=width)
    if kernels:
        use_torch_kernels(model)
    model.init_whitening(torch.randn(256, 3, 32, 32))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    shifts = {id(p) for p in norm_shift_parameters(model)}
    groups = [dict(params=[p for p in model.parameters() if p.requires_grad and id(p) not in shifts], lr=0.1),
              dict(params=[p for p in model.parameters() if id(p) in shifts], lr=6.4)]
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.85, nesterov=True, weight_decay=1e-3)
    forward = torch.compile(model) if compiled else model
    criterion = nn.CrossEntropyLoss(label_smoothing=0.2)

    def step(x, y):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = forward(x)
        loss = criterion(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model, step


def bare(step, batch: int, steps: int, channels_last: bool):
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(steps)]
    xs = [x.contiguous(memory_format=torch.channels_last) if channels_last else x for x in xs]
    ys = [torch.randint(0, 10, (batch,), generator=g) for _ in range(steps)]

    def run():
        t0 = time.perf_counter()
        for x, y in zip(xs, ys):
            step(x, y)
        return batch * steps / (time.perf_counter() - t0)
    return run


def harness(model, step, images, labels, batch: int, steps: int, channels_last: bool):
    data = FastData(images, labels, batch_size=batch, translate=2, flip="alternate", seed=0,
                    channels_last=channels_last)
    lookahead = Lookahead(model)
    state = {"epoch": 0}

    def run():
        t0, done = time.perf_counter(), 0
        it = data.epoch(state["epoch"])
        state["epoch"] += 1
        for i, (x, y) in zip(range(steps), it):
            step(x, y)
            done += 1
            if (i + 1) % 5 == 0:
                lookahead.update(model, 0.5)
        return batch * done / (time.perf_counter() - t0)
    return run


def median_rounds(runs: dict, rounds: int) -> dict[str, float]:
    for run in runs.values():  # warm-up round (and compilation)
        run()
    seen = {k: [] for k in runs}
    for _ in range(rounds):
        for k, run in runs.items():
            seen[k].append(run())
    return {k: statistics.median(v) for k, v in seen.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled variants")
    args = parser.parse_args()
    t_start = time.perf_counter()
    bf16 = bf16_supported()
    batch, steps = args.batch_size, args.steps
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch * (steps + 1), 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (len(images),), generator=g)
    rows = []
    variants = [("bf16, channels_last", True, True)] if bf16 else []
    variants.append(("float32, NCHW", False, False))
    for label, low, cl in variants:
        for compiled in ([False] if args.no_compile else [False, True]):
            name = f"{label}, {'compiled' if compiled else 'eager'}"
            model, step = make("bn", args.width, low, cl, compiled)
            ips = median_rounds({"harness": harness(model, step, images, labels, batch, steps, cl),
                                 "bare": bare(step, batch, steps, cl)}, args.rounds)
            rows.append({"variant": name, "threads": torch.get_num_threads(), "batch": batch,
                         "harness_images_per_s": round(ips["harness"], 1), "bare_images_per_s": round(ips["bare"], 1),
                         "harness_over_bare": round(ips["harness"] / ips["bare"], 3)})
            print(rows[-1], flush=True)
    # One thread, half width, batch 256: labnorm's BN on torch's kernel vs the net built on torch.nn.BatchNorm2d
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single = {}
    for norm, kernels in (("bn", True), ("torch-bn", False), ("bn", False)):
        _, step = make(norm, 0.5, bf16, bf16, False, kernels=kernels)
        single[f"{norm}{'' if kernels or norm != 'bn' else ' (labnorm code, no torch kernel)'}"] = bare(step, 256, 4, bf16)
    one = median_rounds(single, args.rounds)
    torch.set_num_threads(threads)
    for k, v in one.items():
        rows.append({"variant": f"one thread, width 0.5, batch 256, bare step: {k}", "threads": 1, "batch": 256,
                     "bare_images_per_s": round(v, 1), "over_plain_port": round(v / one["torch-bn"], 3)})
    print(rows[-3:], flush=True)
    path = save_benchmark("harness", torch.device("cpu"), time.perf_counter() - t_start, **{
        "what": "training images/s of FastCIFAR+BN: train_fast's loop (translate, alternating flip, step, lookahead) "
                "vs a bare forward/backward/step loop on pre-made batches; median of rounds alternating between them",
        "width": args.width, "batch_size": batch, "steps_per_round": steps, "rounds": args.rounds,
        "bf16_supported": bf16, "rows": rows,
        "note": "over_plain_port: images/s / the net built on torch.nn.BatchNorm2d directly (torch-bn); 'bn' is "
                "labnorm.BatchNorm2d swapped for torch's kernel (labnorm.train.kernels), as the experiments run it",
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
