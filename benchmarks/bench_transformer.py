"""Speed at the tiny GPT's shapes: each sequence norm against torch's LayerNorm, and tokens/s of the model per arm.

    python benchmarks/bench_transformer.py [--device cuda] [--rounds 3] [--no-compile] [--scale cpu]

Two tables, both timed round-robin in one process (`bench_zoo.round_robin`: each contender runs a slice
of steps in turn, `--rounds` times, the median slice kept, so a load change hits every contender alike):

1. **Layers** on the residual stream of `transformer_norms`' model at `--scale` ($[B, T, C]$, the norm over
   $C$; QK-norm on the queries and keys $[B, H, T, C/H]$): forward + backward in training mode of labnorm's
   layer, eager and under `torch.compile`, of torch's nearest kernel where one exists, and of
   `torch.nn.LayerNorm` on the same values — the denominator of every `_over_ln` ratio.
2. **Tokens/s** of `TinyGPT` at that scale's sizes for every arm of `transformer_norms` (placement, norm,
   QK-norm; warm-up changes nothing per step): one AdamW training step on `batch_size` windows of
   `context` characters, eager, and the ratio to Pre-LN with LayerNorm.

Writes `benchmarks/results/transformer__<device type>.json`.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from bench_zoo import QKPair, _step, round_robin
from torch import nn

import labnorm
from labnorm.experiments.transformer_norms import CONFIGS, parse
from labnorm.models import build_model
from labnorm.results import save_benchmark

# name -> (labnorm's layer from C, torch's nearest kernel from C or None, "stream" or "heads")
LAYERS = {
    "LayerNorm": (lambda c: labnorm.LayerNorm(c), nn.LayerNorm, "stream"),
    "RMSNorm": (lambda c: labnorm.RMSNorm(c), nn.RMSNorm, "stream"),
    "RMSNorm(zero_centered)": (lambda c: labnorm.RMSNorm(c, zero_centered=True), nn.RMSNorm, "stream"),
    "DynamicTanh": (lambda c: labnorm.DynamicTanh(c, channels_last=True), None, "stream"),
    "DynamicErf": (lambda c: labnorm.DynamicErf(c, channels_last=True), None, "stream"),
    "QKNorm(rms)": (QKPair, lambda c: QKPair(c, nn.RMSNorm), "heads"),
    "QKNorm(ln)": (lambda c: QKPair(c, norm="ln"), lambda c: QKPair(c, nn.LayerNorm), "heads"),
}


def layers(config, device, rounds: int, slice_s: float, compile_: bool) -> list[dict]:
    b, t, c, h = config.batch_size, config.context, config.dim, config.num_heads
    rows = []
    for name, (ours, nearest, where) in LAYERS.items():
        torch.manual_seed(0)
        shape = (b, t, c) if where == "stream" else (b, h, t, c // h)
        x = torch.randn(*shape, device=device, requires_grad=True)
        g = torch.randn_like(x)
        width = shape[-1]
        layer = ours(width).to(device)
        fns = {"torch_ln": _step(nn.LayerNorm(width).to(device), x, g), "labnorm": _step(layer, x, g)}
        if compile_:
            fns["labnorm_compiled"] = _step(torch.compile(copy.deepcopy(layer), dynamic=False), x, g)
        if nearest is not None:
            fns["nearest"] = _step(nearest(width).to(device), x, g)
        times = round_robin(fns, device, rounds, slice_s)
        row = {"layer": name, "shape": list(shape), **{f"{k}_ms": v * 1e3 for k, v in times.items()}}
        row.update({f"{k}_over_ln": v / times["torch_ln"] for k, v in times.items() if k != "torch_ln"})
        rows.append(row)
        print(f"{name:<24} {shape}  " + "  ".join(f"{k} {v:.2f}" for k, v in row.items() if k.endswith("_over_ln")),
              flush=True)
    return rows


def tokens_per_s(config, device, rounds: int, slice_s: float) -> list[dict]:
    arms = [u for u in config.arms if parse(u)["warmup"]]
    fns, tokens = {}, config.batch_size * config.context
    for arm in arms:
        a = parse(arm)
        torch.manual_seed(0)
        model = build_model("tiny_gpt", norm=a["norm"], placement=a["placement"],
                            qk_norm=config.qk_norm if a["qk"] else None, context=config.context, dim=config.dim,
                            num_layers=config.num_layers, num_heads=config.num_heads).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randint(0, 65, (config.batch_size, config.context + 1), device=device)

        def step(model=model, opt=opt, x=x):
            loss = nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        fns[arm] = step
    times = round_robin(fns, device, rounds, slice_s)
    rows = [{"arm": arm, "step_ms": times[arm] * 1e3, "tokens_per_s": tokens / times[arm],
             "over_pre_ln": times[arm] / times["pre-ln"]} for arm in arms]
    for r in rows:
        print(f"{r['arm']:<24} {r['tokens_per_s']:>9,.0f} tokens/s  step x{r['over_pre_ln']:.2f} of pre-ln", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--scale", default="cpu", choices=sorted(CONFIGS), help="transformer_norms' sizes to use")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slice", type=float, default=0.2, help="seconds per contender per round")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile column")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, config = torch.device(args.device), CONFIGS[args.scale]
    t0 = time.perf_counter()
    layer_rows = layers(config, device, args.rounds, args.slice, not args.no_compile)
    model_rows = tokens_per_s(config, device, args.rounds, args.slice)
    if args.no_save:
        return
    out = save_benchmark(
        "transformer", device, time.perf_counter() - t0,
        what=f"transformer_norms' {args.scale} sizes: train forward+backward of each sequence norm on [B, T, C] "
             "(QK-norm on [B, H, T, d]) against torch.nn.LayerNorm, eager and compiled; tokens/s of one AdamW step "
             "of TinyGPT per arm, against Pre-LN with LayerNorm; medians of round-robin slices in one process",
        threads=torch.get_num_threads(), rounds=args.rounds, scale=args.scale, rows=layer_rows, models=model_rows,
    )
    print(f"wrote {out.name}")


if __name__ == "__main__":
    main()
