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
# # The LR range test and one-cycle training
#
# > *"There is a simple way to estimate reasonable minimum and maximum boundary values with one
# > training run of the network for a few epochs."* — Smith,
# > [Cyclical Learning Rates for Training Neural Networks](https://arxiv.org/abs/1506.01186) (2017)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/labnorm/labnorm/blob/main/notebooks/07_lr_finder_and_one_cycle.ipynb) · [download the notebook](https://github.com/labnorm/labnorm/raw/main/notebooks/07_lr_finder_and_one_cycle.ipynb)
#
# Every training run needs a learning rate, and the right one depends on the network, its
# normalization and the batch size. An **LR range test** ([glossary](https://labnorm.github.io/labnorm/glossary/#range-test))
# measures it in one short run: the learning rate grows every step while the loss is recorded, and
# the curve shows where training starts to work and where it blows up. Most classifiers in these
# notebooks then train with a **one-cycle** schedule ([Smith & Topin, 2018](https://arxiv.org/abs/1708.07120);
# [glossary](https://labnorm.github.io/labnorm/glossary/#one-cycle)) — one rise of the learning rate
# to a peak and one long fall far below its start, over the whole run — and that peak is what a range
# test helps to choose.
#
# [The source](https://labnorm.github.io/labnorm/glossary/#the-source) this notebook follows is the
# blog post *"Weight Standardization: A new normalization in town"*, which used fastai's range test
# and one-cycle training on a CIFAR-10 ResNet-18 with and without WS, and read the range test as
# *"We are looking for the maximum value of lr at which the loss value starts increasing"* (batch 64).
# Here we
#
# 1. see what a learning rate too small or too large does to a tiny problem, and what the range test shows there;
# 2. write the range test from scratch and prove it equal to `labnorm.LRFinder` and to
#    [torch-lr-finder](https://github.com/davidtvs/pytorch-lr-finder);
# 3. run it on a CIFAR ResNet-18 at batch 64 with batch norm, group norm and no normalization;
# 4. write the one-cycle schedule of `torch.optim.lr_scheduler.OneCycleLR` from its formula, and
# 5. train a small fast ResNet with it.

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
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

import labnorm
from labnorm import experiments
from labnorm.experiments.plots import readable_style
from labnorm.train.lr_finder import LRFinder

torch.manual_seed(0)
readable_style()  # 100 dpi, fonts of 9 pt and more, nothing clipped
SCALE = labnorm.get_scale()
print(f"labnorm {labnorm.__version__}, torch {torch.__version__}, scale {SCALE}")

# %% [markdown]
# ## The problem: a learning rate too small or too large
#
# A tiny problem first, a few seconds of CPU: a two-layer network (20 inputs, 64 hidden units, 4
# classes) learns labels set by a random linear "teacher" on 512 points, with plain SGD, 100 steps
# of batch 64 — three times, changing only the learning rate $\eta$.

# %%
g = torch.Generator().manual_seed(0)
X = torch.randn(512, 20, generator=g)
Y = (X @ torch.randn(20, 4, generator=g)).argmax(1)  # labels from a random linear teacher
tiny_batches = [(X[i:i + 64], Y[i:i + 64]) for i in range(0, 512, 64)]


def tiny_net():
    torch.manual_seed(0)  # the same initial weights every time
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))


def train_tiny(lr, steps=100):
    """Plain SGD at a constant learning rate; the loss of every step."""
    model = tiny_net()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        x, y = tiny_batches[step % len(tiny_batches)]
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


TRIED = {0.01: "too small", 1.0: "about right", 10.0: "too large"}
runs = {lr: train_tiny(lr) for lr in TRIED}
# The range test on the same problem: 100 steps, the learning rate from 1e-4 to 100
model = tiny_net()
tiny_finder = LRFinder(model, torch.optim.SGD(model.parameters(), lr=1e-4), nn.CrossEntropyLoss())
tiny_test = tiny_finder.range_test(tiny_batches, start_lr=1e-4, end_lr=100.0, num_iter=100)

fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
for (lr, label), color in zip(TRIED.items(), ("tab:blue", "tab:green", "tab:red")):
    ax[0].plot(runs[lr], color=color, label=f"η = {lr:g} ({label})")
    ax[1].axvline(lr, color=color, ls="--", label=f"η = {lr:g}")
