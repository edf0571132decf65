"""The one place that wires dataset -> attack -> victims -> metrics -> results rows.

:func:`run` validates the whole configuration before any model is built, so a bad flag costs
nothing; it then hands over to the task runner of the dataset's field (``tasks/reid.py`` for
re-ID, ``tasks/face.py``, ``tasks/affect.py``), appends one row per evaluated victim to the
results CSV and returns the rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Callable

import torch
from torch import Tensor, nn

from . import create_attack, create_defense, create_victim, load_dataset
from .errors import InputError
from .registry import ATTACKS, DEFENSES
from .results import append_rows, provenance

log = logging.getLogger(__name__)

MODES = {
    "reid": ("evasion", "impersonation"),
    "face": ("dodging", "impersonation"),
    "affect": ("untargeted", "targeted"),
}
TARGETED_MODES = {"impersonation", "targeted"}


@dataclass
class RunConfig:
    attack: str
    victim: str
    dataset: str = "mini_mars"
    eval_victims: list[str] = field(default_factory=list)
    defenses: list[str] = field(default_factory=list)
    mode: str | None = None
    seed: int = 0
    device: str = "cpu"
    limit: int | None = None
    out: str = "runs/results.csv"
    data_root: str | None = None
    attack_args: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    target_class: str | None = None  # affect: class / quadrant / AU pattern for targeted mode


def parse_value(text: str) -> Any:
    """CLI value: bool, int, float, a fraction like ``8/255``, or the string itself.

    >>> [parse_value(v) for v in ["true", "3", "0.5", "8/255", "torso"]]
    [True, 3, 0.5, 0.03137254901960784, 'torso']
    """
    low = text.lower()
    if low in ("true", "false", "yes", "no"):
        return low in ("true", "yes")
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if "/" in text:
        try:
            return float(Fraction(text))
        except (ValueError, ZeroDivisionError):
            pass
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value,key=value`` -> (name, kwargs).

    >>> parse_spec("jpeg:quality=75")
    ('jpeg', {'quality': 75})
    """
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"bad option {item!r} in {spec!r}: expected key=value")
        kwargs[key.strip()] = parse_value(val.strip())
    return name.strip(), kwargs


def parse_kv(items: list[str]) -> dict[str, Any]:
    return parse_spec("x:" + ",".join(items))[1] if items else {}


class CountingVictim(nn.Module):
    """Counts images forwarded through a victim (the attack's query cost), else transparent."""

    def __init__(self, victim: nn.Module):
        super().__init__()
        self.victim = victim
        self.images_seen = 0

    def forward(self, x: Tensor) -> Tensor:
        self.images_seen += x.shape[0]
        return self.victim(x)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["victim"], name)


def build_victim(name: str, defenses: list[str], device: str):
    victim = create_victim(name, device=device)
    for spec in defenses:
        dname, kwargs = parse_spec(spec)
        victim = create_defense(dname, **kwargs)(victim)
    return victim


def validate(cfg: RunConfig, task: str) -> str:
    """Check flags against each other before anything heavy happens; returns the mode."""
    modes = MODES[task]
    mode = cfg.mode or modes[0]
    if mode == "evasion" and task == "face":
        mode = "dodging"
    if mode not in modes:
        raise InputError(f"--mode {mode} does not apply to {task} dataset {cfg.dataset!r}; "
                         f"use one of: {', '.join(modes)}")
    if cfg.attack == "none" and mode in TARGETED_MODES:
        raise InputError(f"--attack none with --mode {mode}: a clean run has no target; "
                         "drop --mode or choose an attack")
    if cfg.attack == "none" and cfg.attack_args:
        raise InputError("--attack none takes no attack arguments")
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be >= 1, got {cfg.limit}")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if cfg.attack != "none":
        ATTACKS.get(cfg.attack)  # unknown names fail here, listing the available ones
    for spec in cfg.defenses:
        DEFENSES.get(parse_spec(spec)[0])
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {cfg.device}: CUDA is not available on this machine")
    return mode


def timed_attack(attack: Callable | None, victim, batches, targets=None, desc: str = "attack"):
    """Run ``attack`` batch by batch; returns (adv images, seconds, images forwarded)."""
    from tqdm.auto import tqdm

    counted = CountingVictim(victim)
    out, seconds = [], 0.0
    for i, xb in enumerate(tqdm(batches, desc=desc, unit="batch", leave=False)):
        if attack is None:
            out.append(xb)
            continue
        tb = None if targets is None else targets[i]
        t0 = time.perf_counter()
        out.append(attack(counted, xb, tb).detach())
        seconds += time.perf_counter() - t0
    return torch.cat(out), seconds, counted.images_seen


def perturbation_size(clean: Tensor, adv: Tensor, kind: str) -> float:
    """Mean per-image L-inf, L2, or changed-pixel fraction (``patch``)."""
    d = (adv - clean).flatten(1)
    if kind == "l2":
        return float(d.norm(dim=1).mean())
    if kind == "patch":
        changed = (adv - clean).abs().amax(1) > 0
        return float(changed.flatten(1).float().mean(1).mean())
    return float(d.abs().amax(1).mean())


def run(cfg: RunConfig) -> list[dict[str, Any]]:
    """Evaluate ``cfg``; append one row per evaluated victim to ``cfg.out``; return the rows."""
    from .tasks import TASKS

    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be >= 1, got {cfg.limit}")
    ds = load_dataset(cfg.dataset, data_root=cfg.data_root)
    mode = validate(cfg, ds.task)
    attack = None if cfg.attack == "none" else create_attack(cfg.attack, **cfg.attack_args)
    torch.manual_seed(cfg.seed)
    names = list(dict.fromkeys([cfg.victim, *cfg.eval_victims]))
    victims = {n: build_victim(n, cfg.defenses, cfg.device) for n in names}
    rows = TASKS[ds.task](cfg, ds, mode, attack, victims)
    config = {**asdict(cfg), "mode": mode, "out": None}
    prov = provenance(config)
    base = {"dataset": cfg.dataset, "attack": cfg.attack, "mode": mode,
            "defense": "+".join(cfg.defenses) or "none", "seed": cfg.seed, "device": cfg.device,
            "attack_config": repr(attack) if attack is not None else "", **prov}
    rows = [{**base, **r} for r in rows]
    append_rows(cfg.out, rows)
    return rows
