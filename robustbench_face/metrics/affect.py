"""Facial-affect metrics: expression, valence/arousal and action units, clean and under attack.

The clean metrics follow the ABAW challenges (D. Kollias et al., "ABAW: Valence-Arousal
Estimation, Expression Recognition, Action Unit Detection & Emotional Reaction Intensity
Estimation Challenges", CVPR-W 2023, and earlier editions): expression = macro F1 over the
classes (8 in ABAW 3+, 7 in FER2013), valence/arousal = Lin's concordance correlation
coefficient (CCC), action units = mean over AUs of the binary F1 at threshold 0.5.

Invalid labels are excluded before scoring, per entry: ``-1`` for expression and AUs,
``-5`` for valence/arousal (ABAW's annotation files use these). A metric over no valid entries
is ``nan``.

All functions are pure: they take numpy arrays or (CPU or GPU) tensors and return floats or
dicts of floats; nothing is modified in place.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError

EXPR_INVALID = -1
AU_INVALID = -1
VA_INVALID = -5.0

# Circumplex quadrants as (valence sign, arousal sign); numbered like the plane's quadrants.
QUADRANTS = {
    "high_valence_high_arousal": (1, 1), "q1": (1, 1),    # happy, excited
    "low_valence_high_arousal": (-1, 1), "q2": (-1, 1),   # angry, afraid
    "low_valence_low_arousal": (-1, -1), "q3": (-1, -1),  # sad, bored
    "high_valence_low_arousal": (1, -1), "q4": (1, -1),   # calm, content
}


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _same_len(*arrays: np.ndarray) -> None:
    if len({len(a) for a in arrays}) > 1:
        raise InputError(f"length mismatch: {[a.shape for a in arrays]}")


def accuracy(pred, label, invalid: int = EXPR_INVALID) -> float:
    """Fraction of valid labels predicted exactly. ``pred`` is (N,) classes or (N, C) scores.

    >>> accuracy([0, 1, 2, 2], [0, 1, 1, -1])
    0.6666666666666666
    """
    pred, label = _labels(pred), _np(label).astype(int)
    _same_len(pred, label)
    ok = label != invalid
    return float((pred[ok] == label[ok]).mean()) if ok.any() else math.nan


def _labels(pred) -> np.ndarray:
    pred = _np(pred)
    return pred.argmax(axis=1) if pred.ndim == 2 else pred.astype(int)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)  # zero_division=0


def f1_macro(pred, label, num_classes: int | None = None, invalid: int = EXPR_INVALID) -> float:
    """Macro F1 over expression classes, invalid labels excluded.

    With ``num_classes`` (ABAW: 8, FER2013: 7) the mean runs over every class ``0..C-1``;
    a class with neither support nor predictions scores 0, exactly as scikit-learn's
    ``f1_score(average="macro", labels=range(C), zero_division=0)``. Without it, over the
    classes present in labels or predictions (scikit-learn's default ``labels=None``).

    >>> f1_macro([0, 1, 1, 2], [0, 1, 2, -1])          # classes 0, 1, 2: F1 1, 2/3, 0
    0.5555555555555555
    >>> f1_macro([0, 1, 1, 2], [0, 1, 2, -1], num_classes=4)
    0.41666666666666663
    """
    pred, label = _labels(pred), _np(label).astype(int)
    _same_len(pred, label)
    ok = label != invalid
    pred, label = pred[ok], label[ok]
    if not ok.any():
        return math.nan
    classes = np.arange(num_classes) if num_classes else np.union1d(label, pred)
    tp = np.array([np.sum((pred == c) & (label == c)) for c in classes])
    fp = np.array([np.sum((pred == c) & (label != c)) for c in classes])
    fn = np.array([np.sum((pred != c) & (label == c)) for c in classes])
    return float(_f1(tp, fp, fn).mean())


def ccc(pred, target, invalid: float = VA_INVALID) -> float:
    """Lin's concordance correlation coefficient, entries with ``target == invalid`` excluded.

    CCC = 2 cov(p, t) / (var p + var t + (mean p - mean t)^2), population (1/N) moments.

    >>> ccc([0.1, 0.5, -0.3], [0.1, 0.5, -0.3])
    1.0
    >>> round(ccc([0.2, 0.6, -0.2, 0.9], [0.1, 0.5, -0.3, -5]), 4)  # a shift of 0.1 costs a bit
    0.9552
    """
    p, t = _np(pred).astype(float).ravel(), _np(target).astype(float).ravel()
    _same_len(p, t)
    ok = t != invalid
    p, t = p[ok], t[ok]
    if len(t) == 0:
        return math.nan
    mp, mt = p.mean(), t.mean()
    cov = ((p - mp) * (t - mt)).mean()
    denom = p.var() + t.var() + (mp - mt) ** 2
    return float(2 * cov / denom) if denom > 0 else math.nan


def va_ccc(pred, target, invalid: float = VA_INVALID) -> dict[str, float]:
    """CCC of valence (column 0) and arousal (column 1) and their mean (ABAW's VA score).

    >>> va_ccc([[0.1, 0.2], [0.5, -0.1], [-0.3, 0.4]], [[0.1, 0.2], [0.5, -0.1], [-0.3, 0.4]])
    {'ccc_valence': 1.0, 'ccc_arousal': 1.0, 'ccc_mean': 1.0}
    """
    p, t = _np(pred), _np(target)
    if p.ndim != 2 or p.shape[1] != 2 or t.shape != p.shape:
        raise InputError(f"valence/arousal must be (N, 2) arrays, got {p.shape} and {t.shape}")
    v, a = ccc(p[:, 0], t[:, 0], invalid), ccc(p[:, 1], t[:, 1], invalid)
    return {"ccc_valence": v, "ccc_arousal": a, "ccc_mean": (v + a) / 2}


def au_f1(pred_prob, target, threshold: float = 0.5, invalid: int = AU_INVALID) -> float:
    """Mean over action units of the binary F1 at ``threshold`` (ABAW's AU score).

    ``pred_prob`` and ``target`` are (N, K); target entries equal to ``invalid`` are excluded
    per AU. An AU with no positives and no positive predictions scores 0 (zero_division=0);
    an AU with no valid entry at all is left out of the mean.

    >>> au_f1([[0.9, 0.2], [0.8, 0.7], [0.1, 0.6]], [[1, 0], [1, 1], [0, -1]])
    1.0
    >>> au_f1([[0.9, 0.2], [0.1, 0.7]], [[1, 1], [1, 1]])
    0.6666666666666666
    """
    p, t = _np(pred_prob), _np(target).astype(int)
    if p.ndim != 2 or t.shape != p.shape:
        raise InputError(f"AU predictions and targets must be equal (N, K) arrays, got {p.shape} and {t.shape}")
    scores = []
    for k in range(p.shape[1]):
        ok = t[:, k] != invalid
        if not ok.any():
            continue
        on, true = p[ok, k] >= threshold, t[ok, k] == 1
        scores.append(_f1(np.sum(on & true), np.sum(on & ~true), np.sum(~on & true)))
    return float(np.mean(scores)) if scores else math.nan


# -- attack metrics ------------------------------------------------------------------------

def flip_rate(pred_clean, pred_adv) -> float:
    """Fraction of samples whose predicted expression changed (reference = clean prediction).

    >>> flip_rate([0, 1, 2, 3], [0, 2, 2, 0])
    0.5
    """
    a, b = _labels(pred_clean), _labels(pred_adv)
    _same_len(a, b)
    return float((a != b).mean()) if len(a) else math.nan


def targeted_success_rate(pred_adv, target_class, pred_clean=None) -> float:
    """Fraction of samples now predicted as ``target_class`` (an int or one class per sample).

    With ``pred_clean``, samples already predicted as their target are left out, so only
    changes the attack made count.

    >>> targeted_success_rate([3, 3, 1, 3], 3)
    0.75
    >>> targeted_success_rate([3, 3, 1, 3], 3, pred_clean=[3, 0, 0, 0])
    0.6666666666666666
    """
    adv = _labels(pred_adv)
    tgt = np.broadcast_to(_np(target_class).astype(int), adv.shape)
    keep = np.ones_like(adv, dtype=bool) if pred_clean is None else _labels(pred_clean) != tgt
    return float((adv[keep] == tgt[keep]).mean()) if keep.any() else math.nan


def ccc_drop(pred_clean, pred_adv, target, invalid: float = VA_INVALID) -> dict[str, float]:
    """Clean minus adversarial CCC, for valence, arousal and their mean (positive = worse).

    >>> t = [[0.1, 0.2], [0.5, -0.1], [-0.3, 0.4]]
    >>> ccc_drop(t, [[0.1, 0.2], [0.5, -0.1], [-0.3, 0.4]], t)["ccc_mean_drop"]
    0.0
    """
    c, a = va_ccc(pred_clean, target, invalid), va_ccc(pred_adv, target, invalid)
    return {f"{k}_drop": c[k] - a[k] for k in c}


def quadrant_shift(va_clean, va_adv, quadrant: str) -> float:
    """Mean projection of the valence/arousal change onto the direction of ``quadrant``.

    Quadrants of the circumplex (valence sign, arousal sign): ``q1`` /
    ``high_valence_high_arousal`` (+, +), ``q2`` / ``low_valence_high_arousal`` (-, +),
    ``q3`` / ``low_valence_low_arousal`` (-, -), ``q4`` / ``high_valence_low_arousal`` (+, -).
    The direction is the unit diagonal (sign_v, sign_a) / sqrt(2); the shift is
    mean((adv - clean) . direction), positive when predictions moved toward the quadrant.

    >>> round(quadrant_shift([[0.0, 0.0], [0.2, 0.1]], [[0.5, 0.5], [0.2, 0.1]], "q1"), 4)
    0.3536
    >>> round(quadrant_shift([[0.0, 0.0]], [[0.5, 0.5]], "low_valence_low_arousal"), 4)
    -0.7071
    """
    if quadrant not in QUADRANTS:
        raise InputError(f"unknown quadrant {quadrant!r}; choose from {', '.join(QUADRANTS)}")
    c, a = _np(va_clean).astype(float), _np(va_adv).astype(float)
    if c.ndim != 2 or c.shape[1] != 2 or a.shape != c.shape:
        raise InputError(f"valence/arousal must be (N, 2) arrays, got {c.shape} and {a.shape}")
    direction = np.array(QUADRANTS[quadrant], dtype=float) / math.sqrt(2)
    return float(((a - c) @ direction).mean()) if len(c) else math.nan


def au_f1_drop(prob_clean, prob_adv, target, threshold: float = 0.5, invalid: int = AU_INVALID) -> float:
    """Clean minus adversarial mean AU F1 (positive = the attack hurt detection).

    >>> au_f1_drop([[0.9], [0.8]], [[0.1], [0.8]], [[1], [1]])
    0.33333333333333337
    """
    return au_f1(prob_clean, target, threshold, invalid) - au_f1(prob_adv, target, threshold, invalid)


def au_forced_rate(prob_clean, prob_adv, au: int, on: bool = True, threshold: float = 0.5) -> float:
    """Rate at which the attack forced action unit column ``au`` on (or off, ``on=False``).

    Over the samples where the AU was not already in the goal state on the clean image, the
    fraction that reach it on the adversarial one (``nan`` if every sample already did).

    >>> au_forced_rate([[0.1], [0.2], [0.9]], [[0.7], [0.3], [0.9]], au=0)
    0.5
    >>> au_forced_rate([[0.1], [0.2], [0.9]], [[0.7], [0.3], [0.2]], au=0, on=False)
    1.0
    """
    c, a = _np(prob_clean)[:, au] >= threshold, _np(prob_adv)[:, au] >= threshold
    todo = c != on
    return float((a[todo] == on).mean()) if todo.any() else math.nan


# -- task scoring: one function per affect head ---------------------------------------------
# Each returns (metric columns, per-image success indicators over the images scored), so the
# task runner only puts an interval around the success rate. Outputs are the victim's raw head
# outputs (N, K) on clean and adversarial images; ``labels`` None means the clean predictions
# are the reference.

def _acc_f1_cis(pc: np.ndarray, pa: np.ndarray, ref: np.ndarray, seed: int) -> dict:
    """Seeded bootstrap intervals of accuracy and macro-F1 over the valid-labelled images."""
    from .intervals import bootstrap

    ok = np.flatnonzero(ref != EXPR_INVALID)
    out = {}
    for name, pred in (("clean", pc), ("adv", pa)):
        for metric, fn in (("acc", accuracy), ("macro_f1", f1_macro)):
            lo, hi = bootstrap(lambda i, p=pred, f=fn: f(p[ok[i]], ref[ok[i]]), ok.size, seed)
            out[f"{name}_{metric}_ci_low"], out[f"{name}_{metric}_ci_high"] = lo, hi
    return out


def score_expression(clean, adv, labels, target: int | None, classes, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Expression scores. Untargeted success: the images right before the attack (valid labels
    only) predicted differently after it; targeted: images not already at ``target`` reaching it.

    >>> cols, ok = score_expression([[2, 0], [0, 2]], [[0, 2], [0, 2]], None, None, ("a", "b"))
    >>> cols["flip_rate"], ok.tolist()
    (0.5, [True, False])
    """
    clean, adv = _np(clean), _np(adv)
    pc, pa = clean.argmax(1), adv.argmax(1)
    ref = pc if labels is None else _np(labels).astype(int)
    # Macro-F1 over the classes present in reference or predictions (scikit-learn's default):
    # over all C classes, classes absent from a small or clean-prediction reference would
    # count as 0 and cap even a perfect score.
    cols = {"clean_acc": accuracy(pc, ref), "adv_acc": accuracy(pa, ref),
            "clean_macro_f1": f1_macro(pc, ref), "adv_macro_f1": f1_macro(pa, ref),
            "flip_rate": flip_rate(pc, pa), **_acc_f1_cis(pc, pa, ref, seed)}
    per = expression_success(clean, adv, labels, target)
    if target is not None:
        cols.update(target_class=classes[target], clean_target_rate=float((pc == target).mean()),
                    adv_target_rate=float((pa == target).mean()),
                    targeted_success=targeted_success_rate(pa, target, pred_clean=pc))
    return cols, per[~np.isnan(per)].astype(bool)


def _scored(hit: np.ndarray, scored: np.ndarray) -> np.ndarray:
    return np.where(scored, hit.astype(float), np.nan)


def expression_success(clean, adv, labels, target: int | None) -> np.ndarray:
    """Per image: 1 / 0, NaN not scored. Untargeted: scored when right before the attack
    (valid labels only), success when predicted differently after; targeted: scored when not
    already at ``target``, success when it gets there.

    >>> expression_success([[2, 0], [0, 2]], [[0, 2], [0, 2]], None, None).tolist()
    [1.0, 0.0]
    """
    pc, pa = _np(clean).argmax(1), _np(adv).argmax(1)
    ref = pc if labels is None else _np(labels).astype(int)
    if target is None:
        return _scored(pa != ref, (ref != EXPR_INVALID) & (pc == ref))
    return _scored(pa == target, pc != target)


def _in_quadrant(va: np.ndarray, signs) -> np.ndarray:
    return (va[:, 0] * signs[0] > 0) & (va[:, 1] * signs[1] > 0)


def score_valence_arousal(clean, adv, labels, target: tuple[int, int] | None) -> tuple[dict, np.ndarray]:
    """Valence-arousal scores. Untargeted success: the predicted quadrant changed; targeted:
    images not already in the ``target`` quadrant (sign pair) landing in it.

    >>> cols, ok = score_valence_arousal([[0.5, 0.5], [0.5, -0.5]], [[-0.5, 0.5], [0.5, -0.4]], None, None)
    >>> cols["quadrant_flip_rate"], ok.tolist()
    (0.5, [True, False])
    """
    clean, adv = _np(clean).astype(float), _np(adv).astype(float)
    ref = clean if labels is None else _np(labels).astype(float)
    c, a = va_ccc(clean, ref), va_ccc(adv, ref)
    cols = {**{f"clean_{k}": v for k, v in c.items()}, **{f"adv_{k}": v for k, v in a.items()},
            "ccc_mean_drop": c["ccc_mean"] - a["ccc_mean"],
            "va_mean_abs_shift": float(np.abs(adv - clean).mean())}
    flipped = ((clean > 0) != (adv > 0)).any(1)
    cols["quadrant_flip_rate"] = float(flipped.mean())
    per = va_success(clean, adv, target)
    success = per[~np.isnan(per)].astype(bool)
    if target is None:
        return cols, success
    name = next(k for k, v in QUADRANTS.items() if v == tuple(target) and k.startswith("q"))
    keep = ~_in_quadrant(clean, target)
    cols.update(target_class=name, quadrant_shift=quadrant_shift(clean, adv, name),
                clean_target_rate=float(1 - keep.mean()),
                targeted_success=float(success.mean()) if keep.any() else math.nan)
    return cols, success


def va_success(clean, adv, target: tuple[int, int] | None) -> np.ndarray:
    """Per image: untargeted, the predicted quadrant changed (every image scored); targeted,
    scored when not already in the ``target`` quadrant, success when it lands there."""
    clean, adv = _np(clean).astype(float), _np(adv).astype(float)
    if target is None:
        return ((clean > 0) != (adv > 0)).any(1).astype(float)
    return _scored(_in_quadrant(adv, target), ~_in_quadrant(clean, target))


def au_success(clean, adv, target: dict[int, int] | None) -> np.ndarray:
    """Per image: untargeted, the thresholded (0.5) AU pattern changed (every image scored);
    targeted, scored when not already showing ``target``, success when every entry of it holds."""
    on_c, on_a = _np(clean) >= 0.5, _np(adv) >= 0.5
    if target is None:
        return (on_c != on_a).any(1).astype(float)
    cols_t, states = list(target), np.array(list(target.values()), dtype=bool)
    return _scored((on_a[:, cols_t] == states).all(1), ~(on_c[:, cols_t] == states).all(1))


def score_action_units(clean, adv, labels, target: dict[int, int] | None, au_names) -> tuple[dict, np.ndarray]:
    """AU scores. Untargeted success: the thresholded (0.5) AU pattern changed; targeted:
    images not already showing the ``target`` pattern ({column: 0/1}) reaching every entry of it.

    >>> cols, ok = score_action_units([[0.9, 0.1]], [[0.9, 0.8]], None, {1: 1}, ("AU4", "AU12"))
    >>> cols["target_class"], ok.tolist()
    ('AU12=1', [True])
    """
    clean, adv = _np(clean), _np(adv)
    on_c, on_a = clean >= 0.5, adv >= 0.5
    ref = on_c.astype(int) if labels is None else _np(labels)
    cols = {"clean_au_f1": au_f1(clean, ref), "adv_au_f1": au_f1(adv, ref),
            "au_f1_drop": au_f1_drop(clean, adv, ref), "au_flip_rate": float((on_c != on_a).mean())}
    per = au_success(clean, adv, target)
    success = per[~np.isnan(per)].astype(bool)
    if target is None:
        return cols, success
    names = au_names or [f"AU{i}" for i in range(clean.shape[1])]
    keep = ~(on_c[:, list(target)] == np.array(list(target.values()), dtype=bool)).all(1)
    forced = [au_forced_rate(clean, adv, c, on=bool(s)) for c, s in target.items()]
    cols.update(target_class=",".join(f"{names[c]}={s}" for c, s in target.items()),
                clean_target_rate=float(1 - keep.mean()), au_forced_rate=float(np.nanmean(forced))
                if not all(math.isnan(f) for f in forced) else math.nan,
                targeted_success=float(success.mean()) if keep.any() else math.nan)
    return cols, success
