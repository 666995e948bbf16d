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
# # The normalization zoo
#
# > *"Our method outperforms BN and other alternatives in a variety of settings for all batch
# > sizes."* — Singh & Krishnan, [Filter Response Normalization Layer](https://arxiv.org/abs/1911.09737) (2019)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/09_normalization_zoo.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/09_normalization_zoo.ipynb)
#
# Batch norm has many successors, and nearly all of them answer one question differently:
# **which values share one mean and one variance?** In this notebook we
#
# 1. see the problem most of them were made for: batch norm's output for one image depends on the
#    other images of its batch, and at small batches training and evaluation compute different functions;
# 2. say in one line what each successor fixes and where it is used;
# 3. draw, for each normalization, the values of an $[N, C, H, W]$ feature map that it pools
#    into one set of statistics;
# 4. (deep dive, optional) write each one from scratch in a few lines of tensor code and prove it
#    equal to its `labnorm` layer, and to PyTorch's layer where PyTorch has one;
# 5. train the same small CNN with every one of them at batch 2 and at batch 128, over seeds,
#    and read the verdicts on the small-batch claims of the papers.
#
# Batch norm and group norm are built line by line in notebook 01, weight standardization in
# notebook 03, switchable norm in notebook 05; here they appear as the neighbours of the others.
# The annotated sources are `labnorm/layer_norm.py`, `instance_norm.py`, `ghost_batch_norm.py`,
# `batch_renorm.py`, `filter_response_norm.py`, `evonorm.py`, `dynamic_tanh.py`, `dynamic_erf.py`
# and `global_response_norm.py`.

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
import numpy as np
import torch
from torch import nn

import labnorm
from labnorm import experiments
from labnorm.experiments.plots import readable_style
from labnorm.models import SmallCNN
from labnorm.norms import available_norms, make_norm

torch.manual_seed(0)
readable_style()  # figures at 100 dpi, no text under 9 pt
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## The problem
#
# Batch norm (BN) normalizes each channel with the mean and variance of **the batch**. That has
# two consequences that the rest of the zoo reacts to:
#
# 1. In training, an image's output depends on which other images happen to share its batch.
# 2. At evaluation there is no batch to average over, so BN uses the running averages of the
#    statistics it saw in training. The smaller the batch, the further each batch's statistics
#    stray from those averages: the network is trained on one function and evaluated on another.
#
# We see both on made-up feature maps of 8 channels, where each image has its own level per
# channel (as real images differ in lighting and contrast) on top of a pattern. First, keep image 0
# and replace the 7 others, and measure how far image 0's output moves under BN and under group
# norm (GN), which pools only inside one image:

# %%
CHANNELS = 8  # channels of the made-up feature maps


def images(n, generator):
    """n made-up feature maps [n, CHANNELS, 8, 8]: a level of its own per image and channel, plus a pattern."""
    level = torch.randn(n, CHANNELS, 1, 1, generator=generator)
    return 1.0 + level + 0.5 * torch.randn(n, CHANNELS, 8, 8, generator=generator)


batch = images(8, torch.Generator().manual_seed(0))
other = batch.clone()
other[1:] = images(7, torch.Generator().manual_seed(1))  # image 0 kept, images 1-7 replaced
for name, layer in [("BN", nn.BatchNorm2d(CHANNELS)), ("GN, 4 groups", nn.GroupNorm(4, CHANNELS))]:
    with torch.no_grad():
        moved = (layer(batch)[0] - layer(other)[0]).abs().max().item()
    print(f"{name:<13} largest change of image 0's output when the other 7 images change: {moved:.3f}")

# %% [markdown]
# Second, the train/eval mismatch. A BN layer sees 200 training batches of size $B$ (its
# running averages settle), then we compare, on fresh batches, its training-mode output (batch
# statistics) with its eval-mode output (running averages) for the same images:

# %%
sizes = [2, 4, 8, 16, 32, 64, 128]
mismatch = {"BN": [], "GN, 4 groups": []}
for size in sizes:
    gen = torch.Generator().manual_seed(2)
    layers = {"BN": nn.BatchNorm2d(CHANNELS), "GN, 4 groups": nn.GroupNorm(4, CHANNELS)}
    gaps = {name: [] for name in layers}
    with torch.no_grad():
        for _ in range(200):  # training: BN's running averages follow the batches
            layers["BN"].train()(images(size, gen))
        for _ in range(20):
            fresh = images(size, gen)
            for name, layer in layers.items():
                gaps[name].append((layer.train()(fresh) - layer.eval()(fresh)).abs().mean().item())
    for name in layers:
        mismatch[name].append(float(np.mean(gaps[name])))
    print(f"batch {size:>3}: mean |training output - eval output|: "
          + ", ".join(f"{name} {values[-1]:.3f}" for name, values in mismatch.items()))

