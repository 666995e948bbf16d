"""The norm= names of FRN, EvoNorm and Batch Renorm; norms that include their activation get no second
ReLU in any model; every model trains a step with each; eager == inductor-compiled in train and eval."""

import copy

import pytest
import torch
from torch import fx, nn
from torch.nn import functional as F

from labnorm import TLU, BatchRenorm2d, DynamicTanh, EvoNorm2dB0, EvoNorm2dS0, FilterResponseNorm2d
from labnorm.models import MODELS, build_model, conv_norm_act
from labnorm.norms import available_norms, make_norm, norm_fuses_activation, register_norm

NEW_NORMS = ["frn", "evob0", "evos0", "brn"]
FUSED_LAYERS = (FilterResponseNorm2d, TLU, EvoNorm2dB0, EvoNorm2dS0)
NORM_LAYERS = FUSED_LAYERS + (nn.BatchNorm2d, BatchRenorm2d)


def _width(model_name):
    return {"width": 8} if model_name == "small_cnn" else {"width": 0.125}


def test_registered_and_flagged():
    assert set(NEW_NORMS) <= set(available_norms())
    assert [norm_fuses_activation(n) for n in NEW_NORMS] == [True, True, True, False]
    assert not any(norm_fuses_activation(n) for n in ("bn", "gn:8", "ws+bn", "sn", "wn", "none", "torch-bn"))
    assert norm_fuses_activation("evos0:8")
    with pytest.raises(ValueError, match="unknown norm"):
        norm_fuses_activation("nope")
    frn = make_norm("frn", 16)
    assert isinstance(frn, nn.Sequential) and [type(m) for m in frn] == [FilterResponseNorm2d, TLU]
    assert type(make_norm("frn", 16, activation=False)) is FilterResponseNorm2d
    assert make_norm("evob0", 16).apply_act and not make_norm("evob0", 16, activation=False).apply_act
    assert make_norm("evos0", 24).groups == 24 and not make_norm("evos0", 24, activation=False).apply_act
    assert isinstance(make_norm("brn", 16), BatchRenorm2d)
    # activation= changes nothing for a norm that does not fuse one
    assert type(make_norm("bn", 8, activation=False)) is type(make_norm("bn", 8))


def test_register_norm_with_fused_activation(monkeypatch):
    # A private copy of the registry: the test's norm must not leak into what later tests (and the pages
    # they render, which list every registered norm) see
    from labnorm import norms

    monkeypatch.setattr(norms, "_NORMS", dict(norms._NORMS))
    monkeypatch.setattr(norms, "_FUSES_ACTIVATION", set(norms._FUSES_ACTIVATION))

    @register_norm("test-fused-tanh", fuses_activation=True)
    def _build(c, arg, activation):
        return nn.Sequential(nn.BatchNorm2d(c), nn.Tanh()) if activation else nn.BatchNorm2d(c)

    assert norm_fuses_activation("test-fused-tanh")
    block = conv_norm_act(3, 8, "test-fused-tanh")
    assert not any(isinstance(m, nn.ReLU) for m in block.modules())


def test_existing_norms_keep_their_relu():
    assert [type(m) for m in conv_norm_act(3, 8, "bn")][1:] == [type(make_norm("bn", 8)), nn.ReLU]
    model = build_model("resnet18", "bn", width=0.125)
    assert not any(getattr(m, "fused_act", False) for m in model.modules())


class _LeafTracer(fx.Tracer):
    # every module without children is a leaf (labnorm's layers check shapes, which FX cannot trace)
    def is_leaf_module(self, m, qualname):
        return len(list(m.children())) == 0


def _is_relu(node, modules):
    # the activation a model puts after a norm: ReLU, or GELU in the fast_cifar net
    if node.op == "call_module":
        return isinstance(modules[node.target], (nn.ReLU, nn.GELU))
    if node.op == "call_function":
        return node.target in (torch.relu, F.relu, torch.relu_, F.gelu)
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _norms_followed_by_relu(model, layer_types):
    """(norm nodes of `layer_types`, how many of them feed a ReLU directly)."""
    graph = _LeafTracer().trace(model)
    modules = dict(model.named_modules())
    norms = [n for n in graph.nodes if n.op == "call_module" and isinstance(modules[n.target], layer_types)]
    return len(norms), sum(any(_is_relu(u, modules) for u in n.users) for n in norms)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_no_relu_directly_after_a_fused_norm(model_name):
    # the checker sees BN -> ReLU in the BN model (every model has some) ...
    bn = build_model(model_name, "torch-bn", **_width(model_name))
    n_bn, bn_then_relu = _norms_followed_by_relu(bn, nn.BatchNorm2d)
    assert bn_then_relu > 0
    for norm in ("frn", "evob0", "evos0"):
        model = build_model(model_name, norm, **_width(model_name))
        n, then_relu = _norms_followed_by_relu(model, FUSED_LAYERS)
        # ... and none after FRN, TLU or an EvoNorm
        assert then_relu == 0, (model_name, norm)
        # every BN -> ReLU pair became one fused layer (TLU or an EvoNorm with its activation)
        fused = [m for m in model.modules() if isinstance(m, TLU) or getattr(m, "apply_act", False)]
        assert len(fused) == bn_then_relu, (model_name, norm)
        # and no norm went missing
        assert sum(isinstance(m, (FilterResponseNorm2d, EvoNorm2dB0, EvoNorm2dS0)) for m in model.modules()) == n_bn


