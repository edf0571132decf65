"""Task runners: one per field, each ``(cfg, dataset, mode, attack, victims) -> rows``.

A task runner knows its field's protocol (re-ID: Market-1501 mAP/CMC; faces: verification
at a FAR; affect: flip and targeted rates). ``robustbench_face.runner.run`` picks one by
``dataset.task``, except that a victim with an affect head (logits, regression, multilabel)
makes any dataset an affect run.
"""

from __future__ import annotations

import importlib

_TASK_MODULES = {"reid": "reid", "face": "face", "affect": "affect"}


class _Tasks(dict):
    def __missing__(self, task: str):
        from ..errors import InputError

        if task not in _TASK_MODULES:
            raise InputError(f"no runner for task {task!r}; known: {', '.join(_TASK_MODULES)}")
        try:
            mod = importlib.import_module(f"{__name__}.{_TASK_MODULES[task]}")
        except ModuleNotFoundError as exc:
            raise InputError(f"the {task} runner is not available: {exc}") from None
        self[task] = mod.run_task
        return mod.run_task


TASKS = _Tasks()
