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
# Every normalization paper compares its layer with two or three others, each under its own
# network, data, budget and tuning. This notebook puts **all of labnorm's normalizations — and no
# normalization at all — in one harness**: the same network, the same data and data order, the same
# seeds, one learning-rate rule and one training budget, at batch 2, 8, 32 and 128, with the step
# time of each layer measured beside its accuracy. In this notebook we
#
# 1. state the rules every run follows (the learning rate and the budget per batch size) and
#    compute them by hand;
# 2. build the paired interval that decides whether two norms differ, from scratch, and prove it
#    equal to `labnorm.stats`;
# 3. read the table: one ranking per batch size, where a mark says which differences the seeds
#    can tell from noise — so the table never ranks noise.
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

# %% [markdown]
# **The `gpu` scale on Colab.** Choose a GPU runtime (Runtime → Change runtime type), then run
# `%env LABNORM_SCALE=gpu` in a new cell here, before the next one: the experiment below then runs
# one seed at its full configuration (`cpu` is the default, `smoke` the quick check).
# Projected cost on a T4-class GPU, one seed: `norm_zoo_cifar` about **3.0 h**. This figure is projected, not
# measured: a CPU dry run's time per image divided by 100, and at least 5 ms per training step
# (small batches are bound by kernel launches); a T4 also lacks the bf16 tensor cores that
# labnorm's training loop uses on CUDA. The run is saved after every (norm, batch) unit, so a
# Colab session that ends early keeps what it finished; run the same command again to continue.
# To measure on your own GPU first, run `!python -m labnorm run norm_zoo_cifar --scale gpu --dry-run`:
# it takes 2 training steps and 1 evaluation batch of every arm and prints the step times, the
# projected full run and the peak memory.

# %%
import math

import matplotlib.pyplot as plt
import torch

import labnorm
from labnorm import experiments
from labnorm.experiments import norm_zoo_cifar
from labnorm.models import build_model
from labnorm.norms import norm_fuses_activation

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 72  # keeps the saved notebook small
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## Theory: what differs between the norms, and what must not differ between the runs
#
# Every norm of the zoo computes statistics over some set of values of an $[N, C, H, W]$ feature
# map (notebook 09 draws each set). Only a few of those sets include **other samples of the batch**:
#
# | where the statistics come from | `norm=` names | at batch 2 |
# |---|---|---|
# | the batch | `bn`, `brn` (Batch Renorm), `gbn:16` (Ghost BN), `ws+bn`, `bcn:G` (Batch-Channel Norm), `sn` (Switchable Norm, partly), `evob0` (EvoNorm-B0, its variance) | estimated from 2 samples: noisy in training, and the eval-mode running averages drift from them |
# | each sample alone | `gn:G`, `ws+gn:G`, `ln`, `ln2d`, `in`, `rms`, `frn` (FRN + TLU), `evos0:G` (EvoNorm-S0) | the same computation as at batch 128 |
# | nothing | `wn` (weight norm, in the conv), `dyt` (Dynamic Tanh), `none` | the same computation as at batch 128 |
#
# So the small-batch papers predict that the first group loses accuracy as the batch shrinks and
# the others do not. But a batch size also changes the **optimization**: the step count, the noise
# of each gradient, and the learning rate that suits it. A fair comparison must fix those by rules
# stated in advance and applied to every norm alike:
#
# * **Learning rate, linear scaling** (Goyal et al., [2017](https://arxiv.org/abs/1706.02677)): the
#   one-cycle peak is $\eta_B = \eta_{128} \cdot B / 128$ with $\eta_{128} = 0.2$. SGD's update over
#   $B$ images is $\eta_B$ times their mean gradient, so $\eta_B / B$ is the step per image: linear
#   scaling keeps it the same at every batch. No norm gets its own learning rate.
# * **Budget, equal images seen with a step cap**: every run sees `epochs × train_images` images,
#   but takes at most `max_steps` steps (a CPU's batch-2 step costs nearly as much as a batch-32 one):
#   past the cap, fewer epochs first, then a smaller subset of the training images.
# * **Seeds, paired**: every run of seed $s$ starts from the same seed and sees the same images in the
#   same order, so two norms are compared through their per-seed differences.
#
# The next cell computes both rules by hand for the `cpu` configuration and compares them with the
# experiment's own `budget()` and `lr_at()`; the checked lines must print `True`.

