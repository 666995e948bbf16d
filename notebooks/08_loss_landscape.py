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
# Normalization is often explained by the shape of the loss around the weights: with it the loss is
# said to be *smoother* — it changes less, and its gradient changes less, when the weights move.
# [The source](https://labnorm.github.io/labnorm/glossary/#the-source) this notebook tests is
# labml.ai's annotated Weight Standardization page, which lists *"Smoothes the landscape (reduced
# Lipschitz constant)"* among what WS does (its setting: a VGG on CIFAR-10); the Weight
# Standardization post beside it draws the loss as one parameter moves. The WS paper
# ([Qiao et al.](https://arxiv.org/abs/1903.10520), §3) argues that standardizing the weights lowers
# the **Lipschitz constants** of the loss and of its gradients — the largest slope each can have, so
# how fast it can change when the weights move ([glossary](https://labnorm.github.io/labnorm/glossary/#lipschitz)).
# Santurkar et al. measured exactly these quantities along training for BN, and
# [Li et al. (2018)](https://arxiv.org/abs/1712.09913) made filter-normalized plots the standard way
# to look at a loss surface. Here we
#
# 1. see why "this network is flatter than that one" needs care for a normalized network (scale invariance);
# 2. build filter-normalized directions, slices and Santurkar's three measures from scratch and
#    prove them equal to `labnorm.landscape`;
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

# %%
import copy
from statistics import median

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.nn import functional as F

import labnorm
from labnorm import experiments, landscape
from labnorm.experiments.plots import readable_style
from labnorm.models import build_model

torch.manual_seed(0)
readable_style()  # 100 dpi, fonts of 9 pt and more, nothing clipped
SCALE = labnorm.get_scale()
NAMES = {"none": "no norm", "bn": "BN", "gn": "GN", "ws+bn": "WS+BN", "ws+gn": "WS+GN", "wn": "WN", "sn": "SN"}
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## The problem: two slices of one function
#
# "Flat" and "sharp" describe how much the loss rises when the weights move a given distance. Take
# a small CNN with batch norm after every conv, fit it to 32 random images (it memorizes them in a
# few seconds), and make a second copy with every conv weight multiplied by 10. BN divides each
# channel by its own spread, so the two copies compute the same function — but look at the loss
# along one random direction through each.

# %%
torch.manual_seed(0)
net = build_model("small_cnn", "bn", width=8).double()
gen = torch.Generator().manual_seed(1)
data = [(torch.randn(16, 3, 16, 16, generator=gen, dtype=torch.float64), torch.randint(0, 10, (16,), generator=gen))
        for _ in range(2)]
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
for step in range(40):  # a minimum to look at (and running statistics the slices must leave alone)
    x, y = data[step % 2]
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()

big = copy.deepcopy(net)  # the same function: every conv weight (each followed by BN) times 10
with torch.no_grad():
    for name, p in big.named_parameters():
        if p.dim() == 4:
            p.mul_(10)

alphas_demo = np.linspace(-1, 1, 41)
# A raw Gaussian direction on the conv weights: the same vector for both copies
raw = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * (p.dim() == 4)
       for n, p in net.named_parameters()}
raw_small = landscape.loss_along_direction(net, data, raw, alphas_demo)["loss"]
raw_big = landscape.loss_along_direction(big, data, raw, alphas_demo)["loss"]
# Filter-normalized directions: every filter rescaled to its own copy's weight filter
fn_small = landscape.loss_along_direction(net, data, landscape.filter_normalized_direction(net, seed=7), alphas_demo)["loss"]
fn_big = landscape.loss_along_direction(big, data, landscape.filter_normalized_direction(big, seed=7), alphas_demo)["loss"]

fig, ax = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for a, (small, large), title in ((ax[0], (raw_small, raw_big), "raw Gaussian direction"),
                                 (ax[1], (fn_small, fn_big), "filter-normalized direction")):
    a.plot(alphas_demo, small, color="tab:blue", label="trained weights")
    a.plot(alphas_demo, large, color="tab:orange", ls="--", label="conv weights × 10 (same function)")
    a.set(title=title, xlabel="α (step along the direction)")
ax[0].set_ylabel("training loss")
ax[1].legend()
plt.show()
print(f"loss at the weights: {fn_small[20]:.2e} and {fn_big[20]:.2e}; at α = ±0.25 along the raw direction: "
      f"{raw_small[15]:.2f}, {raw_small[25]:.2f} (trained) vs {raw_big[15]:.2f}, {raw_big[25]:.2f} (× 10)")

