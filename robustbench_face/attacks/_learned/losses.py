"""The dual pull / push objective for learned patches (per sample, to minimise), shared by
``cond_patch`` (every term) and ``patch_universal`` (its evasion rows: push, decoy, tv).

* pull  = 1 - cos(f(x_adv), t): toward the target identity's mean embedding t;
* push  = max(0, cos(f(x_adv), s) - margin): away from the source identity's mean embedding s
  (known on training identities only) and, with the same margin, from the image's own clean
  embedding (the only source reference at test time, and what the runner's evasion scores);
* decoy = 1 - cos(f(x_adv), d): evasion only, a weak pull toward another training identity d, so
  the embedding lands on a person rather than in an empty corner of the space (a semantic move,
  which we expect to transfer better than a plain push);
* contrast = cross-entropy of softmax(cos(f(x_adv), identity means) / tau) toward the target's
  index (impersonation only): pull to the target *and* away from every other training identity
  at once, a smooth stand-in for "the target is at rank 1";
* rank  = evasion only: mean over the other training identities j of
  softplus((cos(f(x_adv), self) - cos(f(x_adv), m_j)) / rank_tau), self = the average of the
  source mean and the clean embedding: the source must rank *below* every other identity. A
  plain push is satisfied by one universal attractor, which leaves the identities nearest that
  attractor matched (an mAP floor near 1/#identities); this relative term is not;
* diverse = every row: mean cos(f(x_adv_i), f(x_adv_j)) over the batch rows j of *other*
  source identities: a term against the universal attractor (patched embeddings of different
  people had pairwise cos 0.97), which no per-row loss sees;
* tv    = total variation of the patch (smoothness, printability; optional);
* sat   = mean(relu(|z| - z_max)^2) on the generator's logits z (added by ``cond_patch``'s training step): keeps the
  pre-activations in the sigmoid's live range; without it they ran to |z| ~ 80 by step 40 and
  every gradient was exactly 0 (the collapse).

Impersonation rows use ``pull * w.pull + push * w.push + contrast * w.contrast``; evasion rows
use ``push * w.push + decoy * w.decoy + rank * w.rank``. All embeddings are L2-normalised.

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
    contrast: float = 0.0  # 0 = the original objective (no identity cross-entropy)
    tau: float = 0.1       # softmax temperature of the contrast term
    sat: float = 0.0       # logit saturation penalty weight (see the module docstring)
    rank: float = 0.0      # evasion rows: source below every other identity (0 = off)
    rank_tau: float = 0.05
    diverse: float = 0.0   # batch term against one universal attractor (0 = off)

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


def saturation(z: Tensor, z_max: float) -> Tensor:
    """Mean squared excess of the logits beyond +-z_max, shape (N,).

    >>> round(float(saturation(torch.tensor([[0.0, 5.0, -6.0]]), 4.0)), 4)
    1.6667
    """
    return (z.abs() - z_max).clamp_min(0).pow(2).flatten(1).mean(1)


def contrast(emb: Tensor, means: Tensor, target_id: Tensor, tau: float) -> Tensor:
    """Cross-entropy toward ``target_id`` over cos similarities to identity ``means`` / tau."""
    return torch.nn.functional.cross_entropy(emb @ means.T / tau, target_id, reduction="none")


def rank(emb: Tensor, self_ref: Tensor, means: Tensor, source_id: Tensor, tau: float) -> Tensor:
    """Mean softplus((cos(emb, self_ref) - cos(emb, m_j)) / tau) over identities j != source.

    >>> m = torch.eye(3)
    >>> e = torch.tensor([[0.0, 1.0, 0.0]])
    >>> round(float(rank(e, m[:1], m, torch.tensor([0]), 0.1)), 4)  # source ranks last: small
    0.3466
    >>> round(float(rank(m[:1], m[:1], m, torch.tensor([0]), 0.1)), 4)  # source ranks first: large
    10.0
    """
    diff = (cos(emb, self_ref)[:, None] - emb @ means.T) / tau        # (N, K)
    others = torch.ones_like(diff, dtype=torch.bool)
    others[torch.arange(len(diff)), source_id] = False
    return (torch.nn.functional.softplus(diff) * others).sum(1) / others.sum(1)


def diversity(emb: Tensor, source_id: Tensor) -> Tensor:
    """Per row, the mean cos to the rows of other source identities (0 where there are none).

    >>> e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> diversity(e, torch.tensor([0, 1, 1])).tolist()
    [0.5, 1.0, 0.0]
    """
    other = source_id[:, None] != source_id[None, :]
    return (emb @ emb.T * other).sum(1) / other.sum(1).clamp_min(1)


def patch_loss(emb: Tensor, clean: Tensor, src_mean: Tensor, target: Tensor, decoy: Tensor,
               is_target: Tensor, w: LossWeights, means: Tensor | None = None,
               target_id: Tensor | None = None,
               source_id: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """Per-sample loss (N,) for one surrogate, and scalar logs.

    ``target`` rows are ignored where ``is_target`` is False, ``decoy`` rows where it is True.
    ``means`` (K, D) and ``target_id`` (N,) feed the contrast term (skipped when absent or 0).
    """
    p_src = 0.5 * (push(emb, src_mean, w.margin) + push(emb, clean, w.margin))
    imp = w.pull * pull(emb, target) + w.push * p_src
    if w.contrast and means is not None and target_id is not None:
        imp = imp + w.contrast * contrast(emb, means, target_id, w.tau)
    eva = w.push * p_src + w.decoy * pull(emb, decoy)
    if w.rank and means is not None and source_id is not None:
        self_ref = torch.nn.functional.normalize(src_mean + clean, dim=1)
        eva = eva + w.rank * rank(emb, self_ref, means, source_id, w.rank_tau)
    loss = torch.where(is_target, imp, eva)
    if w.diverse and source_id is not None:
        loss = loss + w.diverse * diversity(emb, source_id)
    with torch.no_grad():
        logs = {"cos_self": float(cos(emb, clean).mean())}
        if source_id is not None:
            logs["cos_others"] = float(diversity(emb, source_id).mean())
        if is_target.any():
            logs["cos_target"] = float(cos(emb[is_target], target[is_target]).mean())
            if means is not None and target_id is not None:  # target at rank 1 among train ids
                top = (emb[is_target] @ means.T).argmax(1)
                logs["top1_target"] = float((top == target_id[is_target]).float().mean())
        if (~is_target).any():
            logs["cos_self_evasion"] = float(cos(emb[~is_target], clean[~is_target]).mean())
            if means is not None and source_id is not None:  # source still at rank 1 (lower is better)
                top = (emb[~is_target] @ means.T).argmax(1)
                logs["top1_self"] = float((top == source_id[~is_target]).float().mean())
    return loss, logs
