"""What a victim's head decides: the target an attack takes, the objective it climbs, the
output width, and how a task scores it. One object per ``victim.output`` kind.

Every place that used to branch on ``if kind == "logits"`` (the attack objective, the affect
runner's target parsing and scoring, the victim's width check) asks the head instead, so a new
head is one new module here.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np
from torch import Tensor

from ..errors import InputError

Score = Callable[[Tensor], Tensor]  # victim output (N, ...) -> (N,) score to maximise


class Head:
    kind: ClassVar[str]            # the victim's ``output`` value
    label: ClassVar[str]           # the name results rows and cards use
    untargeted_goal: ClassVar[str]
    targeted_goal: ClassVar[str]

    def objective(self, ref: Tensor, target: Tensor | None) -> Score:
        """Per-sample score to maximise, given the victim's clean outputs ``ref``."""
        raise NotImplementedError

    def parse_target(self, spec: str, victim) -> Any:
        """A user's ``--target-class`` text in this head's terms."""
        raise InputError(f"{self.label} victims take no --target-class: their targets are "
                         "identities, drawn by the task (impersonation)")

    def target_tensor(self, parsed: Any, clean: Tensor) -> Tensor:
        """The per-image attack target for a parsed target and the clean outputs (N, K)."""
        raise NotImplementedError

    def width(self, victim) -> tuple[int | None, str]:
        """(number of outputs the head needs, what they are); None when any width will do."""
        return None, ""

    def check_width(self, victim, out) -> None:
        """The victim's output width must match its declared head (a plugin may lie)."""
        want, what = self.width(victim)
        shape = tuple(out.shape)
        if len(shape) != 2 or (want is not None and shape[1] != want):
            raise InputError(f"victim {getattr(victim, 'name', victim)!r}: declared head {self.label!r} "
                             f"expects {want if want is not None else 'N'} outputs ({what}), "
                             f"the model gives shape {shape[1:]}")

    def references(self, ds, idx: np.ndarray, victim, n_out: int) -> np.ndarray | None:
        """Dataset labels for this head on samples ``idx``, or None (clean predictions then)."""
        return None

    def score(self, clean: np.ndarray, adv: np.ndarray, labels, target, victim,
              seed: int = 0) -> tuple[dict, np.ndarray]:
        """(metric columns, per-image success) for the affect task (``metrics.affect``);
        ``seed`` drives the bootstrap intervals."""
        raise InputError(f"{self.label} victims are scored by their field's task (re-ID retrieval "
                         "or face verification), not by the affect task")

    def success(self, clean: np.ndarray, adv: np.ndarray, labels, target, victim) -> np.ndarray:
        """Per-image success of the affect task (1 / 0, NaN = not scored): the indicators
        :meth:`score` returns, at their images' places."""
        raise InputError(f"{self.label} victims are scored by their field's task, not by the affect task")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
