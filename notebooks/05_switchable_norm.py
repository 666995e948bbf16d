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
# # Switchable Normalization
#
# > *"SN switches between them by learning their importance weights in an end-to-end manner."* —
# > Luo et al., [Differentiable Learning-to-Normalize via Switchable Normalization](https://arxiv.org/abs/1806.10779)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/05_switchable_norm.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/05_switchable_norm.ipynb)
#
# [The source](https://labnorm.github.io/labnorm/glossary/#the-source) — the post or code this
# notebook redoes — is the README of the Keras port of SN,
# [keras-switchnorm](https://github.com/titu1994/keras-switchnorm). The port implements only the
# moving-average form of the BN branch, plots the learned importance weights of a toy CIFAR-10
# model, and reports that training becomes unstable late with momentum 0.99 or 0.997, so it
# defaults to 0.98. Here we
#
# 1. show what batch, instance and layer norm each throw away, on one tensor, and why a single
#    fixed choice is a compromise;
# 2. write SN from scratch and prove it equal to `labnorm.SwitchNorm2d`, which with one-hot
#    importance weights equals `InstanceNorm2d`, layer norm and `BatchNorm2d`;
# 3. show the two statistic conventions (the official code's unbiased IN variance) side by side;
# 4. implement the batch average the Keras port could not, and
# 5. train the port's toy model with the three Keras momenta and with the batch average, and plot
#    the importance weights per layer.

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
import torch
from torch import nn
from torch.nn import functional as F

import labnorm
from labnorm import experiments, results
from labnorm.experiments.plots import readable_style

torch.manual_seed(0)
readable_style()  # figures at 100 dpi, no text under 9 pt
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## The problem
#
# Batch norm (BN), instance norm (IN) and layer norm (LN) all subtract a mean and divide by a
# standard deviation; they differ only in *which values* they average over, and so in what they
# erase. Take one random activation $[N, C, H, W]$, edit it in four ways, and measure how far
# the normalized output of **sample 0** moves (mean absolute change; 0 means the normalizer erased
# the edit):

# %%
torch.manual_seed(0)


def normalizers(t):
    return {"BN": F.batch_norm(t, None, None, training=True),  # per channel, over (N, H, W)
            "IN": F.instance_norm(t),  # per sample and channel, over (H, W)
            "LN": F.layer_norm(t, t.shape[1:])}  # per sample, over (C, H, W)


edits = {
    "brighten sample 0 (+1 on every channel)": lambda t: t[0].add_(1.0),
    "brighten one channel of sample 0": lambda t: t[0, 1].add_(1.0),
    "double the contrast of sample 0": lambda t: t[0].mul_(2.0),
    "replace sample 1 (sample 0 untouched)": lambda t: t[1].normal_(),
}
for n in (64, 2):
    act = torch.randn(n, 4, 8, 8)
    print(f"batch of {n:<3} mean |change| of sample 0's output:      BN     IN     LN")
    for what, edit in edits.items():
        edited = act.clone()
        edit(edited)
        before, after = normalizers(act), normalizers(edited)
        print(f"  {what:<44}" + "".join(f"{(after[k][0] - before[k][0]).abs().mean().item():7.3f}" for k in before))

