"""The fast CIFAR-10 net and recipe (`labnorm.models.FastCIFAR`, `labnorm.train.fast`)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import labnorm.train.fast as fast
from labnorm.models import FastCIFAR, build_model, whitening_weights
from labnorm.norms import available_norms, make_norm
from labnorm.train.fast import (FastData, FastRecipe, Lookahead, lowest_point, lr_from_range_tests, norm_shift_parameters, range_test,
                                train_fast, translate_batch, tta_logits)


def _images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_whitening_filters_whiten_patches():
    x = torch.randn(200, 3, 12, 12, dtype=torch.float64) @ torch.randn(12, 12, dtype=torch.float64)  # correlated
    w = whitening_weights(x.float(), eps=0.0).double()
    assert w.shape == (24, 3, 2, 2)
    torch.testing.assert_close(w[12:], -w[:12])
    out = nn.functional.conv2d(x, w[:12]).permute(1, 0, 2, 3).reshape(12, -1)
    second_moment = out @ out.T / out.shape[1]
    torch.testing.assert_close(second_moment, torch.eye(12, dtype=torch.float64), atol=1e-3, rtol=0)


def test_whitening_refuses_integer_images():
    with pytest.raises(ValueError, match="whitening_weights"):
        whitening_weights(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize("norm", available_norms())
def test_fast_cifar_builds_every_norm(norm):
    model = build_model("fast_cifar", norm, width=0.125)
    model.init_whitening(torch.randn(16, 3, 32, 32))
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert not model.whiten.weight.requires_grad


@pytest.mark.parametrize("width", [0, -1.0])
def test_width_must_be_positive(width):
    with pytest.raises(ValueError, match="width must be > 0"):
        build_model("fast_cifar", "bn", width=width)
    with pytest.raises(ValueError, match="width must be > 0"):
        FastCIFAR("bn", width=width)


def test_unknown_norm_is_named():
    with pytest.raises(ValueError, match="unknown norm 'xyz'"):
        build_model("fast_cifar", "xyz")


def test_dirac_init_makes_first_filters_the_identity():
    model = FastCIFAR("bn", width=0.25)
    conv = model.groups[1].conv1
    x = torch.randn(2, conv.in_channels, 6, 6)
    torch.testing.assert_close(conv(x)[:, : conv.in_channels], x)


@pytest.mark.parametrize("norm", [n for n in available_norms() if n not in ("none", "wn", "torch-bn", "torch-gn")])
def test_every_norm_shift_gets_the_shift_rule(norm):
    # One rule for every norm: each normalization layer's shift is found, never a conv or linear bias
    layer = make_norm(norm, 16)
    shifts = norm_shift_parameters(nn.Sequential(nn.Conv2d(3, 16, 3, bias=True), layer, nn.Linear(16, 2)))
    own = [p for m in layer.modules() for n, p in m.named_parameters(recurse=False) if n == "bias"]
    assert {id(p) for p in shifts} == {id(p) for p in own}


def test_alternating_flip_flips_each_image_once_in_two_epochs():
    images, labels = _images(32)
    data = FastData(images, labels, batch_size=32, translate=0, flip="alternate", seed=3)
    masks = [data.flipped(e) for e in range(4)]
    assert all(bool((masks[e] ^ masks[e + 1]).all()) for e in range(3))
    assert 0 < int(masks[0].sum()) < 32
    for e in range(2):
        order, _ = data.order(e)
        (x, y), = list(data.epoch(e))
        expected = fast.normalize(images[order])
        expected = torch.where(masks[e][order][:, None, None, None], expected.flip(3), expected)
        assert torch.equal(x, expected) and torch.equal(y, labels[order])


def test_translate_is_a_window_of_the_padded_image():
    padded = torch.randn(50, 3, 12, 12)
    out = translate_batch(padded, 2, torch.Generator().manual_seed(0))
    assert out.shape == (50, 3, 8, 8)
    for i in range(50):
        assert any(torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8]) for dy in range(5) for dx in range(5))


def test_lookahead_averages_parameters_and_buffers():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).double()
    look = Lookahead(net)
    before = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    net.train()(torch.randn(8, 3, dtype=torch.float64))  # moves the running statistics
    with torch.no_grad():
        net[0].weight.add_(1.0)
    after = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    look.update(net, 0.25)
    for k in before:
        torch.testing.assert_close(net.state_dict()[k], 0.25 * before[k] + 0.75 * after[k])


def test_tta_levels():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(5)).double()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    model(x)
    torch.testing.assert_close(tta_logits(model, x, 0), model(x))
    torch.testing.assert_close(tta_logits(model, x, 1), 0.5 * (model(x) + model(x.flip(3))))
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    m = lambda z: 0.5 * (model(z) + model(z.flip(3)))  # noqa: E731
    torch.testing.assert_close(tta_logits(model, x, 2),
                               0.5 * m(x) + 0.25 * m(padded[..., :-2, :-2]) + 0.25 * m(padded[..., 2:, 2:]))


@pytest.mark.parametrize("field,value", [("epochs", 0), ("batch_size", 0), ("lr", -1.0), ("flip", "sometimes"),
                                         ("tta", 3), ("momentum", 1.0)])
def test_recipe_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=f"FastRecipe: {field}"):
        FastRecipe(**{field: value})


def test_train_fast_runs_and_records(monkeypatch):
    images, labels = _images(256)
    model = build_model("fast_cifar", "bn", width=0.125)
    recipe = FastRecipe(epochs=2, batch_size=64, tta=1, whiten_bias_epochs=1)
    hist = train_fast(model, images, labels, images[:64], labels[:64], recipe=recipe, progress=False)
    assert hist["steps"] == 8 and len(hist["step_loss"]) == 8 and len(hist["epochs"]) == 2
    assert all(math.isfinite(v) for v in hist["step_loss"])
    assert 0 <= hist["test_acc_tta"] <= 1 and hist["wall_seconds"] > 0
    assert model.whitened and not model.whiten.bias.requires_grad  # frozen after one epoch


def test_bf16_request_without_support_warns_and_trains_in_float32(monkeypatch):
    monkeypatch.setattr(fast, "bf16_supported", lambda: False)
    images, labels = _images(128)
    model = build_model("fast_cifar", "gn", width=0.125)
    with pytest.warns(UserWarning, match="no native bf16; training in float32"):
        hist = train_fast(model, images, labels, recipe=FastRecipe(epochs=1, batch_size=64), progress=False)
    assert hist["bf16"] is False


def test_range_test_and_the_lr_rule():
    images, labels = _images(256)
    out = range_test(build_model("fast_cifar", "bn", width=0.125), images, labels, steps=5, batch_size=64)
    assert len(out["multiplier"]) == len(out["loss"]) <= 5
    assert out["multiplier"][0] == pytest.approx(1e-2)
    whitened = []  # `prepare` sees the net once, its whitening already set from the data (as in train_fast)
    range_test(build_model("fast_cifar", "bn", width=0.125), images, labels, steps=2, batch_size=64,
               prepare=lambda m: whitened.append(m.whitened))
    assert whitened == [True]
    chance = {**out, "left_chance": False}
    assert lr_from_range_tests(FastRecipe(), chance, out) is None  # never left chance: not trained
    learned = {"left_chance": True, "diverged_at": 4.0, "multiplier": [1.0, 4.0]}
    base = {"left_chance": True, "diverged_at": 2.0, "multiplier": [1.0, 2.0]}
    assert lr_from_range_tests(FastRecipe(lr=1.5), learned, base) == pytest.approx(3.0)
    never = {"left_chance": True, "diverged_at": None, "multiplier": [1.0, 8.0]}
    assert lr_from_range_tests(FastRecipe(lr=1.5), never, base) == pytest.approx(6.0)
    # The capped rule: never above the recipe's rate, lower where a norm blows up sooner, and every norm trained
    assert lr_from_range_tests(FastRecipe(lr=1.5), learned, base, cap=1.0) == pytest.approx(1.5)
    assert lr_from_range_tests(FastRecipe(lr=1.5), base, learned, cap=1.0) == pytest.approx(0.75)
    assert lr_from_range_tests(FastRecipe(lr=1.5), {**base, "left_chance": False}, learned, cap=1.0) == pytest.approx(0.75)
    # The lowest-point piece: a norm whose loss is lowest more than `lowest_tolerance` x sooner than BN's gets a rate
    # lowered in that proportion (GN at BN's rate fell back to chance loss); a nearer lowest point changes nothing
    bn = {**base, "diverged_at": 40.0, "multiplier": [0.5, 1.0, 2.0, 4.0, 40.0], "loss": [2.3, 2.2, 2.1, 2.0, 9.0]}
    early = {**bn, "loss": [2.25, 2.2, 2.26, 2.28, 2.4]}  # lowest at 1.0: 4x sooner than BN's 4.0
    near = {**bn, "loss": [2.3, 2.2, 2.1, 2.2, 2.4]}  # lowest at 2.0: 2x sooner
    assert lowest_point(bn) == 4.0 and lowest_point({**bn, "loss": [float("nan")] + bn["loss"][1:]}) == 4.0
    assert lr_from_range_tests(FastRecipe(lr=1.5), early, bn, cap=1.0, lowest_tolerance=3.0) == pytest.approx(0.375)
    assert lr_from_range_tests(FastRecipe(lr=1.5), near, bn, cap=1.0, lowest_tolerance=3.0) == pytest.approx(1.5)
    assert lr_from_range_tests(FastRecipe(lr=1.5), early, bn, cap=1.0) == pytest.approx(1.5)  # without the piece
    # A curve that never left chance has no lowest point to go by
    assert lr_from_range_tests(FastRecipe(lr=1.5), {**early, "left_chance": False}, bn, cap=1.0,
                               lowest_tolerance=3.0) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="lowest_tolerance needs cap"):
        lr_from_range_tests(FastRecipe(lr=1.5), early, bn, lowest_tolerance=3.0)


def test_fast_data_refuses_float_images_and_short_splits():
    with pytest.raises(TypeError, match="FastData"):
        FastData(torch.zeros(8, 3, 32, 32), torch.zeros(8, dtype=torch.long), batch_size=4)
    images, labels = _images(8)
    with pytest.raises(ValueError, match="no full batch"):
        FastData(images, labels, batch_size=16)


def test_fast_net_without_dirac_init_keeps_frn_gradients_finite_where_the_dirac_init_blows_them_up():
    # FRN + TLU zeroes a few (sample, channel)s; the Dirac init hands them on to the next FRN, which divides by sqrt(eps)
    images, labels = _images(128)
    x = fast.normalize(images)
    largest = {}
    for dirac in (True, False):
        torch.manual_seed(0)
        model = build_model("fast_cifar", "frn", width=0.25, dirac=dirac)
        model.init_whitening(x)
        nn.functional.cross_entropy(model(x), labels).backward()
        largest[dirac] = max(p.grad.abs().max().item() for p in model.parameters() if p.grad is not None)
    assert largest[True] > 1e4 * largest[False] and largest[False] < 10
    # WN gets the Dirac init through its reparametrization: the same weights as the plain conv's, from the same draw
    torch.manual_seed(0)
    wn = FastCIFAR("wn", width=0.25).groups[1].conv2
    torch.manual_seed(0)
    wn_plain = FastCIFAR("wn", width=0.25, dirac=False).groups[1].conv2
    c = wn.weight.shape[1]
    assert torch.allclose(wn.weight[:c, :, 1, 1], torch.eye(c), atol=1e-6) and wn.weight[:c].abs().sum().item() == pytest.approx(c)
    assert torch.equal(wn.weight[c:], wn_plain.weight[c:]) and not torch.allclose(wn.weight[:c], wn_plain.weight[:c])
    plain = FastCIFAR("bn", width=0.25, dirac=False).groups[0].conv2.weight
    assert not torch.equal(plain[:, :, 1, 1].diagonal(), torch.ones(plain.shape[0]))  # no identity filters
    assert torch.equal(FastCIFAR("bn", width=0.25).groups[0].conv2.weight[:, :, 1, 1].diagonal(), torch.ones(16))
