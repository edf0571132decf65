"""robustbench_face: adversarial robustness benchmarks for face, re-ID and affect models.

The Python API mirrors timm: ``create_victim(name)``, ``create_attack(name)``,
``create_defense(name)``, ``load_dataset(name)`` and ``list_victims()`` etc.
A victim name may carry its weights after a dot (``osnet_x0_25.market1501``) or be a card file
(``path/to/card.toml``).
"""

from __future__ import annotations

from ._version import __version__
from .errors import RbfError
from .factory import (create_attack, create_defense, create_victim, list_attacks, list_datasets,
                      list_defenses, list_victims, load_dataset)

__all__ = [
    "RbfError", "create_victim", "create_attack", "create_defense", "load_dataset",
    "list_victims", "list_attacks", "list_defenses", "list_datasets", "__version__",
]
