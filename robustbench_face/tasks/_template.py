"""The one task template: load the inputs, draw the targets, attack, score.

Re-ID, face verification and affect runs are the same four steps; a field fills them in
(``tasks/reid.py``, ``tasks/face.py``, ``tasks/affect.py``) and declares its two modes
(untargeted, targeted) and its own options (a dataclass: face runs take ``far`` and ``split``,
affect runs ``target_class`` and ``split``, re-ID none). :func:`run_task` is the only driver,
so the attack step -- batching, timing, query counting, perturbation size, and scoring each
adversarial batch on every victim before dropping it -- is shared, and every step returns a
typed value: the field's ``Inputs``, a target tensor or None, an
:class:`~robustbench_face.measure.AttackOutcome`, and one :class:`Row` per evaluated victim.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
from torch import Tensor

from ..errors import InputError
from ..measure import AttackOutcome, attack_and_measure


@dataclass
class NoOptions:
    """A task without options of its own."""


@dataclass
class Context:
    """Everything a task step may read: the run's settings, data, attack and victims."""

    cfg: Any                        # runner.RunConfig (generic settings: seed, device, limit, ...)
    options: Any                    # the task's Options instance
    ds: Any                         # datasets.ImageDataset
    mode: str
    targeted: bool
    attack: Callable | None
    victims: dict[str, Any]         # attacked victim first, then eval (transfer) victims
    cache: Any = None               # clean_cache.CleanCache shared by a benchmark grid's cells, or None

    @property
    def names(self) -> list[str]:
        return list(self.victims)

    @property
    def attacked(self):
        return self.victims[self.names[0]]

    @property
    def attack_name(self) -> str:
        return self.cfg.attack

    def clean(self, victim, what: str, samples: list, images, desc: str | None = None):
        """The victim's outputs on clean ``images`` (of ``samples``), through the shared cache."""
        from ..clean_cache import clean_outputs
        from ..measure import embed

        bs, dev = self.cfg.batch_size, self.cfg.device
        return clean_outputs(self.cache, victim, what, samples, bs, dev,
                             lambda: embed(victim, images, bs, dev, desc=desc))


@dataclass
class Row:
    """One evaluated victim's results: the columns every field shares, then its own."""

    task: str
    victim: str
    eval_victim: str
    n_queries: int
    cost: dict[str, Any] = field(default_factory=dict)  # AttackOutcome.columns(); {} for clean runs
    n_available: int | None = None  # queries / images / pairs the protocol has (--limit draws from them)
    partial: bool | None = None     # True when --limit left some out: never ranked beside full rows

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("cost", "extra"):
                out.update(v)
            elif v is not None:
                out[f.name] = v
        return out


class Task:
    """A field's protocol; subclasses fill in the four steps (module docstring)."""

    name: ClassVar[str]
    modes: ClassVar[tuple[str, str]]          # (untargeted, targeted)
    aliases: ClassVar[dict[str, str]] = {}    # other spellings of a mode (face: evasion -> dodging)
    Options: ClassVar[type] = NoOptions
    # the attacked victim's row columns (clean, adversarial) of the metric an attack lowers or
    # raises; None: 0 on clean inputs (a success rate). ``rbf interpret``'s causal check reads it
    metric: ClassVar[tuple[str | None, str]] = (None, "success_rate")

    def resolve_mode(self, mode: str | None) -> tuple[str, bool]:
        """(mode, targeted) for ``--mode`` (None: the untargeted mode), or an error listing them."""
        mode = self.aliases.get(mode, mode) if mode else self.modes[0]
        if mode not in self.modes:
            raise InputError(f"--mode {mode} does not apply to {self.name} runs; "
                             f"use one of: {', '.join(self.modes)}")
        return mode, mode == self.modes[1]

    def options(self, given: dict[str, Any]):
        """The task's options from ``given``; a key the task does not take is refused."""
        known = {f.name for f in dataclasses.fields(self.Options)}
        extra = sorted(set(given) - known)
        if extra:
            flags = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise InputError(f"{flags} {'does' if len(extra) == 1 else 'do'} not apply to {self.name} "
                             f"runs (they take: {', '.join(sorted(known)) or 'no task options'})")
        return self.Options(**given)

    def check(self, options, mode: str, targeted: bool) -> None:
        """Cross-checks of options against the mode, before any work (default: none)."""

    def inputs(self, ctx: Context) -> Any:
        raise NotImplementedError

    def targets(self, ctx: Context, inputs) -> Tensor | None:
        """The per-input attack targets of a targeted run (called only then)."""
        raise NotImplementedError

    def attack_images(self, ctx: Context, inputs) -> Tensor:
        return inputs.images

    def score(self, ctx: Context, inputs, outcome: AttackOutcome) -> list[Row]:
        raise NotImplementedError

    def success(self, ctx: Context, inputs, outputs: np.ndarray) -> np.ndarray:
        """Per attacked input, from the attacked victim's ``outputs`` on the attacked inputs:
        1.0 the attack succeeded, 0.0 it failed, NaN not scored (the field's eligibility rule);
        ``success_rate`` is the mean over the scored ones."""
        raise NotImplementedError


@dataclass
class Crafted:
    """The first three steps' results: the field's inputs, the targets and the attack outcome."""

    inputs: Any
    targets: Tensor | None
    outcome: AttackOutcome


def craft(task: Task, ctx: Context, keep_images: bool = False) -> Crafted:
    """Load the inputs, draw the targets, attack (``keep_images``: keep the adversarial images
    in ``outcome.x_adv``); the attack step is the same for every field."""
    inputs = task.inputs(ctx)
    targets = task.targets(ctx, inputs) if ctx.targeted and ctx.attack is not None else None
    cfg = ctx.cfg
    outcome = attack_and_measure(ctx.attack, ctx.attacked, task.attack_images(ctx, inputs), targets,
                                 cfg.batch_size, cfg.device, desc=f"{cfg.attack} on {ctx.attacked.name}",
                                 score=ctx.victims, keep_images=keep_images)
    return Crafted(inputs, targets, outcome)


def run_task(task: Task, ctx: Context) -> list[Row]:
    """The four steps, in order."""
    c = craft(task, ctx)
    return task.score(ctx, c.inputs, c.outcome)
