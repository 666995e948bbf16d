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
# # Batch Norm and Group Norm, from scratch
#
# > *"GN's computation is independent of batch sizes, and its accuracy is stable in a wide range
# > of batch sizes."* — Wu & He, [Group Normalization](https://arxiv.org/abs/1803.08494) (2018)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/01_batch_and_group_norm.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/01_batch_and_group_norm.ipynb)
#
# Batch normalization ([Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167)) made deep
# convolutional networks easy to train, but its statistics come from the batch: when the batch
# shrinks they become noisy, and the running averages used at test time stop describing what
# the network saw in training. Group normalization takes its statistics from each sample alone.
# In this notebook we
#
# 1. write both layers from scratch in a few lines of tensor code,
# 2. prove them equal to `labnorm.BatchNorm2d` / `labnorm.GroupNorm` and to PyTorch's layers,
# 3. train the same CIFAR-10 network with each at batch sizes 2, 8 and 64, and
# 4. compare with the saved reference run.
#
# The annotated source of the layers is `labnorm/batch_norm.py`.

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
# Projected cost on a T4-class GPU, one seed: `bn_gn_batch_size` about **1.9 h**. These figures are projected, not
# measured: a CPU dry run's time per image divided by 100, and at least 5 ms per training step
# (small batches are bound by kernel launches); a T4 also lacks the bf16 tensor cores that
# labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run bn_gn_batch_size --scale gpu --dry-run`: it takes 2 training steps and 1 evaluation
# batch of every arm and prints the step times, the projected full run and the peak memory.

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

import labnorm
from labnorm import experiments

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 72  # keeps the saved notebook small
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## Theory
#
# A convolutional feature map $x$ has shape $[N, C, H, W]$: $N$ samples, $C$ channels,
# $H \times W$ positions. Both layers subtract a mean, divide by a standard deviation and then
# apply a learned per-channel scale $\gamma_c$ and shift $\beta_c$:
#
# $$y = \gamma \, \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta$$
#
# They differ only in **which values share a $\mu$ and $\sigma^2$**:
#
# * **Batch norm**: one pair per channel $c$, over the batch and all positions —
#   $\mu_c = \frac{1}{NHW}\sum_{n,h,w} x_{n,c,h,w}$, and $\sigma^2_c$ the *biased* variance
#   (divided by $NHW$).
# * **Group norm**: the $C$ channels are split into $G$ groups; one pair per sample $n$ and
#   group $g$, over the group's $C/G$ channels and all positions. $G=1$ is layer norm,
#   $G=C$ instance norm.
#
# Batch norm's $\mu_c$ depends on the other samples in the batch, so at test time — one image
# at a time — it uses **running estimates** updated at every training step with weight
# $m$ (`momentum`) on the new batch:
#
# $$\hat\mu_c \leftarrow (1-m)\,\hat\mu_c + m\,\mu_c, \qquad
#   \hat\sigma^2_c \leftarrow (1-m)\,\hat\sigma^2_c + m\,\tfrac{NHW}{NHW-1}\,\sigma^2_c$$
#
# The running variance is the *unbiased* estimate (Bessel's correction), while the variance
# that normalizes the batch is the biased one — a detail implementations often get wrong.
# With a batch of 2, $\mu_c$ averages just $2HW$ strongly correlated values: the noise in
# the statistics is large, and the network learns to depend on it. Group norm has no running
# statistics at all: training and test compute the same function.

# %% [markdown]
# ## Batch norm, line by line

# %%
x = torch.randn(4, 3, 5, 5, dtype=torch.float64) * 2 + 1  # [N, C, H, W]
eps = 1e-5

