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
# [The source](https://labnorm.github.io/labnorm/glossary/#the-source) — the page this notebook
# redoes — is labml's annotated [Weight Standardization](https://nn.labml.ai/normalization/weight_standardization/index.html)
# page: reshape each conv weight to one row per output filter, take `var_mean`, subtract and divide,
# and train a VGG with it on CIFAR-10 — paired with Batch-Channel Normalization. Here we
#
# 1. see, in a few seconds of CPU, how a channel behind group norm can die and what WS changes,
# 2. write WS from scratch and prove it equal to `labnorm.WSConv2d` and to the formula of timm (a
#    widely used library of PyTorch image models),
# 3. derive its gradient and check numerically what the paper's smoothing argument rests on,
# 4. measure how far the five published variants of WS are from each other on trained weights,
# 5. build BCN and check it against `BatchNorm2d` → `GroupNorm`, and
# 6. train labml's VGG on CIFAR-10 with BN, WS+BN, GN, WS+GN and WS+BCN, counting dead channels
#    (the paper's elimination singularities) along the way.
#
# BN is batch norm and GN group norm
# ([notebook 01](https://labnorm.github.io/labnorm/notebooks/01_batch_and_group_norm/)): BN standardizes
# each channel over the batch, GN each sample over groups of channels. A *micro-batch* is a batch of
# one or two images per device, where BN's statistics are too noisy to use
# ([notebook 04](https://labnorm.github.io/labnorm/notebooks/04_ws_small_batches/) measures how noisy).

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
import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn import functional as F

import labnorm
from labnorm import experiments, results
from labnorm.experiments.plots import readable_style
from labnorm.weight_std import VARIANTS

torch.manual_seed(0)
readable_style()  # figures at 100 dpi, no text under 9 pt
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## The problem
#
# A ReLU channel that is negative at every position of every image passes nothing forward and
# receives no gradient: the network has lost a unit for good. The WS paper calls this an
# *elimination singularity*. BN makes it unlikely, because it centres every channel on its own
# mean over the batch, so each channel is positive about half the time. GN centres a whole *group*
# of channels on the group's mean, and one channel of the group can sit far below the others.
#
# Here is one conv in the middle of a network, fed what the previous layer's ReLU gives it (all
# inputs $\ge 0$), followed by BN, by GN (4 groups of 8 channels), or by GN behind the *same*
# filters used through Weight Standardization. For each channel we count the positions where the
# normalized output is positive — where a ReLU after it would let the signal through. Then we push
# filter 0's entries down by a constant (its mean drops; its pattern stays), as a drift in
# training could, and watch channel 0.

# %%
torch.manual_seed(0)
x_in = torch.relu(torch.randn(16, 32, 16, 16))  # a previous ReLU's output: >= 0, mean about 0.4
conv = nn.Conv2d(32, 32, 3, padding=1, bias=False)  # PyTorch's default initialization
ws_conv = labnorm.WSConv2d(32, 32, 3, padding=1, bias=False)
with torch.no_grad():
    ws_conv.weight.copy_(conv.weight)  # the same filters, used standardized
bn, gn = nn.BatchNorm2d(32, affine=False), nn.GroupNorm(4, 32, affine=False)
arms = {"conv → BN": lambda: bn(conv(x_in)), "conv → GN": lambda: gn(conv(x_in)),
        "WS conv → GN": lambda: gn(ws_conv(x_in))}


def positive_fraction(z):
    """Per channel: the fraction of (image, position) pairs where z > 0 — what a ReLU lets through."""
    return (z > 0).float().mean((0, 2, 3))


