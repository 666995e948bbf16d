"""Reliability: no silent wrong result, no NaN, no bare crash — across the layers, the tools and the data path.

One test per case, grouped by class (the headings). What each layer and tool promises is written
in `docs/guarantees.md`, which names these tests.
"""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import labnorm
from labnorm.weight_std import WSConv1d, WSConv2d, WSConvTranspose2d, weight_standardization

# ------------------------------------------------------------------ 1. no cache that can go stale


@pytest.mark.parametrize("cls, x_shape, out_dim", [(WSConv2d, (2, 8, 6, 6), 0), (WSConv1d, (2, 8, 6), 0),
                                                   (WSConvTranspose2d, (2, 8, 6, 6), 1)])
@pytest.mark.parametrize("how", ["data", "numpy"])
def test_ws_eval_follows_a_weight_changed_behind_autograds_back(cls, x_shape, out_dim, how):
    # `.data` and NumPy views write the weight without moving its version counter
    torch.manual_seed(0)
    m = cls(8, 4, 3).eval()
    x = torch.randn(x_shape)
    with torch.no_grad():
        m(x)
    new = torch.randn_like(m.weight)
    if how == "data":
        m.weight.data.copy_(new)
    else:
        m.weight.detach().numpy()[...] = new.numpy()
    with torch.no_grad():
        b = m(x)
        expected = m._conv_forward(x, weight_standardization(new, variant="paper", out_dim=out_dim), m.bias) \
            if cls is not WSConvTranspose2d else F.conv_transpose2d(x, weight_standardization(new, out_dim=1), m.bias)
    assert torch.allclose(b, expected, atol=1e-5)


# ------------------------------------------------------------------ 2. compiled == eager


