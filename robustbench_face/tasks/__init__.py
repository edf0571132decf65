"""Task runners: one per field, each a :class:`~._template.Task` (load the inputs, draw the
targets, attack, score), driven by :func:`~._template.run_task`.

A task knows its field's protocol (re-ID: Market-1501 mAP/CMC; faces: verification at a FAR;
affect: flip and targeted rates). ``robustbench_face.runner`` picks one by the dataset's
task, except that a victim with an affect head (logits, regression, multilabel) makes any
dataset an affect run.
"""

from __future__ import annotations

from ..errors import InputError
from ._template import Context, Crafted, Row, Task, craft, run_task
from .affect import Affect
from .face import Face
from .reid import Reid

TASKS: dict[str, Task] = {t.name: t for t in (Reid(), Face(), Affect())}

__all__ = ["TASKS", "Context", "Crafted", "Row", "Task", "craft", "get_task", "run_task"]


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise InputError(f"no runner for task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