# %% [markdown]
# Read the columns:
#
# * **IN** erases all three edits to sample 0: each (sample, channel) loses its own mean and
#   scale. That is what style transfer wants (brightness and contrast are "style"), and what a
#   classifier does not want when a channel's level *is* the evidence.
# * **LN** erases what is common to all channels of a sample (its brightness, its contrast) and
#   keeps how the channels differ from each other.
# * **BN** keeps all three, because its statistics are shared by the whole batch — and that is
#   also its cost (last row): sample 0's output moves when sample 1 is replaced, a little at
#   batch 64 and a lot at batch 2, where BN also erases much of sample 0's own edit.
#
# So a single fixed choice decides, for every layer at once, what the layer may throw away and
# how much it depends on its batch mates. Early and late layers, tasks and batch sizes want
# different answers — and nobody knows the best answer for every layer in advance.
#
# ## The idea
#
# Switchable Normalization (SN) does not choose. Every SN layer computes all three sets of
# statistics — cheaply: LN's and BN's means and variances are averages of IN's per-(sample, channel)
# ones — and normalizes with a **weighted average** of them:
#
# * The weights are parameters like any other, learned by backpropagation with the rest of the
#   network: three numbers per layer for the mean and three for the variance, turned into
#   positive weights that sum to 1 by a softmax. A layer whose loss drops when it leans on the
#   batch moves its weight towards BN; one that is better off per sample moves it towards IN or LN.
# * The mix is a convex combination, so it is always a valid mean and variance somewhere between
#   the three; **one-hot** weights give back IN, LN or BN exactly (checked below).
# * The per-channel scale $\gamma$ and shift $\beta$ stay, as in BN: they let the network undo
#   the normalization where it needs to.
# * At evaluation IN and LN need nothing stored; only the BN branch needs statistics of the
#   training data (a running average, or the *batch average* below).
#
# The last figure of the experiment shows which mix each layer of a trained toy model chose.

# %% [markdown]
# ## The formulas
#
# For an activation $x$ of shape $[N, C, H, W]$, the three normalizers differ only in the set over
# which they take the mean and variance: instance norm over $(H, W)$ per sample and channel,
# layer norm over $(C, H, W)$ per sample, batch norm over $(N, H, W)$ per channel. SN mixes them:
#
# $$\hat x_{ncij} = \gamma_c\, \frac{x_{ncij} - \sum_k w_k \mu_k}{\sqrt{\sum_k w'_k \sigma^2_k + \epsilon}} + \beta_c,
#   \qquad w_k = \frac{e^{\lambda_k}}{\sum_z e^{\lambda_z}}, \quad k \in \{\mathrm{IN}, \mathrm{LN}, \mathrm{BN}\}$$
#
# with separate importance logits $\lambda$ for the means and $\lambda'$ for the variances, learned
# by backpropagation with the rest of the network. All three sets of statistics come from IN's
# per-(sample, channel) moments: LN's mean is the mean of IN's means over channels, BN's the mean
# over samples, and the variances follow from the **law of total variance** (the variance of a
# pooled set is the mean of the parts' variances plus the variance of the parts' means),
#
# $$\sigma^2_{LN} = \frac1C \sum_c \sigma^2_{IN,c} + \frac1C \sum_c (\mu_{IN,c} - \mu_{LN})^2 .$$
#
# The official code instead uses the *unbiased* IN variance and $E[x^2] - E[x]^2$ for LN and BN;
# `statistics="official"` reproduces it. In eval, the BN branch uses running statistics — either a
# moving average updated in training or the **batch average**: the pooled statistics of $K$
# batches computed once after training, which the paper uses and the Keras port could not express
# as a layer.
#
# **Momentum conventions.** Keras (and the official code) update $r \leftarrow m r + (1-m)\hat r$;
# PyTorch updates $r \leftarrow (1-m) r + m \hat r$. Keras' 0.98, 0.99 and 0.997 are PyTorch's
# 0.02, 0.01 and 0.003: the running estimates average over roughly the last 50, 100 and 333 batches.

# %% [markdown]
# ### Try it: LN's statistics from IN's (⏱ ~5 min)
#
# Write `ln_moments(mean_in, var_in)`: given IN's per-(sample, channel) means and biased variances
# (two tensors $[N, C]$), return LN's mean and biased variance per sample (two tensors $[N]$)
# **without touching $x$** — only with the law of total variance above. The check compares them
# with `torch.var_mean` over $(C, H, W)$.
#
# <details><summary>Hint</summary>
#
# The LN mean is `mean_in.mean(1)`. The LN variance is the mean of the variances plus the mean
# squared distance of each channel's mean from that LN mean.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def ln_moments(mean_in, var_in):
    mean_ln = mean_in.mean(1)
    var_ln = var_in.mean(1) + (mean_in - mean_ln[:, None]).square().mean(1)
    return mean_ln, var_ln