# Per-channel statistics over (N, H, W); keepdim leaves shape [1, C, 1, 1] for broadcasting.
mu = x.mean(dim=(0, 2, 3), keepdim=True)
# Biased variance: divide by N·H·W, not N·H·W − 1.
var = ((x - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True)
x_hat = (x - mu) / torch.sqrt(var + eps)
print("shape of mu:", tuple(mu.shape))
print("per-channel mean after normalizing:", x_hat.mean(dim=(0, 2, 3)).abs().max().item() < 1e-12)
print("per-channel variance after normalizing:", x_hat.var(dim=(0, 2, 3), unbiased=False))


# %% [markdown]
# Wrapped as functions: the training forward pass returns the batch statistics, and the
# running-statistics update applies Bessel's correction.

# %%
def batch_norm_train(x, gamma, beta, eps=1e-5):
    """Training-mode batch norm; returns the output and the batch mean and (biased) variance."""
    mu = x.mean(dim=(0, 2, 3), keepdim=True)
    var = ((x - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True)
    x_hat = (x - mu) / torch.sqrt(var + eps)
    y = gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)
    return y, mu.flatten(), var.flatten()


def update_running(running_mean, running_var, mu, var, count, momentum=0.1):
    """New running estimates after one batch of `count` values per channel."""
    unbiased = var * count / (count - 1)
    return ((1 - momentum) * running_mean + momentum * mu,
            (1 - momentum) * running_var + momentum * unbiased)


def batch_norm_eval(x, running_mean, running_var, gamma, beta, eps=1e-5):
    """Eval-mode batch norm: the running estimates replace the batch statistics."""
    x_hat = (x - running_mean.view(1, -1, 1, 1)) / torch.sqrt(running_var.view(1, -1, 1, 1) + eps)
    return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)


# %% [markdown]
# ## Group norm, line by line
#
# Reshape $[N, C, H, W] \to [N, G, C/G \cdot H \cdot W]$ so that each row holds one (sample,
# group); normalize the rows; reshape back; apply the per-channel affine.

# %%
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    n = x.shape[0]
    xg = x.reshape(n, num_groups, -1)  # one row per (sample, group)
    mu = xg.mean(dim=-1, keepdim=True)
    var = ((xg - mu) ** 2).mean(dim=-1, keepdim=True)  # biased, as in the paper
    x_hat = ((xg - mu) / torch.sqrt(var + eps)).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return gamma.view(shape) * x_hat + beta.view(shape)


# %% [markdown]
# ## Parity: scratch = labnorm = torch
#
# In float64, over three training steps and then eval mode: outputs, gradients and running
# statistics agree to $10^{-10}$. This cell's output is checked by nbval in CI.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
C, TOL = 6, 1e-10


def agree(*tensors):
    return max((t - tensors[0]).abs().max().item() for t in tensors[1:]) <= TOL


gamma = torch.rand(C, dtype=torch.float64) + 0.5
beta = torch.rand(C, dtype=torch.float64) - 0.5
ours = labnorm.BatchNorm2d(C).double()
ref = nn.BatchNorm2d(C).double()
with torch.no_grad():
    for layer in (ours, ref):
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
rm, rv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
checks = {"BN train output": True, "BN input gradient": True, "BN gamma/beta gradients": True,
          "BN running mean/var": True}
