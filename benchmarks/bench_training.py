"""Training throughput (images/s) of every model × norm, as a ratio to the model's BN variant.

    python benchmarks/bench_training.py [--device cuda] [--batch-size 128] [--steps 10]

Each (model, norm) trains `--steps` SGD steps on random CIFAR-shaped batches after
`--warmup` steps, in the same process, one after the other; images/s is batch × steps ÷ time
(synchronized on CUDA, where bf16 autocast and channels_last are used as in `fit`). The ratio
to the BN variant of the same model, measured in the same run, is what to compare across
machines. Writes `benchmarks/results/training__<device type>.json` with provenance.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from labnorm.models import MODELS, build_model
from labnorm.results import save_benchmark

NORMS = ["bn", "gn", "none", "torch-bn", "torch-gn"]


def throughput(name: str, norm: str, device: torch.device, batch: int, steps: int, warmup: int, width: float) -> float:
    torch.manual_seed(0)
    kwargs = {"width": 32 if name == "small_cnn" else width}
    model = build_model(name, norm, **kwargs).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 3, 32, 32, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
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
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--width", type=float, default=1.0, help="channel width of the models (1.0 = published)")
    args = parser.parse_args()
    device = torch.device(args.device)
    t0 = time.perf_counter()
    rows = []
    for name in MODELS:
        ips = {norm: throughput(name, norm, device, args.batch_size, args.steps, args.warmup, args.width) for norm in NORMS}
        for norm in NORMS:
            rows.append({"model": name, "norm": norm, "images_per_s": ips[norm], "ratio_to_bn": ips[norm] / ips["bn"]})
            print(f"{name:<15} {norm:<9} {ips[norm]:9.1f} images/s   ×{ips[norm] / ips['bn']:.2f} of bn")
    out = save_benchmark(
        "training", device, time.perf_counter() - t0,
        what="training images/s (SGD step on random CIFAR-shaped batches); ratio to the BN variant in the same run",
        config={"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "width": args.width,
                "threads": torch.get_num_threads()},
        rows=rows,
    )
    print(f"wrote {out.name}")

if __name__ == "__main__":
    main()
