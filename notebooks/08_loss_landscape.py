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
# # Loss landscapes and smoothness
#
# > *"it makes the optimization landscape significantly smoother"* — Santurkar et al. on batch norm,
# > [How Does Batch Normalization Help Optimization?](https://arxiv.org/abs/1805.11604)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/08_loss_landscape.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/08_loss_landscape.ipynb)
#
# The Weight Standardization post explains normalization with a picture of the loss changing
# smoothly as one parameter moves, and the WS paper ([Qiao et al.](https://arxiv.org/abs/1903.10520),
# §3) argues that standardizing the weights lowers the Lipschitz constants of the loss and of its
# gradients. Santurkar et al. measured exactly these quantities along training for BN, and
# [Li et al. (2018)](https://arxiv.org/abs/1712.09913) made filter-normalized plots the standard way
# to look at a loss surface. Here we
#
# 1. build filter-normalized directions, slices and Santurkar's three measures from scratch and
#    prove them equal to `labnorm.landscape`;
# 2. show why the normalization of the directions matters for normalized networks (scale invariance);
# 3. train the same VGG on the same images with no norm, BN, GN, WS+BN, WS+GN, WN and SN, measure
#    the smoothness along training, and plot 1-D and 2-D landscapes of every trained model;
# 4. give a verdict on the WS paper's claim from our own measurements.

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
# Projected cost on a T4-class GPU, one seed: `loss_landscape_norms` about **13.6 h**. These figures are projected, not
# measured: a CPU dry run's time per image divided by 100, and at least 5 ms per training step
# (small batches are bound by kernel launches); a T4 also lacks the bf16 tensor cores that
# labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run loss_landscape_norms --scale gpu --dry-run`: it takes 2 training steps and 1 evaluation
# batch of every arm and prints the step times, the projected full run and the peak memory.

# %%
import copy
from statistics import median

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.nn import functional as F

import labnorm
from labnorm import experiments, landscape
from labnorm.models import build_model

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 72
SCALE = labnorm.get_scale()
NAMES = {"none": "no norm", "bn": "BN", "gn": "GN", "ws+bn": "WS+BN", "ws+gn": "WS+GN", "wn": "WN", "sn": "SN"}
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## Theory
#
# **Slices.** A network's loss $L(\theta)$ lives in millions of dimensions; we look at it on a line
# or a plane through the trained parameters $\theta$:
#
# $$f(\alpha) = L(\theta + \alpha\, d), \qquad f(\alpha, \beta) = L(\theta + \alpha\, d + \beta\, e).$$
#
# **Why filter normalization.** A conv followed by BN (or any WS conv) is *scale invariant*: the
# loss does not change when a filter is multiplied by $c > 0$. A step of fixed length along a random
# direction therefore means a lot for a filter of norm 0.1 and little for one of norm 10, and
# comparing two networks' raw slices compares their weight norms, not their functions. Li et al.
# rescale every filter $j$ of layer $i$ of the Gaussian direction to the matching weight filter,
#
# $$d_{i,j} \leftarrow \frac{d_{i,j}}{\lVert d_{i,j} \rVert}\, \lVert \theta_{i,j} \rVert ,$$
#
# so $\alpha = 1$ moves every filter by its own size. Biases and the parameters of norm layers are
# left out by default (`vectors="zero"`).
#
# **Running statistics** are not parameters. `bn="batch"` (our default) evaluates every point as
# training does, each batch normalized by its own statistics; `bn="running"` uses the running
# statistics of $\theta$, which no longer fit the weights away from $\theta$.
#
# **Smoothness along training** (Santurkar et al., §3.1). At a training step with gradient
# $g = \nabla L(\theta)$ on the current batch, for step sizes $\eta$:
#
# - *loss variation*: $L(\theta - \eta g)$ over $\eta$ — a narrow band means the loss is predictable along the gradient;
# - *gradient predictiveness*: $\lVert \nabla L(\theta) - \nabla L(\theta - \eta g)\rVert$ — how much the gradient changes along its own step;
# - *effective β-smoothness*: $\max_\eta \lVert \nabla L(\theta) - \nabla L(\theta - \eta g)\rVert \,/\, \lVert \eta g \rVert$,
#   a local Lipschitz constant of the gradient along the path the optimizer takes.
#
# **The WS paper's claim.** For a standardized filter $\hat W = (W - \mu)/\sigma$, the chain rule
# gives the gradient with respect to $W$ as the gradient with respect to $\hat W$ with its mean and
# its component along $\hat W$ removed, divided by $\sigma$. Qiao et al. read the removal of those
# two components (a projection, which can only shorten a vector) as a smaller Lipschitz constant of
# the loss, and make a similar argument for its Hessian, i.e. the Lipschitz constant of the gradient.
# The catch we will meet: the factor $1/\sigma$ is not controlled. $\sigma$ is whatever scale the raw
# weights have — He initialization gives $\sigma = \sqrt{2/\text{fan-in}} \ll 1$, weight decay
# shrinks it further — so in the coordinates $W$ that SGD actually moves, the gradient and its
# Lipschitz constant can just as well be *larger*. We measure rather than argue.

