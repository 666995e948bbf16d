# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Which normalization, at which batch size?
#
# > *"GN's computation is independent of batch sizes, and its accuracy is stable in a wide range of
# > batch sizes."* — Wu & He,
# > [Group Normalization](https://arxiv.org/abs/1803.08494) (2018)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/10_which_normalization.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/10_which_normalization.ipynb)
#
# **The short answer is on the site:** [Which normalization should I use?](https://labnorm.github.io/labnorm/choose/)
# gives a decision flow, what each norm computes, needs and costs, and what our runs show — computed
# from the same records this notebook reads. This notebook is the evidence behind it: **all of
# labnorm's normalizations — and no normalization at all — in one harness**: the same network, the
# same data and data order, the same seeds, one rule for the learning rate and one training length,
# trained to the end at several per-worker batch sizes, with the step time of each norm measured beside
# its accuracy. The record is saved run by run (about 11 hours of this CPU in all); while it is partial,
# every table, figure and verdict below says which runs are still to come. In this notebook we
#
# 1. see the problem every norm solves: without one, a deep net barely passes a signal at initialization;
# 2. sort the norms by the one thing that separates them — which values share a mean and a variance —
#    and see what a *per-worker batch* changes;
# 3. build the paired interval that decides whether two norms differ, from scratch;
# 4. read the record: each norm's paired difference from BN with its interval, at every batch size,
#    and accuracy against cost.
#
# Each layer is built from scratch in its own notebook: BN and GN in 01, WS and BCN in 03,
# Switchable Norm in 05, weight norm in 02, the rest of the zoo (LN, IN, RMSNorm, Ghost BN, Batch
# Renorm, FRN, EvoNorm, DyT) in 09.

# %%
# labnorm set-up: on Colab, or wherever labnorm is missing, fetch the repository
# (code + saved reference results) and install labnorm from it. Its dependencies are
# lower bounds that Colab already meets, so pip leaves torch as it is.
import importlib
import importlib.util
import os
import subprocess
import sys

REPO = "https://github.com/labnorm/labnorm"
if importlib.util.find_spec("labnorm") is None:
    subprocess.run(["git", "clone", "--depth", "1", REPO, "labnorm-repo"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "./labnorm-repo"], check=True)
    os.environ.setdefault("LABNORM_RESULTS", os.path.abspath("labnorm-repo/results"))
    importlib.invalidate_caches()

# %%
import math
from dataclasses import replace

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

import labnorm
from labnorm import choose, experiments
from labnorm.experiments import Table
from labnorm.experiments.plots import readable_style
from labnorm.models import build_model
from labnorm.norms import make_norm, norm_fuses_activation

readable_style()  # figures at 100 dpi, no text under 9 pt
torch.manual_seed(0)
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## The problem: without a norm, a deep net barely passes a signal
#
# Take a conv net — here the fast ResNet of notebook 07 (a prep conv, three conv stages with pooling,
# two residual stages, a linear head), thinned to an eighth of its width; the harness below trains a
# different net, the whitened one of notebook 11, but what this shows is true of plain conv nets at
# initialization — and look at it **before any training**, on one random batch: how spread out are its *logits* (the ten class scores it outputs),
# what is its loss, and how large is the gradient that reaches its first convolution? The same net is
# built with BN, with GN, with weight norm (`wn`, which normalizes the weights, not the activations),
# with Dynamic Tanh (`dyt`, no statistics at all) and with no norm:

# %%
x = torch.randn(64, 3, 32, 32)
y = torch.randint(0, 10, (64,))
print(f"{'norm':5s} {'logit std':>10s} {'loss':>7s} {'|grad| of the first conv':>25s}")
for norm in ("bn", "gn:4", "none", "wn", "dyt"):
    torch.manual_seed(0)
    model = build_model("fast_resnet", norm, width=0.125).train()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    first_conv = next(p for p in model.parameters() if p.dim() == 4)
    print(f"{norm:5s} {logits.std().item():10.1e} {loss.item():7.4f} {first_conv.grad.norm().item():25.1e}")

