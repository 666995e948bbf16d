"""Per-worker batch statistics (`norm_batch`): a layer with `norm_batch=b` computes, in float64, exactly
what copies of itself (`norm_batch=None`) compute on each group of `b` samples — output, input and
parameter gradients, and running statistics averaged over the copies. The layers come from the norm
registry: a newly registered batch-dependent norm is covered without editing this file."""

import copy

import pytest
import torch
from torch import nn

import labnorm
from labnorm.models import build_model
from labnorm.norms import available_norms, make_norm

C = 8
N = 6
# Registered norms that depend on the batch but batch it their own way, and so have no `norm_batch`:
# torch's reference layer (the whole batch, always) and Ghost BN (its own virtual batches).
OWN_BATCHING = {"torch-bn", "gbn"}


def _registered(with_norm_batch: bool) -> list[str]:
    return [name for name in available_norms() if hasattr(make_norm(name, C), "norm_batch") == with_norm_batch]


GROUPED = _registered(True)
INDEPENDENT = [name for name in _registered(False) if name not in OWN_BATCHING]

# Configurations the factory does not build, each with a path of its own
EXTRA = {
    "bn, momentum=None": lambda: labnorm.BatchNorm2d(C, momentum=None),
    "bn, affine=False": lambda: labnorm.BatchNorm2d(C, affine=False),
    "bcn, estimate official": lambda: labnorm.BatchChannelNorm2d(C, 4, estimate=True),
    "bcn, estimate labml": lambda: labnorm.BatchChannelNorm2d(C, 4, estimate=True, estimate_variant="labml"),
    "sn, official statistics": lambda: labnorm.SwitchNorm2d(C, statistics="official"),
    "brn, BN limits": lambda: labnorm.BatchRenorm2d(C, r_max=1.0, d_max=0.0),
    "evob0 without act": lambda: labnorm.EvoNorm2dB0(C, apply_act=False),
}


def _layer(spec: str) -> nn.Module:
    """A float64 layer with random parameters and running statistics, so nothing is trivially equal."""
    torch.manual_seed(1)
    layer = (EXTRA[spec]() if spec in EXTRA else make_norm(spec, C)).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for name, buf in layer.named_buffers():
            if buf.is_floating_point() and name.rsplit(".", 1)[-1] in ("running_mean", "running_var"):
                buf.copy_(buf + 0.2 * torch.rand_like(buf) if "var" in name else 0.3 * torch.randn_like(buf))
    return layer


def _forward_backward(layer, x, g):
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(g)
    return y.detach(), x.grad


def _grad(p):
    return torch.zeros_like(p) if p.grad is None else p.grad


@pytest.mark.parametrize("b, shape", [(2, (N, C, 3, 4)), (3, (N, C, 3, 4)), (N, (N, C, 3, 4)), (1, (N, C, 2, 2)),
                                      (2, (N, C, 1, 1))])