class _Residual(nn.Module):
    """`WNAddition` needs two inputs: the block adds a strict WN conv's output to its input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        from labnorm.gan import StrictWNConv2d, WNAddition

        self.conv = StrictWNConv2d(c, c, 3, padding=1)
        self.add = WNAddition(c)

    def forward(self, x):
        return self.add(self.conv(x), x)


class _Head(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        from labnorm.gan import AffineWNLinear, StrictWNLinear

        self.strict = StrictWNLinear(features, 6)
        self.affine = AffineWNLinear(6, 3)

    def forward(self, x):
        return self.affine(self.strict(x.flatten(1)))


def _every_layer(c: int = 4) -> dict[str, nn.Module]:
    """Every labnorm layer, under every option that changes its statistics path (C = 4 channels)."""
    from labnorm import gan

    wn_conv = labnorm.weight_norm(nn.Conv2d(c, c, 3, padding=1), dim="output")
    return {
        "bn": labnorm.BatchNorm2d(c),
        "bn_cumulative": labnorm.BatchNorm2d(c, momentum=None),
        "bn_no_running": labnorm.BatchNorm2d(c, track_running_stats=False),
        "bn_no_affine": labnorm.BatchNorm2d(c, affine=False),
        "gn": labnorm.GroupNorm(2, c),
        "gn_no_affine": labnorm.GroupNorm(2, c, affine=False),
        **{f"ws_{v}": WSConv2d(c, c, 3, padding=1, variant=v) for v in ("paper", "ws_repo", "labml")},
        "ws_transposed": WSConvTranspose2d(c, c, 3, padding=1),
        "bcn": labnorm.BatchChannelNorm2d(c, num_groups=2),
        "bcn_est_official": labnorm.BatchChannelNorm2d(c, num_groups=2, estimate=True),
        "bcn_est_labml": labnorm.BatchChannelNorm2d(c, num_groups=2, estimate=True, estimate_variant="labml"),
        "sn": labnorm.SwitchNorm2d(c),
        "sn_official": labnorm.SwitchNorm2d(c, statistics="official"),
        "sn_batch_average": labnorm.SwitchNorm2d(c, using_moving_average=False),
        "sn_no_bn": labnorm.SwitchNorm2d(c, using_bn=False),
        "wn_conv": wn_conv,
        "mean_only_bn": labnorm.MeanOnlyBatchNorm(c),
        "gan_strict_conv": gan.StrictWNConv2d(c, c, 3, padding=1),
        "gan_affine_conv": gan.AffineWNConv2d(c, c, 3, padding=1),
        "gan_strict_tconv": gan.StrictWNConvTranspose2d(c, c, 3, padding=1),
        "gan_affine_tconv": gan.AffineWNConvTranspose2d(c, c, 3, padding=1),
        "trelu": gan.TReLU(c),
        "tprelu": gan.TPReLU(c),
        "wn_addition": _Residual(c),
    }


def _eager_equals_compiled(model: nn.Module, backend: str, x_shape=(3, 4, 5, 5), steps: int = 3, tol=1e-9,
                           backward: bool = True):
    """Train steps (outputs, input and parameter gradients, buffers), then eval forwards, eager vs compiled.

    `backward=False` compares the train forwards and buffers only (one compiled graph fewer)."""
    # A fresh dynamo: past its recompile limit it would fall back to eager silently, and this test pass
    torch.compiler.reset()
    torch.manual_seed(0)
    model = model.double()
    twin = copy.deepcopy(model)
    # As a user compiles: graph breaks allowed (BN's cumulative average was wrong only across a break)
    compiled = torch.compile(twin, backend=backend)
    for step in range(steps):
        x = torch.randn(x_shape, dtype=torch.float64) * 2 + 0.5
        xe, xc = x.clone().requires_grad_(backward), x.clone().requires_grad_(backward)
        ye, yc = model(xe), compiled(xc)
        assert torch.allclose(ye, yc, atol=tol, rtol=0), f"train step {step}: outputs differ"
        for (name, b), c in zip(model.named_buffers(), twin.buffers()):
            assert torch.allclose(b.double(), c.double(), atol=tol, rtol=0), f"train step {step}: buffer {name} differs"
        if not backward:
            continue
        g = torch.randn_like(ye)
        ye.backward(g)
        yc.backward(g)
        assert torch.allclose(xe.grad, xc.grad, atol=tol, rtol=0), f"train step {step}: input grads differ"
        for (name, p), q in zip(model.named_parameters(), twin.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=tol, rtol=0), f"train step {step}: grad of {name} differs"
        with torch.no_grad():  # a plain SGD step, the same on both
            for p, q in zip(model.parameters(), twin.parameters()):
                p -= 0.1 * p.grad
                q -= 0.1 * q.grad
                p.grad = q.grad = None
    model.eval()
    twin.eval()
    with torch.no_grad():
        x = torch.randn(x_shape, dtype=torch.float64)
        assert torch.allclose(model(x), compiled(x), atol=tol, rtol=0), "eval: outputs differ"


@pytest.mark.parametrize("name", sorted(_every_layer()))
def test_layer_eager_equals_compiled_aot_eager(name):
    _eager_equals_compiled(nn.Sequential(_every_layer()[name]), "aot_eager")


def test_every_layer_eager_equals_compiled_inductor():
    # Inductor (the default backend, the one with known wrong-result bugs) on one model holding one
    # configuration of every layer, chosen where its statistics path is most delicate: one train-forward
    # graph and one eval graph (gradients are compared per option with aot_eager above), so the
    # compile time stays small
    layers = _every_layer()
    names = ["bn_cumulative", "gn_no_affine", "ws_labml", "bcn_est_official", "sn_official", "wn_conv",
             "mean_only_bn", "gan_affine_tconv", "tprelu", "wn_addition"]
    model = nn.Sequential(*(layers[n] for n in names), _Head(4 * 5 * 5))
    _eager_equals_compiled(model, "inductor", tol=1e-8, backward=False)


# ------------------------------------------------------------------ 3. tools restore what they do not document as changed


def _mixed_model(seed: int = 0) -> nn.Module:
    """A model with a frozen (eval) BN inside, a dropout and a weight-normalized conv."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        labnorm.weight_norm(nn.Conv2d(3, 4, 3, padding=1), dim="output"), labnorm.BatchNorm2d(4), nn.ReLU(),
        nn.Dropout(0.5), labnorm.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 10),
    )
    model[4].eval()  # a frozen BN inside a training model
    return model


