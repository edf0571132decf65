"""Re-ID retrieval metrics under the Market-1501 protocol: mAP and CMC.

Protocol (Zheng et al., ICCV 2015, as implemented by torchreid's ``evaluate_rank``):

* for each query, gallery images with the query's pid **and** camera are removed from its
  ranking (they are "too easy": the same person seen by the same camera);
* junk gallery images (pid -1) are removed from every ranking; distractors (pid 0) stay and
  count as wrong matches;
* a query with no correct match left in the gallery is skipped (not counted as a miss);
* AP is the mean of precision at each correct match; CMC-k is the fraction of valid queries
  with a correct match in their first k.

No gallery is sorted: a query's AP and CMC only need the rank of each of its few correct
matches, and an item ranks before the k-th closest match exactly when it is closer, so one
pass over the row counts them (:func:`evaluate_rank`). Exact ties are ranked by gallery index
(a stable sort of that row), which torchreid leaves to ``np.argsort``'s unstable order; without
ties the results equal torchreid's to float precision (``tests/test_metrics_reid.py``, on random
and real inputs). :func:`evaluate_features` streams distances from features in bounded memory
and :func:`topk_cmc` ranks a million-image gallery with faiss when only CMC is needed;
``benchmarks/retrieval.py`` times all three against torchreid's Python and Cython evaluators.
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
    then not needed and may be None. Exact distance ties rank by gallery index (a stable sort).

    >>> d = np.array([[0.1, 0.2, 0.3]])
    >>> r = evaluate_rank(d, [1], [1, 2, 1], [0], [1, 1, 1])
    >>> round(r.map, 4), r.cmc[:3].tolist()
    (0.8333, [1.0, 1.0, 1.0])
    >>> evaluate_rank(d, [1], [1, 2, 1], [1], [1, 1, 1]).n_valid  # all matches share the camera
    0
    """
    if distmat is None and order is None:
        raise ValueError("evaluate_rank needs distmat or order")
    labels = _Labels(q_pids, g_pids, q_camids, g_camids, target_pids)
    num_q, num_g = (order if order is not None else np.asarray(distmat)).shape
    if order is not None:
        first_hit, aps = _from_order(order, labels, chunk)
    else:
        first_hit, aps = _from_rows(((s, np.asarray(distmat[s:s + chunk])) for s in range(0, num_q, chunk)),
                                    labels)
    return _summary(first_hit, aps, min(max_rank, num_g))


