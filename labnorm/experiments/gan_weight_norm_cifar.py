r"""Xiang & Li's DCGANs on CIFAR-10: vanilla vs BN vs WN, judged by the reconstruction loss (notebook 06).

Table 1's DCGAN generator and discriminator with no normalization, batch norm or strict weight
normalization, trained with RMSProp as in §5.1. Along training, the running reconstruction loss
(§4: how well G can reproduce fixed held-out images, `eval_steps` optimization steps) and sample
grids from fixed codes; at the end, the reconstruction loss on more held-out images with more
steps, and a collapse check (per-pixel spread of the samples relative to real images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import results
from ..gan import dcgan_discriminator, dcgan_generator, image_grid, reconstruction_loss, train_gan
from ..train.dry import dry_batch, dry_cut, dry_part
from .common import cifar_subsets, curve
from .claims import verdicts
from .report import Figure, Report, Table, bands, cell, seed_details
from .runner import Experiment, SeedResult


@dataclass(frozen=True)
class Config:
    channels: int
    iterations: int
    train_images: int
    eval_every: int
    eval_images: int
    eval_steps: int
    final_images: int
    final_steps: int
    sample_at: tuple[int, ...]
    image_size: int = 32
    code_size: int = 256
    batch_size: int = 32
    optimizer: str = "RMSprop lr 1e-4, alpha 0.9, eps 1e-6 (G and D)"
    sample_codes: int = 16
    norms: tuple[str, ...] = ("vanilla", "bn", "wn")


CONFIGS = {
    "smoke": Config(channels=8, iterations=6, train_images=512, eval_every=3, eval_images=16, eval_steps=5,
                    final_images=32, final_steps=20, sample_at=(0, 1, 3, 6)),
    "cpu": Config(channels=64, iterations=2000, train_images=50000, eval_every=250, eval_images=64, eval_steps=50,
                  final_images=256, final_steps=300, sample_at=(0, 500, 1000, 2000)),
    "gpu": Config(channels=96, iterations=50000, train_images=50000, eval_every=1000, eval_images=256, eval_steps=50,
                  final_images=2000, final_steps=2000, sample_at=(0, 12500, 25000, 50000)),
}


def run(config: Config, seed: int, device: torch.device) -> SeedResult:
    # A dry run (labnorm.train.dry) trains 2 iterations and reconstructs 8 images in 2 steps, timed and projected
    full, config = config, dry_cut(config, iterations=2, batch_size=dry_batch(config.batch_size), eval_every=0,
                                   eval_images=8, final_images=8, final_steps=2, sample_at=())
    evals = full.iterations // full.eval_every + 1 if full.eval_every else 0
    recon_steps = evals * full.eval_steps + full.final_steps
    recon_units = evals * full.eval_steps * full.eval_images + full.final_steps * full.final_images
    train, test = cifar_subsets(config.train_images, 10000, seed)
    # Fixed held-out images: the running set first, then the final set after it
    eval_x = test.images[: config.eval_images]
    final_x = test.images[config.eval_images: config.eval_images + config.final_images]
    codes = torch.randn(config.sample_codes, config.code_size, generator=torch.Generator().manual_seed(seed))
    real = train.images[: config.sample_codes].float() / 255
    runs = []
    for norm in config.norms:
        torch.manual_seed(seed)
        g = dcgan_generator(norm, config.image_size, config.code_size, config.channels)
        d = dcgan_discriminator(norm, config.image_size, config.channels)
        with dry_part(f"{norm}: GAN iterations (images)", full.iterations * full.batch_size,
                      config.iterations * config.batch_size, device, steps=full.iterations):
            hist = train_gan(g, d, train.images, config.iterations, eval_images=eval_x, eval_every=config.eval_every,
                             eval_steps=config.eval_steps, sample_codes=codes, sample_at=config.sample_at,
                             batch_size=config.batch_size, seed=seed, device=device, desc=norm)
        target = final_x.float().to(device) / 255
        with dry_part(f"{norm}: reconstructions, running and final (image-steps)", recon_units,
                      config.final_steps * config.final_images, device, steps=recon_steps):
            losses, recon = reconstruction_loss(g, target, config.final_steps)
        # Collapse check: per-pixel spread across the fixed-code samples, relative to real images'
        g.eval()
        with torch.no_grad():
            samples = g(codes.to(device))
        spread = (samples.std(0).mean() / real.to(device).std(0).mean()).item()
        pairs = torch.cat([target[:8], recon[:8]]).cpu()
        runs.append({
            "norm": norm, "eval": hist["eval"], "diverged_at": hist["diverged_at"],
            "loss_curves": {k: curve(v) for k, v in hist["losses"].items()},
            "final_reconstruction_loss": losses.mean().item(), "final_reconstruction_loss_std": losses.std().item(),
            "sample_spread_vs_real": spread, "seconds": hist["seconds"],
            "samples": {str(it): results.encode_image(grid) for it, grid in hist["samples"].items()},
            "reconstructions": results.encode_image(image_grid(pairs, rows=2)),
        })
    return SeedResult({"runs": runs}, train.variant)


def metrics(details: dict) -> dict[str, float | None]:
    out = {}
    for r in details["runs"]:
        out[f"final_reconstruction_loss/{r['norm']}"] = r["final_reconstruction_loss"]
        out[f"best_running_loss/{r['norm']}"] = min(v for _, v in r["eval"])
        out[f"sample_spread_vs_real/{r['norm']}"] = r["sample_spread_vs_real"]
    return out


# Xiang & Li, Appendix D.3, Table 7 (CIFAR-10): (running loss, final loss) at the model's optimal
# iteration (lowest 50-step running loss) and at iteration 500,000. Running: 50 reconstruction steps
# on 400 test images; final: 2,000 steps on all 2,000 test images.
PAPER_TABLE_7 = {
    "vanilla": {"optimal": (387_000, 0.010382, 0.003413), "500k": (500_000, 0.010948, 0.003414)},
    "bn": {"optimal": (1_000, 0.017987, 0.004904), "500k": (500_000, 0.019287, 0.005421)},
    "wn": {"optimal": (50_000, 0.010906, 0.003509), "500k": (500_000, 0.014195, 0.003269)},
}


def _paper(norm: str, column: int) -> str:
    rows = PAPER_TABLE_7.get(norm)
    return "—" if rows is None else f"{rows['optimal'][column]:.6f} / {rows['500k'][column]:.6f}"


def report(record: dict) -> Report:
    config = record["config"]
    norms = [r["norm"] for r in seed_details(record)[0]["runs"]]
    rows = [[n, cell(record, f"final_reconstruction_loss/{n}", 4), _paper(n, 2),
             cell(record, f"best_running_loss/{n}", 4), _paper(n, 1),
             cell(record, f"sample_spread_vs_real/{n}", 2),
             ", ".join(str(next(r for r in d["runs"] if r["norm"] == n)["diverged_at"] or "none")
                       for d in seed_details(record))] for n in norms]
    table = Table(["model", "final reconstruction loss", "paper: final loss", "best running reconstruction loss",
                   "paper: running loss", "sample spread ÷ real", "diverged at (per seed)"], rows,
                  note=f"final reconstruction loss: mean squared error per pixel and colour channel after "
                       f"{config['final_steps']} RMSProp steps on the code, over {config['final_images']} held-out "
                       f"images, at the end of training (lower is better). best running reconstruction loss: the "
                       f"lowest, over the evaluations during training, of the same loss after {config['eval_steps']} "
                       f"steps on {config['eval_images']} other held-out images. paper: Xiang & Li's Table 7 "
                       f"(CIFAR-10, Appendix D.3), at the model's optimal iteration / at iteration 500,000, "
                       f"final = 2,000 steps on 2,000 images, running = 50 steps on 400 images; their models trained "
                       f"hundreds of times longer, so compare rankings, not values. sample spread ÷ real: the standard "
                       f"deviation of each pixel over the {config['sample_codes']} samples from fixed codes, averaged "
                       f"over pixels, divided by the same for {config['sample_codes']} real training images (about 1: "
                       f"as varied as real images; near 0: the samples have collapsed to one image). Each of our "
                       f"cells: mean ± half-width of the 95% interval over seeds (n = seeds).")

    def draw(fig):
        ax = fig.subplots()
        for k, n in enumerate(norms):
            bands(ax, [d["runs"][k]["eval"] for d in seed_details(record)], marker="o", label=n)
        ax.set(xlabel="training iteration", ylabel=f"reconstruction loss ({config['eval_steps']} steps)")
        ax.legend()

    def discriminator(fig):
        ax = fig.subplots()
        for k, n in enumerate(norms):
            bands(ax, [d["runs"][k]["loss_curves"]["d_real"] for d in seed_details(record)], label=n)
        ax.axhline(math.log(2), color="grey", lw=0.8, ls=":")
        ax.set(xlabel="training iteration", ylabel="D's loss on real images")
        ax.legend()

    return Report(record, [table], [
        Figure("Running reconstruction loss (line: mean over seeds; band: lowest to highest seed)", draw),
        Figure("Discriminator's loss on real images (dotted: ln 2, an undecided discriminator; line: mean over seeds; "
               "band: lowest to highest seed)",
               discriminator)], verdicts(record))


EXPERIMENT = Experiment(
    name="gan_weight_norm_cifar",
    description="Xiang & Li's DCGAN on CIFAR-10, vanilla vs BN vs WN (Table 1, Appendix D.3): RMSProp as §5.1, running "
                "reconstruction loss (fixed test images), sample grids from fixed codes, final reconstruction loss.",
    configs=CONFIGS, run=run, metrics=metrics, report=report,
)
