"""Checkpoints of learned patch attacks: float16 safetensors with their settings in the metadata
(so a checkpoint's region or generator config is read without loading its weights), a JSON card
beside them (``<name>.json``: what it was trained on, how, and the loss history), universal
patches, and the shipped checkpoints an attack card names.

Shipped checkpoints are binaries, so they live in the top-level ``checkpoints/`` folder, apart
from the cards; a card names each by file and sha256 (``{ file = "...", sha256 = "..." }``),
resolved and checked by :func:`robustbench_face.cards.checkpoint_path`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import Tensor

from ...errors import InputError, RbfError
from .._regions import Region

DEFAULT_REGION = Region(0.25, 0.25, 0.25, 0.5)  # patches saved before the region was recorded


def save(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str], card: dict) -> None:
    """``tensors`` as float16 safetensors at ``path`` and ``card`` as JSON beside it."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().to(torch.float16).contiguous().cpu() for k, v in tensors.items()}
    save_file(sd, str(path), metadata=metadata)
    path.with_suffix(".json").write_text(json.dumps(card, indent=1, default=str) + "\n")


def metadata(path: str | Path, attack: str) -> dict[str, str]:
    """The safetensors metadata of ``path`` (the header only: no tensor is read)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{attack} checkpoint not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def save_patch(path: Path, patch: Tensor, region: Region, card: dict) -> None:
    meta = {"attack": "patch_universal", "region": json.dumps([region.top, region.left, region.height, region.width])}
    save(path, {"patch": patch}, meta, card)


def load_patch(path: str | Path) -> tuple[Tensor, Region]:
    """A universal patch (3, ph, pw) in [0, 1] and the region it was trained for."""
    from safetensors import safe_open

    meta = metadata(path, "patch_universal")
    with safe_open(str(path), framework="pt") as f:
        if "patch" not in f.keys():
            raise InputError(f"{path} is not a patch_universal checkpoint (no 'patch' tensor)")
        patch = f.get_tensor("patch").float()
    return patch, _region(meta)


def patch_region(path: str | Path) -> Region:
    return _region(metadata(path, "patch_universal"))


def _region(meta: dict[str, str]) -> Region:
    return Region(*json.loads(meta["region"])) if "region" in meta else DEFAULT_REGION


# -- shipped checkpoints ----------------------------------------------------------------------

def card_entries(attack: str) -> tuple[dict | None, dict[str, dict]]:
    """The card's default ``checkpoint`` entry and its ``[checkpoints]`` table (victim -> entry)."""
    from ...cards import load_card

    card = load_card("attacks", attack)
    return card.get("checkpoint"), dict(card.get("checkpoints", {}))


def shipped(attack: str, victim: str | None = None) -> tuple[Path, str | None] | None:
    """(path, sha256) of the checkpoint ``attacks/<attack>.toml`` names for ``victim`` (its
    ``[checkpoints]`` table), or its default ``checkpoint`` when no victim is named; None when
    the card names none for that victim. A missing or altered file raises (AssetError)."""
    from ...cards import checkpoint_path

    default, table = card_entries(attack)
    entry = default if victim is None else table.get(victim) or table.get(full_victim_name(victim))
    if not entry:
        return None
    file, sha = (entry, None) if isinstance(entry, str) else (entry["file"], entry.get("sha256"))
    return checkpoint_path(file, sha), sha


def full_victim_name(victim: str) -> str:
    """The full ``arch.weights`` name a short victim name builds (``dlib_resnet`` ->
    ``dlib_resnet.v1``), from the victim cards' defaults: the runner validates with the name
    the user typed, a built victim carries its full name, and the card tables use the latter."""
    if "." in victim:
        return victim
    from ...cards import list_cards, load_card
    from ...factory import victim_info

    try:
        info = victim_info(victim) or {}
        if info.get("name"):
            return info["name"]
        for card in list_cards("victims"):
            default = str(load_card("victims", card).get("default", ""))
            if default and victim in (card, default.partition(".")[0]):
                return default
    except RbfError:  # an unknown or broken name: the caller reports it as unknown
        pass
    return victim


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime: float) -> str:
    from ...assets import sha256sum

    return sha256sum(Path(path))


def sha256_of(path: str | Path) -> str:
    """sha256 of a checkpoint file, computed once per file version (results rows record it)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime)


def recorded_path(path: str | Path) -> str:
    """How a results row names a checkpoint: relative to the checkout when inside it, else only
    the file name (its sha256, recorded beside, identifies it; an absolute path is one
    machine's)."""
    from ...cards import relative_to_repo

    rel = relative_to_repo(path)
    return Path(rel).name if Path(rel).is_absolute() else rel