def evaluate_features(
    q_feats: ArrayLike,
    g_feats: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    metric: str = "cosine",
    max_rank: int = 50,
    target_pids: ArrayLike | None = None,
    memory_mb: float = 256.0,
) -> RankResult:
    """:func:`evaluate_rank` straight from features, never holding the query x gallery matrix.

    Distances are :func:`distance_matrix`'s (float64), ``memory_mb``
    worth of query rows at a time and the gallery cast ``_BLOCK`` rows at a time, so memory beyond
    the features themselves stays bounded at a million-image gallery, and the ranking is the
    matrix path's (float32 distances reorder near-ties and move mAP by ~1e-6).

    >>> g = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    >>> r = evaluate_features(np.array([[1.0, 0.0]]), g, [1], [1, 2, 1], [0], [1, 1, 1])
    >>> round(r.map, 4), r.rank1
    (1.0, 1.0)
    """
    labels = _Labels(q_pids, g_pids, q_camids, g_camids, target_pids)
    q = np.asarray(q_feats, dtype=np.float64)
    g = np.asarray(g_feats)  # kept in its own dtype: a float32 gallery is never copied whole
    rows = max(1, int(memory_mb * 2**20 // (8 * g.shape[0])))

    def chunks():
        for s in range(0, q.shape[0], rows):
            dist = np.empty((min(rows, q.shape[0] - s), g.shape[0]))
            for b in range(0, g.shape[0], _BLOCK):
                dist[:, b:b + _BLOCK] = distance_matrix(q[s:s + rows], g[b:b + _BLOCK], metric)
            yield s, dist

    first_hit, aps = _from_rows(chunks(), labels)
    return _summary(first_hit, aps, min(max_rank, g.shape[0]))


@dataclass(frozen=True)
class TopkResult:
    cmc: np.ndarray  # cmc[k-1] = CMC rank-k
    rank1_hit: np.ndarray  # per-query bool
    n_valid: int

    @property
    def rank1(self) -> float:
        return float(self.cmc[0])


def topk_cmc(
    q_feats: ArrayLike,
    g_feats: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    metric: str = "cosine",
    max_rank: int = 50,
    target_pids: ArrayLike | None = None,
) -> TopkResult:
    """CMC alone (no mAP) from faiss's exact top-k, for galleries where only ranks are needed.

    Each query asks faiss for ``max_rank`` plus as many neighbours as it can lose to the
    same-pid-same-camera rule, so the first ``max_rank`` kept items are exact; memory is the
    features plus ``queries x k``. Exact ties may be ordered differently than by gallery index.

    >>> g = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    >>> topk_cmc(np.array([[0.0, 1.0]]), g, [1], [1, 2, 1], [0], [1, 1, 1], max_rank=3).cmc.tolist()
    [0.0, 1.0, 1.0]
    """
    import faiss

    labels = _Labels(q_pids, g_pids, q_camids, g_camids, target_pids)
    real = np.flatnonzero(labels.g_pids != -1)  # junk never ranks: leave it out of the index
    g = _prepared(g_feats, metric)
    g = g[real] if real.size < g.shape[0] else g
    q = _prepared(q_feats, metric)
    per_q = [labels.of_query(i) for i in range(len(labels.q_pids))]
    lost = max((r.size - labels._junk.size for _, r in per_q), default=0)
    k = min(max_rank + lost, g.shape[0])
    index = faiss.IndexFlatIP(g.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(g.shape[1])
    index.add(np.ascontiguousarray(g))
    _, found = index.search(np.ascontiguousarray(q), k)
    max_rank = min(max_rank, g.shape[0])
    first = np.full(len(per_q), np.iinfo(np.int64).max)
    valid = np.array([rel.size > 0 for rel, _ in per_q], dtype=bool)
    for i, (rel, removed) in enumerate(per_q):
        ranked = real[found[i]]
        ranked = ranked[~np.isin(ranked, removed)][:max_rank]
        hit = np.flatnonzero(np.isin(ranked, rel))
        if hit.size:
            first[i] = hit[0] + 1
    ks = np.arange(1, max_rank + 1)
    n_valid = int(valid.sum())
    cmc = (first[valid, None] <= ks[None, :]).mean(0) if n_valid else np.zeros(max_rank)
    return TopkResult(cmc.astype(np.float64), valid & (first == 1), n_valid)


_BLOCK = 65536  # gallery rows cast to float64 at a time by evaluate_features


def _prepared(feats: ArrayLike, metric: str) -> np.ndarray:
    """float32 rows for faiss, L2-normalised for the cosine metric."""
    x = np.asarray(feats, dtype=np.float32)
    if metric == "cosine":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if metric == "euclidean":
        return x
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


class _Labels:
    """Query and gallery labels, with the gallery indexed by pid for per-query lookups."""

    def __init__(self, q_pids, g_pids, q_camids, g_camids, target_pids=None):
        self.q_pids, self.g_pids = np.asarray(q_pids), np.asarray(g_pids)
        self.q_camids, self.g_camids = np.asarray(q_camids), np.asarray(g_camids)
        self.rel_pids = self.q_pids if target_pids is None else np.asarray(target_pids)
        by_pid = np.argsort(self.g_pids, kind="stable")
        pids, starts = np.unique(self.g_pids[by_pid], return_index=True)
        ends = np.r_[starts[1:], len(by_pid)]
        self._index = {p: by_pid[s:e] for p, s, e in zip(pids.tolist(), starts, ends)}
        self._junk = self._index.get(-1, np.zeros(0, dtype=np.int64))
        self._none = np.zeros(0, dtype=np.int64)

    def of_query(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(relevant gallery indices, removed gallery indices) of query ``i``, disjoint."""
        qp, qc, rp = self.q_pids[i].item(), self.q_camids[i], self.rel_pids[i].item()
        rel = self._index.get(rp, self._none) if rp != -1 else self._none  # junk is never a match
        rel = rel[~((self.g_pids[rel] == qp) & (self.g_camids[rel] == qc))]
        if qp == -1:
            return rel, self._junk
        own = self._index.get(qp, self._none)
        removed = own[self.g_camids[own] == qc]
        return rel, np.concatenate([removed, self._junk]) if self._junk.size else removed


def _positions(d: np.ndarray, rel: np.ndarray, removed: np.ndarray) -> np.ndarray | None:
    """1-based ranks, in increasing order, of the relevant items among the kept ones.

    One pass over the row (no sort of the gallery): a kept item ranks before the k-th closest
    relevant item exactly when its distance is smaller. None when a tie makes the order a
    matter of tie-breaking; the caller then sorts that row.
    """
    t = np.sort(d[rel])
    if t.size > 1 and np.any(t[1:] == t[:-1]):
        return None
    right = np.searchsorted(t, d, side="right")
    if np.count_nonzero(right != np.searchsorted(t, d, side="left")) != t.size:
        return None
    below = np.cumsum(np.bincount(right, minlength=t.size + 1))[: t.size]
    if removed.size:
        below = below - np.searchsorted(np.sort(d[removed]), t, side="left")
    return below + 1


def _from_rows(chunks, labels: _Labels) -> tuple[np.ndarray, np.ndarray]:
    num_q = len(labels.q_pids)
    aps = np.full(num_q, np.nan)
    first_hit = np.full(num_q, np.iinfo(np.int64).max)
    for s, rows in chunks:
        for j, d in enumerate(rows):
            i = s + j
            rel, removed = labels.of_query(i)
            if not rel.size:
                continue
            pos = _positions(d, rel, removed)
            if pos is None:  # a tie: rank this row by a stable sort
                fh, ap = _from_order(np.argsort(d, kind="stable")[None], labels, 1, start=i)
                first_hit[i], aps[i] = fh[0], ap[0]
                continue
            aps[i] = float(np.mean(np.arange(1, pos.size + 1) / pos))
            first_hit[i] = pos[0]
    return first_hit, aps


def _from_order(order: np.ndarray, labels: _Labels, chunk: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-query first-hit rank and AP from a full ranking of the gallery (rows of ``order``)."""
    q_pids, q_camids, rel_pids = labels.q_pids, labels.q_camids, labels.rel_pids
    num_q = order.shape[0]
    aps = np.full(num_q, np.nan)
    first_hit = np.full(num_q, np.iinfo(np.int64).max)
    for s in range(0, num_q, chunk):
        e = min(s + chunk, num_q)
        idx = order[s:e]
        a, b = start + s, start + e
        gp, gc = labels.g_pids[idx], labels.g_camids[idx]
        keep = ~((gp == q_pids[a:b, None]) & (gc == q_camids[a:b, None])) & (gp != -1)
        hits = (gp == rel_pids[a:b, None]) & keep
        pos = np.cumsum(keep, axis=1)  # rank among kept items
        n_rel = hits.sum(1)
        prec = np.where(hits, np.cumsum(hits, axis=1) / np.maximum(pos, 1), 0.0)
        valid = n_rel > 0
        aps[s:e][valid] = prec[valid].sum(1) / n_rel[valid]
        first_hit[s:e] = np.where(hits, pos, np.iinfo(np.int64).max).min(1)
    return first_hit, aps


def _summary(first_hit: np.ndarray, aps: np.ndarray, max_rank: int) -> RankResult:
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
