"""Names to objects: ``create_victim`` / ``create_attack`` / ``create_defense`` / ``load_dataset``.

A name resolves through its registry (timm's ``create_model``), options are checked against
the plugin's declared ones before anything is built (:mod:`.options`), and a victim name may
carry its weights after a dot (``osnet_x0_25.market1501``) or be a card file
(``path/to/card.toml``: a user's ONNX / TorchScript model declared without code, see
``docs/write_a_victim.md``). Re-exported by the package root.
"""

from __future__ import annotations

from typing import Any

from .options import check_options
from .registry import ATTACKS, DATASETS, DEFENSES, VICTIMS


def is_card_file(name: str) -> bool:
    return str(name).endswith(".toml")


def create_victim(name: str, *, device: str = "cpu", **kwargs: Any):
    """A frozen, eval-mode victim: a registered name (``arch.weights`` passes ``weights=<tag>``)
    or a card file ``*.toml`` that declares a model file and its input contract."""
    if is_card_file(name):
        return VICTIMS.get("from_card").factory(path=str(name), device=device, **kwargs)
    arch, _, tag = name.partition(".")
    if tag:
        kwargs.setdefault("weights", tag)
    entry = VICTIMS.get(arch)
    kwargs = check_options(f"victim {arch}", entry.factory, kwargs, reserved=("weights", "device"))
    return entry.factory(device=device, **kwargs)


def create_attack(name: str, **kwargs: Any):
    """An attack ``attack(victim, images, target=None)``; unknown or badly typed options are
    refused with one line listing the accepted ones (e.g. ``create_attack("pgd", eps=4/255)``)."""
    entry = ATTACKS.get(name)
    return entry.factory(**check_options(f"attack {name}", entry.factory, kwargs))


def create_defense(name: str, **kwargs: Any):
    """A defense ``defense(victim) -> victim`` with checked options (``create_defense("jpeg", quality=75)``)."""
    entry = DEFENSES.get(name)
    return entry.factory(**check_options(f"defense {name}", entry.factory, kwargs))


def load_dataset(name: str, **kwargs: Any):
    """A dataset (``ImageDataset``) by name, with checked loader options (``data_root=...``)."""
    entry = DATASETS.get(name)
    return entry.factory(**check_options(f"dataset {name}", entry.factory, kwargs))


def list_victims() -> list[str]:
    return VICTIMS.names()


def list_attacks() -> list[str]:
    return ATTACKS.names()


def list_defenses() -> list[str]:
    return DEFENSES.names()


def list_datasets() -> list[str]:
    return DATASETS.names()


def _info(entry, **kwargs) -> dict[str, Any] | None:
    fn = getattr(entry.factory, "info", None)
    return fn(**kwargs) if callable(fn) else None


def victim_info(name: str) -> dict[str, Any] | None:
    """What a victim's card declares, without building it: ``{"name", "head", "task",
    "alignment", ...}`` (``head`` is the output kind). None for a plug-in that declares nothing
    (its head is then read off the built victim)."""
    if is_card_file(name):
        return _info(VICTIMS.get("from_card"), path=str(name))
    arch, _, tag = name.partition(".")
    return _info(VICTIMS.get(arch), weights=tag or None)


def dataset_info(name: str) -> dict[str, Any] | None:
    """What a dataset's card declares without reading it: ``{"task", "splits", "folder", ...}``."""
    return _info(DATASETS.get(name))