# %%
# NBVAL_CHECK_OUTPUT
zoo = experiments.get("norm_zoo_cifar")
cpu = zoo.config("cpu")
for bs in cpu.batch_sizes:
    # Images per epoch in whole batches, and the steps the full budget would take
    per_epoch = cpu.train_images // bs
    if cpu.epochs * per_epoch <= cpu.max_steps:
        by_hand = (cpu.epochs, cpu.train_images)  # the whole budget fits under the cap
    elif per_epoch <= cpu.max_steps:
        by_hand = (cpu.max_steps // per_epoch, cpu.train_images)  # fewer epochs
    else:
        by_hand = (1, cpu.max_steps * bs)  # one epoch of a smaller subset: max_steps full batches
    lr = cpu.base_lr * bs / cpu.base_batch
    print(f"batch {bs:3d}: {by_hand[0]} epoch(s) of {by_hand[1]:,} images, {by_hand[0] * (by_hand[1] // bs):,} steps, "
          f"peak lr {lr:g}:", by_hand == norm_zoo_cifar.budget(cpu, bs) and lr == norm_zoo_cifar.lr_at(cpu, bs))

# %% [markdown]
# One network for all: the fast ResNet of notebook 07 (a prep conv, three conv stages with
# max-pooling, two residual stages, global max-pool, a linear head), thinned to `width` × its
# channels at cpu scale. A norm that includes its activation (FRN + TLU, the EvoNorms) replaces the
# whole *norm + ReLU* pair, so the model adds no ReLU after it. The cell builds every norm of the
# `cpu` table and counts its parameters:

# %%
# NBVAL_CHECK_OUTPUT
for norm in cpu.norms:
    model = build_model(cpu.model, norm, width=cpu.width)
    relus = sum(isinstance(m, torch.nn.ReLU) for m in model.modules())
    params = sum(p.numel() for p in model.parameters())
    fused = "its own activation, no ReLU after it" if norm_fuses_activation(norm) else "followed by a ReLU"
    print(f"{norm:9s} {params:6,d} parameters, {relus:2d} ReLU modules; the norm is {fused}")

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
d = [x - y for x, y in zip(a, b)]
n = len(d)
mean = sum(d) / n
sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
half = student_t.ppf(0.975, n - 1) * sd / math.sqrt(n)
ours = paired_difference(a, b)
print(f"paired difference {mean:+.4f} ± {half:.4f}:", math.isclose(ours.mean, mean) and math.isclose(ours.high - ours.mean, half))
print("A's and B's own intervals overlap:", summarize(a).low < summarize(b).high)
print("the paired interval lies above 0:", mean - half > 0, "->", labnorm.verdict(a, b, direction="higher").word)

# %% [markdown]
# ## Experiment: every norm × batch 2, 8, 32, 128
#
# The experiment lives in `labnorm.experiments.norm_zoo_cifar`. At `cpu` and `gpu` scale the saved
# record of that scale is loaded (written by `python -m labnorm run norm_zoo_cifar --scale cpu --seeds 3`,
# saved after every (norm, batch) unit and resumable; a record that is still partial says which runs
# are missing). **At `smoke` scale — the quick check CI runs — the configuration is only 3 norms
# (BN, GN, FRN) at batch 2 and 16, on a few dozen images, one seed, run live: a check that the
# pipeline works, not a result.** The configuration printed first states the rules; each table's
# title states its budget, learning rate and BN's accuracy.

# %%
print(zoo.config(SCALE))
record = experiments.load_or_run("norm_zoo_cifar", SCALE)
print(f"{record['source']} record")
zoo.report(record).show()

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
    zoo.report(reference).show()

# %% [markdown]
# What the record shown can and cannot say, computed from it: for each batch size, the norms that
# are significantly better than BN (▲), those significantly worse (▼), and how many are
# indistinguishable from the best.

# %%
shown = reference if reference is not None else record
for table in zoo.report(shown).tables:
    above = [row[1] for row in table.rows if str(row[3]).endswith("▲")]
    below = [row[1] for row in table.rows if str(row[3]).endswith("▼")]
    tied = [row[1] for row in table.rows if row[4] in ("best", "≈")]
    print(table.title.split(":")[0] + f": above bn: {', '.join(above) or 'none'}; below bn: {', '.join(below) or 'none'}; "
          f"{len(tied)} norm(s) not significantly below the best ({', '.join(tied)})")

# %% [markdown]
# ## Why a net can fail to start
#
# A row at 10.0% with no blow-up is a net that **never started learning**: the report lists such rows
# (training loss within 0.01 of $\ln 10$, the loss of a uniform guess). The reason is visible before
# the first step. Without statistics to rescale it, the signal shrinks at every layer of a
# default-initialized conv net — and Dynamic Tanh shrinks it further, since $\tanh(\alpha x) \approx \alpha x$
# with $\alpha = 0.5$ for small inputs. The cell measures, on one random batch at initialization, the
# spread of the logits and the gradient that reaches the first convolution:

# %%
x = torch.randn(128, 3, 32, 32)
y = torch.randint(0, 10, (128,))
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
# With the same learning rate for every norm, a first-layer gradient a thousand times smaller than
# BN's means steps a thousand times smaller: such a net may not leave the uniform guess within the
# budget (the report's "never started learning" line names the runs that did not), and `none` and
# `wn` start slowly. A net without normalization needs an
# initialization that preserves the signal (e.g. [Fixup](https://arxiv.org/abs/1901.09321), or the data-dependent init of notebook 02)
# or a learning rate of its own; this harness gives neither, by design, and its table measures the
# norms under that one recipe.

# %% [markdown]
# ## What we found
#
# * **Read the marks, not the order.** The rank is the order of the means; only ▲ / ▼ and "≈ best"
#   say which differences the seeds support. Rows marked "≈" are tied with the best *on this
#   evidence*: three seeds resolve differences of a few points at best, and a tie here is not a proof
#   of equality.
# * **Compare norms within a batch size.** The budget rule gives batch 2 fewer images than the
#   others (the step cap), and linear scaling gives it a small learning rate: the accuracy of one norm
#   across batch sizes mixes the norm's behaviour with the budget's. The figure of accuracy against
#   batch size is therefore a *shape* — does a norm lose more than its neighbours as the batch shrinks? —
#   and BN's dotted line is the reference in every panel.
# * **Step time is a ratio from the same run**, measured by alternating short training bursts of the
#   norm's net and of BN's, at each batch size, in the same process: a same-moment comparison on a
#   shared machine, not a benchmark (`benchmarks/bench_zoo.py` times each layer, eager and compiled).
#   An eager layer written in Python (most of the zoo) pays for each extra operation it launches,
#   which a fused CUDA kernel or `torch.compile` removes.
# * **The scale limits every conclusion.** The papers train ResNets on ImageNet for tens of
#   thousands of steps with their own tuning; this is a thin fast ResNet on a CIFAR-10 budget of
#   minutes per run on a CPU, one learning-rate rule for every norm (some, like `none`, `wn` and `dyt`,
#   would want their own), Batch Renorm without its warm-up, and Dynamic Tanh outside the transformers
#   it was made for. The `gpu` scale trains the full width on all 50,000 images for up to 10 epochs.

# %% [markdown]
# ## Exercises
#
# 1. Replace linear scaling by square-root scaling ($\eta_B = \eta_{128}\sqrt{B / 128}$): make a
#    `dataclasses.replace` of the cpu config and change `lr_at`. Which rows of the batch-2 table move?
# 2. The step cap gives batch 2 only 6,000 images at cpu scale. Raise `max_steps` to 10,000 for one
#    norm pair (BN and GN) and three seeds: does the batch-2 verdict change?
# 3. `gbn:16` is BN at batch 2 and 8. Its difference from BN there is pure run-to-run noise: compare
#    it with the paired intervals of the other rows at those batch sizes.
# 4. Time BN and GN with `torch.compile` (`benchmarks/bench_norms.py`): how much of GN's step-time
#    ratio is eager overhead?
