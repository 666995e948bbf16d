r"""Training to the end on a CPU: the recipe of the public CIFAR-10 speed records, for any norm.

`fit` (in `labnorm.train.fit`) is a plain one-cycle loop. This module is the recipe that lets
`labnorm.models.FastCIFAR` reach ~90% on CIFAR-10 in minutes of a 2-core CPU. Each piece, what it
does and where it comes from (Keller Jordan's `airbench`, which builds on hlb-CIFAR10 and David
Page's "How to train your ResNet"); notebook 11 measures what each buys by removing it:

| piece | what | `FastRecipe` field |
|---|---|---|
| data on the device | the split as one tensor, normalized once and reflect-padded by 2; batches cut from it | — |
| random translate | each image shifted by up to 2 pixels (a random $32 \times 32$ crop of the padded image) | `translate` |
| alternating flip | epoch 0 flips a random half of the images; every later epoch flips exactly the other half of the epoch before, so each image is seen both ways in every two epochs | `flip="alternate"` |
| label smoothing | cross-entropy against $0.8$ one-hot $+ 0.2 / 10$ | `label_smoothing` |
| Nesterov SGD | momentum 0.85; weight decay decoupled from the schedule (decay per step $= \eta_t \lambda$ with $\lambda \propto 1/\eta_{max}$) | `lr`, `momentum`, `weight_decay` |
| norm shifts | the shift $\beta$ (`bias`) of **every** normalization layer trains at `bias_lr_scale` × the learning rate, with the same decay per step | `bias_lr_scale` |
| norm scales | the scale $\gamma$ (`weight`) of **every** normalization layer stays at its initial value (1), as the record nets keep BN's | `freeze_norm_scale` |
| schedule | `OneCycleLR`, linear: $0.2\eta \to \eta$ over the first 23% of steps, then down to $0.07\eta$ | `pct_start`, `start_factor`, `end_factor` |
| patch whitening | the first conv's filters fixed to the whitening of 2×2 training patches (`FastCIFAR.init_whitening`); without it, a plain conv trained from PyTorch's init | `whiten` |
| whitening bias | the whitening conv's bias trains for the first `whiten_bias_epochs`, then is frozen | `whiten_bias_epochs` |
| lookahead | every 5 steps, an average of the weights (and buffers) is pulled toward the net, $\bar\theta \leftarrow \rho\bar\theta + (1-\rho)\theta$, and the net is reset to it; $\rho = 0.95^5 (t/T)^3$ rises from 0; the final net is the average | `lookahead` |
| test-time augmentation | logits averaged over the image and its mirror (level 1), and over 1-pixel translations of both (level 2) | `tta` |
| bf16 autocast, channels_last | on CPUs with bf16 support (a warning and float32 where there is none) | `bf16`, `channels_last` |

**One rule for every norm.** The record nets tie several tricks to BatchNorm: BN's scale $\gamma$
frozen at 1, a 64× learning rate on BN's biases, BN's running statistics averaged by the lookahead.
Here none is BN-only: the scale of every normalization layer (a parameter named `weight` in a module
that is not a conv or linear layer) stays at 1, the shift of every normalization layer (`bias`) gets
the larger learning rate, and the lookahead averages every floating-point parameter and buffer of the model,
whatever the norm. The whitening bias schedule concerns the first layer, the same for every norm.

**Per-worker statistics.** With `norm_batch=b`, every batch-dependent layer computes its statistics
over groups of $b$ samples while SGD averages the gradient over the whole batch
(`labnorm.set_norm_batch`), as data-parallel training on $B/b$ workers does. Launched by `torchrun`, the same
loop trains data-parallel (`labnorm.distributed`): each rank keeps its slice of every batch, DDP
averages the gradients, and the running statistics are averaged over the ranks after each step.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from .. import distributed
from ..data import CIFAR10_MEAN, CIFAR10_STD
from ..progress import progress_enabled
from .lr_finder import DivergenceRule

__all__ = ["FastRecipe", "bf16_supported", "FastData", "Lookahead", "norm_shift_parameters", "norm_scale_parameters",
           "train_fast",
           "evaluate_tta", "tta_logits", "range_test", "LR_RULE", "LR_RULE_CAPPED", "LR_RULE_LOWEST", "lr_from_range_tests",
           "lowest_point", "step_time_ratio"]


@dataclass(frozen=True)
class FastRecipe:
    """The hyperparameters of `train_fast` (defaults: airbench94's, in PyTorch's mean-loss units)."""

    epochs: float = 10.0
    batch_size: int = 1024
    lr: float = 1.5
    momentum: float = 0.85
    weight_decay: float = 2e-3
    bias_lr_scale: float = 64.0
    freeze_norm_scale: bool = True
    label_smoothing: float = 0.2
    pct_start: float = 0.23
    start_factor: float = 0.2
    end_factor: float = 0.07
    whiten_bias_epochs: float = 3.0
    translate: int = 2
    flip: str = "alternate"
    lookahead: bool = True
    tta: int = 2
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    whiten: bool = True
    whiten_images: int = 5000

    def __post_init__(self) -> None:
        checks = [
            (self.epochs > 0, f"epochs must be > 0, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.flip in ("alternate", "random", "none"), f"flip must be 'alternate', 'random' or 'none', got {self.flip!r}"),
            (self.tta in (0, 1, 2), f"tta must be 0, 1 or 2, got {self.tta}"),
            (self.translate >= 0, f"translate must be >= 0, got {self.translate}"),
            (0 < self.pct_start < 1, f"pct_start must be in (0, 1), got {self.pct_start}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"FastRecipe: {message}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bf16_supported() -> bool:
    """Whether this machine's CPU computes bf16 natively (AVX-512 BF16 or AMX); CUDA: always."""
    is_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    is_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((is_bf16 and is_bf16()) or (is_amx and is_amx()))


