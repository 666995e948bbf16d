"""DynamicErf (Derf): float64 parity with the authors' formula y = gamma * erf(alpha x + s) + beta, their
init, bad input and edge cases, bf16 autocast, state_dict, compile."""

import copy
import math

import pytest
import torch
from torch import nn

import labnorm

F64 = torch.float64


def _close(a, b, tol):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.double() - b.double()).abs().max().item()
    assert err <= tol, err


def _randomized(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)
    return layer


class Formula(nn.Module):
    """The authors' formula, written out (zlab-princeton/Derf, ViT/dynamic_erf.py): channels in the last dim,
    or in dim 1 of [N, C, H, W] with gamma, beta as [C, 1, 1]."""

    def __init__(self, ours, channels_last):
        super().__init__()
        self.channels_last = channels_last
        for name in ("alpha", "shift", "weight", "bias"):
            setattr(self, name, nn.Parameter(getattr(ours, name).detach().clone()))

    def forward(self, x):
        z = torch.erf(self.alpha * x + self.shift)
        if self.channels_last:
            return z * self.weight + self.bias
        return z * self.weight[:, None, None] + self.bias[:, None, None]


def test_the_authors_init():
    layer = labnorm.DynamicErf(6)
    assert layer.alpha.shape == layer.shift.shape == (1,)
    assert layer.alpha.item() == 0.5 and layer.shift.item() == 0.0
    assert torch.equal(layer.weight, torch.ones(6)) and torch.equal(layer.bias, torch.zeros(6))
    assert set(dict(layer.named_parameters())) == {"alpha", "shift", "weight", "bias"}
    custom = labnorm.DynamicErf(6, alpha_init=1.0, shift_init=0.25)
    with torch.no_grad():
        custom.alpha.zero_(), custom.shift.zero_(), custom.weight.zero_()
    custom.reset_parameters()
    assert custom.alpha.item() == 1.0 and custom.shift.item() == 0.25 and torch.equal(custom.weight, torch.ones(6))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_matches_the_authors_formula_forward_and_gradients(channels_last, seed):
    torch.manual_seed(seed)
    ours = _randomized(labnorm.DynamicErf(5, channels_last=channels_last).double(), seed)
    ref = Formula(ours, channels_last)
    x = torch.randn((2, 3, 4, 5) if channels_last else (2, 5, 3, 4), dtype=F64) * 3 + 0.5
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    _close(ya, yb, 1e-14)
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    _close(xa.grad, xb.grad, 1e-13)
    for name, p in ours.named_parameters():
        _close(p.grad, getattr(ref, name).grad, 1e-11)


def test_the_formula_is_erf_not_tanh():
    # Held against a change of the function: erf(1) = 0.8427..., tanh(1) = 0.7616...
    layer = labnorm.DynamicErf(1, alpha_init=1.0, channels_last=True).double()
    assert layer(torch.ones(1, 1, dtype=F64)).item() == pytest.approx(math.erf(1.0), abs=1e-15)
    # The shift moves the centre: erf(0 + s)
    layer = labnorm.DynamicErf(1, shift_init=0.25, channels_last=True).double()
    assert layer(torch.zeros(1, 1, dtype=F64)).item() == pytest.approx(math.erf(0.25), abs=1e-15)


def test_gradcheck():
    torch.manual_seed(4)
    layer = _randomized(labnorm.DynamicErf(3).double())
    x = torch.randn(2, 3, 2, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, *p: layer(t), (x, *layer.parameters()))


@pytest.mark.parametrize("build, shape, message", [
    (lambda: labnorm.DynamicErf(4), (4,), "DynamicErf: expected an input of rank >= 2"),
    (lambda: labnorm.DynamicErf(4), (2, 3, 4, 4), r"DynamicErf: expected .* 4 channels in dim 1"),
    (lambda: labnorm.DynamicErf(4, channels_last=True), (2, 4, 3), r"DynamicErf: expected .* in the last dim"),
])
def test_bad_input_names_the_layer(build, shape, message):
    with pytest.raises(ValueError, match=message):
        build()(torch.randn(shape))


@pytest.mark.parametrize("c", [0, -1, 2.0])
def test_bad_num_features(c):
    with pytest.raises(ValueError, match="DynamicErf: num_features"):
        labnorm.DynamicErf(c)


def test_batch_of_one_one_by_one_maps_and_an_empty_batch():
    layer = labnorm.DynamicErf(4)
    layer(torch.randn(1, 4, 1, 1)).sum().backward()
    x = torch.randn(0, 4, 3, 3, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert y.shape == x.shape and x.grad.shape == x.shape


def test_all_zero_input_gives_gamma_erf_s_plus_beta():
    layer = _randomized(labnorm.DynamicErf(4))
    y = layer(torch.zeros(2, 4, 3, 3))
    expected = layer.weight * torch.erf(layer.shift) + layer.bias
    _close(y, expected.detach().reshape(1, 4, 1, 1).expand_as(y), 1e-6)


def test_float32_mean_100_std_001_saturates_to_gamma_plus_beta():
    # erf(50) = 1: Derf does not normalize; the documented answer
    torch.manual_seed(5)
    y = labnorm.DynamicErf(4)(torch.randn(4, 4, 5, 4) * 0.01 + 100)
    _close(y, torch.ones_like(y), 0)


def test_bf16_autocast_returns_the_input_dtype():
    torch.manual_seed(6)
    layer = _randomized(labnorm.DynamicErf(4))
    ref = copy.deepcopy(layer)
    conv = nn.Conv2d(4, 4, 1)
    x = torch.randn(3, 4, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        y = layer(h)
    assert h.dtype == y.dtype == torch.bfloat16
    _close(y.float(), ref(h.float()), 0.05)
    assert all(p.dtype == torch.float32 for p in layer.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_module(dtype):
    layer = _randomized(labnorm.DynamicErf(4)).to(dtype)
    x = torch.randn(2, 4, 3, 3).to(dtype).requires_grad_()
    y = layer(x)
    assert y.dtype == dtype
    _close(y, copy.deepcopy(layer).double()(x.detach().double()), 4 * torch.finfo(dtype).eps * 2)
    y.float().sum().backward()
    assert all(p.grad.dtype == dtype for p in layer.parameters())


def test_state_dict_round_trip_and_deepcopy():
    layer = _randomized(labnorm.DynamicErf(4, channels_last=True))
    fresh = labnorm.DynamicErf(4, channels_last=True)
    fresh.load_state_dict(layer.state_dict())
    twin = copy.deepcopy(layer)
    x = torch.randn(2, 3, 4)
    with torch.no_grad():
        _close(fresh(x), layer(x), 0)
        _close(twin(x), layer(x), 0)
        twin.shift.add_(1)
    assert not torch.equal(twin.shift, layer.shift)


@pytest.mark.parametrize("channels_last", [False, True])
def test_compiles_fullgraph_aot_eager_train_and_eval(channels_last):
    torch.manual_seed(7)
    layer = _randomized(labnorm.DynamicErf(4, channels_last=channels_last))
    eager = copy.deepcopy(layer)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = torch.randn((3, 2, 4) if channels_last else (3, 4, 2, 5)) * 2 + 1
    for training in (True, False):
        layer.train(training), eager.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = compiled(xa), eager(xb)
        _close(ya, yb, 1e-6)
        ya.square().sum().backward(), yb.square().sum().backward()
        _close(xa.grad, xb.grad, 1e-5)
    for p, q in zip(layer.parameters(), eager.parameters()):
        _close(p.grad, q.grad, 1e-4)