ax[0].set(xlabel="training step", ylabel="training loss", ylim=(0, 2.5),
          title="three constant learning rates")
ax[0].legend()
ax[1].plot(tiny_test["lr"], tiny_test["loss"], color="black", label="range test")
ax[1].set(xscale="log", xlabel="learning rate (log scale)", ylabel="smoothed training loss",
          title="one range test, 100 steps")
ax[1].legend()
plt.show()
for lr, label in TRIED.items():
    print(f"η = {lr:<5g} ({label}): loss {runs[lr][0]:.3f} at step 1, {runs[lr][-1]:.3g} at step 100")
lowest = min(range(len(tiny_test["loss"])), key=tiny_test["loss"].__getitem__)
print(f"range test: steepest descent at η = {tiny_finder.suggest():.3g}, lowest smoothed loss at "
      f"η = {tiny_test['lr'][lowest]:.3g}, stopped (diverged) after {len(tiny_test['lr'])} steps at η = {tiny_test['lr'][-1]:.3g}")

# %% [markdown]
# With $\eta = 0.01$ the loss crawls: after 100 steps it has barely left $\ln 4 \approx 1.39$, the
# loss of a uniform guess over four classes. With $\eta = 10$ it explodes within a few steps (its
# curve leaves the chart). With $\eta = 1$ it falls fast, to a few hundredths. Nothing in the problem says in
# advance which of these is which: the usable range depends on the curvature of the loss, which the
# architecture, the normalization and the batch size all change.
#
# The range test on the right took as many steps as *one* of the runs on the left. Its learning rate
# grew from $10^{-4}$ every step: flat while $\eta$ is too small to matter, falling where the steps
# start to work, turning up past its lowest point and stopping once it has clearly diverged (the
# rates are printed above). The three dashed lines fall where their runs did: the crawl on the flat
# part, the good rate on the steep part, the explosion past the turn.

# %% [markdown]
# ## The idea
#
# **One run, many learning rates.** Training at a constant rate for a while and comparing the loss
# would need one run per candidate. The range test spends one step per candidate instead, raising
# $\eta$ by a constant factor each step. The loss of a step reflects the few rates before it as well,
# so the curve is a smeared picture, not a table of separate runs — good enough to find the decade
# in which training works and the point where it stops working.
#
# **Reading the curve.** Too small: the loss stays flat. Useful: it falls, steepest somewhere in the
# middle. Too large: it turns up. The source reads off the largest rate before the loss starts
# increasing; `LRFinder.suggest()` returns the rate of steepest descent, which sits lower. Both are
# starting points for a choice, not optima.
#
# **One cycle.** A constant rate is a compromise: large rates make fast progress and act as a
# regularizer (the noise of big steps keeps the weights out of narrow minima), small rates are needed
# to settle at the end. A one-cycle schedule does both in one run: warm up from a small rate to a
# peak (early large steps on random weights would blow up), stay high through the middle, then anneal
# to almost zero. The peak sits near the top of the range test's useful part. SGD's momentum moves
# the other way — lower while the rate is high, so the two do not add up to an oversized step.
#
# **Linear LR scaling** ([glossary](https://labnorm.github.io/labnorm/glossary/#linear-lr-scaling)):
# multiply the batch size by $k$ and the learning rate by $k$ too ([Goyal et al., 2017](https://arxiv.org/abs/1706.02677)).
# A batch $k$ times larger averages away noise, so one step on it stands in for about $k$ steps on
# the small batches and can be about $k$ times as long — up to a limit the range test can show.
# Several experiments of notebooks 01–08 set their peak learning rates this way, from a fixed rate at
# a reference batch size, instead of running a range test per run.

