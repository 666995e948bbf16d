"""Switchable Normalization: one-hot importance weights against torch's IN / LN / BN, the official
formulas (transcribed here from switchablenorms/Switchable-Normalization), batch average, edge cases,
and the torch BatchNorm test habits (train/eval, running stats, state_dict, deepcopy, compile, bf16)."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labnorm.switch_norm import SwitchNorm2d, finalize_batch_average

TOL = 1e-10


def one_hot(sn: SwitchNorm2d, k: int) -> SwitchNorm2d:
    # softmax of [0, ..., 1e4, ..., 0] is exactly one-hot in float64 (exp(-1e4) underflows to 0)
    with torch.no_grad():
        for p in (sn.mean_weight, sn.var_weight):
            p.zero_()
            p[k] = 1e4
    return sn


def x_like(*shape, seed=0):
    torch.manual_seed(seed)
    return (torch.randn(*shape, dtype=torch.float64) * 2 + 0.5).requires_grad_()


def grads_match(a_fn, b_fn, x):
    xa, xb = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ya, yb = a_fn(xa), b_fn(xb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    return (ya - yb).abs().max() <= TOL and (xa.grad - xb.grad).abs().max() <= TOL


def test_one_hot_equals_instance_layer_and_batch_norm():
    x = x_like(4, 6, 5, 5)
    sn_in = one_hot(SwitchNorm2d(6).double(), 0)
    assert grads_match(sn_in, lambda t: F.instance_norm(t, eps=1e-5), x)
    sn_ln = one_hot(SwitchNorm2d(6).double(), 1)
    assert grads_match(sn_ln, lambda t: F.layer_norm(t, t.shape[1:], eps=1e-5), x)
    sn_bn = one_hot(SwitchNorm2d(6, momentum=0.3).double(), 2)
    bn = nn.BatchNorm2d(6, momentum=0.3, affine=False).double()
    for _ in range(3):  # running statistics follow BatchNorm2d's, step by step
        assert grads_match(sn_bn, bn, x)
    assert (sn_bn.running_mean.flatten() - bn.running_mean).abs().max() <= TOL
    assert (sn_bn.running_var.flatten() - bn.running_var).abs().max() <= TOL
    sn_bn.eval(), bn.eval()
    assert grads_match(sn_bn, bn, x)


def official_forward(x, mean_weight, var_weight, running_mean, running_var, keras_momentum, training, eps=1e-5):
    """The official SwitchNorm2d forward, transcribed (Keras-convention momentum)."""
    n, c, h, w = x.shape
    x = x.view(n, c, -1)
    mean_in = x.mean(-1, keepdim=True)
    var_in = x.var(-1, keepdim=True)
    mean_ln = mean_in.mean(1, keepdim=True)
    temp = var_in + mean_in ** 2
    var_ln = temp.mean(1, keepdim=True) - mean_ln ** 2
    if training:
        mean_bn = mean_in.mean(0, keepdim=True)
        var_bn = temp.mean(0, keepdim=True) - mean_bn ** 2
        running_mean.mul_(keras_momentum).add_((1 - keras_momentum) * mean_bn.detach())
        running_var.mul_(keras_momentum).add_((1 - keras_momentum) * var_bn.detach())
    else:
        mean_bn, var_bn = running_mean, running_var
    mw, vw = torch.softmax(mean_weight, 0), torch.softmax(var_weight, 0)
    mean = mw[0] * mean_in + mw[1] * mean_ln + mw[2] * mean_bn
    var = vw[0] * var_in + vw[1] * var_ln + vw[2] * var_bn
    return ((x - mean) / (var + eps).sqrt()).view(n, c, h, w)


def test_official_statistics_match_the_official_formulas_with_keras_momentum():
    x = x_like(3, 4, 6, 6, seed=1)
    sn = SwitchNorm2d(4, momentum=0.02, statistics="official").double()  # Keras 0.98
    with torch.no_grad():
        sn.mean_weight.copy_(torch.tensor([0.3, -0.2, 0.5]))
        sn.var_weight.copy_(torch.tensor([-0.1, 0.4, 0.2]))
    rm, rv = sn.running_mean.clone(), sn.running_var.clone()
    for _ in range(2):
        ref = official_forward(x, sn.mean_weight, sn.var_weight, rm, rv, 0.98, training=True)
        assert (sn(x) - ref).abs().max() <= TOL
    assert (sn.running_mean - rm).abs().max() <= TOL and (sn.running_var - rv).abs().max() <= TOL
    sn.eval()
    ref = official_forward(x, sn.mean_weight, sn.var_weight, rm, rv, 0.98, training=False)
    assert (sn(x) - ref).abs().max() <= TOL
    # The two conventions differ by a measurable amount (unbiased IN variance)
    exact = SwitchNorm2d(4).double()
    exact.load_state_dict(sn.state_dict())
    assert (exact.train()(x) - sn.train()(x)).abs().max() > 1e-3


@pytest.mark.parametrize("statistics", ["exact", "official"])
def test_gradients_through_the_importance_softmaxes(statistics):
    # The hand-written backwards (instance moments, scale-and-shift) against finite differences,
    # first and second order
    torch.manual_seed(2)
    sn = SwitchNorm2d(3, statistics=statistics).double()
    with torch.no_grad():
        sn.mean_weight.copy_(torch.randn(3))
        sn.var_weight.copy_(torch.randn(3))
        sn.weight.copy_(torch.randn(1, 3, 1, 1))
    x = x_like(2, 3, 3, 3, seed=3)
    params = (x, sn.mean_weight, sn.var_weight, sn.weight, sn.bias)
    names = ["mean_weight", "var_weight", "weight", "bias"]

    def f(x, *ps):
        return torch.func.functional_call(sn, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, params)
    assert torch.autograd.gradgradcheck(f, params)


def test_gradients_equal_autograd_of_the_official_formulas():
    x = x_like(3, 4, 5, 5, seed=4)
    sn = SwitchNorm2d(4, statistics="official").double()
    with torch.no_grad():
        sn.mean_weight.copy_(torch.tensor([0.3, -0.2, 0.5]))
        sn.var_weight.copy_(torch.tensor([-0.1, 0.4, 0.2]))
    rm, rv = sn.running_mean.clone(), sn.running_var.clone()
    xa, xb = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    g = torch.randn(x.shape, dtype=torch.float64)
    ours = torch.autograd.grad(sn(xa), [xa, sn.mean_weight, sn.var_weight], g)
    ref = official_forward(xb, sn.mean_weight, sn.var_weight, rm, rv, 0.98, training=True)
    theirs = torch.autograd.grad(ref, [xb, sn.mean_weight, sn.var_weight], g)
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max() <= TOL


def test_float32_with_large_mean_and_small_spread_matches_float64():
    # Mean 100, std 0.01: E[x^2] - E[x]^2 would cancel to noise in float32 (its rounding error, 6e-4,
    # exceeds the variance, 1e-4); the two-pass moments keep the statistics to 1e-3 relative. The output
    # then carries float32's rounding of x * (1 / 0.01) ~ 1e4, about 1e-3 -- as torch's own norms do.
    torch.manual_seed(5)
    x32 = torch.randn(8, 4, 6, 6) * 0.01 + 100
    x64 = x32.double()  # the same numbers
    sn32, sn64 = SwitchNorm2d(4, momentum=1.0), SwitchNorm2d(4, momentum=1.0).double()
    y32, y64 = sn32(x32), sn64(x64)
    assert ((sn32.running_var.double() - sn64.running_var) / sn64.running_var).abs().max() < 1e-3
    torch_error = (F.layer_norm(x32, x32.shape[1:]).double() - F.layer_norm(x64, x64.shape[1:])).abs().max()
    assert (y32.double() - y64).abs().max() <= 2 * torch_error


def test_edge_cases():
    # N x C x 1 x 1: the exact statistics stay finite; the official formulas are refused (they give NaN)
    x = torch.randn(4, 3, 1, 1)
    assert torch.isfinite(SwitchNorm2d(3)(x)).all()
    with pytest.raises(ValueError, match="H\\*W - 1"):
        SwitchNorm2d(3, statistics="official")(x)
    # A batch of one: fine with more than one value per channel (equals BatchNorm2d's batch of one) ...
    x1 = x_like(1, 3, 4, 4, seed=4)
    assert grads_match(one_hot(SwitchNorm2d(3).double(), 2), nn.BatchNorm2d(3, affine=False).double(), x1)
    # ... refused in training with a single value per channel, accepted in eval
    with pytest.raises(ValueError, match="one value per channel"):
        SwitchNorm2d(3)(torch.randn(1, 3, 1, 1))
    assert SwitchNorm2d(3).eval()(torch.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)
    # last_gamma: the output is the bias at initialization
    sn = SwitchNorm2d(3, last_gamma=True)
    with torch.no_grad():
        sn.bias.copy_(torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1))
    assert torch.equal(sn(torch.randn(2, 3, 4, 4)), sn.bias.expand(2, 3, 4, 4))
    # Bad input and arguments
    with pytest.raises(ValueError, match=r"expected an input \[N, 3, H, W\]"):
        SwitchNorm2d(3)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"expected an input"):
        SwitchNorm2d(3)(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="Keras' 0.98 is momentum=0.02"):
        SwitchNorm2d(3, momentum=0.98 * 2)
    with pytest.raises(ValueError, match="statistics must be"):
        SwitchNorm2d(3, statistics="keras")


def test_without_bn_branch_two_weights_and_no_running_statistics():
    sn = SwitchNorm2d(4, using_bn=False)
    assert sn.mean_weight.shape == (2,) and not hasattr(sn, "running_mean")
    x = torch.randn(2, 4, 3, 3)
    assert torch.allclose(sn(x), sn.eval()(x))  # nothing depends on the batch


def test_batch_average_equals_the_pooled_statistics_of_equal_size_batches():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), SwitchNorm2d(4, using_moving_average=False))
    model.train()
    batches = [torch.randn(8, 3, 7, 7) * 2 + 1 for _ in range(5)]
    sn, bn = model[2], model[1]
    bn_before = bn.running_mean.clone()
    with torch.no_grad():
        model(batches[0])  # training does not touch the batch-average statistics
    assert torch.equal(sn.running_mean, torch.zeros_like(sn.running_mean))
    bn_before = bn.running_mean.clone()
    used = finalize_batch_average(model, iter([(b, None) for b in batches]), num_batches=4)
    assert used == 4 and model.training and sn.training and bn.training  # modes restored
    assert torch.equal(bn.running_mean, bn_before)  # the model ran in eval: its BN did not move
    with torch.no_grad():
        model.eval()
        feats = torch.cat([model[1](model[0](b)) for b in batches[:4]])  # what SN saw
    pooled = feats.transpose(0, 1).reshape(4, -1).double()
    assert torch.allclose(sn.running_mean.flatten().double(), pooled.mean(1), atol=1e-6)
    assert torch.allclose(sn.running_var.flatten().double(), pooled.var(1), atol=1e-5)
    with pytest.raises(ValueError, match="no SwitchNorm2d"):
        finalize_batch_average(nn.Sequential(nn.Conv2d(3, 4, 3)), batches, 2)


def test_torch_batchnorm_habits():
    sn = SwitchNorm2d(8)
    assert set(sn.state_dict()) == {"weight", "bias", "mean_weight", "var_weight", "running_mean", "running_var"}
    x = torch.randn(4, 8, 6, 6)
    y = sn(x)
    assert y.shape == x.shape
    clone = copy.deepcopy(sn)
    assert torch.equal(clone.eval()(x), sn.eval()(x))
    fresh = SwitchNorm2d(8)
    fresh.load_state_dict(sn.state_dict())
    assert torch.equal(fresh.eval()(x), sn(x))
    eager, compiled = SwitchNorm2d(8), torch.compile(SwitchNorm2d(8), backend="aot_eager", fullgraph=True)
    xe, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
    ye, yc = eager(xe), compiled(xc)
    assert torch.allclose(yc, ye, atol=1e-6)
    (ye * y.detach()).sum().backward()
    (yc * y.detach()).sum().backward()
    assert torch.allclose(xc.grad, xe.grad, atol=1e-5)
    assert torch.allclose(compiled.var_weight.grad, eager.var_weight.grad, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb = torch.randn(4, 8, 6, 6).bfloat16()
        out = SwitchNorm2d(8)(xb)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), SwitchNorm2d(8)(xb.float()), atol=0.05)


class OfficialSN(nn.Module):
    """Parameters and buffers laid out as the official SwitchNorm2d keeps them (for its state dicts)."""

    def __init__(self, c, branches=3):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, c, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.mean_weight = nn.Parameter(torch.ones(branches))
        self.var_weight = nn.Parameter(torch.ones(branches))
        self.register_buffer("running_mean", torch.zeros(1, c, 1))
        self.register_buffer("running_var", torch.zeros(1, c, 1))


def test_official_checkpoint_loads_and_evaluates_as_the_official_code():
    from labnorm.switch_norm import load_official_state_dict

    torch.manual_seed(6)
    official = nn.Sequential(nn.Conv2d(3, 4, 3), OfficialSN(4)).double()
    with torch.no_grad():  # a "trained" checkpoint: running statistics from the official update rule
        for p in official[1].parameters():
            p.add_(torch.randn_like(p) * 0.3)
        rm, rv = official[1].running_mean, official[1].running_var
        for _ in range(3):
            official_forward(official[0](x_like(5, 3, 8, 8, seed=7)), official[1].mean_weight, official[1].var_weight,
                             rm, rv, 0.997, training=True)
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), SwitchNorm2d(4)).double()
    load_official_state_dict(ours, official.state_dict(), keras_momentum=0.997)
    sn = ours[1]
    assert sn.statistics == "official" and sn.momentum == 0.003
    x = x_like(2, 3, 8, 8, seed=8)
    with torch.no_grad():
        expected = official_forward(official[0](x), official[1].mean_weight, official[1].var_weight, rm.clone(),
                                    rv.clone(), 0.997, training=False) * official[1].weight + official[1].bias
        assert (ours.eval()(x) - expected).abs().max() <= TOL
    with pytest.raises(ValueError, match="branches"):
        load_official_state_dict(nn.Sequential(nn.Conv2d(3, 4, 3), SwitchNorm2d(4, using_bn=False)),
                                 nn.Sequential(nn.Conv2d(3, 4, 3), OfficialSN(4)).state_dict())
    with pytest.raises(RuntimeError, match="Missing key"):
        load_official_state_dict(ours, {k: v for k, v in official.state_dict().items() if k != "1.running_var"})