# %% [markdown]
# Without statistics to rescale it, the signal shrinks at every layer of a default-initialized conv
# net: the logits of `none` and `wn` are twenty times less spread than BN's, and Dynamic Tanh shrinks
# them further, since $\tanh(\alpha x) \approx \alpha x$ with $\alpha = 0.5$ for small inputs. Their loss
# is $\ln 10 = 2.303$ — a uniform guess over the 10 classes — and the gradient that reaches the first
# layer is roughly a hundred (`none`) to over a thousand (`dyt`) times smaller than BN's. At BN's
# learning rate that means steps that much smaller: such a net may not leave the uniform guess within
# its budget. A net without normalization needs an initialization that preserves the signal (e.g.
# [Fixup](https://arxiv.org/abs/1901.09321), or the data-dependent init of notebook 02) or a larger
# learning rate. The harness below gives neither, by design: each norm gets BN's tuned rate, lowered
# where its LR range test blows up sooner than BN's or reaches its lowest loss more than 3× sooner,
# never raised — a short range test from initialization shows which rates blow a net up or send it
# back to the uniform guess, not which train it best (the record's ablation table shows what the
# uncapped ratio did to GN and BCN, and what GN reached at BN's rate; its training loss sat at $\ln 10$
# for most of that run, the record's notes say).

# %% [markdown]
# ### Try it: how deep before the signal dies? (⏱ ~5 min)
#
# Write `spreads(use_bn, depth=10)`: feed a random batch $[32, 16, 16, 16]$ (standard deviation 1)
# through `depth` blocks of *3×3 conv 16 → 16 without bias* (default initialization), then
# `labnorm.BatchNorm2d(16)` if `use_bn`, then ReLU, and return the standard deviation of the
# activations after each block. The check asks that without a norm the spread after 10 blocks is under
# 1% of the input's, and that with BN it stays between 0.3 and 3.
#
# <details><summary>Hint</summary>
#
# `torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)` inside the loop (a fresh conv per block), under
# `torch.no_grad()`; `x.std().item()` after each ReLU. Seed with `torch.manual_seed(0)` first.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def spreads(use_bn: bool, depth: int = 10) -> list[float]:
    torch.manual_seed(0)
    h = torch.randn(32, 16, 16, 16)
    out = []
    with torch.no_grad():
        for _ in range(depth):
            h = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)(h)
            if use_bn:
                h = labnorm.BatchNorm2d(16)(h)
            h = torch.relu(h)
            out.append(h.std().item())
    return out


# %% tags=["check"]
plain, normed = spreads(False), spreads(True)
print("spread after each block, no norm:", " ".join(f"{s:.0e}" for s in plain))
print("spread after each block, BN:     ", " ".join(f"{s:.2f}" for s in normed))
assert plain[-1] < 0.01 and 0.3 < normed[-1] < 3, (plain[-1], normed[-1])
print("✓ without a norm the signal fades block by block; BN gives it back its spread at every block")

# %% [markdown]
# ## The idea: which values share one mean and one variance
#
# Every norm of the zoo rescales each value $x$ of an $[N, C, H, W]$ feature map (images × channels ×
# height × width) by a mean and a spread computed from **some set of values** of that map — that is how
# it gives each layer its unit spread back. Which set is the whole difference between them (notebook 09
# draws each one as a block of the $N \times C \times H{\cdot}W$ cube), and it decides what a norm needs:
#
# * if the set includes **other images of the batch** ($N$), the norm needs a batch: in training its
#   statistics are estimated from the images at hand — noisy when they are few — and in evaluation it
#   uses a *running average* of them instead
#   ([glossary](https://labnorm.github.io/labnorm/glossary/#running-statistics));
# * if it does not, the layer computes the same thing at any batch size, in training and in evaluation;
# * a few norms compute no statistics of the activations at all: weight norm normalizes the weights,
#   Dynamic Tanh squashes each value by itself.
#
# The table is probed from each layer of the experiment (`labnorm.choose.anatomy`): one value of a random
# map is moved, and the outputs (or input gradients) that move with it name the values that share its
# statistics — other images ($N$), all channels ($C$) or those of its group ($C/G$), other positions
# ($H{\cdot}W$). A *fused* norm includes its activation (FRN + TLU, the EvoNorms replace the
# *norm + ReLU* pair); *in the conv* means the technique normalizes the conv's weights.

