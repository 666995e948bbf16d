"""RMSNorm's zero-centred option (Gemma: y = x / RMS(x) * (1 + w), w initialized to 0), and torch.nn.RMSNorm's
default eps (None: the machine epsilon of the computation type) pinned, with labnorm's matching it."""

import copy

import pytest
import torch
from torch import nn

import labnorm

F64 = torch.float64


def _close(a, b, tol):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.double() - b.double()).abs().max().item()
    assert err <= tol, err


def _gemma(x, w, eps):
    # The formula written out: x / sqrt(mean(x^2) + eps) * (1 + w), over the last dim
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * (1 + w)


def test_zero_centered_init_is_zero_and_the_same_function_as_the_default():
    zc = labnorm.RMSNorm(6, zero_centered=True).double()
    assert torch.equal(zc.weight, torch.zeros(6, dtype=F64))
    x = torch.randn(3, 4, 6, dtype=F64)
    _close(zc(x), labnorm.RMSNorm(6).double()(x), 0)
    # gamma = 1 + w: the default layer with weight 1 + w is the same function
    with torch.no_grad():
        zc.weight.normal_()
    plain = labnorm.RMSNorm(6).double()
    with torch.no_grad():
        plain.weight.copy_(1 + zc.weight)
    _close(zc(x), plain(x), 1e-15)
    with torch.no_grad():
        zc.weight.normal_()
    zc.reset_parameters()
    assert torch.equal(zc.weight, torch.zeros(6, dtype=F64))


@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("seed", range(2))
def test_zero_centered_matches_the_formula_forward_and_gradients(eps, seed):
    torch.manual_seed(seed)
    ours = labnorm.RMSNorm(5, eps=eps, zero_centered=True).double()
    with torch.no_grad():
        ours.weight.normal_()
    w = ours.weight.detach().clone().requires_grad_()
    x = torch.randn(2, 3, 5, dtype=F64) * 1.5 + 0.2
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = ours(xa)
    yb = _gemma(xb, w, torch.finfo(F64).eps if eps is None else eps)
    _close(ya, yb, 1e-14)
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    _close(xa.grad, xb.grad, 1e-13)
    _close(ours.weight.grad, w.grad, 1e-12)


def test_zero_centered_weight_decay_pulls_the_scale_to_one():
    # The point of the parameterization: decaying the stored weight moves gamma = 1 + w toward 1; decaying
    # the default layer's weight moves gamma toward 0. Both start at gamma = 1.5, with no gradient
    zc, plain = labnorm.RMSNorm(4, zero_centered=True), labnorm.RMSNorm(4)
    with torch.no_grad():
        zc.weight.fill_(0.5), plain.weight.fill_(1.5)
    for layer in (zc, plain):
        opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=1.0)
        for _ in range(50):
            layer.weight.grad = torch.zeros(4)
            opt.step()
    assert ((1 + zc.weight) - 1).abs().max() < 0.01
    assert plain.weight.abs().max() < 0.01


def test_zero_centered_needs_an_affine_and_says_so():
    with pytest.raises(ValueError, match="RMSNorm: zero_centered=True .* elementwise_affine=True"):
        labnorm.RMSNorm(4, elementwise_affine=False, zero_centered=True)
    assert "zero_centered=True" in repr(labnorm.RMSNorm(4, zero_centered=True))


def test_zero_centered_bad_input_empty_batch_and_zero_input():
    layer = labnorm.RMSNorm(4, zero_centered=True)
    with pytest.raises(ValueError, match="RMSNorm: expected an input whose last 1 dim"):
        layer(torch.randn(2, 5))
    x = torch.randn(0, 3, 4, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(layer(torch.zeros(2, 4)), torch.zeros(2, 4))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_zero_centered_half_precision_module_and_autocast(dtype):
    torch.manual_seed(3)
    layer = labnorm.RMSNorm(8, zero_centered=True)
    with torch.no_grad():
        layer.weight.normal_(0, 0.3)
    half = copy.deepcopy(layer).to(dtype)
    x = torch.randn(2, 3, 8).to(dtype).requires_grad_()
    y = half(x)
    assert y.dtype == dtype
    _close(y, copy.deepcopy(half).double()(x.detach().double()), 4 * torch.finfo(dtype).eps * 2)
    y.float().sum().backward()
    assert half.weight.grad.dtype == dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = nn.Linear(8, 8)(torch.randn(2, 3, 8))
        z = layer(h)
    assert z.dtype == torch.bfloat16
    _close(z.float(), layer(h.float()), 0.05)


def test_zero_centered_state_dict_round_trip_and_deepcopy():
    layer = labnorm.RMSNorm(4, zero_centered=True)
    with torch.no_grad():
        layer.weight.normal_()
    fresh = labnorm.RMSNorm(4, zero_centered=True)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        _close(fresh(x), layer(x), 0)
        _close(copy.deepcopy(layer)(x), layer(x), 0)


def test_zero_centered_compiles_fullgraph_aot_eager():
    layer = labnorm.RMSNorm(4, zero_centered=True)
    with torch.no_grad():
        layer.weight.normal_()
    compiled = torch.compile(copy.deepcopy(layer), backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 4)
    _close(compiled(x), layer(x), 1e-6)


# ------------------------------------------------------------------ torch.nn.RMSNorm's default eps, pinned


@pytest.mark.parametrize("dtype, compute", [(torch.float32, torch.float32), (F64, F64),
                                            (torch.bfloat16, torch.float32), (torch.float16, torch.float32)])
def test_torch_rmsnorm_default_eps_is_the_computation_types_machine_epsilon(dtype, compute):
    # A tiny input, where eps decides the output: x / sqrt(mean x^2 + eps) with mean x^2 ~ eps
    eps = torch.finfo(compute).eps
    x = (torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=F64) * eps ** 0.5).to(dtype)
    assert nn.RMSNorm(4).eps is None
    expected = _gemma(x.to(compute), torch.zeros(4, dtype=compute), eps).to(dtype)
    y = nn.RMSNorm(4, dtype=dtype)(x)
    tol = 0 if dtype in (torch.float32, F64) else 2 * torch.finfo(dtype).eps
    _close(y, expected, tol)
    # Another eps would be visible: the pin holds the default to finfo(compute).eps
    other = _gemma(x.to(compute), torch.zeros(4, dtype=compute), 10 * eps).to(dtype)
    assert (y.double() - other.double()).abs().max() > 0.1
    # labnorm's RMSNorm takes the same default
    _close(labnorm.RMSNorm(4, dtype=dtype)(x), y, tol)
    _close(labnorm.RMSNorm(4, dtype=dtype, zero_centered=True)(x), y, tol)
