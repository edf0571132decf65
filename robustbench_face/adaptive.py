"""Adaptive attacks on defended victims: BPDA through non-differentiable steps, EOT over randomness.

Papers: A. Athalye, N. Carlini, D. Wagner, "Obfuscated Gradients Give a False Sense of
Security: Circumventing Defenses to Adversarial Examples", ICML 2018 (BPDA, and EOT from
A. Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018); F. Tramer et al.,
"On Adaptive Attacks to Adversarial Example Defenses", NeurIPS 2020.

:class:`AdaptiveAttack` wraps any attack ``attack(victim, x, target)``; it hands the inner
attack a view of the victim in which

* every non-differentiable defense step passes the gradient straight through (BPDA with the
  identity; the forward value is unchanged, see ``defenses/_base.py``), and
* a randomised victim is evaluated ``eot_draws`` times on one batch and its outputs averaged
  (EOT). The re-ID and face objectives are linear in the embedding, so the gradient of the
  averaged output *is* the average of the per-draw gradients; for the cross-entropy objective
  it is the usual expectation-over-logits variant.

The attack itself is unchanged, so any attack, built-in or plug-in, becomes adaptive.
:func:`plan` decides, from the victim's declared flags, whether the runner needs the wrapper.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor, nn

from .attacks._base import AttackWrapper, describe
from .defenses._base import gradient_mode
from .errors import InputError

ADAPTIVE_CHOICES = ("auto", "yes", "no")


def needs_adaptive(victim: Any) -> bool:
    """True when plain autograd would mislead: a non-differentiable or randomised step."""
    return (not getattr(victim, "differentiable", True)) or bool(getattr(victim, "randomized", False))


def is_defended(victim: Any) -> bool:
    return bool(getattr(victim, "defenses", []))


class EOTView(nn.Module):
    """The victim's output averaged over ``draws`` evaluations in one batch."""

    def __init__(self, victim: nn.Module, draws: int):
        super().__init__()
        self.victim = victim
        self.draws = draws
        self.name = victim.name
        self.output = victim.output

    def forward(self, x: Tensor) -> Tensor:
        out = self.victim(x.repeat(self.draws, *([1] * (x.ndim - 1))))
        return out.view(self.draws, x.shape[0], *out.shape[1:]).mean(0)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["victim"], name)


class AdaptiveAttack(AttackWrapper):
    """``attack`` run with BPDA (always) and EOT (when the victim is randomised)."""

    def __init__(self, attack: Callable, eot_draws: int = 10):
        if int(eot_draws) < 1:
            raise InputError(f"eot_draws must be >= 1, got {eot_draws}")
        super().__init__(attack)
        self.eot_draws = int(eot_draws)

    def describe(self) -> dict[str, Any]:
        return {**describe(self.attack), "adaptive": f"BPDA+EOT({self.eot_draws})"}

    def view(self, victim: nn.Module) -> nn.Module:
        if getattr(victim, "randomized", False) and self.eot_draws > 1:
            return EOTView(victim, self.eot_draws)
        return victim

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        with gradient_mode("bpda"):
            return self.attack(self.view(victim), images, target)


def plan(attack: Callable | None, victim: Any, adaptive: str = "auto",
         eot_draws: int = 10) -> tuple[Callable | None, str]:
    """(attack to run, value of the ``adaptive`` column).

    ``adaptive`` is ``"auto"`` (wrap when the victim needs it), ``"yes"`` (always wrap a
    defended victim) or ``"no"`` (never). The column is ``"yes"`` when the attack the row
    reports is a valid white-box adaptive attack (the wrapper ran, or the defended victim is
    differentiable and deterministic so plain gradients are exact), ``"no"`` when a defended
    victim that needs the adaptive attack did not get it, and ``""`` for undefended victims or
    clean runs.
    """
    if adaptive not in ADAPTIVE_CHOICES:
        raise InputError(f"--adaptive must be one of {', '.join(ADAPTIVE_CHOICES)}, got {adaptive!r}")
    if attack is None or not is_defended(victim):
        return attack, ""
    if adaptive == "no":
        return attack, "no" if needs_adaptive(victim) else "yes"
    if adaptive == "yes" or needs_adaptive(victim):
        return AdaptiveAttack(attack, eot_draws), "yes"
    return attack, "yes"
