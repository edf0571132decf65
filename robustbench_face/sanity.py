"""Sanity checks on an evaluation, in the spirit of AutoAttack's flags.

Papers: F. Croce, M. Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (AutoAttack's flags); A. Athalye, N. Carlini,
D. Wagner, ICML 2018, section 3.1 (signs of gradient masking); N. Carlini et al., "On
Evaluating Adversarial Robustness", 2019 (the checklist).

Checks, each a pure function here, recorded as CSV columns and logged as warnings:

* ``eps-zero``: an attack with eps = 0 must reproduce the clean numbers (:func:`check_eps_zero`);
* ``non-monotone``: attack success must not drop as eps grows (:func:`check_monotone`);
* ``variance``: a randomised defense reports the spread over repeated runs (:func:`repeat`);
* ``transfer-beats-white-box``: examples crafted on the *undefended* victim hurt the defended
  one more than the white-box attack on it did (:func:`check_transfer`);
* ``loss-not-improving``: the attack's objective at its output is no better than at a random
  perturbation of the same size and support (:class:`LossTracker`, :func:`check_loss_gain`).

The last two are red flags for gradient masking. Everything here is a pure function of
numbers: the loss-gain scores come from :class:`robustbench_face.measure.LossTracker`, which
runs inside every attack run (one extra forward per batch), and the eps sweeps and repeats
that feed the other checks are runs of their own (:mod:`robustbench_face.sweeps`).
"""

from __future__ import annotations

import statistics
from typing import Any, Sequence


def check_eps_zero(clean: float, adv: float, tol: float = 1e-6) -> str:
    """``"eps-zero"`` when an eps = 0 attack moved the score, else ``""``.

    >>> check_eps_zero(0.92, 0.92), check_eps_zero(0.92, 0.80)
    ('', 'eps-zero')
    """
    return "eps-zero" if abs(clean - adv) > tol else ""


def check_monotone(eps: Sequence[float], success: Sequence[float], tol: float = 0.02) -> str:
    """``"non-monotone"`` when success drops by more than ``tol`` as eps grows.

    >>> check_monotone([0, 2, 4, 8], [0.0, 0.3, 0.6, 0.9]), check_monotone([0, 4, 8], [0, .6, .3])
    ('', 'non-monotone')
    """
    pairs = sorted(zip(eps, success))
    drops = [b[1] < a[1] - tol for a, b in zip(pairs, pairs[1:])]
    return "non-monotone" if any(drops) else ""


def check_transfer(white_box: float, transfer: float, tol: float = 0.01) -> str:
    """Adversarial score (lower = stronger attack). ``"transfer-beats-white-box"`` when a
    transfer attack from the undefended victim is stronger than the white-box one.

    >>> check_transfer(0.60, 0.10), check_transfer(0.05, 0.10)
    ('transfer-beats-white-box', '')
    """
    return "transfer-beats-white-box" if transfer < white_box - tol else ""


def check_loss_gain(attack_gain: float, random_gain: float, tol: float = 1e-3) -> str:
    """``"loss-not-improving"`` when the attack beats a random perturbation by <= ``tol``.

    >>> check_loss_gain(0.8, 0.01), check_loss_gain(0.011, 0.01)
    ('', 'loss-not-improving')
    """
    return "loss-not-improving" if attack_gain <= random_gain + tol else ""


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value).

    >>> [round(v, 4) for v in mean_std([0.5, 0.7])]
    [0.6, 0.1414]
    """
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def join_flags(*flags: str) -> str:
    return ";".join(f for f in flags if f)


def headline(row: dict[str, Any]) -> str | None:
    """The adversarial metric of a row where lower means a stronger attack."""
    for key in ("adv_map", "adv_tar", "tar_at_far", "adv_acc"):
        if row.get(key) not in (None, ""):
            return key
    return None