def _modes(model):
    return [m.training for m in model.modules()]


def _batches(n=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 3, 4, 4, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(n)]


def _lr_finder(model):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    return labnorm.LRFinder(model, opt, nn.CrossEntropyLoss())


def test_lr_finder_restores_each_submodules_mode():
    model = _mixed_model()
    modes = _modes(model)
    _lr_finder(model).range_test(_batches(), num_iter=3)
    assert _modes(model) == modes


def test_lr_finder_restores_grads_none_and_set():
    model = _mixed_model()
    model[-1].weight.grad = torch.full_like(model[-1].weight, 0.5)  # a gradient the caller had
    _lr_finder(model).range_test(_batches(), num_iter=3)
    assert all(p.grad is None for p in list(model.parameters())[:-2])
    assert torch.equal(model[-1].weight.grad, torch.full_like(model[-1].weight, 0.5))


def test_data_dependent_init_leaves_running_statistics_modes_and_rng():
    model = _mixed_model()
    model.eval()
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "tracked" in k}
    torch.manual_seed(3)
    rng = torch.get_rng_state()
    labnorm.data_dependent_init(model, _batches()[0][0])
    assert _modes(model) == [False] * len(_modes(model))
    for k, v in buffers.items():
        assert torch.equal(model.state_dict()[k], v), k
    assert torch.equal(torch.get_rng_state(), rng)


def test_landscape_tools_restore_each_submodules_mode_and_rng():
    from labnorm import landscape

    model = _mixed_model()
    modes = _modes(model)
    torch.manual_seed(4)
    rng = torch.get_rng_state()
    direction = landscape.filter_normalized_direction(model, seed=0)
    landscape.loss_along_direction(model, _batches(), direction, [0.0, 0.5])
    landscape.gradient_smoothness(model, _batches()[0], [0.1])
    assert _modes(model) == modes
    assert torch.equal(torch.get_rng_state(), rng)
    # and the same batch gives the same loss however often it is evaluated (same dropout draws)
    a = landscape.loss_along_direction(model, _batches(), direction, [0.0, 0.0])["loss"]
    assert a[0] == a[1]


def test_fit_evaluate_restores_each_submodules_mode():
    from labnorm.train.fit import evaluate

    model = _mixed_model()
    modes = _modes(model)
    evaluate(model, _batches())
    assert _modes(model) == modes


def test_reconstruction_loss_restores_each_submodules_mode():
    from labnorm.gan import dcgan_generator, reconstruction_loss

    torch.manual_seed(0)
    gen = dcgan_generator("wn", image_size=8, code_size=8, channels=8)
    frozen = next(m for m in gen.modules() if m is not gen and len(list(m.children())) == 0)
    frozen.eval()
    modes = _modes(gen)
    reconstruction_loss(gen, torch.rand(2, 3, 8, 8), steps=1)
    assert _modes(gen) == modes


