"""The experiments' fast path: torch's kernels for the labnorm layers proven equal, and what a record says ran."""

import copy

import pytest
import torch
from torch import nn

import labnorm
from labnorm.models import build_model
from labnorm.norms import make_norm
from labnorm.train.kernels import TWINS, describe_norms, prefer_channels_last, use_torch_kernels


def _step(model, x, y):
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach()


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "in", "bcn", "ws+bn"])
def test_swapped_model_computes_the_same_function_in_float64(norm):
    torch.manual_seed(0)
    ours = build_model("small_cnn", norm, width=8).double()
    # Non-trivial affine parameters and running statistics, so a dropped state would show
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, y = torch.randn(6, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (6,))
    _step(ours, x, y)
    ours.zero_grad()
    twin = copy.deepcopy(ours)
    swapped = use_torch_kernels(twin)
    assert swapped and all(" -> torch.nn." in k for k in swapped)
    assert not any(type(m) in TWINS for m in twin.modules())
    # Train-mode forward and every parameter gradient
    torch.testing.assert_close(_step(twin, x, y), _step(ours, x, y), rtol=1e-12, atol=1e-12)
    for (name, a), b in zip(ours.named_parameters(), twin.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12, msg=name)
    # Running statistics updated alike, then eval mode
    for (name, a), b in zip(ours.named_buffers(), twin.buffers()):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12, msg=name)
    ours.eval(), twin.eval()
    torch.testing.assert_close(twin(x), ours(x), rtol=1e-12, atol=1e-12)


def test_twins_keep_arguments_state_mode_and_names():
    parent = nn.Sequential(
        labnorm.BatchNorm2d(4, eps=1e-3, momentum=None), labnorm.GroupNorm(2, 4, affine=False),
        labnorm.InstanceNorm2d(4, affine=True, track_running_stats=True), labnorm.LayerNorm(5, bias=False),
        labnorm.RMSNorm(5, eps=1e-4),
    ).double()
    parent[0].running_mean.fill_(0.5)
    parent[2].eval()
    state = parent.state_dict()
    use_torch_kernels(parent)
    assert [type(m) for m in parent] == [nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm, nn.RMSNorm]
    assert parent[0].momentum is None and parent[0].eps == 1e-3 and parent[1].affine is False
    assert parent[3].bias is None and parent[4].eps == 1e-4
    assert parent[0].running_mean.dtype == torch.float64 and parent[0].running_mean[0] == 0.5
    assert not parent[2].training and parent[0].training
    assert parent.state_dict().keys() == state.keys()


def test_subclasses_and_other_layers_stay_labnorm():
    model = build_model("small_cnn", "sn", width=8)
    assert use_torch_kernels(model) == {}
    assert describe_norms(model)["classes"] == {"labnorm.SwitchNorm2d": 3}

    class Subclass(labnorm.BatchNorm2d):  # may change the formula: not swapped
        pass

    assert use_torch_kernels(nn.Sequential(Subclass(4))) == {}


def test_describe_norms_counts_classes_and_group_sizes():
    model = build_model("resnet18", "gn", width=0.25)
    info = describe_norms(model)
    assert info["classes"] == {"labnorm.GroupNorm": 20}
    # The default `gn` never makes a group of one channel (that would be Instance Norm)
    assert min(info["group_channels"]) == 2
    use_torch_kernels(model)
    assert describe_norms(model) == {"classes": {"torch.nn.GroupNorm": 20}, "group_channels": info["group_channels"]}


@pytest.mark.parametrize("channels, groups", [(1, 1), (2, 1), (8, 4), (16, 8), (32, 16), (48, 16), (64, 32), (512, 32)])
def test_default_gn_groups_keep_two_channels(channels, groups):
    assert make_norm("gn", channels).num_groups == groups
    assert make_norm("bcn", channels).num_groups == groups


def test_explicit_gn_groups_are_honoured():
    assert make_norm("gn:16", 16).num_groups == 16  # asked for: one channel per group
    assert make_norm("gn:8", 12).num_groups == 4


def test_channels_last_only_for_torch_bn_models_on_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    bn = build_model("small_cnn", "bn", width=8)
    assert not prefer_channels_last(bn, cpu)  # labnorm's BN: no channels_last kernel
    use_torch_kernels(bn)
    assert prefer_channels_last(bn, cpu) and prefer_channels_last(bn, cuda)
    assert prefer_channels_last(build_model("small_cnn", "none", width=8), cpu)
    gn = build_model("small_cnn", "gn", width=8)
    use_torch_kernels(gn)
    assert not prefer_channels_last(gn, cpu) and prefer_channels_last(gn, cuda)


def test_layers_with_per_worker_statistics_are_not_swapped():
    # torch.nn.BatchNorm2d always takes the whole batch: a labnorm BN with norm_batch keeps its own code
    model = build_model("small_cnn", "bn", width=8)
    count = labnorm.set_norm_batch(model, 2)
    assert use_torch_kernels(model) == {}
    assert sum(type(m) is labnorm.BatchNorm2d and m.norm_batch == 2 for m in model.modules()) == count
    # A mix: only the whole-batch layer is swapped
    mixed = nn.Sequential(labnorm.BatchNorm2d(4, norm_batch=2), labnorm.BatchNorm2d(4))
    assert use_torch_kernels(mixed) == {"labnorm.BatchNorm2d -> torch.nn.BatchNorm2d": 1}
    assert type(mixed[0]) is labnorm.BatchNorm2d and type(mixed[1]) is nn.BatchNorm2d
    # After a full swap there is nothing left for set_norm_batch to set: it says so
    swapped = build_model("small_cnn", "bn", width=8)
    use_torch_kernels(swapped)
    with pytest.raises(ValueError, match="no batch-dependent layer"):
        labnorm.set_norm_batch(swapped, 2)