# %% [markdown]
# ## Theory
#
# **The range test.** Start from a tiny learning rate $\eta_0$ and multiply it by a constant
# factor every step, so that after $n$ steps it reaches $\eta_{end}$:
#
# $$\eta_i = \eta_0 \left(\frac{\eta_{end}}{\eta_0}\right)^{i/(n-1)}, \qquad i = 0, \ldots, n-1$$
#
# (or linearly, $\eta_i = \eta_0 + \tfrac{i}{n-1}(\eta_{end} - \eta_0)$). A single mini-batch
# loss is noisy, so the recorded loss is smoothed exponentially,
#
# $$\bar L_0 = L_0, \qquad \bar L_i = f L_i + (1 - f)\,\bar L_{i-1},$$
#
# and the test stops once $\bar L_i > d \cdot \min_{j \le i} \bar L_j$ (here $f = 0.05$, $d = 5$).
# Plotted against $\log \eta$, the loss is flat while $\eta$ is too small to matter, falls
# steeply where training works, and explodes where the steps overshoot. A common heuristic takes
# the learning rate of steepest descent of $\bar L$ against $\log \eta$.
#
# **One cycle.** `OneCycleLR` with peak $\eta_{max}$ over $T$ steps starts at
# $\eta_{start} = \eta_{max}/25$ (`div_factor`) and ends at $\eta_{end} = \eta_{start}/10^4$
# (`final_div_factor`), i.e. $\eta_{max}/250{,}000$. With $w = $ `pct_start` $\cdot T - 1$, the step
# at which the peak is reached, and the cosine ramp $\operatorname{ramp}(a, b, p) = b + \tfrac{a - b}{2}(1 + \cos \pi p)$
# (from $a$ at $p = 0$ to $b$ at $p = 1$), the rate of step $t$ is
#
# $$\eta_t = \begin{cases} \operatorname{ramp}\!\left(\eta_{start}, \eta_{max}, \tfrac{t}{w}\right) & t \le w \\[4pt]
# \operatorname{ramp}\!\left(\eta_{max}, \eta_{end}, \tfrac{t - w}{T - 1 - w}\right) & t > w. \end{cases}$$
#
# SGD's momentum follows the same ramps the other way, 0.95 → 0.85 → 0.95.

# %% [markdown]
# ### Try it: the range test's learning rates (⏱ ~5 min)
#
# Write `exp_schedule(start_lr, end_lr, num_iter)`, the list of the $n$ learning rates of an
# exponential range test, from the formula above. The check runs `labnorm.LRFinder` for 25 steps
# from $10^{-3}$ to 1 on the tiny problem and compares its learning rates with yours.
#
# <details><summary>Hint</summary>
#
# Step $i$ is $\eta_0 r^{i}$ with $r = (\eta_{end}/\eta_0)^{1/(n-1)}$: the first is $\eta_0$, the last $\eta_{end}$.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def exp_schedule(start_lr, end_lr, num_iter):
    return [start_lr * (end_lr / start_lr) ** (i / (num_iter - 1)) for i in range(num_iter)]


# %% tags=["check"]
model = tiny_net()
check = LRFinder(model, torch.optim.SGD(model.parameters(), lr=1e-3), nn.CrossEntropyLoss())
history = check.range_test(tiny_batches, start_lr=1e-3, end_lr=1.0, num_iter=25)
assert len(history["lr"]) == 25, "the test should run all 25 steps (it did not diverge by η = 1)"
torch.testing.assert_close(torch.tensor(exp_schedule(1e-3, 1.0, 25), dtype=torch.float64),
                           torch.tensor(history["lr"], dtype=torch.float64), rtol=1e-12, atol=0)
print("✓ your schedule is LRFinder's, from", history["lr"][0], "to", history["lr"][-1])

# %% [markdown]
# ## The range test, line by line

# %%
def range_test_scratch(model, optimizer, loader, start_lr, end_lr, num_iter, smooth_f=0.05, diverge_th=5.0):
    """Exponential LR range test; returns (lrs, smoothed losses). Leaves the model trained: copy it first."""
    lrs, losses = [], []
    batches = iter(loader)
    best = math.inf
    for i in range(num_iter):
        lr = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))  # the learning rate of step i
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            x, y = next(batches)
        except StopIteration:  # cycle the data
            batches = iter(loader)
            x, y = next(batches)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        value = loss.item()
        if i > 0:
            value = smooth_f * value + (1 - smooth_f) * losses[-1]  # smooth over the smoothed history
        best = min(best, value) if i > 0 else value
        lrs.append(lr)
        losses.append(value)
        if value > diverge_th * best:  # diverged
            break
    return lrs, losses


