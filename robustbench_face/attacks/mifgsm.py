"""Momentum iterative FGSM, L-inf, on any victim head.

Paper: Y. Dong, F. Liao, T. Pang, H. Su, J. Zhu, X. Hu, J. Li, "Boosting Adversarial Attacks
with Momentum", CVPR 2018. Distance: L-inf.

Steps are torchattacks' ``MIFGSM``; the objective comes from ``_objective``. Momentum makes
the perturbation transfer better to unseen victims than plain PGD.

Arguments: ``eps`` (8/255), ``alpha`` (eps/10 * 2.5, i.e. eps/4), ``steps`` (20), ``decay`` (1.0).
"""

from __future__ import annotations

import torchattacks
from torch import Tensor

from ..errors import InputError
from ..registry import ATTACKS
from ._objective import ScoreAsLogits, objective


class MIFGSM:
    def __init__(self, eps: float = 8 / 255, alpha: float | None = None, steps: int = 20,
                 decay: float = 1.0):
        if not (float(eps) >= 0 and float(eps) < float("inf")):
            raise InputError(f"mifgsm: eps must be a finite number >= 0, got {eps}")
        self.eps, self.steps, self.decay = float(eps), int(steps), float(decay)
        self.alpha = self.eps / 4 if alpha is None else float(alpha)

    @property
    def distance(self) -> str:
        return "linf"

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        model = ScoreAsLogits(victim, objective(victim, images, target))
        if self.eps == 0:
            return images.clone()
        atk = torchattacks.MIFGSM(model, eps=self.eps, alpha=self.alpha, steps=self.steps,
                                  decay=self.decay)
        return atk(images, model.labels(len(images), images.device))

    def __repr__(self) -> str:
        return f"MIFGSM(eps={self.eps:.5g}, alpha={self.alpha:.5g}, steps={self.steps}, decay={self.decay})"


@ATTACKS.register("mifgsm")
def mifgsm(**kwargs) -> MIFGSM:
    """MI-FGSM (Dong et al. 2018), L-inf with momentum, via torchattacks, on any victim head."""
    return MIFGSM(**kwargs)
