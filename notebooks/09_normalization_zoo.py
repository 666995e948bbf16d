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
# 1. draw, for each normalization, the values of an $[N, C, H, W]$ feature map that it pools
#    into one set of statistics;
# 2. write each one from scratch in a few lines of tensor code and prove it equal to its
#    `labnorm` layer, and to PyTorch's layer where PyTorch has one;
# 3. say what each was made for, after its paper;
# 4. train the same small CNN with every one of them at batch 2 and at batch 128, over seeds,
#    and read the verdicts on the small-batch claims of the papers.
#
# Batch norm and group norm are built line by line in notebook 01, weight standardization in
# notebook 03, switchable norm in notebook 05; here they appear as the neighbours of the others.
# The annotated sources are `labnorm/layer_norm.py`, `instance_norm.py`, `ghost_batch_norm.py`,
# `batch_renorm.py`, `filter_response_norm.py`, `evonorm.py` and `dynamic_tanh.py`.

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
from labnorm.models import SmallCNN
from labnorm.norms import available_norms

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 72  # keeps the saved notebook small
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## Theory: one formula, different sets
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
# | Filter Response Norm | `frn` | sample and channel | $H, W$ | no mean: $x / \sqrt{\nu^2 + \epsilon}$, then TLU $\max(y, \tau)$ |
# | EvoNorm-S0 | `evos0:G` | sample and group | $C/G, H, W$ | $x\,\mathrm{sigmoid}(v x) / \sigma_S$: no mean, a SiLU gate built in |
# | EvoNorm-B0 | `evob0` | channel, and sample and channel | $N, H, W$ and $H, W$ | $x / \max(\sigma_{\text{batch}},\, v x + \sigma_{\text{instance}})$ |
# | Dynamic Tanh | `dyt` | — | nothing | $\gamma \tanh(\alpha x) + \beta$: no statistics at all |
#
# Only the first three look at other samples of the batch, so only they behave differently at
# batch 2 and at batch 128, and only they (and EvoNorm-B0, for its batch variance) need running
# averages for eval. The cubes below shade, for each layer, the values that share **one** set of
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
    ax.set_title(title, fontsize=8)


fig = plt.figure(figsize=(11, 7.6))
for k, (title, mask, second) in enumerate(ZOO):
    draw_cube(fig.add_subplot(3, 4, k + 1, projection="3d"), mask, second, title)
