"""Victim heads: one object per ``victim.output`` kind (see ``_base.py``).

>>> head_of(type("V", (), {"name": "v", "output": "logits"})()).label
'expression'
"""

from __future__ import annotations

from ..errors import InputError
from ._base import Head, Score
from .embedding import EmbeddingHead
from .logits import LogitsHead
from .multilabel import MultilabelHead
from .regression import RegressionHead

HEADS: dict[str, Head] = {h.kind: h for h in (EmbeddingHead(), LogitsHead(), RegressionHead(), MultilabelHead())}
BY_LABEL: dict[str, Head] = {h.label: h for h in HEADS.values()}
KINDS = tuple(HEADS)

__all__ = ["BY_LABEL", "HEADS", "KINDS", "Head", "Score", "get_head", "head_of"]


def get_head(kind: str) -> Head:
    """The head for an output kind (``logits``) or its label (``expression``)."""
    head = HEADS.get(kind) or BY_LABEL.get(kind)
    if head is None:
        raise InputError(f"unknown head {kind!r}; known: {', '.join(HEADS)} "
                         f"(or {', '.join(BY_LABEL)})")
    return head


def head_of(victim) -> Head:
    kind = getattr(victim, "output", None)
    if kind not in HEADS:
        raise InputError(f"victim {getattr(victim, 'name', victim)!r} declares output {kind!r}; "
                         f"expected one of {', '.join(HEADS)}")
    return HEADS[kind]