@pytest.mark.parametrize("norm", NEW_NORMS)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_every_model_trains_a_step(model_name, norm):
    torch.manual_seed(0)
    model = build_model(model_name, norm, **_width(model_name))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    opt.step()
    model.eval()
    assert torch.isfinite(model(x)).all()


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_inductor_equals_eager_in_train_and_eval():
    # One small stack of the four layers through inductor (the backend that has had wrong-eval BN/GN
    # bugs): forward in training, with the running statistics, then forward in eval. Gradients under
    # compile are checked per layer with backend="aot_eager" in each layer's test file (cheaper).
    torch.manual_seed(1)

    def stack():
        return nn.Sequential(FilterResponseNorm2d(8), TLU(8), EvoNorm2dB0(8), EvoNorm2dS0(8, groups=4),
                             BatchRenorm2d(8, momentum=0.1, r_max=1.5, d_max=0.5))

    eager, other = stack(), stack()
    with torch.no_grad():
        for p in eager.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    other.load_state_dict(eager.state_dict())
    compiled = torch.compile(other, backend="inductor")
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(4, 8, 6, 6) * 2 + 0.5
            assert torch.allclose(compiled(x), eager(x), atol=1e-5, rtol=1e-5)
            for (name, a), b in zip(eager.named_buffers(), other.buffers()):
                assert torch.allclose(b.float(), a.float(), atol=1e-6), name
        eager.eval(), other.eval()
        x = torch.randn(3, 8, 6, 6)
        assert torch.allclose(compiled(x), eager(x), atol=1e-5, rtol=1e-5)


# The layers whose graph under torch.compile differs from eager (`labnorm._compile.channel_param`
# repeats per-channel parameters per sample; EvoNorm-S0, and B0 in training, switch to closed-form backwards)
COMPILE_PATH_LAYERS = {
    "frn+tlu": lambda: nn.Sequential(FilterResponseNorm2d(6), TLU(6)),
    "frn_learnable_eps+tlu": lambda: nn.Sequential(FilterResponseNorm2d(6, learnable_eps=True), TLU(6)),
    "evos0": lambda: EvoNorm2dS0(6, groups=3),
    "evob0": lambda: EvoNorm2dB0(6, momentum=0.3),
    "dyt": lambda: DynamicTanh(6),
}


@pytest.mark.parametrize("fast", [True, False], ids=["fast_compiled_path", "formula_compiled"])
@pytest.mark.parametrize(("name", "shape"), [(n, (3, 6, 4, 5)) for n in COMPILE_PATH_LAYERS] + [("dyt", (2, 6, 7))])
def test_compile_path_gradients_equal_eager(name, shape, fast):
    torch.compiler.reset()  # each case compiles the same forwards again: stay under dynamo's recompile limit
    torch.manual_seed(7)
    eager = COMPILE_PATH_LAYERS[name]().double()
    with torch.no_grad():
        for p in eager.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    other = copy.deepcopy(eager)
    for m in other.modules():
        if hasattr(m, "fast_compiled_path"):
            m.fast_compiled_path = fast
    compiled = torch.compile(other, backend="aot_eager", fullgraph=True)
    x = torch.randn(shape, dtype=torch.float64) * 2 + 0.5
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = eager(xa), compiled(xb)
    assert (ya - yb).abs().max() <= 1e-12
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    assert (xa.grad - xb.grad).abs().max() <= 1e-12
    for (pname, p), q in zip(eager.named_parameters(), other.parameters()):
        assert p.grad.shape == q.grad.shape and (p.grad - q.grad).abs().max() <= 1e-11, pname
    for (bname, a), b in zip(eager.named_buffers(), other.buffers()):
        assert (a - b).abs().max() <= 1e-12, bname
    eager.eval(), other.eval()
    with torch.no_grad():
        assert (eager(x) - compiled(x)).abs().max() <= 1e-12


def test_compile_paths_under_inductor_train_step():
    # The same layers through inductor (whose code the compile paths are shaped for), forward and backward
    torch.manual_seed(8)
    eager = nn.Sequential(*(make() for make in COMPILE_PATH_LAYERS.values()))
    with torch.no_grad():
        for p in eager.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    other = copy.deepcopy(eager)
    compiled = torch.compile(other, backend="inductor")
    x = torch.randn(4, 6, 5, 5) * 2 + 0.5
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = eager(xa), compiled(xb)
    assert torch.allclose(ya, yb, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ya)
    ya.backward(g), yb.backward(g)
    assert torch.allclose(xa.grad, xb.grad, atol=1e-4, rtol=1e-4)
    for (pname, p), q in zip(eager.named_parameters(), other.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-4), pname