# %% [markdown]
# Along the raw direction the first copy looks like a needle and the second like a wide bowl: a
# reader would call the second "flatter", and it is the same function. The raw step is the same
# vector for both, so it is ten times larger *relative to the weights* of the first copy — and a BN
# network only notices a weight's direction, not its length. Filter normalization measures every
# step in units of the filter it moves: both copies then give one curve. This matters for every
# normalized network, whose weight norms drift with the learning rate and weight decay: without it,
# comparing two networks' slices compares their weight norms.
#
# The same checks in numbers (checked in CI):

# %%
# NBVAL_CHECK_OUTPUT
def agree(a, b, tol=1e-10):
    return bool(np.max(np.abs(np.asarray(a) - np.asarray(b))) <= tol)


# BN's ε is the only thing that notices the × 10, hence a tolerance of 1e-4
base = landscape.loss_along_direction(net, data, {}, [0.0])["loss"][0]
print("loss unchanged by the x10:", agree(landscape.loss_along_direction(big, data, {}, [0.0])["loss"][0], base, 1e-4))
print("filter-normalized slice unchanged:", agree(fn_big, fn_small, 1e-4))
print("raw direction: flatter at the larger weights:", bool(np.ptp(raw_big) < np.ptp(raw_small)))

# %% [markdown]
# ## The idea
#
# **A slice is a glimpse.** The loss of a network lives in as many dimensions as it has weights. A
# plot can show it along one line (a 1-D slice) or on one plane (a 2-D surface) through the trained
# weights, along random directions: a glimpse, not a map — though Li et al. found that different
# random directions give much the same picture.
#
# **Steps in the filter's own units.** As the demonstration shows, how far a step goes depends on the
# size of what it moves. Filter normalization scales the random direction, filter by filter, to the
# size of the weights it moves: $\alpha = 0.5$ then changes every filter by half its own length,
# whatever that length is, and slices of different networks become comparable.
#
# **Running statistics** ([glossary](https://labnorm.github.io/labnorm/glossary/#running-statistics)).
# BN's running averages of the batch mean and variance are not weights, so a step does not move them, and
# they only fit the weights they were collected with. The slices here normalize each batch by its own
# statistics, as training does; a slice with the stored averages rises faster for that reason alone.
#
# **Smoothness along the path taken.** A surface around the final weights says little about what the
# optimizer met on the way. Santurkar et al. look along the gradient itself, at steps of training:
# how much the loss and the gradient change when the weights take a step of size $\eta$ in the
# direction the optimizer is about to move. Small changes mean the gradient is a good guide for
# a longer step — which is why a smoother loss would allow a larger learning rate (notebook 07).
#
# **What WS is said to do.** Standardizing a filter removes its mean and its length from the weights
# the conv sees; in the backward pass the matching parts of the gradient are removed too, which can
# only shorten it. The catch: the backward pass also divides by the filter's spread, which is
# whatever size the raw weights happen to have — the same weight-size effect as in the demonstration
# above. We measure rather than argue.

# %% [markdown]
# ## Theory
#
# **Slices.** On a line or a plane through the trained parameters $\theta$:
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
# ### Try it: filter-normalize one layer (⏱ ~5 min)
#
# Write `filter_normalize_layer(d, w)`: given a conv weight `w` of shape $[C_{out}, C_{in}, k, k]$ and
# a random direction `d` of the same shape, return `d` with every filter (every `d[j]`) rescaled to
# the norm of the matching filter `w[j]`. The check compares it with `landscape.filter_normalize` on
# a conv layer and asserts that each filter's norm is its weight filter's.
#
# <details><summary>Hint</summary>
#
# Flatten to one row per filter with `d.flatten(1)`; `torch.linalg.vector_norm(rows, dim=1, keepdim=True)`
# gives one norm per row.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def filter_normalize_layer(d, w):
    d_rows, w_rows = d.flatten(1), w.flatten(1)
    scale = torch.linalg.vector_norm(w_rows, dim=1, keepdim=True) / torch.linalg.vector_norm(d_rows, dim=1, keepdim=True)
    return (d_rows * scale).view_as(d)


