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

import numpy as np
import torch

from ..metrics.reid import distance_matrix, evaluate_rank, map_floor
from ..runner import attack_and_measure

log = logging.getLogger(__name__)


@torch.no_grad()
def embed(victim, images: torch.Tensor, batch_size: int, device: str) -> np.ndarray:
    out = [victim(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def draw_targets(q_pids: np.ndarray, g_pids: np.ndarray, seed: int) -> np.ndarray:
    """Seeded impersonation targets: another gallery identity for every query.

    >>> draw_targets(np.array([1, 2]), np.array([1, 2, 3, -1, 0]), seed=0).tolist()
    [3, 3]
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(g_pids[g_pids > 0])
    return np.array([rng.choice(ids[ids != p]) for p in q_pids])


def run_task(cfg, ds, mode, attack, victims) -> list[dict]:
    queries = ds.split("query")[: cfg.limit]
    gallery = ds.split("gallery")
    q_pids = np.array([s.pid for s in queries]); q_cams = np.array([s.camid for s in queries])
    g_pids = np.array([s.pid for s in gallery]); g_cams = np.array([s.camid for s in gallery])
    xq = ds.load(queries)
    xg = ds.load(gallery)
    bs, dev = cfg.batch_size, cfg.device
    names = list(victims)
    feats_g = {n: embed(victims[n], xg, bs, dev) for n in names}
    attacked = victims[names[0]]

    targets = target_pids = None
    if mode == "impersonation":
        target_pids = draw_targets(q_pids, g_pids, cfg.seed)
        means = {p: feats_g[names[0]][g_pids == p].mean(0) for p in np.unique(target_pids)}
        t = torch.tensor(np.stack([means[p] for p in target_pids]), dtype=xq.dtype)
        targets = torch.nn.functional.normalize(t, dim=1)
    x_adv, seconds, seen, kind, pert = attack_and_measure(attack, attacked, xq, targets, bs, dev,
                                                          desc=f"{cfg.attack} on {names[0]}")

    floor = map_floor(q_pids, g_pids, q_cams, g_cams)  # the lowest mAP any ranking can reach
    rows = []
    for n in names:
        fq, fa = embed(victims[n], xq, bs, dev), embed(victims[n], x_adv, bs, dev)
        clean = evaluate_rank(distance_matrix(fq, feats_g[n]), q_pids, g_pids, q_cams, g_cams)
        adv = evaluate_rank(distance_matrix(fa, feats_g[n]), q_pids, g_pids, q_cams, g_cams)
        row = {"task": "reid", "victim": victims[names[0]].name, "eval_victim": victims[n].name,
               "n_queries": len(queries), "clean_map": clean.map, "adv_map": adv.map,
               "clean_rank1": clean.rank1, "adv_rank1": adv.rank1,
               "sec_per_query": seconds / len(queries), "perturbation": pert,
               "perturbation_kind": kind if attack is not None else "",
               "queries_per_image": seen / len(queries)}
        if mode == "impersonation":
            tgt = evaluate_rank(distance_matrix(fa, feats_g[n]), q_pids, g_pids, q_cams, g_cams,
                                target_pids=target_pids)
            row["target_map"] = tgt.map
            row["success_rate"] = float(tgt.rank1_hit.mean())
        else:
            was_right = clean.rank1_hit
            row["success_rate"] = float((was_right & ~adv.rank1_hit).sum() / max(was_right.sum(), 1))
            row["map_floor"] = floor
        rows.append(row)
        log.info("%s on %s: clean mAP %.3f -> adv mAP %.3f", cfg.attack, victims[n].name, clean.map, adv.map)
    return rows