fig, ax = plt.subplots(figsize=(5.5, 3.2))
for (name, values), style in zip(mismatch.items(), ["o-", "s--"]):
    ax.plot(sizes, values, style, label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(sizes, [str(s) for s in sizes])
ax.set(xlabel="batch size", ylabel="mean |train − eval| output",
       title="BN computes another function in training than in eval")
ax.legend()
plt.show()

# %% [markdown]
# BN's outputs have a standard deviation of about 1, so the gap printed at batch 2 is a large
# fraction of the whole signal: the evaluated network is far from the trained one. It shrinks as
# the batch grows — a batch mean of $B$ images is noisy by about $1/\sqrt{B}$ of the spread between
# images — but never vanishes. GN's gap is 0 at every batch size, because it computes the same
# statistics, from the image alone, in training and in eval. The
# successors of BN split into two families along exactly this line: those that keep the batch and
# change how its statistics are taken (Batch Renorm corrects them toward the running averages, Ghost BN
# takes them over smaller virtual batches, EvoNorm-B0 mixes in a per-sample variance), and the **batch-independent** ones,
# which pool only inside one sample — or pool nothing at all.

# %% [markdown]
# ### Try it: which norms look at the batch? (⏱ ~5 min)
#
# Write `looks_at_batch(spec)`: build `make_norm(spec, CHANNELS)` (the `norm=` factory of labnorm's
# models), and in training mode return whether image 0's output moves (by more than `1e-5`) when
# images 1–7 of `batch` are replaced, as above. The check runs it on every layer of the zoo and
# compares with the answer — among others, that FRN's output is invariant to the batch.
#
# <details><summary>Hint</summary>
#
# The batch `batch` and the batch `other` of the first cell differ only in images 1–7: compare
# `layer(batch)[0]` with `layer(other)[0]` under `torch.no_grad()`.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def looks_at_batch(spec):
    layer = make_norm(spec, CHANNELS).train()
    with torch.no_grad():
        return (layer(batch)[0] - layer(other)[0]).abs().max().item() > 1e-5


# %% tags=["check"]
torch.manual_seed(0)
batch_dependent = {"bn", "brn", "gbn:4", "evob0"}
batch_independent = {"gn:4", "ln", "ln2d", "rms", "in", "frn", "evos0:4", "dyt", "grn"}
for spec in sorted(batch_dependent | batch_independent):
    assert looks_at_batch(spec) == (spec in batch_dependent), spec
print("✓ only bn, brn, gbn:4 and evob0 look at the other images; frn, gn, ln, in, evos0, dyt ... do not")

# %% [markdown]
# ## The idea: what each norm is for
#
# Every layer of the zoo keeps BN's goal — activations at a steady scale whatever the weights do,
# so that deep networks train at high learning rates — and changes *where the statistics come
# from*. Pool inside one sample and the batch size stops mattering, training and eval become the
# same function, and no running averages are needed; the price is that one image's statistics are
# noisier than a batch's and erase some information the image carried (its brightness, its
# contrast). A few layers go further and fuse the activation that follows the norm into it, or drop
# the statistics altogether. One line each — the paper's setting, not a verdict:
#
# | layer (paper) | `norm=` | what it fixes | where it is used | looks at the batch? |
# |---|---|---|---|---|
# | Batch Norm ([Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167)) | `bn` | the starting point: steady activations, high learning rates | CNNs trained with large batches (ResNets) | yes |
# | Batch Renorm ([Ioffe, 2017](https://arxiv.org/abs/1702.03275)) | `brn` | BN's train/eval mismatch at small or non-i.i.d. batches: corrects the batch statistics towards the running ones | a BN network that must train with small batches (a BN checkpoint loads into it) | yes |
# | Ghost BN ([Hoffer et al., 2017](https://arxiv.org/abs/1705.08741)) | `gbn:V` | statistics *too* precise at large batches: BN on slices of $V$ samples restores small-batch noise | large-batch training | yes, $V$ samples |
# | Layer Norm ([Ba et al., 2016](https://arxiv.org/abs/1607.06450)) | `ln`, `ln2d` | the batch dependence: each sample by its own features | RNNs, transformers; `ln2d` (per position) in ConvNeXt | no |
# | RMSNorm ([Zhang & Sennrich, 2019](https://arxiv.org/abs/1910.07467)) | `rms` | layer norm's cost: drops the centring | transformers, most recent language models | no |
# | Instance Norm ([Ulyanov et al., 2016](https://arxiv.org/abs/1607.08022)) | `in` | one image's contrast leaking into another's: each image and channel by itself | style transfer, image generation | no |
# | Group Norm ([Wu & He, 2018](https://arxiv.org/abs/1803.08494)), WS + GN ([Qiao et al., 2019](https://arxiv.org/abs/1903.10520)) | `gn:G`, `ws+gn:G` | small batches per device | detection, segmentation, video; [BiT](https://labnorm.github.io/labnorm/glossary/#bit) (Big Transfer, ResNets pre-trained for transfer with GN + WS) — notebooks 01, 03, 04 | no |
# | FRN + TLU ([Singh & Krishnan, 2019](https://arxiv.org/abs/1911.09737)) | `frn` | BN + ReLU at any batch size: divides by the mean square, then a [TLU](https://labnorm.github.io/labnorm/glossary/#tlu) (a ReLU whose threshold $\tau$ is learned, $\max(y, \tau)$) | image classification and detection, as a BN + ReLU replacement | no |
# | EvoNorm-S0 / B0 ([Liu et al., 2020](https://arxiv.org/abs/2004.02967)) | `evos0:G`, `evob0` | BN + ReLU replaced by one layer found by search; S0 has a [SiLU](https://labnorm.github.io/labnorm/glossary/#silu) gate built in (SiLU: $x \cdot \mathrm{sigmoid}(x)$, a smooth ReLU) | image classifiers, detection and GANs in the paper | S0 no, B0 yes (a batch variance) |
# | Dynamic Tanh ([Zhu et al., 2025](https://arxiv.org/abs/2503.10622)) | `dyt` | the cost of statistics: none at all, a learned $\tanh$ | transformers (its successor Derf, `labnorm.DynamicErf`: notebook 12); here outside its setting | no |
# | GRN ([Woo et al., 2023](https://arxiv.org/abs/2301.00808)) | `grn` | dead or saturated channels in ConvNeXt V2: channels compete through each one's share of the sample's response | ConvNeXt V2's MLP block, beside a layer norm | no |
#
# All of them are one `norm=` name away in labnorm's models:

# %%
print(", ".join(available_norms()))
model = SmallCNN(norm="frn", width=8)
print(model.features[0])  # FRN + TLU replaces BN + ReLU: the model adds no ReLU after a fused norm

# %% [markdown]
# ## One formula, different sets
#
# Almost every layer of the zoo computes, for a set $S$ of values of the feature map $x$,
#
# $$\mu_S = \frac{1}{|S|}\sum_{i \in S} x_i, \qquad \sigma^2_S = \frac{1}{|S|}\sum_{i \in S}(x_i - \mu_S)^2,
#   \qquad y_i = \gamma_c\,\frac{x_i - \mu_S}{\sqrt{\sigma^2_S + \epsilon}} + \beta_c$$
#
# with a learned scale $\gamma_c$ and shift $\beta_c$ per channel. What changes from one layer
# to the next is the set $S$ — and a few layers change the formula too:
#
# | layer | `norm=` | one $\mu, \sigma^2$ per | pooled over | formula |
# |---|---|---|---|---|
# | Batch Norm | `bn` | channel | $N, H, W$ | as above; running averages for eval |
# | Batch Renorm | `brn` | channel | $N, H, W$ | BN, then corrected towards the running averages: $\hat x\,r + d$ |
# | Ghost BN | `gbn:V` | channel and virtual batch of $V$ samples | $V, H, W$ | BN on each slice of $V$ samples |
# | Layer Norm (conv) | `ln` | sample | $C, H, W$ | as above (`GroupNorm(1, C)`) |
# | Layer Norm 2d | `ln2d` | sample and position | $C$ | as above (ConvNeXt's) |
# | RMSNorm 2d | `rms` | sample and position | $C$ | no mean: $x / \sqrt{\overline{x^2} + \epsilon}$, no $\beta$ |
# | Instance Norm | `in` | sample and channel | $H, W$ | as above |
# | Group Norm | `gn:G` | sample and group of $C/G$ channels | $C/G, H, W$ | as above |
# | Filter Response Norm | `frn` | sample and channel | $H, W$ | no mean: $x / \sqrt{\nu^2 + \epsilon}$ ($\nu^2$: the mean square), then TLU $\max(y, \tau)$ |
# | EvoNorm-S0 | `evos0:G` | sample and group | $C/G, H, W$ | $x\,\mathrm{sigmoid}(v x) / \sigma_S$: no mean, a SiLU gate built in |
# | EvoNorm-B0 | `evob0` | channel, and sample and channel | $N, H, W$ and $H, W$ | $x / \max(\sigma_{\text{batch}},\, v x + \sigma_{\text{instance}})$ |
# | Dynamic Tanh | `dyt` | — | nothing | $\gamma \tanh(\alpha x) + \beta$: no statistics at all |
#
# Only the first three and EvoNorm-B0 (for its batch variance) look at other samples of the batch
# — the ones the first exercise found — so only they behave differently at batch 2 and at batch 128,
# and only they need running averages for eval. The cubes below shade, for each layer, the values that share **one** set of
# statistics with the first value of the map, inside the outline of the whole map (a second colour
# for EvoNorm-B0's second set, which lies inside its first): the
# map has $N=4$ samples, $C=6$ channels and $H \cdot W = 4$ positions drawn along one axis; group
# norms use $G = 3$ groups and Ghost BN virtual batches of $V = 2$.

# %%
N_, C_, S_ = 4, 6, 4  # samples, channels, positions (H·W flattened) of the drawing


def shade(n=slice(0, 1), c=slice(0, 1), s=slice(0, 1)):
    """A boolean [N, C, H·W] mask with the block (n, c, s) set."""
    mask = np.zeros((N_, C_, S_), dtype=bool)
    mask[n, c, s] = True
    return mask


ALL = slice(None)
ZOO = [  # (title, the values pooled with x[0, 0, 0], a second pooled set or None)
    ("Batch Norm / Batch Renorm\nmean, var", shade(n=ALL, s=ALL), None),
    ("Ghost BN (V=2)\nmean, var", shade(n=slice(0, 2), s=ALL), None),
    ("Layer Norm (ln)\nmean, var", shade(c=ALL, s=ALL), None),
    ("Group Norm (G=3)\nmean, var", shade(c=slice(0, 2), s=ALL), None),
    ("Instance Norm\nmean, var", shade(s=ALL), None),
    ("Layer Norm 2d\nmean, var", shade(c=ALL), None),
    ("RMSNorm 2d\nmean square only", shade(c=ALL), None),
    ("Filter Response Norm\nmean square only", shade(s=ALL), None),
    ("EvoNorm-S0 (G=3)\nvar only, no centring", shade(c=slice(0, 2), s=ALL), None),
    ("EvoNorm-B0: batch var (blue),\ninstance var (orange) inside it", shade(n=ALL, s=ALL), shade(s=ALL)),
    ("Dynamic Tanh\nno statistics", shade(), None),
]


def draw_cube(ax, mask, second, title):
    # Only the pooled values are drawn as cubes (drawing all N·C·H·W of them is slow); the map is its outline
    filled = mask if second is None else mask | second
    colors = np.zeros(mask.shape + (4,))
    colors[mask] = (0.12, 0.47, 0.71, 0.9)
    if second is not None:
        colors[second] = (1.0, 0.5, 0.05, 0.95)
    ax.voxels(filled, facecolors=colors, edgecolor=(0.2, 0.2, 0.2, 0.5), linewidth=0.3)
    for a in (0, N_):  # the 12 edges of the whole map
        for b in (0, C_):
            ax.plot([a, a], [b, b], [0, S_], color="0.5", lw=0.8)
        for b in (0, S_):
            ax.plot([a, a], [0, C_], [b, b], color="0.5", lw=0.8)
    for b in (0, C_):
        for d in (0, S_):
            ax.plot([0, N_], [b, b], [d, d], color="0.5", lw=0.8)
    ax.set_xlabel("N", labelpad=-12)
    ax.set_ylabel("C", labelpad=-12)
    ax.set_zlabel("H, W", labelpad=-12)
    ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    ax.view_init(elev=22, azim=-58)
    ax.set_box_aspect((N_, C_, S_))
    ax.set_title(title, fontsize=9)


fig = plt.figure(figsize=(11, 7.6))
for k, (title, mask, second) in enumerate(ZOO):
    draw_cube(fig.add_subplot(3, 4, k + 1, projection="3d"), mask, second, title)
fig.suptitle("Which values of an [N, C, H, W] map share one set of statistics (shaded: the set of the first value)")
plt.show()

# %% [markdown]
# The same cubes to turn: pick a layer from the menu and drag the cube to rotate it.

# %%
from labnorm.experiments import plots

plots.pooling_cubes(ZOO).show()

# %% [markdown]
# ### Try it: three names for two layers (⏱ ~5 min)
#
# The table says that instance norm is group norm with one channel per group, and that layer
# norm over $(C, H, W)$ is group norm with one group. Build `gn_as_in` and `gn_as_ln`, two
# `nn.GroupNorm` layers for $C = 6$ channels, so that the check finds `gn_as_in` equal to
# `nn.InstanceNorm2d(6, affine=True)` (with the same $\gamma, \beta$) and `gn_as_ln` equal to
# `nn.LayerNorm([6, 5, 5], elementwise_affine=False)` (at its initial $\gamma = 1, \beta = 0$).
#
# <details><summary>Hint</summary>
#
# `nn.GroupNorm(num_groups, num_channels)`: how many groups make a group one channel, and how many
# make it all of them? Look back at the cubes of Instance Norm, Layer Norm and Group Norm.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
gn_as_in = nn.GroupNorm(6, 6)  # 6 groups of 1 channel: each (sample, channel) over (H, W)
gn_as_ln = nn.GroupNorm(1, 6)  # 1 group of 6 channels: each sample over (C, H, W)

# %% tags=["check"]
torch.manual_seed(3)
x_try = torch.randn(4, 6, 5, 5, dtype=torch.float64) * 3 + 2
instance = nn.InstanceNorm2d(6, affine=True).double()
with torch.no_grad():  # the same random gamma and beta in both layers
    for p, q in zip(instance.parameters(), gn_as_in.double().parameters()):
        p.copy_(torch.rand_like(p) + 0.5)
        q.copy_(p)
torch.testing.assert_close(gn_as_in(x_try), instance(x_try))
torch.testing.assert_close(gn_as_ln.double()(x_try), nn.LayerNorm([6, 5, 5], elementwise_affine=False).double()(x_try))
print("✓ GroupNorm(6, 6) = InstanceNorm2d(6), GroupNorm(1, 6) = LayerNorm over (C, H, W)")

# %%
# The input of the next exercise: 2 samples, 4 channels, every value near 5 with a spread of 0.1
torch.manual_seed(4)
x_frn = 5 + 0.1 * torch.randn(2, 4, 16, 16, dtype=torch.float64)

# %% [markdown]
# ### Try it: FRN does not centre (⏱ ~5 min)
#
# FRN divides by the root mean *square* $\nu$ and subtracts nothing. Feed
# `labnorm.FilterResponseNorm2d(4)` (at its initial $\gamma = 1, \beta = 0$, without TLU) the map
# `x_frn` above — every value near 5, with a standard deviation of 0.1 — and store the mean and the
# standard deviation of its output in `frn_mean` and `frn_std`. Predict them first: how much of the
# spread of the input is left, compared with what instance norm would give (a standard deviation of 1)?
#
# <details><summary>Hint</summary>
#
# $\nu^2 = \overline{x^2} = \mu^2 + \sigma^2 = 25.01$ here, so the layer divides every value by
# about 5. Compute with `with torch.no_grad():` and `.mean().item()`, `.std().item()`.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
with torch.no_grad():
    out = labnorm.FilterResponseNorm2d(4).double()(x_frn)
frn_mean, frn_std = out.mean().item(), out.std().item()

# %% tags=["check"]
nu = (x_frn ** 2).mean().sqrt().item()  # about sqrt(25.01)
assert abs(frn_mean - 5 / nu) < 1e-3 and abs(frn_std - 0.1 / nu) < 2e-3, (frn_mean, frn_std)
print(f"✓ FRN output: mean {frn_mean:.3f}, std {frn_std:.3f} — every value near 1: a ReLU at 0 would let all through, "
      "so TLU's tau must learn to sit near 1 to switch any off")


# %% [markdown]
# ## The zoo, line by line (deep dive, optional)
#
# This section and the next prove that the few lines of each formula are what the `labnorm` layers
# (and PyTorch's, where they exist) compute; skip to the experiment below if you
# trust them.
#
# Most layers standardize over some dims and apply a per-channel affine; `standardize` is that
# operation once. Every function below takes the map $[N, C, H, W]$ and the layer's parameters,
# and returns the layer's training-mode output.

# %%
def per_channel(t):
    """A per-channel vector [C] as [1, C, 1, 1], to broadcast over an [N, C, H, W] map."""
    return t.view(1, -1, 1, 1)


def standardize(x, dims, eps):
    """(x - mean) / sqrt(var + eps) over `dims`, with the biased variance (divided by the count)."""
    mu = x.mean(dims, keepdim=True)
    var = ((x - mu) ** 2).mean(dims, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def layer_norm(x, weight, bias, eps=1e-5):
    # `ln`: each sample over (C, H, W) — GroupNorm with one group
    return per_channel(weight) * standardize(x, (1, 2, 3), eps) + per_channel(bias)


def layer_norm_2d(x, weight, bias, eps=1e-6):
    # `ln2d`: each sample and position over C alone
    return per_channel(weight) * standardize(x, (1,), eps) + per_channel(bias)


def rms_norm_2d(x, weight, eps=None):
    # `rms`: no mean; divide by the root mean square over C (eps: the dtype's machine epsilon, as torch)
    eps = torch.finfo(x.dtype).eps if eps is None else eps
    return per_channel(weight) * x / torch.sqrt((x ** 2).mean(1, keepdim=True) + eps)


def instance_norm(x, weight, bias, eps=1e-5):
    # `in`: each sample and channel over its positions
    return per_channel(weight) * standardize(x, (2, 3), eps) + per_channel(bias)


def ghost_batch_norm(x, weight, bias, virtual_batch_size, eps=1e-5):
    # `gbn:V`: batch norm on each slice of V samples (the last slice holds the remainder)
    return torch.cat([per_channel(weight) * standardize(part, (0, 2, 3), eps) + per_channel(bias)
                      for part in x.split(virtual_batch_size)])


def batch_renorm(x, weight, bias, running_mean, running_var, r_max, d_max, eps=1e-5):
    # `brn`: batch statistics, corrected towards the running ones by r and d (constants for backprop)
    mu_b = x.mean((0, 2, 3), keepdim=True)
    sigma_b = torch.sqrt(((x - mu_b) ** 2).mean((0, 2, 3), keepdim=True) + eps)
    sigma = torch.sqrt(per_channel(running_var) + eps)
    r = (sigma_b / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mu_b - per_channel(running_mean)) / sigma).clamp(-d_max, d_max).detach()
    return per_channel(weight) * ((x - mu_b) / sigma_b * r + d) + per_channel(bias)


def filter_response_norm_tlu(x, weight, bias, tau, eps=1e-6):
    # `frn`: divide by the root mean *square* over the positions, affine, then TLU = max(y, tau)
    nu2 = (x ** 2).mean((2, 3), keepdim=True)
    y = per_channel(weight) * x / torch.sqrt(nu2 + abs(eps)) + per_channel(bias)
    return torch.maximum(y, per_channel(tau))


def evonorm_b0(x, weight, bias, v, eps=1e-5):
    # `evob0`: x / max(batch std, v·x + instance std); the stds from biased variances
    batch_std = torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + eps)
    instance_std = torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + eps)
    return per_channel(weight) * x / torch.maximum(batch_std, per_channel(v) * x + instance_std) + per_channel(bias)


