"""The normalization zoo, part one: LayerNorm, LayerNorm2d, RMSNorm(2d), InstanceNorm2d,
GhostBatchNorm2d, DynamicTanh — parity with their references in float64, their documented
answers to bad input, and the norm= names in every model."""

import copy
import time

import pytest
import torch
from torch import nn

import labnorm
from labnorm.models import MODELS, build_model
from labnorm.norms import make_norm

F64 = torch.float64


def _close(a, b, tol):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.double() - b.double()).abs().max().item()
    assert err <= tol, err


def _randomize(*modules, seed=0):
    """The same non-trivial parameters in every module (each parameter perturbed around its init)."""
    g = torch.Generator().manual_seed(seed)
    params = [dict(m.named_parameters()) for m in modules]
    with torch.no_grad():
        for name, p in params[0].items():
            p.add_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)
            for other in params[1:]:
                other[name].copy_(p)


def _agree(ours, ref, x, tol=1e-10, ref_in=None, ref_out=None):
    """Same output, input gradient and parameter gradients (matched by name) for the same input."""
    ref_in = ref_in or (lambda t: t)
    ref_out = ref_out or (lambda t: t)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref_out(ref(ref_in(xb)))
    _close(ya, yb, tol)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    _close(xa.grad, xb.grad, tol * 10)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        _close(p.grad, ref_params[name].grad, tol * 100)
    return ya.detach()


def _nhwc(t):
    return t.permute(0, 2, 3, 1)


def _nchw(t):
    return t.permute(0, 3, 1, 2)


# ------------------------------------------------------------------ LayerNorm family