# %%
zoo = experiments.get("norm_zoo_cifar")
cpu = zoo.config("cpu")
rows = []
for spec in cpu.norms:
    a = choose.anatomy(choose.family(spec))
    rows.append([spec, a.over_text, "yes" if a.needs_batch else "no", a.running or "—",
                 "fused" if a.fuses_activation else "—", a.in_conv or "—"])
display(Table(["norm=", "statistics shared across", "needs a batch?", "for evaluation", "activation", "in the conv"],
              rows))

# %% [markdown]
# ### Try it: which norms see the other images? (⏱ ~5 min)
#
# Write `sees_other_samples(spec)`: build `make_norm(spec, 32)` in training mode, pass a random batch
# $[4, 32, 8, 8]$, then the same batch with only image 3 changed (add 1 to it), and return whether the
# output for image 0 moved. The check compares your answer with the table's "needs a batch?" for BN,
# GN, LN, IN, FRN and Switchable Norm.
#
# <details><summary>Hint</summary>
#
# Clone the input before changing it, and compare `out[0]` of the two passes with `torch.allclose`
# under `torch.no_grad()`. (Batch Renorm would fool this forward-only probe: until its corrections clip,
# its forward pass equals its running statistics', and the batch shows only in the backward pass.)
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def sees_other_samples(spec: str) -> bool:
    torch.manual_seed(0)
    layer = make_norm(spec, 32).train()
    batch = torch.randn(4, 32, 8, 8)
    moved = batch.clone()
    moved[3] += 1.0
    with torch.no_grad():
        return not torch.allclose(layer(batch)[0], layer(moved)[0])


# %% tags=["check"]
names = ("bn", "gn", "ln", "in", "frn", "sn")
got = {n: sees_other_samples(n) for n in names}
print(got)
assert got == {n: choose.anatomy(n).needs_batch for n in names}
print("✓ only the norms with batch statistics (BN, and SN through its BN branch) move with another image")

# %% [markdown]
# ## A batch of 2: per worker, or the whole step?
#
# "BN at batch 2" names two different runs, and the notebooks of this project use both:
#
# * **true batch-2 SGD**: each optimizer step sees 2 images, so BN's statistics *and* the gradient come
#   from the same 2 — and the optimization changes with them (many more, noisier steps at a learning
#   rate scaled down with the batch). Notebooks 01 and 09 train this way.
# * **per-worker batch 2** ([glossary](https://labnorm.github.io/labnorm/glossary/#per-worker-batch)): a
#   data-parallel job spreads each optimizer batch over many workers (GPUs); the gradient is averaged over
#   all their images, but each BN layer normalizes only the 2 images on its own worker. This is the GN
#   paper's "images per GPU", and only the statistics change. `labnorm.set_norm_batch(model, 2)` simulates
#   it on one device by normalizing each group of 2 consecutive images by itself (notebook 11 shows it
#   equals real DDP).
#
# The cell computes per-worker BN by hand — the mean and variance of each worker's 2 images, per
# channel — and checks it against labnorm's layer; the checked lines must print `True`.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
x = torch.randn(8, 4, 5, 5, dtype=torch.float64)  # 8 images = 4 workers of 2
bn = labnorm.BatchNorm2d(4).double().train()
labnorm.set_norm_batch(bn, 2)
ours = bn(x)
groups = x.view(4, 2, 4, 5, 5)  # [worker, image, C, H, W]
mean = groups.mean(dim=(1, 3, 4), keepdim=True)
var = groups.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
by_hand = ((groups - mean) / torch.sqrt(var + bn.eps)).view_as(x)
print("per-worker BN by hand == labnorm:", torch.allclose(ours, by_hand))
moved = x.clone()
moved[2:] += 1.0  # change every image but worker 0's
print("worker 0's outputs ignore the other workers' images:", torch.allclose(bn(moved)[:2], ours[:2]))
whole = labnorm.BatchNorm2d(4).double().train()
print("with whole-batch statistics they do not:", not torch.allclose(whole(moved)[:2], whole(x)[:2]))

