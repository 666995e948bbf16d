"""Speed of the normalization zoo: every layer's training step against torch's BatchNorm2d and
against the fastest public implementation of the same formula, in one run.

    python benchmarks/bench_zoo.py [--device cuda] [--rounds 3] [--no-compile] [--only LayerNorm2d,InstanceNorm2d]

For each layer in `LAYERS` and each batch size (128 and 2, CIFAR-sized maps of 64 channels at
32×32), times forward + backward in training mode of

- `torch_bn`: `torch.nn.BatchNorm2d` on the same number of values (the denominator of every ratio),
- `labnorm`: labnorm's layer, eager,
- `labnorm_compiled`: the same layer under `torch.compile` (inductor; compiled once per shape),
- `public`: the fastest public implementation of the same formula, eager, where one exists
  (torch's own layer, or the permute-and-`F.layer_norm` of timm's `LayerNorm2d`, or the
  authors' code written out),

round-robin: each contender runs a slice of steps in turn, `--rounds` times, and the median
slice is kept, so a load change on the machine hits every contender alike. Layers that
normalize the last dim (`LayerNorm`, `RMSNorm`) get the same values as a channels-last
$[N, H, W, C]$ tensor. Writes `benchmarks/results/zoo__<device type>.json`.

Adding a layer is one line in `LAYERS`: its builder from the channel count, and, if a public
implementation of its formula exists, that builder under `public=`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

import labnorm
from labnorm.results import save_benchmark

CHANNELS, SIZE = 64, 32
BATCHES = [128, 2]


class PermutedLayerNorm(nn.Module):
    """timm's `LayerNorm2d` formula: permute to channels-last, `F.layer_norm`, permute back."""

    def __init__(self, c: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(c, eps=eps)

    def forward(self, x):
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PermutedRMSNorm(nn.Module):
    """`torch.nn.RMSNorm` over the channels of an NCHW map, by permuting."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.rms = nn.RMSNorm(c)

    def forward(self, x):
        return self.rms(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class BatchNormLoop(nn.Module):
    """Ghost BN as the common ports write it: one `torch.nn.BatchNorm2d` over each virtual batch."""

    def __init__(self, c: int, v: int = 32) -> None:
        super().__init__()
        self.bn, self.v = nn.BatchNorm2d(c), v

    def forward(self, x):
        return torch.cat([self.bn(chunk) for chunk in x.split(self.v)])


class DyTAuthors(nn.Module):
    """Dynamic Tanh as the authors' code computes it: tanh, then multiply and add."""

    def __init__(self, c: int, alpha_init: float = 0.5) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((1,), alpha_init))
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return torch.tanh(self.alpha * x) * self.weight[:, None, None] + self.bias[:, None, None]


class DerfAuthors(nn.Module):
    """Dynamic erf as the authors' code computes it: erf of alpha x + s, then multiply and add."""

    def __init__(self, c: int, alpha_init: float = 0.5) -> None:
        super().__init__()
        self.alpha, self.shift = nn.Parameter(torch.full((1,), alpha_init)), nn.Parameter(torch.zeros(1))
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return torch.erf(self.alpha * x + self.shift) * self.weight[:, None, None] + self.bias[:, None, None]


