"""Face verification and identification metrics (pure functions over score arrays).

Conventions, used by every function here:

* a **score** is a similarity (higher = more alike, e.g. cosine of L2-normalised embeddings);
* a pair is **accepted** as "same person" when ``score > threshold`` (strictly greater). A
  score equal to the threshold is rejected. With this rule the threshold for a target FAR is
  always an observed impostor score, so ties among impostors can never push the achieved FAR
  above the target;
* **dodging** succeeds when an attacked genuine pair is rejected (``score <= threshold``),
  **impersonation** when an attacked impostor pair is accepted (``score > threshold``).

Thresholds must be calibrated on clean (unattacked) pairs, then applied to attacked scores.
Protocols: LFW's 10-fold "View 2" accuracy (G. B. Huang et al., "Labeled Faces in the Wild",
UMass TR 07-49, 2007) and TAR@FAR as in the IJB benchmarks (B. Maze et al., ICB 2018).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import InputError


class InsufficientPairsWarning(UserWarning):
    """Too few impostor pairs to resolve the requested false-accept rate."""


class TarAtFar(NamedTuple):
    tar: float
    threshold: float
    achieved_far: float

    @property
    def resolved(self) -> bool:
        """False when there were too few impostors for the FAR (all fields are then NaN)."""
        return not math.isnan(self.tar)


class Rate(NamedTuple):
    rate: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class KFoldResult:
    mean: float
    std: float  # population std over folds (ddof=0), as the usual LFW evaluation scripts report
    accuracies: np.ndarray  # (folds,) held-out accuracy of each fold
    thresholds: np.ndarray  # (folds,) threshold picked on the other folds


@dataclass(frozen=True)
class IdentificationResult:
    rank1: float
    mAP: float
    n_queries: int  # queries scored
    n_skipped: int  # queries without any true match in the gallery (not scored)


def _array(x: Any, name: str, ndim: int = 1) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; keep torch out of this module's imports
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if a.shape[0] == 0:
        raise InputError(f"{name} is empty")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains non-finite values (NaN or inf)")
    return a


def _check_threshold(threshold: float) -> float:
    if not np.isfinite(threshold) and threshold != -np.inf:
        raise InputError(f"threshold must be a number or -inf, got {threshold!r} "
                         "(a NaN threshold means the FAR could not be resolved)")
    return float(threshold)


def roc_threshold_at_far(genuine_scores: Any, impostor_scores: Any, far: float) -> float:
    """The lowest threshold whose false-accept rate (accept ``score > t``) is at most ``far``.

    With ``n`` impostor scores, at most ``k = floor(far * n)`` may be accepted, so the
    threshold is the (k+1)-th largest impostor score (``-inf`` when ``far >= 1``). Ties are
    safe: every impostor equal to the threshold is rejected. Any lower threshold would accept
    more than ``k`` impostors, so this threshold maximises TAR. ``genuine_scores`` are only
    validated (the threshold depends on impostors alone); pass ``None`` to skip them.

    When ``far * n < 1`` the FAR cannot be measured (one false accept is already more than
    ``far``): an :class:`InsufficientPairsWarning` is issued and NaN is returned.

    >>> roc_threshold_at_far([0.9, 0.8], [0.1, 0.5, 0.3, 0.5], far=0.25)
    0.5
    >>> roc_threshold_at_far(None, [0.1, 0.2, 0.3, 0.4], far=0.5)
    0.2
    >>> import warnings; warnings.simplefilter("ignore", InsufficientPairsWarning)
    >>> roc_threshold_at_far(None, [0.1, 0.2], far=0.1)
    nan
    """
    if genuine_scores is not None:
        _array(genuine_scores, "genuine_scores")
    imp = _array(impostor_scores, "impostor_scores")
    if not 0.0 < far <= 1.0:
        raise InputError(f"far must be in (0, 1], got {far}")
    n = imp.size
    if far * n < 1.0 - 1e-9:
        warnings.warn(
            f"FAR {far:g} cannot be resolved with {n} impostor pairs (needs at least "
            f"{math.ceil(1.0 / far - 1e-9)}); returning NaN", InsufficientPairsWarning, stacklevel=2)
        return float("nan")
    k = int(math.floor(far * n + 1e-9))  # the epsilon keeps e.g. 0.1 * 30 from rounding to 2
    if k >= n:
        return float("-inf")
    return float(np.sort(imp)[::-1][k])


def tar_at_far(genuine_scores: Any, impostor_scores: Any, far: float) -> TarAtFar:
    """True-accept rate at a false-accept rate: ``(tar, threshold, achieved_far)``.

    The threshold is :func:`roc_threshold_at_far`'s; ``achieved_far <= far`` is the FAR the
    impostors actually reach at it. This equals the largest TPR among scikit-learn
    ``roc_curve`` points with ``fpr <= far``. Too few impostors for ``far`` gives NaN in all
    three fields (``.resolved`` is False) and an :class:`InsufficientPairsWarning`.

    >>> tar_at_far([0.9, 0.6, 0.4, 0.2], [0.1, 0.5, 0.3, 0.5], far=0.5)
    TarAtFar(tar=0.75, threshold=0.3, achieved_far=0.5)
    >>> r = tar_at_far([0.9, 0.6, 0.4, 0.2], [0.1, 0.5, 0.3, 0.5], far=0.25)  # tied impostors
    >>> r
    TarAtFar(tar=0.5, threshold=0.5, achieved_far=0.0)
    >>> r.resolved
    True
    """
    gen = _array(genuine_scores, "genuine_scores")
    imp = _array(impostor_scores, "impostor_scores")
    thr = roc_threshold_at_far(None, imp, far)
    if math.isnan(thr):
        return TarAtFar(float("nan"), float("nan"), float("nan"))
    return TarAtFar(float(np.mean(gen > thr)), thr, float(np.mean(imp > thr)))


def _best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold with the best accuracy on (scores, same); ties go to the lowest threshold.

    Candidates are "accept all" and every unique score ``u`` (accept ``> u``); the returned
    value is the midpoint between the chosen ``u`` and the next larger score, which has the
    same accuracy on these scores but sits between the classes rather than on one of them.
    """
    u, inv = np.unique(scores, return_inverse=True)
    n_same_le = np.cumsum(np.bincount(inv, weights=same, minlength=u.size))
    n_diff_le = np.cumsum(np.bincount(inv, weights=~same, minlength=u.size))
    correct = n_diff_le + (same.sum() - n_same_le)  # diff rejected + same accepted, at t = u
    correct = np.concatenate([[same.sum()], correct])  # index 0: accept everything
    i = int(np.argmax(correct))
    if i == 0:
        return float(np.nextafter(u[0], -np.inf))
    return float((u[i - 1] + u[i]) / 2) if i < u.size else float(u[-1])