def evonorm_s0(x, weight, bias, v, groups, eps=1e-5):
    # `evos0:G`: a SiLU-like gate x·sigmoid(v·x), divided by the std of each (sample, group)
    n = x.shape[0]
    group_var = x.reshape(n, groups, -1).var(-1, unbiased=False, keepdim=True)
    std = torch.sqrt(group_var + eps).repeat_interleave(x.shape[1] // groups, dim=1).view(n, -1, 1, 1)
    return per_channel(weight) * x * torch.sigmoid(per_channel(v) * x) / std + per_channel(bias)


def dynamic_tanh(x, weight, bias, alpha):
    # `dyt`: no statistics; one learned scalar alpha, per-channel gamma and beta
    return per_channel(weight) * torch.tanh(alpha * x) + per_channel(bias)


# %% [markdown]
# ### Try it: centre the RMSNorm (⏱ ~5 min)
#
# `rms_norm_2d` divides by the root mean square over the channels, without subtracting their mean.
# Write `centred_rms_norm_2d(x, weight, eps=1e-6)`: subtract the mean over the channels first, then
# do what `rms_norm_2d` does. Which layer of the zoo is it? The check compares it with
# `labnorm.LayerNorm2d` whose $\beta$ is 0.
#
# <details><summary>Hint</summary>
#
# The root mean square of centred values is their standard deviation. `x - x.mean(1, keepdim=True)`
# centres over the channels; then call `rms_norm_2d(centred, weight, eps)`.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def centred_rms_norm_2d(x, weight, eps=1e-6):
    return rms_norm_2d(x - x.mean(1, keepdim=True), weight, eps)


# %% tags=["check"]
torch.manual_seed(5)
x_rms = torch.randn(3, 6, 4, 4, dtype=torch.float64) * 2 + 1
ln2d = labnorm.LayerNorm2d(6).double()
with torch.no_grad():
    ln2d.weight.uniform_(0.5, 1.5)
    ln2d.bias.zero_()
    torch.testing.assert_close(centred_rms_norm_2d(x_rms, ln2d.weight), ln2d(x_rms))
print("✓ RMSNorm of the centred values = LayerNorm2d (beta = 0): layer norm is RMSNorm plus the centring")


# %% [markdown]
# ## Parity: scratch = labnorm = torch (deep dive, optional)
#
# Each `labnorm` layer gets random parameters (and, where it has them, random running
# statistics); the scratch function gets copies of them. In float64 we compare the training
# output, the gradient with respect to the input and the gradients of the parameters. Where
# PyTorch has the layer, it is the third column: `nn.LayerNorm` on the channels-last
# permutation for LN2d, `nn.RMSNorm` likewise for RMSNorm, `nn.GroupNorm(1, C)` for `ln`,
# `nn.InstanceNorm2d`, a loop of one `nn.BatchNorm2d` over the virtual batches for Ghost BN,
# and `nn.BatchNorm2d` for Batch Renorm with $r_{\max} = 1$, $d_{\max} = 0$ (where it must be BN).
# FRN, EvoNorm and DyT have no PyTorch layer: the scratch function is the paper's formula.
# The printed lines are checked in CI by [nbval](https://labnorm.github.io/labnorm/glossary/#nbval),
# which reruns the notebook and compares them with the saved ones.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
C, TOL = 6, 1e-10
x0 = torch.randn(8, C, 5, 5, dtype=torch.float64) * 2 + 0.5
upstream = torch.randn_like(x0)


def randomize(layer):
    """Random parameters and running statistics, so that nothing is checked at its trivial init."""
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.rand_like(p) + 0.5)
        for name, b in layer.named_buffers():
            if name == "running_mean":
                b.copy_(torch.randn_like(b) * 0.5)
            elif name == "running_var":
                b.copy_(torch.rand_like(b) + 0.5)
    return layer


