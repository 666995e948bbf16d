"""The tiny GPT: shapes, causality, every norm and placement builds and back-propagates, each placement's
block equals the block written out in float64, the final norm each placement's authors use, bad arguments."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import labnorm
from labnorm.models import MODELS, SEQUENCE_MODELS, build_model
from labnorm.tiny_gpt import PLACEMENTS, SEQUENCE_NORMS, Block, TinyGPT

F64 = torch.float64
SMALL = {"dim": 16, "num_layers": 2, "num_heads": 2, "context": 12}


def _close(a, b, tol):
    assert a.shape == b.shape, (a.shape, b.shape)
    err = (a.double() - b.double()).abs().max().item()
    assert err <= tol, err


def _randomize(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * (torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5))
    return module


def test_build_model_gives_the_tiny_gpt_with_its_defaults():
    model = build_model("tiny_gpt")
    assert isinstance(model, TinyGPT) and model.norm == "ln" and model.placement == "pre" and model.qk_norm is None
    assert model.vocab_size == 65 and model.context >= 64
    assert "tiny_gpt" in SEQUENCE_MODELS and "tiny_gpt" not in MODELS  # the CIFAR-10 models stay apart
    idx = torch.randint(0, 65, (3, 64))
    assert model(idx).shape == (3, 64, 65)
    assert model(idx[:, :5]).shape == (3, 5, 65)
    # Weight tying: the head is the token embedding
    assert model.head.weight is model.tok_emb.weight


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("norm", list(SEQUENCE_NORMS))
def test_every_norm_and_placement_builds_and_backprops(norm, placement):
    torch.manual_seed(0)
    model = build_model("tiny_gpt", norm=norm, placement=placement, **SMALL)
    idx = torch.randint(0, 65, (2, 12))
    logits = model(idx)
    assert logits.shape == (2, 12, 65)
    loss = F.cross_entropy(logits.reshape(-1, 65), idx.roll(-1, 1).reshape(-1))
    loss.backward()
    assert torch.isfinite(loss)
    # Near log(65) at initialization: small logits
    assert abs(loss.item() - torch.log(torch.tensor(65.0)).item()) < 0.5
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("qk_norm", ["rms", "ln"])
def test_qk_norm_option(qk_norm):
    model = build_model("tiny_gpt", norm="rms", placement="pre", qk_norm=qk_norm, **SMALL)
    assert all(isinstance(b.attn.qk_norm, labnorm.QKNorm) and b.attn.qk_norm.norm == qk_norm for b in model.blocks)
    model(torch.randint(0, 65, (2, 6))).sum().backward()


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("norm", ["ln", "derf"])
def test_output_at_t_does_not_depend_on_later_tokens(norm, placement):
    torch.manual_seed(1)
    model = build_model("tiny_gpt", norm=norm, placement=placement, qk_norm="rms", **SMALL).double()
    idx = torch.randint(0, 65, (2, 12))
    changed = idx.clone()
    changed[:, 7:] = torch.randint(0, 65, (2, 5))
    a, b = model(idx), model(changed)
    _close(a[:, :7], b[:, :7], 0)
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-6
    # And by gradients: logits at t = 4 have no gradient with respect to the embeddings after 4
    x = model.tok_emb(idx).detach().requires_grad_()
    h = x + model.pos_emb(torch.arange(12))
    if model.embed_scale is not None:
        h = h * model.embed_scale
    for block in model.blocks:
        h = block(h)
    model.head(model.final_norm(h))[:, 4].sum().backward()
    assert x.grad[:, 5:].abs().max() == 0 and x.grad[:, :5].abs().max() > 0


def _block_from_scratch(block, x, placement, norm):
    """The block written out: nanoGPT's attention and MLP, with the norm layers applied per the placement table."""
    def attn(h):
        b, t, c = h.shape
        qkv = h @ block.attn.qkv.weight.T + block.attn.qkv.bias
        q, k, v = (z.reshape(b, t, 2, c // 2).transpose(1, 2) for z in qkv.split(c, dim=-1))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        return o @ block.attn.proj.weight.T + block.attn.proj.bias

    def mlp(h):
        return F.gelu(h @ block.mlp.fc.weight.T + block.mlp.fc.bias) @ block.mlp.proj.weight.T + block.mlp.proj.bias

    def n(layer, h):
        if norm == "ln":
            return F.layer_norm(h, (h.shape[-1],), layer.weight, layer.bias, 1e-5)
        # rms
        return h * torch.rsqrt(h.square().mean(-1, keepdim=True) + torch.finfo(h.dtype).eps) * layer.weight

    if placement == "pre":
        x = x + attn(n(block.norm1, x))
        return x + mlp(n(block.norm2, x))
    if placement == "post":
        x = n(block.norm1, x + attn(x))
        return n(block.norm2, x + mlp(x))
    x = x + n(block.norm1_out, attn(n(block.norm1, x)))
    return x + n(block.norm2_out, mlp(n(block.norm2, x)))


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("norm", ["ln", "rms"])
def test_each_placement_is_the_block_written_out(norm, placement):
    torch.manual_seed(2)
    block = _randomize(Block(8, 2, norm=norm, placement=placement).double())
    x = torch.randn(2, 5, 8, dtype=F64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = block(xa), _block_from_scratch(block, xb, placement, norm)
    _close(ya, yb, 1e-12)
    g = torch.randn_like(ya)
    ya.backward(g)
    xa_grad, pa = xa.grad.clone(), {n: p.grad.clone() for n, p in block.named_parameters()}
    block.zero_grad()
    yb.backward(g)
    _close(xa_grad, xb.grad, 1e-11)
    for n, p in block.named_parameters():
        _close(pa[n], p.grad, 1e-10)


def test_final_norm_and_embedding_scale_follow_the_authors():
    assert isinstance(TinyGPT("ln", "pre", **SMALL).final_norm, labnorm.LayerNorm)
    assert isinstance(TinyGPT("rms", "peri", **SMALL).final_norm, labnorm.RMSNorm)
    assert isinstance(TinyGPT("ln", "post", **SMALL).final_norm, nn.Identity)  # every post block ends with a norm
    zc = TinyGPT("rms-zero-centred", "pre", **SMALL).final_norm
    assert zc.zero_centered and torch.equal(zc.weight, torch.zeros(16))
    derf = TinyGPT("derf", "pre", **SMALL)
    assert isinstance(derf.final_norm, labnorm.DynamicErf) and derf.final_norm.channels_last
    assert isinstance(TinyGPT("dyt", "pre", **SMALL).blocks[0].norm1, labnorm.DynamicTanh)
    # dyt / derf: embeddings times a learned sqrt(C) (the Derf authors' GPT-2); the others: no scale
    assert derf.embed_scale.item() == pytest.approx(16 ** 0.5)
    assert TinyGPT("ln", "pre", **SMALL).embed_scale is None
    assert hasattr(TinyGPT("ln", "peri", **SMALL).blocks[0], "norm2_out")
    assert not hasattr(TinyGPT("ln", "pre", **SMALL).blocks[0], "norm2_out")


def test_gpt2_initialization():
    torch.manual_seed(3)
    model = TinyGPT(dim=64, num_layers=4)
    assert abs(model.tok_emb.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].mlp.proj.weight.std().item() - 0.02 / 8 ** 0.5) < 0.001
    assert torch.equal(model.blocks[0].attn.qkv.bias, torch.zeros(192))


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "bn"}, r"tiny_gpt: unknown norm 'bn'; known: ln, rms, rms-zero-centred, dyt, derf, none"),
    ({"placement": "sandwich"}, r"tiny_gpt: unknown placement 'sandwich'; known: pre, post, peri"),
    ({"qk_norm": "l2"}, r"QKNorm: unknown norm 'l2'"),
    ({"dim": 10, "num_heads": 4}, "CausalSelfAttention: dim 10 must be divisible by num_heads 4"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model("tiny_gpt", **kwargs)


@pytest.mark.parametrize("idx, message", [
    (torch.zeros(2, 13, dtype=torch.long), "TinyGPT: sequence of 13 tokens is longer than the context of 12"),
    (torch.zeros(2, 5), r"TinyGPT: expected \[B, T\] integer token ids"),
    (torch.zeros(5, dtype=torch.long), r"TinyGPT: expected \[B, T\] integer token ids"),
])
def test_bad_input_is_named(idx, message):
    with pytest.raises(ValueError, match=message):
        TinyGPT(**SMALL)(idx)


def test_unknown_model_lists_both_kinds():
    with pytest.raises(ValueError, match="build_model: unknown model 'gpt5'; known: .*resnet18.*tiny_gpt"):
        build_model("gpt5")


def test_bf16_autocast():
    torch.manual_seed(4)
    model = TinyGPT("derf", "peri", qk_norm="rms", **SMALL)
    idx = torch.randint(0, 65, (2, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(idx)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    _close(y.float(), model(idx), 0.1)


def test_compiles_fullgraph_aot_eager():
    torch.manual_seed(5)
    model = TinyGPT("rms-zero-centred", "peri", qk_norm="ln", **SMALL)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    idx = torch.randint(0, 65, (2, 8))
    _close(compiled(idx), model(idx), 1e-5)
