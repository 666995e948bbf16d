"""Filter Response Normalization + TLU against the paper's formula (float64), edge cases, bf16, compile."""

import copy

import pytest
import torch

from labnorm import TLU, FilterResponseNorm2d
from labnorm.filter_response_norm import EPS_LOWER


# The paper's formula, written out independently of labnorm's code (Singh & Krishnan 2019, eq. 1-3):
# nu^2 = mean over H, W of x^2; x_hat = x / sqrt(nu^2 + |eps|); y = gamma x_hat + beta; z = max(y, tau)
def frn_tlu_formula(x, gamma, beta, tau, eps):
    nu2 = (x ** 2).mean(dim=(2, 3), keepdim=True)
    x_hat = x / torch.sqrt(nu2 + eps)
    y = gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1)
    return torch.max(y, tau.view(1, -1, 1, 1))


def _randomize(*modules):
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 + (1 if p.dim() else 0))


@pytest.mark.parametrize("shape", [(3, 5, 6, 7), (2, 4, 1, 1)])
@pytest.mark.parametrize("learnable_eps", [False, True])
def test_frn_tlu_equals_the_paper_formula(shape, learnable_eps):
    torch.manual_seed(0)
    c = shape[1]
    frn = FilterResponseNorm2d(c, eps=1e-2 if learnable_eps else 1e-6, learnable_eps=learnable_eps).double()
    tlu = TLU(c).double()
    _randomize(frn, tlu)
    if learnable_eps:
        with torch.no_grad():
            frn.eps.copy_(torch.linspace(-0.3, 0.3, c))  # negative values too: |eps_l| is used
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    params = [frn.weight, frn.bias, tlu.tau] + ([frn.eps] if learnable_eps else [])
    ref_params = [p.detach().clone().requires_grad_() for p in params]
    eps_ref = (EPS_LOWER + ref_params[3].abs()).view(1, -1, 1, 1) if learnable_eps else 1e-6
    z = tlu(frn(x))
    z_ref = frn_tlu_formula(x_ref, *ref_params[:3], eps_ref)
    assert (z - z_ref).abs().max() <= 1e-12
    g = torch.randn_like(z)
    z.backward(g)
    z_ref.backward(g)
    assert (x.grad - x_ref.grad).abs().max() <= 1e-10
    for p, q in zip(params, ref_params):
        assert (p.grad - q.grad).abs().max() <= 1e-10
    # train and eval mode are the same computation
    frn.eval()
    assert torch.equal(tlu(frn(x)), z)


def test_frn_formula_changes_are_caught():
    # eps outside the root, or a centred variance, would differ measurably
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64) + 0.5
    y = FilterResponseNorm2d(3).double()(x)
    assert (y - x / (x.pow(2).mean((2, 3), keepdim=True).sqrt() + 1e-6)).abs().max() > 0
    assert (y - x / (x.var((2, 3), unbiased=False, keepdim=True) + 1e-6).sqrt()).abs().max() > 0.1


def test_defaults_and_parameters():
    frn, tlu = FilterResponseNorm2d(4), TLU(4)
    assert frn.eps == 1e-6 and not frn.learnable_eps
    assert [n for n, _ in frn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in tlu.named_parameters()] == ["tau"]
    learn = FilterResponseNorm2d(4, eps=1e-4, learnable_eps=True)
    assert [n for n, _ in learn.named_parameters()] == ["weight", "bias", "eps"]
    assert torch.allclose(learn.effective_eps(), torch.full((4,), 1e-4 + EPS_LOWER))
    # TLU at init is a ReLU
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(tlu(x), torch.relu(x))


def test_bad_input():
    frn, tlu = FilterResponseNorm2d(4), TLU(4)
    with pytest.raises(ValueError, match=r"FilterResponseNorm2d: expected a 4-D input"):
        frn(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"FilterResponseNorm2d: expected 4 channels.*got 3"):
        frn(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"TLU: expected an input \[N, C, \*\] with C=4"):
        tlu(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        FilterResponseNorm2d(4, eps=-1e-6)


def test_all_zero_input_is_finite_and_batch_of_one_works():
    frn, tlu = FilterResponseNorm2d(3), TLU(3)
    _randomize(frn, tlu)
    x = torch.zeros(1, 3, 4, 4, requires_grad=True)
    y = frn(x)
    # x_hat = 0, so y = beta; the gradient is gamma / sqrt(eps)
    assert torch.equal(y, frn.bias.detach().view(1, -1, 1, 1).expand_as(y))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad, (frn.weight.detach() / 1e-6 ** 0.5).view(1, -1, 1, 1).expand_as(x), rtol=1e-5)
    # batch of one with a 1x1 map, in training: works (no batch statistics)
    assert torch.isfinite(tlu(frn(torch.randn(1, 3, 1, 1)))).all()


def test_float32_large_mean_small_std():
    torch.manual_seed(2)
    x = torch.randn(2, 4, 8, 8) * 0.01 + 100
    frn = FilterResponseNorm2d(4)
    y32 = frn(x)
    y64 = frn.double()(x.double())
    assert (y32.double() - y64).abs().max() < 1e-6
    # not centred: x_hat is ~1 everywhere, the spread is a ripple of ~1e-4
    assert (y64 - 1).abs().max() < 1e-3


def test_bf16():
    torch.manual_seed(3)
    frn, tlu = FilterResponseNorm2d(4), TLU(4)
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    ref = tlu(frn(conv(x)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = tlu(frn(conv(x)))
    assert y.dtype == torch.bfloat16
    assert torch.allclose(y.float(), ref, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("learnable_eps", [False, True])
def test_compile_state_dict_deepcopy(learnable_eps):
    torch.manual_seed(4)
    model = torch.nn.Sequential(FilterResponseNorm2d(4, learnable_eps=learnable_eps), TLU(4))
    _randomize(model)
    x = torch.randn(2, 4, 5, 5)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), model(x), atol=1e-6)
    model.eval()
    assert torch.allclose(compiled(x), model(x), atol=1e-6)
    clone = torch.nn.Sequential(FilterResponseNorm2d(4, learnable_eps=learnable_eps), TLU(4))
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone(x), model(x))
    copied = copy.deepcopy(model)
    assert torch.equal(copied(x), model(x))
    assert copied[0].weight is not model[0].weight
