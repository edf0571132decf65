"""TOML cards: the top-level ``victims/``, ``attacks/``, ``defenses/``, ``datasets/``,
``aligners/`` and ``benchmarks/`` folders, and the trained ``checkpoints/`` they point to.

A card is named like its plugin module (``victims/osnet.toml`` for the ``osnet_*`` victims of
``robustbench_face/victims/osnet.py``) and holds the paper, licence, defaults, weight file +
sha256 + URL per variant and reported numbers. Checkpoints we train ourselves are binaries, so
they live apart from the cards, in ``checkpoints/``; a card names them by file and sha256.
In a source checkout (editable install) the folders sit beside the package; a wheel carries
them as ``robustbench_face/_cards/<kind>``.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from .errors import AssetError, UnknownNameError

_PKG = Path(__file__).resolve().parent
KINDS = ("victims", "attacks", "defenses", "datasets", "aligners", "benchmarks")
REPO_ROOT = _PKG.parent  # a source checkout's root (in a wheel: site-packages, unused)


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

    >>> load_card("victims", "osnet")["default"]
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


def resolve_weights(card_name: str, variant_name: str, kind: str = "victims"):
    """Path to the weight file of ``<kind>/<card_name>.toml``'s variant, fetched if needed."""
    from .assets import resolve

    v = variant(load_card(kind, card_name), variant_name, card_name)
    return resolve(v["file"], v.get("sha256") or None, v.get("url") or None,
                   pypi=v.get("pypi"), member=v.get("member"))


def checkpoint_dirs() -> list[Path]:
    return [p for p in (_PKG / "_cards" / "checkpoints", _PKG.parent / "checkpoints") if p.is_dir()]


def checkpoint_path(file: str, sha256: str | None = None) -> Path:
    """A shipped checkpoint named by a card (``file`` inside ``checkpoints/``), sha256-checked.

    The check runs once per process and file (checkpoints are a few MB and read often).
    """
    for d in checkpoint_dirs():
        p = d / file
        if p.is_file():
            if sha256:
                _check_once(str(p), sha256.lower())
            return p
    raise AssetError(f"checkpoint {file} not found in {', '.join(map(str, checkpoint_dirs())) or 'checkpoints/'}"
                     f" (sha256 {sha256 or 'unknown'})")


@functools.lru_cache(maxsize=None)
def _check_once(path: str, sha256: str) -> None:
    from .assets import _check

    _check(Path(path), sha256)


def relative_to_repo(path: str | Path) -> str:
    """``path`` relative to the checkout (or the card folders of a wheel) when it lies inside;
    otherwise the path as given. Results rows never carry a machine's absolute paths of our
    own files.

    >>> relative_to_repo(REPO_ROOT / "checkpoints" / "x.safetensors")
    'checkpoints/x.safetensors'
    """
    p = Path(path).expanduser()
    for root in (_PKG / "_cards", REPO_ROOT):
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return str(path)