# %% tags=["check"]
torch.manual_seed(0)
conv = torch.nn.Conv2d(4, 6, 3, bias=False).double()
d = torch.randn(conv.weight.shape, dtype=torch.float64)
mine = filter_normalize_layer(d, conv.weight.detach())
torch.testing.assert_close(mine, landscape.filter_normalize({"weight": d}, conv)["weight"])
torch.testing.assert_close(mine.flatten(1).norm(dim=1), conv.weight.detach().flatten(1).norm(dim=1))
torch.testing.assert_close(mine / mine.flatten(1).norm(dim=1).view(-1, 1, 1, 1),
                           d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1))  # each filter keeps its direction
print("✓ every filter of the direction has its weight filter's norm, and its own direction")

# %% [markdown]
# ## Filter normalization and a slice, line by line
#
# For a network with plain convs, its multi-dimensional parameters are exactly its conv and linear
# weights, and each row of a weight flattened to $[C_{out}, \text{fan-in}]$ is one filter. The
# network is the trained BN CNN of *The problem*.

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

# %%
# For the next exercise: a least-squares problem, X_q @ w ≈ y_q, and its linear model
gen = torch.Generator().manual_seed(5)
X_q, y_q = torch.randn(64, 5, generator=gen, dtype=torch.float64), torch.randn(64, 1, generator=gen, dtype=torch.float64)
torch.manual_seed(0)
layer = torch.nn.Linear(5, 1, bias=False).double()

# %% [markdown]
# ### Try it: effective β-smoothness of a quadratic (⏱ ~10 min)
#
# For a quadratic loss the gradient changes linearly: $\nabla L(\theta - \eta g) - \nabla L(\theta) = -\eta H g$
# with $H$ the (constant) Hessian, so the effective β is the same at every step size. Take linear
# least squares, $L(w) = \tfrac1n \lVert Xw - y \rVert^2$ (`layer`, a `torch.nn.Linear(5, 1, bias=False)`, on
# `X_q`, `y_q` above, with `F.mse_loss`), whose Hessian is $H = \tfrac2n X^\top X$. Compute `beta_by_hand` $= \lVert H g\rVert / \lVert g\rVert$
# at the layer's initial weights. The check compares it with `landscape.gradient_smoothness` and with
# the largest eigenvalue of $H$, which bounds it.
#
# <details><summary>Hint</summary>
#
# The gradient is $g = \tfrac2n X^\top (Xw - y)$, with $w$ the layer's weight as a column: `layer.weight.detach().T`.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
n = len(X_q)
H = 2 / n * X_q.T @ X_q
w = layer.weight.detach().T  # [5, 1]
g = 2 / n * X_q.T @ (X_q @ w - y_q)
beta_by_hand = ((H @ g).norm() / g.norm()).item()

# %% tags=["check"]
lib = landscape.gradient_smoothness(layer, (X_q, y_q), [0.01, 0.1, 1.0], loss_fn=F.mse_loss)
assert abs(beta_by_hand - lib["beta"]) <= 1e-9 * lib["beta"], (beta_by_hand, lib["beta"])
ratios = [c / (eta * lib["grad_norm"]) for c, eta in zip(lib["grad_change"], lib["step_sizes"])]
assert max(ratios) - min(ratios) <= 1e-9 * max(ratios), "a quadratic's β does not depend on the step size"
top = torch.linalg.eigvalsh(2 / len(X_q) * X_q.T @ X_q).max().item()
assert beta_by_hand <= top * (1 + 1e-12)
print(f"✓ β = {beta_by_hand:.4f} at every step size, below the largest curvature {top:.4f}")

# %% [markdown]
# A network's loss is not a quadratic, so its β depends on the step sizes and on where it is
# measured; Santurkar et al.'s β is the largest ratio over a few step sizes, a local curvature along
# the gradient.

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
# For the next exercise: a conv without bias, then BN
torch.manual_seed(0)
bn_net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                             torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 10)).double()
x_bn, y_bn = torch.randn(16, 3, 8, 8, dtype=torch.float64), torch.randint(0, 10, (16,))

# %% [markdown]
# ### Try it: a BN network does not see the scale of its conv weights (⏱ ~5 min)
#
# Above, `bn_net`: a conv without bias followed by BN. Write `loss_and_conv_grad(c)`: multiply the conv
# weight of a copy of `bn_net` by `c`, and return the loss on `(x_bn, y_bn)` and its gradient with
# respect to that (scaled) weight. The check asserts that $c = 3$ gives the loss of $c = 1$ (up to
# BN's $\epsilon$) and a gradient 3 times smaller.
#
# <details><summary>Hint</summary>
#
# `copy.deepcopy(bn_net)`, then `with torch.no_grad(): moved[0].weight.mul_(c)`; after
# `loss.backward()` the gradient is in `moved[0].weight.grad`.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def loss_and_conv_grad(c):
    moved = copy.deepcopy(bn_net)
    with torch.no_grad():
        moved[0].weight.mul_(c)
    loss = F.cross_entropy(moved(x_bn), y_bn)
    loss.backward()
    return loss.detach(), moved[0].weight.grad


