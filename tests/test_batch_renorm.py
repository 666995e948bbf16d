"""Batch Renormalization against Algorithm 1 of the paper (float64) and against torch BN at r_max=1,
d_max=0; running statistics, the warm-up schedule, edge cases, bf16, compile."""

import copy

import pytest
import torch
from torch import nn

from labnorm import BatchRenorm2d, renorm_limits, set_renorm_limits


# Ioffe 2017, Algorithm 1, written out independently of labnorm's code. mu, var: moving statistics
# (labnorm's convention: sigma = sqrt(running_var + eps), running_var updated with the unbiased variance).
def brn_formula(x, gamma, beta, mu, var, eps, r_max, d_max, momentum):
    m = x.numel() // x.shape[1]
    mu_b = x.mean(dim=(0, 2, 3), keepdim=True)
    sigma_b = torch.sqrt(torch.var(x, dim=(0, 2, 3), unbiased=False, keepdim=True) + eps)
    sigma = torch.sqrt(var.view(1, -1, 1, 1) + eps)
    r = torch.clamp(sigma_b / sigma, 1 / r_max, r_max).detach()
    d = torch.clamp((mu_b - mu.view(1, -1, 1, 1)) / sigma, -d_max, d_max).detach()
    x_hat = (x - mu_b) / sigma_b * r + d
    y = gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)
    new_mu = (1 - momentum) * mu + momentum * mu_b.detach().flatten()
    new_var = (1 - momentum) * var + momentum * torch.var(x.detach(), dim=(0, 2, 3), unbiased=True)
    return y, new_mu, new_var, r, d


def _setup(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = BatchRenorm2d(c, momentum=0.2, r_max=1.5, d_max=0.5).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(c, generator=g, dtype=torch.float64) * 0.5 + 1)
        layer.bias.copy_(torch.randn(c, generator=g, dtype=torch.float64))
        layer.running_mean.copy_(torch.randn(c, generator=g, dtype=torch.float64) * 0.5)
        layer.running_var.copy_(torch.rand(c, generator=g, dtype=torch.float64) * 3 + 0.2)
    return layer


