"""Every layer in every dtype torch's equivalent accepts, and at N = 0 — drawn from the registry.

The layers come from `labnorm.norms` (every registered norm, its conv where it registers one, the
layer without its activation where it fuses one, and with `norm_batch=2` where it takes one) and from the layers `labnorm` and `labnorm.gan`
export that no norm name builds (`_EXPORTED`). `test_every_exported_layer_has_a_case` fails when a
layer is exported with neither, so a new layer is covered the day it is registered or exported.

The promises, each against a float64 copy of the same layer (the same rounded parameters, the same
rounded input):

- a half-precision module (`.half()`, `.to(torch.bfloat16)`) on input of its dtype runs in training
  and eval, returns that dtype, is close to float64 and back-propagates — as torch's `BatchNorm2d`,
  `GroupNorm`, `LayerNorm`, `InstanceNorm2d`, `RMSNorm`, `Conv2d`, `Linear` and `PReLU` do on the CPU;
- under `torch.autocast("cpu", torch.bfloat16)` a float32 layer runs on float32 and on bf16 input,
  and returns what torch's rule gives: bf16 from a layer with a conv or linear, the input's dtype
  from a normalization layer;
- an empty batch (N = 0) gives an empty output and an empty input gradient, no warning, no state
  change — except in training for the layers that take statistics over the batch (found by what they
  do: one sample's output changes with the samples beside it), which refuse it with a `ValueError`
  that starts with their own name.

`docs/guarantees.md` lists these promises with the tests below.
"""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch import nn

import labnorm
from labnorm import gan
from labnorm.norms import available_norms, make_conv, make_norm, norm_fuses_activation

C = 4
IMAGE = (2, C, 5, 5)


def _registry_cases() -> dict:
    """name -> (builder, input shape), for every registered norm and every conv a norm registers."""
    cases = {}
    for name in available_norms():
        cases[f"norm:{name}"] = (lambda name=name: make_norm(name, C), IMAGE)
        if norm_fuses_activation(name):
            cases[f"norm:{name}:no-activation"] = (lambda name=name: make_norm(name, C, activation=False), IMAGE)
        if type(make_conv(name, C, C)) is not nn.Conv2d:  # the norm lives in (or beside) its own conv
            cases[f"conv:{name}"] = (lambda name=name: make_conv(name, C, C), IMAGE)
        if hasattr(make_norm(name, C), "norm_batch"):  # per-worker statistics: groups of 2 samples
            cases[f"norm:{name}:norm_batch=2"] = (lambda name=name: _with_norm_batch(make_norm(name, C), 2), IMAGE)
    return cases


def _with_norm_batch(layer: nn.Module, b: int) -> nn.Module:
    labnorm.set_norm_batch(layer, b)
    return layer