# %% tags=["check"]
xt = torch.randn(4, 6, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3 + 1
var_in_t, mean_in_t = torch.var_mean(xt.flatten(2), -1, correction=0)  # IN: [N, C]
var_ln_ref, mean_ln_ref = torch.var_mean(xt, (1, 2, 3), correction=0)  # LN, straight from x: [N]
mean_ln_t, var_ln_t = ln_moments(mean_in_t, var_in_t)
torch.testing.assert_close(mean_ln_t, mean_ln_ref)
torch.testing.assert_close(var_ln_t, var_ln_ref)
print("✓ LN's mean and variance from IN's moments equal torch.var_mean over (C, H, W)")

# %% [markdown]
# ## Switchable Normalization, line by line

# %%
def switch_norm_scratch(x, mean_logits, var_logits, eps=1e-5):
    n, c, h, w = x.shape
    xs = x.reshape(n, c, -1)
    var_in, mean_in = torch.var_mean(xs, -1, keepdim=True, correction=0)  # IN: [N, C, 1]
    mean_ln = mean_in.mean(1, keepdim=True)  # LN: [N, 1, 1]
    var_ln = var_in.mean(1, keepdim=True) + ((mean_in - mean_ln) ** 2).mean(1, keepdim=True)
    mean_bn = mean_in.mean(0, keepdim=True)  # BN: [1, C, 1]
    var_bn = var_in.mean(0, keepdim=True) + ((mean_in - mean_bn) ** 2).mean(0, keepdim=True)
    wm, wv = torch.softmax(mean_logits, 0), torch.softmax(var_logits, 0)
    mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * mean_bn
    var = wv[0] * var_in + wv[1] * var_ln + wv[2] * var_bn
    return ((xs - mean) / torch.sqrt(var + eps)).reshape(n, c, h, w)


x = torch.randn(4, 6, 5, 5, dtype=torch.float64) * 2 + 0.5
print("output shape:", tuple(switch_norm_scratch(x, torch.zeros(3), torch.zeros(3)).shape))

# %% [markdown]
# ## Parity: scratch = labnorm, and one-hot weights = IN / LN / BN
#
# In float64. The one-hot cases set one logit to $10^4$, so the softmax is exactly one-hot.
# This cell's output is checked in CI by [nbval](https://labnorm.github.io/labnorm/glossary/#nbval),
# which reruns the notebook and compares the printed lines with the saved ones.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)


def agree(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol


def with_logits(sn, mean_logits, var_logits):
    with torch.no_grad():
        sn.mean_weight.copy_(mean_logits)
        sn.var_weight.copy_(var_logits)
    return sn


checks = {}
logits_m, logits_v = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
sn = with_logits(labnorm.SwitchNorm2d(6).double(), logits_m, logits_v)
checks["scratch = labnorm (mixed weights)"] = agree(switch_norm_scratch(x, logits_m, logits_v), sn(x))
for k, (name, ref) in enumerate([("InstanceNorm", lambda t: F.instance_norm(t)),
                                 ("layer norm over (C, H, W)", lambda t: F.layer_norm(t, t.shape[1:])),
                                 ("BatchNorm2d", nn.BatchNorm2d(6, affine=False).double())]):
    hot = torch.zeros(3, dtype=torch.float64)
    hot[k] = 1e4
    sn = with_logits(labnorm.SwitchNorm2d(6).double(), hot, hot)
    checks[f"one-hot {name}: train"] = agree(sn(x), ref(x))
    if name == "BatchNorm2d":
        checks["... running mean and variance"] = (agree(sn.running_mean.flatten(), ref.running_mean)
                                                   and agree(sn.running_var.flatten(), ref.running_var))
        checks["... eval"] = agree(sn.eval()(x), ref.eval()(x))
official = with_logits(labnorm.SwitchNorm2d(6, statistics="official").double(), logits_m, logits_v)
exact = with_logits(labnorm.SwitchNorm2d(6).double(), logits_m, logits_v)
checks["official statistics differ from exact (unbiased IN variance)"] = not agree(official(x), exact(x), 1e-3)
for name, ok in checks.items():
    print(f"{name:<62} {ok}")

# %% [markdown]
# ### Try it: a Keras `BatchNormalization` made of SN (⏱ ~5 min)
#
# Write `keras_bn_as_sn(num_features, keras_momentum)`: a `labnorm.SwitchNorm2d` that behaves
# exactly as Keras' batch norm with that momentum — in training (batch statistics) *and* in eval
# (running statistics). The check trains it beside `nn.BatchNorm2d` on five batches and compares
# outputs and running statistics.
#
# <details><summary>Hint</summary>
#
# Two things to set: the importance logits, one-hot on BN (the order is IN, LN, BN), and the
# momentum, converted from Keras' convention to PyTorch's.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def keras_bn_as_sn(num_features, keras_momentum):
    sn = labnorm.SwitchNorm2d(num_features, momentum=1 - keras_momentum)  # PyTorch's momentum
    with torch.no_grad():
        one_hot_bn = torch.tensor([0.0, 0.0, 1e4])  # softmax -> (0, 0, 1) over (IN, LN, BN)
        sn.mean_weight.copy_(one_hot_bn)
        sn.var_weight.copy_(one_hot_bn)
    return sn


# %% tags=["check"]
torch.manual_seed(4)
sn_k, bn_k = keras_bn_as_sn(6, 0.99).double(), nn.BatchNorm2d(6, momentum=0.01).double()
with torch.no_grad():
    for _ in range(5):
        xb = torch.randn(8, 6, 5, 5, dtype=torch.float64) * 2 + 1
        torch.testing.assert_close(sn_k(xb), bn_k(xb))  # training: batch statistics
    torch.testing.assert_close(sn_k.running_mean.flatten(), bn_k.running_mean)
    torch.testing.assert_close(sn_k.running_var.flatten(), bn_k.running_var)
    xb = torch.randn(8, 6, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(sn_k.eval()(xb), bn_k.eval()(xb))  # eval: running statistics
print(f"✓ one-hot SN with momentum={sn_k.momentum:.3g} is BatchNorm2d(momentum=0.01), Keras' 0.99")

# %% [markdown]
# ## Edge cases
#
# A $1 \times 1$ feature map has one value per (sample, channel): its IN variance is 0 with the
# exact statistics, and undefined ($0/0$) with the official unbiased one — the official code
# returns NaN, labnorm says why. A batch of one $1\times1$ map leaves BN nothing to estimate.
# `last_gamma=True` starts $\gamma$ at 0, so the layer outputs $\beta$.

# %%
# NBVAL_CHECK_OUTPUT
z = torch.randn(4, 3, 1, 1)
print("exact statistics on N x C x 1 x 1: finite =", bool(torch.isfinite(labnorm.SwitchNorm2d(3)(z)).all()))
for label, make, inp in [("official statistics on N x C x 1 x 1", lambda: labnorm.SwitchNorm2d(3, statistics="official"), z),
                         ("a batch of one 1 x 1 map in training", lambda: labnorm.SwitchNorm2d(3), z[:1])]:
    try:
        make()(inp)
    except ValueError as err:
        print(f"{label}: ValueError ({str(err).split(';')[0].split(': ', 1)[1]})")
sn = labnorm.SwitchNorm2d(3, last_gamma=True)
print("last_gamma: output equals the bias =", torch.equal(sn(torch.randn(2, 3, 4, 4)), sn.bias.expand(2, 3, 4, 4)))

# %% [markdown]
# ## The batch average
#
# With `using_moving_average=False` training leaves the BN branch's running statistics alone;
# afterwards, `labnorm.finalize_batch_average(model, batches, K)` runs $K$ batches through the
# model and sets them to the statistics of **all** the values those batches put through each SN
# layer — one pooled mean and variance per channel, of the current weights, instead of a moving
# average over weights that have since changed.
#
# ### Try it: the batch average by hand (⏱ ~5 min)
#
# Write `pooled_stats(acts)`: given the SN layer's inputs, one $[N, C, H, W]$ tensor per batch,
# return the per-channel mean and *unbiased* variance of all their values together. The check runs
# `finalize_batch_average` on a conv + SN model and compares its running statistics with yours.
# (Why is this not the mean of the five batch variances?)
#
# <details><summary>Hint</summary>
#
# `torch.cat` the batches along $N$, then `torch.var_mean` over dims `(0, 2, 3)` with `correction=1`.
# The mean of the batch variances misses the spread *between* the batch means.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def pooled_stats(acts):
    var, mean = torch.var_mean(torch.cat(acts), dim=(0, 2, 3), correction=1)
    return mean, var


# %% tags=["check"]
torch.manual_seed(5)
toy = nn.Sequential(nn.Conv2d(3, 4, 3), labnorm.SwitchNorm2d(4, using_moving_average=False))
toy_batches = [torch.randn(8, 3, 10, 10) + k for k in range(5)]  # batches whose means differ
labnorm.finalize_batch_average(toy, toy_batches, num_batches=5)
with torch.no_grad():
    mean_t, var_t = pooled_stats([toy[0](b) for b in toy_batches])
torch.testing.assert_close(toy[1].running_mean.flatten(), mean_t, rtol=1e-4, atol=1e-5)
torch.testing.assert_close(toy[1].running_var.flatten(), var_t, rtol=1e-4, atol=1e-5)
print("✓ finalize_batch_average sets the pooled mean and unbiased variance of all 5 batches")

# %% [markdown]
# ## Experiment: momentum and the batch average on the Keras example's model
#
# The Keras example's toy CNN (six 3×3 convs, global average pooling) with SN after every conv,
# trained with Adam under a [one-cycle](https://labnorm.github.io/labnorm/glossary/#one-cycle) learning-rate
# schedule (up, then down, once over the run): the running-average BN branch at the three Keras momenta, the batch
# average (finalized from 20 un-augmented training batches before every evaluation), and plain BN
# for reference. At `smoke` scale this runs live; at `cpu`/`gpu` scale the saved run is loaded.

# %%
sn_exp = experiments.get("switch_norm_cifar")
print(sn_exp.config(SCALE))
sn_run = experiments.load_or_run("switch_norm_cifar", SCALE)
print(f"{sn_run['source']} record")
sn_exp.report(sn_run).show()

# %% [markdown]
# ## Reference results
#
# The largest saved record (`python -m labnorm run switch_norm_cifar --scale cpu --seeds 3`); means
# over seeds ± the half-width of their 95% intervals, verdicts from paired differences over seeds.

# %%
ref = experiments.reference("switch_norm_cifar")
if ref is None:
    print("no saved run (set LABNORM_RESULTS to the repository's results/ folder)")
elif ref["scale"] == SCALE:
    print("the reference is the record shown above")
else:
    sn_exp.report(ref).show()

# %% [markdown]
# ## What it costs (deep dive, optional)
#
# From the committed benchmark (`benchmarks/bench_switch_norm.py`): a training step
# (forward + backward) of `SwitchNorm2d` divided by torch's fused `BatchNorm2d` and by a direct
# transcription of the official formulas, eager and under `torch.compile`.
#
# What made the eager layer fast: the instance moments as a mean followed by the norm of
# $x - \mu$ (on CPU, `torch.var_mean` over short rows was much slower than these two passes — exercise 3),
# and hand-written backwards for the moments and for the fused scale-and-shift, each a single pass
# over the activations.

# %%
bench = results.load_benchmark("switch_norm")
if bench is not None:
    print(results.provenance_line(bench))
    for r in bench["rows"]:
        print(f"{str(r['shape']):<18} ÷ torch BatchNorm2d {r['sn_over_torch_bn']:.2f} "
              f"(compiled {r['sn_compiled_over_torch_bn']:.2f})   ÷ official formulas {r['sn_over_official']:.2f}")

# %% [markdown]
# ## What we found
#
# * **Moving average against batch average.** The verdicts above compare the batch-average run
#   with each moving-average run on the same seeds (three in the `cpu` record; a record with one
#   seed can only be *inconclusive*, and so can one whose BN arm is under 85% test accuracy; the
#   README's plummet at epochs 22–25 needs a run that long). The per-epoch curves show *where* the two kinds of
#   statistics part: a moving average with a long memory (0.997 averages the last ~330 batches)
#   evaluates with statistics of weights that have since moved,
#   most visibly while the learning rate is high. The batch average is recomputed from the
#   current weights before each evaluation.
# * **The importance weights** (last figure) show which statistics SN learned to use, layer by
#   layer. The paper reports BN dominating for classification with large batches. The weights
#   are the same in all four SN runs of a seed: the momentum only changes the statistics used at
#   evaluation, not training.
# * **Cost** (the table in "What it costs"): `SwitchNorm2d`'s training step divided by torch's
#   `BatchNorm2d`, eager and compiled, and by the official formulas. At batch 2 the tensors are
#   tiny and the step is the overhead of some sixty small operations on the statistics, which
#   `torch.compile` fuses.
# * **Scale.** The saved runs are `cpu` runs: the toy model narrower, on a subset of the JPEG
#   copy of CIFAR-10 for fewer epochs, one CPU thread per run (the sizes are printed with the config
#   above). The Keras example's 87% after 25 epochs is for the full model on all of CIFAR-10 (our
#   `gpu` scale); the BN baseline's accuracy here, in the report's baseline line, is far below
#   it, and we do not claim to reproduce it. The port's instability came "near the 22-25th epoch" — later than a
#   short `cpu` run reaches, so a `cpu` record cannot show it or rule it out.

# %% [markdown]
# ## Exercises
#
# 1. Build a `SwitchNorm2d` with `statistics="official"` and one with `"exact"`, give both the same
#    importance logits, and compare their outputs on a random $[8, 6, 4, 4]$ input and on a
#    $[8, 6, 32, 32]$ one. How large is the difference, and which divisor explains it? (This is
#    the size of the mismatch when a checkpoint of the official code, loaded with
#    `labnorm.load_official_state_dict`, is evaluated with the exact statistics.)
# 2. Finalize the batch average of the "Try it" model with 1, 5 and 50 random batches, and compare
#    each with the statistics of 500 batches. How fast does the error fall with $K$? What does
#    that suggest for the 20 batches the `cpu` experiment uses?
# 3. Time `SwitchNorm2d` with `torch.var_mean` for the instance moments instead of
#    `_InstanceMoments` (forward and backward) at $[64, 256, 8, 8]$. Where does the time go?
# 4. From the table in "The problem": which of IN, LN and BN would you pick by hand for a
#    style-transfer network, for a classifier at batch 256, and for one at batch 2? Compare your
#    choice for the classifier with the importance weights the trained toy model learned (the last
#    figure of the experiment).

# %% [markdown]
# ## Running this notebook at other scales
#
# `LABNORM_SCALE` picks the size of the experiment: `smoke` (the quick check CI runs), `cpu` (the
# default; the saved records were made at this scale) and `gpu` (the paper-sized configuration).
#
# **The `gpu` scale on Colab.** Choose a GPU runtime (Runtime → Change runtime type), then run
# `%env LABNORM_SCALE=gpu` in a new cell at the top, before the imports: the experiment then runs
# one seed at its full, paper-sized configuration. Projected cost on a T4-class GPU, one seed:
# `switch_norm_cifar` about **66 min**. These figures are projected, not measured: a CPU dry run's
# time per image divided by 100, and at least 5 ms per training step (small batches are bound by
# kernel launches); a T4 also lacks the [bf16](https://labnorm.github.io/labnorm/glossary/#bf16)
# tensor cores that labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run switch_norm_cifar --scale gpu --dry-run`: it takes 2 training steps and
# 1 evaluation batch of every arm and prints the step times, the projected full run and the peak
# memory.
