"""QK-norm and causal self-attention: float64 parity with the formulas written out (and with torch's
scaled_dot_product_attention), the logit bound QK-norm gives, bad input, dtypes, state_dict, compile."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import labnorm
from labnorm.attention import causal_attention

F64 = torch.float64


def _close(a, b, tol):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.double() - b.double()).abs().max().item()
    assert err <= tol, err


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)
    return module


def _rms(t, w, eps):
    return t * torch.rsqrt(t.square().mean(-1, keepdim=True) + eps) * w


def _ln(t, w, b, eps):
    var, mean = torch.var_mean(t, dim=-1, correction=0, keepdim=True)
    return (t - mean) / torch.sqrt(var + eps) * w + b


@pytest.mark.parametrize("norm", ["rms", "ln"])
@pytest.mark.parametrize("seed", range(2))
def test_qk_norm_matches_the_formula_forward_and_gradients(norm, seed):
    torch.manual_seed(seed)
    layer = _randomize(labnorm.QKNorm(8, norm=norm).double(), seed)
    q = (torch.randn(2, 3, 5, 8, dtype=F64) * 4 + 1).requires_grad_()
    k = (torch.randn(2, 3, 5, 8, dtype=F64) * 0.1).requires_grad_()
    qa, ka = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    params = {n: p.detach().clone().requires_grad_() for n, p in layer.named_parameters()}
    if norm == "rms":
        eps = torch.finfo(F64).eps
        qb, kb = _rms(qa, params["q_norm.weight"], eps), _rms(ka, params["k_norm.weight"], eps)
    else:
        qb = _ln(qa, params["q_norm.weight"], params["q_norm.bias"], 1e-5)
        kb = _ln(ka, params["k_norm.weight"], params["k_norm.bias"], 1e-5)
    qh, kh = layer(q, k)
    _close(qh, qb, 1e-12)
    _close(kh, kb, 1e-12)
    # Through the logits q k^T / sqrt(d), as attention uses them
    g = torch.randn(2, 3, 5, 5, dtype=F64)
    ((qh @ kh.transpose(-2, -1)) * g).sum().backward()
    ((qb @ kb.transpose(-2, -1)) * g).sum().backward()
    _close(q.grad, qa.grad, 1e-10)
    _close(k.grad, ka.grad, 1e-8)
    for n, p in layer.named_parameters():
        _close(p.grad, params[n].grad, 1e-9)


def test_qk_norm_bounds_the_logits_whatever_the_scale_of_q_and_k():
    # RMS-normalized q, k with unit scales have norm sqrt(d): |q.k / sqrt(d)| <= sqrt(d), at any input scale
    torch.manual_seed(2)
    d = 16
    layer = labnorm.QKNorm(d).double()
    for scale in (1.0, 1e3, 1e6):
        q, k = torch.randn(2, 2, 7, d, dtype=F64) * scale, torch.randn(2, 2, 7, d, dtype=F64) * scale
        raw = (q @ k.transpose(-2, -1) / math.sqrt(d)).abs().max()
        qh, kh = layer(q, k)
        normed = (qh @ kh.transpose(-2, -1) / math.sqrt(d)).abs().max()
        assert normed <= math.sqrt(d) + 1e-9
        if scale > 1:
            assert raw > 100 * normed


def test_causal_attention_is_torch_sdpa_and_the_formula():
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 3, 6, 4, dtype=F64) for _ in range(3))
    y = causal_attention(q, k, v)
    _close(y, F.scaled_dot_product_attention(q, k, v, is_causal=True), 1e-13)
    # Row t by hand: softmax over u <= t
    t = 3
    logits = (q[..., t, :].unsqueeze(-2) @ k[..., : t + 1, :].transpose(-2, -1)) / 2.0
    _close(y[..., t, :], (torch.softmax(logits, -1) @ v[..., : t + 1, :]).squeeze(-2), 1e-13)


@pytest.mark.parametrize("qk_norm", [None, "rms", "ln"])
def test_causal_self_attention_equals_the_formula_written_out(qk_norm):
    torch.manual_seed(4)
    attn = _randomize(labnorm.CausalSelfAttention(12, 3, qk_norm=qk_norm).double())
    x = torch.randn(2, 5, 12, dtype=F64)
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = (t.reshape(2, 5, 3, 4).transpose(1, 2) for t in qkv.split(12, dim=-1))
    if qk_norm is not None:
        q, k = attn.qk_norm(q, k)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(2, 5, 12)
    _close(attn(x), o @ attn.proj.weight.T + attn.proj.bias, 1e-12)


@pytest.mark.parametrize("build, args, message", [
    (lambda: labnorm.QKNorm(8), (torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 8)), "QKNorm: expected queries"),
    (lambda: labnorm.QKNorm(8), (torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 6)), "QKNorm: expected keys"),
    (lambda: labnorm.CausalSelfAttention(8, 2), (torch.randn(2, 5, 6),), r"CausalSelfAttention: expected \[B, T, 8\]"),
    (lambda: labnorm.CausalSelfAttention(8, 2), (torch.randn(5, 8),), r"CausalSelfAttention: expected \[B, T, 8\]"),
])
def test_bad_input_names_the_layer(build, args, message):
    with pytest.raises(ValueError, match=message):
        build()(*args)


@pytest.mark.parametrize("build, message", [
    (lambda: labnorm.QKNorm(8, norm="l2"), r"QKNorm: unknown norm 'l2'; known: rms, ln"),
    (lambda: labnorm.QKNorm(1), "QKNorm: head_dim must be an int >= 2"),
    (lambda: labnorm.CausalSelfAttention(10, 3), "CausalSelfAttention: dim 10 must be divisible by num_heads 3"),
    (lambda: labnorm.CausalSelfAttention(8, 2, qk_norm="bn"), "QKNorm: unknown norm 'bn'"),
])
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_empty_batch():
    attn = labnorm.CausalSelfAttention(8, 2, qk_norm="rms")
    x = torch.randn(0, 5, 8, requires_grad=True)
    y = attn(x)
    y.sum().backward()
    assert y.shape == x.shape and x.grad.shape == x.shape


def test_bf16_autocast_and_half_precision_module():
    torch.manual_seed(5)
    layer = _randomize(labnorm.QKNorm(8))
    q, k = torch.randn(2, 2, 4, 8), torch.randn(2, 2, 4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        qh, kh = layer(q.bfloat16(), k.bfloat16())
        y = labnorm.CausalSelfAttention(8, 2, qk_norm="rms")(torch.randn(2, 4, 8))
    assert qh.dtype == kh.dtype == y.dtype == torch.bfloat16
    _close(qh.float(), layer(q.bfloat16().float(), k)[0], 0.05)
    half = copy.deepcopy(layer).half()
    qh, kh = half(q.half(), k.half())
    assert qh.dtype == torch.float16
    _close(kh, layer(q, k.half().float())[1], 0.01)


def test_state_dict_round_trip_and_deepcopy():
    attn = _randomize(labnorm.CausalSelfAttention(8, 2, qk_norm="ln"))
    assert {"qk_norm.q_norm.weight", "qk_norm.k_norm.bias"} <= set(attn.state_dict())
    fresh = labnorm.CausalSelfAttention(8, 2, qk_norm="ln")
    fresh.load_state_dict(attn.state_dict())
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        _close(fresh(x), attn(x), 0)
        _close(copy.deepcopy(attn)(x), attn(x), 0)


@pytest.mark.parametrize("qk_norm", ["rms", "ln"])
def test_compiles_fullgraph_aot_eager(qk_norm):
    torch.manual_seed(6)
    attn = _randomize(labnorm.CausalSelfAttention(8, 2, qk_norm=qk_norm))
    eager = copy.deepcopy(attn)
    compiled = torch.compile(attn, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 5, 8)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = compiled(xa), eager(xb)
    _close(ya, yb, 1e-5)
    ya.square().sum().backward(), yb.square().sum().backward()
    _close(xa.grad, xb.grad, 1e-4)