# %% tags=["check"]
loss_1, grad_1 = loss_and_conv_grad(1.0)
loss_3, grad_3 = loss_and_conv_grad(3.0)
torch.testing.assert_close(loss_3, loss_1, rtol=1e-5, atol=0)  # the same function
torch.testing.assert_close(3 * grad_3, grad_1, rtol=1e-3, atol=1e-6)  # the gradient scales as 1/c
print(f"✓ loss {loss_1.item():.6f} at c = 1 and {loss_3.item():.6f} at c = 3; "
      f"gradient norm {grad_1.norm():.4f} → {grad_3.norm():.4f}")

# %% [markdown]
# The same on the small CNN with three normalizations, now with Santurkar's measures: the loss, the
# gradient norm $\lVert g \rVert$ and β at conv weights scaled by $c$.

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
# network without normalization trains too, is trained with one-cycle SGD ([glossary](https://labnorm.github.io/labnorm/glossary/#one-cycle);
# notebook 07) on the same CIFAR-10
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
#
# **The figures, in order.** The report's own figure: the effective β of every network along
# training, over seeds. Then, for the first seed, Santurkar et al.'s Fig. 4 layout for three pairs
# (no norm vs BN, GN vs WS+GN, BN vs WS+BN): the band of $L(\theta - \eta g)$ and of the gradient
# change over the step sizes, and β. Then the 1-D slices, the 2-D surfaces as contours on one colour
# scale, and the same surfaces in 3-D.

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


def plot_pairs(rec, pairs=(("none", "bn"), ("gn", "ws+gn"), ("bn", "ws+bn"))):
    """Santurkar's Fig. 4 layout for pairs of norms: bands over the step sizes."""
    runs = {r["norm"]: r for r in runs_of(rec)}
    fig, axes = plt.subplots(len(pairs), 3, figsize=(10, 2.3 * len(pairs)), squeeze=False)
    for row, pair in zip(axes, pairs):
        for norm in pair:
            probes, c = runs[norm]["probes"], COLORS[norm]
            steps = [p["step"] for p in probes]
            row[0].fill_between(steps, [min(p["losses"]) for p in probes], [max(p["losses"]) for p in probes], color=c, alpha=0.35, label=NAMES[norm], lw=0)
            row[1].fill_between(steps, [min(p["grad_change"]) for p in probes], [max(p["grad_change"]) for p in probes], color=c, alpha=0.35, label=NAMES[norm], lw=0)
            row[2].plot(steps, [p["beta"] for p in probes], color=c, label=NAMES[norm])
        row[0].set(ylabel=f"{NAMES[pair[0]]} vs {NAMES[pair[1]]}", yscale="log")
        row[1].set(yscale="log")
        row[2].set(yscale="log")
        row[2].legend()
    axes[0][0].set_title("loss L(θ - ηg) over the step sizes")
    axes[0][1].set_title("gradient change over the step sizes")
    axes[0][2].set_title("effective β-smoothness")
    for ax in axes[-1]:
        ax.set_xlabel("training step")
    plt.show()


def plot_slices(rec):
    cfg, arrays = rec["config"], arrays_of(rec)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    for r in runs_of(rec):
        k, kw = key(r["norm"]), dict(color=COLORS[r["norm"]], label=NAMES[r["norm"]])
        axes[0].plot(np.linspace(*cfg["alphas_1d"]), arrays[f"{k}/1d_loss"], **kw)
        if f"{k}/1d_running_loss" in arrays:
            axes[0].plot(np.linspace(*cfg["alphas_1d"]), arrays[f"{k}/1d_running_loss"], ls="--", color=kw["color"])
        axes[1].plot(np.linspace(*cfg["interpolation_alphas"]), arrays[f"{k}/interp_loss"], **kw)
        ts, param = np.linspace(*cfg["parameter_t"]), arrays[f"{k}/param_loss"]
        axes[2].plot(ts, param - param[np.argmin(np.abs(ts))], **kw)
    axes[0].set(title="filter-normalized direction\n(dashed: running statistics)", xlabel="α", ylabel="training loss", yscale="log")
    axes[1].set(title="initial (α = 0) → trained (α = 1)", xlabel="α", ylabel="training loss", yscale="log")
    axes[2].set(title="one weight, moved by\nt × its filter's norm", xlabel="t", ylabel="change of the training loss")
    axes[2].legend(ncol=2)
    plt.show()