# %% [markdown]
# ## Parity: scratch = labnorm = torch-lr-finder
#
# Same model, same data order, same seed: the three give the same learning rates and the same
# smoothed losses, through divergence. `labnorm.LRFinder` also puts the model, the optimizer
# and the RNG state back as they were. (torch-lr-finder is a test dependency; install it to
# check the last line yourself.)

# %%
# NBVAL_CHECK_OUTPUT
import contextlib
import io

from torch.utils.data import DataLoader, TensorDataset


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10))
    return model, torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)


g = torch.Generator().manual_seed(1)
data = TensorDataset(torch.randn(160, 3, 8, 8, generator=g), torch.randint(0, 10, (160,), generator=g))
loader = DataLoader(data, batch_size=16, shuffle=False)
args = dict(start_lr=1e-4, end_lr=100.0, num_iter=60)

lrs_s, losses_s = range_test_scratch(*setup(), loader, **args)
model, opt = setup()
before = copy.deepcopy(model.state_dict())
finder = LRFinder(model, opt, nn.CrossEntropyLoss())
hist = finder.range_test(loader, **args)


def same(a, b, rel=1e-6):
    return len(a) == len(b) and all(math.isclose(u, v, rel_tol=rel) for u, v in zip(a, b))


print("stopped before num_iter (diverged):", len(lrs_s) < args["num_iter"])
print("scratch = labnorm, learning rates:  ", same(lrs_s, hist["lr"], 1e-12))
print("scratch = labnorm, smoothed losses: ", same(losses_s, hist["loss"]))
print("labnorm restored the model:         ", all(torch.equal(v, before[k]) for k, v in model.state_dict().items()))
try:
    # torch-lr-finder prints a progress bar and messages: keep them out of the output
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import torch_lr_finder

        ref = torch_lr_finder.LRFinder(*setup(), nn.CrossEntropyLoss(), device="cpu")
        ref.range_test(loader, **args)
    print("labnorm = torch-lr-finder:          ", same(hist["lr"], ref.history["lr"], 1e-12)
          and same(hist["loss"], ref.history["loss"]))
except ImportError:
    print("labnorm = torch-lr-finder:           (pip install torch-lr-finder to check)")

# %% [markdown]
# ### Try it: pick a learning rate from the curve (⏱ ~5 min)
#
# Use the range test of the tiny problem (`tiny_finder`, run in *The problem*): set `lr_pick` to its
# steepest-descent learning rate, then train the tiny network for 100 steps at `lr_pick` and at ten
# times `lr_pick` with `train_tiny`, keeping the losses in `losses_pick` and `losses_10x`. The check
# expects the pick between the crawl (0.01) and the explosion (10), a final loss under a tenth of the
# crawl's, and the run at ten times the pick to end no lower than it started.
#
# <details><summary>Hint</summary>
#
# `tiny_finder.suggest()` returns the steepest-descent rate; `train_tiny(lr)` returns the loss of every step.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
lr_pick = tiny_finder.suggest()
losses_pick = train_tiny(lr_pick)
losses_10x = train_tiny(10 * lr_pick)

# %% tags=["check"]
assert 0.01 < lr_pick < 10, f"the pick {lr_pick:.3g} is not between the crawl and the explosion"
assert losses_pick[-1] < 0.1 * runs[0.01][-1], "at the pick the loss should fall far below the crawl's"
assert not losses_10x[-1] < losses_10x[0], "ten times the pick should be past the turn of the curve"
print(f"✓ η = {lr_pick:.3g}: loss {losses_pick[-1]:.3g} after 100 steps (the crawl: {runs[0.01][-1]:.3g}); "
      f"η = {10 * lr_pick:.3g}: {losses_10x[-1]:.3g}")

# %% [markdown]
# ## The range test on ResNet-18 at batch 64
#
# A CIFAR ResNet-18 (3×3 stem, no max-pool), SGD with momentum 0.9, learning rate from
# $10^{-5}$ to 10 over `num_iter` steps, with batch norm, group norm and no normalization (the
# sizes are printed with the config below). The implementation line under the report says what
# this record's `gn` was: gcd(C, 32) groups, so one channel per group — instance norm — in the
# thinned net's 16-channel layers (today's `gn` keeps at least 2 channels a group). At `smoke` scale this runs
# live on a thin network; at `cpu` and `gpu` scale the saved run of that scale is loaded
# (`load_or_run`; pass `rerun=True` to train it again).