# %% [markdown]
# ## The harness: what must not differ between the runs
#
# A fair comparison fixes everything but the norm — the network, the data and its order, the seeds,
# how the learning rate is chosen, how long each run trains — by rules stated in advance and applied to
# every norm alike. Under true small-batch SGD the batch would also change the step count, the noise of
# each gradient and the learning rate that suits it; with one optimizer batch and per-worker statistics
# only the norm's statistics change. The experiment's module states its rules:

# %%
display(Markdown(importlib.import_module("labnorm.experiments.norm_zoo_cifar").__doc__))

# %% [markdown]
# One network for all (`cpu.model`), thinned to `width` × its channels at cpu scale. A norm that
# includes its activation replaces the whole *norm + activation* pair, so the model adds no activation
# after it. The cell builds every norm of the `cpu` table and counts its parameters:

# %%
# NBVAL_CHECK_OUTPUT
print(f"{cpu.model} at width {cpu.width:g}")
for norm in cpu.norms:
    model = build_model(cpu.model, norm, width=cpu.width)
    params = sum(p.numel() for p in model.parameters())
    fused = "its own activation, none after it" if norm_fuses_activation(norm) else "followed by the model's activation"
    print(f"{norm:9s} {params:7,d} parameters; the norm is {fused}")

# %% [markdown]
# ## The paired interval, from scratch
#
# Two norms A and B trained on the same seeds give accuracies $a_s$ and $b_s$. Their difference
# is judged from the per-seed differences $d_s = a_s - b_s$: with $n$ seeds, mean $\bar d$ and sample
# standard deviation $s_d$, the 95% interval is Student-t's
#
# $$\bar d \pm t_{0.975,\,n-1}\,\frac{s_d}{\sqrt n}.$$
#
# The table marks A ▲ (better than BN) only when the whole interval lies above 0, ▼ when it lies
# below, and leaves it unmarked otherwise; "≈ best" marks every norm whose interval against the top
# row does not lie wholly below 0. With 3 seeds, $t_{0.975,2} = 4.30$: a difference must be large
# against its seed-to-seed spread to be marked. Pairing matters because the seed moves both arms
# together — the cell shows a case where the arms' own intervals overlap but the paired one does not.

# %%
# NBVAL_CHECK_OUTPUT
from scipy.stats import t as student_t

from labnorm.stats import paired_difference, summarize

a = [0.612, 0.575, 0.641]  # accuracies of norm A on seeds 0, 1, 2 (an example, not a result)
b = [0.598, 0.560, 0.629]  # norm B on the same seeds: worse on each, by a little
d = [u - v for u, v in zip(a, b)]
n = len(d)
mean = sum(d) / n
sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
half = student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)
ours = paired_difference(a, b)
print(f"paired difference {mean:+.4f} ± {half:.4f}:", math.isclose(ours.mean, mean) and math.isclose(ours.high - ours.mean, half))
print("A's and B's own intervals overlap:", summarize(a).low < summarize(b).high)
print("the paired interval lies above 0:", mean - half > 0, "->", labnorm.verdict(a, b, direction="higher").word)

# %% [markdown]
# ## Experiment: every norm at every batch size
#
# The experiment lives in `labnorm.experiments.norm_zoo_cifar`. At `cpu` and `gpu` scale the saved
# record of that scale is loaded (written by `python -m labnorm run norm_zoo_cifar --scale cpu --seeds 3`,
# saved after every (norm, batch) unit and resumable; a record that is still partial says which runs
# are missing). **At `smoke` scale — the quick check CI runs — a few norms at two batch sizes train on a
# few hundred images at most, one seed, live: a check that the pipeline works, not a result** (the
# configuration printed first says which). Each table's title states its batch size and BN's accuracy; its notes state
# the rules. The report's accuracy-against-cost figure is drawn further down, with its labels apart.

# %%
print(zoo.config(SCALE))
record = experiments.load_or_run("norm_zoo_cifar", SCALE)
print(f"{record['source']} record")