def surfaces(rec):
    grid = np.linspace(*rec["config"]["grid_2d"])
    return grid, {r["norm"]: arrays_of(rec)[f"{key(r['norm'])}/2d_loss"] for r in runs_of(rec)}


def panels(n, figsize=(10, 5), **kw):
    """A 2-row grid of panels for n networks; the spare slot is left empty."""
    fig = plt.figure(figsize=figsize)
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
        ax.set(title=NAMES[norm], aspect="equal", xticks=[-1, 0, 1], yticks=[-1, 0, 1])
    fig.colorbar(cs, ax=axes, shrink=0.8, label=f"training loss (clipped at {clip:g})", ticks=[0.3, 0.5, 1, 2, 3, 5, 10],
                 format="%g")
    fig.suptitle("loss on the plane θ + α d + β e (α across, β up); shared colour scale")
    plt.show()


def plot_surfaces(rec, clip=10.0):
    grid, surf = surfaces(rec)
    gx, gy = np.meshgrid(grid, grid)
    fig, axes = panels(len(surf), figsize=(10, 5.4), projection="3d")
    zlim = (np.log10(min(s.min() for s in surf.values())), np.log10(clip))
    # z ticks at round losses inside the range, labelled with the loss itself (the axis is log10)
    zticks = [z for z in (0.1, 0.2, 0.5, 1, 2, 5, 10) if zlim[0] <= np.log10(z) <= zlim[1]]
    for ax, (norm, loss) in zip(axes, surf.items()):
        ax.plot_surface(gx, gy, np.log10(np.clip(loss, None, clip)), cmap="viridis", linewidth=0)
        ax.set(title=NAMES[norm], zlim=zlim, xticks=[], yticks=[])
        ax.set_zticks(np.log10(zticks), [f"{z:g}" for z in zticks])
        ax.set_box_aspect(None, zoom=0.85)  # room for the z tick labels inside the panel
    fig.suptitle(f"training loss on the same plane (log scale, clipped at {clip:g})")
    plt.show()


def show(rec):
    experiments.get("loss_landscape_norms").report(rec).show()
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
        acc = "diverged" if r["final_test_acc"] is None else f"{r['final_test_acc']:.1%}"
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
# Further questions, each seconds of CPU on the small networks built above:
#
# 1. Slice the BN network of *The problem* along `landscape.filter_normalized_direction(net, seed=7, vectors="include")`.
#    How much of the rise comes from moving BN's $\gamma$ and $\beta$?
# 2. Build `small_cnn` with `"gn"` and with `"ws+gn"` (as in the scale cell) and slice each along a raw
#    Gaussian direction and along a filter-normalized one. Which network looks sharper along the raw
#    direction, and what about the two networks' weight norms explains it?
# 3. Slice the BN network of *The problem* with `bn="running"` as well as `"batch"`. Where do the two
#    part? Run 50 more train-mode forwards (`net(x)` under `torch.no_grad()`) so that the running
#    statistics settle, and compare again.

# %% [markdown]
# ## Running this notebook at other scales
#
# `LABNORM_SCALE` picks the size of the experiment: `smoke` (the quick check CI runs), `cpu` (the
# default; its saved record is loaded) and `gpu` (one seed at the full, paper-sized configuration).
# **On Colab**: choose a GPU runtime (Runtime → Change runtime type), add a first cell
# `%env LABNORM_SCALE=gpu` before the imports, and run all.
# Projected cost on a T4-class GPU, one seed: `loss_landscape_norms` about **13.6 h**. These figures are projected, not
# measured: a CPU dry run's time per image divided by 100, and at least 5 ms per training step
# (small batches are bound by kernel launches); a T4 also lacks the bf16 tensor cores that
# labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run loss_landscape_norms --scale gpu --dry-run`: it takes 2 training steps and 1 evaluation
# batch of every arm and prints the step times, the projected full run and the peak memory.
#
# **What the measurements cost.** Every point of a slice or surface is one forward pass over the fixed images, with no gradient;
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