# The exported layers no norm name builds, and options whose path differs
_EXPORTED = {
    "LayerNorm": (lambda: labnorm.LayerNorm(5), (2, C, 5)),
    "RMSNorm": (lambda: labnorm.RMSNorm(5), (2, C, 5)),
    "WSConv1d": (lambda: labnorm.WSConv1d(C, 3, 3), (2, C, 5)),
    "WSConv2d(bias)": (lambda: labnorm.WSConv2d(C, 3, 3, bias=True), IMAGE),
    "WSConvTranspose2d": (lambda: labnorm.WSConvTranspose2d(C, 3, 3, stride=2), IMAGE),
    "EstimatedBatchNorm2d": (lambda: labnorm.EstimatedBatchNorm2d(C), IMAGE),
    "BatchChannelNorm2d(estimate)": (lambda: labnorm.BatchChannelNorm2d(C, 2, estimate=True), IMAGE),
    "BatchNorm2d(no running stats)": (lambda: labnorm.BatchNorm2d(C, track_running_stats=False), IMAGE),
    "InstanceNorm2d(running stats)": (lambda: labnorm.InstanceNorm2d(C, affine=True, track_running_stats=True),
                                      IMAGE),
    "GhostBatchNorm2d(V=2)": (lambda: labnorm.GhostBatchNorm2d(C, virtual_batch_size=2), (4, C, 3, 3)),
    "SwitchNorm2d(official)": (lambda: labnorm.SwitchNorm2d(C, statistics="official"), IMAGE),
    "StrictWNLinear": (lambda: gan.StrictWNLinear(C, 3), (2, C)),
    "AffineWNLinear": (lambda: gan.AffineWNLinear(C, 3), (2, C)),
    "StrictWNConv2d": (lambda: gan.StrictWNConv2d(C, 3, 3), IMAGE),
    "AffineWNConv2d": (lambda: gan.AffineWNConv2d(C, 3, 3), IMAGE),
    "StrictWNConvTranspose2d": (lambda: gan.StrictWNConvTranspose2d(C, 3, 4, stride=2), IMAGE),
    "AffineWNConvTranspose2d": (lambda: gan.AffineWNConvTranspose2d(C, 3, 4, stride=2), IMAGE),
    "TReLU": (lambda: gan.TReLU(C), IMAGE),
    "TPReLU": (lambda: gan.TPReLU(C), IMAGE),
    "WNAddition": (lambda: gan.WNAddition(C), IMAGE),
    "DynamicErf": (lambda: labnorm.DynamicErf(C), IMAGE),
    "DynamicErf(channels_last)": (lambda: labnorm.DynamicErf(5, channels_last=True), (2, C, 5)),
    "RMSNorm(zero_centered)": (lambda: labnorm.RMSNorm(5, zero_centered=True), (2, C, 5)),
    "QKNorm(rms)": (lambda: labnorm.QKNorm(5), (2, C, 3, 5)),
    "QKNorm(ln)": (lambda: labnorm.QKNorm(5, norm="ln"), (2, C, 3, 5)),
    "CausalSelfAttention(qk_norm)": (lambda: labnorm.CausalSelfAttention(6, 2, qk_norm="rms"), (2, 5, 6)),
}
# Exported modules that are not layers on an input: the WN parametrization acts on a weight (tested through
# the WN layers above)
_NOT_A_LAYER = {"UnitNorm"}

CASES = {**_registry_cases(), **_EXPORTED}