# %% [markdown]
# ## Filter normalization and a slice, line by line
#
# For a network with plain convs, its multi-dimensional parameters are exactly its conv and linear
# weights, and each row of a weight flattened to $[C_{out}, \text{fan-in}]$ is one filter.

# %%
def scratch_direction(model, seed):
    gen = torch.Generator().manual_seed(seed)
    direction = {}
    for name, p in model.named_parameters():
        d = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        if p.dim() > 1:
            rows, w_rows = d.flatten(1), p.detach().flatten(1)
            # each filter of d gets the norm of the matching filter of the weights
            d = (rows * (w_rows.norm(dim=1, keepdim=True) / rows.norm(dim=1, keepdim=True))).view_as(p)
        else:
            d = torch.zeros_like(p)  # biases and norm parameters stay where they are
        direction[name] = d
    return direction


def scratch_slice(model, batches, direction, alphas):
    losses = []
    for a in alphas:
        moved = copy.deepcopy(model)  # its own parameters and running statistics
        with torch.no_grad():
            for name, p in moved.named_parameters():
                p.add_(a * direction[name])
            moved.train()  # batch statistics, as in training
            total = sum(F.cross_entropy(moved(x), y, reduction="sum").item() for x, y in batches)
        losses.append(total / sum(len(y) for _, y in batches))
    return np.array(losses)


def scratch_smoothness(model, x, y, etas):
    moved = copy.deepcopy(model).train()
    params = list(moved.parameters())
    theta = [p.detach().clone() for p in params]

    def loss_and_grad(step):
        with torch.no_grad():
            for p, t, s in zip(params, theta, step):
                p.copy_(t - s)
        loss = F.cross_entropy(moved(x), y)
        grads = torch.autograd.grad(loss, params)
        return loss.item(), torch.cat([g.flatten() for g in grads])

    loss0, g0 = loss_and_grad([torch.zeros_like(t) for t in theta])
    pieces = torch.split(g0, [t.numel() for t in theta])
    out = {"losses": [], "grad_change": []}
    for eta in etas:
        loss, g = loss_and_grad([eta * piece.view_as(t) for piece, t in zip(pieces, theta)])
        out["losses"].append(loss)
        out["grad_change"].append((g - g0).norm().item())
    out["beta"] = max(c / (eta * g0.norm().item()) for c, eta in zip(out["grad_change"], etas))
    return out


torch.manual_seed(0)
net = build_model("small_cnn", "bn", width=8).double()
gen = torch.Generator().manual_seed(1)
data = [(torch.randn(16, 3, 16, 16, generator=gen, dtype=torch.float64), torch.randint(0, 10, (16,), generator=gen))
        for _ in range(2)]
net(data[0][0])  # some running statistics, which the slices must leave alone
direction = scratch_direction(net, seed=7)
alphas = np.linspace(-1, 1, 9)
print("loss along the direction:", np.round(scratch_slice(net, data, direction, alphas), 3))

# %% [markdown]
# ## Parity: scratch = `labnorm.landscape`
#
# In float64, on the small CNN with BN. This cell's output is checked in CI.

# %%
# NBVAL_CHECK_OUTPUT
def agree(a, b, tol=1e-10):
    return bool(np.max(np.abs(np.asarray(a) - np.asarray(b))) <= tol)


checks = {}
lib_direction = landscape.filter_normalized_direction(net, seed=7)
checks["direction: scratch = labnorm"] = all(torch.allclose(direction[n], lib_direction[n], rtol=1e-12, atol=0) for n in direction)
params = dict(net.named_parameters())
checks["each filter has its weight filter's norm"] = all(
    agree(lib_direction[n].flatten(1).norm(dim=1), params[n].detach().flatten(1).norm(dim=1), 1e-12)
    for n in landscape.filter_weights(net))
