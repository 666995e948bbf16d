"""Weight-normalized GAN layers, models and the reconstruction loss (Xiang & Li, 2017): the paper's
properties (unit variance, Lemma 2, Appendix E, WNAddition identity), parity with the authors'
formula (normalize the output by the weight norm), and the batched reconstruction loss against a
per-image loop."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labnorm import gan
from labnorm.gan.layers import UnitNorm


def raw(layer):
    return layer.parametrizations.weight.original


def test_strict_layers_equal_the_authors_formula_in_float64():
    # The authors divide the plain layer's output by sqrt(f * sum v^2 + 1e-6); we normalize the weight
    torch.manual_seed(0)
    x4 = torch.randn(2, 5, 7, 7, dtype=torch.float64)
    cases = [
        (gan.StrictWNConv2d(5, 4, 3, 2, 1), lambda l, v: F.conv2d(x4, v, None, 2, 1), (1, 2, 3), 1.0, x4),
        (gan.StrictWNConvTranspose2d(5, 4, 4, 2, 1), lambda l, v: F.conv_transpose2d(x4, v, None, 2, 1), (0, 2, 3),
         0.25, x4),
    ]
    x2 = torch.randn(3, 6, dtype=torch.float64)
    cases.append((gan.StrictWNLinear(6, 4), lambda l, v: F.linear(x2, v), (1,), 1.0, x2))
    for layer, plain, dims, factor, x in cases:
        layer.double()
        v = raw(layer)
        norm = (v.square().sum(dims) * factor + 1e-6).sqrt()
        ref = plain(layer, v) / norm.view(1, -1, *([1] * (x.dim() - 2)))
        assert (layer(x) - ref).abs().max() <= 1e-12
        # Affine = gamma * strict + beta
    affine = gan.AffineWNConvTranspose2d(5, 4, 4, 2, 1).double()
    strict = gan.StrictWNConvTranspose2d(5, 4, 4, 2, 1).double()
    with torch.no_grad():
        raw(strict).copy_(raw(affine))
        affine.scale.normal_()
        affine.bias.normal_()
    ref = strict(x4) * affine.scale.view(1, -1, 1, 1) + affine.bias.view(1, -1, 1, 1)
    assert (affine(x4) - ref).abs().max() <= 1e-12


def _interior_var(layer, x, crop):
    with torch.no_grad():
        y = layer(x)
    return y[..., crop:-crop, crop:-crop].var().item() if crop else y.var().item()


def test_strict_layers_keep_unit_variance_and_the_transposed_factor_is_needed():
    torch.manual_seed(1)
    x = torch.randn(16, 64, 16, 16)
    assert abs(_interior_var(gan.StrictWNConv2d(64, 64, 3, 1, 1), x, 1) - 1) < 0.1
    # A strided conv still sees the whole kernel: no factor, still unit variance
    assert abs(_interior_var(gan.StrictWNConv2d(64, 64, 4, 2, 1), x, 1) - 1) < 0.1
    t = gan.StrictWNConvTranspose2d(64, 64, 4, 2, 1)
    assert abs(_interior_var(t, x, 2) - 1) < 0.1
    # Without the factor 1/(d_w d_h) the stride-2 transposed conv would give about 1/4
    t.parametrizations.weight[0].factor = 1.0
    assert abs(_interior_var(t, x, 2) - 0.25) < 0.03
    lin = gan.StrictWNLinear(256, 128)
    assert abs(_interior_var(lin, torch.randn(4096, 256), 0) - 1) < 0.1


def test_zero_filter_is_finite_and_bad_input_is_refused():
    layer = gan.StrictWNConv2d(3, 2, 3)
    with torch.no_grad():
        raw(layer)[0].zero_()
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and (y[:, 0] == 0).all()
    assert torch.isfinite(raw(layer).grad).all() and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="StrictWNConv2d: expected input with 4 dims and 3 channels"):
        layer(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="StrictWNLinear"):
        gan.StrictWNLinear(3, 2)(torch.randn(2, 3, 1))
    with pytest.raises(ValueError, match="TPReLU: expected input"):
        gan.TPReLU(3)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        UnitNorm(0, eps=-1.0)
    with pytest.raises(ValueError, match="norm must be one of"):
        gan.dcgan_generator("batch")
    with pytest.raises(ValueError, match="image_size must be even"):
        gan.dcgan_discriminator("wn", image_size=31)


def test_appendix_b_initialization():
    torch.manual_seed(2)
    fc = gan.StrictWNLinear(256, 1000, init_factor=0.01)
    assert raw(fc).abs().max() <= 0.01 / 16 and raw(fc).abs().max() > 0.009 / 16
    conv = gan.StrictWNConvTranspose2d(96, 48, 4, 2, 1)
    bound = 1 / math.sqrt(96 * 16)
    assert raw(conv).abs().max() <= bound and raw(conv).abs().max() > 0.9 * bound


@pytest.mark.parametrize("layer,x,n", [
    (gan.StrictWNLinear(50, 30), torch.randn(4, 50), 50),
    (gan.StrictWNConv2d(6, 5, 3, 1, 1), torch.randn(2, 6, 8, 8), 6 * 9),
    (gan.StrictWNConv2d(6, 5, 4, 2, 1), torch.randn(2, 6, 8, 8), 6 * 16),
])
def test_lemma_2_gradient_l1_bound(layer, x, n):
    # sum |dL/dx| <= sqrt(n) * sum |dL/dy| for any upstream gradient
    layer.double()
    x = x.double().requires_grad_()
    y = layer(x)
    for seed in range(5):
        g = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        (gx,) = torch.autograd.grad(y, x, g, retain_graph=True)
        assert gx.abs().sum() <= math.sqrt(n) * g.abs().sum()
    # Scaling the raw weight changes nothing under WN (up to eps = 1e-6 in the norm); without WN the same
    # weight x 100 breaks the bound
    with torch.no_grad():
        raw(layer).mul_(100)
    (gx_wn,) = torch.autograd.grad(layer(x), x, g)
    assert (gx_wn - gx).abs().max() <= 1e-5 * gx.abs().max()
    w = layer.weight.detach() * 100  # an unnormalized weight of norm 100 per output unit
    y_plain = F.linear(x, w) if x.dim() == 2 else F.conv2d(x, w, None, layer.stride, layer.padding)
    (gx_plain,) = torch.autograd.grad(y_plain, x, g)
    assert gx_plain.abs().sum() > math.sqrt(n) * g.abs().sum()


def test_translated_relus():
    torch.manual_seed(3)
    t = gan.TPReLU(4).double()
    with torch.no_grad():
        t.bias.normal_()
        t.weight.uniform_(0.1, 0.9)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    alpha, a = t.bias.view(1, -1, 1, 1), t.weight.view(1, -1, 1, 1)
    ref = torch.where(x > alpha, x, alpha + a * (x - alpha))
    assert (t(x) - ref).abs().max() <= 1e-15
    assert torch.autograd.gradcheck(lambda x, w, b: torch.func.functional_call(t, {"weight": w, "bias": b}, (x,)),
                                    (x, t.weight, t.bias))
    tr = gan.TReLU(4).double()
    with torch.no_grad():
        tr.bias.normal_()
    assert (tr(x) - torch.maximum(x, tr.bias.view(1, -1, 1, 1))).abs().max() <= 1e-14
    # Clipping after a step
    model = nn.Sequential(gan.TPReLU(2), nn.Sequential(gan.TPReLU(3)))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([-0.5, 1.5]))
        model[1][0].weight.fill_(0.3)
    assert gan.clip_slopes_(model) == 2
    assert model[0].weight.tolist() == [0.0, 1.0] and torch.allclose(model[1][0].weight, torch.full((3,), 0.3))


def test_wn_addition_is_the_shortcut_at_init_and_normalized_after():
    add = gan.WNAddition(3).double()
    r, s = torch.randn(2, 3, 4, 4, dtype=torch.float64), torch.randn(2, 3, 4, 4, dtype=torch.float64)
    assert (add(r, s) - s).abs().max() <= 1e-6 * s.abs().max()
    with torch.no_grad():
        add.weight.copy_(torch.tensor([[3.0, 1.0, -2.0], [4.0, 0.0, 2.0]]))
    u = add.weight / (add.weight.square().sum(0) + 1e-6).sqrt()
    ref = r * u[0].view(1, -1, 1, 1) + s * u[1].view(1, -1, 1, 1)
    assert (add(r, s) - ref).abs().max() <= 1e-15
    assert torch.autograd.gradcheck(lambda r, s, w: torch.func.functional_call(add, {"weight": w}, (r, s)),
                                    (r.requires_grad_(), s.requires_grad_(), add.weight))
    with pytest.raises(ValueError, match="WNAddition"):
        add(r, s[:, :, :2])


def test_appendix_e_discriminator_gradient_is_bounded_by_the_layer_constants():
    torch.manual_seed(4)
    c = 8
    d = gan.dcgan_discriminator("wn", channels=c, last="strict").double()
    x = torch.rand(6, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(d(x).sum(), x)
    fan_ins = [3 * 16, c * 16, 2 * c * 16, 4 * c * 16]  # three 4x4 convs and the final 4x4 conv
    bound = math.prod(math.sqrt(n) for n in fan_ins)
    per_image = gx.abs().flatten(1).sum(1)
    assert (per_image <= bound).all()
    # TPReLU slopes in [0, 1] are 1-Lipschitz, which the bound needs
    assert all(0 <= m.weight.min() and m.weight.max() <= 1 for m in d.modules() if isinstance(m, gan.TPReLU))


def test_dcgan_variants_follow_table_1():
    assert gan.dcgan_levels(32) == ([32, 16, 8, 4], [0, 0, 0])
    assert gan.dcgan_levels(160) == ([160, 80, 40, 20, 10, 5], [0, 0, 0, 0, 0])
    assert gan.dcgan_levels(20) == ([20, 10, 5], [0, 0])
    for norm in gan.NORMS:
        g, d = gan.dcgan_generator(norm), gan.dcgan_discriminator(norm)
        x = g(torch.randn(2, 256))
        assert x.shape == (2, 3, 32, 32) and ((x > 0) & (x < 1)).all() and d(x).shape == (2,)
        acts = {type(m) for m in [*g.modules(), *d.modules()] if isinstance(m, (nn.PReLU, gan.TPReLU))}
        assert acts == ({gan.TPReLU} if norm == "wn" else {nn.PReLU})
        bns = [name for name, m in [*g.named_modules(), *d.named_modules()] if isinstance(m, nn.BatchNorm2d)]
        # BN: G's fc and two hidden convs, D's second and third convs; not D's first, not the last layers
        assert len(bns) == (5 if norm == "bn" else 0)
        assert not hasattr(d, "bn0")
    g, d = gan.dcgan_generator("wn"), gan.dcgan_discriminator("wn")
    assert g.conv2.in_channels == 384 and d.conv0.out_channels == 96 and g.fc.in_features == 256
    affine = [n for n, m in [*g.named_modules(), *d.named_modules()] if isinstance(m, (gan.AffineWNConv2d, gan.AffineWNConvTranspose2d, gan.AffineWNLinear))]
    assert affine == ["conv0", "final"]  # only the last layers of G and D
    assert isinstance(g.fc, gan.StrictWNLinear)
    celeb = gan.dcgan_generator("wn", image_size=160, channels=16)
    assert celeb(torch.randn(1, 256)).shape == (1, 3, 160, 160)


def test_resnet_models_have_21_weight_layers_and_start_as_their_shortcuts():
    g, d = gan.resnet_generator(channels=(8, 16, 32)), gan.resnet_discriminator(channels=(8, 16, 32))

    def depth(net):  # weight layers on the main path: not the 1x1 shortcut projections
        return sum(1 for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
                   and getattr(m, "kernel_size", (0, 0)) != (1, 1))

    assert depth(g) == 21 and depth(d) == 21
    x = g(torch.randn(2, 256))
    assert x.shape == (2, 3, 32, 32) and d(x).shape == (2,)
    block = d.level1_block0
    h = torch.randn(2, 8, 16, 16)
    assert torch.allclose(block.add(block.residual(h), block.shortcut(h)), block.shortcut(h), atol=1e-5)


def tiny_generator(norm="bn"):
    torch.manual_seed(5)
    g = gan.dcgan_generator(norm, image_size=8, code_size=6, channels=4).double()
    if norm == "bn":  # non-trivial running statistics
        g.train()
        with torch.no_grad():
            for _ in range(3):
                g(torch.randn(16, 6, dtype=torch.float64))
    return g


def test_reconstruction_loss_batched_equals_a_loop_over_images():
    g = tiny_generator("bn")
    images = torch.rand(5, 3, 8, 8, dtype=torch.float64)
    g.train()
    losses, recon = gan.reconstruction_loss(g, images, steps=7)
    assert g.training  # mode restored
    assert all(p.grad is None for p in g.parameters())
    for i in range(5):
        li, ri = gan.reconstruction_loss(g, images[i:i + 1], steps=7)
        assert abs(li.item() - losses[i].item()) <= 1e-12
        assert (ri - recon[i:i + 1]).abs().max() <= 1e-10
    # steps=0 is the loss at z = 0, per pixel and colour channel
    l0, r0 = gan.reconstruction_loss(g, images, steps=0)
    g.eval()
    ref = (g(torch.zeros(5, 6, dtype=torch.float64)) - images).square().mean((1, 2, 3))
    assert (l0 - ref).abs().max() <= 1e-15
    # Optimizing z lowers the loss
    assert (losses < l0).all()
    with pytest.raises(ValueError, match="expected images"):
        gan.reconstruction_loss(g, images[:, :2], steps=1)


def test_train_gan_runs_records_and_clips():
    torch.manual_seed(6)
    g = gan.dcgan_generator("wn", image_size=8, code_size=6, channels=4)
    d = gan.dcgan_discriminator("wn", image_size=8, channels=4)
    with torch.no_grad():
        g.act_fc.weight.fill_(3.0)  # out of range: the first step clips it
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    codes = torch.randn(4, 6)
    hist = gan.train_gan(g, d, images, 4, eval_images=images[:3], eval_every=2, eval_steps=2,
                         sample_codes=codes, sample_at=(0, 4), batch_size=8)
    assert [it for it, _ in hist["eval"]] == [0, 2, 4]
    assert set(hist["samples"]) == {0, 4} and hist["samples"][4].shape == (16, 16, 3)
    assert hist["samples"][4].dtype == torch.uint8
    assert len(hist["losses"]["g"]) == 4 and hist["diverged_at"] is None
    assert all(math.isfinite(v) for v in hist["losses"]["d_real"])
    assert g.act_fc.weight.max() <= 1.0


def test_wn_layers_state_dict_and_compile():
    layer = gan.AffineWNConv2d(3, 4, 3, padding=1)
    fresh = gan.AffineWNConv2d(3, 4, 3, padding=1)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(fresh(x), layer(x))
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(x), layer(x), atol=1e-6)
