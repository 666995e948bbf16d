"""EvoNorm-B0 and -S0 against the paper's formulas (float64, written as literally as torch allows),
the authors' conventions vs timm's, edge cases, bf16, compile."""

import copy

import pytest
import torch

from labnorm import EvoNorm2dB0, EvoNorm2dS0
from labnorm.evonorm import _EvoNormB0Function, _EvoNormS0Function, largest_divisor_at_most
from labnorm.norms import make_norm


# The paper's formulas (Liu et al. 2020, Table 1 / the authors' `evonorm` in tensorflow/tpu), independent of labnorm:
# B0: x / max(sqrt(s2_whc(x) + eps), v1 x + sqrt(s2_wh(x) + eps)) * gamma + beta, s2 biased variances,
#     s2_whc from the moving variance in inference; moving variance <- decay * it + (1 - decay) * s2_whc.
def b0_formula(x, gamma, beta, v, moving_var, eps, training, momentum):
    if training:
        s2_whc = torch.var(x, dim=(0, 2, 3), unbiased=False, keepdim=True)
        new_moving = (1 - momentum) * moving_var + momentum * s2_whc.detach().flatten()
    else:
        s2_whc, new_moving = moving_var.view(1, -1, 1, 1), moving_var
    s2_wh = torch.var(x, dim=(2, 3), unbiased=False, keepdim=True)
    den = torch.max(torch.sqrt(s2_whc + eps), v.view(1, -1, 1, 1) * x + torch.sqrt(s2_wh + eps))
    return x / den * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1), new_moving


