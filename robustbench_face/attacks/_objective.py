"""The one adapter between victims and attacks: what "the attack is winning" means.

:func:`objective` turns a victim, its clean images and an optional target into a per-sample
score to **maximise**; the victim's head (:mod:`robustbench_face.heads`) defines it:

==============  ============================================  ====================================
victim output   untargeted (``target=None``)                  targeted
==============  ============================================  ====================================
embedding       evasion: ``-cos(f(x'), f(x))``, push away     impersonation: ``cos(f(x'), t)``,
                from the clean embedding                      pull toward the target embedding
logits          ``CE(f(x'), y)``, y = clean prediction        ``-CE(f(x'), t)``, t = class index
regression      ``max_k -sign(f_k(x)) f_k(x')``               ``-||f(x') - t||^2``
multilabel      ``BCE(f(x'), 1[f(x) > .5])``                  ``-BCE(f(x'), t)``, t = 0/1 pattern
==============  ============================================  ====================================

:class:`ScoreAsLogits` exposes that score to classification-only libraries (torchattacks, ART)
as two-class logits ``[-s', 0]`` with label 0, where ``s' = s / (1 + |s|)`` (the denominator
detached). Their cross-entropy is ``softplus(s')``, increasing in ``s``; its gradient is a
positive per-sample multiple of ``grad s``, so sign steps (L-inf PGD), per-sample normalised
steps (L2 PGD) and L1-normalised momentum (MI-FGSM) move exactly as if they maximised ``s``
itself. The rescaling keeps the sigmoid factor in [0.27, 0.73], so the gradient never
underflows however large a cross-entropy score gets.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..heads import Score, head_of
from ..types import check_images


def objective(victim, images: Tensor, target: Tensor | None = None) -> Score:
    """Score function on victim outputs (see the module table; each row is a head's
    :meth:`~robustbench_face.heads.Head.objective`)."""
    check_images(images)
    head = head_of(victim)
    with torch.no_grad():
        ref = victim(images)
    if target is not None:
        target = torch.as_tensor(target, device=ref.device)
        if target.shape[0] != images.shape[0]:
            raise InputError(f"target has {target.shape[0]} rows for {images.shape[0]} images")
    return head.objective(ref, target)


class ScoreAsLogits(nn.Module):
    """Two-class logits whose cross-entropy with label 0 increases with the score."""

    def __init__(self, victim: nn.Module, score: Score, device: torch.device | str | None = None):
        super().__init__()
        self.victim = victim
        self.score = score
        # torchattacks reads the device off the first parameter and prints a warning when there
        # is none (a victim whose weights are buffers, such as fer_xception): give it one, on
        # the images' device
        self._anchor = nn.Parameter(torch.zeros((), device=device), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        s = self.score(self.victim(x))
        s = s / (1.0 + s.detach().abs())
        return torch.stack([-s, torch.zeros_like(s)], dim=1)

    @staticmethod
    def labels(n: int, device) -> Tensor:
        return torch.zeros(n, dtype=torch.long, device=device)
