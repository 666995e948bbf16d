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
# # Weight Normalization
#
# > *"By reparameterizing the weights in this way we improve the conditioning of the optimization
# > problem and we speed up convergence of stochastic gradient descent."* — Salimans & Kingma,
# > [Weight Normalization](https://arxiv.org/abs/1602.07868) (2016)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/02_weight_norm.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/02_weight_norm.ipynb)
#
# The seed post, *Weight normalization implementation options for Keras and Tensorflow* (2018),
# weighs the ways to get weight normalization in Keras: the authors' optimizer-based version with
# data-based initialization, a dedicated `Conv2DWeightNorm` layer without it, and a generic
# wrapper, with PyTorch's implementation as the reference. Training the WDSR super-resolution
# network with Adam, it found the convergence of the optimizer-based version and of the dedicated
# layer similar: the former "shows slightly better initial convergence", the latter "quickly
# catches up", and "the difference is probably due to different weight initializations". Here we
#
# 1. write weight normalization from scratch and prove it equal to `labnorm.weight_norm` and to
#    `torch.nn.utils.parametrizations.weight_norm`,
# 2. check numerically that its gradient is a projected gradient (the optimizer-side view),
# 3. show what the data-dependent initialization does to the pre-activations, and
# 4. train the same CIFAR-10 network with none / WN / WN + data init / WN + mean-only BN / BN,
#    with Adam and with SGD.

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
# Projected cost on a T4-class GPU, one seed: `weight_norm_cifar` about **33 min**. These figures are projected, not
# measured: a CPU dry run's time per image divided by 100, and at least 5 ms per training step
# (small batches are bound by kernel launches); a T4 also lacks the bf16 tensor cores that
# labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run weight_norm_cifar --scale gpu --dry-run`: it takes 2 training steps and 1 evaluation
# batch of every arm and prints the step times, the projected full run and the peak memory.

# %%
import copy

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_weight_norm

import labnorm
from labnorm import experiments
from labnorm.data import DeviceBatches, load_cifar10
from labnorm.models import SmallCNN

torch.manual_seed(0)
plt.rcParams["figure.dpi"] = 72  # keeps the saved notebook small
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## Theory
#
# A neuron computes $y = \phi(w \cdot x + b)$. Weight normalization writes the weight vector as
#
# $$w = \frac{g}{\lVert v \rVert}\, v$$
#
# and trains the scalar $g$ and the vector $v$. Now $\lVert w \rVert = g$: the length of the weight
# is a parameter of its own, independent of the direction $v/\lVert v \rVert$. For a conv layer
# there is one $g$ per output channel and the norm runs over that filter's $C_{in} \cdot k_h \cdot k_w$
# entries. The chain rule gives the gradients (the paper's eq. 3–4):
#
# $$\nabla_g L = \frac{\nabla_w L \cdot v}{\lVert v \rVert}, \qquad
#   \nabla_v L = \frac{g}{\lVert v \rVert}\, M_w \nabla_w L, \qquad
#   M_w = I - \frac{w w^\top}{\lVert w \rVert^2}$$
#
# $M_w$ projects onto the complement of $w$: the update of $v$ is the weight gradient, scaled by
# $g/\lVert v\rVert$ and with its component along $w$ removed. That is the **optimizer-side view**:
# weight normalization is plain SGD (or Adam) on a reparametrization, equivalent to a projected,
# rescaled gradient on $w$ — which is why the authors could also ship it as a modified optimizer.
# Since $\nabla_v L \perp v$, $\lVert v \rVert$ only grows during training, which damps the
# effective learning rate on the direction automatically.
#
# **Data-dependent initialization.** For one batch, compute each layer's pre-activation
# $t = v \cdot x / \lVert v \rVert$ with $g = 1, b = 0$, its per-channel mean $\mu[t]$ and
# standard deviation $\sigma[t]$, then set
#
# $$g \leftarrow \frac{1}{\sigma[t]}, \qquad b \leftarrow \frac{-\mu[t]}{\sigma[t]},$$
#
# so that every pre-activation starts with mean 0 and variance 1 on that batch — what batch norm
# would give, once, at the start. Layers are initialized in forward order, each on the output of
# the already-initialized ones. **Mean-only batch norm** subtracts the batch mean (no division),
# the cheap companion the paper pairs with WN.

