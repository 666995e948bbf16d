r"""CIFAR-10 models built with the `norm=` factory.

Every conv → norm pair comes from `make_conv(norm, ...)` and `make_norm(norm, ...)`, so one
string switches a whole network between techniques, including those that live in the conv
(Weight Standardization). `build_model(name, norm)` builds any of them by name:

| name          | what                                                                    |
|---------------|-------------------------------------------------------------------------|
| `resnet18`    | CIFAR ResNet-18: 3×3 stem, no max-pool, stages of 64/128/256/512 channels, two basic blocks each |
| `vgg16`       | the VGG of labml's Weight Standardization experiment: VGG-16's 13 convs (conv → norm → ReLU), a 2×2 max-pool after each of the 5 blocks, one linear layer |
| `switchnorm_cnn` | the toy model of the keras-switchnorm CIFAR example: six 3×3 convs (64, 64, 128/2, 128, 256/2, 256), global average pooling, one linear layer |
| `fast_resnet` | a small residual net for quick sweeps (the "ResNet-9" layout of fast CIFAR training): prep conv, three stages with pooling, two residual stages |
| `small_cnn`   | three conv → norm → ReLU → max-pool stages; the batch-size experiment of notebook 01 |
| `fast_cifar`  | the whitened three-group net of the public CIFAR-10 speed records (`FastCIFAR`): a frozen 2×2 patch-whitening conv, three conv → pool → norm → GELU groups, max-pool, a scaled linear head; trained by `labnorm.train.fast` |
| `tiny_gpt`    | a character-level GPT (`labnorm.tiny_gpt.TinyGPT`): token ids $[B, T]$ in, logits $[B, T, V]$ out; `norm` over the last dim (`ln`, `rms`, `rms-zero-centred`, `dyt`, `derf`, `none`), `placement` (`pre`, `post`, `peri`), `qk_norm`; in `SEQUENCE_MODELS`, not in `MODELS` (the CIFAR-10 models) |

`width` scales every channel count (1.0 is the published width), so smoke runs can use a
thin copy of the same architecture.

Differences from the sources: convs before a norm have no bias (labml's VGG keeps one; the
norm's $\beta$ makes it redundant), and labnorm's models output logits, not softmax.

**Norms that include their activation** (`frn`: FRN + TLU, `evob0`, `evos0`; see
`labnorm.norms.norm_fuses_activation`) replace the *norm + ReLU* pair: wherever a model puts a ReLU
right after a norm, it puts the fused layer instead and no ReLU. Where a norm has no activation after
it — the second norm of a ResNet block and the norm of its projection shortcut — the model asks for the
layer without its activation (`make_norm(..., activation=False)`): FRN without TLU, and for the
EvoNorms the affine $\gamma x + \beta$ alone, which is how the authors' TensorFlow code and timm
define an EvoNorm without its nonlinearity. The ReLU after a ResNet block's residual addition is *not*
after a norm, and it stays a ReLU for every norm, as in the authors' post-activation ResNet code.
Trap: in labnorm's post-activation ResNet-18, EvoNorm therefore leaves the second conv of each block
and the shortcut convs unnormalized (only scaled and shifted); the authors' code refuses this
combination and uses EvoNorm in the pre-activation ResNet only. The other models put an activation
after every norm, so there EvoNorm replaces every BN + ReLU. For every other norm the models are
unchanged, module for module.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .norms import make_conv, make_norm, norm_fuses_activation
from .tiny_gpt import TinyGPT

__all__ = ["SmallCNN", "ResNet18", "VGG16", "SwitchNormCNN", "FastResNet", "FastCIFAR", "whitening_weights", "MODELS",
           "SEQUENCE_MODELS", "TinyGPT", "build_model"]


def _w(channels: int, width: float) -> int:
    """A channel count scaled by `width`, at least 8 and a multiple of 8 (so GN's groups divide it)."""
    return max(8, int(round(channels * width / 8)) * 8)


def conv_norm_act(c_in: int, c_out: int, norm: str, stride: int = 1) -> nn.Sequential:
    """conv 3×3 → norm → ReLU, the pair chosen by the factory (no ReLU after a norm that includes its own)."""
    layers = [make_conv(norm, c_in, c_out, 3, stride=stride), make_norm(norm, c_out)]
    if not norm_fuses_activation(norm):
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Three conv stages and a linear head; `norm` is any `make_norm` spec."""

    def __init__(self, norm: str = "bn", width: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_norm_act(3, w, norm), nn.MaxPool2d(2),
            conv_norm_act(w, 2 * w, norm), nn.MaxPool2d(2),
            conv_norm_act(2 * w, 4 * w, norm), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # $[N, 4w, 4, 4] \to [N, 4w]$ by global average pooling
        return self.head(self.features(x).mean((2, 3)))


class BasicBlock(nn.Module):
    r"""Two 3×3 conv → norm layers with an identity (or 1×1 conv → norm) shortcut: $y = \mathrm{ReLU}(F(x) + S(x))$.

    With a norm that includes its activation, `norm1` is the fused layer (no ReLU after it), and
    `norm2` and the shortcut's norm are that layer without its activation.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        # A fused norm + activation replaces norm1's ReLU
        self.fused_act = norm_fuses_activation(norm)
        self.conv1 = make_conv(norm, c_in, c_out, 3, stride=stride)
        self.norm1 = make_norm(norm, c_out)
        self.conv2 = make_conv(norm, c_out, c_out, 3)
        self.norm2 = make_norm(norm, c_out, activation=False)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                make_conv(norm, c_in, c_out, 1, stride=stride), make_norm(norm, c_out, activation=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm1(self.conv1(x))
        if not self.fused_act:
            out = torch.relu(out)
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3×3 stem with no max-pool, then 4 stages of 2 basic blocks."""

    def __init__(self, norm: str = "bn", width: float = 1.0, num_classes: int = 10) -> None:
        super().__init__()
        chans = [_w(c, width) for c in (64, 128, 256, 512)]
        self.stem = conv_norm_act(3, chans[0], norm)
        layers, c_in = [], chans[0]
        for i, c in enumerate(chans):
            # The first block of stages 2-4 halves the resolution.
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c_in, c, stride, norm), BasicBlock(c, c, 1, norm)]
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)).mean((2, 3)))


VGG16_BLOCKS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


class VGG16(nn.Module):
    """The VGG of labml's Weight Standardization CIFAR-10 experiment (VGG-16's conv layout)."""

    def __init__(self, norm: str = "bn", width: float = 1.0, num_classes: int = 10) -> None:
        super().__init__()
        layers, c_in = [], 3
        for block in VGG16_BLOCKS:
            for c in block:
                layers.append(conv_norm_act(c_in, _w(c, width), norm))
                c_in = _w(c, width)
            # Five 2×2 pools take 32×32 down to 1×1.
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class SwitchNormCNN(nn.Module):
    """The toy CIFAR-10 model of the keras-switchnorm example: six convs, global average pooling."""

    def __init__(self, norm: str = "bn", width: float = 1.0, num_classes: int = 10) -> None:
        super().__init__()
        plan = [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)]  # (channels, stride)
        layers, c_in = [], 3
        for c, stride in plan:
            layers.append(conv_norm_act(c_in, _w(c, width), norm, stride=stride))
            c_in = _w(c, width)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class Residual(nn.Module):
    """$x + F(x)$ with $F$ two conv → norm → ReLU layers."""

    def __init__(self, c: int, norm: str) -> None:
        super().__init__()
        self.f = nn.Sequential(conv_norm_act(c, c, norm), conv_norm_act(c, c, norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class FastResNet(nn.Module):
    """A small residual net for quick sweeps: prep (64) → 128 + pool + residual → 256 + pool →
    512 + pool + residual → global max-pool → linear, logits scaled by 1/8."""

    def __init__(self, norm: str = "bn", width: float = 1.0, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3, c4 = (_w(c, width) for c in (64, 128, 256, 512))
        self.net = nn.Sequential(
            conv_norm_act(3, c1, norm),
            conv_norm_act(c1, c2, norm), nn.MaxPool2d(2), Residual(c2, norm),
            conv_norm_act(c2, c3, norm), nn.MaxPool2d(2),
            conv_norm_act(c3, c4, norm), nn.MaxPool2d(2), Residual(c4, norm),
        )
        self.head = nn.Linear(c4, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Global max-pool, then a fixed 1/8 scale on the logits (keeps the initial loss near log 10).
        return self.head(self.net(x).amax((2, 3))) * 0.125


def whitening_weights(images: torch.Tensor, patch: int = 2, eps: float = 5e-4) -> torch.Tensor:
    r"""The filters of a patch-whitening convolution, from training images $[N, 3, H, W]$ (normalized floats).

    Every $p \times p$ patch of every image is one vector $v \in \mathbb{R}^{3p^2}$; with their second
    moment $\Sigma = \frac{1}{M}\sum v v^\top = U \Lambda U^\top$, the filters are the rows of
    $\Lambda^{-1/2} U^\top$ — a conv with them maps patches to coordinates with unit variance and no
    correlation — and their negatives, so that a GELU after the conv keeps both signs:
    $2 \cdot 3p^2$ filters of shape $[3, p, p]$ (24 for $p = 2$). `eps` keeps the smallest eigenvalues
    from blowing up their filters.
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"whitening_weights: expected float images [N, C, H, W], got {tuple(images.shape)} "
                         f"{images.dtype}")
    c = images.shape[1]
    # $[N, C, H, W] \to [N, C, H-p+1, W-p+1, p, p] \to$ one row $(c, k_h, k_w)$ per patch
    patches = images.double().unfold(2, patch, 1).unfold(3, patch, 1)
    rows = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * patch * patch)
    # The patches' second moment, and its eigen-decomposition $\Sigma = U \Lambda U^\top$
    sigma = rows.T @ rows / len(rows)
    eigenvalues, eigenvectors = torch.linalg.eigh(sigma)
    # Row $k$: $u_k / \sqrt{\lambda_k + \epsilon}$, as a $[C, p, p]$ filter
    filters = (eigenvectors.T / (eigenvalues[:, None] + eps).sqrt()).reshape(-1, c, patch, patch)
    return torch.cat([filters, -filters]).float()