shifts = [0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5]  # lowering of filter 0's entries, in units of their std
at_init, channel0 = {}, {name: [] for name in arms}
with torch.no_grad():
    for name, arm in arms.items():
        at_init[name] = positive_fraction(arm()).sort().values
        print(f"{name:<13} at initialization, channels positive on {at_init[name].min():.0%} … "
              f"{at_init[name].max():.0%} of positions")
    w0 = conv.weight.clone()
    for k in shifts:
        for layer in (conv, ws_conv):
            layer.weight.copy_(w0)
            layer.weight[0] -= k * w0[0].std()
        for name, arm in arms.items():
            channel0[name].append(positive_fraction(arm())[0].item())
    for layer in (conv, ws_conv):
        layer.weight.copy_(w0)
print("channel 0 positive on, as filter 0 is lowered by 0 … 0.5 of its std:")
for name, fractions in channel0.items():
    print(f"  {name:<13}" + "  ".join(f"{f:4.0%}" for f in fractions))

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8, 3))
for name in arms:
    ax0.plot(range(1, 33), 100 * at_init[name], label=name)
    ax1.plot(shifts, [100 * f for f in channel0[name]], marker="o", label=name)
ax0.set(xlabel="channel (sorted)", ylabel="positions positive (%)", title="every channel, at initialization",
        ylim=(-3, 103))
ax1.set(xlabel="filter 0 lowered by (× its std)", ylabel="positions positive (%)",
        title="channel 0, as its filter's mean drifts", ylim=(-3, 103))
ax1.legend()
plt.show()

# after training: the saved record of the experiment at the end of this notebook
trained = experiments.reference("ws_bcn_vgg")
if trained is not None:
    for norm in ("bn", "gn", "ws+gn"):
        s = experiments.summary(trained, f"dead_channels/{norm}")
        print(f"trained VGG ({trained['scale']} record, {s.n} seeds), {norm:<5}: dead ReLU channels "
              f"{s.mean:.1%} ± {(s.high - s.low) / 2:.1%}")

# %% [markdown]
# Read it:
#
# * **At initialization** BN holds every channel at about half its positions. Behind GN the
#   channels already range widely: a few pass little, a few nearly everything. Behind GN with WS
#   they sit at about half, like BN's.
# * **A small drift kills a channel behind GN.** Lowering filter 0's entries by a fifth of their
#   own spread — barely visible in the filter — leaves its channel positive on a small fraction
#   of positions, and half its spread kills it. The reason: its inputs are all $\ge 0$ (they come
#   out of a ReLU), so the filter's mean multiplies the *sum* of its $32 \cdot 3 \cdot 3 = 288$
#   inputs and acts as a large negative bias. GN removes only the group's mean, and one channel
#   cannot move it much. BN removes channel 0's own mean and does not care.
# * **With WS the drift does nothing at all:** the filter is standardized before use, so a
#   constant added to it never reaches the convolution.
# * **After training** (the last lines: the saved runs of the experiment at the end of this
#   notebook) compare the GN and WS+GN lines — whether training really drifts filters far enough
#   to kill channels behind GN, and whether WS prevents it.
#
# ## The idea
#
# BN and GN normalize what a layer *outputs*. The optimizer, though, moves the *weights*, and
# nothing stops a filter's mean or scale from drifting — harmless behind BN, as above, but not
# behind GN, which is what a micro-batch leaves you with. Weight Standardization normalizes the
# thing the optimizer moves: each filter is used only as its standardized version, with mean 0 and
# standard deviation 1 over its entries. The conv sees the filter's *pattern* — which entries are
# larger than which — never its level or its scale.
#
# * **Nothing depends on the batch.** WS looks at weights only, so it works the same at batch 1
#   and batch 1000. It does not normalize the activations (their scale still follows the
#   input's), so it is paired with a normalization of activations: GN for micro-batches, or BN.
# * **A zero-mean filter cannot become a large bias.** On inputs whose channels have similar
#   statistics, its output has a mean near zero, so a ReLU after it stays alive — BN's behaviour,
#   brought to GN without a batch.
# * **The gradient forgets what the output ignores.** Shifting or scaling a filter changes
#   nothing downstream, so the gradient has no component in those two directions, and it is
#   divided by the filter's spread. The paper turns this into its smoothing argument: the loss
#   and its gradient change more slowly with the weights (the formulas below).
# * **It costs work on every weight at every step**, whatever the batch size. At a small batch,
#   where the convolution does little work per weight, that is not negligible (the benchmark at
#   the end prices it).

