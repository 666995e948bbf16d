"""GlobalResponseNorm2d (ConvNeXt V2's GRN): float64 parity with timm's GlobalResponseNorm formula and the
official channels-last formula, the identity at init, bad input and edge cases, dtypes, state_dict, compile,
and `norm="grn"` in the CNN zoo."""

import copy

import pytest
import torch
from torch import nn

import labnorm
from labnorm.models import build_model
from labnorm.norms import make_norm

F64 = torch.float64


def _close(a, b, tol):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.double() - b.double()).abs().max().item()
    assert err <= tol, err


def _randomized(layer, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


class TimmFormula(nn.Module):
    """timm's GlobalResponseNorm (timm/layers/grn.py), NCHW, written out: weight and bias of shape [1, C, 1, 1],
    x_g = ||x||_2 over (H, W), x_n = x_g / (mean_C x_g + eps), y = bias + x * (weight * x_n + 1)."""

    def __init__(self, ours):
        super().__init__()
        self.eps = ours.eps
        self.weight = nn.Parameter(ours.weight.detach().clone().reshape(1, -1, 1, 1))
        self.bias = nn.Parameter(ours.bias.detach().clone().reshape(1, -1, 1, 1))

    def forward(self, x):
        x_g = x.norm(p=2, dim=(2, 3), keepdim=True)
        x_n = x_g / (x_g.mean(dim=1, keepdim=True) + self.eps)
        return self.bias + x * (self.weight * x_n + 1)


def _official_channels_last(x_nhwc, gamma, beta, eps=1e-6):
    # The ConvNeXt V2 paper's pseudo-code on [N, H, W, C]: gamma * (x * Nx) + beta + x
    gx = torch.sqrt((x_nhwc ** 2).sum(dim=(1, 2), keepdim=True))
    nx = gx / (gx.mean(dim=-1, keepdim=True) + eps)
    return gamma * (x_nhwc * nx) + beta + x_nhwc


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 3, 1, 1), (3, 7, 6, 2)])
@pytest.mark.parametrize("seed", range(2))
def test_matches_timm_formula_forward_and_gradients(shape, seed):
    torch.manual_seed(seed)
    ours = _randomized(labnorm.GlobalResponseNorm2d(shape[1]).double(), seed)
    ref = TimmFormula(ours)
    x = torch.randn(shape, dtype=F64) * 2 + 0.3
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    _close(ya, yb, 1e-13)
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    _close(xa.grad, xb.grad, 1e-12)
    _close(ours.weight.grad, ref.weight.grad.reshape(-1), 1e-11)
    _close(ours.bias.grad, ref.bias.grad.reshape(-1), 1e-11)


def test_matches_the_official_channels_last_formula():
    torch.manual_seed(2)
    ours = _randomized(labnorm.GlobalResponseNorm2d(6).double())
    x = torch.randn(2, 6, 4, 5, dtype=F64)
    y = _official_channels_last(x.permute(0, 2, 3, 1), ours.weight.detach(), ours.bias.detach())
    _close(ours(x), y.permute(0, 3, 1, 2), 1e-13)


def test_identity_at_initialization_and_the_formula_moves_with_gamma():
    layer = labnorm.GlobalResponseNorm2d(4)
    assert torch.equal(layer.weight, torch.zeros(4)) and torch.equal(layer.bias, torch.zeros(4))
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(layer(x), x)
    # With gamma = 1, beta = 0: y = x (1 + N); N of a map whose channels have equal norms is 1/(1 + eps/G) ~ 1
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.ones(1, 4, 2, 2, dtype=F64)
    _close(layer.double()(x), 2 * x, 1e-5)


def test_gradcheck():
    torch.manual_seed(3)
    layer = _randomized(labnorm.GlobalResponseNorm2d(3).double())
    x = torch.randn(2, 3, 2, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, *p: layer(t), (x, *layer.parameters()))


@pytest.mark.parametrize("shape, message", [
    ((2, 4, 3), "GlobalResponseNorm2d: expected a 4-D input"),
    ((2, 4, 3, 3, 1), "GlobalResponseNorm2d: expected a 4-D input"),
    ((2, 5, 3, 3), "GlobalResponseNorm2d: expected 4 channels"),
])
def test_bad_input_names_the_layer(shape, message):
    with pytest.raises(ValueError, match=message):
        labnorm.GlobalResponseNorm2d(4)(torch.randn(shape))


