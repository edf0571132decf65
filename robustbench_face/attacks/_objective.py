"""The one adapter between victims and attacks: what "the attack is winning" means.

:func:`objective` turns a victim, its clean images and an optional target into a per-sample
score to **maximise**:

==============  ============================================  ====================================
victim output   untargeted (``target=None``)                  targeted
==============  ============================================  ====================================
embedding       evasion: ``-cos(f(x'), f(x))``, push away     impersonation: ``cos(f(x'), t)``,
                from the clean embedding                      pull toward the target embedding
logits          ``CE(f(x'), y)``, y = clean prediction        ``-CE(f(x'), t)``, t = class index
regression      ``||f(x') - f(x)||^2``                        ``-||f(x') - t||^2``
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

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ..types import check_images

Score = Callable[[Tensor], Tensor]  # victim output (N, ...) -> (N,) score to maximise


def objective(victim, images: Tensor, target: Tensor | None = None) -> Score:
    """Score function on victim outputs; see the module table."""
    check_images(images)
    kind = getattr(victim, "output", None)
    with torch.no_grad():
        ref = victim(images)
    if target is not None:
        target = torch.as_tensor(target, device=ref.device)
        if target.shape[0] != images.shape[0]:
            raise InputError(f"target has {target.shape[0]} rows for {images.shape[0]} images")
    if kind == "embedding":
        if target is None:
            return lambda out: -(out * ref).sum(1)
        t = F.normalize(target.to(ref.dtype), dim=1)
        return lambda out: (out * t).sum(1)
    if kind == "logits":
        if target is None:
            y = ref.argmax(1)
            return lambda out: F.cross_entropy(out, y, reduction="none")
        t = target.long()
        return lambda out: -F.cross_entropy(out, t, reduction="none")
    if kind == "regression":
        goal = ref if target is None else target.to(ref.dtype)
        sign = 1.0 if target is None else -1.0
        return lambda out: sign * ((out - goal) ** 2).sum(1)
    if kind == "multilabel":
        goal = (ref > 0.5).to(ref.dtype) if target is None else target.to(ref.dtype)
        sign = 1.0 if target is None else -1.0
        return lambda out: sign * F.binary_cross_entropy(
            out.clamp(1e-6, 1 - 1e-6), goal, reduction="none").sum(1)
    raise InputError(f"victim {getattr(victim, 'name', victim)!r} declares output {kind!r}; "
                     "expected embedding, logits, regression or multilabel")


class ScoreAsLogits(nn.Module):
    """Two-class logits whose cross-entropy with label 0 increases with the score."""

    def __init__(self, victim: nn.Module, score: Score):
        super().__init__()
        self.victim = victim
        self.score = score
        self.register_buffer("_anchor", torch.zeros(()))  # lets libraries find a device

    def forward(self, x: Tensor) -> Tensor:
        s = self.score(self.victim(x))
        s = s / (1.0 + s.detach().abs())
        return torch.stack([-s, torch.zeros_like(s)], dim=1)

    @staticmethod
    def labels(n: int, device) -> Tensor:
        return torch.zeros(n, dtype=torch.long, device=device)