# %% [markdown]
# ### Try it: a filter's level and scale never reach the output (⏱ ~5 min)
#
# Write `rescale_filters(w, a, b)`: a copy of the weight $[C_{out}, C_{in}, k, k]$ in which each
# filter $i$ is replaced by $a_i W_i + b_i$ ($a_i > 0$ and $b_i$ one number per filter). The check
# loads it into a `WSConv2d` with $\epsilon = 0$ and asserts that the output does not change, then
# prints how much it changes with the default $\epsilon = 10^{-5}$.
#
# <details><summary>Hint</summary>
#
# Reshape `a` and `b` to $[C_{out}, 1, 1, 1]$ so they broadcast over each filter's entries.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def rescale_filters(w, a, b):
    return a.view(-1, 1, 1, 1) * w + b.view(-1, 1, 1, 1)


# %% tags=["check"]
gen = torch.Generator().manual_seed(1)
x_try = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=gen)
a_try = torch.rand(6, dtype=torch.float64, generator=gen) * 9 + 0.1  # scales 0.1 … 9.1
b_try = torch.randn(6, dtype=torch.float64, generator=gen)
for eps in (0.0, 1e-5):
    layer = labnorm.WSConv2d(4, 6, 3, eps=eps, bias=False).double()
    before = layer(x_try)
    with torch.no_grad():
        layer.weight.copy_(rescale_filters(layer.weight, a_try, b_try))
    change = (layer(x_try) - before).abs().max().item()
    if eps == 0:
        torch.testing.assert_close(layer(x_try), before)
    print(f"eps = {eps:g}: largest change of the output {change:.1e}")
print("✓ with eps = 0, scaling and shifting each filter leaves the WS conv's output unchanged")

