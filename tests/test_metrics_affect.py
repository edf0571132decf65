"""Affect metrics cross-checked against scikit-learn and a direct numpy CCC on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustbench_face.errors import InputError
from robustbench_face.metrics import affect as M

f1_score = pytest.importorskip("sklearn.metrics").f1_score


def _ccc_numpy(p, t):
    p, t = np.asarray(p, float), np.asarray(t, float)
    cov = np.cov(p, t, bias=True)[0, 1]
    return 2 * cov / (np.var(p) + np.var(t) + (p.mean() - t.mean()) ** 2)


@pytest.mark.parametrize("num_classes", [7, 8])
@pytest.mark.parametrize("seed", range(5))
def test_f1_macro_matches_sklearn(num_classes, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    label = rng.integers(-1, num_classes, n)  # includes invalid -1 and, for small n, unseen classes
    label[0] = 0  # at least one valid label
    pred = rng.integers(0, num_classes, n)
    ok = label != -1
    want_all = f1_score(label[ok], pred[ok], average="macro", labels=list(range(num_classes)), zero_division=0)
    want_present = f1_score(label[ok], pred[ok], average="macro", zero_division=0)
    assert M.f1_macro(pred, label, num_classes) == pytest.approx(want_all)
    assert M.f1_macro(pred, label) == pytest.approx(want_present)
    scores = np.eye(num_classes)[pred] + rng.normal(0, 0.01, (n, num_classes))  # (N, C) scores work too
    assert M.f1_macro(torch.tensor(scores), torch.tensor(label), num_classes) == pytest.approx(want_all)
    assert M.accuracy(pred, label) == pytest.approx((pred[ok] == label[ok]).mean())


@pytest.mark.parametrize("seed", range(5))
def test_ccc_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, (50, 2))
    p = 0.6 * t + rng.normal(0.1, 0.3, (50, 2))
    t_bad = t.copy()
    t_bad[rng.random(50) < 0.2, 0] = -5  # invalid valence on ~20% of frames
    ok = t_bad[:, 0] != -5
    got = M.va_ccc(p, t_bad)
    assert got["ccc_valence"] == pytest.approx(_ccc_numpy(p[ok, 0], t[ok, 0]))
    assert got["ccc_arousal"] == pytest.approx(_ccc_numpy(p[:, 1], t[:, 1]))
    assert got["ccc_mean"] == pytest.approx((got["ccc_valence"] + got["ccc_arousal"]) / 2)
    drop = M.ccc_drop(t, p, t)
    assert drop["ccc_valence_drop"] == pytest.approx(1 - _ccc_numpy(p[:, 0], t[:, 0]))


@pytest.mark.parametrize("seed", range(5))
def test_au_f1_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, k = 40, 12
    target = rng.integers(-1, 2, (n, k))
    prob = rng.random((n, k))
    want = []
    for j in range(k):
        ok = target[:, j] != -1
        want.append(f1_score(target[ok, j], prob[ok, j] >= 0.5, zero_division=0))
    assert M.au_f1(prob, target) == pytest.approx(np.mean(want))
    assert M.au_f1_drop(prob, prob, target) == 0.0


def test_invalid_only_and_shapes():
    assert math.isnan(M.accuracy([1, 2], [-1, -1]))
    assert math.isnan(M.f1_macro([1, 2], [-1, -1], 7))
    assert math.isnan(M.ccc([0.1, 0.2], [-5, -5]))
    with pytest.raises(InputError):
        M.va_ccc(np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(InputError):
        M.quadrant_shift(np.zeros((2, 2)), np.zeros((2, 2)), "north")
    with pytest.raises(InputError):
        M.accuracy([1, 2, 3], [1, 2])


def test_attack_metrics():
    clean, adv = np.array([0, 1, 2, 3, 4]), np.array([0, 6, 6, 3, 6])
    assert M.flip_rate(clean, adv) == 0.6
    assert M.targeted_success_rate(adv, 6) == 0.6
    assert M.targeted_success_rate(adv, np.array([0, 6, 1, 1, 6]), pred_clean=clean) == pytest.approx(2 / 4)
    va = np.zeros((4, 2))
    for q, signs in [("q1", (1, 1)), ("q2", (-1, 1)), ("q3", (-1, -1)), ("q4", (1, -1))]:
        moved = va + 0.1 * np.array(signs)
        assert M.quadrant_shift(va, moved, q) == pytest.approx(0.1 * math.sqrt(2))
        assert M.quadrant_shift(moved, va, q) == pytest.approx(-0.1 * math.sqrt(2))
    assert M.quadrant_shift(va, va + [0.3, -0.3], "q1") == pytest.approx(0.0)
    p_clean = np.array([[0.1, 0.9], [0.6, 0.8], [0.2, 0.1]])
    p_adv = np.array([[0.7, 0.2], [0.9, 0.1], [0.4, 0.3]])
    assert M.au_forced_rate(p_clean, p_adv, au=0) == 0.5  # 2 were off, 1 forced on
    assert M.au_forced_rate(p_clean, p_adv, au=1, on=False) == 1.0
    assert math.isnan(M.au_forced_rate(p_clean[:2], p_clean[:2], au=1))
