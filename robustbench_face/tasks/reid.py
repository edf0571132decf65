"""Re-ID under attack: queries are attacked, the gallery stays clean, Market-1501 scoring.

* **evasion**: the attack pushes each query away from its clean embedding. ``success_rate`` is
  the fraction of queries matched correctly at rank 1 before the attack that are not after it.
  ``map_floor`` is the lowest mAP any ranking of this gallery allows (every true match ranked
  last; :func:`..metrics.reid.map_floor`): on a small gallery it is far from 0.
* **impersonation**: each query gets a target identity by a seeded rule
  (``numpy.random.default_rng(seed)``, uniform over gallery identities other than the query's
  own, junk and distractors excluded, drawn in query order). The attack pulls the query
  toward the L2-normalised mean of the target's clean gallery embeddings on the attacked
  victim. ``success_rate`` is the fraction of queries whose rank-1 gallery image is the target;
  ``target_map`` is the mAP with the target as the relevant identity (the same-pid-same-camera
  removal still uses the query's true identity).

Every victim in ``victims`` is scored on the same adversarial queries: the first is the
attacked one (white-box), the rest are transfer / black-box victims.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..measure import embed
from ..metrics.reid import distance_matrix, evaluate_rank, map_floor
from ._template import Row, Task

log = logging.getLogger(__name__)


def draw_targets(q_pids: np.ndarray, g_pids: np.ndarray, seed: int) -> np.ndarray:
    """Seeded impersonation targets: another gallery identity for every query.

    >>> draw_targets(np.array([1, 2]), np.array([1, 2, 3, -1, 0]), seed=0).tolist()
    [3, 3]
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(g_pids[g_pids > 0])
    return np.array([rng.choice(ids[ids != p]) for p in q_pids])


@dataclass
class ReidInputs:
    images: torch.Tensor            # the queries
    q_pids: np.ndarray
    q_cams: np.ndarray
    g_pids: np.ndarray
    g_cams: np.ndarray
    feats_g: dict[str, np.ndarray]  # clean gallery embeddings per victim
    target_pids: np.ndarray | None = None


@dataclass
class ReidRow(Row):
    clean_map: float = 0.0
    adv_map: float = 0.0
    clean_rank1: float = 0.0
    adv_rank1: float = 0.0
    success_rate: float = 0.0
    map_floor: float | None = None
    target_map: float | None = None


class Reid(Task):
    name = "reid"
    modes = ("evasion", "impersonation")

    def inputs(self, ctx) -> ReidInputs:
        queries = ctx.ds.split("query")[: ctx.cfg.limit]
        gallery = ctx.ds.split("gallery")
        xq, xg = ctx.ds.load(queries), ctx.ds.load(gallery)
        feats_g = {n: embed(v, xg, ctx.cfg.batch_size, ctx.cfg.device) for n, v in ctx.victims.items()}
        return ReidInputs(xq, np.array([s.pid for s in queries]), np.array([s.camid for s in queries]),
                          np.array([s.pid for s in gallery]), np.array([s.camid for s in gallery]), feats_g)

    def targets(self, ctx, inp: ReidInputs) -> torch.Tensor:
        inp.target_pids = draw_targets(inp.q_pids, inp.g_pids, ctx.cfg.seed)
        feats = inp.feats_g[ctx.names[0]]
        means = {p: feats[inp.g_pids == p].mean(0) for p in np.unique(inp.target_pids)}
        t = torch.tensor(np.stack([means[p] for p in inp.target_pids]), dtype=inp.images.dtype)
        return torch.nn.functional.normalize(t, dim=1)

    def score(self, ctx, inp: ReidInputs, outcome) -> list[ReidRow]:
        floor = map_floor(inp.q_pids, inp.g_pids, inp.q_cams, inp.g_cams)  # the lowest mAP possible
        bs, dev = ctx.cfg.batch_size, ctx.cfg.device
        cost = outcome.columns()
        rows = []
        for n, v in ctx.victims.items():
            fq, fa = embed(v, inp.images, bs, dev), embed(v, outcome.x_adv, bs, dev)
            rank = lambda f, **kw: evaluate_rank(distance_matrix(f, inp.feats_g[n]), inp.q_pids,  # noqa: E731
                                                 inp.g_pids, inp.q_cams, inp.g_cams, **kw)
            clean, adv = rank(fq), rank(fa)
            row = ReidRow("reid", ctx.attacked.name, v.name, len(inp.images), dict(cost),
                          clean.map, adv.map, clean.rank1, adv.rank1)
            if ctx.targeted:
                tgt = rank(fa, target_pids=inp.target_pids)
                row.target_map, row.success_rate = tgt.map, float(tgt.rank1_hit.mean())
            else:
                was_right = clean.rank1_hit
                row.success_rate = float((was_right & ~adv.rank1_hit).sum() / max(was_right.sum(), 1))
                row.map_floor = floor
            rows.append(row)
            log.info("%s on %s: clean mAP %.3f -> adv mAP %.3f", ctx.attack_name, v.name, clean.map, adv.map)
        return rows
