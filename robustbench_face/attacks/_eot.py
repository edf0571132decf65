"""Differentiable physical-style pasting for training learned patches (EOT).

Paper: A. Athalye, L. Engstrom, A. Ilyas, K. Kwok, "Synthesizing Robust Adversarial Examples",
ICML 2018 (expectation over transformation).

:func:`paste_eot` pastes one patch per image into its region through a random, differentiable
chain: photometric changes on the patch (brightness / contrast and pixel noise from
``patch_iter.eot_transform``, plus an optional 3x3 Gaussian blur), then a geometric warp
(scale, rotation, shift of the patch centre) done with ``affine_grid`` / ``grid_sample`` over
the whole image, so patch and mask move together and the edges stay soft. With
``EOTConfig(enabled=False)`` it is exactly :func:`_regions.paste` (a hard box paste), which is
also what inference uses: the patch area reported at test time is the region's area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._regions import paste
from .patch_iter import eot_transform


@dataclass
class EOTConfig:
    enabled: bool = True
    scale: float = 0.1        # patch side scaled by U(1 - scale, 1 + scale)
    rotate_deg: float = 10.0  # rotation U(-rotate_deg, rotate_deg)
    shift: float = 0.1        # centre shift U(-shift, shift) of the patch size, each axis
    photometric: float = 1.0  # strength passed to patch_iter.eot_transform (+-10% b/c, 2% noise)
    blur_p: float = 0.3       # probability of a 3x3 Gaussian blur (sigma U(0.3, 1.0))


def _blur(patch: Tensor, gen: torch.Generator, p: float) -> Tensor:
    n = patch.shape[0]
    dev = patch.device
    sigma = 0.3 + 0.7 * torch.rand(n, generator=gen, device=dev)
    use = (torch.rand(n, generator=gen, device=dev) < p).to(patch.dtype)
    k1 = torch.exp(-torch.tensor([1.0, 0.0, 1.0], device=dev)[None] / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(1, keepdim=True)
    k2 = k1[:, :, None] * k1[:, None, :]                                 # (n, 3, 3)
    ident = torch.zeros(3, 3, device=dev); ident[1, 1] = 1
    k2 = use[:, None, None] * k2 + (1 - use[:, None, None]) * ident      # no blur where unused
    c = patch.shape[1]
    w = k2[:, None].repeat_interleave(c, 0).to(patch.dtype)              # (n*c, 1, 3, 3)
    x = F.pad(patch.reshape(1, n * c, *patch.shape[-2:]), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(x, w, groups=n * c).reshape(patch.shape)


def _theta(n: int, box, h: int, w: int, cfg: EOTConfig, gen: torch.Generator, dev) -> Tensor:
    """Per-image affine maps from output-image coords to patch coords (align_corners=False)."""
    y0, x0, ph, pw = box
    u = lambda: torch.rand(n, generator=gen, device=dev) * 2 - 1  # noqa: E731
    s = 1 + cfg.scale * u()
    th = math.radians(cfg.rotate_deg) * u()
    cx = x0 + pw / 2 + cfg.shift * pw * u()
    cy = y0 + ph / 2 + cfg.shift * ph * u()
    cxn, cyn = 2 * cx / w - 1, 2 * cy / h - 1
    cos, sin = torch.cos(th), torch.sin(th)
    a11, a12 = cos * w / (s * pw), sin * h / (s * pw)
    a21, a22 = -sin * w / (s * ph), cos * h / (s * ph)
    row1 = torch.stack([a11, a12, -(a11 * cxn + a12 * cyn)], 1)
    row2 = torch.stack([a21, a22, -(a21 * cxn + a22 * cyn)], 1)
    return torch.stack([row1, row2], 1)


def paste_eot(images: Tensor, patch: Tensor, box, gen: torch.Generator,
              cfg: EOTConfig | None = None) -> Tensor:
    """``images`` with ``patch`` (N, C, ph, pw) pasted at ``box`` through random transforms."""
    cfg = cfg or EOTConfig()
    if not cfg.enabled:
        return paste(images, patch, box)
    n, c, h, w = images.shape
    if patch.shape[0] == 1 and n > 1:
        patch = patch.expand(n, -1, -1, -1)
    p = eot_transform(patch, gen, cfg.photometric) if cfg.photometric > 0 else patch
    if cfg.blur_p > 0:
        p = _blur(p, gen, cfg.blur_p)
    theta = _theta(n, box, h, w, cfg, gen, images.device).to(images.dtype)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    warped = F.grid_sample(p, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask = F.grid_sample(torch.ones_like(p[:, :1]), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)
    return images * (1 - mask) + warped
