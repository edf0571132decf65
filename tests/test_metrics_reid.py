"""mAP / CMC equal torchreid's evaluate_rank to 1e-6, on random and on real inputs."""

import warnings

import numpy as np
import pytest
import torch

from robustbench_face.metrics.reid import (distance_matrix, evaluate_features, evaluate_rank, faiss_rank,
                                           map_floor, topk_cmc)

from conftest import needs_mars, needs_osnet

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchreid.reid.metrics.rank import evaluate_rank as torchreid_rank


def _random_case(seed, q=40, g=300, ids=15, cams=6):
    rng = np.random.default_rng(seed)
    return (rng.random((q, g)), rng.integers(1, ids, q), rng.integers(1, ids, g),
            rng.integers(0, cams, q), rng.integers(0, cams, g))


@pytest.mark.parametrize("seed", range(5))
def test_equals_torchreid_on_random(seed):
    d, qp, gp, qc, gc = _random_case(seed)
    cmc, m = torchreid_rank(d, qp, gp, qc, gc, max_rank=50, use_cython=False)
    r = evaluate_rank(d, qp, gp, qc, gc, max_rank=50)
    assert abs(r.map - m) < 1e-6
    np.testing.assert_allclose(r.cmc, cmc, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_map_floor_is_torchreid_map_of_the_worst_ranking(seed):
    _, qp, gp, qc, gc = _random_case(seed)
    worst = (gp[None] == qp[:, None]).astype(float)  # every correct match ranked last
    _, m = torchreid_rank(worst, qp, gp, qc, gc, max_rank=50, use_cython=False)
    assert map_floor(qp, gp, qc, gc) == pytest.approx(m, abs=1e-9)
    gp[:5] = -1  # junk (torchreid has no junk rule): against our own evaluate_rank
    worst = (gp[None] == qp[:, None]).astype(float)
    assert map_floor(qp, gp, qc, gc) == pytest.approx(evaluate_rank(worst, qp, gp, qc, gc).map, abs=1e-9)
    assert map_floor(qp, gp, qc, gc) <= evaluate_rank(np.random.default_rng(seed).random(worst.shape),
                                                      qp, gp, qc, gc).map


def test_junk_is_ignored_and_distractors_kept():
    d = np.array([[0.1, 0.2, 0.3, 0.4]])
    # junk (-1) ranked first is dropped; distractor (0) ranked before the match counts against it
    r = evaluate_rank(d, [5], [-1, 0, 5, 7], [1], [2, 2, 2, 2])
    assert r.map == pytest.approx(0.5) and r.cmc[0] == 0 and r.cmc[1] == 1


def test_same_camera_same_identity_removed():
    d = np.array([[0.1, 0.2]])
    r = evaluate_rank(d, [5], [5, 5], [1], [1, 2])
    assert r.map == 1.0 and r.rank1 == 1.0


def test_impersonation_target_relevance():
    d = np.array([[0.1, 0.2, 0.3]])
    r = evaluate_rank(d, [1], [2, 1, 3], [0], [1, 1, 1], target_pids=[2])
    assert r.rank1 == 1.0 and r.map == 1.0


def _feature_case(seed, q=30, g=400, ids=12, cams=4, junk=20):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(ids, 16))
    qp, gp = rng.integers(0, ids, q), rng.integers(0, ids, g)
    qf = centers[qp] + rng.normal(scale=0.8, size=(q, 16))
    gf = centers[gp] + rng.normal(scale=0.8, size=(g, 16))
    gp[:junk] = -1
    return qf, gf, qp, gp, rng.integers(0, cams, q), rng.integers(0, cams, g)


@pytest.mark.parametrize("seed", range(3))
def test_counting_path_equals_a_stable_sort(seed):
    qf, gf, qp, gp, qc, gc = _feature_case(seed)
    d = distance_matrix(qf, gf)
    d[0, :50] = d[0, 60]  # a block of exact ties, ranked by gallery index
    target = np.roll(qp, 1)
    for tp in (None, target):
        fast = evaluate_rank(d, qp, gp, qc, gc, target_pids=tp)
        ref = evaluate_rank(None, qp, gp, qc, gc, target_pids=tp, order=np.argsort(d, 1, kind="stable"))
        np.testing.assert_allclose(fast.ap, ref.ap, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(fast.cmc, ref.cmc)
        assert fast.n_valid == ref.n_valid and (fast.rank1_hit == ref.rank1_hit).all()


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_features_path_equals_the_distance_matrix_path(metric):
    qf, gf, qp, gp, qc, gc = _feature_case(7)
    ref = evaluate_rank(distance_matrix(qf, gf, metric), qp, gp, qc, gc)
    # a tiny memory budget forces one query row per chunk
    got = evaluate_features(qf, gf, qp, gp, qc, gc, metric=metric, memory_mb=1e-3)
    assert abs(got.map - ref.map) < 1e-6 and np.abs(got.cmc - ref.cmc).max() < 1e-6


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_topk_cmc_equals_the_full_ranking(metric):
    qf, gf, qp, gp, qc, gc = _feature_case(3)
    ref = evaluate_rank(distance_matrix(qf, gf, metric), qp, gp, qc, gc, max_rank=20)
    got = topk_cmc(qf, gf, qp, gp, qc, gc, metric=metric, max_rank=20)
    np.testing.assert_allclose(got.cmc, ref.cmc, atol=1e-12)
    assert got.n_valid == ref.n_valid and (got.rank1_hit == ref.rank1_hit).all()


def test_faiss_order_matches_numpy_distances():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(30, 32)), rng.normal(size=(500, 32))
    for metric in ("cosine", "euclidean"):
        order = faiss_rank(q, g, metric)
        d = np.take_along_axis(distance_matrix(q, g, metric), order, 1)
        assert (np.diff(d, axis=1) > -1e-5).all()  # sorted, up to float32 near-ties
        assert (np.sort(order, 1) == np.arange(500)).all()  # a permutation of the gallery


@needs_osnet
@needs_mars
def test_equals_torchreid_on_real_mini_market():
    import robustbench_face as rbf

    ds = rbf.load_dataset("mini_market1501")
    v = rbf.create_victim("osnet_x0_25.market1501")
    q, g = ds.split("query"), ds.split("gallery")
    with torch.no_grad():
        fq, fg = v(ds.load(q)).numpy(), v(ds.load(g)).numpy()
    args = (distance_matrix(fq, fg), np.array([s.pid for s in q]), np.array([s.pid for s in g]),
            np.array([s.camid for s in q]), np.array([s.camid for s in g]))
    cmc, m = torchreid_rank(*args, max_rank=10, use_cython=False)
    r = evaluate_rank(*args, max_rank=10)
    assert abs(r.map - m) < 1e-6 and np.abs(r.cmc - cmc).max() < 1e-6
    assert r.map > 0.5  # real weights on real people: far above chance
