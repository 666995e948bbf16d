"""What Switchable Normalization costs: a training step (forward + backward) of `SwitchNorm2d`
against `torch.nn.BatchNorm2d` and against a direct transcription of the official formulas.

    python benchmarks/bench_switch_norm.py [--device cuda] [--rounds 3]

Contenders, timed round-robin with `torch.utils.benchmark` (median of each round, then the median of
the rounds): labnorm's `SwitchNorm2d` with `statistics="exact"` and `"official"`, the same layer
under `torch.compile` (default backend; compile time not counted), the official
`SwitchNorm2d.forward` transcribed (unbiased IN variance, `E[x^2] - E[x]^2` for LN and BN, three
weighted sums), and torch's fused `BatchNorm2d`. Goals (issue 6): SN ÷ BatchNorm2d <= 1.8 and
SN ÷ the transcription <= 0.9. Writes `benchmarks/results/switch_norm__<device type>.json`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.utils.benchmark as tb
from torch import nn

from labnorm.results import save_benchmark
from labnorm.switch_norm import SwitchNorm2d

SHAPES = [(64, 64, 32, 32), (64, 128, 16, 16), (64, 256, 8, 8), (2, 256, 8, 8)]


class OfficialFormulas(nn.Module):
    """The official SwitchNorm2d training forward as its code writes it (moving average, Keras momentum)."""

    def __init__(self, c: int, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(1, c, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))
        self.register_buffer("running_mean", torch.zeros(1, c, 1))
        self.register_buffer("running_var", torch.zeros(1, c, 1))

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, c, -1)
        mean_in, var_in = x.mean(-1, keepdim=True), x.var(-1, keepdim=True)
        mean_ln = mean_in.mean(1, keepdim=True)
        temp = var_in + mean_in ** 2
        var_ln = temp.mean(1, keepdim=True) - mean_ln ** 2
        mean_bn = mean_in.mean(0, keepdim=True)
        var_bn = temp.mean(0, keepdim=True) - mean_bn ** 2
        self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean_bn.detach())
        self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var_bn.detach())
        mw, vw = torch.softmax(self.mean_weight, 0), torch.softmax(self.var_weight, 0)
        mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
        var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
        x = (x - mean) / (var + self.eps).sqrt()
        return x.view(n, c, h, w) * self.weight + self.bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.3)
    args = parser.parse_args()
    device = torch.device(args.device)
    t0 = time.perf_counter()
    rows = []
    for shape in SHAPES:
        c = shape[1]
        x = torch.randn(shape, device=device, requires_grad=True)
        layers = {"sn_exact": SwitchNorm2d(c), "sn_official": SwitchNorm2d(c, statistics="official"),
                  "sn_compiled": torch.compile(SwitchNorm2d(c)),
                  "official_transcription": OfficialFormulas(c), "torch_bn": nn.BatchNorm2d(c)}
        fns = {}
        for name, layer in layers.items():
            layer.to(device).train()
            fns[name] = (lambda layer=layer: layer(x).sum().backward())
            fns[name]()  # warm-up
        times = {name: [] for name in layers}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                timer = tb.Timer(stmt="fn()", globals={"fn": fn})
                times[name].append(timer.blocked_autorange(min_run_time=args.min_run_time).median)
        t = {name: statistics.median(v) for name, v in times.items()}
        row = {"shape": list(shape), **{f"{k}_ms": v * 1e3 for k, v in t.items()},
               "sn_over_torch_bn": t["sn_exact"] / t["torch_bn"],
               "sn_compiled_over_torch_bn": t["sn_compiled"] / t["torch_bn"],
               "sn_over_official": t["sn_exact"] / t["official_transcription"],
               "sn_official_over_official": t["sn_official"] / t["official_transcription"]}
        rows.append(row)
        print(f"{str(shape):<18} SN {t['sn_exact'] * 1e3:7.2f} ms; ÷ torch BN {row['sn_over_torch_bn']:.2f}, "
              f"÷ official {row['sn_over_official']:.2f} (official statistics: {row['sn_official_over_official']:.2f}); "
              f"compiled ÷ torch BN {row['sn_compiled_over_torch_bn']:.2f}",
              flush=True)
    save_benchmark("switch_norm", device, time.perf_counter() - t0,
                   what="SwitchNorm2d train fwd+bwd (eager and torch.compile) ÷ torch BatchNorm2d and ÷ a "
                        "transcription of the official formulas, round-robin; goals <= 1.8 and <= 0.9",
                   threads=torch.get_num_threads(), rows=rows)


if __name__ == "__main__":
    main()