# %% [markdown]
# With the default $\epsilon$ the output moves a little: $\epsilon$ sits next to $\sigma_i^2$ in the
# divisor, and scaling a filter changes their ratio. PyTorch's initialization gives filter
# variances of a few $10^{-4}$, so $\epsilon = 10^{-5}$ is not negligible there — the formulas
# below keep it.
#
# ## The formulas
#
# A conv weight $W$ of shape $[C_{out}, C_{in}, k_h, k_w]$ is $C_{out}$ filters of
# $I = C_{in} k_h k_w$ entries each. Weight Standardization replaces every filter by its
# standardized version before the convolution (the paper's eq. 5–6):
#
# $$\hat W_{i,j} = \frac{W_{i,j} - \mu_i}{\sigma_i}, \qquad \mu_i = \frac1I \sum_j W_{i,j}, \qquad
#   \sigma_i = \sqrt{\frac1I \sum_j (W_{i,j} - \mu_i)^2 + \epsilon}$$
#
# Nothing is learned and nothing depends on the batch: WS is a reparametrization, like weight
# normalization ([notebook 02](https://labnorm.github.io/labnorm/notebooks/02_weight_norm/)) but removing the mean as well
# as the scale.
# The paper reports that WS+GN matches or beats BN at large batches.
#
# **The gradient.** With $g = \partial L / \partial \hat W$, differentiating through $\mu_i$ and
# $\sigma_i$ gives, per filter,
#
# $$\frac{\partial L}{\partial W_{i,\cdot}} = \frac{1}{\sigma_i}\Big(g_{i,\cdot} - \overline{g_{i}}
#   - \hat W_{i,\cdot}\,\overline{g_i \hat W_i}\Big)$$
#
# (bars are means over the filter's $I$ entries; exact for any $\epsilon$, with $\sigma_i$ as
# defined above). The bracket removes from $g$ its mean and its component along $\hat W$ — the two
# directions the "Try it" above showed the output to ignore. With $\epsilon = 0$ it is exactly $g$
# projected onto the subspace orthogonal to $\mathbf 1$ and $\hat W$ (with $\epsilon > 0$,
# $\lVert \hat W_i \rVert^2 < I$ and slightly less is removed).
#
# **The smoothing argument** of the paper (its Theorems 1–2) rests on this. A function is
# $L$-*Lipschitz* when its value changes by at most $L$ times the size of the change of its
# input, $|f(a) - f(b)| \le L\,\lVert a - b\rVert$
# ([glossary](https://labnorm.github.io/labnorm/glossary/#lipschitz)); a small constant for the
# loss, and for its gradient, means a step of a given size can change them less — a smoother
# landscape, where a larger learning rate is safe. The projection can only shorten the gradient,
# so $\lVert \partial L/\partial W \rVert \le \lVert g \rVert/\sigma$, and the same projection
# appears in the Hessian, lowering the Lipschitz constants of the loss and of its gradient for a
# given $\sigma$. ([Notebook 08](https://labnorm.github.io/labnorm/notebooks/08_loss_landscape/)
# measures the smoothness along training.)
#
# **How labnorm computes it.** Whenever the weight needs a gradient — training — and $\epsilon$
# sits inside the root (the `paper`, `timm`, `labml` and `bit` variants), `WSConv2d` does not
# write this backward itself: it views the weight as a batch-norm input $[1, C_{out}, I]$ — each
# filter a "channel" whose $I$ entries are its "batch" — and runs torch's batch-norm kernel on it,
# with batch statistics, no running statistics and no affine (the kernel behind `F.batch_norm`;
# timm's `StdConv2d` does the same; for an unbiased variance $\epsilon$ and a scale are adjusted
# to give the same formula). The kernel's fused backward is the gradient above. Only the
# `ws_repo` variant ($\epsilon$ added to the standard deviation) and $\epsilon = 0$ use labnorm's
# closed-form autograd function, which writes this formula out; under `torch.no_grad` (or for a
# weight that needs no gradient) its forward runs alone. Details — and the guard that centres a
# filter with a large mean before the kernel sees it — are in `labnorm.weight_std`.
#
# **Elimination singularities**, the paper's second argument, are what "The problem" showed: a
# channel that a ReLU keeps at zero for every input is lost. The paper argues that WS brings GN's
# channels back towards BN's behaviour, since a zero-mean filter applied to inputs whose channels
# have similar statistics gives an output near zero mean. The experiment counts dead channels.

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
      f"{w_hat.std((1, 2, 3), unbiased=False).max():.4f} (below 1 by sqrt(sigma^2/(sigma^2 + eps)))")

# %% [markdown]
# ## Parity: scratch = labnorm = timm's formula, and the projected gradient (deep dive, optional)
#
# In float64: `labnorm.WSConv2d` against `F.conv2d` with the scratch weight (forward, input and
# weight gradients); `variant="timm"` against the formula of timm's `StdConv2d` (a `batch_norm`
# over each filter, $\epsilon = 10^{-6}$); the weight gradient against the projection formula above; BCN at
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
# $\epsilon = 10^{-5}$ shrinks $\hat W$ by about 1%, and $10^{-10}$ (the value of
# [BiT](https://labnorm.github.io/labnorm/glossary/#bit), Google's Big Transfer models) not at
# all. The experiment below prints the same gaps on *trained* weights.