class ConvGroup(nn.Module):
    """conv 3×3 → max-pool 2 → norm → GELU → conv 3×3 → norm → GELU (one group of `FastCIFAR`).

    The pool comes before the first norm, as in the record nets: the norm sees the pooled map. A norm
    that includes its activation replaces norm + GELU."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__()
        act = (lambda: nn.Identity()) if norm_fuses_activation(norm) else (lambda: nn.GELU())
        self.conv1 = make_conv(norm, c_in, c_out, 3)
        self.pool = nn.MaxPool2d(2)
        self.norm1, self.act1 = make_norm(norm, c_out), act()
        self.conv2 = make_conv(norm, c_out, c_out, 3)
        self.norm2, self.act2 = make_norm(norm, c_out), act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class FastCIFAR(nn.Module):
    r"""The whitened three-group net of the public CIFAR-10 speed records, with any `norm=`.

    | piece | what | from |
    |---|---|---|
    | `whiten` | 2×2 conv, no padding, 24 filters **fixed** to the whitening of training patches (`init_whitening`), a trained bias | Keller Jordan's `airbench` (after hlb-CIFAR10 and David Page's ResNet-9 work); patch whitening as in Coates & Ng (2011) |
    | `groups` | three `ConvGroup`s of 64, 256, 256 channels × `width` (32 → 31 → 15 → 7 → 3 pixels) | airbench94's widths |
    | head | 3×3 max-pool, a linear layer without bias, logits × 1/9 | airbench94 (the scale keeps the first logits small) |
    | init | the first $C_{in}$ filters of every 3×3 conv start as the identity (Dirac; a weight-normalized conv through its $v$ and $g$), the rest PyTorch's default (`dirac=False`: all of them PyTorch's default) | airbench |

    The record nets use BN with its scale $\gamma$ frozen at 1; here every norm keeps the layer exactly as
    the `norm=` factory builds it (with $\gamma$), so the net differs from the record net only by that.
    `width` scales the three groups (1.0: 64/256/256; 0.5: 32/128/128); the whitening layer keeps its 24.

    The Dirac init passes a channel on as it is, a channel that is zero on a sample included. After FRN + TLU
    (whose TLU is a ReLU at its init) such channels occur, and the next FRN divides one by $\sqrt\epsilon$ in the
    backward pass: with `norm="frn"` the gradients at init reach ~1e10 with the Dirac init and ~0.3 without it
    (`tests/test_fast.py`), hence `dirac=False`.
    """

    def __init__(self, norm: str = "bn", width: float = 1.0, num_classes: int = 10, dirac: bool = True) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"FastCIFAR: width must be > 0, got {width}")
        c1, c2, c3 = (_w(c, width) for c in (64, 256, 256))
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, padding=0, bias=True)
        # Fixed filters: they are set from the data, never trained
        self.whiten.weight.requires_grad_(False)
        self.act = nn.GELU()
        self.groups = nn.Sequential(ConvGroup(24, c1, norm), ConvGroup(c1, c2, norm), ConvGroup(c2, c3, norm))
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(c3, num_classes, bias=False)
        self.scale = 1 / 9
        self.whitened = False
        for m in self.groups.modules() if dirac else ():
            # Dirac init of the first c_in filters of every conv; a weight-normalized one through its parametrization
            # (v = w, g = ||w||), so that WN starts from the same function as the plain conv
            if isinstance(m, nn.Conv2d) and m.weight.shape[0] >= m.weight.shape[1]:
                with torch.no_grad():
                    w = m.weight.detach().clone()
                    nn.init.dirac_(w[: w.shape[1]])
                    if parametrize.is_parametrized(m, "weight"):
                        m.weight = w
                    else:
                        m.weight.copy_(w)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from training images (normalized floats $[N, 3, H, W]$; 5,000 is plenty)."""
        self.whiten.weight.copy_(whitening_weights(images.to(self.whiten.weight.device), 2, eps))
        self.whitened = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.act(self.whiten(x)))
        # $[N, C, 3, 3] \to [N, C]$ by max-pooling, then the scaled linear head
        return self.head(self.pool(x).flatten(1)) * self.scale


MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": ResNet18,
    "vgg16": VGG16,
    "switchnorm_cnn": SwitchNormCNN,
    "fast_resnet": FastResNet,
    "small_cnn": SmallCNN,
    "fast_cifar": FastCIFAR,
}


# Models of token sequences (their own `norm=` names over the last dim: `labnorm.tiny_gpt.SEQUENCE_NORMS`)
SEQUENCE_MODELS: dict[str, Callable[..., nn.Module]] = {
    "tiny_gpt": TinyGPT,
}


def build_model(name: str, norm: str | None = None, **kwargs) -> nn.Module:
    """A model from `MODELS` with normalization `norm`, e.g. `build_model("resnet18", "gn")`, or from
    `SEQUENCE_MODELS`: `build_model("tiny_gpt", norm="rms", placement="peri", qk_norm="rms")`.
    `norm=None` is the model's default (`bn` for the CNNs, `ln` for the tiny GPT)."""
    if name in SEQUENCE_MODELS:
        return SEQUENCE_MODELS[name](norm="ln" if norm is None else norm, **kwargs)
    if name not in MODELS:
        known = ", ".join([*MODELS, *SEQUENCE_MODELS])
        raise ValueError(f"build_model: unknown model {name!r}; known: {known}")
    norm = "bn" if norm is None else norm
    width = kwargs.get("width")
    if width is not None and not width > 0:
        raise ValueError(f"build_model: width must be > 0 (a multiplier of the published channel counts), got {width}")
    return MODELS[name](norm=norm, **kwargs)
