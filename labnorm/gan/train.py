r"""# Training a GAN as §5.1, and the reconstruction loss of §4

**Reconstruction loss.** A GAN has no likelihood to report, so Xiang & Li measure how well the
generator can reproduce held-out images: for each test image $x$, start from the code $z = 0$,
minimize $\lVert G(z) - x \rVert^2 / (3 w h)$ over $z$ with RMSProp (lr 0.01) for a fixed number of
steps, the generator frozen, and report the final loss. A generator that covers the data
reconstructs it well; one that collapsed onto a few modes cannot.

`reconstruction_loss` optimizes all images **as one batch**. That is exact, not an approximation:
the objective is the *sum* of the per-image losses, so $\partial/\partial z_i$ is image $i$'s own
gradient, and RMSProp's update is elementwise — each code follows the path it would follow alone
(tested against a loop over single images). The generator runs in eval mode, so batch norm uses its
running statistics and images do not interact. The running evaluation during training uses 50
steps on a fixed set of test images; the final one 2000 steps on the held-out set.

**Training** (§5.1). RMSProp with lr $10^{-4}$, $\alpha = 0.9$, $\epsilon = 10^{-6}$, batch 32, the
non-saturating GAN loss. Each iteration updates the discriminator on a batch of real images and,
in a separate forward pass, a batch of generated ones (so a BN discriminator never mixes them in
one batch's statistics), then the generator on fresh codes. TPReLU slopes are clipped to $[0, 1]$
after every step. Every `eval_every` iterations the reconstruction loss is measured, and sample
grids from fixed codes are kept at chosen iterations.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize
from tqdm import tqdm

from ..progress import progress_enabled
from .layers import clip_slopes_

__all__ = ["reconstruction_loss", "train_gan", "image_grid"]


def _rmsprop(params, lr: float) -> torch.optim.RMSprop:
    # The paper's (and its code's) RMSProp: alpha 0.9, eps 1e-6
    return torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-6)


def reconstruction_loss(generator: nn.Module, images: torch.Tensor, steps: int, lr: float = 0.01,
                        code_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-image reconstruction loss of `images` $[N, 3, H, W]$ in $[0, 1]$ after `steps` RMSProp steps on $z$.

    Returns `(losses [N], reconstructions [N, 3, H, W])`, both detached. `steps=0` gives the loss at
    $z = 0$. The code size is read from the generator's first layer unless given. The generator's
    parameters get no gradient (their `.grad` is untouched) and every submodule's train/eval mode is
    restored.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"reconstruction_loss: expected images [N, 3, H, W], got shape {tuple(images.shape)}")
    if steps < 0:
        raise ValueError(f"reconstruction_loss: steps must be >= 0, got {steps}")
    if code_size is None:
        first = next(m for m in generator.modules() if isinstance(m, nn.Linear))
        code_size = first.in_features
    param = next(generator.parameters())
    target = images.to(device=param.device, dtype=param.dtype)
    modes = {m: m.training for m in generator.modules()}
    generator.eval()
    try:
        # The generator is frozen: each weight-normalized weight is computed once, not at every step
        with parametrize.cached():
            z = torch.zeros(len(target), code_size, device=param.device, dtype=param.dtype, requires_grad=True)
            opt = _rmsprop([z], lr)
            for _ in range(steps):
                # Sum over images of each image's mean squared error: image i's gradient is its own
                per_image = (generator(z) - target).square().flatten(1).mean(1)
                (z.grad,) = torch.autograd.grad(per_image.sum(), z)
                opt.step()
            with torch.no_grad():
                recon = generator(z)
                losses = (recon - target).square().flatten(1).mean(1)
    finally:
        for module, training in modes.items():
            module.training = training
    return losses.detach(), recon.detach()


def image_grid(images: torch.Tensor, rows: int) -> torch.Tensor:
    """[N, 3, H, W] in [0, 1] -> one uint8 image [rows*H, cols*W, 3] (N = rows * cols)."""
    n, c, h, w = images.shape
    cols = math.ceil(n / rows)
    pad = images.new_zeros(rows * cols - n, c, h, w)
    grid = torch.cat([images, pad]).view(rows, cols, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    train_images: torch.Tensor,
    iterations: int,
    *,
    eval_images: torch.Tensor,
    eval_every: int,
    eval_steps: int = 50,
    sample_codes: torch.Tensor | None = None,
    sample_at: tuple[int, ...] = (),
    batch_size: int = 32,
    lr: float = 1e-4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    desc: str = "gan",
) -> dict[str, Any]:
    """Train as §5.1 on `train_images` (uint8 or float in [0, 1], $[N, 3, H, W]$); returns the history.

    History: `losses` per iteration (`d_real`, `d_fake`, `g`), `eval` = [(iteration, mean
    reconstruction loss of `eval_images` after `eval_steps` steps)], `samples` = {iteration: uint8
    grid of `generator(sample_codes)`}, `diverged_at` (first iteration with a non-finite loss, the run
    stops there) and `seconds`.
    """
    dev = torch.device(device)
    generator.to(dev).train()
    discriminator.to(dev).train()
    code_size = next(m for m in generator.modules() if isinstance(m, nn.Linear)).in_features
    data = train_images.to(dev)
    data = data.float() / 255 if data.dtype == torch.uint8 else data.float()
    eval_x = eval_images.to(dev)
    eval_x = eval_x.float() / 255 if eval_x.dtype == torch.uint8 else eval_x.float()
    d_params = [p for p in discriminator.parameters() if p.requires_grad]  # the ones D's optimizer trains
    g_opt, d_opt = _rmsprop(generator.parameters(), lr), _rmsprop(d_params, lr)
    rng = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(len(data), generator=rng), 0
    ones = torch.ones(batch_size, device=dev)
    zeros = torch.zeros(batch_size, device=dev)
    hist: dict[str, Any] = {"losses": {"d_real": [], "d_fake": [], "g": []}, "eval": [], "samples": {},
                            "diverged_at": None}

    def evaluate(it: int) -> None:
        if eval_every and it % eval_every == 0:
            losses, _ = reconstruction_loss(generator, eval_x, eval_steps, code_size=code_size)
            hist["eval"].append([it, losses.mean().item()])
        if sample_codes is not None and it in sample_at:
            generator.eval()
            with torch.no_grad():
                hist["samples"][it] = image_grid(generator(sample_codes.to(dev)), rows=int(len(sample_codes) ** 0.5))
            generator.train()

    t0 = time.perf_counter()
    evaluate(0)
    for it in tqdm(range(1, iterations + 1), desc=desc, disable=not progress_enabled(), leave=False):
        # A batch of real images, without replacement; reshuffle at the end of the data
        if cursor + batch_size > len(data):
            order, cursor = torch.randperm(len(data), generator=rng), 0
        real = data[order[cursor:cursor + batch_size].to(dev)]
        cursor += batch_size
        z = torch.randn(batch_size, code_size, generator=rng).to(dev)

        # Discriminator: real and fake batches in separate forward passes
        d_opt.zero_grad(set_to_none=True)
        d_real = F.binary_cross_entropy_with_logits(discriminator(real), ones)
        d_real.backward()
        d_fake = F.binary_cross_entropy_with_logits(discriminator(generator(z).detach()), zeros)
        d_fake.backward()
        d_opt.step()
        clip_slopes_(discriminator)

        # Generator: fresh codes, non-saturating loss; D is frozen for this step (no weight gradients)
        g_opt.zero_grad(set_to_none=True)
        z = torch.randn(batch_size, code_size, generator=rng).to(dev)
        for p in d_params:
            p.requires_grad_(False)
        g_loss = F.binary_cross_entropy_with_logits(discriminator(generator(z)), ones)
        g_loss.backward()
        for p in d_params:
            p.requires_grad_(True)
        g_opt.step()
        clip_slopes_(generator)

        values = (d_real.item(), d_fake.item(), g_loss.item())
        for key, v in zip(("d_real", "d_fake", "g"), values):
            hist["losses"][key].append(v)
        if not all(math.isfinite(v) for v in values):
            hist["diverged_at"] = it
            break
        evaluate(it)
    hist["seconds"] = time.perf_counter() - t0
    return hist
