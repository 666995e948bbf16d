"""Weight Standardization: each named variant against its own formula, the WS convs against
F.conv with the standardized weight, edge cases, bf16, compile, factory."""

import copy
import io
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labnorm.models import build_model
from labnorm.norms import make_conv
from labnorm.weight_std import VARIANTS, WSConv1d, WSConv2d, WSConvTranspose2d, weight_standardization


# The formulas as their sources write them, independently of labnorm's code.
def paper(w, eps=1e-5):  # biased variance, eps inside the sqrt (paper eq. 5-6)
    flat = w.reshape(w.shape[0], -1)
    mu = flat.mean(1, keepdim=True)
    sigma = torch.sqrt((flat ** 2).mean(1, keepdim=True) - mu ** 2 + eps)
    return ((flat - mu) / sigma).reshape(w.shape)


def ws_repo(w, eps=1e-5):  # the WS repository's README: mean of means, unbiased std + eps
    mean = w.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
    w = w - mean
    std = w.view(w.size(0), -1).std(dim=1).view(-1, 1, 1, 1) + eps
    return w / std.expand_as(w)


def timm(w, eps=1e-6):  # timm's StdConv2d: batch_norm over each filter, biased, eps inside
    return F.batch_norm(w.reshape(1, w.shape[0], -1), None, None, training=True, momentum=0.0, eps=eps).reshape_as(w)


def labml(w, eps=1e-5):  # labml: torch.var_mean (unbiased by default), eps inside
    flat = w.view(w.shape[0], -1)
    var, mean = torch.var_mean(flat, dim=1, keepdim=True)
    return ((flat - mean) / torch.sqrt(var + eps)).view(w.shape)


def bit(w, eps=1e-10):  # BiT: biased var_mean over (1, 2, 3), eps inside
    v, m = torch.var_mean(w, dim=[1, 2, 3], keepdim=True, unbiased=False)
    return (w - m) / torch.sqrt(v + eps)


FORMULAS = {"paper": paper, "ws_repo": ws_repo, "timm": timm, "labml": labml, "bit": bit}


def test_every_variant_has_a_formula():
    assert set(FORMULAS) == set(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("scale", [1.0, 1e-2])
def test_variant_matches_its_formula(variant, scale):
    torch.manual_seed(0)
    w = torch.randn(8, 3, 3, 3, dtype=torch.float64) * scale + 0.1
    assert (weight_standardization(w, variant=variant) - FORMULAS[variant](w)).abs().max() <= 1e-10


def test_variants_differ_by_a_measurable_amount():
    torch.manual_seed(1)
    w = nn.Conv2d(16, 32, 3).weight.detach().double()
    ref = weight_standardization(w)
    gaps = {v: (weight_standardization(w, variant=v) - ref).abs().max().item() for v in VARIANTS}
    assert gaps["paper"] == 0
    # Unbiased vs biased: a factor sqrt(I/(I-1)) on a filter of I = 144 entries
    assert math.isclose(gaps["labml"] / ref.abs().max().item(), 1 - math.sqrt(143 / 144), rel_tol=0.05)


@pytest.mark.parametrize("variant", ["paper", "ws_repo"])
def test_wsconv2d_equals_conv_with_standardized_weight(variant):
    torch.manual_seed(2)
    conv = WSConv2d(3, 6, 3, padding=1, stride=2, variant=variant).double()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    w = conv.weight.detach().clone().requires_grad_()
    b = conv.bias.detach().clone().requires_grad_()
    y_ref = F.conv2d(x, FORMULAS[variant](w), b, stride=2, padding=1)
    y = conv(x)
    assert (y - y_ref).abs().max() <= 1e-10
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    assert (conv.weight.grad - w.grad).abs().max() <= 1e-10
    assert torch.autograd.gradcheck(lambda t: weight_standardization(t), (w.detach()[:2].clone().requires_grad_(),))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_closed_form_backward_equals_autograd_of_the_formula(variant):
    # labnorm's backward is written by hand (one temporary); autograd of the source's formula is the reference
    torch.manual_seed(6)
    w = (torch.randn(6, 4, 3, 3, dtype=torch.float64) * 0.3 + 0.05).requires_grad_()
    w_ref = w.detach().clone().requires_grad_()
    g = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    (weight_standardization(w, variant=variant) * g).sum().backward()
    (FORMULAS[variant](w_ref) * g).sum().backward()
    assert (w.grad - w_ref.grad).abs().max() <= 1e-10
    assert torch.autograd.gradcheck(lambda t: weight_standardization(t, variant=variant),
                                    (w.detach()[:2].clone().requires_grad_(),))
    # Transposed layout (output channels on dim 1), through the same function
    wt = w.detach().transpose(0, 1).clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: weight_standardization(t, variant=variant, out_dim=1), (wt,))


