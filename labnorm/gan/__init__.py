"""Weight-normalized GANs (Xiang & Li, 2017): layers, DCGAN/ResNet models, training, reconstruction loss.

`labnorm.gan.layers` holds the strict and affine WN layers, the translated ReLUs and the
weight-normalized addition; `labnorm.gan.models` Table 1's DCGANs and §5.6's ResNets;
`labnorm.gan.train` the §5.1 training loop and the §4 reconstruction loss. Notebook
`06_gan_weight_norm` builds them line by line.
"""

from .layers import (AffineWNConv2d, AffineWNConvTranspose2d, AffineWNLinear, StrictWNConv2d,
                     StrictWNConvTranspose2d, StrictWNLinear, TPReLU, TReLU, UnitNorm, WNAddition, clip_slopes_)
from .models import (NORMS, dcgan_discriminator, dcgan_generator, dcgan_levels, resnet_discriminator,
                     resnet_generator)
from .train import image_grid, reconstruction_loss, train_gan

__all__ = [
    "UnitNorm", "StrictWNLinear", "StrictWNConv2d", "StrictWNConvTranspose2d",
    "AffineWNLinear", "AffineWNConv2d", "AffineWNConvTranspose2d", "TReLU", "TPReLU", "clip_slopes_",
    "WNAddition", "NORMS", "dcgan_levels", "dcgan_generator", "dcgan_discriminator",
    "resnet_generator", "resnet_discriminator", "reconstruction_loss", "train_gan", "image_grid",
]