# %% [markdown]
# ## Weight normalization, line by line

# %%
def wn_weight(g, v, dim=0):
    """w = g v / ||v||, with the norm over every dim except `dim` (one g per slice along `dim`)."""
    other = [d for d in range(v.dim()) if d != dim]
    norm = v.pow(2).sum(dim=other, keepdim=True).sqrt()
    return g * v / norm


conv = nn.Conv2d(3, 4, 3).double()
v = conv.weight.detach().clone()  # start from the layer's own weight: v = w
g = v.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()  # and g = ||w||, so w is unchanged
w = wn_weight(g, v)
print("g shape (one per output channel):", tuple(g.shape))
print("wrapping leaves the weight unchanged:", torch.allclose(w, conv.weight))
print("each filter has norm g:", torch.allclose(w.pow(2).sum((1, 2, 3)).sqrt(), g.flatten()))

# %% [markdown]
# ## Parity: scratch = labnorm = torch, and the projected gradient
#
# In float64, for a linear layer, a conv and a transposed conv (normalized per output channel):
# forward, gradients of $g$ and $v$, and a state dict saved by torch loading into labnorm's layer.
# The last lines check the gradient formulas above. This cell's output is checked in CI.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)


def agree(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol


checks = {}
for name, make, x_shape in [
    ("Linear", lambda: nn.Linear(6, 4), (5, 6)),
    ("Conv2d", lambda: nn.Conv2d(3, 4, 3), (2, 3, 6, 6)),
    ("ConvTranspose2d (dim=1)", lambda: nn.ConvTranspose2d(3, 4, 3, stride=2), (2, 3, 4, 4)),
]:
    dim = 1 if "Transpose" in name else 0
    base = make().double()
    ours = labnorm.weight_norm(copy.deepcopy(base), dim=dim)
    ref = torch_weight_norm(copy.deepcopy(base), dim=dim)
    x = torch.randn(x_shape, dtype=torch.float64)
    g = ours.parametrizations.weight.original0.detach().clone().requires_grad_()
    v = ours.parametrizations.weight.original1.detach().clone().requires_grad_()
    forward = {"Linear": nn.functional.linear, "Conv2d": nn.functional.conv2d}.get(
        name, lambda x, w, b: nn.functional.conv_transpose2d(x, w, b, stride=2))
    y_s = forward(x, wn_weight(g, v, dim), base.bias)
    y_l, y_t = ours(x), ref(x)
    up = torch.randn_like(y_s)
    for y in (y_s, y_l, y_t):
        y.backward(up)
    pl, pt = ours.parametrizations.weight, ref.parametrizations.weight
    checks[f"{name}: forward"] = agree(y_s, y_l) and agree(y_l, y_t)
    checks[f"{name}: grad g, grad v"] = (agree(g.grad, pl.original0.grad) and agree(pl.original0.grad, pt.original0.grad)
                                        and agree(v.grad, pl.original1.grad) and agree(pl.original1.grad, pt.original1.grad))
    fresh = labnorm.weight_norm(make().double(), dim=dim)
    fresh.load_state_dict(ref.state_dict())
    checks[f"{name}: loads torch's state dict"] = agree(fresh(x), y_t)

# The projected gradient, on the linear layer (one row of w per output unit)
lin = labnorm.weight_norm(nn.Linear(6, 4).double())
w = lin.weight
w.retain_grad()
(nn.functional.linear(torch.randn(5, 6, dtype=torch.float64), w, lin.bias) ** 2).sum().backward()
g, v = lin.parametrizations.weight.original0.detach(), lin.parametrizations.weight.original1.detach()
wd, gw, vn = w.detach(), w.grad, v.norm(dim=1, keepdim=True)
checks["grad g = grad_w . v / ||v||"] = agree(lin.parametrizations.weight.original0.grad, (gw * v).sum(1, keepdim=True) / vn)
projected = gw - wd * (wd * gw).sum(1, keepdim=True) / wd.pow(2).sum(1, keepdim=True)
checks["grad v = g/||v|| M_w grad_w"] = agree(lin.parametrizations.weight.original1.grad, g / vn * projected)
checks["grad v is orthogonal to v"] = agree((lin.parametrizations.weight.original1.grad * v).sum(1), torch.zeros(4))
for name, ok in checks.items():
    print(f"{name:<42} {ok}")

# %% [markdown]
# ### torch's traps
#
# `ConvTranspose` weights are `[in, out, k, k]`, so torch's default `dim=0` gives one $g$ per
# *input* channel; `labnorm.weight_norm(layer, dim="output")` picks the output dim of any layer.
# torch reads `dim=-1` as "one norm over the whole tensor" (like `dim=None`), not "last dim";
# labnorm refuses negative dims. And a filter of zeros gives NaN in torch, while `eps > 0` keeps
# labnorm finite:

# %%
# NBVAL_CHECK_OUTPUT
layer = nn.ConvTranspose2d(3, 5, 3)
print("torch default g:", tuple(torch_weight_norm(copy.deepcopy(layer)).parametrizations.weight.original0.shape),
      "| labnorm dim='output' g:", tuple(labnorm.weight_norm(copy.deepcopy(layer), dim="output")
                                         .parametrizations.weight.original0.shape))
try:
    labnorm.weight_norm(nn.Linear(3, 4), dim=-1)
except ValueError as err:
    print("ValueError:", str(err).split(":")[1].strip())
for label, make in (("torch", lambda m: torch_weight_norm(m)), ("labnorm eps=1e-8", lambda m: labnorm.weight_norm(m, eps=1e-8))):
    m = make(nn.Linear(3, 4))
    with torch.no_grad():
        m.parametrizations.weight.original1[0].zero_()
    print(f"zero row, {label}: {'finite' if torch.isfinite(m.weight).all() else 'NaN'}")

# %% [markdown]
# ## Data-dependent initialization, seen
#
# The pre-activations of the three weight-normalized convs of the small CNN on a batch of CIFAR-10
# images, before and after `labnorm.data_dependent_init` (which also rescales each layer's output
# before the next layer sees it). To make the point of the TF-Addons pitfall, the second conv's $v$
# is scaled by 7 first: with $\lVert v \rVert \ne 1$ an initialization that forgets to divide by
# $\lVert v \rVert$ ends with standard deviation $1/\lVert v\rVert$ instead of 1.

# %%
torch.manual_seed(0)
batch, _ = next(iter(DeviceBatches(load_cifar10("train"), 500, train=False)))
model = SmallCNN(norm="wn", width=16)
with torch.no_grad():
    model.features[2][0].parametrizations.weight.original1.mul_(7)
convs = [model.features[i][0] for i in (0, 2, 4)]


def pre_activations(model, x):
    seen = []
    # clone: the in-place ReLU after each conv would overwrite a view of the output
    hooks = [c.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone())) for c in convs]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