def without_cost_figure(report):
    return replace(report, figures=[f for f in report.figures if "against cost" not in f.caption])


without_cost_figure(zoo.report(record)).show()

# %% [markdown]
# The same record as figures you can turn (on the site and in Jupyter or Colab): hover a cell of the
# heatmap for its mean, interval and paired difference from BN; hover a point of the scatter for a norm's
# accuracy against its step time.

# %%
zoo.report(record).explore()

# %% [markdown]
# ## Reference results
#
# The largest saved record of this experiment (a gpu run first), with its provenance line.

# %%
reference = experiments.reference("norm_zoo_cifar")
if reference is None:
    print("no saved reference run found (set LABNORM_RESULTS to the repository's results/ folder)")
elif reference["scale"] == SCALE:
    print("the reference is the record shown above")
else:
    without_cost_figure(zoo.report(reference)).show()

# %% [markdown]
# ## The norm effect: each norm's paired difference from BN
#
# A norm's accuracy mixes the norm with everything its run shares with BN's: the budget, the
# learning-rate rule, how far training got. Its *paired* difference from BN on the same seeds keeps
# only the norm. The figure draws it for every norm at every batch size of the record (its columns are
# read from the record), in accuracy points with its 95% interval: a filled marker where the interval
# lies wholly on one side of 0. Above it, whether the record can decide at all: by the project's rule, a
# CIFAR-10 baseline under 85% test accuracy is early in training, and no comparison on it decides which
# norm is better (`labnorm.choose.standing`, the rule of `labnorm.experiments.claims`).

# %%
shown = reference if reference is not None else record
grid, cols = choose.grid(shown), choose.columns(shown)
base = shown["config"].get("baseline", "bn")
others = [n for n in shown["config"]["norms"] if n != base]
limit = choose.standing(shown)
print(limit or "trained by the project's rule: an interval on one side of 0 decides")
print("columns:", choose.batch_meaning(shown)["text"].replace("{b}", "b"))

fig, axes = plt.subplots(1, len(cols), figsize=(2.9 * len(cols) + 1.4, 0.3 * len(others) + 1.8), sharey=True,
                         squeeze=False)
for ax, col in zip(axes[0], cols):
    for row, norm in enumerate(others):
        cell = grid[norm].get(col)
        if cell is None or cell.diff is None or cell.diff.mean is None:
            continue
        dm = 100 * cell.diff.mean
        err = [[0.0], [0.0]] if cell.diff.low is None else [[dm - 100 * cell.diff.low], [100 * cell.diff.high - dm]]
        color = "C0" if dm >= 0 else "C3"
        ax.errorbar(dm, row, xerr=err, fmt="o", ms=5, capsize=2, lw=1, color=color,
                    mfc=color if cell.mark else "white")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_title(choose.column_label(shown, col))
    ax.set_xlabel(f"accuracy − {base} (points)")
    ax.grid(axis="x", alpha=0.3)
axes[0][0].set_yticks(range(len(others)), others)
axes[0][0].invert_yaxis()
fig.suptitle(("Early in training, so these cannot decide: " if limit else "")
             + f"each norm's paired difference from {base}, 95% intervals over {len(shown['seeds'])} seeds")
plt.show()

# %% [markdown]
# What the record shown can and cannot say, computed from it: for each batch size, the norms whose
# paired interval lies wholly above or below BN's, and how many cannot be told from BN.

# %%
for col in cols:
    cells = [grid[n][col] for n in others if col in grid[n] and grid[n][col].diff is not None
             and grid[n][col].diff.mean is not None]  # paired with BN's seeds in this column
    if not cells:  # a partial record: no norm has paired seeds with BN in this column yet
        print(f"{choose.column_label(shown, col)}: no norm compared with {base} yet (the record is partial)")
        continue
    above = [c.norm for c in cells if c.mark == "▲"]
    below = [c.norm for c in cells if c.mark == "▼"]
    print(f"{choose.column_label(shown, col)}: above {base}: {', '.join(above) or 'none'}; below {base}: "
          f"{', '.join(below) or 'none'}; {len(cells) - len(above) - len(below)} not told apart from {base}")
