"""Reliability: no silent wrong result, no NaN, no bare crash — across the layers, the tools and the data path.

One test per case, grouped by class (the headings). What each layer and tool promises is written
in `docs/guarantees.md`, which names these tests.
"""

import copy
import math

import numpy as np
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