buffers_before = {n: b.clone() for n, b in net.named_buffers()}
lib_slice = landscape.loss_along_direction(net, data, lib_direction, alphas)
checks["1-D slice: scratch = labnorm"] = agree(scratch_slice(net, data, direction, alphas), lib_slice["loss"])
checks["running statistics untouched"] = all(torch.equal(b, buffers_before[n]) for n, b in net.named_buffers())
x, y = data[0]
ours, lib = scratch_smoothness(net, x, y, [0.05, 0.2]), landscape.gradient_smoothness(net, (x, y), [0.05, 0.2])
checks["loss variation: scratch = labnorm"] = agree(ours["losses"], lib["losses"])
checks["gradient predictiveness: scratch = labnorm"] = agree(ours["grad_change"], lib["grad_change"])
checks["effective beta-smoothness: scratch = labnorm"] = agree(ours["beta"], lib["beta"])
for name, ok in checks.items():
    print(f"{name:<46} {ok}")

# %% [markdown]
# ## Scale invariance: why the directions are normalized
#
# Multiply every conv weight of the BN network by 10. The function, and so the loss, does not
# change (BN divides the scale out; only its $\epsilon$ notices, hence a tolerance of $10^{-4}$). A filter-normalized direction scales with the weights, so its
# slice is the same as before; a raw Gaussian direction is the same vector for both and sees a
# surface ten times flatter around the larger weights.

# %%
# NBVAL_CHECK_OUTPUT
big = copy.deepcopy(net)
with torch.no_grad():
    for name, p in big.named_parameters():
        if p.dim() == 4:
            p.mul_(10)
base = landscape.loss_along_direction(net, data, {}, [0.0])["loss"][0]
print("loss unchanged by the x10:", agree(landscape.loss_along_direction(big, data, {}, [0.0])["loss"][0], base, 1e-4))
same = landscape.loss_along_direction(big, data, landscape.filter_normalized_direction(big, seed=7), alphas)["loss"]
print("filter-normalized slice unchanged:", agree(same, lib_slice["loss"], 1e-4))
raw = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * (p.dim() == 4)
       for n, p in net.named_parameters()}
raw_small = landscape.loss_along_direction(net, data, raw, alphas)["loss"]
raw_big = landscape.loss_along_direction(big, data, raw, alphas)["loss"]
print("raw direction: flatter at the larger weights:", bool(np.ptp(raw_big) < np.ptp(raw_small)))

# %% [markdown]
# ## The smoothness measures are not scale invariant
#
# Santurkar's measures live in parameter coordinates. Scale the conv weights of a scale-invariant
# network by $c$ and nothing about its function changes, but the gradient with respect to those
# weights scales as $1/c$ and their Hessian as $1/c^2$: the same network looks rougher with small
# weights and smoother with large ones. Without normalization the loss itself changes and the
# trend reverses. So a β measured on two networks compares, in part, their weight scales — set by
# the initialization, the learning rate and weight decay — and the experiment below reports every
# network's weight norm beside its β.

# %%
scaled = {}
for norm in ("ws+gn", "bn", "none"):
    torch.manual_seed(0)
    base_net = build_model("small_cnn", norm, width=8).double()
    for c in (0.5, 1.0, 2.0):
        moved = copy.deepcopy(base_net)
        with torch.no_grad():
            for name, p in moved.named_parameters():
                if p.dim() == 4:  # conv weights (WS: the raw weight it standardizes)
                    p.mul_(c)
        scaled[norm, c] = landscape.gradient_smoothness(moved, data[0], [1e-3, 1e-2, 0.1])
print(f"{'net':<7}{'c':>5}{'loss':>9}{'‖g‖':>8}{'β':>9}")
for (norm, c), r in scaled.items():
    print(f"{NAMES[norm]:<7}{c:>5}{r['loss']:>9.4f}{r['grad_norm']:>8.3f}{r['beta']:>9.3g}")

# %%
# NBVAL_CHECK_OUTPUT
for norm in ("ws+gn", "bn"):
    losses, betas = [scaled[norm, c]["loss"] for c in (0.5, 1.0, 2.0)], [scaled[norm, c]["beta"] for c in (0.5, 1.0, 2.0)]
    print(f"{NAMES[norm]}: same loss at every scale {agree(losses, losses[1:] + losses[:1], 1e-4)}, "
          f"β falls as the weights grow {betas[0] > betas[1] > betas[2]}")
