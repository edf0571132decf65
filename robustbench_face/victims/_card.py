"""Victim cards: what a ``victims/<name>.toml`` declares, merged per variant, and the generic build.

A card's top level declares ``head`` (the output kind), ``task``, ``alignment`` and an
``[input]`` table (:class:`~robustbench_face.preprocess.InputSpec`); ``[archs.<arch>]`` (cards
that register several victims) and ``[variants."<arch>.<weights>"]`` override any of them, and
``[variants."x".input]`` overrides single keys of ``[input]``. The merged table of one variant
is all a victim needs besides its weight file, so :func:`info` describes a victim without
building it, and :func:`build_model` builds any ONNX / TorchScript victim from it (the same
path a user's card file takes, :mod:`.from_card`). The layout follows timm's pretrained-config
registry (R. Wightman, "PyTorch Image Models", 2019).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..cards import load_card, variant
from ..errors import InputError
from ..heads import get_head
from ..preprocess import InputSpec
from ..registry import VICTIMS

TASKS = ("reid", "face", "affect")
_NOT_MERGED = ("variants", "archs")


def merge(*tables: dict[str, Any]) -> dict[str, Any]:
    """Later tables override earlier ones key by key; ``input`` tables merge key by key too.

    >>> merge({"head": "logits", "input": {"size": [8, 8], "scale": 1}}, {"input": {"scale": 255}})
    {'head': 'logits', 'input': {'size': [8, 8], 'scale': 255}}
    """
    out: dict[str, Any] = {}
    for t in tables:
        for k, v in t.items():
            if k in _NOT_MERGED:
                continue
            out[k] = {**out.get(k, {}), **v} if k == "input" and isinstance(v, dict) else v
    return out


def resolve(card_name: str, weights: str | None = None, arch: str | None = None) -> tuple[str, dict[str, Any]]:
    """(full variant name, merged table) of ``<arch or card>.<weights>``; the card's (or arch's)
    default when ``weights`` is None; an unknown tag raises listing the variants."""
    card = load_card("victims", card_name)
    arch_table = card.get("archs", {}).get(arch, {}) if arch else {}
    prefix = arch or card_name
    default = arch_table.get("default") or card.get("default", "")
    tag = weights or default.partition(".")[2]
    full = f"{prefix}.{tag}"
    return full, merge(card, arch_table, variant(card, full, card_name))


def alignment_of(table: dict[str, Any]) -> str | None:
    a = table.get("alignment", "none")
    return None if a in (None, "", "none") else str(a)


def spec_of(table: dict[str, Any], where: str) -> InputSpec:
    return InputSpec.from_card(table.get("input"), where)


def describe(table: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """``{"name", "head", "task", "alignment", "input_size"}`` of a merged table, validated."""
    for key in ("head", "task"):
        if not table.get(key):
            raise InputError(f"{where}: {key} is required (head: embedding, logits, regression or "
                             f"multilabel; task: {', '.join(TASKS)})")
    try:
        head = get_head(table["head"]).kind
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if table["task"] not in TASKS:
        raise InputError(f"{where}: task must be one of {', '.join(TASKS)}, got {table['task']!r}")
    spec = spec_of(table, where)
    return {"name": name, "head": head, "task": table["task"], "alignment": alignment_of(table),
            "input_size": list(spec.size)}


def info_for(card_name: str, arch: str | None = None) -> Callable[..., dict[str, Any]]:
    """The ``factory.info(weights=None)`` of a card-described victim (read, never built)."""
    def info(weights: str | None = None, **_: Any) -> dict[str, Any]:
        full, table = resolve(card_name, weights, arch)
        return describe(table, full, f"victims/{card_name}.toml [{full}]")
    return info


def register(name: str, card_name: str, factory: Callable[..., Any], summary: str,
             arch: str | None = None) -> Callable[..., Any]:
    """Register ``factory`` as victim ``name``, described by ``victims/<card_name>.toml``."""
    factory.card = card_name  # Entry.card: factories defined here would otherwise name this module
    factory.info = info_for(card_name, arch)
    factory.__doc__ = factory.__doc__ or summary
    VICTIMS.register(name, summary=summary)(factory)
    return factory


def build_model(table: dict[str, Any], name: str, path: str | Path, device: str = "cpu", *,
                where: str = "card"):
    """A frozen, checked :class:`~._model.ModelVictim` from a merged card table and its model file."""
    from ._model import ModelVictim, load_network, parse_names, parse_slice

    meta = describe(table, name, where)
    net = load_network(path, table.get("format"), table.get("output_name"))
    labels = parse_names(table.get("classes") if meta["head"] == "logits" else table.get("au_names"))
    victim = ModelVictim(net, name, spec_of(table, where), meta["head"], labels=labels,
                         outputs=parse_slice(table.get("outputs")), activation=table.get("activation"),
                         alignment=meta["alignment"], task=meta["task"], output_name=table.get("output_name"))
    return victim.finalize(device).check_outputs()


def build_builtin(card_name: str, weights: str | None = None, device: str = "cpu", arch: str | None = None):
    """A built-in card's ONNX / TorchScript variant, its weight file resolved by the card."""
    from ..cards import resolve_weights

    full, table = resolve(card_name, weights, arch)
    return build_model(table, full, resolve_weights(card_name, full), device,
                       where=f"victims/{card_name}.toml [{full}]")
