"""Bit-depth reduction, the "feature squeezing" defense.

Paper: W. Xu, D. Evans, Y. Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep
Neural Networks", NDSS 2018. Here used as an input transform (squeeze, then classify), the
setting Athalye et al. (ICML 2018) break with BPDA.

The quantisation is ART's ``FeatureSqueezing``; its gradient is zero almost everywhere, so the
step is declared not differentiable (BPDA in the adaptive attack). Deterministic.
Parameters: ``bits`` (1..8, default 4).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..registry import DEFENSES
from ._base import Transform, check_param


@DEFENSES.register()
class BitDepth(Transform):
    """Bit-depth reduction / feature squeezing (Xu et al. 2018) via ART; BPDA; bits=4."""

    name = "bit_depth"
    differentiable = False
    randomized = False

    def __init__(self, bits: int = 4):
        check_param("bit_depth", "bits", bits, isinstance(bits, int) and 1 <= bits <= 8,
                    "an integer in 1..8")
        super().__init__(bits=bits)
        from art.defences.preprocessor import FeatureSqueezing

        self._art = FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=bits)

    def transform(self, x: Tensor, victim=None) -> Tensor:
        out, _ = self._art(x.float().cpu().numpy())
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)