print("no norm: loss changes with the scale", not agree(scaled["none", 0.5]["loss"], scaled["none", 2.0]["loss"], 1e-2))

# %% [markdown]
# ## Experiment: one VGG, seven normalizations
#
# The VGG-16 layout of notebook 03 (13 convs, conv → norm → ReLU), He-initialized so that the
# network without normalization trains too, is trained with one-cycle SGD on the same CIFAR-10
# images with each normalization. Every `probe_every` steps, Santurkar's three measures are taken
# on that step's batch at four step sizes. At the end, on fixed un-augmented training images
# (`bn="batch"`): a 1-D slice along a filter-normalized direction (and, for the layers with
# running statistics, the same slice in `"running"` mode), a 2-D surface on two such directions,
# the straight path from the initial to the trained weights, and one weight's slice — the entry
# of largest magnitude in the middle conv, moved by up to its filter's norm. At `smoke` scale this
# runs live; at `cpu`/`gpu` scale the saved run is loaded.
#
# **GN at reduced width.** At `cpu` scale the VGG is a quarter as wide, so its narrowest layers
# have 16 channels, where GN's usual 32 groups would hold one channel each: Instance Norm, not Group
# Norm. labnorm's `gn` keeps at least 2 channels per group (16 channels: 8 groups of 2). The
# `implementation:` line printed with the results says what each run used — the normalization
# classes, the channels per group and the memory format — and a record saved before runs recorded
# it says so instead.

# %%
COLORS = dict(zip(NAMES, plt.rcParams["axes.prop_cycle"].by_key()["color"]))


def runs_of(rec):
    """The first seed's runs: the probes and landscapes drawn below are one seed's."""
    return experiments.seed_details(rec)[0]["runs"]


def arrays_of(rec):
    return rec["arrays"][str(rec["seeds"][0])]


def key(norm):
    return norm.replace("+", "_")


def spread(probe):
    return max(probe["losses"]) - min(probe["losses"])


def plot_smoothness(rec):
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for r in runs_of(rec):
        steps = [p["step"] for p in r["probes"]]
        kw = dict(color=COLORS[r["norm"]], label=NAMES[r["norm"]], lw=1.2)
        axes[0].plot(steps, [spread(p) for p in r["probes"]], **kw)
        axes[1].plot(steps, [p["grad_change"][-1] for p in r["probes"]], **kw)
        axes[2].plot(steps, [p["beta"] for p in r["probes"]], **kw)
    eta = rec["config"]["step_sizes"]
    axes[0].set(title=f"loss variation: max - min over η in {eta}", ylabel="loss spread")
    axes[1].set(title=f"gradient change at η = {eta[-1]}", ylabel="‖∇L(θ) - ∇L(θ - ηg)‖")
    axes[2].set(title="effective β-smoothness", ylabel="β")
    for ax in axes:
        ax.set(xlabel="training step", yscale="log")
    axes[2].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    plt.show()


def plot_pairs(rec, pairs=(("none", "bn"), ("gn", "ws+gn"), ("bn", "ws+bn"))):
    """Santurkar's Fig. 4 layout for pairs of norms: bands over the step sizes."""
    runs = {r["norm"]: r for r in runs_of(rec)}
    fig, axes = plt.subplots(len(pairs), 3, figsize=(13, 2.9 * len(pairs)), squeeze=False)
    for row, pair in zip(axes, pairs):
        for norm in pair:
            probes, c = runs[norm]["probes"], COLORS[norm]
            steps = [p["step"] for p in probes]
            row[0].fill_between(steps, [min(p["losses"]) for p in probes], [max(p["losses"]) for p in probes], color=c, alpha=0.35, label=NAMES[norm])
            row[1].fill_between(steps, [min(p["grad_change"]) for p in probes], [max(p["grad_change"]) for p in probes], color=c, alpha=0.35, label=NAMES[norm])
            row[2].plot(steps, [p["beta"] for p in probes], color=c, label=NAMES[norm])
        row[0].set(ylabel=f"{NAMES[pair[0]]} vs {NAMES[pair[1]]}", yscale="log")
        row[1].set(yscale="log")
        row[2].set(yscale="log")
        row[2].legend(fontsize=8)
    axes[0][0].set_title("loss L(θ - ηg) over the step sizes")
    axes[0][1].set_title("gradient change over the step sizes")
    axes[0][2].set_title("effective β-smoothness")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    fig.tight_layout()
    plt.show()


