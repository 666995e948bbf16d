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
# # Weight Standardization and Batch-Channel Normalization
#
# > *"WS is targeted at the micro-batch training setting where each GPU typically has 1-2 images
# > for training."* — Qiao et al., [Micro-Batch Training with Batch-Channel Normalization and
# > Weight Standardization](https://arxiv.org/abs/1903.10520) (2019)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/03_weight_standardization.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/03_weight_standardization.ipynb)
#
# The seed is labml's annotated [Weight Standardization](https://nn.labml.ai/normalization/weight_standardization/index.html)
# page: reshape each conv weight to one row per output filter, take `var_mean`, subtract and divide,
# and train a VGG with it on CIFAR-10 — paired with Batch-Channel Normalization. Here we
#
# 1. write WS from scratch and prove it equal to `labnorm.WSConv2d` and to timm's formula,
# 2. derive its gradient and check numerically what the paper's smoothing argument rests on,
# 3. measure how far the five published variants of WS are from each other on trained weights,
# 4. build BCN and check it against `BatchNorm2d` → `GroupNorm`, and
# 5. train labml's VGG on CIFAR-10 with BN, WS+BN, GN, WS+GN and WS+BCN, counting dead channels
#    (the paper's elimination singularities) along the way.

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
# one seed at its full, paper-sized configuration (`cpu` is the default, `smoke` the quick check).
# Projected cost on a T4-class GPU, one seed: `ws_bcn_vgg` about **4.6 h**. These figures are projected, not
# measured: a CPU dry run's time per image divided by 100, and at least 5 ms per training step
# (small batches are bound by kernel launches); a T4 also lacks the bf16 tensor cores that
# labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run ws_bcn_vgg --scale gpu --dry-run`: it takes 2 training steps and 1 evaluation
# batch of every arm and prints the step times, the projected full run and the peak memory.

# %%

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F

import labnorm
from labnorm import experiments, results
from labnorm.weight_std import VARIANTS

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 72  # keeps the saved notebook small
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## Theory
#
# A conv weight $W$ of shape $[C_{out}, C_{in}, k_h, k_w]$ is $C_{out}$ filters of
# $I = C_{in} k_h k_w$ entries each. Weight Standardization replaces every filter by its
# standardized version before the convolution (the paper's eq. 5–6):
#
# $$\hat W_{i,j} = \frac{W_{i,j} - \mu_i}{\sigma_i}, \qquad \mu_i = \frac1I \sum_j W_{i,j}, \qquad
#   \sigma_i = \sqrt{\frac1I \sum_j (W_{i,j} - \mu_i)^2 + \epsilon}$$
#
# Nothing is learned and nothing depends on the batch: WS is a reparametrization, like weight
# normalization (notebook 02) but removing the mean as well as the scale. Because it uses no
# batch statistics it is meant to be paired with a normalization of the activations — GN for
# micro-batches, where BN's statistics are too noisy — and the paper reports that WS+GN matches
# or beats BN at large batches.
#
# **The gradient.** With $g = \partial L / \partial \hat W$, differentiating through $\mu_i$ and
# $\sigma_i$ gives, per filter,
#
# $$\frac{\partial L}{\partial W_{i,\cdot}} = \frac{1}{\sigma_i}\Big(g_{i,\cdot} - \overline{g_{i}}
#   - \hat W_{i,\cdot}\,\overline{g_i \hat W_i}\Big)$$
#
# (bars are means over the filter's $I$ entries; exact for any $\epsilon$, with $\sigma_i$ as
# defined above). The bracket removes from $g$ its mean and its component along $\hat W$: with
# $\epsilon = 0$ it is exactly $g$ projected onto the subspace orthogonal to $\mathbf 1$ and
# $\hat W$ (with $\epsilon > 0$, $\lVert \hat W_i \rVert^2 < I$ and slightly less is removed). **The smoothing argument** of the paper (its Theorems 1–2) rests on
# this: the projection can only shorten the gradient, so $\lVert \partial L/\partial W \rVert \le
# \lVert g \rVert/\sigma$, and the same projection appears in the Hessian, lowering the Lipschitz
# constants of the loss and of its gradient for a given $\sigma$. labnorm computes exactly this
# formula in its backward (one temporary instead of autograd's chain of `var_mean` and division),
# which is what made WS cheap enough to use — see the benchmark below.
#
# **Elimination singularities.** A channel that a ReLU keeps at zero for every input contributes
# nothing and receives no gradient: the network has lost a unit. BN prevents this by centring every
# channel over the batch, so each channel is positive about half the time. GN and LN normalize
# *groups* of channels, and a single channel can drift to a permanently negative mean. The paper
# argues that WS brings GN's channels back towards BN's behaviour: a zero-mean filter applied to
# inputs whose channels have similar statistics gives an output near zero mean. We count dead
# channels in the experiment.