class FastData:
    """One split on `device`, normalized once, reflect-padded by `translate`; yields augmented batches.

    `epoch(e)` yields the batches of epoch `e` (shuffled by a generator seeded from `(seed, e)`, so a
    resumed run sees the same batches), each translated by up to `translate` pixels and flipped by
    the `flip` rule; `drop_last` keeps every step at the same batch size.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, translate: int = 2,
                 flip: str = "alternate", seed: int = 0, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, channels_last: bool = False) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(f"FastData: expected uint8 images [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if len(images) < batch_size:
            raise ValueError(f"FastData: {len(images)} images make no full batch of {batch_size}")
        self.device, self.dtype = torch.device(device), dtype
        self.batch_size, self.translate, self.flip, self.seed = batch_size, translate, flip, seed
        self.channels_last = channels_last
        self.labels = labels.to(self.device)
        self.images = normalize(images.to(self.device), dtype)
        if translate:
            # Pad once; every batch is a random $32 \times 32$ window of the padded images
            self.images = nn.functional.pad(self.images, (translate,) * 4, mode="reflect")
        # One random bit per image: it is flipped in the epochs e with (bit + e) odd
        self.flip_bit = torch.randint(0, 2, (len(images),), generator=torch.Generator().manual_seed(seed))
        self.flip_bit = self.flip_bit.to(self.device)

    def __len__(self) -> int:
        return len(self.labels) // self.batch_size

    def order(self, e: int) -> tuple[torch.Tensor, torch.Generator]:
        """The shuffled image order of epoch `e`, and the generator that then draws its augmentation."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
        return torch.randperm(len(self.labels), generator=g).to(self.device), g

    def flipped(self, e: int) -> torch.Tensor:
        """Which images epoch `e` mirrors (by image index) under the `"alternate"` rule."""
        return (self.flip_bit + e) % 2 == 1

    def epoch(self, e: int):
        order, g = self.order(e)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = translate_batch(self.images[idx], self.translate, g)
            if self.flip == "alternate":
                flip = (self.flip_bit[idx] + e) % 2 == 1
            elif self.flip == "random":
                flip = (torch.rand(len(idx), generator=g) < 0.5).to(self.device)
            else:
                flip = None
            if flip is not None:
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


