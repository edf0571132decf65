"""Median smoothing (spatial smoothing) of the input.

Paper: W. Xu, D. Evans, Y. Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep
Neural Networks", NDSS 2018 (median filter squeezer).

ART's differentiable ``SpatialSmoothingPyTorch`` needs kornia, and its numpy
``SpatialSmoothing`` has no gradient, so the filter is written here with ``unfold``: the
median of each window is one of its pixels, and autograd routes the gradient to that pixel,
which is the true gradient almost everywhere. Declared differentiable: the plain white-box
attack is already the adaptive one. Deterministic. Parameters: ``window`` (odd, 3..11, default 3).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import DEFENSES
from ._base import Transform, check_param


def median_filter(x: Tensor, window: int) -> Tensor:
    """Per-channel median over ``window`` x ``window`` neighbourhoods, reflect-padded.

    >>> import torch
    >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 1, 1] = 1.0  # one hot pixel is removed
    >>> float(median_filter(x, 3).max())
    0.0
    """
    n, c, h, w = x.shape
    r = window // 2
    padded = F.pad(x, (r, r, r, r), mode="reflect" if min(h, w) > r else "replicate")
    cols = F.unfold(padded, window)  # (n, c*k*k, h*w)
    cols = cols.view(n, c, window * window, h * w)
    return cols.median(dim=2).values.view(n, c, h, w)


@DEFENSES.register()
class Median(Transform):
    """Median smoothing (Xu et al. 2018), differentiable through the median; window=3."""

    name = "median"
    differentiable = True
    randomized = False

    def __init__(self, window: int = 3):
        check_param("median", "window", window,
                    isinstance(window, int) and window % 2 == 1 and 3 <= window <= 11,
                    "an odd integer in 3..11")
        super().__init__(window=window)
        self.window = window

    def transform(self, x: Tensor, victim=None) -> Tensor:
        return median_filter(x, self.window)