def grads(fn, params):
    """Output, input gradient and parameter gradients of fn(x, **params) for one upstream gradient."""
    x = x0.clone().requires_grad_()
    y = fn(x, **params)
    y.backward(upstream)
    return [y.detach(), x.grad] + [p.grad for p in params.values() if isinstance(p, torch.Tensor) and p.requires_grad]


def check(name, layer, scratch, extra=None, ref=None):
    """Compare scratch(x, params of `layer`, **extra) with layer(x) (and with ref(x), when there is one)."""
    layer = randomize(layer.double())
    params = {n: p.detach().clone().requires_grad_() for n, p in layer.named_parameters()}
    buffers = {n: b.clone() for n, b in layer.named_buffers()}
    want = grads(lambda x, **p: scratch(x, **p, **(extra(buffers) if extra else {})), params)
    got = grads(lambda x, **_: layer(x), dict(layer.named_parameters()))
    ok = len(want) == len(got) and all((a - b).abs().max().item() < TOL for a, b in zip(want, got))
    line = f"{name:<26} output, input and parameter gradients: scratch = labnorm {ok}"
    if ref is not None:
        ref = ref.double()
        with torch.no_grad():  # torch's layer with the same parameters
            for (_, p), q in zip(layer.named_parameters(), ref.parameters()):
                q.copy_(p)
        theirs = grads(lambda x, **_: ref(x), dict(ref.named_parameters()))
        ok_ref = all((a - b).abs().max().item() < TOL for a, b in zip(got, theirs))
        line += f", = torch {ok_ref}"
    print(line)


