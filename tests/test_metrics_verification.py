"""Verification metrics checked against scikit-learn and against hand-computed cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from robustbench_face.errors import InputError
from robustbench_face.metrics.verification import (
    InsufficientPairsWarning,
    bootstrap_ci,
    dodging_success,
    identification,
    impersonation_success,
    kfold_accuracy,
    roc_threshold_at_far,
    tar_at_far,
)

sk_metrics = pytest.importorskip("sklearn.metrics")


def _scores(seed: int, n_gen: int, n_imp: int, decimals: int | None):
    rng = np.random.default_rng(seed)
    gen = rng.normal(0.6, 0.15, n_gen)
    imp = rng.normal(0.2, 0.15, n_imp)
    if decimals is not None:  # coarse scores force many ties, across and within classes
        gen, imp = gen.round(decimals), imp.round(decimals)
    return gen, imp


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("decimals", [None, 2, 1])
@pytest.mark.parametrize("far", [1e-3, 1e-2, 0.05, 0.1, 0.5, 1.0])
def test_tar_at_far_matches_sklearn_roc_curve(seed, decimals, far):
    gen, imp = _scores(seed, 700, 3000, decimals)
    y = np.r_[np.ones(gen.size), np.zeros(imp.size)]
    fpr, tpr, _ = sk_metrics.roc_curve(y, np.r_[gen, imp], drop_intermediate=False)
    expected = tpr[fpr <= far + 1e-12].max()
    r = tar_at_far(gen, imp, far)
    assert r.resolved
    assert r.tar == pytest.approx(expected, abs=1e-12)
    assert r.achieved_far <= far + 1e-12
    assert r.achieved_far == pytest.approx(np.mean(imp > r.threshold))
    # minimality: the next lower impostor score would accept too many impostors
    lower = imp[imp < r.threshold]
    if lower.size:
        assert np.mean(imp > lower.max()) > far


def test_threshold_ties_are_rejected():
    # four impostors tied at 0.5: accepting "> 0.5" keeps FAR at 0 even though FAR 0.25 is allowed
    imp = [0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1]
    assert roc_threshold_at_far([0.9], imp, far=0.25) == 0.5
    assert tar_at_far([0.9, 0.5, 0.7], imp, far=0.25).tar == pytest.approx(2 / 3)
    assert roc_threshold_at_far(None, imp, far=1.0) == -math.inf


@pytest.mark.parametrize("far,n_imp", [(1e-4, 2000), (1e-3, 999), (0.1, 5)])
def test_too_few_impostors_gives_nan_and_warns(far, n_imp):
    gen, imp = _scores(0, 100, n_imp, None)
    with pytest.warns(InsufficientPairsWarning, match=f"{n_imp} impostor pairs"):
        r = tar_at_far(gen, imp, far)
    assert not r.resolved and all(math.isnan(v) for v in r)
    with pytest.warns(InsufficientPairsWarning):
        assert math.isnan(roc_threshold_at_far(gen, imp, far))


def test_exactly_enough_impostors_resolves():
    gen, imp = _scores(0, 100, 1000, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = tar_at_far(gen, imp, 1e-3)
    assert r.resolved and r.achieved_far <= 1e-3 and r.threshold == np.sort(imp)[-2]


@pytest.mark.parametrize("bad", [[], [0.1, float("nan")], [[0.1, 0.2]]])
def test_bad_scores_raise(bad):
    with pytest.raises(InputError):
        tar_at_far([0.5], bad, 0.1)


@pytest.mark.parametrize("far", [0.0, -0.1, 1.5])
def test_bad_far_raises(far):
    with pytest.raises(InputError, match="far"):
        roc_threshold_at_far(None, [0.1, 0.2], far)


def test_kfold_hand_computed():
    # 3 folds of 4 pairs (consecutive blocks); accept when score > threshold; the threshold is
    # the midpoint above the lowest best-accuracy training score.
    s = np.array([0.9, 0.4, 0.3, 0.2,   0.8, 0.1, 0.55, 0.6,   0.7, 0.2, 0.9, 0.3])
    y = np.array([1, 1, 0, 0,           1, 0, 1, 0,            1, 0, 1, 0])
    r = kfold_accuracy(s, y, folds=3)
    # fold 0: train same {0.8, 0.55, 0.7, 0.9}, diff {0.1, 0.6, 0.2, 0.3}: "> 0.3" and "> 0.6"
    #   both get 7/8; the lower wins, midpoint to the next score 0.55 -> 0.425;
    #   test: 0.9 ok, 0.4 (same) rejected -> wrong, 0.3 ok, 0.2 ok -> 3/4
    # fold 1: train same {0.9, 0.4, 0.7, 0.9}, diff {0.3, 0.2, 0.2, 0.3} -> "> 0.3", mid 0.35;
    #   test: 0.8 ok, 0.1 ok, 0.55 ok, 0.6 (diff) accepted -> wrong -> 3/4
    # fold 2: train same {0.9, 0.4, 0.8, 0.55}, diff {0.3, 0.2, 0.1, 0.6} -> best 7/8 at
    #   "> 0.3" (mid 0.35): 0.6 wrong; "> 0.6" rejects 0.4 and 0.55 (6/8) -> 0.35;
    #   test: all four right -> 4/4
    np.testing.assert_allclose(r.thresholds, [0.425, 0.35, 0.35])
    np.testing.assert_allclose(r.accuracies, [0.75, 0.75, 1.0])
    assert r.mean == pytest.approx(2.5 / 3)
    assert r.std == pytest.approx(np.std([0.75, 0.75, 1.0]))


def test_kfold_separable_is_perfect_and_folds_agree():
    rng = np.random.default_rng(0)
    s = np.r_[rng.uniform(0.6, 1.0, 300), rng.uniform(-0.2, 0.4, 300)]
    y = np.r_[np.ones(300), np.zeros(300)]
    r = kfold_accuracy(s, y, folds=10, seed=3)
    assert r.mean == 1.0 and r.std == 0.0
    assert np.all((r.thresholds > 0.4) & (r.thresholds < 0.6))


def test_kfold_blocks_fold_ids_and_seed():
    gen, imp = _scores(5, 300, 300, 2)
    # LFW file order: each of 10 sets holds 30 same then 30 different pairs
    s = np.concatenate([np.r_[gen[i::10], imp[i::10]] for i in range(10)])
    y = np.concatenate([np.r_[np.ones(30), np.zeros(30)] for _ in range(10)])
    blocks = kfold_accuracy(s, y, folds=10)
    explicit = kfold_accuracy(s, y, fold_ids=np.repeat(np.arange(10), 60))
    np.testing.assert_array_equal(blocks.accuracies, explicit.accuracies)
    np.testing.assert_array_equal(blocks.thresholds, explicit.thresholds)
    a, b = kfold_accuracy(s, y, seed=7), kfold_accuracy(s, y, seed=7)
    np.testing.assert_array_equal(a.accuracies, b.accuracies)
    assert 0.85 < blocks.mean <= 1.0


def test_kfold_threshold_is_best_on_training_folds():
    gen, imp = _scores(9, 200, 200, 2)
    s, y = np.r_[gen, imp], np.r_[np.ones(200), np.zeros(200)].astype(bool)
    r = kfold_accuracy(s, y, folds=4)
    fold = np.repeat(np.arange(4), 100)
    for k, t in enumerate(r.thresholds):
        tr_s, tr_y = s[fold != k], y[fold != k]
        brute = max(np.mean((tr_s > c) == tr_y) for c in np.r_[-np.inf, np.unique(tr_s)])
        assert np.mean((tr_s > t) == tr_y) == pytest.approx(brute)


@pytest.mark.parametrize("p,n", [(0.05, 40), (0.5, 200), (0.93, 1000), (0.3, 7)])
def test_bootstrap_ci_contains_estimate_and_is_seeded(p, n):
    x = (np.random.default_rng(1).random(n) < p).astype(float)
    lo, hi = bootstrap_ci(x, seed=4)
    assert lo <= x.mean() <= hi
    assert (lo, hi) == bootstrap_ci(x, seed=4)
    assert 0.0 <= lo <= hi <= 1.0
    narrow = bootstrap_ci(x, seed=4, alpha=0.5)
    assert lo <= narrow[0] <= narrow[1] <= hi


def test_bootstrap_ci_width_shrinks_and_constant_data():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.random(50) < 0.5, seed=0)
    large = bootstrap_ci(rng.random(5000) < 0.5, seed=0)
    assert large[1] - large[0] < small[1] - small[0]
    assert bootstrap_ci(np.zeros(30)) == (0.0, 0.0)
    assert bootstrap_ci(np.ones(30), seed=11) == (1.0, 1.0)


def test_dodging_and_impersonation_boundary():
    scores = np.array([0.2, 0.5, 0.5, 0.8])
    d = dodging_success(scores, 0.5)
    i = impersonation_success(scores, 0.5)
    assert d.rate == 0.75 and i.rate == 0.25  # a score equal to the threshold is rejected
    assert d.n == i.n == 4
    assert d.ci_low <= d.rate <= d.ci_high and i.ci_low <= i.rate <= i.ci_high
    assert dodging_success(scores, 0.5) == d  # seeded


def test_success_rejects_nan_threshold():
    with pytest.raises(InputError, match="threshold"):
        dodging_success([0.1, 0.2], float("nan"))
    with pytest.raises(InputError, match="threshold"):
        impersonation_success([0.1, 0.2], float("inf"))


def _brute_identification(q, qid, g, gid):
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    r1, aps = [], []
    for v, i in zip(q, qid):
        if not (gid == i).any():
            continue
        ranked = gid[np.argsort(-(g @ v), kind="stable")]
        r1.append(ranked[0] == i)
        hits = [k + 1 for k, x in enumerate(ranked) if x == i]
        aps.append(np.mean([(n + 1) / k for n, k in enumerate(hits)]))
    return np.mean(r1), np.mean(aps), len(r1)


def test_identification_against_brute_force():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 16))
    gid = np.repeat(np.arange(6), 4)  # identities 6 and 7 are query-only
    g = centers[gid] + rng.normal(scale=1.2, size=(gid.size, 16))
    qid = np.repeat(np.arange(8), 2)
    q = centers[qid] + rng.normal(scale=1.2, size=(qid.size, 16))
    r = identification(q, qid, g, gid)
    rank1, mAP, n = _brute_identification(q, qid, g, gid)
    assert (r.rank1, r.n_queries, r.n_skipped) == (pytest.approx(rank1), n, 4)
    assert r.mAP == pytest.approx(mAP)
    assert 0.0 < r.mAP < 1.0


def test_identification_accepts_tensors_and_rejects_bad_input():
    torch = pytest.importorskip("torch")
    q = torch.eye(3, requires_grad=True)
    r = identification(q, [0, 1, 2], torch.eye(3), [0, 1, 2])
    assert (r.rank1, r.mAP, r.n_skipped) == (1.0, 1.0, 0)
    with pytest.raises(InputError, match="no query identity"):
        identification(np.eye(2), [5, 6], np.eye(2), [0, 1])
    with pytest.raises(InputError, match="shape mismatch"):
        identification(np.eye(2), [0, 1, 2], np.eye(2), [0, 1])
    with pytest.raises(InputError, match="all-zero"):
        identification(np.zeros((1, 2)), [0], np.eye(2), [0, 1])