def plot_slices(rec):
    cfg, arrays = rec["config"], arrays_of(rec)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for r in runs_of(rec):
        k, kw = key(r["norm"]), dict(color=COLORS[r["norm"]], label=NAMES[r["norm"]])
        axes[0].plot(np.linspace(*cfg["alphas_1d"]), arrays[f"{k}/1d_loss"], **kw)
        if f"{k}/1d_running_loss" in arrays:
            axes[0].plot(np.linspace(*cfg["alphas_1d"]), arrays[f"{k}/1d_running_loss"], ls="--", color=kw["color"])
        axes[1].plot(np.linspace(*cfg["interpolation_alphas"]), arrays[f"{k}/interp_loss"], **kw)
        ts, param = np.linspace(*cfg["parameter_t"]), arrays[f"{k}/param_loss"]
        axes[2].plot(ts, param - param[np.argmin(np.abs(ts))], **kw)
    axes[0].set(title="filter-normalized direction (dashed: running statistics)", xlabel="α", ylabel="training loss", yscale="log")
    axes[1].set(title="initial (0) → trained (1) weights", xlabel="α", ylabel="training loss", yscale="log")
    axes[2].set(title="one weight, moved by t × its filter's norm", xlabel="t", ylabel="change of the training loss")
    axes[2].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    plt.show()


def surfaces(rec):
    grid = np.linspace(*rec["config"]["grid_2d"])
    return grid, {r["norm"]: arrays_of(rec)[f"{key(r['norm'])}/2d_loss"] for r in runs_of(rec)}


def panels(n, **kw):
    """A 2-row grid of panels for n networks; the spare slot is left empty."""
    fig = plt.figure(figsize=(11, 5.4))
    cols = (n + 1) // 2
    return fig, [fig.add_subplot(2, cols, i + 1, **kw) for i in range(n)]


def plot_contours(rec, clip=10.0):
    grid, surf = surfaces(rec)
    # Shared log-spaced levels, so the panels compare; losses above `clip` share the top colour
    lo = min(s.min() for s in surf.values())
    levels = np.geomspace(lo, max(clip, 2 * lo), 16)
    fig, axes = panels(len(surf))
    for ax, (norm, loss) in zip(axes, surf.items()):
        cs = ax.contourf(grid, grid, np.clip(loss, lo, levels[-1]), levels=levels, cmap="viridis", norm="log")
        ax.contour(grid, grid, np.clip(loss, lo, levels[-1]), levels=levels, colors="w", linewidths=0.4)
        ax.plot(0, 0, "r+")
        ax.set(title=NAMES[norm], aspect="equal")
        ax.tick_params(labelsize=7)
    fig.colorbar(cs, ax=axes, shrink=0.8, label=f"training loss (clipped at {clip:g})", ticks=[0.3, 0.5, 1, 2, 3, 5, 10],
                 format="%g")
    fig.suptitle("loss on the plane θ + α d + β e (α across, β up); shared colour scale", fontsize=10)
    plt.show()


def plot_surfaces(rec, clip=10.0):
    grid, surf = surfaces(rec)
    gx, gy = np.meshgrid(grid, grid)
    fig, axes = panels(len(surf), projection="3d")
    zlim = (np.log10(min(s.min() for s in surf.values())), np.log10(clip))
    for ax, (norm, loss) in zip(axes, surf.items()):
        ax.plot_surface(gx, gy, np.log10(np.clip(loss, None, clip)), cmap="viridis", linewidth=0)
        ax.set(title=NAMES[norm], zlim=zlim)
        ax.set_xticks([]), ax.set_yticks([])
        ax.tick_params(labelsize=6)
    fig.suptitle(f"log10 training loss on the same plane (clipped at {clip:g})", fontsize=10)
    fig.subplots_adjust(wspace=0.05, hspace=0.1)
    plt.show()


def show(rec):
    experiments.get("loss_landscape_norms").report(rec).show()
    plot_smoothness(rec)
    plot_pairs(rec)
    plot_slices(rec)
    plot_contours(rec)
    plot_surfaces(rec)