# S0: x * sigmoid(v1 x) / sqrt(s2_{w,h,c/g}(x) + eps) * gamma + beta
def s0_formula(x, gamma, beta, v, groups, eps):
    n, c, h, w = x.shape
    s2 = torch.var(x.view(n, groups, c // groups, h, w), dim=(2, 3, 4), unbiased=False, keepdim=True)
    std = torch.sqrt(s2 + eps).expand(n, groups, c // groups, h, w).reshape(n, c, h, w)
    return x * torch.sigmoid(v.view(1, -1, 1, 1) * x) / std * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)


def _randomize(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 + 1)


def _check_grads(y, y_ref, pairs):
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    for a, b in pairs:
        assert (a.grad - b.grad).abs().max() <= 1e-10


@pytest.mark.parametrize("shape", [(4, 6, 5, 5), (2, 3, 1, 1)])
def test_b0_equals_the_paper_formula_in_train_and_eval(shape):
    torch.manual_seed(0)
    c = shape[1]
    layer = EvoNorm2dB0(c, momentum=0.3).double()
    _randomize(layer)
    with torch.no_grad():
        layer.running_var.uniform_(0.5, 2.0)
    moving = layer.running_var.clone()
    for step in range(2):  # two steps: the moving variance feeds back into nothing in training, but accumulates
        x = torch.randn(*shape, dtype=torch.float64) * 1.5 + 0.3
        x.requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        params = [layer.weight, layer.bias, layer.v]
        ref = [p.detach().clone().requires_grad_() for p in params]
        y = layer(x)
        y_ref, moving = b0_formula(x_ref, *ref, moving, 1e-5, True, 0.3)
        assert (y - y_ref).abs().max() <= 1e-12
        assert (layer.running_var - moving).abs().max() <= 1e-14
        _check_grads(y, y_ref, [(x, x_ref)] + list(zip(params, ref)))
        for p in params:
            p.grad = None
    layer.eval()
    before_eval = layer.running_var.clone()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    ref = [p.detach().clone().requires_grad_() for p in (layer.weight, layer.bias, layer.v)]
    y = layer(x)
    y_ref, _ = b0_formula(x_ref, *ref, moving, 1e-5, False, 0.3)
    assert (y - y_ref).abs().max() <= 1e-12
    assert torch.equal(layer.running_var, before_eval)  # eval does not update it
    _check_grads(y, y_ref, [(x, x_ref)] + list(zip((layer.weight, layer.bias, layer.v), ref)))


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_s0_equals_the_paper_formula(groups):
    torch.manual_seed(1)
    layer = EvoNorm2dS0(6, groups=groups).double()
    _randomize(layer, seed=groups)
    x = (torch.randn(3, 6, 4, 5, dtype=torch.float64) + 0.2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    params = [layer.weight, layer.bias, layer.v]
    ref = [p.detach().clone().requires_grad_() for p in params]
    y = layer(x)
    y_ref = s0_formula(x_ref, *ref, groups, 1e-5)
    assert (y - y_ref).abs().max() <= 1e-12
    _check_grads(y, y_ref, [(x, x_ref)] + list(zip(params, ref)))
    layer.eval()
    assert torch.equal(layer(x), y)  # no batch statistics: eval is the same computation


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_s0_closed_form_backward_equals_the_paper_formula(groups):
    # The path torch.compile takes (`_EvoNormS0Function`, backward written out), run eagerly in float64
    torch.manual_seed(2)
    x = (torch.randn(3, 6, 4, 5, dtype=torch.float64) * 1.5 + 0.2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    g = torch.Generator().manual_seed(groups)
    params = [(torch.randn(6, generator=g, dtype=torch.float64) * 0.5 + 1).requires_grad_() for _ in range(3)]
    ref = [p.detach().clone().requires_grad_() for p in params]
    gamma, beta, v = params
    y = _EvoNormS0Function.apply(x, v, gamma, beta, groups, 1e-5)
    y_ref = s0_formula(x_ref, *ref, groups, 1e-5)
    assert (y - y_ref).abs().max() <= 1e-12
    _check_grads(y, y_ref, [(x, x_ref)] + list(zip(params, ref)))
    small = [t.detach()[:, :, :2, :3].clone().requires_grad_() if t.dim() == 4 else t.detach().clone().requires_grad_()
             for t in (x, v, gamma, beta)]
    assert torch.autograd.gradcheck(lambda *a: _EvoNormS0Function.apply(*a, groups, 1e-5), small)


@pytest.mark.parametrize("shape", [(4, 6, 5, 5), (2, 3, 1, 1), (1, 3, 4, 4)])
def test_b0_closed_form_backward_equals_the_paper_formula(shape):
    # The path torch.compile takes in training (`_EvoNormB0Function`), run eagerly in float64
    torch.manual_seed(5)
    c = shape[1]
    x = (torch.randn(*shape, dtype=torch.float64) * 1.5 + 0.3).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    g = torch.Generator().manual_seed(c)
    params = [(torch.randn(c, generator=g, dtype=torch.float64) * 0.5 + 1).requires_grad_() for _ in range(3)]
    ref = [p.detach().clone().requires_grad_() for p in params]
    gamma, beta, v = params
    moving = torch.rand(c, dtype=torch.float64) + 0.5
    y, batch_var = _EvoNormB0Function.apply(x, v, gamma, beta, 1e-5)
    y_ref, moving_ref = b0_formula(x_ref, *ref, moving, 1e-5, True, 0.3)
    assert (y - y_ref).abs().max() <= 1e-12
    assert ((1 - 0.3) * moving + 0.3 * batch_var.flatten() - moving_ref).abs().max() <= 1e-14
    assert not batch_var.requires_grad
    _check_grads(y, y_ref, [(x, x_ref)] + list(zip(params, ref)))
    inputs = [t.detach().clone().requires_grad_() for t in (x, v, gamma, beta)]
    assert torch.autograd.gradcheck(lambda *a: _EvoNormB0Function.apply(*a, 1e-5)[0], inputs)


def test_s0_compiled_equals_eager_with_gradients():
    # Under torch.compile the layer switches to the closed-form backward: same values and gradients
    torch.manual_seed(3)
    eager = EvoNorm2dS0(8, groups=4).double()
    _randomize(eager)
    other = copy.deepcopy(eager)
    compiled = torch.compile(other, backend="aot_eager", fullgraph=True)
    for scale, shift in ((1.5, 0.3), (0.01, 100.0)):
        x = torch.randn(3, 8, 5, 4, dtype=torch.float64) * scale + shift
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = eager(xa), compiled(xb)
        assert (ya - yb).abs().max() <= 1e-12 * ya.abs().max()  # relative: at mean 100 outputs reach 2e4
        g = torch.randn_like(ya)
        ya.backward(g), yb.backward(g)
        assert (xa.grad - xb.grad).abs().max() <= 1e-9 * xa.grad.abs().max()
        for (name, p), q in zip(eager.named_parameters(), other.parameters()):
            assert (p.grad - q.grad).abs().max() <= 1e-9 * p.grad.abs().max(), name
            p.grad = q.grad = None


def test_without_activation_is_affine_only():
    # The authors' nonlinearity=False: gamma x + beta, no normalization
    torch.manual_seed(2)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    for layer in (EvoNorm2dB0(4, apply_act=False).double(), EvoNorm2dS0(4, groups=2, apply_act=False).double()):
        _randomize(layer)
        assert layer.v is None
        assert torch.allclose(layer(x), x * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1))


def test_timm_port_differences_have_the_documented_size():
    # timm's EvoNorm2dB0 (formula read from timm/layers/evo_norm.py): eps default 1e-3, and its moving
    # variance takes the *unbiased* batch variance. Both sizes, on one batch:
    torch.manual_seed(3)
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    n = x.numel() // 8  # values behind each channel's batch variance: 32
    ours = EvoNorm2dB0(8).double()
    ours(x)
    biased = torch.var(x, dim=(0, 2, 3), unbiased=False)
    timm_moving = 0.9 + 0.1 * biased * n / (n - 1)
    assert torch.allclose(ours.running_var, 0.9 + 0.1 * biased, atol=1e-15)
    assert torch.allclose((timm_moving - 0.9) / (ours.running_var - 0.9), torch.full((8,), n / (n - 1), dtype=torch.float64))
    # eps 1e-3 vs 1e-5 in training, on unit-scale input: below 1% relative
    one, zero = torch.ones(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    ref, _ = b0_formula(x, one, zero, one, one, 1e-5, True, 0.1)
    timm_eps, _ = b0_formula(x, one, zero, one, one, 1e-3, True, 0.1)
    rel = ((timm_eps - ref).abs() / ref.abs().clamp_min(1e-3)).max()
    assert 1e-4 < rel < 1e-2


def test_group_reduction_follows_the_authors():
    # The authors' _group_std decrements G until it divides C; GN's factory uses gcd(C, 32) instead
    assert [largest_divisor_at_most(c, 32) for c in (8, 24, 40, 48, 64, 96, 3)] == [8, 24, 20, 24, 32, 32, 3]
    assert make_norm("evos0", 40).groups == 20
    assert make_norm("evos0:4", 6).groups == 3
    with pytest.raises(ValueError, match=r"EvoNorm2dS0: num_features \(40\) must be divisible by groups"):
        EvoNorm2dS0(40)


def test_bad_input():
    for layer, name in ((EvoNorm2dB0(4), "EvoNorm2dB0"), (EvoNorm2dS0(4, groups=2), "EvoNorm2dS0")):
        with pytest.raises(ValueError, match=f"{name}: expected a 4-D input"):
            layer(torch.randn(2, 4, 5))
        with pytest.raises(ValueError, match=f"{name}: expected 4 channels.*got 3"):
            layer(torch.randn(2, 3, 5, 5))
    # B0's batch variance needs more than one value per channel in training (as torch BN)
    b0 = EvoNorm2dB0(4)
    with pytest.raises(ValueError, match="EvoNorm2dB0: expected more than 1 value per channel when training"):
        b0(torch.randn(1, 4, 1, 1))
    assert torch.isfinite(b0(torch.randn(1, 4, 3, 3))).all()  # one image, 9 positions: allowed
    b0.eval()
    assert torch.isfinite(b0(torch.randn(1, 4, 1, 1))).all()  # eval uses the moving variance
    assert torch.isfinite(EvoNorm2dS0(4, groups=2)(torch.randn(1, 4, 1, 1))).all()  # S0: any batch


def test_all_zero_input_gives_beta_and_finite_grads():
    for layer in (EvoNorm2dB0(4), EvoNorm2dS0(4, groups=2)):
        _randomize(layer)
        x = torch.zeros(2, 4, 3, 3, requires_grad=True)
        y = layer(x)
        assert torch.allclose(y, layer.bias.detach().view(1, -1, 1, 1).expand_as(y))
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_float32_large_mean_small_std():
    torch.manual_seed(4)
    x = torch.randn(4, 4, 8, 8) * 0.01 + 100
    for make in (lambda: EvoNorm2dB0(4), lambda: EvoNorm2dS0(4, groups=2)):
        layer = make()
        y32 = layer(x)
        y64 = make().double()(x.double())
        assert ((y32.double() - y64).abs() / y64.abs()).max() < 1e-5
    # The compiled paths (Welford statistics in one pass) keep that precision
    ones, zeros = torch.ones(4), torch.zeros(4)
    y32 = _EvoNormS0Function.apply(x, ones, ones, zeros, 2, 1e-5)
    y64 = EvoNorm2dS0(4, groups=2).double()(x.double())
    assert ((y32.double() - y64).abs() / y64.abs()).max() < 1e-5
    y32, var32 = _EvoNormB0Function.apply(x, ones, ones, zeros, 1e-5)
    b0 = EvoNorm2dB0(4, momentum=1.0).double()
    y64 = b0(x.double())
    assert ((y32.double() - y64).abs() / y64.abs()).max() < 1e-5
    assert ((var32.flatten().double() - b0.running_var) / b0.running_var).abs().max() < 1e-4


def test_bf16():
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(4, 3, 8, 8)
    for layer in (EvoNorm2dB0(4), EvoNorm2dS0(4, groups=2)):
        ref = layer(conv(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(conv(x))
        assert y.dtype == torch.bfloat16
        assert torch.allclose(y.float(), ref, atol=0.05, rtol=0.05)
        if isinstance(layer, EvoNorm2dB0):
            assert layer.running_var.dtype == torch.float32


def test_compile_state_dict_deepcopy():
    torch.manual_seed(6)
    x = torch.randn(3, 4, 5, 5)
    for make in (lambda: EvoNorm2dB0(4), lambda: EvoNorm2dS0(4, groups=2)):
        eager, other = make(), make()
        _randomize(eager)
        other.load_state_dict(eager.state_dict())
        compiled = torch.compile(other, backend="aot_eager", fullgraph=True)
        assert torch.allclose(compiled(x), eager(x), atol=1e-6)
        for a, b in zip(other.buffers(), eager.buffers()):
            assert torch.allclose(a, b)
        eager.eval(), other.eval()
        assert torch.allclose(compiled(x), eager(x), atol=1e-6)
        copied = copy.deepcopy(eager)
        assert torch.equal(copied(x), eager(x))
        reloaded = make().eval()
        reloaded.load_state_dict(eager.state_dict())
        assert torch.equal(reloaded(x), eager(x))