# %% [markdown]
# ### Try it: the WS repository's variant by hand (⏱ ~5 min)
#
# The WS repository's README (and the blog post of
# [notebook 04](https://labnorm.github.io/labnorm/notebooks/04_ws_small_batches/))
# divides by the *unbiased* standard deviation **plus** $\epsilon$:
# $\hat W_{i,j} = (W_{i,j} - \mu_i) / (s_i + \epsilon)$ with
# $s_i = \sqrt{\frac{1}{I-1}\sum_j (W_{i,j} - \mu_i)^2}$. Write `ws_repo(w, eps=1e-5)` for a conv
# weight $[C_{out}, C_{in}, k, k]$; the check compares it with
# `labnorm.weight_standardization(w, variant="ws_repo")`.
#
# <details><summary>Hint</summary>
#
# Start from `ws_scratch` above: `rows.std(1, keepdim=True)` is the unbiased standard deviation,
# and $\epsilon$ now goes outside the square root.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def ws_repo(w, eps=1e-5):
    rows = w.reshape(w.shape[0], -1)
    centred = rows - rows.mean(1, keepdim=True)
    return (centred / (rows.std(1, keepdim=True) + eps)).reshape(w.shape)


# %% tags=["check"]
torch.manual_seed(2)
w_try = nn.Conv2d(8, 16, 3).weight.detach().double()
torch.testing.assert_close(ws_repo(w_try), labnorm.weight_standardization(w_try, variant="ws_repo"))
print(f"largest difference from the paper's WS on this weight: "
      f"{(ws_repo(w_try) - labnorm.weight_standardization(w_try)).abs().max():.1e}")
print("✓ ws_repo equals labnorm's variant='ws_repo'")

# %% [markdown]
# ## Batch-Channel Normalization
#
# BCN (same paper) is BN followed by a channel (group) norm with one affine pair per group. The
# BN part brings in batch information — the paper's cure for elimination singularities, the
# mechanism of "The problem" — and the channel part makes every sample well-scaled. For
# micro-batches, where a batch of 1–2 images gives useless statistics, `estimate=True` makes the
# BN part normalize with running *estimates* in training too (the official `EstBN`), updated from
# each batch:

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
# ### Try it: BCN is its two parts (⏱ ~5 min)
#
# Write `bcn_by_hand(x, bcn)`: the training-mode output of a `BatchChannelNorm2d` (the default
# `estimate=False`) from torch's functional ops — `F.batch_norm` with batch statistics and the batch
# part's affine (`bcn.bn.weight`, `bcn.bn.bias`), then `F.group_norm` without affine, then BCN's
# own affine with one pair per group (`bcn.weight`, `bcn.bias`, of shape $[1, G, 1]$). The check
# gives every parameter a random value first, so each of the three steps must be right.
#
# <details><summary>Hint</summary>
#
# `F.batch_norm(x, None, None, weight, bias, training=True, eps=bcn.eps)` takes batch statistics.
# For the per-group affine, reshape to $[N, G, C/G \cdot H \cdot W]$, apply it, and reshape back.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def bcn_by_hand(x, bcn):
    z = F.batch_norm(x, None, None, bcn.bn.weight, bcn.bn.bias, training=True, eps=bcn.eps)
    z = F.group_norm(z, bcn.num_groups, eps=bcn.eps).reshape(x.shape[0], bcn.num_groups, -1)
    return (bcn.weight * z + bcn.bias).reshape(x.shape)


# %% tags=["check"]
gen = torch.Generator().manual_seed(3)
bcn_try = labnorm.BatchChannelNorm2d(16, num_groups=4).double()
with torch.no_grad():
    for p in bcn_try.parameters():  # random affines, in both parts
        p.copy_(torch.randn(p.shape, dtype=torch.float64, generator=gen))
x_bcn = torch.randn(6, 16, 5, 5, dtype=torch.float64, generator=gen) * 3 + 1
torch.testing.assert_close(bcn_by_hand(x_bcn, bcn_try), bcn_try(x_bcn))
print("✓ BatchChannelNorm2d = batch norm, then group norm, then one affine pair per group")