def kfold_accuracy(scores: Any, is_same: Any, folds: int = 10, seed: int | None = None,
                   fold_ids: Any = None) -> KFoldResult:
    """LFW's 10-fold verification accuracy: threshold fit on 9 folds, scored on the 10th.

    Folds: ``fold_ids`` if given (e.g. ``[p.fold for p in pairs]``); else, with
    ``seed=None``, ``folds`` consecutive blocks in the given order (``np.array_split``) --
    which for scores listed in LFW ``pairs.txt`` order are exactly the file's own 10 sets
    of 300 same + 300 different pairs; else a shuffle with ``numpy.random.default_rng(seed)``
    before the split. For each fold the best-accuracy threshold on the other folds (see
    ``_best_threshold``: midpoint, lowest on ties; accept ``score > t``) is applied to it.

    >>> s = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.65]
    >>> y = [1, 0, 1, 0, 1, 0, 1, 0]
    >>> r = kfold_accuracy(s, y, folds=4)
    >>> r.accuracies.tolist(), r.thresholds.round(3).tolist()
    ([1.0, 1.0, 1.0, 0.5], [0.45, 0.45, 0.4, 0.5])
    >>> round(r.mean, 3), round(r.std, 3)
    (0.875, 0.217)
    """
    s = _array(scores, "scores")
    y = np.asarray(is_same)
    if y.shape != s.shape:
        raise InputError(f"is_same has shape {y.shape}, scores {s.shape}")
    y = y.astype(bool)
    if fold_ids is not None:
        f = np.asarray(fold_ids)
        if f.shape != s.shape:
            raise InputError(f"fold_ids has shape {f.shape}, scores {s.shape}")
        labels = np.unique(f)
    else:
        if not 2 <= folds <= s.size:
            raise InputError(f"folds must be in [2, {s.size}] for {s.size} pairs, got {folds}")
        order = np.arange(s.size) if seed is None else np.random.default_rng(seed).permutation(s.size)
        f = np.empty(s.size, dtype=np.int64)
        for k, block in enumerate(np.array_split(order, folds)):
            f[block] = k
        labels = np.arange(folds)
    if labels.size < 2:
        raise InputError("kfold_accuracy needs at least 2 folds")
    accs, thrs = [], []
    for k in labels:
        test = f == k
        t = _best_threshold(s[~test], y[~test])
        accs.append(float(np.mean((s[test] > t) == y[test])))
        thrs.append(t)
    a = np.asarray(accs)
    return KFoldResult(float(a.mean()), float(a.std()), a, np.asarray(thrs))


