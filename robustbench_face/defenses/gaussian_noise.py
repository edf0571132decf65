"""Additive Gaussian noise with the victim's outputs averaged over draws.

Paper: J. Cohen, E. Rosenfeld, Z. Kolter, "Certified Adversarial Robustness via Randomized
Smoothing", ICML 2019 (prediction under Gaussian noise, averaged over draws); X. Liu et al.,
"Towards Robust Neural Networks via Random Self-ensemble", ECCV 2018. EOT (Athalye et al.,
ICML 2018) is the matching adaptive attack.

Each forward adds N(0, sigma^2) noise to ``draws`` copies of every image (clipped to [0, 1]) and
averages the victim's outputs (embeddings are re-normalised). Differentiable, randomised: the
adaptive attack averages gradients over the randomness (EOT). This is the empirical smoothed
model, not a certificate. Parameters: ``sigma`` (default 0.05), ``draws`` (default 8).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..registry import DEFENSES
from ._base import Transform, check_param


@DEFENSES.register()
class GaussianNoise(Transform):
    """Gaussian noise, outputs averaged over draws (Cohen et al. 2019); randomised (EOT)."""

    name = "gaussian_noise"
    differentiable = True
    randomized = True

    def __init__(self, sigma: float = 0.05, draws: int = 8):
        check_param("gaussian_noise", "sigma", sigma,
                    isinstance(sigma, (int, float)) and 0 <= sigma <= 1, "a number in [0, 1]")
        check_param("gaussian_noise", "draws", draws,
                    isinstance(draws, int) and 1 <= draws <= 256, "an integer in 1..256")
        super().__init__(sigma=sigma, draws=draws)
        self.sigma, self.draws = float(sigma), draws

    def transform(self, x: Tensor, victim=None) -> Tensor:
        # The global torch RNG: runs are reproducible through the runner's seed.
        return (x + torch.randn_like(x) * self.sigma).clamp(0, 1)
