"""Action-unit head: per-AU probabilities (``output = "multilabel"``, ``victim.au_names``).

Untargeted: ``BCE(f(x'), 1[f(x) > .5])``, flip the clean AU pattern; targeted:
``-BCE(f(x'), t)`` toward a 0/1 pattern. ``--target-class`` is an AU pattern such as
``AU12=1,AU4=0``; the AUs it does not name keep their clean state as the goal.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError
from ..metrics import affect as M
from ._base import Head, Score


def au_names_of(victim, n: int | None = None) -> tuple[str, ...]:
    names = getattr(victim, "au_names", None)
    if names:
        return tuple(names)
    n = n if n is not None else (getattr(victim, "expected", 0) or 0)
    return tuple(f"AU{i}" for i in range(n))


def parse_au_pattern(spec: str, au_names) -> dict[int, int]:
    """``"AU12=1,AU4=0"`` -> {column: 0/1}; ``12`` matches ``AU12``; on/off/true/false accepted.

    >>> parse_au_pattern("AU12=1, 4=off", ("AU4", "AU12"))
    {1: 1, 0: 0}
    """
    names = [str(a).strip().upper() for a in au_names]
    out: dict[int, int] = {}
    for item in filter(None, (s.strip() for s in str(spec).split(","))):
        key, eq, val = (p.strip() for p in item.partition("="))
        key = key.upper() if key.upper().startswith("AU") else f"AU{key}"
        state = {"1": 1, "on": 1, "true": 1, "0": 0, "off": 0, "false": 0}.get(val.lower())
        if not eq or state is None:
            raise InputError(f"--target-class {spec!r}: bad item {item!r}; expected AU<n>=1 or AU<n>=0")
        if key not in names:
            raise InputError(f"--target-class {spec!r}: {key} is not an output of this victim; "
                             f"its AUs: {', '.join(names)}")
        out[names.index(key)] = state
    if not out:
        raise InputError(f"--target-class {spec!r}: empty AU pattern; expected e.g. AU12=1,AU4=0")
    return out


class MultilabelHead(Head):
    kind = "multilabel"
    label = "action_units"
    untargeted_goal = "flip the clean action-unit pattern"
    targeted_goal = "force a target action-unit pattern"

    def objective(self, ref: Tensor, target: Tensor | None) -> Score:
        goal = (ref > 0.5).to(ref.dtype) if target is None else target.to(ref.dtype)
        sign = 1.0 if target is None else -1.0
        return lambda out: sign * F.binary_cross_entropy(
            out.clamp(1e-6, 1 - 1e-6), goal, reduction="none").sum(1)

    def parse_target(self, spec: str, victim) -> dict[int, int]:
        return parse_au_pattern(spec, au_names_of(victim))

    def target_tensor(self, parsed: dict[int, int], clean: Tensor) -> Tensor:
        goal = (clean > 0.5).to(clean.dtype)
        for col, state in parsed.items():
            goal[:, col] = float(state)
        return goal

    def width(self, victim):
        names = getattr(victim, "au_names", None)
        return (len(names), "AU names") if names else (None, "")

    def references(self, ds, idx, victim, n_out):
        if "au" not in ds.meta:
            return None
        au = np.asarray(ds.meta["au"], dtype=int)[idx]
        names, ds_names = getattr(victim, "au_names", None), ds.meta.get("au_names")
        same = names and ds_names and [str(a).upper() for a in ds_names] == [str(a).upper() for a in names]
        if au.shape[1] != n_out or (names and ds_names and not same):
            raise InputError(f"dataset {ds.name!r} AUs {list(ds_names or [])} ({au.shape[1]}) do not match "
                             f"victim {victim.name!r} AUs {list(names or [])} ({n_out} outputs)")
        return au

    def score(self, clean, adv, labels, target, victim, seed: int = 0):
        return M.score_action_units(clean, adv, labels, target, getattr(victim, "au_names", None))

    def success(self, clean, adv, labels, target, victim):
        return M.au_success(clean, adv, target)
