"""The small base every built-in attack uses, and plugins may (``docs/write_an_attack.md``).

In the spirit of foolbox's ``AttackWithDistance`` and torchattacks' one-file attacks, an
attack is a class with

* a required ``distance`` (``"linf"``, ``"l2"`` or ``"patch"``), checked when the class is
  defined, and for patch attacks a ``region`` (the budget is the region's area);
* the victim heads it supports (``heads``) and whether it does untargeted and targeted runs,
  checked by :meth:`Attack.validate` before any model is built;
* options = the constructor's keyword parameters, typed by their annotations: ``create_attack``
  refuses unknown or badly typed ones in one line (:mod:`robustbench_face.options`). Every
  attack takes ``seed`` (the run's ``--seed``): an attack that draws random numbers seeds its
  own generator from it on every call, so a call's output depends only on its inputs;
* :meth:`Attack.describe`: the settings a results row records (every option, the region, a
  checkpoint's sha256), which wrappers forward.

``__call__(victim, images, target=None) -> adversarial images`` is the whole protocol. Attacks
know nothing of datasets, tasks or CSVs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from ..errors import InputError
from ..heads import KINDS
from ..options import signature_options
from ._regions import Region

DISTANCES = ("linf", "l2", "patch")


class Attack:
    """Base class of attacks: declared distance, heads, modes, typed options and a seed."""

    name: ClassVar[str] = ""
    heads: ClassVar[tuple[str, ...]] = KINDS
    untargeted: ClassVar[bool] = True
    targeted: ClassVar[bool] = True
    region: Region | None = None
    seed: int = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        d = getattr(cls, "distance", None)
        if d is None:
            raise TypeError(f"attack class {cls.__name__} must declare distance "
                            f"({', '.join(DISTANCES)})")
        if isinstance(d, str) and d not in DISTANCES:
            raise TypeError(f"attack class {cls.__name__}: distance {d!r} is not one of {DISTANCES}")
        heads = getattr(cls, "heads", ())
        unknown = set(heads) - set(KINDS) if isinstance(heads, tuple) else set()
        if unknown:
            raise TypeError(f"attack class {cls.__name__}: unknown heads {sorted(unknown)}")

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def validate(self, victim: str, head: str, mode: str, targeted: bool) -> None:
        """Refuse a victim head or a mode this attack does not do, before anything is built."""
        if head not in self.heads:
            raise InputError(f"attack {self.name} works on {', '.join(self.heads)} victims; "
                             f"{victim} has a {head} head")
        if targeted and not self.targeted:
            raise InputError(f"attack {self.name} is untargeted only; --mode {mode} needs a "
                             "targeted attack")
        if not targeted and not self.untargeted:
            raise InputError(f"attack {self.name} is targeted only; --mode {mode} gives no target")

    def describe(self) -> dict[str, Any]:
        """Every option's value (plus the region for patch attacks): what a results row records."""
        out: dict[str, Any] = {"attack": self.name, "distance": self.distance}
        for key in signature_options(type(self)) or {}:
            out[key] = plain(getattr(self, key, None))
        if self.region is not None:
            out["region"] = plain(self.region)
            out["region_area"] = round(self.region.area, 6)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.describe().items() if k != "attack")
        return f"{type(self).__name__}({args})"


class AttackWrapper(Attack):
    """Runs an inner attack differently (adaptively, scored, ...); looks like it otherwise."""

    distance = property(lambda self: distance_of(self.attack))  # type: ignore[assignment]

    def __init__(self, attack):
        self.attack = attack

    @property
    def name(self) -> str:  # type: ignore[override]
        return getattr(self.attack, "name", type(self.attack).__name__)

    @property
    def region(self):  # type: ignore[override]
        return region_of(self.attack)

    @property
    def heads(self):  # type: ignore[override]
        return getattr(self.attack, "heads", KINDS)

    def validate(self, victim: str, head: str, mode: str, targeted: bool) -> None:
        validate(self.attack, victim, head, mode, targeted)

    def describe(self) -> dict[str, Any]:
        return describe(self.attack)

    def __repr__(self) -> str:
        return f"{type(self).__name__}[{self.attack!r}]"

    def __getattr__(self, name: str):
        if name == "attack":  # not set yet (during unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.attack, name)


# -- the same questions asked of any attack, built-in or plug-in ---------------------------

def distance_of(attack) -> str:
    d = getattr(attack, "distance", None)
    if d not in DISTANCES:
        raise InputError(f"attack {getattr(attack, 'name', type(attack).__name__)!r} declares no "
                         f"distance (one of {', '.join(DISTANCES)}); got {d!r}")
    return d


def region_of(attack) -> Region | None:
    r = getattr(attack, "region", None)
    return r if isinstance(r, Region) else None


def validate(attack, victim: str, head: str, mode: str, targeted: bool) -> None:
    fn = getattr(attack, "validate", None)
    if callable(fn):
        fn(victim, head, mode, targeted)


def describe(attack) -> dict[str, Any]:
    """``attack.describe()``, or for a plug-in without it its name, distance and repr."""
    fn = getattr(attack, "describe", None)
    if callable(fn):
        return fn()
    return {"attack": getattr(attack, "name", type(attack).__name__),
            "distance": getattr(attack, "distance", None), "repr": repr(attack)}


def plain(value: Any) -> Any:
    """A JSON-friendly, machine-independent form of an option value.

    >>> plain(Region(0.25, 0.25, 0.25, 0.5)), plain(1 / 3)
    ([0.25, 0.25, 0.25, 0.5], 0.333333333333)
    """
    from ..cards import relative_to_repo

    if isinstance(value, Region):
        return [value.top, value.left, value.height, value.width]
    if isinstance(value, Path):
        return relative_to_repo(value)
    if isinstance(value, float):
        return value if math.isnan(value) or math.isinf(value) else round(value, 12)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
