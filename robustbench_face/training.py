"""``rbf train``: attacks that learn (generators, universal patches) expose ``factory.train``.

An attack is trainable when its registered factory has a ``train`` attribute, a function
``train(victims, dataset, split, steps, seed, device, out, resume, data_root, **hparams) -> Path``
that writes a checkpoint (and its card) and returns the checkpoint path. Plugins get the same
command for free by setting that attribute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InputError
from .registry import ATTACKS


def trainable_attacks() -> list[str]:
    return [e.name for e in ATTACKS.entries() if callable(getattr(e.factory, "train", None))]


def train(attack: str, **kwargs: Any) -> Path:
    fn = getattr(ATTACKS.get(attack).factory, "train", None)
    if not callable(fn):
        raise InputError(f"attack {attack!r} does not train; trainable attacks: "
                         f"{', '.join(trainable_attacks()) or '(none)'}")
    if not kwargs.get("victims"):
        raise InputError("rbf train needs at least one --victim (the surrogate)")
    return fn(**kwargs)