def _call(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # WNAddition adds two branches; QKNorm normalizes queries and keys (both returned, side by side); the
    # others take one input
    if isinstance(layer, labnorm.QKNorm):
        return torch.cat(layer(x, torch.tanh(x)), dim=-1)
    return layer(x, torch.tanh(x)) if isinstance(layer, gan.WNAddition) else layer(x)


def _input(shape, n: int | None = None) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(shape if n is None else (n, *shape[1:])) * 1.5 + 0.3


def _build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    build, shape = CASES[name]
    torch.manual_seed(0)
    return build(), shape


def _close(y: torch.Tensor, ref: torch.Tensor, tol: float, what: str) -> None:
    # Relative to the output's scale: a normalized output is O(1), a conv's a few units
    scale = max(1.0, ref.abs().max().item())
    err = (y.double() - ref).abs().max().item() / scale
    assert err <= tol, f"{what}: max error {err:.3g} of the output scale, above {tol}"


def _check_grads(layer: nn.Module, x: torch.Tensor) -> None:
    assert x.grad is not None and x.grad.dtype == x.dtype and torch.isfinite(x.grad).all()
    for pname, p in layer.named_parameters():
        if p.grad is not None:
            assert p.grad.dtype == p.dtype and torch.isfinite(p.grad).all(), pname


# Tolerance in units of the output's scale: 4 machine epsilons of the dtype (float16 3.9e-3, bfloat16 3.1e-2).
# The worst case measured is about 2: a bf16 WSConv1d, whose weight is standardized in bf16
_TOL = {dtype: 4 * torch.finfo(dtype).eps for dtype in (torch.float16, torch.bfloat16)}


def test_every_exported_layer_has_a_case():
    # A layer labnorm or labnorm.gan exports must be built by a case here (the registry's or `_EXPORTED`)
    built = set()
    for name in CASES:
        layer, _ = _build(name)
        built |= {type(m).__name__.replace("Parametrized", "") for m in layer.modules()}
    exported = {
        name for module in (labnorm, gan) for name in module.__all__
        if isinstance(getattr(module, name), type) and issubclass(getattr(module, name), nn.Module)
    }
    missing = exported - built - _NOT_A_LAYER
    assert not missing, f"exported layers with no dtype/N = 0 case: {sorted(missing)}; add them to _EXPORTED"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_half_precision_module_on_half_precision_input(name, dtype):
    for training in (True, False):
        layer, shape = _build(name)
        layer = layer.to(dtype).train(training)
        # The float64 twin holds the same (rounded) parameters and sees the same (rounded) input
        ref = copy.deepcopy(layer).double()
        x = _input(shape).to(dtype).requires_grad_()
        y = _call(layer, x)
        assert y.dtype == dtype, f"{name}: output {y.dtype} for a {dtype} module and input"
        _close(y, _call(ref, x.detach().double()), _TOL[dtype], f"{name} ({'train' if training else 'eval'})")
        y.float().square().sum().backward()
        _check_grads(layer, x)
        for bname, b in layer.named_buffers():
            assert torch.isfinite(b.double()).all(), bname
            # running statistics stay in the module's dtype (as `.to(dtype)` left them)
            assert not b.is_floating_point() or b.dtype == dtype, bname


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_bf16_autocast(name, input_dtype):
    for training in (True, False):
        layer, shape = _build(name)
        layer.train(training)
        ref = copy.deepcopy(layer).double()
        x = _input(shape).to(input_dtype).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = _call(layer, x)
        # torch's rule: convs and linears compute and return the autocast dtype, norm layers the input's
        weighted = any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) for m in layer.modules())
        expected = torch.bfloat16 if weighted else input_dtype
        assert y.dtype == expected, f"{name}: output {y.dtype}, expected {expected}"
        _close(y, _call(ref, x.detach().double()), _TOL[torch.bfloat16], f"{name} ({'train' if training else 'eval'})")
        y.float().square().sum().backward()
        _check_grads(layer, x)
        assert all(p.dtype == torch.float32 for p in layer.parameters()), "autocast must not convert parameters"


def _needs_the_batch_in_training(layer: nn.Module, shape) -> bool:
    """Whether the layer takes statistics over the batch in training: one sample's output or input
    gradient changes with the samples beside it (Batch Renorm's output is the running statistics'
    normalization until $r, d$ clip; its gradient is the batch's). torch's own layers (`torch-bn`)
    answer N = 0 as torch does."""
    if type(layer).__module__.startswith("torch."):
        return False
    x = _input(shape, n=3)
    seen = []
    for pair in ([0, 1], [0, 2]):
        xp = x[pair].clone().requires_grad_()
        y = _call(copy.deepcopy(layer).train(), xp)
        y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
        seen.append((y[0].detach(), xp.grad[0]))
    return not all(torch.allclose(a, b) for a, b in zip(*seen))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_empty_batch(name, training):
    layer, shape = _build(name)
    layer.train(training)
    before = copy.deepcopy(layer.state_dict())
    x = _input(shape, n=0).requires_grad_()
    if training and _needs_the_batch_in_training(layer, shape):
        owner = type(layer).__name__
        with pytest.raises(ValueError, match=rf"^{re.escape(owner)}\b"):
            _call(layer, x)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "degrees of freedom <= 0" from an empty reduction
            y = _call(layer, x)
            full = _call(copy.deepcopy(layer).eval(), _input(shape))  # the shape a batch gives, per sample
            assert tuple(y.shape) == (0, *full.shape[1:]), f"{name}: output shape {tuple(y.shape)}"
            y.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
    if type(layer).__module__.startswith("torch."):
        return  # torch's BatchNorm2d counts the empty batch in `num_batches_tracked`: torch's answer, not ours
    for k, v in layer.state_dict().items():
        assert torch.equal(v, before[k]), f"{name}: {k} changed on an empty batch"


# ------------------------------------------------------------------ errors name the layer the user built


