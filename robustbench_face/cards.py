"""TOML cards: the top-level ``models/``, ``attacks/``, ``defenses/`` and ``benchmarks/`` folders.

A card is named like its plugin (``models/osnet.toml`` for the ``osnet_*`` victims) and holds
the paper, licence, defaults, weight file + sha256 + URL per variant and reported numbers.
In a source checkout (editable install) the folders sit beside the package; a wheel carries
them as ``robustbench_face/_cards/<kind>``.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from .errors import UnknownNameError

_PKG = Path(__file__).resolve().parent
KINDS = ("models", "attacks", "defenses", "benchmarks")


def card_dirs(kind: str) -> list[Path]:
    return [p for p in (_PKG / "_cards" / kind, _PKG.parent / kind) if p.is_dir()]


def card_path(kind: str, name: str) -> Path:
    for d in card_dirs(kind):
        p = d / f"{name}.toml"
        if p.is_file():
            return p
    raise UnknownNameError(f"no card {kind}/{name}.toml; available: {', '.join(list_cards(kind))}")


@functools.lru_cache(maxsize=None)
def load_card(kind: str, name: str) -> dict[str, Any]:
    """Parse ``<kind>/<name>.toml``.

    >>> load_card("models", "osnet")["default"]
    'osnet_x0_25.market1501'
    """
    with open(card_path(kind, name), "rb") as f:
        return tomllib.load(f)


def list_cards(kind: str) -> list[str]:
    names: set[str] = set()
    for d in card_dirs(kind):
        names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def variant(card: dict[str, Any], tag: str, card_name: str) -> dict[str, Any]:
    """The ``[variants."<tag>"]`` table of a card, or an error listing the variants."""
    variants = card.get("variants", {})
    if tag not in variants:
        raise UnknownNameError(
            f"unknown weights {tag!r} for {card_name}; available: {', '.join(sorted(variants))}"
        )
    return variants[tag]


def resolve_weights(card_name: str, variant_name: str):
    """Path to the weight file of ``models/<card_name>.toml``'s variant, fetched if needed."""
    from .assets import resolve

    v = variant(load_card("models", card_name), variant_name, card_name)
    return resolve(v["file"], v.get("sha256") or None, v.get("url") or None,
                   pypi=v.get("pypi"), member=v.get("member"))
