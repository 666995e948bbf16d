"""What Weight Standardization costs in a training step, at batch 64 and batch 2 — and what makes it cheap.

    python benchmarks/bench_weight_std.py [--device cuda] [--rounds-64 3] [--rounds-2 30] [--no-compile] [--no-resnet-64]
        [--impls labnorm,labnorm_timm,timm_std]

Standardizing costs O(|W|) against the conv's O(N·H·W·|W|), so the arithmetic limit of the ratio
is about 1.0 even at batch 2; what costs is the extra small operations and the weight-sized
temporaries they allocate. Each row times one SGD step of the same network with its convs swapped
for one implementation of WS, and reports the ratio to the same network with plain convs. All
implementations of a row are timed round-robin in one run (medians), so machine noise hits them
alike:

- `labnorm`: `WSConv2d` (the paper's variant) — with autograd, one batch-norm kernel call over the
  filters, rerun on filters centred on their first entry only when the kernel's mean would round
  badly (`_batch_norm_standardize`); without autograd, `_Standardize`'s forward;
- `labnorm_timm`: `WSConv2d(variant="timm")`, the same with timm's eps;
- `timm_std`: a timm-style `StdConv2d` written here from its formula — one unshifted `F.batch_norm`
  over the filters (eps 1e-6): what labnorm must at least match;
- `closed_form`: the closed-form autograd function `_Standardize` alone (labnorm's previous
  implementation, two weight-sized temporaries per step);
- `formula`: the same standardization written with autograd's ops (`var_mean`, subtract, divide:
  labnorm's first implementation);
- `compiled`: that formula under `torch.compile` (the standardization only; the conv stays eager);
- `post`: the seed post's code (the WS repository's README: mean of mean of mean, unbiased std
  + 1e-5, `expand_as`).

Networks: a CIFAR ResNet-18 with BN and with GN (WS+BN ÷ BN, WS+GN ÷ GN; at batch 64 the BN one
only, with the main contenders, to keep a run near three minutes on 2 CPU threads), and a stack of
three 64→64 3×3 convs at 16×16. A last table times eval forwards at batch 2 (no cache: $\hat W$
is recomputed every forward). Writes `benchmarks/results/weight_std__<device type>.json`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

from labnorm.models import build_model
from labnorm.results import save_benchmark
from labnorm.weight_std import WSConv2d, _Standardize


class PostWSConv2d(nn.Conv2d):
    """The seed post's WS conv (the WS repository README's formula), for comparison only."""

    def forward(self, x):
        weight = self.weight
        mean = weight.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        weight = weight - mean
        std = weight.view(weight.size(0), -1).std(dim=1).view(-1, 1, 1, 1) + 1e-5
        weight = weight / std.expand_as(weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _formula(w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    # The paper's WS with autograd's ops, as labnorm first wrote it
    rows = w.reshape(w.shape[0], -1)
    var, mean = torch.var_mean(rows, dim=1, keepdim=True, correction=0)
    return ((rows - mean) / torch.sqrt(var + eps)).reshape(w.shape)


torch._dynamo.config.recompile_limit = 64  # one graph per weight shape (ResNet-18 has 12)
_compiled_formula = torch.compile(_formula, dynamic=False)


class TimmStyleStdConv2d(nn.Conv2d):
    """timm's `StdConv2d` formula, written here: each filter standardized by one `F.batch_norm`
    call (biased variance, eps 1e-6 inside the root), no shift."""

    def forward(self, x):
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0,
                         eps=1e-6).reshape_as(self.weight)
        return self._conv_forward(x, w, self.bias)


class TimmVariantWSConv2d(WSConv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, variant="timm", **kwargs)


class ClosedFormWSConv2d(nn.Conv2d):
    """labnorm's previous WSConv2d: the closed-form autograd function on every call."""

    def forward(self, x):
        rows = self.weight.reshape(self.out_channels, -1)
        return self._conv_forward(x, _Standardize.apply(rows, 1e-5, False, True).reshape_as(self.weight), self.bias)


class FormulaWSConv2d(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, _formula(self.weight), self.bias)


class CompiledWSConv2d(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, _compiled_formula(self.weight), self.bias)


IMPLEMENTATIONS = {"plain": nn.Conv2d, "labnorm": WSConv2d, "labnorm_timm": TimmVariantWSConv2d,
                   "timm_std": TimmStyleStdConv2d, "closed_form": ClosedFormWSConv2d, "formula": FormulaWSConv2d,
                   "compiled": CompiledWSConv2d, "post": PostWSConv2d}