fig.suptitle("Which values of an [N, C, H, W] map share one set of statistics (shaded: the set of the first value)",
             fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# The same cubes to turn: pick a layer from the menu and drag the cube to rotate it.

# %%
from labnorm.experiments import plots

plots.pooling_cubes(ZOO).show()

# %% [markdown]
# ## The zoo, line by line
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
# ## Parity: scratch = labnorm = torch
#
# Each `labnorm` layer gets random parameters (and, where it has them, random running
# statistics); the scratch function gets copies of them. In float64 we compare the training
# output, the gradient with respect to the input and the gradients of the parameters. Where
# PyTorch has the layer, it is the third column: `nn.LayerNorm` on the channels-last
# permutation for LN2d, `nn.RMSNorm` likewise for RMSNorm, `nn.GroupNorm(1, C)` for `ln`,
# `nn.InstanceNorm2d`, a loop of one `nn.BatchNorm2d` over the virtual batches for Ghost BN,
# and `nn.BatchNorm2d` for Batch Renorm with $r_{\max} = 1$, $d_{\max} = 0$ (where it must be BN).
# FRN, EvoNorm and DyT have no PyTorch layer: the scratch function is the paper's formula.

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
# ## When each is meant to be used
#
# What each paper built its layer for — the setting in which its claims were made:
#
# * **Batch Renorm** ([Ioffe, 2017](https://arxiv.org/abs/1702.03275)): BN networks trained with
#   small or non-i.i.d. minibatches; it keeps BN's inference transform in training, so a BN
#   model can be switched to it.
# * **Ghost BN** ([Hoffer, Hubara & Soudry, 2017](https://arxiv.org/abs/1705.08741)): *large*-batch
#   training, where it restores the noise of small-batch statistics to close the generalization gap.
# * **Layer Norm** ([Ba, Kiros & Hinton, 2016](https://arxiv.org/abs/1607.06450)): recurrent networks
#   and, since, transformers — anywhere batch statistics are awkward; `ln2d` is its per-position form
#   in ConvNeXt ([Liu et al., 2022](https://arxiv.org/abs/2201.03545)).
# * **RMSNorm** ([Zhang & Sennrich, 2019](https://arxiv.org/abs/1910.07467)): layer norm without
#   the centring, cheaper, for transformers (many recent language models use it).
# * **Instance Norm** ([Ulyanov, Vedaldi & Lempitsky, 2016](https://arxiv.org/abs/1607.08022)):
#   style transfer and image generation, where each image's contrast should be its own.
# * **Group Norm** ([Wu & He, 2018](https://arxiv.org/abs/1803.08494)) and **WS + GN**
#   ([Qiao et al., 2019](https://arxiv.org/abs/1903.10520)): small batches per device (detection,
#   segmentation, video) — notebooks 01, 03 and 04.
# * **FRN + TLU** ([Singh & Krishnan, 2019](https://arxiv.org/abs/1911.09737)): a batch-independent
#   replacement of BN + ReLU, claimed to beat BN at all batch sizes (the quote at the top).
# * **EvoNorm-B0 / S0** ([Liu et al., 2020](https://arxiv.org/abs/2004.02967)): norm + activation
#   layers found by search to replace BN + ReLU; S0 computes no batch statistics, so it applies where
#   BN's break down (small batches), B0 keeps a batch variance.
# * **Dynamic Tanh** ([Zhu et al., 2025](https://arxiv.org/abs/2503.10622)): a drop-in replacement
#   for layer norm in *transformers*; here it is tried, outside its setting, in a conv net.
#
# All of them are one `norm=` name away in labnorm's models:

# %%
print(", ".join(available_norms()))
model = SmallCNN(norm="frn", width=8)
print(model.features[0])  # FRN + TLU replaces BN + ReLU: the model adds no ReLU after a fused norm

# %% [markdown]
# ## Experiment: the zoo at batch 2 and at batch 128
#
# The small CNN of notebook 01 (three conv → norm → activation → max-pool stages, widths
# $w, 2w, 4w$) is trained on CIFAR-10 with each norm at batch 2 and at batch 128, with one-cycle
# SGD and the learning rate scaled linearly with the batch (0.1 at batch 64, after Goyal et al.
# 2017). Both batch sizes see the same images, so batch 2 takes 64 times as many steps. Every arm
# of a seed starts from the same seed and sees the same images in the same order, so two norms
# are compared through their **paired** difference over seeds. The verdicts judge the claims of
# the small-batch papers: GN, FRN, EvoNorm-S0 and Batch Renorm each beat BN at batch 2; and, at
# batch 128, BN beats GN (the GN paper's large-batch finding) and FRN beats BN (the quote above).
# Test accuracy is measured in eval mode, so the batch-statistics norms use their running averages.
#
# The experiment lives in `labnorm.experiments.norm_zoo_small_cnn`; at `smoke` scale it runs live
# (one seed, not saved), at `cpu`/`gpu` scale the saved record of that scale is loaded.

# %%
zoo = experiments.get("norm_zoo_small_cnn")
print(zoo.config(SCALE))
live = experiments.load_or_run("norm_zoo_small_cnn", SCALE)
print(f"{live['source']} record")
zoo.report(live).show()

# %% [markdown]
# ## Reference results
#
# The largest saved record of this experiment, from `results/` (written by
# `python -m labnorm run norm_zoo_small_cnn --scale cpu --seeds 3`, resumable; its provenance line
# says where, when and over which seeds it ran). Each accuracy is the mean over seeds ± the
# half-width of its 95% interval; each verdict is computed by `labnorm.verdict` from the paired
# difference of two arms over the same seeds.

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
    print(f"bn at batch {bs}: test accuracy {experiments.summary(shown, f'test_acc/bn/b{bs}').format(3)}")
near_chance = [f"{n} at batch {bs}" for n in cfg["norms"] for bs in cfg["batch_sizes"]
               if (experiments.summary(shown, f"test_acc/{n}/b{bs}").mean or 0.0) < 0.12]
print("mean test accuracy below 0.12 (chance is 0.10):", ", ".join(near_chance) or "none")
small = min(cfg["batch_sizes"])
ghost = next(n for n in cfg["norms"] if n.startswith("gbn"))
diffs = [g - b for g, b in zip(experiments.values(shown, f"test_acc/{ghost}/b{small}"),
                               experiments.values(shown, f"test_acc/bn/b{small}"))]
print(f"{ghost} minus bn at batch {small}, per seed:", ", ".join(f"{d:+.3f}" for d in diffs))

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
# * **Seconds per epoch are not a speed comparison**: they were measured on a shared machine.
#   `benchmarks/bench_zoo.py` times every layer, eager and compiled, as ratios to torch's BN in one run.

# %% [markdown]
# ## Exercises
#
# 1. Draw the cube of Switchable Norm (notebook 05): it mixes three of the sets above — which?
# 2. Ghost BN at batch 128 with virtual batches of 2 is "batch 2 statistics, batch 128 gradients".
#    Train it with `norm="gbn:2"` at batch 128 and compare with BN at batch 2 and at batch 128.
# 3. Give Batch Renorm the paper's warm-up: call `labnorm.set_renorm_limits(model, *labnorm.renorm_limits(step, ...))`
#    every step (through `fit`'s `on_step` hook), with the step counts scaled to the run's length.
#    Does it change the batch-2 verdict?
# 4. FRN divides by the mean square without subtracting the mean. Feed `labnorm.FilterResponseNorm2d`
#    a map with mean 5 and standard deviation 0.1: what does the output look like, and what does TLU's
#    $\tau$ have to learn?
# 5. Replace `rms_norm_2d`'s mean square by a variance: which layer of the zoo do you get (up to $\beta$)?