print(experiments.get("loss_landscape_norms").config(SCALE))
run = experiments.load_or_run("loss_landscape_norms", SCALE)
print(f"{run['source']} record; the figures after the report show its first seed")
show(run)

# %% [markdown]
# The 2-D landscape as a surface you can turn: drag to rotate, pick the norm from the menu, hover for
# the loss at a point of the plane.

# %%
experiments.get("loss_landscape_norms").report(run).explore()

# %% [markdown]
# ## Reference results
#
# The largest saved record (`python -m labnorm run loss_landscape_norms --scale cpu --seeds 3`):
# the report's table gives means over seeds ± the half-width of their 95% intervals and its
# verdicts come from paired differences over seeds; the figures after it show the first seed.

# %%
ref = experiments.reference("loss_landscape_norms")
if ref is None:
    print("no saved run (set LABNORM_RESULTS to the repository's results/ folder)")
elif ref["scale"] == SCALE:
    print("the reference is the record shown above")
else:
    show(ref)

# %% [markdown]
# ## What it costs
#
# Every point of a slice or surface is one forward pass over the fixed images, with no gradient;
# each Santurkar probe is one forward and backward pass per step size plus one at $\theta$. The
# reference run's own clock (training with the probes; the landscapes after it):

# %%
if ref is not None:
    cfg = ref["config"]
    points = 2 * cfg["alphas_1d"][2] + cfg["grid_2d"][2] ** 2 + cfg["interpolation_alphas"][2] + cfg["parameter_t"][2]
    print(f"{cfg['landscape_images']} images per point, a {cfg['grid_2d'][2]}x{cfg['grid_2d'][2]} surface; "
          f"{experiments.Report(ref).provenance}")
    for r in runs_of(ref):
        print(f"{NAMES[r['norm']]:<7} training + {len(r['probes'])} probes {r['seconds']:6.0f} s · "
              f"landscapes ({points} points at most) {r['landscape_seconds']:5.0f} s")

# %% [markdown]
# ## What we found
#
# The verdicts in the report above are the findings: each compares a measure's median over the
# probes of a run, paired by seed. Below, the first seed's probes are read one step at a time,
# which describes that run but decides nothing across seeds. For each pair, the medians of a
# measure over the probes, their ratio, and the share of probes — the same training steps — where
# the first network's value is the lower one. A one-line description applies a fixed rule, decided
# before looking: *smoother* when the median ratio of β and of the gradient change are both below
# 0.8 and the first network is lower at 65% or more of the probes for both; *rougher* for the mirror
# image (above 1.25, lower at 35% or less); otherwise *no clear difference*.

# %%
MEASURES = {"β": lambda p: p["beta"], "loss spread": spread, "gradient change": lambda p: p["grad_change"][-1]}


def probe_values(rec, norm, measure):
    r = next(r for r in runs_of(rec) if r["norm"] == norm)
    return [MEASURES[measure](p) for p in r["probes"]]


def compare(rec, a, b):
    """Per measure: (median ratio a/b, share of probes where a is lower)."""
    out = {}
    for measure in MEASURES:
        va, vb = probe_values(rec, a, measure), probe_values(rec, b, measure)
        out[measure] = (median(va) / median(vb), sum(x < y for x, y in zip(va, vb)) / len(va))
        print(f"  {measure:<16} median {median(va):9.3g} vs {median(vb):9.3g}  (ratio {out[measure][0]:5.2f}); "
              f"{NAMES[a]} lower at {out[measure][1]:4.0%} of probes")
    return out


def reading(cmp):
    keyed = [cmp["β"], cmp["gradient change"]]
    if all(r < 0.8 and lower >= 0.65 for r, lower in keyed):
        return "smoother"
    if all(r > 1.25 and lower <= 0.35 for r, lower in keyed):
        return "rougher"
    return "no clear difference"


def sharpness(rec, norm, radius):
    """Mean rise of the 1-D and 2-D landscapes within `radius` of the trained weights."""
    cfg, k = rec["config"], key(norm)
    alphas, grid = np.linspace(*cfg["alphas_1d"]), np.linspace(*cfg["grid_2d"])
    one, two = arrays_of(rec)[f"{k}/1d_loss"], arrays_of(rec)[f"{k}/2d_loss"]
    gx, gy = np.meshgrid(grid, grid)
    centre = two[np.argmin(np.abs(grid)), np.argmin(np.abs(grid))]
    return (one[np.abs(alphas) <= radius].mean() - one[np.argmin(np.abs(alphas))],
            two[np.hypot(gx, gy) <= radius].mean() - centre)