class GRNTimm(nn.Module):
    """ConvNeXt V2's GRN as timm writes it for NCHW: L2 norm over H, W, divided by its channel mean, addcmul."""

    def __init__(self, c: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.zeros(1, c, 1, 1)), nn.Parameter(torch.zeros(1, c, 1, 1))
        self.eps = eps

    def forward(self, x):
        g = x.norm(p=2, dim=(2, 3), keepdim=True)
        n = g / (g.mean(dim=1, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias, self.weight, x * n)


class QKPair(nn.Module):
    """A query-key norm timed on one tensor: the two norms on x (as q and as k), their outputs summed."""

    def __init__(self, c: int, build: Callable[[int], nn.Module] | None = None, norm: str = "rms") -> None:
        super().__init__()
        self.qk = labnorm.QKNorm(c, norm) if build is None else None
        self.q, self.k = (build(c), build(c)) if build is not None else (None, None)

    def forward(self, x):
        q, k = self.qk(x, x) if self.qk is not None else (self.q(x), self.k(x))
        return q + k


@dataclass
class Case:
    build: Callable[[int], nn.Module]
    # "nchw": [N, C, H, W]; "nhwc": the same values as [N, H, W, C] (layers over the last dim)
    layout: str = "nchw"
    public: dict[str, Callable[[int], nn.Module]] = field(default_factory=dict)


LAYERS: dict[str, Case] = {
    "LayerNorm": Case(lambda c: labnorm.LayerNorm(c), "nhwc", {"torch.nn.LayerNorm": nn.LayerNorm}),
    "LayerNorm2d": Case(lambda c: labnorm.LayerNorm2d(c), "nchw", {"permute+F.layer_norm (timm)": PermutedLayerNorm}),
    "RMSNorm": Case(lambda c: labnorm.RMSNorm(c), "nhwc", {"torch.nn.RMSNorm": nn.RMSNorm}),
    "RMSNorm2d": Case(lambda c: labnorm.RMSNorm2d(c), "nchw", {"permute+torch.nn.RMSNorm": PermutedRMSNorm}),
    "InstanceNorm2d": Case(lambda c: labnorm.InstanceNorm2d(c, affine=True), "nchw",
                           {"torch.nn.InstanceNorm2d": lambda c: nn.InstanceNorm2d(c, affine=True)}),
    "GhostBatchNorm2d(32)": Case(lambda c: labnorm.GhostBatchNorm2d(c, 32), "nchw",
                                 {"loop of torch BN": BatchNormLoop}),
    "DynamicTanh": Case(lambda c: labnorm.DynamicTanh(c), "nchw", {"authors' formula": DyTAuthors}),
    "DynamicErf": Case(lambda c: labnorm.DynamicErf(c), "nchw", {"authors' formula": DerfAuthors}),
    "GlobalResponseNorm2d": Case(lambda c: labnorm.GlobalResponseNorm2d(c), "nchw", {"timm's formula": GRNTimm}),
    "RMSNorm(zero_centered)": Case(lambda c: labnorm.RMSNorm(c, zero_centered=True), "nhwc",
                                   {"torch.nn.RMSNorm": nn.RMSNorm}),
    # [N, 32, 32, 64] read as queries and keys [B, H, T, d] with d = 64
    "QKNorm(rms)": Case(QKPair, "nhwc", {"two torch.nn.RMSNorm": lambda c: QKPair(c, nn.RMSNorm)}),
    "FilterResponseNorm2d+TLU": Case(lambda c: nn.Sequential(labnorm.FilterResponseNorm2d(c), labnorm.TLU(c))),
    "EvoNorm2dB0": Case(lambda c: labnorm.EvoNorm2dB0(c)),
    "EvoNorm2dS0(32)": Case(lambda c: labnorm.EvoNorm2dS0(c, groups=32)),
    "BatchRenorm2d": Case(lambda c: labnorm.BatchRenorm2d(c)),
}


def _step(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> Callable[[], None]:
    def step():
        x.grad = None
        layer(x).backward(g)

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def round_robin(fns: dict[str, Callable[[], None]], device, rounds: int, slice_s: float) -> dict[str, float]:
    """Median seconds per call of each function, timed in turns."""
    per_slice = {}
    for name, fn in fns.items():
        fn(), fn()  # warm-up (and compilation)
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        per_slice[name] = max(1, int(slice_s / max(time.perf_counter() - t0, 1e-6)))
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(per_slice[name]):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / per_slice[name])
    return {name: statistics.median(t) for name, t in times.items()}


def measure(device, names, rounds, slice_s, compile_) -> list[dict]:
    rows = []
    for name in names:
        case = LAYERS[name]
        for n in BATCHES:
            torch.manual_seed(0)
            x_nchw = torch.randn(n, CHANNELS, SIZE, SIZE, device=device)
            x = x_nchw.permute(0, 2, 3, 1).contiguous() if case.layout == "nhwc" else x_nchw.clone()
            x_nchw.requires_grad_(), x.requires_grad_()
            g_nchw, g = torch.randn_like(x_nchw), torch.randn_like(x)
            ours = case.build(CHANNELS).to(device)
            fns = {"torch_bn": _step(nn.BatchNorm2d(CHANNELS).to(device), x_nchw, g_nchw), "labnorm": _step(ours, x, g)}
            if compile_:
                compiled = torch.compile(copy.deepcopy(ours), dynamic=False)
                fns["labnorm_compiled"] = _step(compiled, x, g)
            for who, build in case.public.items():
                fns["public"] = _step(build(CHANNELS).to(device), x, g)
                public_name = who
            t0 = time.perf_counter()
            times = round_robin(fns, device, rounds, slice_s)
            row = {"layer": name, "batch": n, "shape": list(x.shape)}
            row.update({f"{who}_ms": t * 1e3 for who, t in times.items()})
            row["labnorm_over_bn"] = times["labnorm"] / times["torch_bn"]
            if "labnorm_compiled" in times:
                row["compiled_over_bn"] = times["labnorm_compiled"] / times["torch_bn"]
            if "public" in times:
                row["public"] = public_name
                row["public_over_bn"] = times["public"] / times["torch_bn"]
                row["labnorm_over_public"] = times["labnorm"] / times["public"]
            rows.append(row)
            cells = "  ".join(f"{k} {v:.2f}" for k, v in row.items() if k.endswith(("_bn", "_public")))
            print(f"{name:<22} N={n:<4} {cells}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slice", type=float, default=0.1, help="seconds per contender per round")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--only", default=None, help="comma-separated layer names (default: all)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.only.split(",") if args.only else list(LAYERS)
    t0 = time.perf_counter()
    rows = measure(device, names, args.rounds, args.slice, not args.no_compile)
    if args.no_save:
        return
    out = save_benchmark(
        "zoo", device, time.perf_counter() - t0,
        what="train forward+backward of each layer on [N, 64, 32, 32] values, median of round-robin slices "
             "in one process: labnorm eager, labnorm under torch.compile (inductor), the fastest public "
             "implementation of the same formula; ratios to torch.nn.BatchNorm2d (x_over_bn) and labnorm / public",
        threads=torch.get_num_threads(), rounds=args.rounds, rows=rows,
    )
    print(f"wrote {out.name}")


if __name__ == "__main__":
    main()
