"""The training loop of the learned patch attacks (``rbf train cond_patch`` / ``patch_universal``).

A run writes ``<out>.safetensors`` and its JSON card (the attack's ``save``) every
``save_every`` steps and at the end, and beside them ``<out>.resume.pt`` (float32 weights,
optimiser, scheduler and RNG state, history; never shipped), from which ``--resume`` continues
with exactly the steps it would have taken. Only the time spent in steps counts as wall time,
so a resumed run reports the same training cost as one that was never interrupted.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ...errors import InputError

log = logging.getLogger(__name__)


def hyper_parameters(attack: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over ``defaults``, refusing unknown names; applies ``threads`` at once."""
    unknown = set(given) - set(defaults)
    if unknown:
        raise InputError(f"{attack} train: unknown hyper-parameter(s) {sorted(unknown)}; "
                         f"known: {', '.join(sorted(defaults))}")
    hp = {**defaults, **given}
    if hp.get("threads"):
        torch.set_num_threads(int(hp["threads"]))
    return hp


class TrainLoop:
    """Steps ``start..steps`` of one run, its history and its resume state.

    ``state`` names what a resume must restore: modules, optimisers and schedulers (by their
    ``state_dict``), ``torch.Generator`` (by its RNG state) and tensors being optimised
    directly (a universal patch, by value).
    """

    def __init__(self, out: Path, steps: int, state: dict[str, Any], *, log_every: int = 10,
                 save_every: int = 100, desc: str = "train"):
        self.out, self.steps, self.state, self.desc = Path(out), int(steps), state, desc
        self.log_every, self.save_every = int(log_every), int(save_every)
        self.state_path = self.out.with_suffix(".resume.pt")
        self.step, self.history, self.wall = 0, [], 0.0

    def resume(self) -> bool:
        """Restore the state saved beside ``out``; False (nothing changed) when there is none."""
        if not self.state_path.is_file():
            return False
        st = torch.load(self.state_path, map_location="cpu", weights_only=False)
        for name, obj in self.state.items():
            _restore(obj, st[name])
        self.step, self.history, self.wall = st["step"], st["history"], st["wall"]
        log.info("resumed %s at step %d", self.state_path, self.step)
        return True

    def run(self, step: Callable[[], tuple[Tensor, dict[str, float]]], opt: torch.optim.Optimizer,
            save: Callable[["TrainLoop"], None], after_step: Callable[[], None] | None = None) -> None:
        """Until ``steps``: ``loss, logs = step()``, one optimiser step, ``after_step()``
        (a scheduler, a clamp); ``save(self)`` writes the attack's checkpoint and card."""
        from tqdm.auto import tqdm

        ema: dict[str, float] = {}
        bar = tqdm(range(self.step, self.steps), desc=self.desc, unit="step", initial=self.step,
                   total=self.steps)
        for _ in bar:
            ts = time.perf_counter()
            loss, logs = step()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step()
            self.wall += time.perf_counter() - ts
            for k, v in {"loss": float(loss.detach()), **logs}.items():  # EMA 0.9: one step of
                ema[k] = 0.9 * ema.get(k, v) + 0.1 * v                     # batch 8-16 is noise
            self.step += 1
            if self.step % self.log_every == 0 or self.step == self.steps:
                self.history.append({"step": self.step, "wall_s": round(self.wall, 1),
                                     **{k: round(v, 4) for k, v in ema.items()}})
                bar.set_postfix({k: f"{v:.3f}" for k, v in ema.items()})
            if self.step % self.save_every == 0 or self.step == self.steps:
                self.save(save)
        self.save(save)  # also when there was nothing to do (steps <= start): a checkpoint exists

    def save(self, save: Callable[["TrainLoop"], None]) -> None:
        save(self)
        torch.save({**{name: _snapshot(obj) for name, obj in self.state.items()}, "step": self.step,
                    "history": self.history, "wall": self.wall}, self.state_path)


def _snapshot(obj: Any) -> Any:
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    return obj.state_dict()


def _restore(obj: Any, saved: Any) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(saved)
    elif isinstance(obj, Tensor):
        with torch.no_grad():
            obj.copy_(saved)
    else:
        obj.load_state_dict(saved)