for step in range(3):
    x = torch.randn(4 + step, C, 5, 5, dtype=torch.float64) * (step + 1) + step
    xs, xl, xt = (x.clone().requires_grad_() for _ in range(3))
    g_s, b_s = gamma.clone().requires_grad_(), beta.clone().requires_grad_()
    y_s, mu, var = batch_norm_train(xs, g_s, b_s)
    y_l, y_t = ours(xl), ref(xt)
    rm, rv = update_running(rm, rv, mu.detach(), var.detach(), x.numel() // C)
    upstream = torch.randn_like(y_s)
    for y in (y_s, y_l, y_t):
        y.backward(upstream)
    checks["BN train output"] &= agree(y_s, y_l, y_t)
    checks["BN input gradient"] &= agree(xs.grad, xl.grad, xt.grad)
    checks["BN gamma/beta gradients"] &= agree(g_s.grad, ours.weight.grad, ref.weight.grad) and agree(
        b_s.grad, ours.bias.grad, ref.bias.grad)
    checks["BN running mean/var"] &= agree(rm, ours.running_mean, ref.running_mean) and agree(
        rv, ours.running_var, ref.running_var)
    for p in (*ours.parameters(), *ref.parameters()):
        p.grad = None
ours.eval(), ref.eval()
x = torch.randn(3, C, 4, 4, dtype=torch.float64)
checks["BN eval output"] = agree(batch_norm_eval(x, rm, rv, gamma, beta), ours(x), ref(x))

for groups in (1, 3, C):
    gn_ours, gn_ref = labnorm.GroupNorm(groups, C).double(), nn.GroupNorm(groups, C).double()
    with torch.no_grad():
        for layer in (gn_ours, gn_ref):
            layer.weight.copy_(gamma)
            layer.bias.copy_(beta)
    x = torch.randn(4, C, 5, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    checks[f"GN G={groups} output (channels_last)"] = agree(group_norm(x, groups, gamma, beta), gn_ours(x), gn_ref(x))

for name, ok in checks.items():
    print(f"{name:<36} scratch = labnorm = torch: {ok}")

# %% [markdown]
# ### Two traps the from-scratch version hides
#
# **Batch of one.** With one value per channel the batch variance is 0 and the output is
# $\beta$ whatever the input: training would silently learn nothing. Like torch, labnorm
# refuses it in training mode (eval mode is fine — it uses the running estimates):

# %%
# NBVAL_CHECK_OUTPUT
for layer in (labnorm.BatchNorm2d(3), nn.BatchNorm2d(3)):
    try:
        layer(torch.randn(1, 3, 1, 1))
    except ValueError as err:
        print(f"{type(layer).__module__.split('.')[0]:>8}: ValueError: {str(err).split(',')[0]}")

# %% [markdown]
# **Large mean, small spread, float32.** Activations with mean 100 and standard deviation
# 0.01 are not exotic (think of un-centred inputs or a large bias). In float32 the spacing of
# numbers near 100 is $7.6\cdot10^{-6}$, almost 0.1% of the spread, so even a perfectly stable
# variance leaves a mean that is off by a visible fraction of $\sigma$. labnorm computes its
# statistics on $x - s$, where $s$ is one sample of each channel: $x - s$ is exact, and the
# result stays within rounding of the float64 answer. Measured here (the figures depend on
# the CPU and torch build):

# %%
torch.manual_seed(0)
x = torch.randn(16, 3, 8, 8) * 0.01 + 100
layers = {
    "BatchNorm2d": (labnorm.BatchNorm2d(3), nn.BatchNorm2d(3), nn.BatchNorm2d(3).double()),
    "GroupNorm": (labnorm.GroupNorm(3, 3), nn.GroupNorm(3, 3), nn.GroupNorm(3, 3).double()),
}
for name, (ours, ref, exact) in layers.items():
    truth = exact(x.double())  # the same float32 input, normalized in float64
    err_ours = (ours(x).double() - truth).abs().max().item()
    err_torch = (ref(x).double() - truth).abs().max().item()
    print(f"{name:<12} max error vs float64: labnorm {err_ours:.1e}, torch {err_torch:.1e}")


# %% [markdown]
# ## Experiment: what happens as the batch shrinks
#
# The same small CNN (three conv → norm → ReLU → max-pool stages, widths $w, 2w, 4w$) is
# trained on CIFAR-10 with batch norm and with group norm (8 groups) at batch sizes 2, 8 and
# 64, for the same number of epochs, with one-cycle SGD and the learning rate scaled linearly
# with the batch size (0.1 at batch 64, after Goyal et al. 2017). Test accuracy is measured in
# eval mode, so batch norm uses its running estimates. The sizes depend on `LABNORM_SCALE`:
# `smoke` is a seconds-long check, `cpu` takes minutes, `gpu` trains on the full data.

# %% [markdown]
# The experiment lives in `labnorm.experiments.bn_gn_batch_size`: its sizes at each scale, the
# training of every arm, and the report — the table, figures and verdicts shown here and on the
# site's results page. At `smoke` scale it runs live (one seed, not saved); at `cpu`/`gpu` scale
# the saved record of that scale is loaded (`load_or_run`; `rerun=True` trains it again).

# %%
bn_gn = experiments.get("bn_gn_batch_size")
print(bn_gn.config(SCALE))
live = experiments.load_or_run("bn_gn_batch_size", SCALE)
print(f"{live['source']} record")
bn_gn.report(live).show()

# %% [markdown]
# ## Reference results
#
# The largest saved record of this experiment, from `results/` (written by
# `python -m labnorm run bn_gn_batch_size --scale cpu --seeds 3`, which runs seeds 0, 1, 2 and
# can be stopped and resumed; its provenance line says where, when and over which seeds it ran).
# Each accuracy is the mean over seeds ± the half-width of its 95% interval, and each verdict is
# computed by `labnorm.verdict` from the **paired** difference of two arms over the same seeds.

# %%
reference = experiments.reference("bn_gn_batch_size")
if reference is None:
    print("no saved reference run found (set LABNORM_RESULTS to the repository's results/ folder)")
elif reference["scale"] == SCALE:
    print("the reference is the record shown above")
else:
    bn_gn.report(reference).show()

# %% [markdown]
# ## What we found
#
# * **Read the verdicts, not the point estimates.** The GN paper's claim is that BN loses
#   accuracy as the batch shrinks while GN does not. The verdict lines above say what the
#   saved seeds (three in the `cpu` record) can decide about each half of it, and the two halves
#   need not be decided alike: a loss of many points can be told from the noise of three seeds
#   where "within 2 points" or a small lead of GN over BN may not be. A record with a single seed
#   can only ever be *inconclusive*, whatever direction its one run points in, and so is every
#   claim while BN at the largest batch stays under 85% test accuracy, the level of a trained
#   CIFAR-10 network (the reason line says so, with BN's level).
# * **Why GN should not care about the batch**: its statistics never see the rest of the batch,
#   so they are the same at batch 2 as at batch 64, in training and in eval mode. BN's running
#   estimates, in contrast, average batch statistics that become very noisy at batch 2.
# * **Our run is far smaller than the paper's** (a 3-stage CNN for a few epochs on a subset of
#   the JPEG copy of CIFAR-10, on a CPU; the paper trains ResNet-50 on ImageNet), and its
#   baseline accuracy, in the report's baseline line, is far from a tuned CIFAR-10 model's: the sizes of
#   any gaps are not comparable with the paper's figures. The `gpu` scale trains on the full
#   data for longer.
# * **Precision is not a given.** On float32 input with a large mean and a small spread, torch's
#   own float32 kernels drift from the float64 answer by a visible fraction of the output
#   scale (printed above), while computing the statistics on shifted data keeps labnorm within
#   rounding. The parity tests therefore compare float32 against float64, not only against torch.

# %% [markdown]
# ## Exercises
#
# 1. Change `momentum` of the batch-norm layers to 0.01 and 0.5 in the batch-2 run. Which
#    one narrows the gap between training and test accuracy, and why?
# 2. Evaluate the batch-2 BN model in *training* mode (batch statistics) on test batches of
#    64. What does that tell you about where batch norm's small-batch problem lies?
# 3. Replace GN's 8 groups by 1 (layer norm) and by $C$ (instance norm). The GN paper found
#    both worse than 32 groups on ImageNet; is that true on this small network?
# 4. Write `batch_norm_train` with `momentum=None` (cumulative average) and check it against
#    `labnorm.BatchNorm2d(momentum=None)`.
