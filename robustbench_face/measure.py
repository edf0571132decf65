"""Measuring an attack run: query counting, timing, perturbation size, batched forwards, and the
loss-gain check that runs inside every attack (:class:`LossTracker`).

The task runners and the runner both import this module; it imports nothing above the
attacks, so the layers stay one-way (``docs/architecture.md``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from .interrupt import check as check_interrupt
from .attacks._base import AttackWrapper, distance_of, region_of
from .attacks._objective import objective
from .sanity import check_loss_gain


class CountingVictim(nn.Module):
    """Counts images forwarded through a victim (the attack's query cost), else transparent."""

    def __init__(self, victim: nn.Module):
        super().__init__()
        self.victim = victim
        self.images_seen = 0

    def forward(self, x: Tensor) -> Tensor:
        self.images_seen += x.shape[0]
        return self.victim(x)

    def feature_maps(self, x: Tensor):
        self.images_seen += x.shape[0]
        return self.victim.feature_maps(x)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["victim"], name)


@torch.no_grad()
def embed(victim, images: Tensor, batch_size: int, device: str, desc: str | None = None) -> np.ndarray:
    """The victim's outputs on ``images`` (batched, no gradients) as a float32 numpy array;
    ``desc`` shows a progress bar (the gallery of a large re-ID set takes minutes)."""
    from tqdm.auto import tqdm

    out = []
    with tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False,
              disable=None if desc else True) as bar:  # None: shown on a terminal only
        for i in bar:
            check_interrupt()
            out.append(victim(images[i:i + batch_size].to(device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


@dataclass
class AttackOutcome:
    """What the attack step of a task returns: every scored victim's outputs on the adversarial
    inputs, and what the attack cost. The adversarial images themselves are not kept (they are
    scored batch by batch), unless asked for (``x_adv``)."""

    outputs: dict[str, np.ndarray]  # victim name -> (N, D) outputs on the adversarial inputs
    n: int                 # attacked inputs
    seconds: float         # attack time, the loss-gain check excluded
    images_seen: int       # images forwarded through the victim by the attack
    distance: str          # "" for a clean run
    perturbation: float    # mean per-image size in the attack's distance
    region_area: float | None = None
    x_adv: Tensor | None = None

    def columns(self) -> dict[str, Any]:
        cols = {"sec_per_query": self.seconds / max(self.n, 1), "perturbation": self.perturbation,
                "perturbation_kind": self.distance, "queries_per_image": self.images_seen / max(self.n, 1)}
        if self.region_area is not None:
            cols["region_area"] = self.region_area
        return cols


def _per_image(clean: Tensor, adv: Tensor, kind: str) -> Tensor:
    d = (adv - clean).flatten(1)
    if kind == "l2":
        return d.norm(dim=1)
    if kind == "patch":
        return ((adv - clean).abs().amax(1) > 0).flatten(1).float().mean(1)
    return d.abs().amax(1)


def perturbation_size(clean: Tensor, adv: Tensor, kind: str) -> float:
    """Mean per-image L-inf, L2, or changed-pixel fraction (``patch``).

    >>> x = torch.zeros(1, 1, 2, 2); y = x.clone(); y[0, 0, 0, 0] = 0.5
    >>> perturbation_size(x, y, "linf"), perturbation_size(x, y, "patch")
    (0.5, 0.25)
    """
    return float(_per_image(clean, adv, kind).mean())


def attack_and_measure(attack: Callable | None, victim, images, targets: Tensor | None,
                       batch_size: int, device: str, desc: str, score: dict[str, Any] | None = None,
                       keep_images: bool = False) -> AttackOutcome:
    """Attack ``images`` (a tensor or any source with ``len`` and slicing, read a batch at a
    time) on ``victim``; each adversarial batch is scored at once by every victim of ``score``
    (name -> victim) and dropped, so memory is bounded by the batch, not the dataset.
    ``attack=None`` scores the clean inputs (a clean run)."""
    from tqdm.auto import tqdm

    score = score if score is not None else {getattr(victim, "name", "victim"): victim}
    counted = CountingVictim(victim)
    kind = distance_of(attack) if attack is not None else ""
    outs: dict[str, list] = {n: [] for n in score}
    kept, seconds, pert = [], 0.0, 0.0
    with tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False, disable=None) as bar:
        for i in bar:
            check_interrupt()
            xb = images[i:i + batch_size].to(device)
            adv = xb
            if attack is not None:
                tb = None if targets is None else targets[i:i + batch_size].to(device)
                t0 = time.perf_counter()
                adv = attack(counted, xb, tb).detach()
                # wrappers that score the attack (LossTracker) report their own time separately
                seconds += time.perf_counter() - t0 - getattr(attack, "pop_overhead", lambda: 0.0)()
                pert += float(_per_image(xb, adv, kind).sum())
            with torch.no_grad():
                for name, v in score.items():
                    outs[name].append(v(adv).float().cpu())
            if keep_images:
                kept.append(adv.cpu())
    region = region_of(attack) if attack is not None else None
    n = len(images)
    return AttackOutcome({k: torch.cat(v).numpy() if v else np.zeros((0, 0), np.float32) for k, v in outs.items()},
                         n, seconds, counted.images_seen, kind, pert / max(n, 1),
                         float(region.area) if region is not None else None,
                         torch.cat(kept) if kept else None)


class LossTracker(AttackWrapper):
    """Wraps an attack; after each batch, scores clean, attack output and a random baseline.

    The random baseline adds the attack's own perturbation magnitude with random signs
    (``clean + |adv - clean| * sign(noise)``), so it has the same support (patch or whole
    image) and size: an attack that cannot beat it learned nothing from its gradients
    (``sanity.check_loss_gain``). Scores use the plain victim (forward values are the same in
    every gradient mode); the forwards made here are not counted as attack queries.
    """

    def __init__(self, attack: Callable, seed: int = 0):
        super().__init__(attack)
        self.gen = torch.Generator().manual_seed(seed)
        self.attack_gain: list[float] = []
        self.random_gain: list[float] = []
        self._overhead = 0.0

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