def test_constant_filter_gets_finite_gradients():
    w = torch.ones(2, 3, 3, 3, requires_grad=True)
    for v in VARIANTS:
        w.grad = None
        weight_standardization(w, variant=v).pow(2).sum().backward()  # d/dW of |W_hat|^2 at W_hat = 0
        assert torch.isfinite(w.grad).all(), v


def test_float32_weight_with_a_large_mean_is_standardized_accurately():
    # Statistics from the centred rows (two passes): no cancellation at mean 100, std 0.01
    torch.manual_seed(7)
    w32 = torch.randn(8, 16, 3, 3) * 0.01 + 100
    exact = weight_standardization(w32.double(), eps=0.0)  # the same float32 values, in float64
    assert (weight_standardization(w32, eps=0.0).double() - exact).abs().max() < 1e-5
    # (what a one-pass E[w^2] - E[w]^2 in float32 would give: far off, or NaN)
    naive = paper(w32, eps=0.0)
    assert not torch.allclose(naive.double(), exact, atol=0.1)
    # Under autograd (the F.batch_norm path, rows shifted first), every variant, forward and gradient
    for variant in VARIANTS:
        w = w32.clone().requires_grad_()
        w64 = w32.double().requires_grad_()
        out, ref = weight_standardization(w, 1e-8, variant), weight_standardization(w64, 1e-8, variant)
        assert (out.double() - ref).abs().max() < 1e-5, variant
        g = torch.randn_like(ref)
        out.backward(g.float())
        ref.backward(g)
        assert (w.grad.double() - w64.grad).abs().max() / w64.grad.abs().max() < 1e-4, variant


