"""The dual pull / push objective for learned patches (per sample, to minimise).

* pull  = 1 - cos(f(x_adv), t): toward the target identity's mean embedding t;
* push  = max(0, cos(f(x_adv), s) - margin): away from the source identity's mean embedding s
  (known on training identities only) and, with the same margin, from the image's own clean
  embedding (the only source reference at test time, and what the runner's evasion scores);
* decoy = 1 - cos(f(x_adv), d): evasion only, a weak pull toward another training identity d, so
  the embedding lands on a person rather than in an empty corner of the space (a semantic move,
  which we expect to transfer better than a plain push);
* tv    = total variation of the patch (smoothness, printability; optional).

Impersonation rows use ``pull * w.pull + push * w.push``; evasion rows use
``push * w.push + decoy * w.decoy``. All embeddings are L2-normalised.

>>> import torch
>>> e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=1)
>>> cos(e, e).tolist()
[1.0, 0.9999999403953552]
>>> [round(v, 3) for v in push(e, e, margin=0.2).tolist()]
[0.8, 0.8]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor


@dataclass
class LossWeights:
    pull: float = 1.0
    push: float = 1.0
    margin: float = 0.0   # OSNet features are post-ReLU, so cos >= 0: margin 0 pushes all the way
    decoy: float = 0.3
    tv: float = 0.01

    def to_dict(self) -> dict:
        return asdict(self)


def cos(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(1)


def pull(emb: Tensor, target: Tensor) -> Tensor:
    return 1 - cos(emb, target)


def push(emb: Tensor, source: Tensor, margin: float = 0.0) -> Tensor:
    return (cos(emb, source) - margin).clamp_min(0)


def tv(patch: Tensor) -> Tensor:
    """Mean absolute neighbour difference per patch, shape (N,)."""
    dy = (patch[..., 1:, :] - patch[..., :-1, :]).abs().flatten(1).mean(1)
    dx = (patch[..., :, 1:] - patch[..., :, :-1]).abs().flatten(1).mean(1)
    return dy + dx


def patch_loss(emb: Tensor, clean: Tensor, src_mean: Tensor, target: Tensor, decoy: Tensor,
               is_target: Tensor, w: LossWeights) -> tuple[Tensor, dict[str, float]]:
    """Per-sample loss (N,) for one surrogate, and scalar logs.

    ``target`` rows are ignored where ``is_target`` is False, ``decoy`` rows where it is True.
    """
    p_src = 0.5 * (push(emb, src_mean, w.margin) + push(emb, clean, w.margin))
    imp = w.pull * pull(emb, target) + w.push * p_src
    eva = w.push * p_src + w.decoy * pull(emb, decoy)
    loss = torch.where(is_target, imp, eva)
    with torch.no_grad():
        logs = {"cos_self": float(cos(emb, clean).mean())}
        if is_target.any():
            logs["cos_target"] = float(cos(emb[is_target], target[is_target]).mean())
        if (~is_target).any():
            logs["cos_self_evasion"] = float(cos(emb[~is_target], clean[~is_target]).mean())
    return loss, logs
