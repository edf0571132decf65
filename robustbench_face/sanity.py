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

The last two are red flags for gradient masking. :class:`LossTracker` runs inside every
attack run (one extra forward per batch); the sweeps are separate runs (``benchmarks/``).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .attacks._objective import objective

log = logging.getLogger(__name__)


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


class LossTracker:
    """Wraps an attack; after each batch, scores clean, attack output and a random baseline.

    The random baseline adds the attack's own perturbation magnitude with random signs
    (``clean + |adv - clean| * sign(noise)``), so it has the same support (patch or whole
    image) and size: an attack that cannot beat it learned nothing from its gradients.
    Scores use the plain victim (forward values are the same in every gradient mode); the
    forwards made here are not counted as attack queries.
    """

    def __init__(self, attack: Callable, seed: int = 0):
        self.attack = attack
        self.gen = torch.Generator().manual_seed(seed)
        self.attack_gain: list[float] = []
        self.random_gain: list[float] = []
        self._overhead = 0.0

    @property
    def distance(self) -> str:
        return getattr(self.attack, "distance", "linf")

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        adv = self.attack(victim, images, target)
        seen = getattr(victim, "images_seen", None)
        t0 = time.perf_counter()
        with torch.no_grad():
            delta = (adv - images).abs().cpu()
            signs = torch.randn(delta.shape, generator=self.gen).sign()
            rand = (images.cpu() + delta * signs).clamp(0, 1).to(images.device)
            score = objective(victim, images, target)
            s_clean = score(victim(images))
            self.attack_gain.append(float((score(victim(adv)) - s_clean).mean()))
            self.random_gain.append(float((score(victim(rand)) - s_clean).mean()))
        if seen is not None:
            victim.images_seen = seen  # the checks are not the attack's queries
        self._overhead += time.perf_counter() - t0
        return adv

    def pop_overhead(self) -> float:
        """Seconds spent on the checks since the last call: not the attack's cost."""
        spent, self._overhead = self._overhead, 0.0
        return spent

    def columns(self) -> dict[str, Any]:
        if not self.attack_gain:
            return {}
        gain, rand = statistics.fmean(self.attack_gain), statistics.fmean(self.random_gain)
        return {"loss_gain": gain, "random_loss_gain": rand, "flags": check_loss_gain(gain, rand)}

    def __repr__(self) -> str:
        return repr(self.attack)


def headline(row: dict[str, Any]) -> str | None:
    """The adversarial metric of a row where lower means a stronger attack."""
    for key in ("adv_map", "adv_tar", "tar_at_far", "adv_acc"):
        if row.get(key) not in (None, ""):
            return key
    return None


def eps_sweep(cfg, eps_values: Sequence[float], run: Callable | None = None) -> list[dict]:
    """Run ``cfg`` at each eps; flags eps-zero and non-monotone success on every row.

    At eps = 0 the attack cannot move, so the row's own ``loss-not-improving`` flag is expected
    there and dropped; what is checked at eps = 0 is that the clean numbers come back.
    """
    from .runner import run as run_

    run = run or run_
    rows = []
    for eps in eps_values:
        c = dataclasses.replace(cfg, attack_args={**cfg.attack_args, "eps": eps})
        rows.append((eps, run(c)[0]))
    flag = check_monotone([e for e, _ in rows], [float(r["success_rate"]) for _, r in rows])
    out = []
    for eps, r in rows:
        key = headline(r)
        f0 = check_eps_zero(float(r[key.replace("adv_", "clean_")]), float(r[key])) \
            if eps == 0 and key and key.startswith("adv_") else ""
        own = r.get("flags", "") or ""
        if eps == 0:
            own = join_flags(*[f for f in own.split(";") if f != "loss-not-improving"])
        flags = join_flags(own, f0, flag)
        if f0 or flag:
            log.warning("sanity: %s at eps=%g: %s", cfg.attack, eps, flags)
        out.append({**r, "eps": eps, "flags": flags})
    return out


def repeat(cfg, n: int = 3, run: Callable | None = None) -> dict[str, float]:
    """Mean and std of the headline metric over ``n`` runs with seeds ``seed .. seed+n-1``."""
    from .runner import run as run_

    run = run or run_
    vals = []
    for k in range(n):
        row = run(dataclasses.replace(cfg, seed=cfg.seed + k))[0]
        vals.append(float(row[headline(row)]))
    mean, std = mean_std(vals)
    return {"repeat_mean": mean, "repeat_std": std, "repeats": n}