def swap_convs(model: nn.Module, cls: type) -> nn.Module:
    """Every `nn.Conv2d` of `model` replaced by `cls` with the same arguments and weights."""
    for name, child in model.named_children():
        if type(child) is nn.Conv2d and cls is not nn.Conv2d:
            new = cls(child.in_channels, child.out_channels, child.kernel_size, stride=child.stride,
                      padding=child.padding, dilation=child.dilation, groups=child.groups,
                      bias=child.bias is not None).to(child.weight.device)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            swap_convs(child, cls)
    return model


def conv_stack() -> nn.Module:
    return nn.Sequential(*(nn.Conv2d(64, 64, 3, padding=1, bias=False) for _ in range(3)))


def time_round_robin(models: dict[str, nn.Module], x: torch.Tensor, rounds: int, train: bool) -> dict[str, float]:
    """Median seconds of one step per model, the models taking turns every round."""
    device = x.device
    y = torch.randint(0, 10, (x.shape[0],), device=device)
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for k, m in models.items()}

    def step(name):
        m = models[name]
        if not train:
            with torch.no_grad():
                return m(x)
        opts[name].zero_grad(set_to_none=True)
        out = m(x)
        loss = F.cross_entropy(out, y) if out.ndim == 2 else out.square().mean()
        loss.backward()
        opts[name].step()

    times = {k: [] for k in models}
    for name in models:  # warm-up (and compilation)
        step(name)
        step(name)
    for _ in range(rounds):
        for name in models:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            step(name)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(net: str, batch: int, rounds: int, device: torch.device, impls: list[str], train: bool = True) -> dict:
    models = {}
    for impl in impls:
        torch.manual_seed(0)
        base = conv_stack() if net == "conv stack" else build_model("resnet18", net.split()[-1])
        models[impl] = swap_convs(base, IMPLEMENTATIONS[impl]).to(device).train(train)
    shape = (batch, 64, 16, 16) if net == "conv stack" else (batch, 3, 32, 32)
    x = torch.randn(shape, device=device)
    t = time_round_robin(models, x, rounds, train)
    row = {"net": net, "batch": batch, "mode": "train step" if train else "eval forward",
           "plain_ms": 1e3 * t["plain"]}
    row.update({f"{k}_ratio": t[k] / t["plain"] for k in impls if k != "plain"})
    print(f"{net:>14} batch {batch:>2} {row['mode']:>12}: plain {row['plain_ms']:8.1f} ms; ÷ plain: "
          + ", ".join(f"{k} {row[f'{k}_ratio']:.3f}" for k in impls if k != "plain"), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds-64", type=int, default=3)
    parser.add_argument("--rounds-2", type=int, default=30)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile contender")
    parser.add_argument("--impls", default=None, help="comma-separated contenders to time (default: all)")
    parser.add_argument("--no-resnet-64", action="store_true",
                        help="skip the ResNet-18 row at batch 64 (seconds per step on a busy CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    impls = [k for k in IMPLEMENTATIONS if not (args.no_compile and k == "compiled")
             and (args.impls is None or k == "plain" or k in args.impls.split(","))]
    t0 = time.perf_counter()
    rows = []
    # Batch 64 (a ResNet-18 step takes seconds on CPU): the BN network and the contenders that matter
    core = [k for k in ("plain", "labnorm", "labnorm_timm", "timm_std", "closed_form") if k in impls]
    rows.append(measure("conv stack", 64, 4 * args.rounds_64, device, impls))
    if not args.no_resnet_64:
        rows.append(measure("resnet18 bn", 64, args.rounds_64, device, core))
    for net in ("conv stack", "resnet18 bn", "resnet18 gn"):
        rows.append(measure(net, 2, args.rounds_2 * (4 if net == "conv stack" else 1), device, impls))
    rows.append(measure("resnet18 bn", 2, args.rounds_2, device,
                        [k for k in ("plain", "labnorm", "timm_std", "closed_form", "formula") if k in impls],
                        train=False))
    save_benchmark("weight_std", device, time.perf_counter() - t0,
                   what="SGD step with WS convs ÷ the same net with plain convs (the BN/GN ResNet-18: "
                        "WS+BN ÷ BN, WS+GN ÷ GN), implementations timed round-robin in one run; "
                        "goals for labnorm on ResNet-18: <= 1.05 at batch 64, <= 1.10 at batch 2; "
                        "labnorm_timm <= timm_std (timm's StdConv2d formula)",
                   threads=torch.get_num_threads(), args=vars(args), rows=rows)


if __name__ == "__main__":
    main()
