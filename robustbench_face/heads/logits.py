"""Class-logit head (expression classifiers): ``output = "logits"``, ``victim.classes`` names them.

Untargeted: ``CE(f(x'), y)`` with y the clean prediction; targeted: ``-CE(f(x'), t)``, t a class
index. ``--target-class`` is a class name (case-insensitive, common synonyms such as
``happiness``) or an index. Dataset labels are mapped into the victim's class order by name.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError
from ..metrics import affect as M
from ._base import Head, Score

log = logging.getLogger(__name__)

_SYNONYMS = {"anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise",
             "fearful": "fear", "disgusted": "disgust", "contempt": "contempt", "neutrality": "neutral"}


def norm_class(name: str) -> str:
    """A class name for matching: lower case, common synonyms folded.

    >>> norm_class(" Happiness "), norm_class("Anger")
    ('happy', 'angry')
    """
    n = str(name).strip().lower()
    return _SYNONYMS.get(n, n)


def classes_of(victim) -> tuple[str, ...]:
    cls = getattr(victim, "classes", None)
    if not cls:
        raise InputError(f"victim {victim.name!r} has logits but no 'classes' attribute naming them")
    return tuple(cls)


def parse_class(spec: str, classes) -> int:
    """Class name (case-insensitive, common synonyms) or index -> index.

    >>> parse_class("Happy", ("angry", "happy")), parse_class("1", ("angry", "happy"))
    (1, 1)
    """
    text = str(spec).strip()
    if re.fullmatch(r"\d+", text):
        if int(text) < len(classes):
            return int(text)
        raise InputError(f"--target-class {spec}: index out of range 0..{len(classes) - 1}")
    names = [norm_class(c) for c in classes]
    if norm_class(text) in names:
        return names.index(norm_class(text))
    raise InputError(f"--target-class {spec!r} is not a class of this victim; "
                     f"choose from {', '.join(classes)} (or an index 0..{len(classes) - 1})")


class LogitsHead(Head):
    kind = "logits"
    label = "expression"
    untargeted_goal = "change the predicted class"
    targeted_goal = "make the victim predict a target class"

    def objective(self, ref: Tensor, target: Tensor | None) -> Score:
        if target is None:
            y = ref.argmax(1)
            return lambda out: F.cross_entropy(out, y, reduction="none")
        t = target.long()
        return lambda out: -F.cross_entropy(out, t, reduction="none")

    def parse_target(self, spec: str, victim) -> int:
        return parse_class(spec, classes_of(victim))

    def target_tensor(self, parsed: int, clean: Tensor) -> Tensor:
        return torch.full((clean.shape[0],), parsed, dtype=torch.long)

    def width(self, victim):
        return len(classes_of(victim)), "classes"

    def references(self, ds, idx, victim, n_out):
        """Dataset expression labels mapped into the victim's class order (-1 = excluded)."""
        names = ds.meta.get("classes")
        pids = np.array([ds.samples[i].pid for i in idx])
        if not names or not (pids >= 0).any():
            return None
        vic = [norm_class(c) for c in classes_of(victim)]
        mapping = np.array([vic.index(norm_class(c)) if norm_class(c) in vic else -1 for c in names] + [-1])
        if (mapping[:-1] < 0).all():
            raise InputError(f"dataset {ds.name!r} classes {list(names)} share no name with victim "
                             f"{victim.name!r} classes {list(classes_of(victim))}; pass the class "
                             "order the folders use (e.g. classes=...) so labels can be mapped")
        dropped = [c for c, m in zip(names, mapping) if m < 0]
        if dropped:
            log.warning("dataset classes %s have no counterpart in %s: those images are excluded",
                        dropped, victim.name)
        return mapping[np.where((pids >= 0) & (pids < len(names)), pids, -1)]

    def score(self, clean, adv, labels, target, victim, seed: int = 0):
        return M.score_expression(clean, adv, labels, target, classes_of(victim), seed)

    def success(self, clean, adv, labels, target, victim):
        return M.expression_success(clean, adv, labels, target)