def normalize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 $[N, 3, H, W] \\to (x/255 - \\mu) / \\sigma$ per channel, in `dtype`."""
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1) * 255
    return ((images.float() - mean) / std).to(dtype)


def translate_batch(padded: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """A random window of $H - 2\\,pad$ rows and columns of each padded image: a shift by up to `pad` pixels.

    Vectorized over the images: one slice per *offset* ($(2\\,pad + 1)^2$ of them), never per image."""
    if pad == 0:
        return padded
    n, c, hp, wp = padded.shape
    h, w = hp - 2 * pad, wp - 2 * pad
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(padded.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(padded.device)
    out = torch.empty(n, c, h, w, dtype=padded.dtype, device=padded.device)
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            sel = ((dy == oy) & (dx == ox)).nonzero().squeeze(1)
            if len(sel):
                out[sel] = padded[sel, :, oy:oy + h, ox:ox + w]
    return out


def _norm_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    out = []
    for module in model.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            continue
        p = module._parameters.get(name)
        if isinstance(p, nn.Parameter):
            out.append(p)
    return out


def norm_scale_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The scale $\\gamma$ of every normalization layer: parameters named `weight` of modules that are not
    convolutions or linear layers."""
    return _norm_parameters(model, "weight")


def norm_shift_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The shift $\\beta$ of every normalization layer: parameters named `bias` of modules that are not
    convolutions or linear layers (and the EvoNorm / TLU shifts, which are also called `bias`)."""
    return [p for p in _norm_parameters(model, "bias") if p.requires_grad]


class Lookahead:
    """An average of the model's floating-point state, pulled toward the net every few steps.

    `update(model, rho)`: $\\bar\\theta \\leftarrow \\rho\\bar\\theta + (1 - \\rho)\\theta$, then
    $\\theta \\leftarrow \\bar\\theta$ — for every floating-point parameter and buffer (so running statistics
    of any norm are averaged the same way)."""

    def __init__(self, model: nn.Module) -> None:
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, rho: float) -> None:
        current = model.state_dict()
        for k, avg in self.state.items():
            avg.lerp_(current[k], 1 - rho)
            current[k].copy_(avg)


def tta_logits(model: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """Logits with test-time augmentation: 0 none; 1 the mean over $x$ and its mirror; 2 also the
    1-pixel translations up-left and down-right (reflect-padded), weighted 1/2, 1/4, 1/4."""
    def mirror(z):
        return 0.5 * (model(z) + model(z.flip(3))) if level >= 1 else model(z)

    if level < 2:
        return mirror(x)
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[:, :, :-2, :-2], padded[:, :, 2:, 2:]
    return 0.5 * mirror(x) + 0.25 * mirror(up_left.contiguous()) + 0.25 * mirror(down_right.contiguous())


@torch.no_grad()
def evaluate_tta(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, level: int = 2,
                 batch_size: int = 1000, bf16: bool = False, channels_last: bool = False) -> dict[str, float]:
    """Accuracy and mean cross-entropy on uint8 `images`, in eval mode, with TTA `level`."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    correct, loss, n = 0, 0.0, len(labels)
    for i in range(0, n, batch_size):
        x = normalize(images[i:i + batch_size].to(dev))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[i:i + batch_size].to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = tta_logits(model, x, level).float()
        correct += (out.argmax(1) == y).sum().item()
        loss += nn.functional.cross_entropy(out, y, reduction="sum").item()
    model.train(was_training)
    return {"acc": correct / n, "loss": loss / n}