def test_finalize_batch_average_leaves_statistics_when_batches_fail():
    model = nn.Sequential(labnorm.SwitchNorm2d(4, using_moving_average=False))
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def failing():
        yield torch.randn(4, 4, 3, 3)
        raise RuntimeError("data went away")

    with pytest.raises(RuntimeError, match="data went away"):
        labnorm.finalize_batch_average(model, failing(), num_batches=3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------------------ 4. empty batches

# Layers whose training step needs batch statistics: N = 0 is refused by name. Every other case
# (stateless layers in training, every layer in eval) gives an empty output and leaves the state alone.
_NEEDS_A_BATCH = {"bn", "bn_cumulative", "bn_no_running", "bn_no_affine", "bcn", "bcn_est_official",
                  "bcn_est_labml", "sn", "sn_official", "sn_batch_average", "mean_only_bn"}


@pytest.mark.parametrize("name", sorted(_every_layer()))
@pytest.mark.parametrize("training", [True, False])
def test_empty_batch(name, training):
    layer = _every_layer()[name].train(training)
    before = copy.deepcopy(layer.state_dict())
    x = torch.randn(0, 4, 5, 5)
    if training and name in _NEEDS_A_BATCH:
        # the message names the layer (the outer one or the part that needs the batch)
        with pytest.raises(ValueError, match=r"(BatchNorm2d|SwitchNorm2d|BatchChannelNorm2d|MeanOnlyBatchNorm).*"):
            layer(x)
    else:
        y = layer(x)
        assert y.shape[0] == 0
    for k, v in layer.state_dict().items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------------------ 5. numerics: never a NaN


@pytest.mark.parametrize("statistics", ["official", "exact"])
@pytest.mark.parametrize("using_bn", [True, False])
def test_switch_norm_float32_mean_100_std_001_is_finite_and_accurate(statistics, using_bn):
    torch.manual_seed(0)
    x = torch.randn(4, 8, 6, 6) * 0.01 + 100
    layer = labnorm.SwitchNorm2d(8, statistics=statistics, using_bn=using_bn)
    ref = copy.deepcopy(layer).double()
    for training in (True, False):
        layer.train(training)
        ref.train(training)
        y, y64 = layer(x), ref(x.double())
        assert torch.isfinite(y).all()
        assert (y.double() - y64).abs().max() < 2e-3  # float32 inputs at 100 carry 7.6e-6 / 0.01 of rounding
    if using_bn:
        assert torch.isfinite(layer.running_var).all() and (layer.running_var >= 0).all()


# ------------------------------------------------------------------ 6. data: complete or refused, never shared


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    from labnorm import data as D

    monkeypatch.setenv("LABNORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LABNORM_DATA", raising=False)
    D._MEMO.clear()
    yield D, tmp_path
    D._MEMO.clear()


def _jpeg_tar_bytes(D, extra: dict[str, bytes] | None = None, per_class: int = 1) -> bytes:
    """An uncompressed tar of the JPEG copy's layout (per_class images per class and split) + `extra` members."""
    import io
    import tarfile

    from PIL import Image

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        members = {f"{s}/{c}/{i}.jpg": None for s in ("train", "test") for c in D.CIFAR10_CLASSES for i in range(per_class)}
        members.update(extra or {})
        for k, (name, raw) in enumerate(members.items()):
            if raw is None:
                im = io.BytesIO()
                Image.new("RGB", (32, 32), (k % 256, 7, 9)).save(im, "JPEG")
                raw = im.getvalue()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _write_gz(path, raw: bytes):
    import gzip

    path.write_bytes(gzip.compress(raw))
    return path


def test_jpeg_archive_with_a_corrupt_member_header_is_refused(data_env):
    import io
    import tarfile

    D, tmp = data_env
    raw = bytearray(_jpeg_tar_bytes(D, per_class=2))
    offsets = [m.offset for m in tarfile.open(fileobj=io.BytesIO(bytes(raw)))]
    header = offsets[len(offsets) * 3 // 4]  # a member of the train split
    raw[header + 148:header + 156] = b"9999999\0"  # its header checksum
    path = _write_gz(tmp / D.JPEG_FILE, bytes(raw))
    with pytest.raises(D.CorruptArchiveError, match="unreadable member header"):
        D.load_cifar10("train", root=path, download=False)


def test_jpeg_split_missing_images_is_refused(data_env):
    # A split whose classes differ in size (an archive written without some images) is incomplete
    D, tmp = data_env
    raw = _jpeg_tar_bytes(D, per_class=1, extra={"train/cat/extra.jpg": None})
    path = _write_gz(tmp / D.JPEG_FILE, raw)
    with pytest.raises(D.CorruptArchiveError, match="train split is incomplete.*cat 2"):
        D.load_cifar10("train", root=path, download=False)


def test_jpeg_stray_top_level_file_gets_a_clear_error(data_env):
    D, tmp = data_env
    path = _write_gz(tmp / D.JPEG_FILE, _jpeg_tar_bytes(D, extra={"stray.jpg": None}))
    with pytest.raises(D.CorruptArchiveError, match="unexpected member 'stray.jpg'.*<split>/<class>/<file>.jpg"):
        D.load_cifar10("train", root=path, download=False)


def test_load_cifar10_hands_out_tensors_a_caller_cannot_share(data_env):
    D, tmp = data_env
    path = _write_gz(tmp / D.JPEG_FILE, _jpeg_tar_bytes(D))
    first = D.load_cifar10("train", root=path, download=False)
    clean = first.images.clone(), first.labels.clone()
    first.images.zero_()  # a caller normalizing in place, say
    first.labels.fill_(3)
    again = D.load_cifar10("train", root=path, download=False)
    assert torch.equal(again.images, clean[0]) and torch.equal(again.labels, clean[1])


# ------------------------------------------------------------------ 7. crashes name the tool, the fault and the fix


def test_lr_finder_on_an_empty_loader():
    with pytest.raises(ValueError, match="LRFinder.range_test: the loader yielded no batches"):
        _lr_finder(_mixed_model()).range_test([], num_iter=3)


def _fit_toy(tmp_path, epochs, resume=False, checkpoint=True):
    from labnorm.train.fit import fit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    hist = fit(model, _batches(3), epochs=epochs, lr=0.05, checkpoint=tmp_path / "ckpt.pt" if checkpoint else None,
               resume=resume)
    return model, hist


def test_fit_resume_with_more_epochs_is_refused_before_the_model_changes(tmp_path):
    from labnorm.train.fit import fit

    _fit_toy(tmp_path, epochs=2)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=r"fit: the checkpoint .*ckpt.pt continues a one-cycle schedule of 6 steps "
                                         r"\(2 epochs of 3 steps\), this run has 3 epochs"):
        fit(model, _batches(3), epochs=3, lr=0.05, checkpoint=tmp_path / "ckpt.pt", resume=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_fit_resume_without_a_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"fit: resume=True but there is no checkpoint at .*ckpt.pt"):
        _fit_toy(tmp_path, epochs=2, resume=True)


def test_fit_with_an_empty_loader_names_the_problem(tmp_path):
    from labnorm.train.fit import fit

    with pytest.raises(ValueError, match="fit: the training loader has no batches"):
        fit(nn.Linear(2, 2), [], epochs=1, lr=0.1)


def test_fit_with_too_short_a_schedule_names_the_problem():
    from labnorm.train.fit import fit

    with pytest.raises(ValueError, match="fit: the one-cycle warm-up needs more than one step"):
        fit(nn.Sequential(nn.Flatten(), nn.Linear(48, 10)), _batches(2), epochs=2, lr=0.1)


# ------------------------------------------------------------------ 8. dtype contract (torch's own)

# Torch's rule, held by every layer: a normalization layer (nn.BatchNorm2d, GroupNorm, InstanceNorm2d,
# LayerNorm) takes float16/bfloat16 input with float32 parameters and returns the input's dtype; a
# layer with a weight matrix (nn.Conv2d, Linear) refuses the mix (autocast casts both). labnorm's
# per-channel layers (TReLU, TPReLU, WN addition) count as the former; its WS and WN convs and linears
# as the latter, with a TypeError naming the layer.
_WEIGHT_LAYERS = {"ws_paper", "ws_ws_repo", "ws_labml", "ws_transposed", "gan_strict_conv", "gan_affine_conv",
                  "gan_strict_tconv", "gan_affine_tconv"}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", sorted(set(_every_layer()) - {"wn_conv"}))  # (wn_conv: torch's own conv)
def test_half_precision_input_to_a_float32_layer(name, dtype):
    layer = _every_layer()[name]
    x = torch.randn(3, 4, 5, 5).to(dtype)
    if name == "wn_addition":  # the addition itself, without the block's conv
        add = layer.add
        layer = lambda t: add(t, t)  # noqa: E731
        layer.train, layer.buffers = add.train, add.buffers
    for training in (True, False):
        layer.train(training)
        if name in _WEIGHT_LAYERS:
            with pytest.raises(TypeError, match=f"{type(layer).__name__.replace('Parametrized', '')}: input is "
                                                f"{dtype}, weight is torch.float32.*autocast"):
                layer(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert layer(x).dtype == torch.bfloat16
        else:
            y = layer(x)
            assert y.dtype == dtype and torch.isfinite(y).all()
            assert all(b.dtype != dtype for b in layer.buffers() if b.is_floating_point())