@pytest.mark.parametrize("shape, normalized", [((4, 7), (7,)), ((2, 3, 5, 6), (5, 6)), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("affine, bias", [(True, True), (True, False), (False, True)])
def test_layernorm_matches_torch(shape, normalized, affine, bias):
    torch.manual_seed(0)
    ours = labnorm.LayerNorm(normalized, elementwise_affine=affine, bias=bias).double()
    ref = nn.LayerNorm(normalized, elementwise_affine=affine, bias=bias).double()
    _randomize(ours, ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    _agree(ours, ref, torch.randn(shape, dtype=F64) * 3 + 1)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_layernorm2d_is_torch_layernorm_on_channels_last(layout):
    torch.manual_seed(1)
    ours, ref = labnorm.LayerNorm2d(6).double(), nn.LayerNorm(6, eps=1e-6).double()
    _randomize(ours, ref)
    x = torch.randn(3, 6, 5, 4, dtype=F64) * 2 - 1
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    _agree(ours, ref, x, ref_in=_nhwc, ref_out=_nchw)
    # eval computes the same
    _close(ours.eval()(x), _nchw(ref(_nhwc(x))), 1e-12)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("eps", [None, 1e-3])
@pytest.mark.parametrize("affine", [True, False])
def test_rmsnorm_matches_torch(dtype, eps, affine):
    torch.manual_seed(2)
    ours = labnorm.RMSNorm((4, 5), eps=eps, elementwise_affine=affine).to(dtype)
    ref = nn.RMSNorm((4, 5), eps=eps, elementwise_affine=affine).to(dtype)
    _randomize(ours, ref)
    # Small inputs, where the default eps (the dtype's machine epsilon) is visible
    x = torch.randn(3, 2, 4, 5, dtype=dtype) * (1e-7 if dtype == F64 else 1e-3)
    tol = 1e-10 if dtype == F64 else 1e-5
    _agree(ours, ref, x / x.abs().max(), tol)
    _close(ours(x), ref(x), tol)


def test_rmsnorm2d_is_torch_rmsnorm_on_channels_last():
    torch.manual_seed(3)
    ours, ref = labnorm.RMSNorm2d(6).double(), nn.RMSNorm(6).double()
    _randomize(ours, ref)
    _agree(ours, ref, torch.randn(2, 6, 3, 5, dtype=F64) + 0.5, ref_in=_nhwc, ref_out=_nchw)


def test_norm_ln_is_layer_norm_over_chw():
    # norm="ln": GroupNorm(1, C) = LayerNorm over (C, H, W) with per-channel affine
    torch.manual_seed(4)
    layer = make_norm("ln", 6).double()
    assert isinstance(layer, labnorm.GroupNorm) and layer.num_groups == 1
    x = torch.randn(3, 6, 4, 5, dtype=F64) * 2 + 3
    _close(layer(x), nn.LayerNorm((6, 4, 5), elementwise_affine=False).double()(x), 1e-10)


# ------------------------------------------------------------------ InstanceNorm2d


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("track", [False, True])
@pytest.mark.parametrize("momentum", [0.1, 0.4])
def test_instancenorm_matches_torch_over_training_then_eval(affine, track, momentum):
    torch.manual_seed(5)
    kw = dict(affine=affine, track_running_stats=track, momentum=momentum)
    ours, ref = labnorm.InstanceNorm2d(5, **kw).double(), nn.InstanceNorm2d(5, **kw).double()
    _randomize(ours, ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for step, shape in enumerate([(4, 5, 3, 3), (1, 5, 6, 2), (3, 5, 1, 4), (2, 5, 4, 4)]):
        for m in (ours, ref):
            m.zero_grad()
        _agree(ours, ref, torch.randn(shape, dtype=F64) * (step + 1) + step)
        for name, buf in ref.named_buffers():
            _close(dict(ours.named_buffers())[name], buf, 1e-12)
    ours.eval(), ref.eval()
    x = torch.randn(3, 5, 4, 3, dtype=F64) * 2 + 1
    _agree(ours, ref, x)
    # Unbatched [C, H, W], as torch
    _close(ours(x[0]), ref(x[0]), 1e-10)


def test_instancenorm_loads_a_torch_checkpoint():
    ref = nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
    ref(torch.randn(3, 4, 5, 5) * 2 + 1)
    ours = labnorm.InstanceNorm2d(4, affine=True, track_running_stats=True)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 3, 3)
    _close(ours.eval()(x), ref.eval()(x), 1e-6)


def test_instancenorm_refuses_momentum_none_that_torch_silently_ignores():
    ref = nn.InstanceNorm2d(3, track_running_stats=True, momentum=None)
    ref(torch.randn(2, 3, 4, 4) + 5)
    assert torch.equal(ref.running_mean, torch.zeros(3))  # torch: no update at all
    with pytest.raises(ValueError, match="InstanceNorm2d: momentum"):
        labnorm.InstanceNorm2d(3, track_running_stats=True, momentum=None)


def test_instancenorm_single_position_raises_like_torch():
    x = torch.randn(4, 3, 1, 1)
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        nn.InstanceNorm2d(3)(x)
    with pytest.raises(ValueError, match="InstanceNorm2d: expected more than 1 spatial position"):
        labnorm.InstanceNorm2d(3)(x)
    # With running statistics, eval needs no instance statistics
    layer = labnorm.InstanceNorm2d(3, track_running_stats=True).eval()
    assert layer(x).shape == x.shape


# ------------------------------------------------------------------ GhostBatchNorm2d


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_ghostbn_with_one_virtual_batch_is_torch_batchnorm(affine, momentum):
    torch.manual_seed(6)
    kw = dict(affine=affine, momentum=momentum)
    ours = labnorm.GhostBatchNorm2d(4, virtual_batch_size=8, **kw).double()
    ref = nn.BatchNorm2d(4, **kw).double()
    _randomize(ours, ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for step, n in enumerate([8, 5, 2]):
        for m in (ours, ref):
            m.zero_grad()
        _agree(ours, ref, torch.randn(n, 4, 3, 3, dtype=F64) * (step + 1) + step)
        for name, buf in ref.named_buffers():
            _close(dict(ours.named_buffers())[name], buf, 1e-12)
    ours.eval(), ref.eval()
    _agree(ours, ref, torch.randn(20, 4, 2, 3, dtype=F64))


class _BNLoop(nn.Module):
    """The definition: one torch BatchNorm2d applied to each `x.split(V)` in turn."""

    def __init__(self, bn, v):
        super().__init__()
        self.bn, self.v = bn, v

    def forward(self, x):
        if not self.training and self.bn.track_running_stats:
            return self.bn(x)
        return torch.cat([self.bn(chunk) for chunk in x.split(self.v)])


@pytest.mark.parametrize("n", [12, 10, 3])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("track", [True, False])
def test_ghostbn_is_a_loop_of_batchnorm_over_virtual_batches(n, momentum, track):
    torch.manual_seed(7)
    kw = dict(momentum=momentum, track_running_stats=track)
    ours = labnorm.GhostBatchNorm2d(3, virtual_batch_size=4, **kw).double()
    bn = nn.BatchNorm2d(3, **kw).double()
    _randomize(ours, bn)
    ref = _BNLoop(bn, 4)
    for step in range(3):
        for m in (ours, bn):
            m.zero_grad()
        x = torch.randn(n, 3, 2, 3, dtype=F64) * (step + 1) + step
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), ref(xb)
        _close(ya, yb, 1e-10)
        g = torch.randn_like(ya)
        ya.backward(g), yb.backward(g)
        _close(xa.grad, xb.grad, 1e-9)
        _close(ours.weight.grad, bn.weight.grad, 1e-8)
        _close(ours.bias.grad, bn.bias.grad, 1e-8)
        for name, buf in bn.named_buffers():
            _close(dict(ours.named_buffers())[name], buf, 1e-12)
    if track:
        # ceil(n / 4) updates per step
        assert ours.num_batches_tracked.item() == 3 * -(-n // 4)
    ours.eval(), ref.eval()
    x = torch.randn(7, 3, 2, 2, dtype=F64)
    _close(ours(x), ref(x), 1e-10)


def test_ghostbn_single_value_virtual_batch_raises():
    layer = labnorm.GhostBatchNorm2d(3, virtual_batch_size=4)
    with pytest.raises(ValueError, match="GhostBatchNorm2d: .*the last virtual batch"):
        layer(torch.randn(5, 3, 1, 1))  # remainder of one 1×1 sample
    with pytest.raises(ValueError, match="GhostBatchNorm2d: expected more than 1 value per channel"):
        layer(torch.randn(1, 3, 1, 1))
    layer(torch.randn(5, 3, 2, 2))  # one sample with 4 positions is a batch
    assert layer.eval()(torch.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)


# ------------------------------------------------------------------ DynamicTanh


@pytest.mark.parametrize("channels_last", [False, True])
def test_dynamic_tanh_matches_the_paper_formula(channels_last):
    torch.manual_seed(8)
    ours = labnorm.DynamicTanh(5, alpha_init=0.7, channels_last=channels_last).double()
    _randomize(ours)
    assert ours.alpha.shape == (1,) and ours.weight.shape == ours.bias.shape == (5,)

    class Formula(nn.Module):
        # y = gamma * tanh(alpha x) + beta, gamma/beta on the channel dim
        def __init__(self):
            super().__init__()
            self.alpha, self.weight, self.bias = (nn.Parameter(p.detach().clone()) for p in
                                                  (ours.alpha, ours.weight, ours.bias))

        def forward(self, x):
            if channels_last:
                return self.weight * torch.tanh(self.alpha * x) + self.bias
            return self.weight[:, None, None] * torch.tanh(self.alpha * x) + self.bias[:, None, None]

    x = torch.randn((2, 3, 4, 5) if channels_last else (2, 5, 3, 4), dtype=F64) * 3
    _agree(ours, Formula(), x)


# ------------------------------------------------------------------ bad input and edge cases

LAYERS = {
    "LayerNorm": lambda: labnorm.LayerNorm(4),
    "LayerNorm2d": lambda: labnorm.LayerNorm2d(4),
    "RMSNorm": lambda: labnorm.RMSNorm(4),
    "RMSNorm2d": lambda: labnorm.RMSNorm2d(4),
    "InstanceNorm2d": lambda: labnorm.InstanceNorm2d(4, affine=True, track_running_stats=True),
    "GhostBatchNorm2d": lambda: labnorm.GhostBatchNorm2d(4, virtual_batch_size=2),
    "DynamicTanh": lambda: labnorm.DynamicTanh(4),
}


def _input(name, n=3, h=3, w=4):
    # The last-dim layers get [N, C, H, 4]; the others [N, 4, H, W]
    return torch.randn(n, 4, h, w) if name not in ("LayerNorm", "RMSNorm") else torch.randn(n, 2, h, 4)


@pytest.mark.parametrize(
    "name, shape, message",
    [
        ("LayerNorm", (2, 3, 5), r"LayerNorm: expected an input whose last 1 dim\(s\) are \(4,\)"),
        ("RMSNorm", (2, 5), r"RMSNorm: expected an input whose last 1 dim\(s\) are \(4,\)"),
        ("LayerNorm2d", (2, 4, 3), "LayerNorm2d: expected a 4-D input"),
        ("LayerNorm2d", (2, 5, 3, 3), "LayerNorm2d: expected 4 channels"),
        ("RMSNorm2d", (2, 3, 3, 3), "RMSNorm2d: expected 4 channels"),
        ("InstanceNorm2d", (2, 4), "InstanceNorm2d: expected a 4-D input"),
        ("InstanceNorm2d", (2, 3, 3, 3), "InstanceNorm2d: expected 4 channels"),
        ("GhostBatchNorm2d", (2, 4, 3), "GhostBatchNorm2d: expected a 4-D input"),
        ("GhostBatchNorm2d", (2, 5, 3, 3), "GhostBatchNorm2d: expected 4 channels"),
        ("DynamicTanh", (4,), "DynamicTanh: expected an input of rank >= 2"),
        ("DynamicTanh", (2, 3, 4, 4), "DynamicTanh: expected .* 4 channels in dim 1"),
    ],
)
def test_bad_input_names_the_layer(name, shape, message):
    with pytest.raises(ValueError, match=message):
        LAYERS[name]()(torch.randn(shape))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: labnorm.LayerNorm(1), "LayerNorm: normalized_shape .* holds one value"),
        (lambda: labnorm.LayerNorm([]), "LayerNorm: normalized_shape must be"),
        (lambda: labnorm.LayerNorm2d(1), "LayerNorm2d: num_channels must be an int >= 2"),
        (lambda: labnorm.RMSNorm2d(0), "RMSNorm2d: num_channels"),
        (lambda: labnorm.InstanceNorm2d(3, momentum=2.0), "InstanceNorm2d: momentum"),
        (lambda: labnorm.GhostBatchNorm2d(3, virtual_batch_size=0), "GhostBatchNorm2d: virtual_batch_size"),
        (lambda: labnorm.GhostBatchNorm2d(3, momentum=-1), "GhostBatchNorm2d: momentum"),
        (lambda: labnorm.DynamicTanh(0), "DynamicTanh: num_features"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("name", [n for n in LAYERS if n != "GhostBatchNorm2d"])
def test_batch_of_one_trains(name):
    # No statistic of these layers involves the batch
    layer = LAYERS[name]()
    x = _input(name, n=1)
    layer(x).sum().backward()


@pytest.mark.parametrize("name", list(LAYERS))
def test_all_zero_input_gives_finite_documented_output(name):
    layer = LAYERS[name]()
    _randomize(layer)
    x = torch.zeros_like(_input(name)).requires_grad_()
    y = layer(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    if name.startswith("RMSNorm"):
        assert torch.equal(y, torch.zeros_like(y))  # 0 / sqrt(eps)
    else:
        # beta, on the channel dim (last for LayerNorm)
        beta = layer.bias if name == "LayerNorm" else layer.bias.reshape(1, -1, 1, 1)
        _close(y, beta.detach().expand_as(y), 1e-6)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("seed", range(2))
def test_float32_mean_100_std_001(name, seed):
    torch.manual_seed(seed)
    layer = LAYERS[name]()
    x = _input(name, n=4, h=5, w=4) * 0.01 + 100
    y = layer(x)
    truth = copy.deepcopy(LAYERS[name]()).double()(x.double())
    if name.startswith("RMSNorm"):
        # No centring: the output is ~1 everywhere, and equal to float64 to float32 precision
        _close(y, torch.ones_like(y), 1e-3)
        _close(y, truth, 1e-6)
    elif name == "DynamicTanh":
        # tanh(50) = 1: gamma + beta everywhere (DyT does not normalize)
        _close(y, torch.ones_like(y), 0)
    else:
        _close(y, truth, 1e-5)


@pytest.mark.parametrize(("ours", "public"), [
    pytest.param(lambda: labnorm.LayerNorm(6), lambda: nn.LayerNorm(6), id="LayerNorm"),
    pytest.param(lambda: labnorm.InstanceNorm2d(5), lambda: nn.InstanceNorm2d(5), id="InstanceNorm2d"),
])
def test_the_mean_check_buys_precision_the_public_layer_lacks(ours, public):
    # What the check of the kernel's mean costs at batch 2 (benchmarks/README.md) buys: on float32
    # input of mean 100 and std 0.01, torch's layer, the same kernel without the check, is off by
    # more than 1e-4 on unit-scale outputs; labnorm's is within 1e-6 of float64
    torch.manual_seed(0)
    x = torch.randn(4, 5, 4, 6) * 0.01 + 100
    truth = public().double()(x.double())
    assert (public()(x).double() - truth).abs().max() > 1e-4
    assert (ours()(x).double() - truth).abs().max() < 1e-6


@pytest.mark.parametrize("build", [
    pytest.param(lambda: labnorm.InstanceNorm2d(4, affine=True, track_running_stats=True), id="InstanceNorm2d"),
    pytest.param(lambda: labnorm.GhostBatchNorm2d(4, virtual_batch_size=3), id="GhostBatchNorm2d"),
])
def test_float32_mean_100_running_statistics_and_gradients(build):
    # The large-mean path runs the kernel on shifted input and adds the shift back into the running
    # mean: running statistics and input gradients must still match float64
    torch.manual_seed(16)
    layer = build()
    truth = copy.deepcopy(layer).double()
    x = (torch.randn(5, 4, 3, 3) * 0.01 + 100).requires_grad_()
    x64 = x.detach().double().requires_grad_()
    g = torch.randn(5, 4, 3, 3)
    layer(x).backward(g)
    truth(x64).backward(g.double())
    _close(layer.running_mean, truth.running_mean, 1e-5)
    _close(layer.running_var, truth.running_var, 2e-7)  # float32 rounding of ~0.9
    # dL/dx is of order 1/std = 100: compare relatively
    assert (x.grad.double() - x64.grad).abs().max() <= 1e-5 * x64.grad.abs().max()


@pytest.mark.parametrize("name", list(LAYERS))
def test_bf16_autocast(name):
    torch.manual_seed(9)
    layer = LAYERS[name]()
    ref = copy.deepcopy(layer)
    conv = nn.Conv2d(4, 4, 1) if name not in ("LayerNorm", "RMSNorm") else nn.Conv2d(2, 2, 1)
    x = _input(name) + 2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv(x)
        assert h.dtype == torch.bfloat16
        y = layer(h)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    # Equal to the float32 layer on the same bf16 activations, up to bf16 rounding of the output
    _close(y.float(), ref(h.float()), 0.05)
    for (_, a), (_, b) in zip(layer.named_buffers(), ref.named_buffers()):
        _close(a.float(), b.float(), 1e-5)


@pytest.mark.parametrize("name", list(LAYERS))
def test_state_dict_round_trip_and_deepcopy(name):
    torch.manual_seed(10)
    layer = LAYERS[name]()
    _randomize(layer)
    layer(_input(name) * 2 + 1)  # move any running statistics
    fresh = LAYERS[name]()
    fresh.load_state_dict(layer.state_dict())
    twin = copy.deepcopy(layer)
    x = _input(name)
    for mode in ("train", "eval"):
        for m in (layer, fresh, twin):
            m.train(mode == "train")
        with torch.no_grad():
            y = layer(x)
            _close(fresh(x), y, 0)
            _close(twin(x), y, 0)
    # The copy is independent
    with torch.no_grad():
        next(twin.parameters()).add_(1)
    assert not torch.equal(next(twin.parameters()), next(layer.parameters()))


@pytest.mark.parametrize("name", list(LAYERS))
def test_compiles_fullgraph_aot_eager_train_and_eval(name):
    torch.manual_seed(11)
    layer = LAYERS[name]()
    _randomize(layer)
    eager = copy.deepcopy(layer)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x = _input(name) * 2 + 1
    _close(compiled(x), eager(x), 1e-5)
    for (_, a), (_, b) in zip(layer.named_buffers(), eager.named_buffers()):
        _close(a.float(), b.float(), 1e-6)
    layer.eval(), eager.eval()
    _close(compiled(x), eager(x), 1e-5)


def test_inductor_eager_equals_compiled_train_and_eval():
    """Every layer under inductor, in one small graph (inductor has had wrong-eval-norm bugs)."""
    torch.manual_seed(12)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.Sequential(
                labnorm.LayerNorm2d(4), labnorm.RMSNorm2d(4),
                labnorm.InstanceNorm2d(4, affine=True, track_running_stats=True),
                labnorm.GhostBatchNorm2d(4, virtual_batch_size=2), labnorm.DynamicTanh(4),
            )
            self.ln, self.rms = labnorm.LayerNorm(5), labnorm.RMSNorm(5)

        def forward(self, x):
            return self.rms(self.ln(self.convs(x)))

    model = Stack()
    _randomize(model)
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="inductor")
    x = torch.randn(6, 4, 3, 5) * 2 + 1
    t0 = time.perf_counter()
    for step in range(2):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = compiled(xa), eager(xb)
        _close(ya, yb, 1e-4)
        ya.square().sum().backward(), yb.square().sum().backward()
        _close(xa.grad, xb.grad, 1e-3)
        for (name, p), (_, q) in zip(model.named_parameters(), eager.named_parameters()):
            _close(p.grad, q.grad, 1e-3)
    for (_, a), (_, b) in zip(model.named_buffers(), eager.named_buffers()):
        _close(a.float(), b.float(), 1e-5)
    model.eval(), eager.eval()
    with torch.no_grad():
        _close(compiled(x), eager(x), 1e-4)
    print(f"inductor train+eval: {time.perf_counter() - t0:.1f} s")


# ------------------------------------------------------------------ norm= names in every model

NEW_NORMS = ["ln", "ln2d", "rms", "in", "gbn", "dyt"]


def _smoke_step(model, n=2):
    x, y = torch.randn(n, 3, 32, 32), torch.randint(0, 10, (n,))
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("norm", NEW_NORMS)
@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_model_trains_a_smoke_step_with_each_new_norm(model_name, norm):
    torch.manual_seed(13)
    width = 8 if model_name == "small_cnn" else 0.125
    _smoke_step(build_model(model_name, norm=norm, width=width))


def test_ghost_bn_spec_and_a_batch_it_does_not_divide():
    layer = make_norm("gbn:4", 16)
    assert isinstance(layer, labnorm.GhostBatchNorm2d) and layer.virtual_batch_size == 4
    assert make_norm("gbn", 16).virtual_batch_size == 32
    # batch 6 = virtual batches of 4 and 2
    _smoke_step(build_model("small_cnn", norm="gbn:4", width=8), n=6)
    # batch 5 = 4 + 1: VGG's last norms see 2×2 maps, so the one-sample remainder has 4 values
    # per channel and trains (a 1×1 remainder raises: test_ghostbn_single_value_virtual_batch_raises)
    _smoke_step(build_model("vgg16", norm="gbn:4", width=0.125), n=5)


@pytest.mark.parametrize("dims", [(1,), (2, 3), (0, 2, 3), (1, 3)])
def test_shift_before_the_kernel_changes_no_value_or_gradient(dims):
    # LayerNorm(2d), InstanceNorm2d and GhostBatchNorm2d hand torch's kernels $x - s$ ($s$ detached, one
    # value per slice over `dims`): the standardization over `dims` must not see it, in value or gradient.
    from labnorm.layer_norm import shifted

    torch.manual_seed(14)
    x = (torch.randn(3, 4, 2, 3, dtype=F64) * 2 + 5).requires_grad_()
    w = torch.randn_like(x)

    def standardized(t):
        var, mean = torch.var_mean(t, dim=dims, correction=0, keepdim=True)
        return (t - mean) / torch.sqrt(var + 1e-5)

    plain, moved = standardized(x), standardized(shifted(x, dims))
    assert torch.allclose(plain, moved, atol=1e-12)
    (g_plain,) = torch.autograd.grad((plain * w).sum(), x)
    (g_moved,) = torch.autograd.grad((moved * w).sum(), x)
    assert torch.allclose(g_plain, g_moved, atol=1e-12)
    # and the shift is not constant: every slice over `dims` is moved by its own first value
    assert not torch.allclose(shifted(x, dims), x)
    assert torch.autograd.gradcheck(lambda t: standardized(shifted(t, dims)), (x,))


def _double_backward_pairs():
    torch.manual_seed(15)
    ln2d, ln = labnorm.LayerNorm2d(4), labnorm.LayerNorm((4, 3, 3))
    inorm, gbn = labnorm.InstanceNorm2d(4, affine=True), labnorm.GhostBatchNorm2d(4, virtual_batch_size=8)
    t_ln2d, t_ln = nn.LayerNorm(4, eps=1e-6), nn.LayerNorm((4, 3, 3))
    t_in, t_bn = nn.InstanceNorm2d(4, affine=True), nn.BatchNorm2d(4)
    pairs = [(ln2d, lambda x: t_ln2d(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), t_ln2d), (ln, t_ln, t_ln),
             (inorm, t_in, t_in), (gbn, t_bn, t_bn)]
    for ours, _, ref in pairs:
        ours.double(), ref.double()
        with torch.no_grad():
            for p in ours.parameters():
                p.uniform_(0.5, 1.5)
        ref.load_state_dict(ours.state_dict())
    return [pytest.param(ours, ref_fn, ref, id=type(ours).__name__) for ours, ref_fn, ref in pairs]


@pytest.mark.parametrize("ours, ref_fn, ref", _double_backward_pairs())
def test_double_backward_equals_torch(ours, ref_fn, ref):
    # A gradient penalty through the layer (WGAN-GP, R1): d/dx and d/dparams of |dL/dx|², in float64
    x = (torch.randn(2, 4, 3, 3, dtype=F64) * 3 + 2).requires_grad_()
    w = torch.randn(2, 4, 3, 3, dtype=F64)

    def penalty_grads(fn, params):
        (g,) = torch.autograd.grad((fn(x) * w).sum(), x, create_graph=True)
        # (β drops out of dL/dx: its entry is None for both)
        return torch.autograd.grad(g.square().sum(), [x, *params], allow_unused=True)

    ours_params = list(ours.parameters())
    mine = penalty_grads(ours, ours_params)
    theirs = penalty_grads(ref_fn, [dict(ref.named_parameters())[n] for n, _ in ours.named_parameters()])
    assert len(mine) == len(theirs) == 3
    for a, b in zip(mine, theirs):
        assert (a is None) == (b is None)
        assert a is None or torch.allclose(a, b, atol=1e-9)
    assert mine[0].abs().max() > 1e-3
    assert torch.autograd.gradgradcheck(lambda t: ours(t), (x,))
