"""Projected gradient descent in L-inf or L2, on any victim head.

Paper: A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards Deep Learning Models
Resistant to Adversarial Attacks", ICLR 2018. Distance: L-inf (default) or L2.

The steps are torchattacks' ``PGD`` / ``PGDL2``; the feature-space or head-specific objective
comes from the victim's head (:mod:`robustbench_face.heads`, through
:mod:`._objective`): evasion pushes an embedding away from its clean value, impersonation
pulls it toward ``target``.

Options: ``eps`` (8/255 for L-inf, 0.5 for L2), ``alpha`` step (eps/4 by default), ``steps``
(20), ``norm`` ("linf" or "l2"), ``random_start`` (True), ``seed``. torchattacks draws the
random start from torch's global generator, which the runner seeds with the run's seed right
before the attack phase (so ``seed`` is recorded, and reproducibility comes from the runner).
"""

from __future__ import annotations

from typing import Literal

import torchattacks
from torch import Tensor

from ..errors import InputError
from ..registry import ATTACKS
from ._base import Attack
from ._objective import ScoreAsLogits, objective


def check_eps(name: str, eps: float) -> float:
    if not (eps >= 0 and eps < float("inf")):
        raise InputError(f"{name}: eps must be a finite number >= 0, got {eps}")
    return eps


@ATTACKS.register()
class PGD(Attack):
    """PGD (Madry et al. 2018), L-inf 8/255 or L2, via torchattacks, on any victim head."""

    name = "pgd"
    uses_global_rng = True

    def __init__(self, eps: float | None = None, alpha: float | None = None, steps: int = 20,
                 norm: Literal["linf", "l2"] = "linf", random_start: bool = True, seed: int = 0):
        if norm not in ("linf", "l2"):
            raise InputError(f"pgd: norm must be 'linf' or 'l2', got {norm!r}")
        eps = (8 / 255 if norm == "linf" else 0.5) if eps is None else float(eps)
        check_eps("pgd", eps)
        if int(steps) < 1:
            raise InputError(f"pgd: steps must be >= 1, got {steps}")
        self.eps, self.steps, self.norm, self.random_start = eps, int(steps), norm, bool(random_start)
        self.alpha = eps / 4 if alpha is None else float(alpha)
        self.seed = int(seed)

    @property
    def distance(self) -> str:
        return self.norm

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        model = ScoreAsLogits(victim, objective(victim, images, target), images.device)
        if self.eps == 0:
            return images.clone()
        cls = torchattacks.PGD if self.norm == "linf" else torchattacks.PGDL2
        atk = cls(model, eps=self.eps, alpha=self.alpha, steps=self.steps,
                  random_start=self.random_start)
        return atk(images, model.labels(len(images), images.device))