# %% [markdown]
# ## Weight Standardization, line by line

# %%
def ws_scratch(w, eps=1e-5):
    rows = w.reshape(w.shape[0], -1)  # one row per output filter: [C_out, I]
    mu = rows.mean(1, keepdim=True)  # mu_i
    var = ((rows - mu) ** 2).mean(1, keepdim=True)  # biased variance, as in the paper
    return ((rows - mu) / torch.sqrt(var + eps)).reshape(w.shape)  # eps inside the square root


w = nn.Conv2d(16, 32, 3).weight.detach().double()
w_hat = ws_scratch(w)
print("filters:", w.shape[0], "| entries per filter I =", w[0].numel())
print(f"per-filter mean of W_hat within {w_hat.mean((1, 2, 3)).abs().max():.0e} of 0")
print(f"per-filter std of W_hat: {w_hat.std((1, 2, 3), unbiased=False).min():.4f} … "
      f"{w_hat.std((1, 2, 3), unbiased=False).max():.4f} (below 1 by sigma^2/(sigma^2 + eps))")

# %% [markdown]
# ## Parity: scratch = labnorm = timm's formula, and the projected gradient
#
# In float64: `labnorm.WSConv2d` against `F.conv2d` with the scratch weight (forward, input and
# weight gradients); `variant="timm"` against timm's `StdConv2d` formula (a `batch_norm` over each
# filter, $\epsilon = 10^{-6}$); the weight gradient against the projection formula above; BCN at
# initialization against `BatchNorm2d` followed by `GroupNorm`. This cell's output is checked in CI.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)