def _param_groups(model: nn.Module, recipe: FastRecipe) -> list[dict[str, Any]]:
    """The recipe's SGD groups: every trained parameter at `lr` (the whitening bias in a group of its own, as
    it is frozen after `whiten_bias_epochs`), the norm shifts at `bias_lr_scale` × `lr`; decoupled decay
    (SGD's coefficient is weight_decay / lr, so the decay per step is `weight_decay` × the schedule's factor)."""
    shifts = norm_shift_parameters(model)
    whiten_bias = [model.whiten.bias] if hasattr(model, "whiten") and model.whiten.bias is not None else []
    special = {id(p) for p in shifts + whiten_bias}
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in special]
    big = recipe.lr * recipe.bias_lr_scale
    groups = [dict(params=others, lr=recipe.lr, weight_decay=recipe.weight_decay / recipe.lr, role="weights")]
    if shifts:
        groups.append(dict(params=shifts, lr=big, weight_decay=recipe.weight_decay / big, role="norm shifts"))
    if whiten_bias:
        groups.append(dict(params=whiten_bias, lr=recipe.lr, weight_decay=recipe.weight_decay / recipe.lr,
                           role="whitening bias"))
    return groups


# A range test "left chance" when its smoothed loss fell this far below ln 10 (the claims' margin, rule 1)
CHANCE_MARGIN = 0.05
# The rule that gives each norm its peak learning rate (`lr_from_range_tests`), as the records state it
LR_RULE = ("peak lr = the recipe's lr (tuned for BN) x the norm's range-test divergence point / BN's: the LR range "
           "test ramps every parameter group of the recipe from 0.01 to 100 x its peak lr over `steps` steps "
           "(exponentially, no lookahead, no schedule) and stops where the smoothed loss (f = 0.05) passes 4 x its "
           "lowest; a norm whose smoothed loss never falls 0.05 below ln 10 (the claims' margin of chance) never left "
           "chance and is not trained")
# The capped rule (`lr_from_range_tests(..., cap=1.0)`): the grand comparison's, after the ratio above overshot
LR_RULE_CAPPED = ("peak lr = the recipe's lr (tuned for BN) x min(1, the norm's range-test divergence point / BN's): "
                  "a norm whose range test blows up sooner than BN's gets a proportionally lower rate, and none gets "
                  "more than the rate tuned for BN — a short test from initialization, where the loss barely leaves "
                  "ln 10, shows which rates blow a norm up, not which train it best; every norm is trained. The LR "
                  "range test ramps every parameter group of the recipe from 0.01 to 100 x its peak lr over `steps` "
                  "steps (exponentially, no lookahead, no schedule) and stops where the smoothed loss (f = 0.05) passes "
                  "4 x its lowest")
# The capped rule with the lowest point (`lr_from_range_tests(..., cap=1.0, lowest_tolerance=3.0)`): the grand
# comparison's, after GN, at BN's rate, fell back to chance loss for most of its run
LR_RULE_LOWEST = ("peak lr = the recipe's lr (tuned for BN) x min(1, the norm's range-test divergence point / BN's, "
                  "and its lowest-loss point / BN's where that is below 1/3): a norm whose range test blows up sooner "
                  "than BN's, or leaves chance but reaches its lowest loss more than 3x sooner (BN's own lowest point moves by 2.85x "
                  "over seeds 0-2; GN's comes 8x sooner, and at BN's rate GN's training loss sat at ln 10 for most "
                  "of the run), gets a proportionally lower rate, and none gets more than the rate tuned for BN; every "
                  "norm is trained. The LR range test ramps every parameter group of the recipe from 0.01 to 100 x "
                  "its peak lr over `steps` steps (exponentially, no lookahead, no schedule) and stops where the "
                  "smoothed loss (f = 0.05) passes 4 x its lowest")


