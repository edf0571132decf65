"""What every defense shares: an input-transform step, and the victim wrapper that applies it.

A defense factory (``@DEFENSES.register("jpeg")``) returns a callable ``defense(victim) ->
victim``. Built-ins return a :class:`Transform` (an ``nn.Module`` mapping images in [0, 1] to
images in [0, 1]); calling it on a victim gives a :class:`DefendedVictim`, which keeps the inner
victim's ``name``, ``output``, ``input_size`` and ``alignment``, appends the transform to
``.defenses`` (so stacked defenses read in the order of the ``--defense`` flags) and declares

* ``differentiable``: autograd through every step gives the true gradient. A step that is not
  (JPEG, bit-depth reduction, LGS's thresholding) gives a *zero* gradient by default, as a
  naive white-box attacker who back-propagates through the defense would see: that is what
  gradient masking looks like. Under :func:`robustbench_face.adaptive.bpda` the same step
  passes the gradient straight through instead (BPDA with the identity).
* ``randomized``: each forward draws fresh randomness; adaptive attacks average over it (EOT).

The forward value is the same in both gradient modes, so scoring never depends on the mode.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError

_STATE = threading.local()


@contextmanager
def gradient_mode(mode: str):
    """``"naive"`` (zero gradient through non-differentiable steps) or ``"bpda"`` (identity)."""
    if mode not in ("naive", "bpda"):
        raise InputError(f"gradient mode must be 'naive' or 'bpda', got {mode!r}")
    old = getattr(_STATE, "mode", "naive")
    _STATE.mode = mode
    try:
        yield
    finally:
        _STATE.mode = old


def current_gradient_mode() -> str:
    return getattr(_STATE, "mode", "naive")


class Transform(nn.Module):
    """One defense step on images in [0, 1]. Subclasses set the class flags and ``transform``."""

    name: str = "transform"
    differentiable: bool = True
    randomized: bool = False
    draws: int = 1  # > 1: the defended victim averages its outputs over this many draws
    needs_victim: bool = False  # True: ``transform(x, victim)`` sees the inner victim

    def __init__(self, **params: Any):
        super().__init__()
        self.params = params

    def transform(self, x: Tensor, victim: nn.Module | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, victim: nn.Module | None = None) -> Tensor:
        args = (victim,) if self.needs_victim else ()
        if self.differentiable:
            return self.transform(x, *args)
        with torch.no_grad():
            y = self.transform(x.detach(), *args).to(x.dtype)
        if current_gradient_mode() == "bpda":
            return x + (y - x).detach()  # straight-through: forward y, backward identity
        return y + 0.0 * x  # a path to x with zero gradient: attacks run but learn nothing

    def __call__(self, obj, *args):
        # Called on a victim it wraps it; called on a tensor it transforms.
        if isinstance(obj, Tensor):
            return super().__call__(obj, *args)
        return DefendedVictim(obj, self)

    @property
    def spec(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}:{args}" if args else self.name

    def extra_repr(self) -> str:
        return self.spec


class DefendedVictim(nn.Module):
    """``victim(transform(x))``, looking like the inner victim to every runner and attack."""

    def __init__(self, victim: nn.Module, transform: Transform):
        super().__init__()
        if not hasattr(victim, "output"):
            raise InputError(f"defense {transform.name!r} wraps victims; got {type(victim).__name__}")
        self.inner = victim
        self.transform = transform
        self.name = victim.name
        self.output = victim.output
        self.input_size = getattr(victim, "input_size", None)
        self.alignment = getattr(victim, "alignment", None)
        self.defenses = [*getattr(victim, "defenses", []), transform.spec]
        self.differentiable = getattr(victim, "differentiable", True) and transform.differentiable
        self.randomized = getattr(victim, "randomized", False) or transform.randomized

    def forward(self, x: Tensor) -> Tensor:
        k = self.transform.draws
        if k <= 1:
            return self.inner(self.transform(x, self.inner))
        # Averaging over draws (randomised smoothing style): one batch of k noisy copies.
        out = self.inner(self.transform(x.repeat(k, 1, 1, 1), self.inner))
        out = out.view(k, x.shape[0], *out.shape[1:]).mean(0)
        if self.output == "embedding":
            out = torch.nn.functional.normalize(out, dim=1)  # keep the unit-norm contract
        return out

    def train(self, mode: bool = True):
        return super().train(False)  # a victim stays in eval mode

    def extra_repr(self) -> str:
        return f"name={self.name!r}, defenses={self.defenses}"


def check_param(defense: str, name: str, value: Any, ok: bool, expect: str) -> None:
    """Raise an :class:`InputError` naming the defense and parameter unless ``ok``."""
    if not ok:
        raise InputError(f"defense {defense}: {name}={value!r} is invalid; expected {expect}")


def check_known(defense: str, kwargs: dict[str, Any], known: tuple[str, ...]) -> None:
    extra = sorted(set(kwargs) - set(known))
    if extra:
        raise InputError(f"defense {defense}: unknown parameter(s) {', '.join(extra)}; "
                         f"known: {', '.join(known) or '(none)'}")
