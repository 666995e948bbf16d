"""Training throughput (images/s) of the experiment models: the harness before and after its fast path.

    python benchmarks/bench_training.py [--device cuda] [--batch-size 128] [--steps 5] [--rounds 3]

For every experiment model at its cpu-scale width and each of `--norms`, one SGD step on random
CIFAR-shaped batches is timed two ways, in the same process:

- **before**: labnorm's own layers, NCHW — the experiments' path until the fast path landed;
- **after**: the experiments' path now (`labnorm.experiments.common.train_run`): the labnorm layers
  proven equal to a torch layer run torch's kernel (`labnorm.train.kernels.use_torch_kernels`), in the
  memory format `prefer_channels_last` picks.

The two are measured alternately, `--rounds` times each (`--steps` timed steps after `--warmup`), and
the median of the rounds is kept, so a slow spell of a shared machine hits both alike. The speed-up is
after ÷ before; `ratio_to_bn` is each norm's "after" images/s ÷ the model's BN "after" images/s.
Writes `benchmarks/results/training__<device type>.json` with provenance.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from labnorm.models import build_model
from labnorm.results import save_benchmark
from labnorm.train.kernels import describe_norms, prefer_channels_last, use_torch_kernels

# The experiment models at their cpu-scale widths (labnorm/experiments/*.py)
MODELS = {"resnet18": 0.25, "vgg16": 0.25, "switchnorm_cnn": 0.25, "fast_resnet": 0.5, "small_cnn": 32}


def make_step(name: str, width: float, norm: str, fast: bool, device: torch.device, batch: int):
    torch.manual_seed(0)
    model = build_model(name, norm, width=width).to(device)
    channels_last = False
    if fast:
        use_torch_kernels(model)
        channels_last = prefer_channels_last(model, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, {**describe_norms(model), "channels_last": channels_last}


def images_per_s(step, device: torch.device, batch: int, steps: int) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--norms", nargs="+", default=["bn", "gn"])
    args = parser.parse_args()
    device = torch.device(args.device)
    t0 = time.perf_counter()
    rows = []
    for name, width in MODELS.items():
        after_bn = None
        for norm in args.norms:
            steps, ips = {}, {"before": [], "after": []}
            for path in ("before", "after"):
                steps[path] = make_step(name, width, norm, path == "after", device, args.batch_size)
                for _ in range(args.warmup):
                    steps[path][0]()
            for _ in range(args.rounds):
                for path in ("before", "after"):
                    ips[path].append(images_per_s(steps[path][0], device, args.batch_size, args.steps))
            before, after = statistics.median(ips["before"]), statistics.median(ips["after"])
            after_bn = after if norm == "bn" else after_bn
            rows.append({"model": name, "width": width, "norm": norm, "before_images_per_s": before,
                         "after_images_per_s": after, "speedup": after / before,
                         "ratio_to_bn": after / after_bn if after_bn else None,
                         "before": steps["before"][1], "after": steps["after"][1]})
            print(f"{name:<15} {norm:<4} before {before:7.1f}  after {after:7.1f} images/s   x{after / before:.2f}"
                  f"   ({', '.join(steps['after'][1]['classes'])}{', channels_last' if steps['after'][1]['channels_last'] else ''})",
                  flush=True)
    speedups = {norm: statistics.geometric_mean([r["speedup"] for r in rows if r["norm"] == norm]) for norm in args.norms}
    for norm, s in speedups.items():
        print(f"geometric mean speed-up over the models, {norm}: x{s:.2f}")
    out = save_benchmark(
        "training", device, time.perf_counter() - t0,
        what="training images/s of the experiment models (SGD step on random CIFAR-shaped batches): "
             "before = labnorm's layers, NCHW; after = the experiments' fast path (torch kernels for the layers "
             "proven equal, channels_last where prefer_channels_last picks it); medians of alternating rounds",
        config={"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
                "models": MODELS, "norms": args.norms, "threads": torch.get_num_threads()},
        rows=rows, geometric_mean_speedup=speedups,
    )
    print(f"wrote {out.name}")


if __name__ == "__main__":
    main()