def bootstrap_ci(successes: Any, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile-bootstrap ``1 - alpha`` confidence interval of the mean of ``successes``.

    ``n_boot`` resamples of the same size, drawn with replacement by
    ``numpy.random.default_rng(seed)``; the interval is the ``alpha/2`` and ``1 - alpha/2``
    quantiles of the resampled means. Same inputs and seed give the same interval.

    >>> lo, hi = bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], seed=0)
    >>> bool(lo <= 0.7 <= hi), bool(0.3 < lo < hi <= 1.0)
    (True, True)
    >>> bootstrap_ci([1, 1, 1])
    (1.0, 1.0)
    """
    x = _array(successes, "successes")
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise InputError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // x.size)  # bound memory: about 2M indices per chunk
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _rate(success: np.ndarray, n_boot: int, seed: int, alpha: float) -> Rate:
    lo, hi = bootstrap_ci(success.astype(np.float64), n_boot=n_boot, seed=seed, alpha=alpha)
    return Rate(float(success.mean()), lo, hi, int(success.size))


def dodging_success(adv_scores_of_genuine_pairs: Any, threshold: float, *, n_boot: int = 1000,
                    seed: int = 0, alpha: float = 0.05) -> Rate:
    """Share of attacked genuine pairs now rejected (``score <= threshold``), with a bootstrap CI.

    >>> dodging_success([0.1, 0.5, 0.6, 0.9], threshold=0.5)[:2]
    (0.5, 0.0)
    """
    s = _array(adv_scores_of_genuine_pairs, "adv_scores_of_genuine_pairs")
    return _rate(s <= _check_threshold(threshold), n_boot, seed, alpha)


def impersonation_success(adv_scores_of_impostor_pairs: Any, threshold: float, *,
                          n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> Rate:
    """Share of attacked impostor pairs now accepted (``score > threshold``), with a bootstrap CI.

    >>> r = impersonation_success([0.1, 0.5, 0.6, 0.9], threshold=0.5)
    >>> r.rate, r.n
    (0.5, 4)
    """
    s = _array(adv_scores_of_impostor_pairs, "adv_scores_of_impostor_pairs")
    return _rate(s > _check_threshold(threshold), n_boot, seed, alpha)


def _unit(x: np.ndarray, name: str) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if (norm == 0).any():
        raise InputError(f"{name} has an all-zero embedding (cosine similarity undefined)")
    return x / norm


def identification(query_emb: Any, query_ids: Any, gallery_emb: Any,
                   gallery_ids: Any) -> IdentificationResult:
    """Closed-set identification: rank-1 accuracy and mAP by cosine similarity.

    Every gallery image is ranked for every query (faces have no cameras, so nothing is
    excluded: pass a gallery that does not contain the query images themselves). Equal
    similarities keep gallery order (stable sort). Queries whose identity is absent from the
    gallery are skipped and counted in ``n_skipped``; AP is the mean of precision@k over the
    ranks k of the query's true matches.

    >>> g = [[1, 0], [0, 1], [0.6, 0.8]]  # identities 0, 1, 1
    >>> r = identification([[1, 0.1], [0.8, 0.6], [1, 1]], [0, 1, 7], g, [0, 1, 1])
    >>> r.rank1, round(r.mAP, 4), r.n_queries, r.n_skipped  # 2nd query: AP = (1/1 + 2/3) / 2
    (1.0, 0.9167, 2, 1)
    """
    q = _unit(_array(query_emb, "query_emb", ndim=2), "query_emb")
    g = _unit(_array(gallery_emb, "gallery_emb", ndim=2), "gallery_emb")
    qid, gid = np.asarray(query_ids), np.asarray(gallery_ids)
    if qid.shape != (q.shape[0],) or gid.shape != (g.shape[0],) or q.shape[1] != g.shape[1]:
        raise InputError(f"shape mismatch: query_emb {q.shape}, query_ids {qid.shape}, "
                         f"gallery_emb {g.shape}, gallery_ids {gid.shape}")
    order = np.argsort(-(q @ g.T), axis=1, kind="stable")
    match = gid[order] == qid[:, None]  # (Q, G): true matches in ranked order
    has = match.any(axis=1)
    if not has.any():
        raise InputError("no query identity appears in the gallery; nothing to score")
    m = match[has]
    hits = np.cumsum(m, axis=1)
    precision = hits / np.arange(1, m.shape[1] + 1)
    ap = (precision * m).sum(axis=1) / m.sum(axis=1)
    return IdentificationResult(float(m[:, 0].mean()), float(ap.mean()), int(has.sum()),
                                int((~has).sum()))
