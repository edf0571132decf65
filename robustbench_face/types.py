"""The three protocols every plugin follows, and the small helpers they share.

* A **victim** is a ``torch.nn.Module`` that takes images in [0, 1] (NCHW float, any size),
  does its own resize and normalisation, stays differentiable, and returns L2-normalised
  embeddings or raw head outputs. ``victim.output`` says which:
  ``"embedding"`` (N, D) unit vectors, ``"logits"`` (N, C) class scores,
  ``"regression"`` (N, K) values (valence/arousal in [-1, 1]),
  ``"multilabel"`` (N, K) probabilities (action units).
* An **attack** is a callable ``attack(victim, images, target=None) -> adv_images``; it is
  targeted when ``target`` is given. For embedding victims ``target`` is an (N, D) embedding
  to pull toward; for classifiers it is an (N,) class index; for regressors an (N, K) value;
  for multi-label heads an (N, K) 0/1 pattern.
* A **defense** is a callable ``defense(victim) -> victim``; the result is a victim, so runners
  never special-case defenses.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .errors import InputError
from .preprocess import InputSpec

OutputKind = Literal["embedding", "logits", "regression", "multilabel"]
OUTPUT_KINDS = ("embedding", "logits", "regression", "multilabel")


@runtime_checkable
class Victim(Protocol):
    name: str
    output: OutputKind

    def __call__(self, images: Tensor) -> Tensor: ...


@runtime_checkable
class Attack(Protocol):
    def __call__(self, victim: Victim, images: Tensor, target: Tensor | None = None) -> Tensor: ...


@runtime_checkable
class Defense(Protocol):
    def __call__(self, victim: Victim) -> Victim: ...


def check_images(images: Any, what: str = "images") -> Tensor:
    """Raise :class:`InputError` unless ``images`` is a finite NCHW float tensor in [0, 1].

    >>> check_images(torch.zeros(1, 3, 4, 4)).shape
    torch.Size([1, 3, 4, 4])
    >>> check_images(torch.full((1, 3, 2, 2), float("nan")))
    Traceback (most recent call last):
    ...
    robustbench_face.errors.InputError: images contain non-finite values (NaN or inf)
    """
    if not isinstance(images, Tensor):
        raise InputError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise InputError(f"{what} must be NCHW (4-d), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise InputError(f"{what} must be float in [0, 1], got {images.dtype}")
    if not torch.isfinite(images).all():
        raise InputError(f"{what} contain non-finite values (NaN or inf)")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InputError(f"{what} must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return images


class VictimBase(nn.Module):
    """Optional convenience base: freezes parameters, keeps eval mode, applies the input spec.

    Subclasses set ``name`` and ``output`` and implement ``forward``, normally as
    ``net(self.preprocess(x))``: :meth:`set_input` installs the victim's
    :class:`~robustbench_face.preprocess.InputSpec` (read from its card), which then also gives
    ``input_size``. ``feature_maps`` (used by generators such as ``cond_patch``) returns a list
    of intermediate maps, shallow to deep.
    """

    name: str = "victim"
    output: OutputKind = "embedding"
    input_size: tuple[int, int] | None = None  # (H, W) the network was trained at
    input_spec: InputSpec | None = None  # how [0, 1] images become the network's input
    alignment: str | None = None  # for faces: which aligned chip the victim expects
    task: str | None = None  # "reid", "face" or "affect", as its card declares

    def set_input(self, spec: InputSpec) -> VictimBase:
        self.input_spec = spec
        self.input_size = tuple(spec.size)
        return self

    def preprocess(self, images: Tensor) -> Tensor:
        """[0, 1] NCHW images of any size -> the tensor the network takes (its input spec)."""
        if self.input_spec is None:
            raise NotImplementedError(f"{self.name} declares no input spec")
        return self.input_spec(images)

    def finalize(self, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.to(device=device, dtype=dtype)
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True):
        # A victim is always in eval mode: dropout/batch-norm statistics must not move.
        return super().train(False)

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        raise NotImplementedError(f"{self.name} does not expose feature maps")

    def extra_repr(self) -> str:
        return f"name={self.name!r}, output={self.output!r}"
