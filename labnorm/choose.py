r"""Which normalization should I use? The facts behind the site's guide (`docs/choose.md`) and notebook 10.

Nothing here is typed by hand from a result: every fact is read from a layer or from a saved record.

- **What a norm computes** (`anatomy`, `anatomies`): each name of the `norm=` registry (`labnorm.norms`) is
  built and *probed*. On a random $[N, C, H, W]$ map in float64, in training mode, one value
  $x_{0,0,0,0}$ is moved; the outputs that move with it name the values that share its statistics —
  other samples ($N$: the norm needs a batch), all other channels ($C$) or only those of its group
  ($C/G$), other positions ($H{\cdot}W$). A layer whose buffers change in a training step keeps a
  running average for evaluation. The registry says which norms fuse their activation and which live in
  the conv (Weight Standardization, weight norm); a layer with a `norm_batch` attribute takes its
  statistics per worker (`labnorm.set_norm_batch`).
- **What a grand comparison shows** (`grid`): a record of `norm_zoo_cifar` or `norm_zoo_small_cnn` as one
  `Cell` per (norm, batch column): the test accuracy over seeds, its paired difference from the
  baseline (BN) over the same seeds (`labnorm.stats.paired_difference`), and the step time ÷ BN. The
  columns are the record's own `batch_sizes`, so a record with other columns needs no change here.
- **Whether a record can decide** (`standing`): the experiment's own rule from its claims module
  (`TRAINED`, or `LEARNED` for a language model; `labnorm.experiments.claims`, rule 4): a CIFAR-10
  baseline under 85% test accuracy is early in training, and no comparison on it decides which norm is
  better.
- **What "batch 2" means in a record** (`batch_meaning`): true small-batch SGD (statistics *and* gradient
  from the same $b$ images) or a per-worker batch (statistics from $b$ images, the gradient from the
  whole optimizer batch, as on one of many data-parallel workers).
- **What a layer costs** (`layer_costs`): the per-layer benchmark (`benchmarks/bench_zoo.py`'s record),
  train forward + backward ÷ torch's `BatchNorm2d`, eager and compiled, matched to a norm by its class.
"""

from __future__ import annotations

import copy
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from .experiments.runner import values
from .stats import Summary, paired_difference, summarize

__all__ = ["Anatomy", "anatomy", "anatomies", "Cell", "grid", "columns", "column_label", "batch_meaning", "standing",
           "trained", "family", "layer_costs", "benchmark", "PER_WORKER", "WHOLE_BATCH", "NO_BATCH"]

# How a norm meets the batch (the `batch` field of `Anatomy`)
PER_WORKER = "per worker (`norm_batch`)"
WHOLE_BATCH = "the batch it is given"
NO_BATCH = "none"


@dataclass(frozen=True)
class Anatomy:
    """What the norm `name` of the registry computes, as probed from its layer."""

    name: str
    layer: str  # the class, e.g. "BatchNorm2d", "FilterResponseNorm2d+TLU"
    over: tuple[str, ...]  # the values sharing a statistic with a given value: "N", "C" or "C/G", "H·W"
    running: str  # "" | "running average" | "batch average after training"
    fuses_activation: bool
    in_conv: str  # "" | "Weight Standardization" | "weight normalization"
    batch: str  # PER_WORKER | WHOLE_BATCH | a note (Ghost BN's virtual batches) | NO_BATCH

    @property
    def needs_batch(self) -> bool:
        return "N" in self.over

    @property
    def over_text(self) -> str:
        return ", ".join(self.over) if self.over else "— (no statistics)"


def _class_key(layer: torch.nn.Module) -> str:
    if isinstance(layer, torch.nn.Sequential):
        return "+".join(type(m).__name__ for m in layer)
    return type(layer).__name__