# %% [markdown]
# ## Experiment: VGG on CIFAR-10 with BN, WS+BN, GN, WS+GN and WS+BCN
#
# labml trains a VGG with WS and BCN on CIFAR-10. We train the same VGG-16 layout (13 convs, five
# pools, one linear head) with each pairing: SGD with a
# [one-cycle](https://labnorm.github.io/labnorm/glossary/#one-cycle) learning-rate schedule (up,
# then down, once over the run) at batch 64, the same seed and data. After training we count the
# **dead ReLU channels** — positive on under 1% of the positions of 500 test images — and, on the
# WS+BN model's trained weights, the gaps between the WS variants. At `smoke` scale this runs
# live; at `cpu`/`gpu` scale the saved run of that scale is loaded (see the last section).
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
# `WSConv2d` (one batch-norm kernel call over the filters, as described under "The formulas"),
# `labnorm_timm` the same with timm's $\epsilon$, `timm_std` a timm-style `StdConv2d` written from
# its formula (one unshifted `F.batch_norm`), `closed_form` labnorm's previous implementation (the
# closed-form backward written out); the benchmark's docstring lists the others it can time. A
# column is printed for every contender the committed run timed.

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
#   singularity, seen directly — the trained counterpart of "The problem". Compare the GN and WS+GN
#   rows: WS is argued to keep channels alive by keeping every filter's output standardized.
# * **BCN was made for micro-batches.** The paper's BCN results are for micro-batches, where BN
#   fails; at batch 64, BN's own statistics are good, so the verdict on "WS+BCN beats WS+BN" here
#   asks only whether BCN's extra channel-wise step costs accuracy where it is not needed. It says
#   nothing about micro-batches, which this notebook does not train (exercise 3 looks at what the
#   batch part does with a batch of 2;
#   [notebook 04](https://labnorm.github.io/labnorm/notebooks/04_ws_small_batches/) trains at batch 2).
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
#   JPEG copy of CIFAR-10, one CPU thread per run; the sizes are printed with the config above). Read the
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
# 2. The first "Try it" showed that a filter's level and scale never reach the output; so the WS
#    gradient has zero mean per filter and is orthogonal to $W_i - \mu_i$ (check both with
#    autograd). Show that SGD without weight decay therefore never changes a filter's mean and
#    never shrinks its spread. What does weight decay do to $\sigma$ over training, and why does
#    that make $\epsilon$ matter on the trained weights of the experiment's second table?
# 3. Which part of BCN sees the batch? In training mode, feed a batch of 2 through
#    `labnorm.BatchChannelNorm2d(16, num_groups=4)` and through the same layer with
#    `estimate=True`, then replace sample 1 and measure how far sample 0's output moves in each.
#    Why does the paper use the estimates for micro-batches?
# 4. In "The problem", replace the GN by `nn.GroupNorm(32, 32, affine=False)` (one channel per
#    group: instance norm) and by `nn.GroupNorm(1, 32, affine=False)` (one group: layer norm).
#    Which of them lets channel 0 die as its filter drifts, and why?

# %% [markdown]
# ## Running this notebook at other scales
#
# `LABNORM_SCALE` picks the size of the experiment: `smoke` (the quick check CI runs), `cpu` (the
# default; the saved records were made at this scale) and `gpu` (the paper-sized configuration).
# Everything before the experiment takes seconds at any scale.
#
# **The `gpu` scale on Colab.** Choose a GPU runtime (Runtime → Change runtime type), then run
# `%env LABNORM_SCALE=gpu` in a new cell at the top, before the imports: the experiment then runs
# one seed at its full, paper-sized configuration. Projected cost on a T4-class GPU, one seed:
# `ws_bcn_vgg` about **4.6 h**. These figures are projected, not measured: a CPU dry run's time
# per image divided by 100, and at least 5 ms per training step (small batches are bound by
# kernel launches); a T4 also lacks the [bf16](https://labnorm.github.io/labnorm/glossary/#bf16)
# tensor cores that labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run ws_bcn_vgg --scale gpu --dry-run`: it takes 2 training steps and
# 1 evaluation batch of every arm and prints the step times, the projected full run and the peak
# memory.