if limit:
    print("These networks are early in training: by the project's rule none of these differences decides.")

# %% [markdown]
# ## Accuracy against cost
#
# Each norm's test accuracy against its step time ÷ BN's, measured in the same run by alternating short
# training bursts of the norm's net and of BN's (a same-moment ratio on a shared machine, not a
# benchmark: `benchmarks/bench_zoo.py` times each layer, eager and compiled), at the largest and the
# smallest batch of the record. Error bars: 95% intervals over seeds. The names stand in a column at
# the right of each panel, each as near its point's height as its neighbours allow, joined to its point.

# %%
def label_column(ax, names, xs, ys, gap=0.045):
    """Names in a column at the right of `ax`, each as near its point's height as the names above and below
    it allow (at least `gap` of the axes' height apart, so none overlaps), joined to its point by a line."""
    lo, hi = ax.get_ylim()
    order = sorted(range(len(names)), key=lambda i: ys[i])
    at = [(ys[i] - lo) / (hi - lo) for i in order]  # the points' heights, as fractions of the axes
    for k in range(1, len(at)):  # push up what sits too close above the previous name
        at[k] = max(at[k], at[k - 1] + gap)
    top = 1.0 - gap / 2
    for k in reversed(range(len(at))):  # then down from the top, where the column ran past it
        top = min(at[k], top)
        at[k], top = top, top - gap
    for k, i in enumerate(order):
        ax.annotate(names[i], (xs[i], ys[i]), xytext=(1.03, at[k]), textcoords="axes fraction", va="center",
                    fontsize=9, arrowprops=dict(arrowstyle="-", lw=0.5, color="0.6"))


ends = list(dict.fromkeys([cols[0], cols[-1]]))
fig, axes = plt.subplots(1, len(ends), figsize=(5.6 * len(ends), 5.0), sharey=True, squeeze=False)
for ax, col in zip(axes[0], ends):
    names = [n for n in shown["config"]["norms"] if col in grid[n] and grid[n][col].step_ratio.mean is not None]
    cells = [grid[n][col] for n in names]
    xs, ys = [c.step_ratio.mean for c in cells], [100 * c.acc.mean for c in cells]
    xerr = [[0.0 if c.step_ratio.low is None else c.step_ratio.mean - c.step_ratio.low for c in cells],
            [0.0 if c.step_ratio.high is None else c.step_ratio.high - c.step_ratio.mean for c in cells]]
    yerr = [[0.0 if c.acc.low is None else 100 * (c.acc.mean - c.acc.low) for c in cells],
            [0.0 if c.acc.high is None else 100 * (c.acc.high - c.acc.mean) for c in cells]]
    ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o", ms=4, capsize=2, lw=0.8)
    ax.axvline(1.0, color="k", lw=0.5, ls=":")
    ax.set(title=choose.column_label(shown, col), xlabel=f"step time ÷ {base}")
axes[0][0].set_ylabel("test accuracy (%)")
for ax, col in zip(axes[0], ends):  # once the shared y-axis has its final limits
    names = [n for n in shown["config"]["norms"] if col in grid[n] and grid[n][col].step_ratio.mean is not None]
    label_column(ax, names, [grid[n][col].step_ratio.mean for n in names], [100 * grid[n][col].acc.mean for n in names])
plt.show()

