"""Valence-arousal head: two values in [-1, 1] per image (``output = "regression"``).

Untargeted: ``max_k -sign(f_k(x)) f_k(x')``, push a coordinate across zero (the quadrant change
the task scores as success); targeted: ``-||f(x') - t||^2`` toward a quadrant's centre
(+-0.5, +-0.5). The untargeted objective used to be ``||f(x') - f(x)||^2``, which is stationary
at ``x' = x``: an attack without a random start (MI-FGSM) got an exactly zero gradient and never
moved, which the attack contract test caught. ``--target-class`` names the
quadrant: ``q1..q4`` or ``high_valence_low_arousal`` and the like.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..metrics import affect as M
from ._base import Head, Score

VA_TARGET = 0.5  # quadrant targets sit at (+-0.5, +-0.5), the middle of the quadrant


def parse_quadrant(spec: str) -> tuple[int, int]:
    """Quadrant name -> (valence sign, arousal sign).

    >>> parse_quadrant("q2")
    (-1, 1)
    """
    key = str(spec).strip().lower()
    if key not in M.QUADRANTS:
        raise InputError(f"--target-class {spec!r} is not a valence-arousal quadrant; "
                         f"choose from {', '.join(M.QUADRANTS)}")
    return M.QUADRANTS[key]


class RegressionHead(Head):
    kind = "regression"
    label = "valence_arousal"
    untargeted_goal = "move valence/arousal away from the clean prediction"
    targeted_goal = "move valence/arousal into a target quadrant"

    def objective(self, ref: Tensor, target: Tensor | None) -> Score:
        if target is None:
            away = -torch.where(ref >= 0, 1.0, -1.0).to(ref.dtype)
            return lambda out: (out * away).amax(1)
        goal = target.to(ref.dtype)
        return lambda out: -((out - goal) ** 2).sum(1)

    def parse_target(self, spec: str, victim):
        return parse_quadrant(spec)

    def target_tensor(self, parsed, clean: Tensor) -> Tensor:
        n = clean.shape[0]
        return torch.tensor(parsed, dtype=clean.dtype).mul(VA_TARGET).expand(n, 2).clone()

    def width(self, victim):
        return 2, "valence, arousal"

    def references(self, ds, idx, victim, n_out):
        if "va" not in ds.meta:
            return None
        return np.asarray(ds.meta["va"], dtype=float)[idx]

    def score(self, clean, adv, labels, target, victim, seed: int = 0):
        return M.score_valence_arousal(clean, adv, labels, target)

    def success(self, clean, adv, labels, target, victim):
        return M.va_success(clean, adv, target)