@pytest.mark.parametrize("spec", GROUPED + list(EXTRA))
def test_grouped_layer_equals_copies_on_each_group(spec, b, shape):
    if b * shape[2] * shape[3] == 1:
        pytest.skip("one value per channel: refused (test_one_value_per_channel_in_a_group_is_refused)")
    if spec == "sn, official statistics" and shape[2] * shape[3] == 1:
        pytest.skip("the official SN statistics refuse 1x1 maps whatever the batch (test_switch_norm.py)")
    layer = _layer(spec)
    grouped, whole = copy.deepcopy(layer), copy.deepcopy(layer)
    assert labnorm.set_norm_batch(grouped, b) == 1 and grouped.norm_batch == b
    assert whole.norm_batch is None
    torch.manual_seed(2)
    x = torch.randn(shape, dtype=torch.float64) * 2 + 1
    g = torch.randn(shape, dtype=torch.float64)
    copies = [copy.deepcopy(whole) for _ in range(N // b)]
    y, gx = _forward_backward(grouped, x, g)
    parts = [_forward_backward(c, xi, gi) for c, xi, gi in zip(copies, x.split(b), g.split(b))]
    # Output and input gradient: the copies' on their groups, concatenated
    torch.testing.assert_close(y, torch.cat([p[0] for p in parts]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, torch.cat([p[1] for p in parts]), rtol=1e-10, atol=1e-11)
    # Every parameter gradient: the copies' summed (what a data-parallel all-reduce sums)
    for (name, p), *ps in zip(grouped.named_parameters(), *(c.parameters() for c in copies)):
        torch.testing.assert_close(_grad(p), sum(_grad(q) for q in ps), rtol=1e-10, atol=1e-11, msg=name)
    # Running statistics: the mean over the copies (integer counters: each copy's, all equal)
    for (name, buf), *bufs in zip(grouped.named_buffers(), *(c.buffers() for c in copies)):
        expected = torch.stack(bufs).mean(0) if buf.is_floating_point() else bufs[0]
        torch.testing.assert_close(buf, expected, rtol=1e-12, atol=1e-12, msg=name)
    # Eval mode with running statistics: norm_batch plays no part
    grouped.eval(), whole.eval()
    whole.load_state_dict(grouped.state_dict())
    torch.testing.assert_close(grouped(x[:5]), whole(x[:5]), rtol=0, atol=0)


def test_every_batch_statistics_layer_class_is_covered():
    # The registry reaches every labnorm class that takes norm_batch (EstimatedBatchNorm2d through BCN)
    classes = {type(make_norm(name, C)) for name in GROUPED}
    assert classes >= {labnorm.BatchNorm2d, labnorm.BatchRenorm2d, labnorm.BatchChannelNorm2d,
                       labnorm.SwitchNorm2d, labnorm.EvoNorm2dB0, labnorm.MeanOnlyBatchNorm}
    assert {"bn", "ws+bn", "brn", "bcn", "ws+bcn", "sn", "sn-ba", "evob0", "wn+mobn"} <= set(GROUPED)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("spec", INDEPENDENT)
def test_layers_without_norm_batch_do_not_depend_on_the_batch(spec, train):
    """Their output on the whole batch is their outputs on any groups, concatenated: b cannot matter."""
    layer = _layer(spec).train(train)
    torch.manual_seed(2)
    x = torch.randn(N, C, 3, 4, dtype=torch.float64) * 2 + 1
    whole = copy.deepcopy(layer)(x)
    for b in (1, 2, 3):
        torch.testing.assert_close(torch.cat([copy.deepcopy(layer)(xi) for xi in x.split(b)]), whole,
                                   rtol=1e-12, atol=1e-12)


def test_batch_statistics_in_eval_without_running_statistics_are_grouped_too():
    torch.manual_seed(0)
    layer = labnorm.BatchNorm2d(C, track_running_stats=False, norm_batch=2).double().eval()
    x = torch.randn(N, C, 3, 3, dtype=torch.float64)
    ref = labnorm.BatchNorm2d(C, track_running_stats=False).double().eval()
    torch.testing.assert_close(layer(x), torch.cat([ref(xi) for xi in x.split(2)]), rtol=1e-12, atol=1e-12)


def test_switch_norm_batch_average_pools_every_value_whatever_b():
    torch.manual_seed(0)
    batches = [torch.randn(4, C, 3, 3) * 2 + 1 for _ in range(3)]
    layers = [labnorm.SwitchNorm2d(C, using_moving_average=False, norm_batch=b).double() for b in (None, 2)]
    for layer in layers:
        labnorm.finalize_batch_average(layer, [x.double() for x in batches], 3)
    torch.testing.assert_close(layers[1].running_mean, layers[0].running_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layers[1].running_var, layers[0].running_var, rtol=1e-12, atol=1e-12)


def test_ghost_batch_norm_is_batch_norm_with_norm_batch():
    torch.manual_seed(0)
    v, n = 2, 8
    ghost = labnorm.GhostBatchNorm2d(C, virtual_batch_size=v).double()
    with torch.no_grad():
        ghost.weight.uniform_(0.5, 1.5), ghost.bias.uniform_(-0.5, 0.5)
    bn = labnorm.BatchNorm2d(C, norm_batch=v).double()
    bn.load_state_dict(ghost.state_dict())  # same keys: torch BN's
    x = torch.randn(n, C, 3, 3, dtype=torch.float64) * 2 + 1
    g = torch.randn_like(x)
    (y1, gx1), (y2, gx2) = _forward_backward(ghost, x, g), _forward_backward(bn, x, g)
    torch.testing.assert_close(y2, y1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx2, gx1, rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(bn.weight.grad, ghost.weight.grad, rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(bn.bias.grad, ghost.bias.grad, rtol=1e-10, atol=1e-11)
    # Running statistics differ, each by its documented rule: Ghost BN takes k sequential steps, BN one
    # step towards the mean of the k groups' statistics
    m, k = 0.1, n // v
    means = torch.stack([xi.mean((0, 2, 3)) for xi in x.split(v)])
    variances = torch.stack([xi.var((0, 2, 3), correction=1) for xi in x.split(v)])
    seq_mean, seq_var = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    for mu, var in zip(means, variances):
        seq_mean, seq_var = (1 - m) * seq_mean + m * mu, (1 - m) * seq_var + m * var
    torch.testing.assert_close(ghost.running_mean, seq_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ghost.running_var, seq_var, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_mean, m * means.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(bn.running_var, (1 - m) + m * variances.mean(0), rtol=1e-12, atol=1e-12)
    assert int(ghost.num_batches_tracked) == k and int(bn.num_batches_tracked) == 1
    assert not torch.allclose(bn.running_var, ghost.running_var)


def test_set_norm_batch_sets_every_layer_of_a_model():
    model = build_model("small_cnn", "bn", width=8)
    layers = [m for m in model.modules() if isinstance(m, labnorm.BatchNorm2d)]
    assert layers and labnorm.set_norm_batch(model, 2) == len(layers)
    assert all(m.norm_batch == 2 for m in layers)
    model.train()(torch.randn(4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"BatchNorm2d: norm_batch=2 does not divide the batch of 3"):
        model(torch.randn(3, 3, 32, 32))
    assert labnorm.set_norm_batch(model, None) == len(layers)
    assert all(m.norm_batch is None for m in layers)
    # BCN is one layer (its batch part is set through it), WS+BN's BN is a layer of its own
    bcn = build_model("small_cnn", "bcn", width=8)
    count = sum(isinstance(m, labnorm.BatchChannelNorm2d) for m in bcn.modules())
    assert labnorm.set_norm_batch(bcn, 2) == count
    assert all(m.bn.norm_batch == 2 for m in bcn.modules() if isinstance(m, labnorm.BatchChannelNorm2d))
    assert labnorm.set_norm_batch(build_model("small_cnn", "ws+bn", width=8), 2) == len(layers)


def test_set_norm_batch_refuses_a_model_without_batch_statistics_and_bad_values():
    with pytest.raises(ValueError, match="no batch-dependent layer"):
        labnorm.set_norm_batch(build_model("small_cnn", "gn", width=8), 2)
    model = build_model("small_cnn", "bn", width=8)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="norm_batch must be a positive int"):
            labnorm.set_norm_batch(model, bad)


@pytest.mark.parametrize("spec", GROUPED)
def test_bad_norm_batch_at_construction_and_in_forward(spec):
    layer = make_norm(spec, C)
    name = type(layer).__name__
    cls = type(layer)
    if cls is labnorm.BatchChannelNorm2d:
        with pytest.raises(ValueError, match="norm_batch must be a positive int"):
            cls(C, 4, norm_batch=0)
    else:
        with pytest.raises(ValueError, match=f"{name}: norm_batch must be a positive int"):
            cls(C, norm_batch=0)
    layer.norm_batch = 4
    inner = type(layer.bn).__name__ if cls is labnorm.BatchChannelNorm2d else name
    uses_batch = not (cls is labnorm.EvoNorm2dB0 and not layer.apply_act)
    if uses_batch:
        with pytest.raises(ValueError, match=rf"{inner}: norm_batch=4 does not divide the batch of 6 samples"):
            layer.train()(torch.randn(6, C, 3, 3))
    layer.train()(torch.randn(8, C, 3, 3))
    # Eval mode with running statistics: any batch
    layer.eval()(torch.randn(6, C, 3, 3))


@pytest.mark.parametrize("spec", GROUPED)
def test_one_value_per_channel_in_a_group_is_refused(spec):
    layer = make_norm(spec, C).train()
    layer.norm_batch = 1
    x = torch.randn(4, C, 1, 1)
    if isinstance(layer, labnorm.MeanOnlyBatchNorm) or (isinstance(layer, labnorm.EvoNorm2dB0) and not layer.apply_act):
        layer(x)  # a mean of one value is defined (and the affine-only EvoNorm has no statistics)
        return
    inner = type(layer.bn).__name__ if isinstance(layer, labnorm.BatchChannelNorm2d) else type(layer).__name__
    with pytest.raises(ValueError, match=rf"{inner}: norm_batch=1 leaves 1 value per channel in each group"):
        layer(x)
    layer(torch.randn(4, C, 2, 1))  # two positions: two values per channel per group


def test_norm_batch_is_not_in_the_state_dict():
    layer = labnorm.BatchNorm2d(C, norm_batch=2)
    layer(torch.randn(4, C, 3, 3))
    state = layer.state_dict()
    assert set(state) == set(nn.BatchNorm2d(C).state_dict())
    other = labnorm.BatchNorm2d(C)
    other.load_state_dict(state)
    assert other.norm_batch is None and layer.norm_batch == 2
    assert copy.deepcopy(layer).norm_batch == 2
    for key in state:
        torch.testing.assert_close(other.state_dict()[key], state[key], rtol=0, atol=0)


def test_channels_last_and_bf16_inputs():
    torch.manual_seed(0)
    x = torch.randn(4, C, 5, 5, dtype=torch.float64) * 2 + 1
    layer = labnorm.BatchNorm2d(C, norm_batch=2).double()
    y = copy.deepcopy(layer)(x)
    torch.testing.assert_close(copy.deepcopy(layer)(x.contiguous(memory_format=torch.channels_last)), y,
                               rtol=1e-12, atol=1e-12)
    y16 = labnorm.BatchNorm2d(C, norm_batch=2)(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.double(), y, rtol=0.02, atol=0.05)


@pytest.mark.parametrize("cls", [labnorm.BatchNorm2d, labnorm.EvoNorm2dB0])
def test_compiled_equals_eager(cls):
    torch.manual_seed(0)
    eager = cls(C, norm_batch=2).double()
    with torch.no_grad():
        for p in eager.parameters():
            p.add_(0.3 * torch.randn_like(p))
    compiled_layer = copy.deepcopy(eager)
    compiled = torch.compile(compiled_layer, backend="aot_eager")
    x = torch.randn(6, C, 3, 3, dtype=torch.float64) * 2 + 1
    g = torch.randn_like(x)
    (y1, gx1), (y2, gx2) = _forward_backward(eager, x, g), _forward_backward(compiled, x, g)
    torch.testing.assert_close(y2, y1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx2, gx1, rtol=1e-10, atol=1e-11)
    for (name, a), b in zip(eager.named_parameters(), compiled_layer.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-11, msg=name)
    for (name, a), b in zip(eager.named_buffers(), compiled_layer.buffers()):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12, msg=name)