if ref is not None:
    readings = {}
    for a, b in (("bn", "none"), ("gn", "none"), ("ws+gn", "gn"), ("ws+bn", "bn"), ("wn", "none"), ("sn", "bn")):
        print(f"{NAMES[a]} vs {NAMES[b]}:")
        readings[a, b] = reading(compare(ref, a, b))
    print("\nfirst seed's probes, described by the rule:")
    for (a, b), verdict in readings.items():
        print(f"  {NAMES[a]:<6} vs {NAMES[b]:<8} {verdict}")
    print("\nmean loss rise around the trained weights (1-D slice, 2-D disc), and the final test accuracy:")
    print(f"  {'':<8}{'r ≤ 0.5':>17}{'r ≤ 1':>18}{'test acc':>10}")
    for r in runs_of(ref):
        (a1, a2), (b1, b2) = sharpness(ref, r["norm"], 0.5), sharpness(ref, r["norm"], 1.0)
        acc = "diverged" if r["final_test_acc"] is None else f"{r['final_test_acc']:.3f}"
        print(f"  {NAMES[r['norm']]:<8}{a1:8.3f}{a2:9.3f}{b1:9.3f}{b2:9.3f}{acc:>10}")
    norms = [r["filter_weight_norm"] for r in runs_of(ref)]
    print(f"\nfilter weight norms at the end: {min(norms):.3g} to {max(norms):.3g} "
          f"(spread {max(norms) / min(norms) - 1:.0%} of the smallest)")

# %% [markdown]
# **What the verdicts can say.** Santurkar et al. report that BN makes the loss and its gradient
# change less along the training path; the WS paper argues that WS, on top of GN or BN, smooths
# the landscape further. The report's verdicts test the WS claim ("WS+GN is smoother than GN",
# "WS+BN is smoother than BN", by the median effective β) on paired seeds; a record with one
# seed can only be *inconclusive*, and so can a record whose BN baseline is under 85% test accuracy
# (the rule below). The per-probe descriptions above are of the first seed only.
#
# **Weight scale matters for these measures.** The WS paper's argument bounds the gradient with
# respect to the raw weights by a projected gradient divided by $\sigma$; the scale cell above
# shows that the factor $1/\sigma$ alone moves these measures by large factors without changing
# the network — so compare the filter weight norms (printed above) before reading a difference in
# β as a difference in smoothness.
#
# **Reading the landscapes.** Filter-normalized slices and planes show how fast the loss rises
# when every layer is perturbed by its own size; without normalization a perturbation compounds
# through 13 layers. The dashed running-statistics slices of the BN networks rise faster than
# the batch-mode ones: away from $\theta$, the stored statistics no longer match the weights,
# which is why the plots use batch statistics.
#
# **How far this goes.** `cpu` scale — a narrow VGG-16 for a few epochs on a subset of the JPEG
# copy of CIFAR-10, probed at regular steps, landscapes on a few hundred training images (the
# sizes are printed with the config above). The baseline, BN, ends well under the 85% test
# accuracy of a trained CIFAR-10 network (its accuracy on all 10,000 test images is printed beside
# the verdicts), so every verdict is *inconclusive at this scale*, whatever its interval says. The
# intervals describe the loss surface along the first epochs of networks still far from a minimum, not the
# surroundings of a converged solution that Santurkar et al. and the WS paper reason about; and the
# networks without normalization and with WN are furthest from converged, so their landscapes are
# taken earlier in their own training than the others'. The probes are on the step's own batch, as
# in Santurkar et al., so they are noisy; medians are what we compare, not single peaks.

# %% [markdown]
# ## Exercises
#
# 1. Plot the 1-D slice of the BN network with `vectors="include"`. How much of the rise comes
#    from moving BN's $\gamma$ and $\beta$?
# 2. Replace the filter-normalized direction by a raw Gaussian one for WS+GN and for GN. Which
#    network looks sharper now, and why is that not a statement about the function?
# 3. Multiply every conv weight of the trained WS+GN network by 2 (the function does not change)
#    and measure `gradient_smoothness` again: by what factor do the gradient change and the
#    effective β move? What does that mean for comparing β across parametrizations?
# 4. Add `bn="running"` surfaces for BN and SN. Where do they part from the `"batch"` ones?
