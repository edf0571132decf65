"""Local gradient smoothing (LGS) against adversarial patches.

Paper: M. Naseer, S. Khan, F. Porikli, "Local Gradients Smoothing: Defense against localized
adversarial attacks", WACV 2019.

Patches are high-frequency, so LGS estimates the image's first-order gradient magnitude,
normalises it to [0, 1] per image, keeps it only in windows (``window`` pixels, overlapping by
``overlap``) whose mean exceeds ``threshold``, and multiplies the image by
``1 - smoothing * mask`` (clipped to [0, 1]). Defaults follow the paper (15, 5, 0.1, 2.3).
The window selection is a hard threshold, so the step is declared not differentiable: a naive
attacker gets a zero gradient, the adaptive attack uses BPDA. Deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import DEFENSES
from ._base import Transform, check_param


def gradient_magnitude(x: Tensor) -> Tensor:
    """(N, 1, H, W) first-order gradient magnitude of the grey image, scaled to [0, 1] per image."""
    g = x.mean(1, keepdim=True)
    dx = F.pad(g[..., :, 1:] - g[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(g[..., 1:, :] - g[..., :-1, :], (0, 0, 0, 1))
    mag = (dx ** 2 + dy ** 2).sqrt()
    peak = mag.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return mag / peak


def lgs_mask(x: Tensor, window: int, overlap: int, threshold: float) -> Tensor:
    """Gradient magnitude kept only inside windows whose mean magnitude exceeds ``threshold``."""
    mag = gradient_magnitude(x)
    stride = max(1, window - overlap)
    h, w = x.shape[-2:]
    pad_h, pad_w = (-(h - window) % stride) if h > window else window - h, \
                   (-(w - window) % stride) if w > window else window - w
    padded = F.pad(mag, (0, pad_w, 0, pad_h))
    active = (F.avg_pool2d(padded, window, stride) > threshold).float()
    # A pixel is kept when any window covering it is active: max-unpool the window grid.
    cover = F.conv_transpose2d(active, torch.ones(1, 1, window, window, device=x.device,
                                                  dtype=x.dtype), stride=stride)
    cover = (cover[..., :h, :w] > 0).float()
    return mag * cover


@DEFENSES.register()
class LGS(Transform):
    """Local gradient smoothing against patches (Naseer et al. 2019); BPDA; paper defaults."""

    name = "lgs"
    differentiable = False
    randomized = False

    def __init__(self, window: int = 15, overlap: int = 5, threshold: float = 0.1,
                 smoothing: float = 2.3):
        check_param("lgs", "window", window, isinstance(window, int) and window >= 2,
                    "an integer >= 2")
        check_param("lgs", "overlap", overlap,
                    isinstance(overlap, int) and 0 <= overlap < window, "an integer in [0, window)")
        check_param("lgs", "threshold", threshold,
                    isinstance(threshold, (int, float)) and 0 <= threshold <= 1, "a number in [0, 1]")
        check_param("lgs", "smoothing", smoothing,
                    isinstance(smoothing, (int, float)) and smoothing >= 0, "a number >= 0")
        super().__init__(window=window, overlap=overlap, threshold=threshold, smoothing=smoothing)
        self.window, self.overlap = window, overlap
        self.threshold, self.smoothing = float(threshold), float(smoothing)

    def transform(self, x: Tensor, victim=None) -> Tensor:
        mask = lgs_mask(x, self.window, self.overlap, self.threshold)
        return (x * (1 - self.smoothing * mask).clamp(0, 1)).clamp(0, 1)