class ChannelsLast(nn.Module):
    """Apply a channels-last torch layer to an [N, C, H, W] map (permute, apply, permute back)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class VirtualBatches(nn.Module):
    """One torch BatchNorm2d applied to each slice of V samples in turn."""

    def __init__(self, bn, v):
        super().__init__()
        self.bn, self.v = bn, v

    def forward(self, x):
        return torch.cat([self.bn(part) for part in x.split(self.v)])


check("Layer Norm (ln)", labnorm.GroupNorm(1, C), layer_norm, ref=nn.GroupNorm(1, C))
check("Layer Norm 2d", labnorm.LayerNorm2d(C), layer_norm_2d, ref=ChannelsLast(nn.LayerNorm(C, eps=1e-6)))
check("RMSNorm 2d", labnorm.RMSNorm2d(C), rms_norm_2d, ref=ChannelsLast(nn.RMSNorm(C)))
check("Instance Norm", labnorm.InstanceNorm2d(C, affine=True), instance_norm, ref=nn.InstanceNorm2d(C, affine=True))
check("Ghost BN (V=3)", labnorm.GhostBatchNorm2d(C, virtual_batch_size=3), ghost_batch_norm,
      extra=lambda b: {"virtual_batch_size": 3}, ref=VirtualBatches(nn.BatchNorm2d(C), 3))
check("Batch Renorm (r_max=1.5)", labnorm.BatchRenorm2d(C, r_max=1.5, d_max=0.5), batch_renorm,
      extra=lambda b: {"running_mean": b["running_mean"], "running_var": b["running_var"], "r_max": 1.5, "d_max": 0.5})
brn_as_bn = labnorm.BatchRenorm2d(C, r_max=1.0, d_max=0.0)
check("Batch Renorm (r_max=1)", brn_as_bn, batch_renorm,
      extra=lambda b: {"running_mean": b["running_mean"], "running_var": b["running_var"], "r_max": 1.0, "d_max": 0.0},
      ref=nn.BatchNorm2d(C))
check("FRN + TLU", nn.Sequential(labnorm.FilterResponseNorm2d(C), labnorm.TLU(C)),
      lambda x, **p: filter_response_norm_tlu(x, p["0.weight"], p["0.bias"], p["1.tau"]))
check("EvoNorm-B0", labnorm.EvoNorm2dB0(C), evonorm_b0)
check("EvoNorm-S0 (G=3)", labnorm.EvoNorm2dS0(C, groups=3), evonorm_s0, extra=lambda b: {"groups": 3})
check("Dynamic Tanh", labnorm.DynamicTanh(C), dynamic_tanh)

# %% [markdown]
# Two of these layers keep running statistics that the check above does not reach: Batch
# Renorm updates BN's buffers exactly as `nn.BatchNorm2d` does, and EvoNorm-B0 keeps a moving
# average of the *biased* batch variance (the authors' convention; timm's port keeps the unbiased
# one). One training step from the same buffers, then eval mode:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(1)
x = torch.randn(8, C, 5, 5, dtype=torch.float64) * 2 + 0.5
brn, bn = randomize(labnorm.BatchRenorm2d(C, momentum=0.1).double()), nn.BatchNorm2d(C).double()
bn.load_state_dict(brn.state_dict())
brn(x), bn(x)
print("Batch Renorm running mean/var = torch BN's:",
      all((a - b).abs().max().item() < TOL for a, b in [(brn.running_mean, bn.running_mean),
                                                       (brn.running_var, bn.running_var)]))
brn.eval(), bn.eval()
print("Batch Renorm eval output = torch BN's eval output:", (brn(x) - bn(x)).abs().max().item() < TOL)

b0 = randomize(labnorm.EvoNorm2dB0(C, momentum=0.1).double())
start = b0.running_var.clone()
b0(x)
biased = x.var((0, 2, 3), unbiased=False)
print("EvoNorm-B0 moving variance = 0.9 · old + 0.1 · biased batch variance:",
      (b0.running_var - (0.9 * start + 0.1 * biased)).abs().max().item() < TOL)
b0.eval()
eval_std = torch.sqrt(per_channel(b0.running_var) + b0.eps)
instance_std = torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + b0.eps)
scratch_eval = (per_channel(b0.weight) * x / torch.maximum(eval_std, per_channel(b0.v) * x + instance_std)
                + per_channel(b0.bias))
print("EvoNorm-B0 eval output = the formula with the moving variance:", (b0(x) - scratch_eval).abs().max().item() < TOL)

# %% [markdown]
# ## Experiment: the zoo at batch 2 and at batch 128
#
# The problem above was made-up data. Does it matter when a network trains? The small CNN of
# notebook 01 (three conv → norm → activation → max-pool stages, widths $w, 2w, 4w$) is trained on
# CIFAR-10 with each norm at batch 2 and at batch 128, with a
# [one-cycle](https://labnorm.github.io/labnorm/glossary/#one-cycle) SGD schedule (the learning rate
# rises to a peak, then falls far below its start) and the learning rate
# [scaled linearly with the batch](https://labnorm.github.io/labnorm/glossary/#linear-lr-scaling)
# (0.1 at batch 64, so 0.003125 at batch 2 and 0.2 at batch 128, after Goyal et al. 2017). Both
# batch sizes see the same images, so batch 2 takes 64 times as many steps. Every arm of a seed
# starts from the same seed and sees the same images in the same order, so two norms are compared
# through their **paired** difference over seeds. The verdicts judge the claims of the small-batch
# papers: GN, FRN, EvoNorm-S0 and Batch Renorm each beat BN at batch 2; and, at batch 128, BN beats
# GN (the GN paper's large-batch finding) and FRN beats BN (the quote above). Test accuracy is
# measured in eval mode, so the batch-statistics norms use their running averages — the mismatch of
# the problem section is part of what is measured.
#
# The experiment lives in `labnorm.experiments.norm_zoo_small_cnn`; the cell below loads its saved
# record (at the quick `smoke` scale of CI it trains one seed live: see the end of the notebook).
# The report's table has seconds-per-epoch columns: they are wall time on a shared machine, not a
# speed comparison (the report draws no speed chart) —
# `benchmarks/bench_zoo.py` times every layer, eager and compiled, as ratios to torch's BN in one run.
# The config printed first is today's, which lists `grn`; the saved record predates GRN, so the tables
# below have no GRN row until the experiment is rerun.

# %%
zoo = experiments.get("norm_zoo_small_cnn")
print(zoo.config(SCALE))
live = experiments.load_or_run("norm_zoo_small_cnn", SCALE)
print(f"{live['source']} record")
zoo.report(live).show()

# %% [markdown]
# ## Reference results
#
# The largest saved record of this experiment, from `results/` (its provenance line says where,
# when and over which seeds it ran). Each accuracy is the mean over seeds ± the half-width of its
# 95% interval; each verdict is computed by `labnorm.verdict` from the paired difference of two
# arms over the same seeds.

# %%
reference = experiments.reference("norm_zoo_small_cnn")
if reference is None:
    print("no saved reference run found (set LABNORM_RESULTS to the repository's results/ folder)")
elif reference["scale"] == SCALE:
    print("the reference is the record shown above")
else:
    zoo.report(reference).show()

# %% [markdown]
# The verdicts of the reference record, one line each, with what each word means for its claim;
# then BN's own accuracy — a gap of a few points means something else at 30% accuracy than at 90% —,
# the arms that stayed near chance level, and the per-seed difference between Ghost BN and BN at
# batch 2, where the two are the same layer: that difference is pure run-to-run noise (floating-point
# rounding, amplified over thousands of steps), a yardstick for the other gaps.

# %%
shown = reference if reference is not None else live
meaning = {"supported": "this run agrees with the claim",
           "contradicted": "this run disagrees with the claim, at this scale",
           "inconclusive at this scale": "this run cannot tell (the interval straddles the boundary, one seed, or "
                                         "a run too small for the claim: the reason says which)",
           "not testable here": "this run cannot test it (an arm never learned, or the measure could not move)",
           "not run": "the record lacks the runs"}
for v in zoo.report(shown).verdicts:
    print(f"{v.claim.tests}: {v.word} — {meaning[v.word]}")
cfg = shown["config"]
for bs in cfg["batch_sizes"]:
    print(f"bn at batch {bs}: test accuracy {experiments.summary(shown, f'test_acc/bn/b{bs}').format(1, percent=True)}")
near_chance = [f"{n} at batch {bs}" for n in cfg["norms"] for bs in cfg["batch_sizes"]
               if (experiments.summary(shown, f"test_acc/{n}/b{bs}").mean or 0.0) < 0.12]
print("mean test accuracy below 12% (chance is 10%):", ", ".join(near_chance) or "none")
small = min(cfg["batch_sizes"])
ghost = next(n for n in cfg["norms"] if n.startswith("gbn"))
diffs = [g - b for g, b in zip(experiments.values(shown, f"test_acc/{ghost}/b{small}"),
                               experiments.values(shown, f"test_acc/bn/b{small}"))]
print(f"{ghost} minus bn at batch {small}, per seed, in points:", ", ".join(f"{100 * d:+.1f}" for d in diffs))

# %% [markdown]
# ## What we found
#
# * **The verdicts above are all this run can say.** Each line is *supported* or *contradicted*
#   only when the 95% interval of the paired difference over the seeds lies wholly on one side of
#   the claim and the run can show the claim at all: its BN baseline must reach 85% test accuracy,
#   the level of a trained CIFAR-10 network, and no arm compared may have stayed at chance
#   (`labnorm.experiments.claims`). Otherwise it is *inconclusive at this scale* (or *not testable
#   here*), with the reason — and a record with one seed is always inconclusive. A claim judged
#   inconclusive here is neither confirmed nor refuted by this run.
# * **What the saved three-seed `cpu` record says** (its verdict lines and BN's accuracy are printed
#   above). BN reaches about 41% at batch 128, so these are networks early in training, and every
#   verdict is *inconclusive at this scale*, whatever its interval says. The intervals still describe
#   this early stage: at batch 2, EvoNorm-S0 and Batch Renorm end above BN (for Batch Renorm the
#   interval only just clears zero), GN cannot be told apart from BN, and FRN ends below BN; at batch
#   128, BN ends above GN and FRN again below BN. The FRN paper, quoted at the top, reports FRN ahead
#   of BN at every batch size on ImageNet, on trained networks; these early gaps, with one
#   learning-rate rule for every norm, tuned for none of them, neither confirm nor refute it.
# * **Batch 2 and batch 128 are not the same training budget.** With the same images, batch 2
#   takes 64 times as many (smaller) steps; on a small run that can favour batch 2 whatever the
#   norm, so compare norms *within* a batch size, as the verdicts do, not a norm across the two.
# * **Ghost BN at batch 2 is BN.** Its virtual batch of 32 holds the whole batch of 2, so at batch 2
#   it computes what BN computes, up to the order of floating-point operations. The per-seed
#   differences printed above are therefore run-to-run noise, not evidence about ghost batches — and
#   a measure of how far apart two runs of the *same* network end on this budget.
# * **A norm that stays near chance did not learn on this budget**; the line above lists any such arm.
#   If Dynamic Tanh is among them, remember that it was designed to replace layer norm in
#   transformers; here it sits after every conv, with its default $\alpha_0 = 0.5$ and no statistics
#   to bring the activations into tanh's range.
# * **The scale limits every conclusion.** The papers train ResNets or Inception on ImageNet (FRN,
#   EvoNorm, GN, Batch Renorm), for tens of thousands of steps; this is a three-stage CNN trained
#   briefly on a subset of the JPEG copy of CIFAR-10 on a CPU, with one learning-rate rule for every
#   norm, Batch Renorm without its warm-up, and DyT outside the transformers it was made for. The
#   baseline accuracy printed above is far from a tuned CIFAR-10 model's, so the sizes of the gaps are
#   not comparable with the papers' figures. The `gpu` scale trains the full data for longer.
# * **The problem, in a trained network.** BN is evaluated with its running averages at both batch
#   sizes, so its batch-2 arm carries the train/eval mismatch of the problem section. The two `bn`
#   lines printed above show how far apart BN ends at the two batch sizes — but batch 2 also took 64
#   times as many steps, so that difference mixes the mismatch with the budget; the verdicts, which
#   compare norms at the same batch size, are the fair reading.
# * **Which norm, then?** The table "what each norm is for" gives each paper's own setting; notebook 10
#   compares the zoo on a larger network, and the page
#   [Which normalization should I use?](https://labnorm.github.io/labnorm/choose/) gathers the
#   papers' settings and these runs into one decision table.

# %% [markdown]
# ## Exercises
#
# Longer questions; the first needs no code, the other two a training run of a few minutes on a
# CPU (one seed, so compare values, not verdicts).
#
# 1. Draw the cube of Switchable Norm (notebook 05): it mixes three of the sets above — which?
# 2. Ghost BN at batch 128 with virtual batches of 2 is "batch-2 statistics, batch-128 gradients".
#    Train it on the record's images and compare it with seed 0 of BN at batch 2 and at batch 128
#    (`experiments.values(shown, "test_acc/bn/b2")[0]`, and `.../b128`): which is it nearer?
#
#    ```python
#    from labnorm.experiments.common import cifar_subsets, train_run
#    train, test = cifar_subsets(cfg["train_images"], cfg["test_images"], seed=0)
#    _, run = train_run(lambda: SmallCNN(norm="gbn:2", width=cfg["width"]), train, test, batch_size=128,
#                       seed=0, device=torch.device("cpu"), epochs=cfg["epochs"], lr=0.2, labels={})
#    print(run["final_test_acc"])
#    ```
# 3. Give Batch Renorm the paper's warm-up: pass `train_run` (as above, with `norm="brn"`,
#    `batch_size=2`, `lr=0.003125`) an `on_step=lambda model, images, labels, step:
#    labnorm.set_renorm_limits(model, *labnorm.renorm_limits(step, ...))`, with the step counts of
#    `renorm_limits` scaled to the run's length (the paper's 5k, 25k and 40k steps belong to a run of
#    hundreds of thousands). Does it move Batch Renorm's batch-2 accuracy against seed 0 of `brn` in
#    the record?

# %% [markdown]
# ## Running this notebook at other scales
#
# The scale comes from the environment variable `LABNORM_SCALE` (`smoke`, `cpu` or `gpu`; `cpu` by
# default). Everything before the experiment runs in seconds at any scale. The experiment cell
# loads the saved record of its scale from `results/` when there is one (the `cpu` record, written
# by `python -m labnorm run norm_zoo_small_cnn --scale cpu --seeds 3`, which resumes where it
# stopped), and otherwise trains one seed live without saving it — which is what CI does at the
# `smoke` scale, on a few images. There is no saved `gpu` record: at `LABNORM_SCALE=gpu` (on Colab,
# choose a GPU runtime and run `%env LABNORM_SCALE=gpu` before the set-up cells) the cell trains
# every norm at both batch sizes on the full data, and the 64-times-longer batch-2 runs dominate the
# cost. Measure before you launch: `python -m labnorm run norm_zoo_small_cnn --scale gpu --dry-run`
# takes a few steps of every arm and prints the projected time and memory.