# %%
lr_exp = experiments.get("lr_range_test_resnet18")
print(lr_exp.config(SCALE))
lr_test = experiments.load_or_run("lr_range_test_resnet18", SCALE)
print(f"{lr_test['source']} record")
lr_exp.report(lr_test).show()

# %% [markdown]
# The same range tests to explore: click a name in the legend to hide or show its curve, hover for the
# loss at a learning rate.

# %%
lr_exp.report(lr_test).explore()

# %% [markdown]
# ## The one-cycle schedule
#
# `OneCycleLR` for a run of 1,000 steps with $\eta_{max} = 0.2$ — the learning rate and SGD's
# momentum at every step:

# %%
opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2, momentum=0.9, nesterov=True)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=1000, pct_start=0.25)
lrs, moms = [], []
for _ in range(1000):
    lrs.append(opt.param_groups[0]["lr"])
    moms.append(opt.param_groups[0]["momentum"])
    opt.step()
    sched.step()
fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
ax[0].plot(lrs)
ax[0].set(xlabel="step", ylabel="learning rate", title="learning rate")
ax[1].plot(moms, color="tab:orange")
ax[1].set(xlabel="step", ylabel="momentum", title="momentum")
plt.show()
print(f"start {lrs[0]:.4f} = max/25, peak {max(lrs):.3f} at step {lrs.index(max(lrs))}, end {lrs[-1]:.2e} = max/250,000")

# %% [markdown]
# ### Try it: one cycle from its formula (⏱ ~10 min)
#
# Write `one_cycle_lr(t, total_steps, max_lr, pct_start=0.25)`, the learning rate of step $t$
# (counted from 0) from the formula in *Theory*. The check compares it with `OneCycleLR` at every
# step of the 1,000-step schedule plotted above, and of a short one (100 steps, peak 1.0,
# `pct_start=0.3`).
#
# <details><summary>Hint</summary>
#
# The peak is at step $w = $ `pct_start * total_steps - 1` (step 249 above); before it the ramp goes
# from `max_lr / 25` up, after it from `max_lr` down to `max_lr / 25 / 1e4`.
#
# </details>

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution: replace this cell with your own code, then run the check below.
def one_cycle_lr(t, total_steps, max_lr, pct_start=0.25):
    start, end = max_lr / 25, max_lr / 25 / 1e4
    warm = pct_start * total_steps - 1  # the step of the peak

    def ramp(a, b, p):  # cosine from a (p = 0) to b (p = 1)
        return b + (a - b) / 2 * (1 + math.cos(math.pi * p))

    if t <= warm:
        return ramp(start, max_lr, t / warm)
    return ramp(max_lr, end, (t - warm) / (total_steps - 1 - warm))


