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

Intervals (``metrics/intervals.py``): ``ci_low`` / ``ci_high`` is the Wilson interval of
``success_rate``; ``*_map_ci_low`` / ``*_map_ci_high`` a seeded bootstrap over the valid queries'
APs. ``n_valid_queries`` counts the queries that have a true match left after the camera rule:
rank-1 and mAP are over those (mini_mars: 92 of 128).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from ..datasets._base import stratified_subset
from ..metrics.intervals import mean_ci, wilson
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


def per_query(clean_hit: np.ndarray, adv_hit: np.ndarray, targeted: bool) -> np.ndarray:
    """Per-query success (1 / 0, NaN = not scored). Evasion: right at rank 1 clean (scored)
    and not after; impersonation (``adv_hit``: rank-1 is the target): every query is scored.

    >>> per_query(np.array([True, True, False]), np.array([False, True, False]), False).tolist()
    [1.0, 0.0, nan]
    """
    if targeted:
        return adv_hit.astype(float)
    return np.where(clean_hit, (~adv_hit).astype(float), np.nan)


@dataclass
class ReidInputs:
    images: object                  # the queries: an ImageSource (read a batch at a time)
    q_pids: np.ndarray
    q_cams: np.ndarray
    g_pids: np.ndarray
    g_cams: np.ndarray
    feats_g: dict[str, np.ndarray]  # clean gallery embeddings per victim
    target_pids: np.ndarray | None = None
    n_available: int = 0            # queries of the protocol (--limit draws a stratified subset)


@dataclass
class ReidRow(Row):
    clean_map: float = 0.0
    adv_map: float = 0.0
    clean_rank1: float = 0.0
    adv_rank1: float = 0.0
    success_rate: float = 0.0
    n_valid_queries: int = 0
    map_floor: float | None = None
    target_map: float | None = None
    extra: dict = field(default_factory=dict)  # intervals


class Reid(Task):
    name = "reid"
    modes = ("evasion", "impersonation")
    metric = ("clean_map", "adv_map")

    def inputs(self, ctx) -> ReidInputs:
        every = ctx.ds.split("query")
        queries = [every[i] for i in stratified_subset([s.pid for s in every], ctx.cfg.limit, ctx.cfg.seed)]
        gallery = ctx.ds.split("gallery")
        xq, xg = ctx.ds.source(queries), ctx.ds.source(gallery)  # read a batch at a time
        feats_g = {n: ctx.clean(v, "reid-gallery", gallery, xg, desc=f"gallery on {v.name}")
                   for n, v in ctx.victims.items()}
        return ReidInputs(xq, np.array([s.pid for s in queries]), np.array([s.camid for s in queries]),
                          np.array([s.pid for s in gallery]), np.array([s.camid for s in gallery]), feats_g,
                          n_available=len(every))

    def targets(self, ctx, inp: ReidInputs) -> torch.Tensor:
        inp.target_pids = draw_targets(inp.q_pids, inp.g_pids, ctx.cfg.seed)
        feats = inp.feats_g[ctx.names[0]]
        means = {p: feats[inp.g_pids == p].mean(0) for p in np.unique(inp.target_pids)}
        t = torch.tensor(np.stack([means[p] for p in inp.target_pids]), dtype=torch.float32)
        return torch.nn.functional.normalize(t, dim=1)

    def success(self, ctx, inp: ReidInputs, outputs: np.ndarray) -> np.ndarray:
        n, v = ctx.names[0], ctx.attacked
        rank = lambda f, **kw: evaluate_rank(distance_matrix(f, inp.feats_g[n]), inp.q_pids,  # noqa: E731
                                             inp.g_pids, inp.q_cams, inp.g_cams, **kw)
        clean = rank(ctx.clean(v, "reid-queries", inp.images.samples, inp.images))
        adv = rank(outputs, target_pids=inp.target_pids if ctx.targeted else None)
        return per_query(clean.rank1_hit, adv.rank1_hit, ctx.targeted)

    def score(self, ctx, inp: ReidInputs, outcome) -> list[ReidRow]:
        floor = map_floor(inp.q_pids, inp.g_pids, inp.q_cams, inp.g_cams)  # the lowest mAP possible
        cost = outcome.columns()
        rows = []
        for n, v in ctx.victims.items():
            fq, fa = ctx.clean(v, "reid-queries", inp.images.samples, inp.images), outcome.outputs[n]
            rank = lambda f, **kw: evaluate_rank(distance_matrix(f, inp.feats_g[n]), inp.q_pids,  # noqa: E731
                                                 inp.g_pids, inp.q_cams, inp.g_cams, **kw)
            clean, adv = rank(fq), rank(fa)
            row = ReidRow("reid", ctx.attacked.name, v.name, len(inp.images), dict(cost),
                          n_available=inp.n_available, partial=len(inp.images) < inp.n_available,
                          clean_map=clean.map, adv_map=adv.map, clean_rank1=clean.rank1,
                          adv_rank1=adv.rank1, n_valid_queries=clean.n_valid)
            seed = ctx.cfg.seed
            ci = {"clean_map": mean_ci(clean.ap, seed), "adv_map": mean_ci(adv.ap, seed)}
            if ctx.targeted:
                tgt = rank(fa, target_pids=inp.target_pids)
                hits = per_query(clean.rank1_hit, tgt.rank1_hit, True)
                row.target_map = tgt.map
                ci["target_map"] = mean_ci(tgt.ap, seed)
            else:
                hits = per_query(clean.rank1_hit, adv.rank1_hit, False)
                row.map_floor = floor
            k, n_try = int(np.nansum(hits)), int((~np.isnan(hits)).sum())
            row.success_rate = k / max(n_try, 1)
            row.extra = {"ci_low": wilson(k, n_try)[0], "ci_high": wilson(k, n_try)[1],
                         **{f"{m}_ci_{side}": v for m, (lo, hi) in ci.items()
                            for side, v in (("low", lo), ("high", hi))}}
            rows.append(row)
            log.info("%s on %s: clean mAP %.3f -> adv mAP %.3f", ctx.attack_name, v.name, clean.map, adv.map)
        return rows