def anatomy(name: str, channels: int = 64, batch: int = 4, size: int = 4) -> Anatomy:
    """Probe the registered norm `name` (see the module doc) on a random [batch, channels, size, size] map."""
    from .norms import make_conv, make_norm, norm_fuses_activation
    from .weight_std import WSConv2d

    torch.manual_seed(0)
    layer = make_norm(name, channels).double().train()
    with torch.no_grad():  # away from the identity init (GRN starts as the identity), so every path shows
        for p in layer.parameters():
            p.copy_(1 + 0.3 * torch.randn_like(p))
    start = copy.deepcopy(layer.state_dict())
    x = torch.randn(batch, channels, size, size, dtype=torch.float64)
    upstream = torch.randn_like(x)  # one fixed gradient from above, for the backward pass

    def passes(inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layer.load_state_dict(start)  # the same running statistics for every pass
        inp = inp.clone().requires_grad_(True)
        out = layer(inp)
        (grad,) = torch.autograd.grad(out, inp, upstream)
        return out.detach(), grad

    y, g = passes(x)
    stepped = {k for k, v in layer.state_dict().items() if not torch.equal(v, start[k])}
    moved = x.clone()
    moved[0, 0, 0, 0] += 1.0
    y2, g2 = passes(moved)
    # A value shares statistics with the values whose output or input gradient moves with it (Batch Renorm's
    # forward pass equals its running statistics' until r or d clips; its batch statistics show in the backward)
    changed = ((y2 - y).abs() > 1e-12) | ((g2 - g).abs() > 1e-12)
    over = []
    if changed[1:].any():
        over.append("N")
    others = changed[0, 1:].flatten(1).any(1)
    if others.all():
        over.append("C")
    elif others.any():
        over.append("C/G")
    if changed[0, 0].flatten()[1:].any():
        over.append("H·W")
    if any(k.split(".")[-1].startswith("running") for k in stepped):
        running = "running average"
    elif getattr(layer, "using_moving_average", True) is False:
        running = "batch average after training"
    else:
        running = ""
    conv = make_conv(name, channels, channels)
    in_conv = ("Weight Standardization" if isinstance(conv, WSConv2d) else
               "weight normalization" if parametrize.is_parametrized(conv, "weight") else "")
    if "N" not in over:
        how = NO_BATCH
    elif any(hasattr(m, "norm_batch") for m in layer.modules()):
        how = PER_WORKER
    elif hasattr(layer, "virtual_batch_size"):
        how = f"its virtual batches of {layer.virtual_batch_size}"
    else:
        how = WHOLE_BATCH
    return Anatomy(name, _class_key(layer), tuple(over), running, norm_fuses_activation(name), in_conv, how)


def anatomies() -> list[Anatomy]:
    """`anatomy` of every registered norm, in the registry's order."""
    from .norms import available_norms

    return [anatomy(name) for name in available_norms()]


def family(spec: str) -> str:
    """The registry name of a record's norm spec: 'gn:16' -> 'gn'."""
    return spec.partition(":")[0]


# ---------------------------------------------------------------------------------------------
# Records

@dataclass(frozen=True)
class Cell:
    """One norm at one batch column of a grand comparison: its test accuracy over seeds, the paired difference
    from the baseline over the same seeds (None for the baseline itself), and its step time ÷ the baseline's."""

    norm: str
    batch: int
    acc: Summary
    diff: Summary | None
    step_ratio: Summary

    @property
    def mark(self) -> str:
        """▲ / ▼ when the paired 95% interval lies wholly above / below 0, else ''."""
        d = self.diff
        if d is None or d.low is None:
            return ""
        return "▲" if d.low > 0 else "▼" if d.high < 0 else ""


def columns(record: dict) -> list[int]:
    """The record's batch columns, largest first (the baseline's column first)."""
    return sorted(record["config"]["batch_sizes"], reverse=True)


def grid(record: dict) -> dict[str, dict[int, Cell]]:
    """{norm: {batch: Cell}} of a grand comparison record (metrics `test_acc/<norm>/b<batch>` and
    `step_ratio/<norm>/b<batch>`), over the norms and batch sizes its config names; a column a norm has
    no value in is left out."""
    c = record["config"]
    base = c.get("baseline", "bn")
    out: dict[str, dict[int, Cell]] = {}
    for norm in c["norms"]:
        row = {}
        for b in columns(record):
            acc = values(record, f"test_acc/{norm}/b{b}")
            if not any(v is not None for v in acc):
                continue
            diff = None if norm == base else paired_difference(acc, values(record, f"test_acc/{base}/b{b}"))
            row[b] = Cell(norm, b, summarize(acc), diff, summarize(values(record, f"step_ratio/{norm}/b{b}")))
        out[norm] = row
    return out


def batch_meaning(record: dict) -> dict:
    """What a batch column of a record means: {"per_worker": bool, "optimizer_batch": int | None,
    "text": a short phrase for batch b, with '{b}' to fill in}."""
    c = record["config"]
    full = c.get("batch_size")
    if full is not None and max(c.get("batch_sizes") or [0]) == full:
        return {"per_worker": True, "optimizer_batch": full,
                "text": f"per-worker batch {{b}}: statistics from {{b}} images, the gradient from all {full:,}"}
    return {"per_worker": False, "optimizer_batch": None,
            "text": "batch {b}: SGD on {b} images, statistics and gradient from the same {b}"}


def column_label(record: dict, b: int) -> str:
    """'full batch (1,024)' / 'per-worker batch 2' for a per-worker record, 'batch 2' for true small-batch SGD."""
    if batch_meaning(record)["per_worker"]:
        return f"full batch ({b:,})" if b == max(record["config"]["batch_sizes"]) else f"per-worker batch {b}"
    return f"batch {b}"


def _rule(record: dict):
    module = importlib.import_module(f".experiments.claims.{record['experiment']}", __package__)
    return getattr(module, "TRAINED", None) or getattr(module, "LEARNED", None)


def standing(record: dict) -> str | None:
    """Why the record's networks cannot decide a comparison — its baseline is under the experiment's own
    trained level (`TRAINED`, or `LEARNED` for a language model, in its claims module) — or None when they
    are trained (or the experiment states no such rule)."""
    rule = _rule(record)
    return None if rule is None else rule.reason(record)


def trained(record: dict) -> bool:
    return standing(record) is None


def baseline_summary(record: dict) -> tuple[str, Summary]:
    """(metric, Summary) of the baseline that `standing` judges."""
    from .experiments.claims import gn_name

    rule = _rule(record)
    name = gn_name(rule.metric, record)
    return name, summarize(values(record, name))


# ---------------------------------------------------------------------------------------------
# Benchmarks

def benchmark(name: str, directory: Path | None = None) -> tuple[Path, dict] | None:
    """(path, record) of benchmark `name` (`<name>__<device>.json` in `labnorm.results.benchmarks_dir()`), a
    CUDA run first, else the CPU one; None if there is none."""
    from .results import benchmarks_dir

    folder = Path(directory) if directory is not None else benchmarks_dir()
    for device in ("cuda", "cpu"):
        path = folder / f"{name}__{device}.json"
        if path.is_file():
            return path, json.loads(path.read_text())
    return None


def layer_costs(bench: dict, layer: str) -> dict | None:
    """The benchmark row of `layer` (an `Anatomy.layer`; a row 'EvoNorm2dS0(32)' matches 'EvoNorm2dS0') at its
    largest batch: {"batch", "eager", "compiled"} as ratios to torch's BatchNorm2d; None without a row."""
    rows = [r for r in bench["rows"] if str(r.get("layer", "")).split("(")[0] == layer and "labnorm_over_bn" in r]
    if not rows:
        return None
    r = max(rows, key=lambda r: r.get("batch", 0))
    return {"batch": r.get("batch"), "eager": r["labnorm_over_bn"], "compiled": r.get("compiled_over_bn"),
            "row": r["layer"]}
