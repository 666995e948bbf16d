"""labnorm.landscape: filter-normalized directions, slices and surfaces, Santurkar's smoothness measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from labnorm import landscape as ls
from labnorm.models import build_model
from labnorm.train.fit import fit

NORMS = ["none", "bn", "gn", "ws+gn", "wn", "sn"]


def tiny(norm: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("small_cnn", norm, width=8).double()


def batches(n: int = 2, size: int = 8, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 16, 16, generator=g, dtype=torch.float64), torch.randint(0, 10, (size,), generator=g))
            for _ in range(n)]


def filter_rows(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.reshape(len(t), -1), dim=1)


@pytest.mark.parametrize("norm", NORMS)
def test_every_filter_has_the_norm_of_the_weight_filter(norm):
    model = tiny(norm)
    d = ls.filter_normalized_direction(model, seed=3)
    params = dict(model.named_parameters())
    assert d.keys() == params.keys()
    filters = ls.filter_weights(model)
    assert len(filters) == 4  # three convs + the linear head
    for name, p in params.items():
        if name in filters:
            torch.testing.assert_close(filter_rows(d[name]), filter_rows(p.detach()), rtol=1e-12, atol=0)
            # Not the weight itself: a random direction, only its filter norms are matched
            assert not torch.allclose(d[name], p.detach())
        else:
            assert torch.count_nonzero(d[name]) == 0, name


def test_vectors_include_moves_each_element_by_its_own_size():
    model = tiny("bn")
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "bias") and isinstance(m.bias, nn.Parameter):
                m.bias.normal_()
    d = ls.filter_normalized_direction(model, seed=0, vectors="include")
    for name, p in model.named_parameters():
        if name not in ls.filter_weights(model):
            torch.testing.assert_close(d[name].abs(), p.detach().abs(), rtol=0, atol=0)
    # The signs are random, not copies of the parameter's
    assert any((torch.sign(d[n]) != torch.sign(p)).any() for n, p in model.named_parameters() if p.dim() == 1)


def test_weight_norm_g_is_a_norm_parameter_and_v_is_filtered():
    model = tiny("wn")
    d = ls.filter_normalized_direction(model, seed=0)
    assert sum(n.endswith("original1") for n in ls.filter_weights(model)) == 3
    g = next(n for n in d if n.endswith("original0"))
    v = next(n for n in d if n.endswith("original1"))
    assert torch.count_nonzero(d[g]) == 0
    torch.testing.assert_close(filter_rows(d[v]), filter_rows(dict(model.named_parameters())[v].detach()))


def test_switch_norm_scale_is_not_a_filter():
    # SwitchNorm2d keeps gamma as [1, C, 1, 1]: a norm parameter whatever its shape
    model = tiny("sn")
    assert not any(n.endswith(("1.weight", "mean_weight", "var_weight")) for n in ls.filter_weights(model))


def test_fan_in_one_and_zero_filters():
    lin = nn.Linear(1, 4).double()  # fan-in 1: filters of one element, moved by their own size
    d = ls.filter_normalized_direction(lin, 0)["weight"]
    torch.testing.assert_close(d.abs(), lin.weight.detach().abs(), rtol=1e-12, atol=0)
    conv = nn.Conv2d(2, 3, 3).double()
    with torch.no_grad():
        conv.weight[1] = 0
    d = ls.filter_normalized_direction(conv, 0)
    assert torch.all(d["weight"][1] == 0) and torch.isfinite(d["weight"]).all()


def test_directions_are_reproducible_by_seed():
    model = tiny("gn")
    a, b = ls.filter_normalized_direction(model, 7), ls.filter_normalized_direction(model, 7)
    c = ls.filter_normalized_direction(model, 8)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a if n in ls.filter_weights(model))
    # The draws do not depend on the global RNG
    torch.manual_seed(123)
    assert all(torch.equal(a[n], ls.filter_normalized_direction(model, 7)[n]) for n in a)
    # Same draws whatever the model's dtype
    single = ls.filter_normalized_direction(tiny("gn").float(), 7)
    assert all(torch.allclose(single[n].double(), a[n], rtol=1e-6, atol=1e-7) for n in a)


def _least_squares(seed: int = 0):
    """A converged convex problem: linear regression solved exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, 2, generator=g, dtype=torch.float64) + 0.3 * torch.randn(64, 2, generator=g, dtype=torch.float64)
    model = nn.Linear(5, 2).double()
    design = torch.cat([x, torch.ones(64, 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(design, y).solution
    with torch.no_grad():
        model.weight.copy_(sol[:5].T)
        model.bias.copy_(sol[5])
    return model, [(x[:32], y[:32]), (x[32:], y[32:])]


def test_slice_through_a_converged_convex_problem_has_its_minimum_at_zero():
    model, data = _least_squares()
    alphas = np.linspace(-1, 1, 21)
    for seed in range(3):
        d = ls.filter_normalized_direction(model, seed, vectors="include")
        out = ls.loss_along_direction(model, data, d, alphas, loss_fn=nn.functional.mse_loss)
        assert alphas[np.argmin(out["loss"])] == 0.0
        # A quadratic: symmetric about the minimum
        np.testing.assert_allclose(out["loss"], out["loss"][::-1], rtol=1e-10)
        assert np.isnan(out["acc"]).all()  # regression: no accuracy
    d2 = ls.filter_normalized_direction(model, 10, vectors="include")
    grid = np.linspace(-1, 1, 5)
    surf = ls.loss_surface(model, data, d, d2, grid, grid, loss_fn=nn.functional.mse_loss)
    assert np.unravel_index(np.argmin(surf["loss"]), surf["loss"].shape) == (2, 2)


def test_slice_through_an_unconverged_problem_does_not():
    # The property above can fail: moving the solution moves the minimum off 0
    model, data = _least_squares()
    d = ls.filter_normalized_direction(model, 0, vectors="include")
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.add_(0.5 * d[n])
    out = ls.loss_along_direction(model, data, d, np.linspace(-1, 1, 21), loss_fn=nn.functional.mse_loss)
    assert np.argmin(out["loss"]) == 5  # alpha = -0.5


@pytest.mark.parametrize("norm", ["bn", "sn"])
def test_batch_mode_is_the_train_loss_and_leaves_the_model_alone(norm):
    model = tiny(norm)
    data = batches()
    model(data[0][0])  # some running statistics
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    d = ls.filter_normalized_direction(model, 0)
    out = ls.loss_along_direction(model, data, d, [0.0, 0.5], bn="batch")
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    # At alpha = 0 the batch-mode loss is the train-mode loss of a copy
    copy = tiny(norm)
    copy.load_state_dict(state)
    copy.train()
    with torch.no_grad():
        want = sum(nn.functional.cross_entropy(copy(x), y).item() * len(y) for x, y in data) / 16
    assert out["loss"][0] == pytest.approx(want, rel=1e-12)
    # Running mode at alpha = 0 is the eval-mode loss
    run = ls.loss_along_direction(model, data, d, [0.0], bn="running")
    with torch.no_grad():
        model.eval()
        want = sum(nn.functional.cross_entropy(model(x), y).item() * len(y) for x, y in data) / 16
    assert run["loss"][0] == pytest.approx(want, rel=1e-12)
    assert run["loss"][0] != pytest.approx(out["loss"][0], rel=1e-6)


def test_group_norm_loss_is_the_same_in_both_modes():
    model = tiny("gn")
    d = ls.filter_normalized_direction(model, 0)
    a = ls.loss_along_direction(model, batches(), d, [-0.5, 0.0, 0.5], bn="batch")
    b = ls.loss_along_direction(model, batches(), d, [-0.5, 0.0, 0.5], bn="running")
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-12)


def test_direction_moves_the_weight_norm_parameters():
    model = tiny("wn")
    d = ls.filter_normalized_direction(model, 0)
    out = ls.loss_along_direction(model, batches(), d, [0.0, 1.0])
    assert out["loss"][0] != pytest.approx(out["loss"][1], rel=1e-3)
    # The same point computed by writing theta + d into a copy
    copy = tiny("wn")
    with torch.no_grad():
        for n, p in copy.named_parameters():
            p.add_(d[n])
        want = sum(nn.functional.cross_entropy(copy(x), y).item() * len(y) for x, y in batches()) / 16
    assert out["loss"][1] == pytest.approx(want, rel=1e-12)


def test_one_parameter_slice():
    model = tiny("bn")
    data = batches()
    name = "features.2.0.weight"
    p = dict(model.named_parameters())[name]
    index = (1, 0, 1, 1)
    original = p[index].item()
    out = ls.loss_along_parameter(model, data, name, index, [original, original + 1.0])
    base = ls.loss_along_direction(model, data, {}, [0.0])
    assert out["loss"][0] == pytest.approx(base["loss"][0], rel=1e-12)
    assert out["loss"][1] != pytest.approx(out["loss"][0], rel=1e-6)
    assert out["original"] == original and p[index].item() == original
    with pytest.raises(ValueError, match="no parameter"):
        ls.loss_along_parameter(model, data, "nope", index, [0.0])
    with pytest.raises(ValueError, match="not inside"):
        ls.loss_along_parameter(model, data, name, (99, 0, 0, 0), [0.0])


@pytest.mark.parametrize("bn", ["batch", "running"])
def test_interpolation_ends_are_the_two_models(bn):
    a, b = tiny("bn", 0), tiny("bn", 1)
    data = batches()
    b(data[0][0])  # b has other running statistics than a
    out = ls.loss_interpolation(a, b, data, [0.0, 1.0], bn=bn)
    for model, value in ((a, out["loss"][0]), (b, out["loss"][1])):
        assert value == pytest.approx(ls.loss_along_direction(model, data, {}, [0.0], bn=bn)["loss"][0], rel=1e-12)
    with pytest.raises(ValueError, match="different parameters"):
        ls.loss_interpolation(a, tiny("wn"), data, [0.0])
    with pytest.raises(ValueError, match="different buffers"):
        ls.loss_interpolation(a, tiny("gn"), data, [0.0])


def test_bad_input_is_named():
    model = tiny("bn")
    d = ls.filter_normalized_direction(model, 0)
    with pytest.raises(ValueError, match="bn must be one of"):
        ls.loss_along_direction(model, batches(), d, [0.0], bn="eval")
    with pytest.raises(ValueError, match="batches is empty"):
        ls.loss_along_direction(model, [], d, [0.0])
    with pytest.raises(ValueError, match="not parameters of the model"):
        ls.loss_along_direction(model, batches(), {"x.weight": torch.zeros(1)}, [0.0])
    with pytest.raises(ValueError, match="shape"):
        ls.loss_along_direction(model, batches(), {"head.weight": torch.zeros(3)}, [0.0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        ls.loss_along_direction(model, batches(), d, [])
    with pytest.raises(ValueError, match="vectors must be"):
        ls.filter_normalized_direction(model, 0, vectors="copy")
    with pytest.raises(ValueError, match="positive"):
        ls.gradient_smoothness(model, batches()[0], [0.1, 0.0])


# torch.func.hessian's vmap scripts a helper inside torch, which warns on torch 2.13; not our code
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_smoothness_on_a_quadratic_is_exact():
    r"""For $L = \lVert X\theta - y\rVert^2/n$ the gradient changes by $\eta H g$ exactly:
    $\beta = \lVert Hg\rVert/\lVert g\rVert$ at every step size and the loss follows the parabola."""
    model, data = _least_squares()
    with torch.no_grad():
        model.weight.add_(0.3)  # away from the minimum
    x, y = torch.cat([d[0] for d in data]), torch.cat([d[1] for d in data])
    out = ls.gradient_smoothness(model, (x, y), [0.01, 0.1, 0.5], loss_fn=nn.functional.mse_loss)
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(theta):
        w, b = theta[:10].reshape(2, 5), theta[10:]
        return nn.functional.mse_loss(x @ w.T + b, y)

    g = torch.func.grad(loss_of)(flat)
    hess = torch.func.hessian(loss_of)(flat)
    assert out["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-12)
    assert out["beta"] == pytest.approx((hess @ g).norm().item() / g.norm().item(), rel=1e-10)
    for eta, loss, change in zip(out["step_sizes"], out["losses"], out["grad_change"]):
        assert loss == pytest.approx(loss_of(flat - eta * g).item(), rel=1e-12)
        assert change == pytest.approx(eta * (hess @ g).norm().item(), rel=1e-10)


@pytest.mark.parametrize("norm", NORMS)
def test_smoothness_leaves_the_model_and_its_gradients_alone(norm):
    model = tiny(norm)
    x, y = batches(1, 8)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = ls.gradient_smoothness(model, (x, y), [0.05, 0.2])
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert len(out["losses"]) == len(out["grad_change"]) == 2 and math.isfinite(out["beta"]) and out["beta"] > 0
    # The measured loss at theta is this batch's train-mode loss, and its gradient the one autograd gave
    assert out["grad_norm"] == pytest.approx(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads.values()])).item(),
                                            rel=1e-10)


def test_fit_calls_on_step_between_backward_and_step():
    from labnorm.data import DeviceBatches

    class Split:
        images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
        labels = torch.randint(0, 10, (32,))

    torch.manual_seed(0)
    model = build_model("small_cnn", "gn", width=8)
    seen = []

    def on_step(m, x, y, step):
        seen.append((step, all(p.grad is not None for p in m.parameters()), len(x)))

    fit(model, DeviceBatches(Split(), 8, train=True), epochs=2, lr=0.01, on_step=on_step, progress=False)
    assert [s for s, _, _ in seen] == list(range(8)) and all(ok for _, ok, _ in seen)


def test_npz_round_trip(tmp_path):
    model = tiny("gn")
    d1, d2 = ls.filter_normalized_direction(model, 1), ls.filter_normalized_direction(model, 2)
    surf = ls.loss_surface(model, batches(1), d1, d2, [-1.0, 0.0, 1.0], [-0.5, 0.5])
    assert surf["loss"].shape == (2, 3)
    path = ls.save_npz(tmp_path / "s.npz", surf, norm="gn", seeds=[1, 2], bn="batch")
    arrays, meta = ls.load_npz(path)
    assert meta == {"norm": "gn", "seeds": [1, 2], "bn": "batch"}
    for k in surf:
        np.testing.assert_array_equal(arrays[k], surf[k])
    with pytest.raises(ValueError, match="reserved"):
        ls.save_npz(tmp_path / "t.npz", {"meta": np.zeros(1)})
