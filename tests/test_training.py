"""Training toolkit: models × norms, fit() with one-cycle and resume, the LR range test."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labnorm
from labnorm.data import CIFAR10Split, DeviceBatches
from labnorm.models import MODELS, build_model
from labnorm.norms import available_norms, make_conv
from labnorm.train.fit import fit
from labnorm.train.lr_finder import LRFinder

THIN = {"small_cnn": {"width": 8}}


def _toy_split(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return CIFAR10Split(
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (n,), generator=g), "train", "toy",
    )


@pytest.mark.parametrize("norm", ["none", "bn", "gn", "torch-bn", "torch-gn"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_and_norm_builds_and_trains_one_step(name, norm):
    torch.manual_seed(0)
    model = build_model(name, norm, **THIN.get(name, {"width": 0.125}))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_published_sizes():
    # Parameter counts of the full-width models: ResNet-18 for CIFAR has 11.17M.
    assert sum(p.numel() for p in build_model("resnet18").parameters()) == 11_173_962
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet1000")


def test_make_conv_pairs_conv_with_norm():
    conv = make_conv("bn", 3, 8)
    assert isinstance(conv, nn.Conv2d) and conv.bias is None and conv.padding == (1, 1)
    assert make_conv("none", 3, 8).bias is not None
    assert set(available_norms()) >= {"none", "bn", "gn"}


def _fit(tmp_path=None, epochs=3, resume=False, train=None, seed=0, init_seed=0):
    torch.manual_seed(init_seed)
    model = build_model("small_cnn", "bn", width=8)
    train = train or DeviceBatches(_toy_split(), 16, train=True, seed=seed)
    hist = fit(model, train, DeviceBatches(_toy_split(32, 1), 16, train=False), epochs=epochs, lr=0.05,
               checkpoint=None if tmp_path is None else tmp_path / "ckpt.pt", resume=resume)
    return model, hist


def test_fit_history_and_one_cycle_schedule():
    _, hist = _fit()
    steps = 3 * 4
    assert len(hist["step_loss"]) == len(hist["lr"]) == steps
    # One cycle: up to max_lr, then down to far below it
    peak = max(hist["lr"])
    assert math.isclose(peak, 0.05, rel_tol=0.05) and hist["lr"][-1] < peak / 100 and hist["lr"][0] < peak / 10
    assert [e["epoch"] for e in hist["epochs"]] == [1, 2, 3]
    for e in hist["epochs"]:
        assert {"train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_s"} <= set(e)
    assert hist["diverged_at_step"] is None


class _Interrupt(Exception):
    pass


class _Breaking:
    """A loader that raises in the middle of epoch `at` (0-based), like a killed run."""

    def __init__(self, inner, at):
        self.inner, self.at, self.epoch = inner, at, 0

    def __len__(self):
        return len(self.inner)

    def set_epoch(self, e):
        self.epoch = e
        self.inner.set_epoch(e)

    def __iter__(self):
        for i, batch in enumerate(self.inner):
            if self.epoch == self.at and i == 2:
                raise _Interrupt
            yield batch


def test_interrupted_run_resumes_to_bitwise_identical_weights(tmp_path):
    straight, hist_a = _fit(epochs=3)
    inner = DeviceBatches(_toy_split(), 16, train=True, seed=0)
    with pytest.raises(_Interrupt):
        _fit(tmp_path, epochs=3, train=_Breaking(inner, at=2))
    assert (tmp_path / "ckpt.pt").is_file()
    # A fresh process: a new model with other initial weights, a new loader (same config).
    resumed, hist_b = _fit(tmp_path, epochs=3, resume=True, init_seed=123)
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert hist_a["step_loss"] == hist_b["step_loss"]


def test_divergence_is_recorded():
    torch.manual_seed(0)
    model = build_model("small_cnn", "none", width=8)
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    hist = fit(model, DeviceBatches(_toy_split(), 16, train=True), epochs=2, lr=0.1, check_every=1)
    assert hist["diverged_at_step"] == 0 and len(hist["epochs"]) == 1


# ---------------------------------------------------------------------- LR range test


def _lr_setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(160, 3, 8, 8, generator=g), torch.randint(0, 10, (160,), generator=g))
    return model, opt, DataLoader(data, batch_size=16, shuffle=False)


@pytest.mark.parametrize("step_mode, end_lr, num_iter", [("exp", 10.0, 30), ("linear", 1.0, 25), ("exp", 100.0, 60)])
def test_lr_finder_curve_equals_torch_lr_finder(step_mode, end_lr, num_iter):
    torch_lr_finder = pytest.importorskip("torch_lr_finder")
    model, opt, loader = _lr_setup()
    ref = torch_lr_finder.LRFinder(model, opt, nn.CrossEntropyLoss(), device="cpu")
    ref.range_test(loader, start_lr=1e-4, end_lr=end_lr, num_iter=num_iter, step_mode=step_mode)
    ref.reset()
    ours = LRFinder(*_lr_setup()[:2], nn.CrossEntropyLoss(), device="cpu")
    ours.range_test(loader, start_lr=1e-4, end_lr=end_lr, num_iter=num_iter, step_mode=step_mode)
    assert len(ours.history["lr"]) == len(ref.history["lr"])
    assert ours.history["lr"] == pytest.approx(ref.history["lr"], rel=1e-12)
    assert ours.history["loss"] == pytest.approx(ref.history["loss"], rel=1e-6)


def test_lr_finder_restores_model_optimizer_and_rng():
    model, opt, loader = _lr_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_lr = opt.param_groups[0]["lr"]
    torch.manual_seed(42)
    rng = torch.get_rng_state()
    finder = LRFinder(model, opt, nn.CrossEntropyLoss())
    hist = finder.range_test(loader, start_lr=1e-5, end_lr=1e3, num_iter=100)
    assert len(hist["lr"]) < 100, "expected the test to stop on divergence"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert opt.param_groups[0]["lr"] == opt_lr and not opt.state
    assert torch.equal(torch.get_rng_state(), rng)


def test_lr_finder_restores_state_after_an_exception():
    model, opt, loader = _lr_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def exploding(batches=iter(loader)):
        for i, b in enumerate(batches):
            if i == 5:
                raise RuntimeError("data went away")
            yield b

    with pytest.raises(RuntimeError, match="data went away"):
        LRFinder(model, opt, nn.CrossEntropyLoss()).range_test(exploding(), num_iter=20)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_lr_finder_suggest_finds_the_steepest_descent_and_ignores_nan():
    finder = LRFinder(nn.Linear(1, 1), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1), nn.MSELoss())
    lrs = [10 ** (-5 + 0.1 * i) for i in range(60)]
    # Flat, then steepest around 1e-3, then up; a NaN at the end
    finder.history = {"lr": lrs, "loss": [2 - math.tanh((math.log10(lr) + 3) * 2) for lr in lrs[:-1]] + [float("nan")]}
    assert finder.suggest(skip_start=0, skip_end=0) == pytest.approx(1e-3, rel=0.3)
    with pytest.raises(ValueError, match="step_mode"):
        finder.range_test([], step_mode="cosine")


def test_before_eval_runs_once_per_epoch_before_the_test_evaluation():
    from labnorm.switch_norm import finalize_batch_average

    torch.manual_seed(0)
    model = build_model("small_cnn", "sn-ba", width=8)
    train = DeviceBatches(_toy_split(), 16, train=True, seed=0)
    calls = []

    def before_eval(m):
        calls.append(m.training)
        finalize_batch_average(m, DeviceBatches(_toy_split(), 16, train=False), 2)

    hist = fit(model, train, DeviceBatches(_toy_split(32, 1), 16, train=False), epochs=2, lr=0.05,
               before_eval=before_eval)
    assert calls == [True, True] and all("test_acc" in e for e in hist["epochs"])
    sn = next(m for m in model.modules() if isinstance(m, labnorm.SwitchNorm2d))
    assert not torch.equal(sn.running_var, torch.ones_like(sn.running_var))  # finalized, not the initial 1