@pytest.mark.parametrize("c", [0, -2, 1.5])
def test_bad_num_features(c):
    with pytest.raises(ValueError, match="GlobalResponseNorm2d: num_features"):
        labnorm.GlobalResponseNorm2d(c)


def test_per_sample_batch_of_one_and_an_empty_batch():
    torch.manual_seed(4)
    layer = _randomized(labnorm.GlobalResponseNorm2d(4))
    x = torch.randn(3, 4, 2, 2)
    # No statistic crosses samples: a sample's output is its output alone
    _close(layer(x)[1:2], layer(x[1:2]), 1e-6)
    e = torch.randn(0, 4, 3, 3, requires_grad=True)
    y = layer(e)
    y.sum().backward()
    assert y.shape == e.shape and e.grad.shape == e.shape


def test_all_zero_input_gives_beta_and_finite_gradients():
    layer = _randomized(labnorm.GlobalResponseNorm2d(4))
    x = torch.zeros(2, 4, 3, 3, requires_grad=True)
    y = layer(x)
    y.square().sum().backward()
    _close(y, layer.bias.detach().reshape(1, 4, 1, 1).expand_as(y), 0)
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_float32_mean_100_std_001_equals_float64():
    torch.manual_seed(5)
    layer = _randomized(labnorm.GlobalResponseNorm2d(4))
    x = torch.randn(4, 4, 5, 4) * 0.01 + 100
    truth = copy.deepcopy(layer).double()(x.double())
    assert ((layer(x).double() - truth).abs() / truth.abs()).max() < 1e-6


def test_bf16_autocast_returns_the_input_dtype():
    torch.manual_seed(6)
    layer = _randomized(labnorm.GlobalResponseNorm2d(4))
    ref = copy.deepcopy(layer)
    conv = nn.Conv2d(4, 4, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(torch.randn(3, 4, 3, 4))
        y = layer(h)
    assert h.dtype == y.dtype == torch.bfloat16
    _close(y.float() / ref(h.float()).abs().max(), ref(h.float()) / ref(h.float()).abs().max(), 0.02)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_module(dtype):
    layer = _randomized(labnorm.GlobalResponseNorm2d(4)).to(dtype)
    x = torch.randn(2, 4, 3, 3).to(dtype).requires_grad_()
    y = layer(x)
    assert y.dtype == dtype
    truth = copy.deepcopy(layer).double()(x.detach().double())
    _close(y / truth.abs().max(), truth / truth.abs().max(), 4 * torch.finfo(dtype).eps)
    y.float().sum().backward()
    assert all(p.grad.dtype == dtype for p in layer.parameters())


def test_state_dict_round_trip_and_deepcopy():
    layer = _randomized(labnorm.GlobalResponseNorm2d(4))
    fresh = labnorm.GlobalResponseNorm2d(4)
    fresh.load_state_dict(layer.state_dict())
    assert set(layer.state_dict()) == {"weight", "bias"}
    twin = copy.deepcopy(layer)
    x = torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        _close(fresh(x), layer(x), 0)
        _close(twin(x), layer(x), 0)
        twin.weight.add_(1)
    assert not torch.equal(twin.weight, layer.weight)


def test_compiles_fullgraph_aot_eager_train_and_eval():
    torch.manual_seed(7)
    layer = _randomized(labnorm.GlobalResponseNorm2d(4))
    eager = copy.deepcopy(layer)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = torch.randn(3, 4, 2, 5) * 2 + 1
    for training in (True, False):
        layer.train(training), eager.train(training)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = compiled(xa), eager(xb)
        _close(ya, yb, 1e-5)
        ya.square().sum().backward(), yb.square().sum().backward()
        _close(xa.grad, xb.grad, 1e-4)
    for p, q in zip(layer.parameters(), eager.parameters()):
        _close(p.grad, q.grad, 1e-3)


def test_norm_grn_in_the_cnn_zoo():
    layer = make_norm("grn", 16)
    assert isinstance(layer, labnorm.GlobalResponseNorm2d) and layer.num_features == 16
    torch.manual_seed(8)
    model = build_model("small_cnn", "grn", width=8)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