before = pre_activations(model, batch)
labnorm.data_dependent_init(model, batch)
after = pre_activations(model, batch)
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for k, (ax, b, a) in enumerate(zip(axes, before, after)):
    ax.hist(b.flatten().numpy(), bins=80, alpha=0.6, density=True, label="before")
    ax.hist(a.flatten().numpy(), bins=80, alpha=0.6, density=True, label="after")
    ax.set(title=f"conv {k + 1}", xlabel="pre-activation value", ylabel="density", xlim=(-5, 5))
    ax.legend()
fig.tight_layout()
plt.show()
for k, a in enumerate(after):
    per_channel_std = a.std(dim=(0, 2, 3), unbiased=False)
    print(f"conv {k + 1}: per-channel mean within {a.mean(dim=(0, 2, 3)).abs().max():.0e} of 0, "
          f"std within {(per_channel_std - 1).abs().max():.0e} of 1")

# %% [markdown]
# ## Experiment: none / WN / WN + init / WN + mean-only BN / BN, with Adam and SGD
#
# The small CNN of notebook 01 (three conv stages) with each variant, trained with one-cycle Adam
# and one-cycle SGD at batch 64 on CIFAR-10; WN uses one $g$ per output channel; "WN + init" runs
# the data-dependent initialization on 500 training images first. At `smoke` scale this runs
# live; at `cpu`/`gpu` scale the saved run of that scale is loaded (`load_or_run`).

