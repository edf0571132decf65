"""Patch regions as fractions of the image, so one preset serves any resolution.

``torso`` is the re-ID default: a square-ish box over the chest covering 12.5% of the image
(64x64 pixels on a 256x128 crop). The face presets assume an aligned face chip (dlib 150 or
ArcFace 112): ``eyeglass`` is a band across both eyes, ``forehead`` a band above the brows,
``cheek`` a box on the left cheek. :func:`crop_maps` takes the same region out of a victim's
feature maps (what a learned patch attack conditions on).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError


@dataclass(frozen=True)
class Region:
    top: float
    left: float
    height: float
    width: float

    @property
    def area(self) -> float:
        return self.height * self.width

    def box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """Pixel box (y0, x0, ph, pw) on an h x w image."""
        y0, x0 = round(self.top * h), round(self.left * w)
        ph, pw = max(1, round(self.height * h)), max(1, round(self.width * w))
        return y0, x0, min(ph, h - y0), min(pw, w - x0)


PRESETS = {
    "torso": Region(0.25, 0.25, 0.25, 0.5),
    "eyeglass": Region(0.30, 0.10, 0.16, 0.80),
    "forehead": Region(0.06, 0.20, 0.20, 0.60),
    "cheek": Region(0.55, 0.12, 0.22, 0.30),
}


def parse_region(spec: str | Region | tuple) -> Region:
    """A preset name, a Region, or ``"top,left,height,width"`` fractions.

    >>> parse_region("torso").area
    0.125
    >>> parse_region("0.1,0.1,0.5,0.5").area
    0.25
    """
    if isinstance(spec, Region):
        return spec
    if isinstance(spec, (tuple, list)):
        return Region(*map(float, spec))
    if spec in PRESETS:
        return PRESETS[spec]
    try:
        r = Region(*map(float, spec.split(",")))
    except (TypeError, ValueError):
        raise InputError(f"region {spec!r}: use one of {', '.join(PRESETS)} or "
                         "'top,left,height,width' fractions") from None
    if not (0 <= r.top < 1 and 0 <= r.left < 1 and 0 < r.height <= 1 and 0 < r.width <= 1):
        raise InputError(f"region {spec!r}: fractions must lie in [0, 1]")
    return r


def paste(images: Tensor, patch: Tensor, box: tuple[int, int, int, int]) -> Tensor:
    """Images with ``patch`` (N or 1, C, ph, pw) pasted at ``box``; differentiable in both."""
    y0, x0, ph, pw = box
    h, w = images.shape[-2:]
    pad = (x0, w - x0 - pw, y0, h - y0 - ph)
    mask = F.pad(torch.ones_like(patch[:1, :1]), pad)
    return images * (1 - mask) + F.pad(patch, pad) * mask


def crop_maps(maps: list[Tensor], region: Region) -> tuple[list[Tensor], Tensor]:
    """The part of each feature map under ``region``, plus the global mean of the deepest map.

    ``cond_patch``'s decoder takes four scales: an extractor with more maps (dlib's ResNet has
    five, down to 2x2) gives its three shallowest and its deepest.
    """
    if len(maps) > 4:
        maps = [*maps[:3], maps[-1]]
    crops = []
    for m in maps:
        y0, x0, ph, pw = region.box(*m.shape[-2:])
        crops.append(m[..., y0:y0 + ph, x0:x0 + pw])
    return crops, maps[-1].mean((2, 3))
