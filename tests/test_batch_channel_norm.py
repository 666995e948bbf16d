"""Batch-Channel Normalization against the official BCN formulas (and labml's EstimatedBatchNorm)."""

import pytest
import torch
from torch import nn

from labnorm.batch_channel_norm import BatchChannelNorm2d, EstimatedBatchNorm2d
from labnorm.norms import make_conv, make_norm
from labnorm.weight_std import WSConv2d


def official_channel_part(out, groups, weight, bias, eps=1e-5):
    """The official BCNorm's channel part: torch.batch_norm over each (sample, group) row."""
    n = out.shape[0]
    rows = out.reshape(1, n * groups, -1)
    rows = torch.batch_norm(rows, None, None, None, None, True, 0.0, eps, True)
    return (weight * rows.reshape(n, groups, -1) + bias).reshape(out.shape)


def test_at_init_bcn_equals_batchnorm_then_groupnorm():
    torch.manual_seed(0)
    bcn = BatchChannelNorm2d(8, num_groups=4).double()
    ref = nn.Sequential(nn.BatchNorm2d(8), nn.GroupNorm(4, 8)).double()
    for _ in range(3):
        x = torch.randn(4, 8, 5, 5, dtype=torch.float64) * 3 + 1
        assert (bcn(x) - ref(x)).abs().max() <= 1e-10
        assert (bcn.bn.running_var - ref[0].running_var).abs().max() <= 1e-12
    bcn.eval(), ref.eval()
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    assert (bcn(x) - ref(x)).abs().max() <= 1e-10


def test_matches_the_official_forward_with_trained_parameters():
    torch.manual_seed(1)
    bcn = BatchChannelNorm2d(8, num_groups=2).double()
    with torch.no_grad():
        for p in bcn.parameters():
            p.uniform_(0.5, 1.5)
    bn = nn.BatchNorm2d(8).double()
    bn.load_state_dict(bcn.bn.state_dict())
    x = torch.randn(3, 8, 4, 4, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    y = bcn(x)
    y2 = official_channel_part(bn(x2), 2, bcn.weight, bcn.bias)
    assert (y - y2).abs().max() <= 1e-10
    y.sum().backward()
    y2.sum().backward()
    assert (x.grad - x2.grad).abs().max() <= 1e-10
    assert torch.autograd.gradcheck(lambda t: bcn(t), (torch.randn(2, 8, 2, 2, dtype=torch.float64, requires_grad=True),))


def official_estbn_step(x, rm, rv, r, eps=1e-5):
    """The official EstBN in training: update with variance centred on the old running mean, then normalize."""
    t = x.transpose(0, 1).reshape(x.shape[1], -1)
    mean = t.mean(1)
    var = ((t - rm.view(-1, 1)) ** 2).mean(1)
    rm, rv = rm * (1 - r) + r * mean, rv * (1 - r) + r * var
    return (x - rm.view(1, -1, 1, 1)) / torch.sqrt(rv + eps).view(1, -1, 1, 1), rm, rv


def labml_estbn_step(x, rm, rv, r, eps=1e-5):
    """labml's EstimatedBatchNorm in training: E[x^2] - E[x]^2 of the batch, then normalize."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    mean = flat.mean(dim=[0, 2])
    var = (flat ** 2).mean(dim=[0, 2]) - mean ** 2
    rm, rv = (1 - r) * rm + r * mean, (1 - r) * rv + r * var
    return (x - rm.view(1, -1, 1, 1)) / torch.sqrt(rv + eps).view(1, -1, 1, 1), rm, rv


@pytest.mark.parametrize("variant, step", [("official", official_estbn_step), ("labml", labml_estbn_step)])
def test_estimated_batch_norm_matches_its_formula(variant, step):
    torch.manual_seed(2)
    est = EstimatedBatchNorm2d(3, momentum=0.2, variant=variant).double()
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    # The official rate lives in a float32 buffer (as in the official code): 0.2 rounded to float32
    rate = float(est.estbn_moving_speed) if variant == "official" else 0.2
    for k in range(4):
        x = torch.randn(2, 3, 4, 4, dtype=torch.float64) * 2 + k
        expect, rm, rv = step(x, rm, rv, rate)
        assert (est(x) - expect).abs().max() <= 1e-10
        assert (est.running_mean - rm).abs().max() <= 1e-12 and (est.running_var - rv).abs().max() <= 1e-12
    # Eval mode normalizes with the same estimates and leaves them alone
    est.eval()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert torch.allclose(est(x), (x - rm.view(1, -1, 1, 1)) / torch.sqrt(rv + 1e-5).view(1, -1, 1, 1))
    assert (est.running_mean - rm).abs().max() <= 1e-12  # unchanged by the eval-mode call


def test_estimated_bcn_works_with_a_batch_of_one():
    bcn = BatchChannelNorm2d(8, num_groups=4, estimate=True)
    y = bcn(torch.randn(1, 8, 3, 3))
    assert torch.isfinite(y).all()
    # The official checkpoint keys
    assert {"weight", "bias", "bn.running_mean", "bn.running_var", "bn.estbn_moving_speed"} <= set(bcn.state_dict())


def test_bad_input():
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        BatchChannelNorm2d(6, num_groups=4)
    with pytest.raises(ValueError, match=r"expected an input \[N, 8, H, W\]"):
        BatchChannelNorm2d(8, num_groups=4)(torch.randn(2, 8, 3))
    with pytest.raises(ValueError, match="variant"):
        EstimatedBatchNorm2d(3, variant="keras")


def test_factory():
    assert isinstance(make_norm("bcn", 64), BatchChannelNorm2d) and make_norm("bcn", 64).num_groups == 32
    assert make_norm("bcn:4", 8).num_groups == 4
    assert isinstance(make_conv("ws+bcn", 16, 16), WSConv2d)
    assert isinstance(make_norm("ws+bcn", 16), BatchChannelNorm2d)
