r"""# DCGAN and ResNet models of Xiang & Li (2017)

**DCGAN, Table 1.** The discriminator halves the image with 4×4 stride-2 convs, doubling the
channels from `channels` (96 for CIFAR-10, Appendix D.3), until the map is smaller than 8×8, then a
conv as large as the map gives one logit. The generator mirrors it: a fully connected layer from
the code (length 256 for CIFAR-10) to the smallest map, 4×4 stride-2 transposed convs halving the
channels, a last transposed conv to RGB and a sigmoid (images in $[0, 1]$). CIFAR-10's 32×32 goes
down to 4×4 in three convs; CelebA's 160×160 to 5×5 in five. Where a halving would make a map of
odd size, one pixel of extra padding keeps it even (not in the last layer).

The three variants, as the table places them:

| | vanilla | BN | WN |
|---|---|---|---|
| layers | plain, with bias | plain, with bias | strict WN; **affine WN in the last layer** of G and D |
| batch norm | none | after every layer except D's first and the last layers | none |
| activation | PReLU | PReLU | TPReLU |

The discriminator returns logits (the sigmoid belongs to the loss, `BCEWithLogits`), so
`last="strict"` gives Appendix E's discriminator: no sigmoid and a strict last layer, whose input
gradient is bounded by the product of the layers' constants.

**ResNet (§5.6).** 21 weight layers in each network: the discriminator has 10 residual blocks (two
3×3 convs each, the first of a level 4×4 with stride 2) and a final affine WN conv; the generator a
WN fully connected layer and 10 blocks of transposed convs (the last of a level upsamples). Each
block adds its residual branch to the shortcut (average pooling / nearest upsampling and a 1×1 WN
conv where the shape changes) with `WNAddition`, then a TPReLU; the generator's last block ends
with a per-channel affine map and the sigmoid. The split of the 10 blocks over the levels
(`blocks=(3, 3, 4)`) is ours; the paper gives the depth, not the split.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import (AffineWNConv2d, AffineWNConvTranspose2d, StrictWNConv2d, StrictWNConvTranspose2d,
                     StrictWNLinear, TPReLU, WNAddition)

__all__ = ["NORMS", "dcgan_levels", "dcgan_generator", "dcgan_discriminator", "resnet_generator",
           "resnet_discriminator"]

NORMS = ("vanilla", "bn", "wn")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"labnorm.gan: norm must be one of {', '.join(NORMS)}; got {norm!r}")


def dcgan_levels(image_size: int) -> tuple[list[int], list[int]]:
    """Map sizes from the image down to the smallest map, and the extra padding of each halving.

    `([32, 16, 8, 4], [0, 0, 0])` for CIFAR-10, `([160, 80, 40, 20, 10, 5], [0, 0, 0, 0, 0])` for CelebA.
    """
    if image_size < 8 or image_size % 2:
        raise ValueError(f"labnorm.gan: image_size must be even and >= 8, got {image_size}")
    sizes, pads = [image_size], []
    while sizes[-1] >= 8:
        s = sizes[-1]
        # a 4x4 stride-2 conv with padding 1 + p maps s to s/2 + p; p = 1 keeps an odd half even
        p = 1 if s % 4 == 2 else 0
        pads.append(p)
        sizes.append(s // 2 + p)
    # No extra padding in the last halving: the final conv covers the whole map
    pads[-1] = 0
    sizes[-1] = sizes[-2] // 2
    return sizes, pads


class _Logits(nn.Module):
    """[N, 1, 1, 1] -> [N]."""

    def forward(self, x):
        return x.flatten(1).squeeze(1)


class _Unflatten(nn.Module):
    def __init__(self, channels: int, size: int) -> None:
        super().__init__()
        self.shape = (channels, size, size)

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


def _act(norm: str, channels: int) -> nn.Module:
    return TPReLU(channels) if norm == "wn" else nn.PReLU(channels)


def dcgan_discriminator(norm: str, image_size: int = 32, channels: int = 96, last: str = "affine") -> nn.Sequential:
    """Table 1's discriminator for `norm` in ("vanilla", "bn", "wn"); returns one logit per image.

    `last="strict"` (WN only) makes the last layer strict, for Appendix E's gradient bound.
    """
    _check_norm(norm)
    if last not in ("affine", "strict") or (last == "strict" and norm != "wn"):
        raise ValueError(f"dcgan_discriminator: last must be 'affine', or 'strict' with norm='wn'; got {last!r}")
    sizes, pads = dcgan_levels(image_size)
    net = nn.Sequential()
    c_in, c = 3, channels
    for i, p in enumerate(pads):
        conv = StrictWNConv2d if norm == "wn" else nn.Conv2d
        net.add_module(f"conv{i}", conv(c_in, c, 4, 2, 1 + p))
        # BN everywhere but the first layer (and the last, below)
        if norm == "bn" and i > 0:
            net.add_module(f"bn{i}", nn.BatchNorm2d(c))
        net.add_module(f"act{i}", _act(norm, c))
        c_in, c = c, c * 2
    final = {"vanilla": nn.Conv2d, "bn": nn.Conv2d, "wn": AffineWNConv2d if last == "affine" else StrictWNConv2d}[norm]
    net.add_module("final", final(c_in, 1, sizes[-1]))
    net.add_module("logits", _Logits())
    return net


def dcgan_generator(norm: str, image_size: int = 32, code_size: int = 256, channels: int = 96) -> nn.Sequential:
    """Table 1's generator for `norm`: code $[N, \\text{code\\_size}]$ -> images $[N, 3, S, S]$ in (0, 1)."""
    _check_norm(norm)
    sizes, pads = dcgan_levels(image_size)
    top = channels * 2 ** (len(pads) - 1)
    net = nn.Sequential()
    # First layer: fully connected to the smallest map (strict WN, U(+-0.01/sqrt(c_i)) for WN)
    fc = StrictWNLinear(code_size, top * sizes[-1] ** 2, init_factor=0.01) if norm == "wn" \
        else nn.Linear(code_size, top * sizes[-1] ** 2)
    net.add_module("fc", fc)
    net.add_module("unflatten", _Unflatten(top, sizes[-1]))
    if norm == "bn":
        net.add_module("bn_fc", nn.BatchNorm2d(top))
    net.add_module("act_fc", _act(norm, top))
    c = top
    # Transposed convs back up, the last one to RGB
    for i in reversed(range(len(pads))):
        last = i == 0
        c_out = 3 if last else c // 2
        if norm == "wn":
            conv = AffineWNConvTranspose2d if last else StrictWNConvTranspose2d
        else:
            conv = nn.ConvTranspose2d
        net.add_module(f"conv{i}", conv(c, c_out, 4, 2, 1 + pads[i]))
        if last:
            break
        if norm == "bn":
            net.add_module(f"bn{i}", nn.BatchNorm2d(c_out))
        net.add_module(f"act{i}", _act(norm, c_out))
        c = c_out
    net.add_module("sigmoid", nn.Sigmoid())
    if norm != "wn":
        # Appendix B's uniform init for every conv of the baselines too (torch's default for
        # ConvTranspose counts the output channels as fan-in)
        for m in net.modules():
            if isinstance(m, nn.ConvTranspose2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.uniform_(m.weight, -fan_in ** -0.5, fan_in ** -0.5)
    return net


# ------------------------------------------------------------------------------------ ResNet


class _DownBlock(nn.Module):
    """Residual block of the discriminator: conv (4x4 stride 2, or 3x3) -> TPReLU -> 3x3 conv, + shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(StrictWNConv2d(c_in, c_out, stride + 2, stride, 1), TPReLU(c_out),
                                      StrictWNConv2d(c_out, c_out, 3, 1, 1))
        shortcut = []
        if stride == 2:
            shortcut.append(nn.AvgPool2d(2))
        if c_in != c_out:
            shortcut.append(StrictWNConv2d(c_in, c_out, 1))
        self.shortcut = nn.Sequential(*shortcut)
        self.add = WNAddition(c_out)
        self.post = TPReLU(c_out)

    def forward(self, x):
        return self.post(self.add(self.residual(x), self.shortcut(x)))


class _ChannelAffine(nn.Module):
    """$y = \\gamma_c x + \\beta_c$: the generator's last block ends here instead of in a TPReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class _UpBlock(nn.Module):
    """Residual block of the generator: 3x3 transposed conv -> TPReLU -> transposed conv (4x4 stride 2, or 3x3)."""

    def __init__(self, c_in: int, c_out: int, stride: int, last: bool = False) -> None:
        super().__init__()
        self.residual = nn.Sequential(StrictWNConvTranspose2d(c_in, c_in, 3, 1, 1), TPReLU(c_in),
                                      StrictWNConvTranspose2d(c_in, c_out, stride + 2, stride, 1))
        shortcut = []
        if c_in != c_out:
            shortcut.append(StrictWNConvTranspose2d(c_in, c_out, 1))
        if stride == 2:
            shortcut.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.shortcut = nn.Sequential(*shortcut)
        self.add = WNAddition(c_out)
        self.post = _ChannelAffine(c_out) if last else TPReLU(c_out)

    def forward(self, x):
        return self.post(self.add(self.residual(x), self.shortcut(x)))


def _check_resnet(image_size: int, channels: tuple[int, ...], blocks: tuple[int, ...]) -> int:
    if len(channels) != len(blocks) or not channels or min(blocks) < 1:
        raise ValueError(f"labnorm.gan ResNet: one block count >= 1 per level; got channels={channels}, blocks={blocks}")
    if image_size % 2 ** len(channels):
        raise ValueError(f"labnorm.gan ResNet: image_size {image_size} must be divisible by 2**levels = {2 ** len(channels)}")
    return image_size // 2 ** len(channels)


def resnet_discriminator(image_size: int = 32, channels: tuple[int, ...] = (64, 128, 256),
                         blocks: tuple[int, ...] = (3, 3, 4)) -> nn.Sequential:
    """§5.6's WN ResNet discriminator (21 weight layers by default); one logit per image."""
    final_size = _check_resnet(image_size, channels, blocks)
    net = nn.Sequential()
    c_in = 3
    for level, (c, n) in enumerate(zip(channels, blocks)):
        for j in range(n):
            net.add_module(f"level{level}_block{j}", _DownBlock(c_in, c, 2 if j == 0 else 1))
            c_in = c
    net.add_module("final", AffineWNConv2d(c_in, 1, final_size))
    net.add_module("logits", _Logits())
    return net


def resnet_generator(image_size: int = 32, code_size: int = 256, channels: tuple[int, ...] = (64, 128, 256),
                     blocks: tuple[int, ...] = (3, 3, 4)) -> nn.Sequential:
    """§5.6's WN ResNet generator (21 weight layers by default): code -> images in (0, 1)."""
    size = _check_resnet(image_size, channels, blocks)
    net = nn.Sequential()
    net.add_module("fc", StrictWNLinear(code_size, channels[-1] * size * size, init_factor=0.01))
    net.add_module("unflatten", _Unflatten(channels[-1], size))
    net.add_module("act_fc", TPReLU(channels[-1]))
    for level in reversed(range(len(channels))):
        c = channels[level]
        c_next = 3 if level == 0 else channels[level - 1]
        for j in range(blocks[level]):
            last_of_level = j == blocks[level] - 1
            net.add_module(f"level{level}_block{j}",
                           _UpBlock(c, c_next if last_of_level else c, 2 if last_of_level else 1,
                                    last=last_of_level and level == 0))
    net.add_module("sigmoid", nn.Sigmoid())
    return net
