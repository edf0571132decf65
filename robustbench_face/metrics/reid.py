"""Re-ID retrieval metrics under the Market-1501 protocol: mAP and CMC.

Protocol (Zheng et al., ICCV 2015, as implemented by torchreid's ``evaluate_rank``):

* for each query, gallery images with the query's pid **and** camera are removed from its
  ranking (they are "too easy": the same person seen by the same camera);
* junk gallery images (pid -1) are removed from every ranking; distractors (pid 0) stay and
  count as wrong matches;
* a query with no correct match left in the gallery is skipped (not counted as a miss);
* AP is the mean of precision at each correct match; CMC-k is the fraction of valid queries
  with a correct match in their first k.

Everything is vectorised over queries (in chunks, to bound memory at 100k galleries). The
ranking uses the same ``np.argsort`` as torchreid, so results agree with it to float precision;
``tests/test_metrics_reid.py`` checks this on random and on real inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ArrayLike = np.ndarray


@dataclass(frozen=True)
class RankResult:
    map: float
    cmc: np.ndarray  # cmc[k-1] = CMC rank-k
    ap: np.ndarray  # per-query AP, NaN for skipped queries
    rank1_hit: np.ndarray  # per-query bool: correct match at rank 1 (False for skipped)
    n_valid: int

    @property
    def rank1(self) -> float:
        return float(self.cmc[0])


def distance_matrix(q: ArrayLike, g: ArrayLike, metric: str = "cosine") -> np.ndarray:
    """Pairwise distances between query and gallery features (rows are samples).

    ``cosine`` is 1 - cosine similarity of L2-normalised rows; ``euclidean`` is the L2 distance.

    >>> distance_matrix(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 2.0]]))
    array([[0., 1.]])
    >>> distance_matrix(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), "euclidean")
    array([[5.]])
    """
    q = np.asarray(q, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return 1.0 - qn @ gn.T
    if metric == "euclidean":
        d2 = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T
        return np.sqrt(np.maximum(d2, 0.0))
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def faiss_rank(q: ArrayLike, g: ArrayLike, metric: str = "cosine", k: int | None = None) -> np.ndarray:
    """Gallery indices sorted by increasing distance, per query, from faiss exact search.

    For large galleries this replaces building the full distance matrix and argsorting it:
    faiss computes the similarities in blocks and k-selects them (k defaults to the whole
    gallery, which mAP needs). Exact ties may be ordered differently than numpy's argsort.

    >>> faiss_rank(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.1]])).tolist()
    [[1, 0]]
    """
    import faiss

    q = np.ascontiguousarray(q, dtype=np.float32)
    g = np.ascontiguousarray(g, dtype=np.float32)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(g.shape[1])
    elif metric == "euclidean":
        index = faiss.IndexFlatL2(g.shape[1])
    else:
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    index.add(g)
    _, idx = index.search(q, k or g.shape[0])
    return idx.astype(np.int64)


def evaluate_rank(
    distmat: ArrayLike | None,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    target_pids: ArrayLike | None = None,
    order: np.ndarray | None = None,
    chunk: int = 256,
) -> RankResult:
    """mAP and CMC under the Market-1501 rule (see module docstring).

    ``target_pids`` scores impersonation: relevance is "gallery pid == target pid" while the
    same-pid-same-camera removal still uses the query's true pid and camera.
    ``order`` may pass a precomputed ranking (e.g. from :func:`faiss_rank`); ``distmat`` is
    then not needed and may be None.

    >>> d = np.array([[0.1, 0.2, 0.3]])
    >>> r = evaluate_rank(d, [1], [1, 2, 1], [0], [1, 1, 1])
    >>> round(r.map, 4), r.cmc[:3].tolist()
    (0.8333, [1.0, 1.0, 1.0])
    >>> evaluate_rank(d, [1], [1, 2, 1], [1], [1, 1, 1]).n_valid  # all matches share the camera
    0
    """
    if distmat is None and order is None:
        raise ValueError("evaluate_rank needs distmat or order")
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    rel_pids = q_pids if target_pids is None else np.asarray(target_pids)
    num_q, num_g = (order if order is not None else np.asarray(distmat)).shape
    max_rank = min(max_rank, num_g)
    aps = np.full(num_q, np.nan)
    first_hit = np.full(num_q, np.iinfo(np.int64).max)  # 1-based position of first match
    for s in range(0, num_q, chunk):
        e = min(s + chunk, num_q)
        idx = order[s:e] if order is not None else np.argsort(np.asarray(distmat[s:e]), axis=1)
        gp, gc = g_pids[idx], g_camids[idx]
        keep = ~((gp == q_pids[s:e, None]) & (gc == q_camids[s:e, None])) & (gp != -1)
        hits = (gp == rel_pids[s:e, None]) & keep
        pos = np.cumsum(keep, axis=1)  # rank among kept items
        n_rel = hits.sum(1)
        hit_cum = np.cumsum(hits, axis=1)
        prec = np.where(hits, hit_cum / np.maximum(pos, 1), 0.0)
        valid = n_rel > 0
        aps[s:e][valid] = prec[valid].sum(1) / n_rel[valid]
        fh = np.where(hits, pos, np.iinfo(np.int64).max).min(1)
        first_hit[s:e] = fh
    valid = ~np.isnan(aps)
    n_valid = int(valid.sum())
    ks = np.arange(1, max_rank + 1)
    cmc = (first_hit[valid, None] <= ks[None, :]).mean(0) if n_valid else np.zeros(max_rank)
    mean_ap = float(np.nanmean(aps)) if n_valid else float("nan")
    return RankResult(mean_ap, cmc.astype(np.float64), aps, valid & (first_hit == 1), n_valid)


def map_floor(q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike, g_camids: ArrayLike,
              target_pids: ArrayLike | None = None) -> float:
    """The lowest mAP any ranking can score: every correct match ranked after every wrong one.

    Under the same rules as :func:`evaluate_rank` (same-pid-same-camera and junk removed,
    queries without a match skipped), a query with ``m`` correct matches among ``n`` ranked
    gallery items has at least ``AP = (1/m) * sum_{k=1..m} k / (n - m + k)``, about ``m / 2n``.
    On a small gallery this floor is far from 0: an evasion mAP below it is impossible, so an
    evasion result reads against it, not against 0.

    >>> round(map_floor([1], [1, 2, 1], [0], [1, 1, 1]), 4)  # matches at ranks 2 and 3
    0.5833
    >>> round(map_floor([1, 1], [1, 2, 3, 1], [0, 0], [1, 1, 1, 1]), 4)
    0.4167
    """
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    rel_pids = q_pids if target_pids is None else np.asarray(target_pids)
    keep = ~((g_pids[None] == q_pids[:, None]) & (g_camids[None] == q_camids[:, None])) & (g_pids[None] != -1)
    m = ((g_pids[None] == rel_pids[:, None]) & keep).sum(1)
    n = keep.sum(1)
    aps = [np.mean(np.arange(1, mi + 1) / (ni - mi + np.arange(1, mi + 1))) for mi, ni in zip(m, n) if mi]
    return float(np.mean(aps)) if aps else float("nan")
