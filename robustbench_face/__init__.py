"""robustbench_face: adversarial robustness benchmarks for face, re-ID and affect models.

The Python API mirrors timm: ``create_victim(name)``, ``create_attack(name)``,
``create_defense(name)``, ``load_dataset(name)`` and ``list_victims()`` etc.
A victim name may carry its weights after a dot: ``osnet_x0_25.market1501``.
"""

from __future__ import annotations

from typing import Any

from .errors import RbfError
from .registry import ATTACKS, DATASETS, DEFENSES, VICTIMS

__version__ = "0.1.0"

__all__ = [
    "RbfError", "create_victim", "create_attack", "create_defense", "load_dataset",
    "list_victims", "list_attacks", "list_defenses", "list_datasets", "__version__",
]


def create_victim(name: str, *, device: str = "cpu", **kwargs: Any):
    """Build a frozen, eval-mode victim. ``arch.weights`` passes ``weights=<tag>``."""
    arch, _, tag = name.partition(".")
    if tag:
        kwargs.setdefault("weights", tag)
    return VICTIMS.get(arch).factory(device=device, **kwargs)


def create_attack(name: str, **kwargs: Any):
    return ATTACKS.get(name).factory(**kwargs)


def create_defense(name: str, **kwargs: Any):
    return DEFENSES.get(name).factory(**kwargs)


def load_dataset(name: str, **kwargs: Any):
    return DATASETS.get(name).factory(**kwargs)


def list_victims() -> list[str]:
    return VICTIMS.names()


def list_attacks() -> list[str]:
    return ATTACKS.names()


def list_defenses() -> list[str]:
    return DEFENSES.names()


def list_datasets() -> list[str]:
    return DATASETS.names()
