"""The reconstruction loss of §4, all images as one batch against a loop over single images.

    python benchmarks/bench_reconstruction.py [--device cuda] [--rounds 3]

The CIFAR-10 WN generator of Table 1 (96 channels, codes of 256), freshly initialized (the cost
does not depend on the weights). `labnorm.gan.reconstruction_loss` on 64 images at once against
the same function called on each image alone, for the same number of steps, timed round-robin
(wall clock, the median of the rounds); both give the same losses (tested in tests/test_gan.py).
Goal (issue 7): batched >= 20x faster than the loop on CPU for 64 images. With `--device cuda`
it also times 2000 images x 50 steps (goal <= 2 s). Writes
`benchmarks/results/reconstruction__<device type>.json`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from labnorm.gan import dcgan_generator, reconstruction_loss
from labnorm.results import save_benchmark


def wall(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = torch.device(args.device)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    g = dcgan_generator("wn", 32, 256, 96).to(device)
    images = torch.rand(64, 3, 32, 32, device=device)

    def batched():
        reconstruction_loss(g, images, args.steps)

    def loop():
        for i in range(len(images)):
            reconstruction_loss(g, images[i:i + 1], args.steps)

    batched(), loop()  # warm-up
    times = {"batched": [], "loop": []}
    for _ in range(args.rounds):
        times["batched"].append(wall(batched, device))
        times["loop"].append(wall(loop, device))
    t = {k: statistics.median(v) for k, v in times.items()}
    rows = [{"images": len(images), "steps": args.steps, "batched_s": t["batched"], "loop_s": t["loop"],
             "speedup": t["loop"] / t["batched"]}]
    print(f"64 images x {args.steps} steps: batched {t['batched']:.2f} s, loop {t['loop']:.2f} s, "
          f"speedup {rows[0]['speedup']:.1f}x", flush=True)
    if device.type == "cuda":
        many = torch.rand(2000, 3, 32, 32, device=device)
        reconstruction_loss(g, many[:64], 2)  # warm-up
        s = statistics.median(wall(lambda: reconstruction_loss(g, many, 50), device) for _ in range(args.rounds))
        rows.append({"images": 2000, "steps": 50, "batched_s": s})
        print(f"2000 images x 50 steps: {s:.2f} s", flush=True)
    save_benchmark("reconstruction", device, time.perf_counter() - t0,
                   what="reconstruction_loss batched ÷ a loop over single images (WN DCGAN generator, CIFAR-10 "
                        "size), round-robin; goals >= 20x on CPU for 64 images, <= 2 s for 2000 x 50 on a GPU",
                   threads=torch.get_num_threads(), rows=rows)


if __name__ == "__main__":
    main()
