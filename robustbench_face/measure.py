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
def embed(victim, images: Tensor, batch_size: int, device: str) -> np.ndarray:
    """The victim's outputs on ``images`` (batched, no gradients) as a float32 numpy array."""
    out = [victim(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def perturbation_size(clean: Tensor, adv: Tensor, kind: str) -> float:
    """Mean per-image L-inf, L2, or changed-pixel fraction (``patch``).

    >>> x = torch.zeros(1, 1, 2, 2); y = x.clone(); y[0, 0, 0, 0] = 0.5
    >>> perturbation_size(x, y, "linf"), perturbation_size(x, y, "patch")
    (0.5, 0.25)
    """
    d = (adv - clean).flatten(1)
    if kind == "l2":
        return float(d.norm(dim=1).mean())
    if kind == "patch":
        changed = (adv - clean).abs().amax(1) > 0
        return float(changed.flatten(1).float().mean(1).mean())
    return float(d.abs().amax(1).mean())


@dataclass
class AttackOutcome:
    """What the attack step of a task returns: the adversarial inputs and what they cost."""

    x_adv: Tensor
    n: int                 # attacked inputs
    seconds: float         # attack time, the loss-gain check excluded
    images_seen: int       # images forwarded through the victim by the attack
    distance: str          # "" for a clean run
    perturbation: float
    region_area: float | None = None

    def columns(self) -> dict[str, Any]:
        cols = {"sec_per_query": self.seconds / max(self.n, 1), "perturbation": self.perturbation,
                "perturbation_kind": self.distance, "queries_per_image": self.images_seen / max(self.n, 1)}
        if self.region_area is not None:
            cols["region_area"] = self.region_area
        return cols


def timed_attack(attack: Callable | None, victim, images: Tensor, targets: Tensor | None = None,
                 batch_size: int = 32, device: str = "cpu", desc: str = "attack"):
    """Run ``attack`` on ``images`` (and ``targets``) in batches on ``device``.

    Returns (adversarial images on the CPU, attack seconds, images forwarded through the victim).
    """
    from tqdm.auto import tqdm

    counted = CountingVictim(victim)
    out, seconds = [], 0.0
    for i in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        xb = images[i:i + batch_size].to(device)
        if attack is None:
            out.append(xb.cpu())
            continue
        tb = None if targets is None else targets[i:i + batch_size].to(device)
        t0 = time.perf_counter()
        out.append(attack(counted, xb, tb).detach().cpu())
        # wrappers that score the attack (LossTracker) report their own time separately
        seconds += time.perf_counter() - t0 - getattr(attack, "pop_overhead", lambda: 0.0)()
    return (torch.cat(out) if out else images[:0]), seconds, counted.images_seen


def attack_and_measure(attack: Callable | None, victim, images: Tensor, targets: Tensor | None,
                       batch_size: int, device: str, desc: str) -> AttackOutcome:
    """:func:`timed_attack`, plus the attack's distance and the mean perturbation size."""
    x_adv, seconds, seen = timed_attack(attack, victim, images, targets, batch_size, device, desc)
    if attack is None:
        return AttackOutcome(x_adv, len(images), seconds, seen, "", 0.0)
    kind = distance_of(attack)
    region = region_of(attack)
    return AttackOutcome(x_adv, len(images), seconds, seen, kind, perturbation_size(images, x_adv, kind),
                         float(region.area) if region is not None else None)


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