def test_standardized_weight_follows_every_change_of_the_weight():
    # Nothing is cached: eval, no_grad, optimizer steps, loads, replaced parameters and dtype changes
    torch.manual_seed(8)
    conv = WSConv2d(4, 8, 3)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        assert torch.allclose(conv(x), F.conv2d(x, paper(conv.weight), conv.bias), atol=1e-6)
    assert conv.standardized_weight().requires_grad
    opt = torch.optim.SGD(conv.parameters(), lr=0.1)
    conv(x).square().mean().backward()
    opt.step()
    with torch.no_grad():
        assert torch.allclose(conv.standardized_weight(), paper(conv.weight), atol=1e-6)
        conv.load_state_dict(WSConv2d(4, 8, 3).state_dict())
        assert torch.allclose(conv.standardized_weight(), paper(conv.weight), atol=1e-6)
        conv.weight = nn.Parameter(torch.randn(8, 4, 3, 3))  # a replaced parameter
        assert torch.allclose(conv.standardized_weight(), paper(conv.weight), atol=1e-6)
        conv.double()
        assert conv.standardized_weight().dtype == torch.float64
    buffer = io.BytesIO()
    torch.save(conv, buffer)
    clone = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert torch.equal(clone.standardized_weight(), conv.standardized_weight())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_autograd_and_no_grad_paths_agree(variant):
    # With autograd: one F.batch_norm (eps inside the root) or the closed form; without: the closed form
    torch.manual_seed(9)
    w = torch.randn(6, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        closed = weight_standardization(w, variant=variant)
    assert (weight_standardization(w, variant=variant) - closed).abs().max() <= 1e-12


def test_wsconv2d_is_a_drop_in_for_conv2d():
    plain = nn.Conv2d(4, 8, 3, groups=2, bias=False)
    ws = WSConv2d(4, 8, 3, groups=2, bias=False)
    ws.load_state_dict(plain.state_dict())  # same keys
    assert list(ws.state_dict()) == list(plain.state_dict())
    clone = copy.deepcopy(ws)
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(clone(x), ws(x))
    with pytest.raises(ValueError, match="variant must be one of"):
        WSConv2d(3, 4, 3, variant="std")


def test_conv1d_and_transposed_conv():
    torch.manual_seed(3)
    c1 = WSConv1d(3, 4, 3).double()
    x = torch.randn(2, 3, 10, dtype=torch.float64)
    assert torch.allclose(c1(x), F.conv1d(x, paper(c1.weight.unsqueeze(-1)).squeeze(-1), c1.bias))
    t = WSConvTranspose2d(3, 5, 3, stride=2).double()
    # Per output channel: the filter of output o is weight[:, o]
    w = t.standardized_weight()
    assert w.mean((0, 2, 3)).abs().max() < 1e-12
    var = t.weight.var((0, 2, 3), unbiased=False)
    assert torch.allclose(w.var((0, 2, 3), unbiased=False), var / (var + 1e-5))  # 1 up to eps
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert t(x).shape == (2, 5, 9, 9)


def test_edge_cases():
    with pytest.raises(ValueError, match="fan_in=1"):
        WSConv2d(1, 4, 1)
    with pytest.raises(ValueError, match="fan_in=1"):
        weight_standardization(torch.randn(4, 1, 1, 1))
    # A constant filter becomes 0, not NaN, in every variant
    w = torch.ones(2, 3, 3, 3)
    for v in VARIANTS:
        out = weight_standardization(w, variant=v)
        assert torch.isfinite(out).all() and out.abs().max() == 0
    # Tiny weights: variance below eps leaves a std below 1 (sigma / sqrt(sigma^2 + eps))
    torch.manual_seed(4)
    tiny = torch.randn(4, 16, 3, 3, dtype=torch.float64) * 1e-4
    std = weight_standardization(tiny).reshape(4, -1).std(1, unbiased=False)
    sigma = tiny.reshape(4, -1).std(1, unbiased=False)
    assert torch.allclose(std, sigma / torch.sqrt(sigma ** 2 + 1e-5))
    assert std.max() < 0.1


def test_bf16_autocast_keeps_float32_statistics():
    torch.manual_seed(5)
    conv = WSConv2d(3, 8, 3)
    x = torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv.standardized_weight().dtype == torch.float32
        y = conv(x)
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), conv(x), atol=0.1)


def test_compiles():
    conv = WSConv2d(3, 4, 3)
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(torch.compile(conv, backend="aot_eager", fullgraph=True)(x), conv(x), atol=1e-6)
    with torch.no_grad():  # eval under compile: the closed form's forward, in the graph
        conv.eval()
        assert torch.allclose(torch.compile(conv, backend="aot_eager", fullgraph=True)(x), conv(x), atol=1e-6)


def test_factory_pairs_ws_conv_with_bn_and_gn():
    assert isinstance(make_conv("ws+bn", 3, 8), WSConv2d)
    assert isinstance(make_conv("ws+gn", 16, 16, 3), WSConv2d)
    assert type(make_conv("ws+bn", 1, 8, 1)) is nn.Conv2d  # fan-in 1 stays plain
    for norm in ("ws+bn", "ws+gn"):
        model = build_model("resnet18", norm, width=0.125)
        assert any(isinstance(m, WSConv2d) for m in model.modules())
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
