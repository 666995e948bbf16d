"""What Weight Standardization costs in a ResNet-18 training step, at batch 64 and batch 2.

    python benchmarks/bench_weight_std.py [--device cuda] [--steps-64 3] [--steps-2 20]

Ratios measured in one run: WS+BN ÷ BN and WS+GN ÷ GN, for labnorm's `WSConv2d` and for the
seed post's implementation (the WS repository's README: mean of mean of mean, unbiased std
+ 1e-5, expand_as), each a full SGD step of a CIFAR ResNet-18 on random 32×32 batches.
Standardizing costs O(|W|) against the conv's O(N·H·W·|W|), so the arithmetic limit of the
ratio is about 1.0 even at batch 2; what remains is the cost of the extra small operations.
Writes `benchmarks/results/weight_std__<device type>.json` with provenance.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.nn import functional as F

from labnorm.models import build_model
from labnorm.norms import _bn, _gn, register_conv, register_norm
from labnorm.results import save_benchmark


class PostWSConv2d(nn.Conv2d):
    """The seed post's WS conv (the WS repository README's formula), for comparison only."""

    def forward(self, x):
        weight = self.weight
        mean = weight.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        weight = weight - mean
        std = weight.view(weight.size(0), -1).std(dim=1).view(-1, 1, 1, 1) + 1e-5
        weight = weight / std.expand_as(weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


# Benchmark-only norms: the post's conv before BN / GN
register_norm("post-ws+bn")(_bn)
register_norm("post-ws+gn")(_gn)
register_conv("post-ws+bn")(register_conv("post-ws+gn")(
    lambda c_in, c_out, k, stride=1, padding=0, bias=False: PostWSConv2d(c_in, c_out, k, stride=stride,
                                                                         padding=padding, bias=bias)))


def step_seconds(norm: str, batch: int, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = build_model("resnet18", norm).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]  # median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps-64", type=int, default=3)
    parser.add_argument("--steps-2", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    t0 = time.perf_counter()
    rows = []
    for batch, steps in ((64, args.steps_64), (2, args.steps_2)):
        for base in ("bn", "gn"):
            t = {n: step_seconds(n, batch, steps, device) for n in (base, f"ws+{base}", f"post-ws+{base}")}
            row = {"batch": batch, "base": base, **{f"{k}_s": v for k, v in t.items()},
                   "ratio_labnorm_ws": t[f"ws+{base}"] / t[base], "ratio_post_ws": t[f"post-ws+{base}"] / t[base]}
            rows.append(row)
            print(f"batch {batch:>2} {base}: {t[base] * 1e3:8.1f} ms/step; WS+{base} ÷ {base}: labnorm "
                  f"{row['ratio_labnorm_ws']:.3f}, post {row['ratio_post_ws']:.3f}")
    out = save_benchmark("weight_std", device, time.perf_counter() - t0,
                         what="ResNet-18 SGD step with WS convs / without, labnorm's WSConv2d and the post's; "
                              "goals <= 1.05 at batch 64, <= 1.10 at batch 2",
                         threads=torch.get_num_threads(), rows=rows)
    print(f"wrote {out.name}")


if __name__ == "__main__":
    main()