def range_test(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, recipe: FastRecipe = FastRecipe(),
               steps: int = 80, batch_size: int = 512, start: float = 1e-2, end: float = 100.0, seed: int = 0,
               device: torch.device | str = "cpu", smooth_f: float = 0.05, threshold: float = 4.0,
               prepare: Callable[[nn.Module], Any] | None = None) -> dict[str, Any]:
    r"""An LR range test of `model` with the recipe's parameter groups: every group's learning rate is its
    peak × a multiplier $m$ that grows from `start` to `end` exponentially over `steps` steps (so the norm
    shifts keep their `bias_lr_scale`); the smoothed loss of each step, and where it diverged
    (`DivergenceRule`). The model is trained in place: pass a fresh one. Returns the multipliers, the
    smoothed losses, `diverged_at` (the multiplier where the rule fired, None if it never did), the lowest
    smoothed loss and whether it `left_chance`. `prepare(model)`: as `train_fast`'s, after the whitening."""
    dev, t0 = torch.device(device), time.perf_counter()
    bf16 = recipe.bf16 and (dev.type == "cuda" or bf16_supported())
    torch.manual_seed(seed)
    model.to(dev)
    if hasattr(model, "init_whitening"):
        model.init_whitening(normalize(images[:recipe.whiten_images].to(dev)))
    if prepare is not None:
        prepare(model)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    data = FastData(images, labels, batch_size=batch_size, translate=recipe.translate, flip=recipe.flip, seed=seed,
                    device=dev, channels_last=recipe.channels_last)
    if recipe.freeze_norm_scale:
        for p in norm_scale_parameters(model):
            p.requires_grad_(False)
    groups = _param_groups(model, recipe)
    peaks = [g["lr"] for g in groups]
    opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    rule = DivergenceRule(smooth_f, threshold)
    mults, losses, epoch, batches = [], [], 0, iter(())
    par = distributed.current()  # data-parallel (labnorm.distributed): DDP, each rank its slice of every batch
    net = par.wrap(model) if par else model
    model.train()
    for i in range(steps):
        m = start * (end / start) ** (i / (steps - 1))
        for g, peak in zip(opt.param_groups, peaks):
            g["lr"] = peak * m
        x_y = next(batches, None)
        if x_y is None:
            batches, epoch = data.epoch(epoch), epoch + 1
            x_y = next(batches)
        x, y = (par.shard(x_y[0]), par.shard(x_y[1])) if par else x_y
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = criterion(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if par:  # the whole batch's loss, the same on every rank (so every rank stops at the same step)
            par.after_step(model)
            loss = par.mean(loss)
        mults.append(m)
        losses.append(rule.update(loss.item()))
        if rule.diverged:
            break
    lowest = min(v for v in losses if math.isfinite(v)) if any(math.isfinite(v) for v in losses) else float("nan")
    return {"multiplier": mults, "loss": losses, "diverged_at": mults[-1] if rule.diverged else None,
            "lowest_loss": lowest, "left_chance": bool(lowest < math.log(10) - CHANCE_MARGIN), "steps": steps,
            "batch_size": batch_size, "seconds": time.perf_counter() - t0}


def lowest_point(test: dict[str, Any]) -> float:
    """The multiplier at which a range test's smoothed loss is lowest."""
    finite = [(loss, m) for m, loss in zip(test["multiplier"], test["loss"]) if math.isfinite(loss)]
    return min(finite)[1] if finite else test["multiplier"][0]


def lr_from_range_tests(recipe: FastRecipe, test: dict[str, Any], baseline: dict[str, Any],
                        cap: float | None = None, lowest_tolerance: float | None = None) -> float | None:
    """`LR_RULE`: the recipe's lr × the norm's divergence multiplier ÷ the baseline's (a test that never
    diverged counts at its last multiplier); None for a norm that never left chance. With `cap`
    (`LR_RULE_CAPPED`): that ratio capped at `cap`, and every norm gets a rate. With `lowest_tolerance` too
    (`LR_RULE_LOWEST`): also no more than the ratio of the two lowest-loss points (`lowest_point`) where that
    ratio is below 1 / `lowest_tolerance` (nearer ones are within the noise of a flat curve's lowest point), for a
    norm whose test left chance; `lowest_tolerance` needs `cap`."""
    if lowest_tolerance is not None and cap is None:
        raise ValueError("lr_from_range_tests: lowest_tolerance needs cap (the lowest-point piece is of the capped rule)")
    if cap is None and not test["left_chance"]:
        return None
    point = test["diverged_at"] or test["multiplier"][-1]
    base = baseline["diverged_at"] or baseline["multiplier"][-1]
    if cap is None:
        return recipe.lr * point / base
    ratio = min(cap, point / base)
    # (a curve that never left chance has no lowest point worth the name: its minimum is noise at ln 10)
    if lowest_tolerance is not None and test["left_chance"]:
        sooner = lowest_point(test) / lowest_point(baseline)
        ratio = min(ratio, sooner) if sooner < 1 / lowest_tolerance else ratio
    return recipe.lr * ratio


def train_fast(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
               test_images: torch.Tensor | None = None, test_labels: torch.Tensor | None = None, *,
               recipe: FastRecipe = FastRecipe(), seed: int = 0, device: torch.device | str = "cpu",
               eval_every: int = 0, progress: bool | None = None, desc: str = "",
               prepare: Callable[[nn.Module], Any] | None = None) -> dict[str, Any]:
    """Train `model` (a `FastCIFAR`, or any net; a `FastCIFAR` gets its whitening from the data) by `recipe`.

    `train_images` / `test_images` are uint8 $[N, 3, 32, 32]$. Returns the history: step losses, the
    learning rate per step, per-epoch seconds and images/s, test accuracy and loss with and without
    TTA at the end (and every `eval_every` epochs without TTA), whether bf16 ran, and the wall time.
    """
    dev = torch.device(device)
    bf16 = recipe.bf16 and (dev.type == "cuda" or bf16_supported())
    if recipe.bf16 and not bf16:
        warnings.warn("train_fast: bf16 was asked for but this CPU has no native bf16; training in float32",
                      stacklevel=2)
    t_start = time.perf_counter()
    torch.manual_seed(seed)
    model.to(dev)
    if hasattr(model, "init_whitening"):
        if recipe.whiten:
            n = min(recipe.whiten_images, len(train_images))
            model.init_whitening(normalize(train_images[:n].to(dev)))
        else:  # the ablation: a plain first conv, trained from PyTorch's default init
            model.whiten.weight.requires_grad_(True)
    if prepare is not None:
        prepare(model)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    data = FastData(train_images, train_labels, batch_size=recipe.batch_size, translate=recipe.translate,
                    flip=recipe.flip, seed=seed, device=dev, channels_last=recipe.channels_last)
    steps_per_epoch = len(data)
    total = max(2, math.ceil(recipe.epochs * steps_per_epoch))
    if recipe.freeze_norm_scale:  # every norm's scale stays at its init, as the record nets keep BN's at 1
        for p in norm_scale_parameters(model):
            p.requires_grad_(False)
    groups = _param_groups(model, recipe)
    whiten_bias = [g["params"][0] for g in groups if g["role"] == "whitening bias"]
    opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=total, pct_start=recipe.pct_start,
        anneal_strategy="linear", cycle_momentum=False, div_factor=1 / recipe.start_factor,
        final_div_factor=recipe.start_factor / recipe.end_factor)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    lookahead = Lookahead(model) if recipe.lookahead else None
    # The training forward, compiled where asked (evaluation stays eager: one compiled graph)
    par = distributed.current()  # data-parallel (labnorm.distributed): DDP, each rank its slice of every batch
    forward = par.wrap(model) if par else model
    forward = torch.compile(forward) if recipe.compile else forward
    whiten_steps = recipe.whiten_bias_epochs * steps_per_epoch
    show = progress_enabled() if progress is None else progress
    hist: dict[str, Any] = {"step_loss": [], "lr": [], "epochs": [], "bf16": bf16, "steps": total,
                            "diverged_at_step": None}
    step, epoch = 0, 0
    model.train()
    bar = tqdm(total=total, disable=not show, desc=desc or "train_fast", leave=False)
    while step < total:
        t0, losses = time.perf_counter(), []
        for x, y in data.epoch(epoch):
            if step >= total:
                break
            if par:
                x, y = par.shard(x), par.shard(y)
            if whiten_bias and step == int(whiten_steps):
                whiten_bias[0].requires_grad_(False)  # frozen from here on (SGD skips a parameter without grad)
                whiten_bias[0].grad = None
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                out = forward(x)
            loss = criterion(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if par:
                par.after_step(model)
            hist["lr"].append(sched.get_last_lr()[0])
            sched.step()
            step += 1
            losses.append(loss.detach())
            if lookahead is not None and step % 5 == 0:
                lookahead.update(model, 0.95 ** 5 * (step / total) ** 3)
            bar.update(1)
        seconds = time.perf_counter() - t0
        epoch_losses = torch.stack(losses).float()
        # (data-parallel: the mean over the ranks, the whole batch's loss, the same on every rank)
        epoch_losses = (par.mean(epoch_losses) if par else epoch_losses).tolist()
        hist["step_loss"] += epoch_losses
        rec = {"epoch": epoch + 1, "train_loss": sum(epoch_losses) / len(epoch_losses), "seconds": seconds,
               "images_per_s": len(epoch_losses) * recipe.batch_size / seconds}
        if not all(math.isfinite(v) for v in epoch_losses):
            hist["diverged_at_step"] = len(hist["step_loss"]) - sum(math.isfinite(v) for v in epoch_losses)
            hist["epochs"].append(rec)
            break
        if eval_every and test_images is not None and (epoch + 1) % eval_every == 0 and step < total:
            ev = evaluate_tta(model, test_images, test_labels, level=0, bf16=bf16, channels_last=recipe.channels_last)
            rec.update(test_acc=ev["acc"], test_loss=ev["loss"])
        hist["epochs"].append(rec)
        epoch += 1
    bar.close()
    if lookahead is not None and hist["diverged_at_step"] is None:
        lookahead.update(model, 1.0)  # the final net is the average itself
    hist["train_seconds"] = time.perf_counter() - t_start
    if test_images is not None and hist["diverged_at_step"] is None:
        t0 = time.perf_counter()
        plain = evaluate_tta(model, test_images, test_labels, level=0, bf16=bf16, channels_last=recipe.channels_last)
        tta = evaluate_tta(model, test_images, test_labels, level=recipe.tta, bf16=bf16,
                           channels_last=recipe.channels_last)
        hist.update(test_acc=plain["acc"], test_loss=plain["loss"], test_acc_tta=tta["acc"], test_loss_tta=tta["loss"],
                    eval_seconds=time.perf_counter() - t0)
    hist["wall_seconds"] = time.perf_counter() - t_start
    return hist


def step_time_ratio(model: nn.Module, baseline: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 3,
                    rounds: int = 2, bf16: bool = False, channels_last: bool = True) -> tuple[float, float]:
    """(seconds per SGD step of `model` ÷ `baseline`'s, `model`'s seconds per step) on the batch `x`, `y`:
    the two train alternately, `steps` steps a round, `rounds` rounds after one that warms up, and each keeps
    its fastest round — a same-moment ratio on a shared machine, not a benchmark. Both are trained in place."""
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    nets = []
    for net in (model, baseline):
        net.to(x.device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
        nets.append((net, torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.85, nesterov=True)))
    best = [float("inf"), float("inf")]
    for r in range(rounds + 1):  # round 0 warms up
        for i, (net, opt) in enumerate(nets):
            t0 = time.perf_counter()
            for _ in range(steps):
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = net(x)
                loss = nn.functional.cross_entropy(out.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if r:
                best[i] = min(best[i], (time.perf_counter() - t0) / steps)
    return best[0] / best[1], best[0]
