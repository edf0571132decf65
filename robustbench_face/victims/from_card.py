"""``from_card``: a user's ONNX or TorchScript model as a victim, declared by a card file, no code.

``create_victim("path/to/card.toml")`` or ``rbf run --victim path/to/card.toml``. The card names
the model file (relative to the card's folder, or absolute) and its sha256 (checked before the
file is read; a mismatch is never used), the format, the head, the task, the alignment and the
``[input]`` spec (:class:`~robustbench_face.preprocess.InputSpec`): the same contract the
built-in ONNX victims declare on their own cards, built by the same code (:mod:`._card`). The
schema, with an example, is ``victims/from_card.toml``. Declaring the preprocessing as data
follows timm's pretrained configs (R. Wightman, "PyTorch Image Models", 2019); onnx2torch
keeps ONNX graphs differentiable (:mod:`._model`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..assets import _check, sha256sum
from ..errors import AssetError, InputError
from . import _card
from ._model import guess_format

ACCEPTED = ("name", "summary", "paper", "licence", "notes", "file", "sha256", "format", "head", "task",
            "alignment", "output_name", "outputs", "activation", "classes", "au_names", "input")


def read_card_file(path: str | Path) -> tuple[dict[str, Any], Path]:
    """(table, path) of a user's victim card; unknown keys and bad TOML raise :class:`InputError`."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise AssetError(f"victim card file not found: {p}")
    try:
        table = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: not a valid TOML card: {exc}") from None
    unknown = sorted(set(table) - set(ACCEPTED))
    if unknown:
        hint = " (the graph output is output_name)" if "output" in unknown else ""
        raise InputError(f"{p}: unknown key(s) {', '.join(unknown)}{hint}; accepted: {', '.join(ACCEPTED)} "
                         "(schema: victims/from_card.toml)")
    table.setdefault("alignment", "none")
    return table, p


def model_file(table: dict[str, Any], card: Path) -> Path:
    """The card's model file, sha256-checked (a file that differs is never used)."""
    if not table.get("file"):
        raise InputError(f"{card}: file = \"model.onnx\" is required (relative to the card's folder, or absolute)")
    path = Path(table["file"]).expanduser()
    path = path if path.is_absolute() else card.parent / path
    if not path.is_file():
        raise AssetError(f"{card}: model file {path} not found")
    if not table.get("sha256"):
        raise InputError(f"{card}: sha256 is required; {path.name} has sha256 {sha256sum(path)}: "
                         "if that is the file you mean, put it on the card")
    return _check(path, str(table["sha256"]))


def victim_name(table: dict[str, Any], card: Path) -> str:
    return str(table.get("name") or card.stem)


def from_card(path: str, weights: str | None = None, device: str = "cpu"):
    """A user's ONNX / TorchScript model declared by a card file (path=card.toml)."""
    if weights is not None:
        raise InputError(f"victim from_card takes path=<card.toml>, not weights={weights!r}")
    table, card = read_card_file(path)
    file = model_file(table, card)
    table.setdefault("format", guess_format(file))
    return _card.build_model(table, victim_name(table, card), file, device, where=str(card))


def _info(path: str | None = None, weights: str | None = None, **_: Any) -> dict[str, Any] | None:
    """What the card file declares, without reading the model file (None without a path)."""
    if path is None:
        return None
    table, card = read_card_file(path)
    return _card.describe(table, victim_name(table, card), str(card))


def _example(tmp_path: Path) -> dict[str, Any]:
    """A card file for a tiny real ONNX model, as a user would write it (contract tests)."""
    from ._model import tiny_onnx

    model = tiny_onnx(Path(tmp_path) / "tiny_embedder.onnx", 16)
    card = Path(tmp_path) / "tiny_embedder.toml"
    card.write_text(f'file = "{model.name}"\nsha256 = "{sha256sum(model)}"\nhead = "embedding"\n'
                    'task = "face"\n\n[input]\nsize = [16, 16]\n', encoding="utf-8")
    return {"path": str(card)}


_card.register("from_card", "from_card", from_card,
               summary="a user's ONNX / TorchScript model declared by a card file (path=card.toml)")
from_card.info = _info
from_card.example = _example
