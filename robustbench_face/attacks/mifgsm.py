"""Momentum iterative FGSM, L-inf, on any victim head.

Paper: Y. Dong, F. Liao, T. Pang, H. Su, J. Zhu, X. Hu, J. Li, "Boosting Adversarial Attacks
with Momentum", CVPR 2018. Distance: L-inf.

Steps are torchattacks' ``MIFGSM``; the objective comes from the victim's head. Momentum makes
the perturbation transfer better to unseen victims than plain PGD. Deterministic.

Options: ``eps`` (8/255), ``alpha`` (eps/4), ``steps`` (20), ``decay`` (1.0), ``seed``.
"""

from __future__ import annotations

import torchattacks
from torch import Tensor

from ..registry import ATTACKS
from ._base import Attack
from ._objective import ScoreAsLogits, objective
from .pgd import check_eps


@ATTACKS.register()
class MIFGSM(Attack):
    """MI-FGSM (Dong et al. 2018), L-inf with momentum, via torchattacks, on any victim head."""

    name = "mifgsm"
    distance = "linf"

    def __init__(self, eps: float = 8 / 255, alpha: float | None = None, steps: int = 20,
                 decay: float = 1.0, seed: int = 0):
        self.eps, self.steps, self.decay = check_eps("mifgsm", float(eps)), int(steps), float(decay)
        self.alpha = self.eps / 4 if alpha is None else float(alpha)
        self.seed = int(seed)

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        model = ScoreAsLogits(victim, objective(victim, images, target), images.device)
        if self.eps == 0:
            return images.clone()
        atk = torchattacks.MIFGSM(model, eps=self.eps, alpha=self.alpha, steps=self.steps,
                                  decay=self.decay)
        return atk(images, model.labels(len(images), images.device))