def _own_name(layer: nn.Module) -> str | None:
    """The name an error of `layer` must start with: its class's (the first layer's for a fused pair
    such as `frn`'s FRN + TLU); `None` for torch's own layers, which answer as torch does."""
    first = layer[0] if isinstance(layer, nn.Sequential) else layer
    if type(first).__module__.startswith("torch."):
        return None
    return type(first).__name__.replace("Parametrized", "")


# (not torch's own layers: torch-bn, torch-gn, the identity, weight_norm's conv)
@pytest.mark.parametrize("name", [name for name in sorted(CASES) if _own_name(_build(name)[0])])
def test_wrong_shape_is_refused_by_the_layers_own_name(name):
    layer, shape = _build(name)
    owner = _own_name(layer)
    # One channel too many, and (for LayerNorm and RMSNorm, which normalize the trailing dim) a last dim too long
    wrong = [shape[0], shape[1] + 1, *shape[2:]]
    if len(wrong) > 2:
        wrong[-1] += 1
    x = _input(tuple(wrong))
    with pytest.raises(ValueError, match=rf"^{re.escape(owner)}\b"):
        _call(layer, x)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # torch's conv, before WSConv1d refuses
@pytest.mark.parametrize("build, owner", [
    # the batch part of BCN refuses, at construction and in training
    (lambda: labnorm.BatchChannelNorm2d(C, 2, momentum=2.0), "BatchChannelNorm2d"),
    (lambda: labnorm.BatchChannelNorm2d(C, 2, estimate=True, estimate_variant="paper"), "BatchChannelNorm2d"),
    (lambda: labnorm.BatchChannelNorm2d(C, 2, norm_batch=0), "BatchChannelNorm2d"),
    (lambda: labnorm.BatchChannelNorm2d(C, 2)(torch.randn(1, C, 1, 1)), "BatchChannelNorm2d"),
    (lambda: labnorm.BatchChannelNorm2d(C, 2, norm_batch=2)(torch.randn(3, C, 2, 2)), "BatchChannelNorm2d"),
    (lambda: labnorm.BatchChannelNorm2d(C, 2, estimate=True)(torch.randn(0, C, 2, 2)), "BatchChannelNorm2d"),
    # torch's conv inside the WS and WN layers, and the UnitNorm parametrization
    (lambda: labnorm.WSConv2d(C, C, 3, groups=3), "WSConv2d"),
    (lambda: labnorm.WSConvTranspose2d(C, C, 3, groups=3), "WSConvTranspose2d"),
    (lambda: labnorm.WSConv1d(C, 0, 3), "WSConv1d"),
    (lambda: labnorm.WSConv2d(C, C, 3, eps=-1.0), "WSConv2d"),
    (lambda: labnorm.WSConv2d(C, C, 3)(torch.randn(2, C, 5)), "WSConv2d"),
    (lambda: gan.StrictWNConv2d(C, C, 3, groups=3), "StrictWNConv2d"),
    (lambda: gan.AffineWNConvTranspose2d(C, C, 3, groups=3), "AffineWNConvTranspose2d"),
    (lambda: gan.AffineWNLinear(C, 3, eps=-1.0), "AffineWNLinear"),
    (lambda: gan.StrictWNLinear(0, 3), "StrictWNLinear"),
    (lambda: gan.TPReLU(0), "TPReLU"),
    (lambda: gan.WNAddition(-1), "WNAddition"),
    # sizes that built a broken layer, or failed with a bare ZeroDivisionError
    (lambda: make_norm("evos0", 0), "EvoNorm2dS0"),
    (lambda: labnorm.SwitchNorm2d(0), "SwitchNorm2d"),
    (lambda: labnorm.EstimatedBatchNorm2d(C, momentum=5.0), "EstimatedBatchNorm2d"),
    (lambda: labnorm.GroupNorm(2, 0), "GroupNorm"),
])
def test_an_inner_error_names_the_layer_the_user_built(build, owner):
    with pytest.raises(ValueError, match=rf"^{re.escape(owner)}\b"):
        build()