# %% tags=["check"]
def torch_one_cycle(total_steps, max_lr, pct_start):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=pct_start)
    out = []
    for _ in range(total_steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


for total, peak, pct, reference in ((1000, 0.2, 0.25, lrs), (100, 1.0, 0.3, torch_one_cycle(100, 1.0, 0.3))):
    mine = [one_cycle_lr(t, total, peak, pct) for t in range(total)]
    torch.testing.assert_close(torch.tensor(mine, dtype=torch.float64), torch.tensor(reference, dtype=torch.float64),
                               rtol=1e-9, atol=0)
print("✓ your one-cycle schedule is OneCycleLR's at every step of both runs")

# %% [markdown]
# ## One-cycle training
#
# The small fast ResNet with batch norm, trained with `labnorm.train.fit`: one-cycle SGD
# (Nesterov), label smoothing 0.2 ([glossary](https://labnorm.github.io/labnorm/glossary/#label-smoothing):
# the targets give 20% of their weight to a uniform guess), the data kept on the device and augmented
# there (random crop and flip). Like the range test, `smoke` runs live and `cpu`/`gpu` load the saved run.

# %%
oc_exp = experiments.get("one_cycle_fast_resnet")
print(oc_exp.config(SCALE))
one_cycle = experiments.load_or_run("one_cycle_fast_resnet", SCALE)
print(f"{one_cycle['source']} record")
oc_exp.report(one_cycle).show()

# %% [markdown]
# ## Reference results
#
# The largest saved record of each experiment (shown again only when it is larger than the
# current scale), written by `python -m labnorm run NAME --scale cpu --seeds 3`: means over
# seeds ± the half-width of their 95% intervals, verdicts from paired differences over seeds.

# %%
for exp in (lr_exp, oc_exp):
    ref = experiments.reference(exp.name)
    if ref is None:
        print(f"{exp.name}: no saved run (set LABNORM_RESULTS to the repository's results/ folder)")
    elif ref["scale"] == SCALE:
        print(f"{exp.name}: the reference is the record shown above")
    else:
        exp.report(ref).show()

# %% [markdown]
# ## What we found
#
# * **Reading a range test.** A healthy curve is flat while the learning rate is tiny, falls
#   steeply over a decade or two and turns up past its lowest point; the steepest-descent point
#   sits below the lowest loss, a usual place to start a one-cycle peak search, and below the
#   source's pick (the largest rate before the loss starts increasing). On a short, noisy
#   curve the steepest-descent heuristic can land on the way down from a spike, after the loss has
#   already blown up — which is why `suggest()` documents itself as a starting point and the plot
#   should always be read.
# * **Normalization and the usable learning rate.** The verdicts above judge "BN (or GN) reaches
#   its lowest loss at a larger learning rate than no normalization" from the paired difference
#   of $\log_{10}$ learning rates over the saved seeds; with one seed they are *inconclusive*.
#   Read each verdict beside the "lowest smoothed loss" column: an arm whose lowest loss stays within
#   0.05 of $\ln 10 \approx 2.303$ — the loss of a uniform guess over ten classes — never started
#   learning within the test, so the learning rate of its "lowest point" is where noise happened to
#   dip. A comparison with such an arm is printed *not testable here*, never supported or
#   contradicted (`labnorm.experiments.claims`): in the saved `cpu` record the network without
#   normalization never leaves 2.30, and GN's lowest loss (2.33) stays above it.
# * **Where the peak learning rates in this project come from.** The experiments of notebooks
#   01–08 use fixed peak learning rates stated in their configs (e.g. 0.1 at batch 64, scaled
#   linearly with the batch, or fastai's default 3e-3 with Adam) — not a range test per run.
# * **Scale.** These runs are small (a narrow ResNet-18 for a short range test on the CPU; the
#   one-cycle run is a narrow fast ResNet for a few epochs on a subset of the JPEG copy of
#   CIFAR-10; the sizes are printed with each config), and the one-cycle run's accuracy, in its
#   table, is far from what the fast ResNet reaches on the full data. The `gpu` scale trains the
#   full-width networks on the full data.

# %% [markdown]
# ## Exercises
#
# Further questions, each a few seconds of CPU on the tiny problem of *The problem*:
#
# 1. Rerun its range test with `step_mode="linear"` and `end_lr=100`. Why does the linear schedule
#    spend almost all its steps at learning rates where the exponential one has already diverged?
# 2. Set `smooth_f=0`, and change the seed in `tiny_net` (the initial weights). How much does the
#    steepest-descent suggestion move between two seeds? And with the default smoothing?
# 3. Train the tiny network with `OneCycleLR` (peak at the suggestion, then at ten times it) instead of
#    a constant rate. Does the warm-up rescue the peak that diverged at a constant rate?

# %% [markdown]
# ## Running this notebook at other scales
#
# `LABNORM_SCALE` picks the size of the experiments: `smoke` (the quick check CI runs), `cpu` (the
# default; its saved records are loaded) and `gpu` (one seed at the full, paper-sized configuration).
# **On Colab**: choose a GPU runtime (Runtime → Change runtime type), add a first cell
# `%env LABNORM_SCALE=gpu` before the imports, and run all.
# Projected cost on a T4-class GPU, one seed: `lr_range_test_resnet18` about **2 min**; `one_cycle_fast_resnet` about **13 min**. These figures are projected, not
# measured: a CPU dry run's time per image divided by 100, and at least 5 ms per training step
# (small batches are bound by kernel launches); a T4 also lacks the bf16 tensor cores that
# labnorm's training loop uses on CUDA. To measure on your own GPU first, run
# `!python -m labnorm run lr_range_test_resnet18 --scale gpu --dry-run`: it takes 2 training steps and 1 evaluation
# batch of every arm and prints the step times, the projected full run and the peak memory.