def test_equals_algorithm_1_in_training_and_eval():
    torch.manual_seed(0)
    layer = _setup(6)
    mu, var = layer.running_mean.clone(), layer.running_var.clone()
    clipped_r = clipped_d = False
    for step in range(3):
        x = (torch.randn(4, 6, 5, 5, dtype=torch.float64) * (1 + step) + step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        w, b = (p.detach().clone().requires_grad_() for p in (layer.weight, layer.bias))
        y = layer(x)
        y_ref, mu, var, r, d = brn_formula(x_ref, w, b, mu, var, 1e-5, 1.5, 0.5, 0.2)
        clipped_r |= bool(((r == 1.5) | (r == 1 / 1.5)).any())
        clipped_d |= bool((d.abs() == 0.5).any())
        assert (y - y_ref).abs().max() <= 1e-12
        assert (layer.running_mean - mu).abs().max() <= 1e-13
        assert (layer.running_var - var).abs().max() <= 1e-13
        g = torch.randn_like(y)
        y.backward(g)
        y_ref.backward(g)
        assert (x.grad - x_ref.grad).abs().max() <= 1e-10
        assert (layer.weight.grad - w.grad).abs().max() <= 1e-10
        assert (layer.bias.grad - b.grad).abs().max() <= 1e-10
        layer.weight.grad = layer.bias.grad = None
    assert clipped_r and clipped_d  # the clips were exercised
    assert int(layer.num_batches_tracked) == 3
    # eval: (x - mu) / sigma with the moving statistics
    layer.eval()
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    expected = (x - mu.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
    expected = expected * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)
    assert (layer(x) - expected).abs().max() <= 1e-12


def test_is_batch_norm_in_training_with_r_max_1_and_d_max_0():
    torch.manual_seed(1)
    brn = BatchRenorm2d(5, momentum=0.1, r_max=1.0, d_max=0.0).double()
    bn = nn.BatchNorm2d(5, momentum=0.1).double()
    with torch.no_grad():
        for p in (brn.weight, brn.bias):
            p.copy_(torch.randn(5))
        bn.weight.copy_(brn.weight), bn.bias.copy_(brn.bias)
    for _ in range(3):
        x = (torch.randn(3, 5, 4, 4, dtype=torch.float64) * 2 + 1).requires_grad_()
        x_bn = x.detach().clone().requires_grad_()
        y, y_bn = brn(x), bn(x_bn)
        assert (y - y_bn).abs().max() <= 1e-12
        g = torch.randn_like(y)
        y.backward(g)
        y_bn.backward(g)
        assert (x.grad - x_bn.grad).abs().max() <= 1e-10
        for a, b in ((brn.weight, bn.weight), (brn.bias, bn.bias)):
            assert (a.grad - b.grad).abs().max() <= 1e-10
        # Running statistics: the same update as torch BN (unbiased variance), so they stay equal
        assert (brn.running_mean - bn.running_mean).abs().max() <= 1e-14
        assert (brn.running_var - bn.running_var).abs().max() <= 1e-14
    # ... and so does eval; a BN checkpoint loads as it is (same keys)
    assert list(brn.state_dict()) == list(bn.state_dict())
    brn.eval(), bn.eval()
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    assert (brn(x) - bn(x)).abs().max() <= 1e-12
    fresh = BatchRenorm2d(5).double().eval()
    fresh.load_state_dict(bn.state_dict())
    assert (fresh(x) - bn(x)).abs().max() <= 1e-12


def test_warmup_schedule():
    assert renorm_limits(0) == (1.0, 0.0) and renorm_limits(4999) == (1.0, 0.0)
    assert renorm_limits(5000 + 17500) == (2.0, 4.375)  # halfway to 40k; 7/8 of the way to 25k
    assert renorm_limits(25000) == (1 + 2 * 20 / 35, 5.0)
    assert renorm_limits(40000) == (3.0, 5.0) == renorm_limits(10 ** 6)
    assert renorm_limits(10, warmup_steps=0, r_max_step=0, d_max_step=0) == (3.0, 5.0)
    model = nn.Sequential(BatchRenorm2d(3), nn.Conv2d(3, 3, 1), BatchRenorm2d(3))
    set_renorm_limits(model, *renorm_limits(22500))
    assert all(m.r_max.item() == 2.0 and m.d_max.item() == 4.375 for m in (model[0], model[2]))
    with pytest.raises(ValueError, match="BatchRenorm2d: expected r_max >= 1 and d_max >= 0"):
        BatchRenorm2d(3, r_max=0.5)
    # the limits are not in the state dict: its keys stay BN's
    assert "r_max" not in model[0].state_dict()


def test_bad_input():
    layer = BatchRenorm2d(4)
    with pytest.raises(ValueError, match="BatchRenorm2d: expected a 4-D input"):
        layer(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="BatchRenorm2d: expected 4 channels.*got 3"):
        layer(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match="BatchRenorm2d: expected more than 1 value per channel when training"):
        layer(torch.randn(1, 4, 1, 1))
    with pytest.raises(ValueError, match="(?i)expected more than 1 value per channel"):  # torch's answer too
        nn.BatchNorm2d(4)(torch.randn(1, 4, 1, 1))
    assert torch.isfinite(layer(torch.randn(1, 4, 3, 3))).all()  # one image, 9 positions: allowed
    layer.eval()
    assert torch.isfinite(layer(torch.randn(1, 4, 1, 1))).all()


def test_all_zero_input_is_finite():
    layer = BatchRenorm2d(3)
    x = torch.zeros(2, 3, 4, 4, requires_grad=True)
    y = layer(x)
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_float32_large_mean_small_std():
    torch.manual_seed(2)
    x = torch.randn(4, 4, 8, 8) * 0.01 + 100
    a, b = BatchRenorm2d(4), BatchRenorm2d(4).double()
    y32, y64 = a(x), b(x.double())
    assert (y32.double() - y64).abs().max() < 1e-4
    assert torch.allclose(a.running_mean.double(), b.running_mean, rtol=1e-6)
    assert torch.allclose(a.running_var.double(), b.running_var, rtol=1e-3)
    # with running stats far from the batch, r and d sit at their clips: x_hat = z / 3 + 5
    z = (x.double() - x.double().mean((0, 2, 3), keepdim=True)) / torch.sqrt(
        x.double().var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    assert (y64 - (z / 3 + 5)).abs().max() < 1e-10


def test_bf16():
    torch.manual_seed(3)
    conv, layer, ref_layer = nn.Conv2d(3, 4, 3), BatchRenorm2d(4), BatchRenorm2d(4)
    x = torch.randn(4, 3, 8, 8)
    ref = ref_layer(conv(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(conv(x))
    assert y.dtype == torch.bfloat16 and layer.running_var.dtype == torch.float32
    assert torch.allclose(y.float(), ref, atol=0.05, rtol=0.05)
    assert torch.allclose(layer.running_var, ref_layer.running_var, rtol=0.02)


def test_compile_state_dict_deepcopy():
    torch.manual_seed(4)
    eager, other = _setup(4).float(), BatchRenorm2d(4, momentum=0.2, r_max=1.5, d_max=0.5)
    other.load_state_dict(eager.state_dict())
    compiled = torch.compile(other, backend="aot_eager", fullgraph=True)
    x = torch.randn(3, 4, 5, 5) * 2 + 1
    y_c, y = compiled(x), eager(x)
    assert torch.allclose(y_c, y, atol=1e-6)
    # gamma's gradient needs r and d of the *old* running statistics (see the trap in the module)
    g = torch.randn_like(y)
    y_c.backward(g), y.backward(g)
    assert torch.allclose(other.weight.grad, eager.weight.grad, atol=1e-5)
    assert torch.allclose(other.running_var, eager.running_var) and torch.equal(other.num_batches_tracked,
                                                                                 eager.num_batches_tracked)
    set_renorm_limits(other, 1.0, 0.0), set_renorm_limits(eager, 1.0, 0.0)  # changed limits: same graph
    assert torch.allclose(compiled(x), eager(x), atol=1e-6)
    eager.eval(), other.eval()
    assert torch.allclose(compiled(x), eager(x), atol=1e-6)
    copied = copy.deepcopy(eager)
    assert torch.equal(copied(x), eager(x)) and copied.r_max.item() == 1.0


def test_registry_spec_sets_the_momentum():
    # `brn` keeps the paper's update rate; `brn:M` sets PyTorch's momentum M (a short run's averages need it)
    from labnorm.norms import make_norm

    assert make_norm("brn", 8).momentum == 0.01
    layer = make_norm("brn:0.1", 8).double()
    x = torch.randn(4, 8, 3, 3, dtype=torch.float64) * 2 + 1
    layer(x)
    assert layer.momentum == 0.1
    torch.testing.assert_close(layer.running_mean, 0.1 * x.mean(dim=(0, 2, 3)))


@pytest.mark.parametrize("spec, match", [
    ("brn:2", r"make_norm\('brn:2', 8\): BatchRenorm2d: momentum must be in \[0, 1\]"),
    ("brn:fast", r"make_norm\('brn:fast', 8\): could not convert"),
    ("gn:x", r"make_norm\('gn:x', 8\)"),
    ("bn:0.1", r"make_norm\('bn:0.1', 8\): 'bn' takes no argument"),  # not BN with the argument ignored
    ("ln:4", r"'ln' takes no argument"),
])
def test_a_bad_spec_argument_names_the_spec(spec, match):
    from labnorm.norms import make_norm

    with pytest.raises(ValueError, match=match):
        make_norm(spec, 8)


def test_renorm_schedule_compresses_the_paper_s_warm_up_into_the_run():
    from labnorm import renorm_schedule

    model = nn.Sequential(nn.Conv2d(3, 4, 1), BatchRenorm2d(4))
    handle = renorm_schedule(model, 80)  # milestones 5k, 40k, 25k -> steps 10, 80, 50
    x, seen = torch.randn(4, 3, 2, 2), []
    for _ in range(81):
        model(x)
        seen.append((model[1].r_max.item(), model[1].d_max.item()))
    assert seen[0] == seen[9] == (1.0, 0.0)  # plain BN for the first 1/8
    assert seen[50][1] == pytest.approx(5.0) and seen[50][0] == pytest.approx(1 + 2 * 40 / 70)
    assert seen[80] == (pytest.approx(3.0), pytest.approx(5.0))
    model.eval()
    model(x)  # an eval forward is not a training step
    model.train()
    model(x)
    assert model[1].r_max.item() == pytest.approx(3.0)
    handle.remove()