# %%
wn_exp = experiments.get("weight_norm_cifar")
print(wn_exp.config(SCALE))
wn_run = experiments.load_or_run("weight_norm_cifar", SCALE)
print(f"{wn_run['source']} record")
wn_exp.report(wn_run).show()

# %% [markdown]
# ## Reference results
#
# The largest saved record (`python -m labnorm run weight_norm_cifar --scale cpu --seeds 3`):
# every accuracy is a mean over seeds ± the half-width of its 95% interval, and every verdict is
# computed by `labnorm.verdict` from the paired difference over the same seeds.

# %%
ref = experiments.reference("weight_norm_cifar")
if ref is None:
    print("no saved run (set LABNORM_RESULTS to the repository's results/ folder)")
elif ref["scale"] == SCALE:
    print("the reference is the record shown above")
else:
    wn_exp.report(ref).show()

# %% [markdown]
# ## What we found
#
# * **The verdicts above are the findings.** The questions the post raises — does weight norm
#   help, does the data-dependent initialization matter, how close does WN come to BN, does WN
#   without the initialization catch up — are each judged by a paired interval over seeds and
#   printed as a word, from the paired differences over the saved seeds (three in the `cpu`
#   record). A record with a single seed can only ever be *inconclusive*: its point estimates are
#   shown, but one seed cannot tell them from noise.
# * **Does WN without init catch up?** The post saw the Adam-based implementation ahead at first
#   and Conv2DWeightNorm "quickly" catching up, in WDSR super-resolution training with Adam, and put
#   the gap down to their weight initializations. The claim lines above judge it here with Adam:
#   WN + init ahead after epoch 1, and WN within 2 points of WN + init at the end (the per-epoch
#   figure shows both curves). A claim about the end of training is decided only when BN reaches
#   85% test accuracy, the level of a trained CIFAR-10 network; our runs are a few epochs, far
#   shorter than a WDSR training, so the printed word is *inconclusive at this scale* whatever the
#   gap. The post's "data-based initialization has a similar effect as batch-normalization" is about
#   the statistics right after the init, which the cells above show, not about final accuracy.
# * **The optimizer-side view holds exactly**: the gradients of $g$ and $v$ are the projected,
#   rescaled weight gradient of the paper's eq. 3–4 (checked above to $10^{-10}$), so an
#   optimizer-based WN and the parametrization (with the optimizer acting on $g$ and $v$) take the
#   same steps from the same starting point.
#   That is consistent with the post's guess that the difference it saw comes from the
#   initialization; whether the data-dependent initialization helps *here* is the "data-dependent
#   init improves WN" verdict above.
# * **Scale.** The saved runs are `cpu`-scale (the small CNN for a few epochs on a subset of the
#   JPEG copy of CIFAR-10, on 2 CPU cores); the report's baseline line gives BN's accuracy with
#   each optimizer, far below a tuned CIFAR-10 network's, so every verdict on final accuracy is
#   *inconclusive at this scale*; the intervals describe the first epochs of training. The `gpu`
#   scale trains longer on the full data.

# %% [markdown]
# ## Exercises
#
# 1. Write the optimizer-side version: keep a plain `nn.Conv2d`, and after each backward replace
#    its gradient by $\frac{g}{\lVert v\rVert} M_w \nabla_w L$ plus the matching update of $g$.
#    Check it against `labnorm.weight_norm` with SGD for a few steps.
# 2. Track $\lVert v \rVert$ per filter during training. Does it grow as the theory says?
# 3. Run `data_dependent_init` with `init_scale=0.1` (the paper's choice for some models) and
#    compare the first epoch.
# 4. Put weight norm on the linear head too (`labnorm.weight_norm(model.head, dim="output")`).