def agree(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol


checks = {}
conv = labnorm.WSConv2d(8, 16, 3, padding=1, stride=2).double()
x = torch.randn(4, 8, 9, 9, dtype=torch.float64, requires_grad=True)
x_ref = x.detach().clone().requires_grad_()
w = conv.weight.detach().clone().requires_grad_()
y, y_ref = conv(x), F.conv2d(x_ref, ws_scratch(w), conv.bias, stride=2, padding=1)
up = torch.randn_like(y)
y.backward(up)
y_ref.backward(up)
checks["WSConv2d forward = conv(ws_scratch(W))"] = agree(y, y_ref)
checks["grad input, grad W"] = agree(x.grad, x_ref.grad) and agree(conv.weight.grad, w.grad)

# timm's StdConv2d standardizes with batch_norm over each filter, biased, eps 1e-6
timm = F.batch_norm(w.detach().reshape(1, 16, -1), None, None, training=True, momentum=0.0, eps=1e-6)
checks["variant='timm' = timm's formula"] = agree(labnorm.weight_standardization(w.detach(), variant="timm"),
                                                  timm.reshape_as(w))

# The projected gradient, with eps = 0 so the bracket is exactly a projection
wd = w.detach().clone().requires_grad_()
g = torch.randn_like(wd)
(labnorm.weight_standardization(wd, eps=0.0) * g).sum().backward()
rows, g_rows = wd.detach().reshape(16, -1), g.reshape(16, -1)
sigma = rows.std(1, unbiased=False, keepdim=True)
w_hat = (rows - rows.mean(1, keepdim=True)) / sigma
projected = g_rows - g_rows.mean(1, keepdim=True) - w_hat * (g_rows * w_hat).mean(1, keepdim=True)
checks["grad W = projection of grad W_hat / sigma"] = agree(wd.grad.reshape(16, -1), projected / sigma)
checks["||grad W|| <= ||grad W_hat|| / sigma per filter"] = bool(
    (wd.grad.reshape(16, -1).norm(dim=1) <= (g_rows / sigma).norm(dim=1) + 1e-12).all())

# BCN at initialization: BatchNorm2d, then GroupNorm (per-channel affine 1/0 = per-group affine 1/0)
bcn = labnorm.BatchChannelNorm2d(16, num_groups=4).double()
ref = nn.Sequential(nn.BatchNorm2d(16), nn.GroupNorm(4, 16)).double()
z = torch.randn(6, 16, 5, 5, dtype=torch.float64)
checks["BCN = GroupNorm(BatchNorm2d(x)), train"] = agree(bcn(z), ref(z))
checks["... running statistics"] = agree(bcn.bn.running_var, ref[0].running_var)
checks["... eval"] = agree(bcn.eval()(z), ref.eval()(z))
for name, ok in checks.items():
    print(f"{name:<52} {ok}")

# %% [markdown]
# ## Five implementations, five answers
#
# Published code disagrees on two details: biased or unbiased variance, and $\epsilon$ inside the
# square root or added to the standard deviation (see the table in `labnorm.weight_std`). Each is
# selectable by `variant=` and tested against its own formula. On a freshly initialized ResNet
# conv, the largest difference of each from the paper's definition:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
w = nn.Conv2d(64, 64, 3).weight.detach().double()
ref = labnorm.weight_standardization(w)
for variant, (unbiased, eps_inside, eps) in VARIANTS.items():
    gap = (labnorm.weight_standardization(w, variant=variant) - ref).abs().max().item()
    print(f"{variant:<8} {'unbiased' if unbiased else 'biased  '} eps {'inside ' if eps_inside else 'outside'}"
          f" {eps:.0e}: max |difference| {gap:.1e}")

# %% [markdown]
# The unbiased variance scales every entry by $\sqrt{(I-1)/I}$ (here $I = 576$: a relative
# difference of $9\times10^{-4}$); $\epsilon$ matters when a filter's variance is comparable to
# it — PyTorch's default init gives variances around $1/(3I)\approx 6\times10^{-4}$, so
# $\epsilon = 10^{-5}$ shrinks $\hat W$ by about 1%, and $10^{-10}$ (BiT) not at all. The
# experiment below prints the same gaps on *trained* weights.
#
# ## Batch-Channel Normalization
#
# BCN (same paper) is BN followed by a channel (group) norm with one affine pair per group. The
# BN part brings in batch information — the paper's cure for elimination singularities — and the
# channel part makes every sample well-scaled. For micro-batches, where a batch of 1–2 images
# gives useless statistics, `estimate=True` makes the BN part normalize with running *estimates*
# in training too (the official `EstBN`), updated from each batch:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
bcn = labnorm.BatchChannelNorm2d(16, num_groups=4, estimate=True)
x = torch.randn(2, 16, 6, 6) * 3 + 1  # a micro-batch of 2, far from zero mean / unit variance
before = bcn.bn.running_mean.clone()
y = bcn(x)
print("running mean moved towards the batch mean:", bool((bcn.bn.running_mean - before).abs().max() > 0))
print("output per (sample, group) normalized:",
      bool(y.reshape(2, 4, -1).mean(-1).abs().max() < 1e-5))
print("eval uses the same estimates:", torch.allclose(bcn.eval()(x), bcn.channel_norm(
    (x - bcn.bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(bcn.bn.running_var.view(1, -1, 1, 1) + bcn.eps)
    * bcn.bn.weight.view(1, -1, 1, 1) + bcn.bn.bias.view(1, -1, 1, 1)), atol=1e-5))

# %% [markdown]
# ## Experiment: VGG on CIFAR-10 with BN, WS+BN, GN, WS+GN and WS+BCN
#
# labml trains a VGG with WS and BCN on CIFAR-10. We train the same VGG-16 layout (13 convs, five
# pools, one linear head) with each pairing: one-cycle SGD at batch 64, the same seed and data.
# After training we count the **dead ReLU channels** — positive on under 1% of the positions of
# 500 test images — and, on the WS+BN model's trained weights, the gaps between the WS variants.
# At `smoke` scale this runs live; at `cpu`/`gpu` scale the saved run of that scale is loaded.
#
# **GN at reduced width.** At `cpu` scale the VGG is a quarter as wide, so its narrowest layers
# have 16 channels, where GN's usual 32 groups would hold one channel each: Instance Norm, not Group
# Norm. labnorm's `gn` keeps at least 2 channels per group (16 channels: 8 groups of 2). The
# `implementation:` line printed with the results says what each run used — the normalization
# classes, the channels per group and the memory format — and a record saved before runs recorded
# it says so instead.

# %%
vgg_exp = experiments.get("ws_bcn_vgg")
print(vgg_exp.config(SCALE))
vgg_run = experiments.load_or_run("ws_bcn_vgg", SCALE)
print(f"{vgg_run['source']} record")
vgg_exp.report(vgg_run).show()

# %% [markdown]
# ## Reference results
#
# The largest saved record (`python -m labnorm run ws_bcn_vgg --scale cpu --seeds 3`); means over
# seeds ± the half-width of their 95% intervals, verdicts from paired differences over seeds.

# %%
ref = experiments.reference("ws_bcn_vgg")
if ref is None:
    print("no saved run (set LABNORM_RESULTS to the repository's results/ folder)")
elif ref["scale"] == SCALE:
    print("the reference is the record shown above")
else:
    vgg_exp.report(ref).show()

# %% [markdown]
# ## What it costs
#
# From the committed benchmark (`benchmarks/bench_weight_std.py`, one run, implementations timed
# round-robin): one SGD step with WS convs divided by the same step with plain convs, for a CIFAR
# ResNet-18 (BN or GN after each conv) and for a stack of three 64→64 convs at 16×16. `labnorm` is
# `WSConv2d` (one `F.batch_norm` over the filters, each centred first), `labnorm_timm` the same
# with timm's $\epsilon$, `timm_std` a timm-style `StdConv2d` written from its formula (one
# unshifted `F.batch_norm`), `closed_form` labnorm's previous implementation; the benchmark's
# docstring lists the others it can time. A column is printed for every contender the committed
# run timed.

# %%
bench = results.load_benchmark("weight_std")
if bench is None:
    print("no committed benchmark")
else:
    print(results.provenance_line(bench))
    impls = list(dict.fromkeys(k[: -len("_ratio")] for r in bench["rows"] for k in r if k.endswith("_ratio")))
    print(f"{'net':<12}{'batch':>6}  {'mode':<13}" + "".join(f"{k:>13}" for k in impls))
    for r in bench["rows"]:
        print(f"{r['net']:<12}{r['batch']:>6}  {r['mode']:<13}"
              + "".join(f"{r[k + '_ratio']:>13.3f}" if k + "_ratio" in r else f"{'—':>13}" for k in impls))

# %% [markdown]
# ## What we found
#
# * **The verdicts above decide; the point estimates only describe the seeds.** The WS paper's
#   claims on this layout — WS improves GN, WS improves BN, WS+BCN is best — are each judged from
#   the paired difference over the saved seeds (three in the `cpu` record) and printed as a word; a
#   record with a single seed can only give *inconclusive*, whatever the one run shows. The
#   report's baseline line gives BN's accuracy beside them: under 85%, the level of a trained
#   CIFAR-10 network, every verdict is *inconclusive at this scale* whatever its interval, since the
#   paper's claims are about trained networks and this is a short run of a narrow VGG. Where
#   neither arm has a dead channel, the dead-channel claim is *not testable here*.
# * **Dead channels are the mechanism to look at.** The table counts ReLU channels that are
#   positive on under 1% of their positions after training: the paper's first elimination
#   singularity, seen directly. Compare the GN and WS+GN rows: WS is argued to keep channels
#   alive by keeping every filter's output standardized.
# * **BCN was made for micro-batches.** The paper's BCN results are for micro-batches, where BN
#   fails; at batch 64, BN's own statistics are good, so the verdict on "WS+BCN beats WS+BN" here
#   asks only whether BCN's extra channel-wise step costs accuracy where it is not needed. It says
#   nothing about micro-batches, which this notebook does not run (exercise 3).
# * **The variants are not interchangeable on trained weights.** Trained filters shrink (weight
#   decay), their variances approach $\epsilon$, and the choice of $\epsilon$ — $10^{-5}$ here,
#   $10^{-6}$ in timm, $10^{-10}$ in BiT, added to the std in the WS repository — changes $\hat W$
#   by a visible fraction of its scale (the second table), far more than on freshly initialized
#   weights. A checkpoint trained with one variant is a slightly different network under another.
# * **Cost.** The benchmark table above gives the step time with WS convs divided by the step
#   with plain convs, per implementation and batch. At batch 2 what is left is memory traffic:
#   the standardization reads and writes every weight a few times per step while the convolution
#   does little work per weight.
# * **Scale.** The saved runs are `cpu`-scale (a narrow VGG for a few epochs on a subset of the
#   JPEG copy of CIFAR-10, on 2 CPU cores; the sizes are printed with the config above). Read the
#   BN baseline's accuracy in the table: far below what a full-size VGG reaches on all of
#   CIFAR-10, it limits what any gap between the arms can mean. The `gpu` scale trains the
#   full-width network on the full data.

# %% [markdown]
# ## Exercises
#
# 1. With $\epsilon > 0$ the gradient formula still holds, but the bracket is no longer a
#    projection: show that it removes only a fraction $\sigma^2/(\sigma^2+\epsilon)$ of $g$'s
#    component along $\hat W$, and check it against autograd on a weight scaled by $10^{-3}$,
#    where it matters.
# 2. WS is invariant to adding a constant to a filter and to scaling it. Show that the WS gradient
#    has zero mean per filter and is orthogonal to $W - \mu$ — so SGD without weight decay never
#    changes a filter's mean. What does weight decay do to $\sigma$ over training?
# 3. Train the VGG with `ws+bcn` at batch 4 with `estimate=True` (build the norm with
#    `labnorm.BatchChannelNorm2d(c, estimate=True)`) and compare it to GN at the same batch.
# 4. Count the second kind of elimination singularity: pairs of channels in a layer whose outputs
#    are almost identical (cosine similarity > 0.99 over a batch). Does WS change the count?
