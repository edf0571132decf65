"""Embedding head (re-ID and face recognisers): unit vectors, compared by cosine.

Untargeted (evasion / dodging): ``-cos(f(x'), f(x))``, push away from the clean embedding.
Targeted (impersonation): ``cos(f(x'), t)``, pull toward the target embedding ``t``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._base import Head, Score


class EmbeddingHead(Head):
    kind = "embedding"
    label = "embedding"
    untargeted_goal = "push the embedding away from its clean value"
    targeted_goal = "pull the embedding toward a target embedding"

    def objective(self, ref: Tensor, target: Tensor | None) -> Score:
        if target is None:
            return lambda out: -(out * ref).sum(1)
        t = F.normalize(target.to(ref.dtype), dim=1)
        return lambda out: (out * t).sum(1)

    def target_tensor(self, parsed, clean: Tensor) -> Tensor:
        return F.normalize(parsed.to(clean.dtype), dim=1)