# %% [markdown]
# ## What we found
#
# * **Read the intervals, not the order.** The rank is the order of the means; only a paired interval on
#   one side of 0 (▲ / ▼ in the tables, a filled marker in the figure) says the seeds can tell a norm
#   from BN. Rows marked "≈" are tied with the best *on this evidence*: a few seeds resolve differences of
#   a few points at best, and a tie here is not a proof of equality.
# * **Is the record trained?** The lines above the paired-difference figure say it, by the project's
#   rule. A record of networks early in training ranks how fast each norm *starts*, not where it ends:
#   every one of its comparisons is *inconclusive at this scale*, whatever its interval says, and the
#   site's guide says so beside its rows.
# * **Compare norms within a per-worker batch.** The optimizer sees the same 1,024 images per step in
#   every column; only the batch statistics change with the per-worker batch, so a norm without them is
#   the same computation in every column (trained once, shown four times). The accuracy-against-batch
#   figure is a *shape* — does a norm lose more than its neighbours as its statistics shrink to 2 images?
#   — with BN's dotted line as the reference in every panel.
# * **A row at 10.0%** is a net that never learned: it diverged, or it never left the uniform guess, or
#   its eval mode fails (Batch Renorm at its paper's momentum 0.01: the extra unit its note reports).
#   The problem this notebook opened with is one reason: Dynamic Tanh starts from a signal far smaller
#   than BN's, and so did WN until its convs got the net's Dirac init through its reparametrization
#   (without it: the `@no-dirac` units, at 10.0% on every seed). FRN fails the other way round: the Dirac
#   filters hand a channel that FRN's TLU zeroed on a sample to the next FRN, which divides it by
#   $\sqrt{\epsilon}$, and its gradients at init reach ~1e10 (~0.3 without the Dirac init: `frn@no-dirac`).
#   And `none` and `wn` get rates the rule takes from range tests that blew up just as their loss began
#   to fall (the record's lr column), too small to leave the uniform guess in 5 epochs: a rule for all
#   norms, not a tuning for each.
# * **Step time is a ratio from the same run**, not a benchmark. An eager layer written in Python (most
#   of the zoo) pays for each operation it launches, which a fused kernel or `torch.compile` removes;
#   the site's guide gives each layer's benchmark, eager and compiled.
# * **The scale limits every conclusion.** The papers train ResNets on ImageNet for tens of thousands of
#   steps with their own tuning; this is the whitened fast net on CIFAR-10 for 5 epochs (minutes per run
#   on a CPU), one recipe tuned for BN with only the peak learning rate lowered for a norm whose range
#   test blows up, or reaches its lowest loss, sooner (GN's best rate may lie elsewhere again: the rule
#   is one rule for all, not a tuning per norm), Batch Renorm with its paper's warm-up compressed into
#   the run and moving averages at momentum 0.1 (the paper's schedule and 0.01 are made for runs of many thousand steps),
#   and Dynamic Tanh — a negative control — outside the Transformers it was made for.
#
# The site's guide, [Which normalization should I use?](https://labnorm.github.io/labnorm/choose/), turns
# this record, the trained `fast_cifar` runs of notebook 11 and the Transformer runs of notebook 12 into a
# decision flow, and reconciles the answers of notebooks 01, 09 and 10 to "is BN bad at batch 2?".

# %% [markdown]
# ## Exercises
#
# 1. `gbn:16` is BN whose statistics come from groups of 16 images: at the full batch it is BN with a
#    per-worker batch of 16, between BN's columns 8 and 32. Does its accuracy sit between them? What would
#    it mean if it did not?
# 2. Time BN and GN with `torch.compile` (`benchmarks/bench_zoo.py`): how much of GN's step-time
#    ratio is eager overhead?
# 3. Give `none` a learning rate of its own: run the LR range test of notebook 07 on the `none` net of the
#    problem cell and compare where its loss starts to fall with BN's.
# 4. Extend `sees_other_samples` to look at the input gradient too (call `backward` with a fixed random
#    gradient) and check that it now finds Batch Renorm's batch statistics.

# %% [markdown]
# ## Running this notebook at other scales
#
# **The `gpu` scale on Colab.** Choose a GPU runtime (Runtime → Change runtime type), then run
# `%env LABNORM_SCALE=gpu` in a new cell before the experiment's cell: it then runs one seed at its
# full configuration (`cpu` is the default, `smoke` the quick check). The run is saved after every
# (norm, batch) unit, so a Colab session that ends early keeps what it finished; run the same command
# again to continue. To measure on your own GPU first, run
# `!python -m labnorm run norm_zoo_cifar --scale gpu --dry-run`: it takes a couple of training steps of
# every arm and prints the step times, the projected full run and the peak memory.
#
# Back to the summary: [Which normalization should I use?](https://labnorm.github.io/labnorm/choose/)
