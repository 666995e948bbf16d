"""Weight normalization: parity with torch's parametrization, its traps, data-dependent init,
mean-only batch norm, the projected-gradient identity."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_weight_norm

from labnorm.weight_norm import (
    MeanOnlyBatchNorm, data_dependent_init, remove_weight_norm, weight_norm, weight_norm_layers,
)

LAYERS = {
    "Linear": lambda: nn.Linear(5, 4),
    "Conv1d": lambda: nn.Conv1d(3, 4, 3),
    "Conv2d": lambda: nn.Conv2d(3, 4, 3),
    "Conv3d": lambda: nn.Conv3d(2, 3, 2),
    "ConvTranspose1d": lambda: nn.ConvTranspose1d(3, 4, 3),
    "ConvTranspose2d": lambda: nn.ConvTranspose2d(3, 4, 3, stride=2),
    "ConvTranspose3d": lambda: nn.ConvTranspose3d(2, 3, 2),
}
INPUTS = {
    "Linear": (6, 5), "Conv1d": (2, 3, 9), "Conv2d": (2, 3, 7, 7), "Conv3d": (2, 2, 4, 4, 4),
    "ConvTranspose1d": (2, 3, 5), "ConvTranspose2d": (2, 3, 4, 4), "ConvTranspose3d": (2, 2, 3, 3, 3),
}


@pytest.mark.parametrize("dim", [0, 1, None])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_matches_torch_forward_gradients_and_state_dict(kind, dim):
    torch.manual_seed(0)
    base = LAYERS[kind]().double()
    w0 = base.weight.detach().clone()
    ours, ref = weight_norm(copy.deepcopy(base), dim=dim), torch_weight_norm(copy.deepcopy(base), dim=dim)
    # Wrapping leaves the weight unchanged
    assert torch.allclose(ours.weight, w0, atol=1e-12, rtol=0)
    assert list(ours.state_dict()) == list(ref.state_dict())
    x = torch.randn(INPUTS[kind], dtype=torch.float64)
    y, y2 = ours(x), ref(x)
    assert (y - y2).abs().max() <= 1e-10
    g = torch.randn_like(y)
    y.backward(g)
    y2.backward(g)
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert (a.grad - b.grad).abs().max() <= 1e-10
    # A state dict saved by torch loads into labnorm's layer and gives the same output
    with torch.no_grad():
        ref.parametrizations.weight.original0.mul_(1.7)
    ours.load_state_dict(ref.state_dict())
    assert (ours(x) - ref(x)).abs().max() <= 1e-10


def test_gradcheck_float64():
    torch.manual_seed(1)
    layer = weight_norm(nn.Conv2d(2, 3, 2).double(), dim="output", eps=1e-6)
    g = layer.parametrizations.weight.original0.detach().clone().requires_grad_()
    v = layer.parametrizations.weight.original1.detach().clone().requires_grad_()
    wn = layer.parametrizations.weight[0]
    assert torch.autograd.gradcheck(lambda a, b: wn(a, b), (g, v))


def test_transposed_conv_output_dim():
    layer = nn.ConvTranspose2d(3, 5, 3)  # weight [in=3, out=5, 3, 3]
    assert weight_norm(copy.deepcopy(layer)).parametrizations.weight.original0.shape == (3, 1, 1, 1)
    out = weight_norm(copy.deepcopy(layer), dim="output")
    assert out.parametrizations.weight.original0.shape == (1, 5, 1, 1)
    # Each output channel's filter has norm g
    w = out.weight.detach()
    assert torch.allclose(w.pow(2).sum((0, 2, 3)).sqrt(), out.parametrizations.weight.original0.flatten())
    assert weight_norm(nn.Linear(3, 4), dim="output").parametrizations.weight.original0.shape == (4, 1)


def test_dim_none_is_one_norm_and_negative_dims_are_refused():
    layer = weight_norm(nn.Linear(3, 4), dim=None)
    assert layer.parametrizations.weight.original0.shape == ()
    with pytest.raises(ValueError, match="dim=-1 is ambiguous.*dim=None.*dim=1"):
        weight_norm(nn.Linear(3, 4), dim=-1)


def test_zero_norm_rows_nan_in_torch_finite_with_eps():
    for make in (lambda m: torch_weight_norm(m), lambda m: weight_norm(m)):
        m = make(nn.Linear(3, 4))
        with torch.no_grad():
            m.parametrizations.weight.original1[0].zero_()
        assert torch.isnan(m.weight[0]).all()
    m = weight_norm(nn.Linear(3, 4), eps=1e-8)
    with torch.no_grad():
        m.parametrizations.weight.original1[0].zero_()
    y = m(torch.randn(2, 3))
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(m.parametrizations.weight.original1.grad).all()


def test_bad_input():
    with pytest.raises(ValueError, match="has no parameter 'kernel'"):
        weight_norm(nn.Linear(3, 4), name="kernel")
    with pytest.raises(ValueError, match="has no parameter 'weight'"):
        weight_norm(nn.ReLU())
    with pytest.raises(ValueError, match="out of range for a 2-D weight"):
        weight_norm(nn.Linear(3, 4), dim=2)
    with pytest.raises(TypeError, match="dim must be"):
        weight_norm(nn.Linear(3, 4), dim="input")
    with pytest.raises(ValueError, match="already parametrized"):
        weight_norm(weight_norm(nn.Linear(3, 4)))
    with pytest.raises(ValueError, match="has no weight norm"):
        remove_weight_norm(nn.Linear(3, 4))


def test_remove_keeps_the_weight_and_round_trips():
    torch.manual_seed(2)
    layer = weight_norm(nn.Conv2d(3, 4, 3), dim="output")
    with torch.no_grad():
        layer.parametrizations.weight.original0.mul_(3)
    w = layer.weight.detach().clone()
    clone = copy.deepcopy(layer)
    fresh = weight_norm(nn.Conv2d(3, 4, 3), dim="output")
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(clone.weight, w) and torch.equal(fresh.weight, w)
    remove_weight_norm(layer)
    assert isinstance(layer.weight, nn.Parameter) and torch.equal(layer.weight, w)


def test_works_under_torch_compile():
    torch.manual_seed(3)
    layer = weight_norm(nn.Conv2d(3, 4, 3), dim="output")
    x = torch.randn(2, 3, 8, 8)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), layer(x), atol=1e-6)


def test_gradient_is_a_projected_gradient():
    """∇g = ∇w·v/‖v‖ and ∇v = (g/‖v‖)(I − w wᵀ/‖w‖²)∇w (Salimans & Kingma, eq. 3-4), per output row."""
    torch.manual_seed(4)
    layer = weight_norm(nn.Linear(6, 3).double(), dim=0)
    x = torch.randn(5, 6, dtype=torch.float64)
    w = layer.weight  # computed from g and v; keep this tensor to read its gradient
    w.retain_grad()
    (nn.functional.linear(x, w, layer.bias) ** 2).sum().backward()
    g = layer.parametrizations.weight.original0.detach()
    v = layer.parametrizations.weight.original1.detach()
    gw = w.grad
    vnorm = v.norm(dim=1, keepdim=True)
    wd = w.detach()
    expect_g = (gw * v).sum(1, keepdim=True) / vnorm
    proj = gw - wd * (wd * gw).sum(1, keepdim=True) / wd.pow(2).sum(1, keepdim=True)
    expect_v = g / vnorm * proj
    assert torch.allclose(layer.parametrizations.weight.original0.grad, expect_g, atol=1e-12)
    assert torch.allclose(layer.parametrizations.weight.original1.grad, expect_v, atol=1e-12)
    # ... so ∇v is orthogonal to w (and to v)
    assert (layer.parametrizations.weight.original1.grad * wd).sum(1).abs().max() < 1e-12


# ---------------------------------------------------------------------- data-dependent init


def _net(v_scale=1.0, transposed=False):
    torch.manual_seed(5)
    last = nn.ConvTranspose2d(8, 4, 3, stride=2) if transposed else nn.Conv2d(8, 4, 3)
    net = nn.Sequential(
        weight_norm(nn.Conv2d(3, 8, 3), dim="output"), nn.ReLU(),
        weight_norm(last, dim="output"), nn.ReLU(),
        # 8×8 → conv 3 → 6×6 → conv 3: 4×4, or transposed conv 3 stride 2: (6 − 1)·2 + 3 = 13×13
        nn.Flatten(), weight_norm(nn.Linear(4 * (13 * 13 if transposed else 4 * 4), 5), dim="output"),
    ).double()
    with torch.no_grad():
        for m in (net[0], net[2], net[5]):
            m.parametrizations.weight.original1.mul_(v_scale)
    return net


@pytest.mark.parametrize("v_scale", [1.0, 7.0, 0.05])
@pytest.mark.parametrize("init_scale", [1.0, 0.1])
@pytest.mark.parametrize("transposed", [False, True])
def test_data_init_gives_zero_mean_and_init_scale_std_for_every_layer(v_scale, init_scale, transposed):
    net = _net(v_scale, transposed)
    x = torch.randn(32, 3, 8, 8, dtype=torch.float64)
    data_dependent_init(net, x, init_scale=init_scale)
    # Whatever ‖v‖ was (the TF-Addons version ends with std 1/‖v‖ when ‖v‖ ≠ 1), every layer's
    # pre-activation now has per-channel mean 0 and std init_scale.
    h = x
    for layer in net:
        h = layer(h)
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            dims = [d for d in range(h.dim()) if d != 1]
            assert h.mean(dims).abs().max() <= 1e-5
            assert (h.std(dims, unbiased=False) - init_scale).abs().max() <= 1e-5


def test_data_init_then_trains_and_compiles():
    net = _net()
    x, y = torch.randn(32, 3, 8, 8, dtype=torch.float64), torch.randint(0, 5, (32,))
    data_dependent_init(net, x)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    compiled = torch.compile(net, backend="aot_eager")
    assert torch.allclose(compiled(x), net(x), atol=1e-10)


def test_data_init_needs_per_output_g_and_some_wn_layer():
    net = nn.Sequential(weight_norm(nn.ConvTranspose2d(3, 4, 3)))  # dim=0: per input channel
    with pytest.raises(ValueError, match="dim='output'"):
        data_dependent_init(net, torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="no weight-normalized layer"):
        data_dependent_init(nn.Sequential(nn.Linear(3, 3)), torch.randn(2, 3))


# ---------------------------------------------------------------------- mean-only BN


def test_mean_only_batch_norm():
    torch.manual_seed(6)
    layer = MeanOnlyBatchNorm(4).double()
    ref = nn.BatchNorm2d(4).double()  # same running-mean convention
    with torch.no_grad():
        layer.bias.copy_(torch.randn(4))
    for step in range(3):
        x = torch.randn(5, 4, 3, 3, dtype=torch.float64) * 2 + step
        y = layer(x)
        ref(x)
        expect = x - x.mean((0, 2, 3), keepdim=True) + layer.bias.view(1, -1, 1, 1)
        assert (y - expect).abs().max() <= 1e-12
        assert (layer.running_mean - ref.running_mean).abs().max() <= 1e-12
    layer.eval()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    assert torch.allclose(layer(x), x - layer.running_mean.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1))
    # Any rank [N, C, *]; the spread is left alone
    x = torch.randn(8, 3) * 5
    assert torch.allclose(MeanOnlyBatchNorm(3)(x).std(0), x.std(0))
    with pytest.raises(ValueError, match=r"expected an input \[N, 4, \*\]"):
        layer(torch.randn(2, 3, 4))


def test_factory_entries():
    from labnorm.models import SmallCNN

    for norm in ("wn", "wn+mobn"):
        model = SmallCNN(norm=norm, width=8)
        assert len(list(weight_norm_layers(model))) == 3  # the three convs
        out = model(torch.randn(4, 3, 32, 32))
        assert out.shape == (4, 10)
    conv = SmallCNN(norm="wn", width=8).features[0][0]
    assert conv.bias is not None and conv.parametrizations.weight.original0.shape == (8, 1, 1, 1)
    assert SmallCNN(norm="wn+mobn", width=8).features[0][0].bias is None
