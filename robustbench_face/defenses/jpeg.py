"""JPEG compression of the input.

Paper: G. K. Dziugaite, Z. Ghahramani, D. M. Roy, "A study of the effect of JPG compression on
adversarial images", 2016; N. Das et al., "Keeping the Bad Guys Out: Protecting and Vaccinating
Deep Learning with JPEG Compression", 2017. Broken by BPDA in A. Athalye, N. Carlini,
D. Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018.

The compression is ART's ``JpegCompression`` (PIL, numpy), so the step is not differentiable:
a naive attacker gets a zero gradient, the adaptive attack uses BPDA. Deterministic.
Parameters: ``quality`` (1..95, default 75).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..registry import DEFENSES
from ._base import Transform, check_param


@DEFENSES.register()
class Jpeg(Transform):
    """JPEG compression (Das et al. 2017) via ART; not differentiable (BPDA); quality=75."""

    name = "jpeg"
    differentiable = False
    randomized = False

    def __init__(self, quality: int = 75):
        check_param("jpeg", "quality", quality, isinstance(quality, int) and 1 <= quality <= 95,
                    "an integer in 1..95")
        super().__init__(quality=quality)
        from art.defences.preprocessor import JpegCompression

        self._art = JpegCompression(clip_values=(0.0, 1.0), quality=quality, channels_first=True)

    def transform(self, x: Tensor, victim=None) -> Tensor:
        if x.shape[1] not in (1, 3):
            return x
        out, _ = self._art(x.float().cpu().numpy())
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)
