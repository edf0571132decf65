"""The one place that wires dataset -> attack -> victims -> metrics -> results rows.

:func:`run` validates the whole configuration before any model is built, so a bad flag costs
nothing; it then hands over to the task runner of the dataset's field (``tasks/reid.py`` for
re-ID, ``tasks/face.py``, ``tasks/affect.py``), appends one row per evaluated victim to the
results CSV and returns the rows.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Callable

import torch
from torch import Tensor, nn

from . import create_attack, create_defense, create_victim, load_dataset
from .adaptive import plan
from .errors import InputError
from .registry import ATTACKS
from .results import append_rows, provenance
from .sanity import LossTracker, check_transfer, headline, join_flags

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
    adaptive: str = "auto"  # defended victims: auto | yes | no (see adaptive.plan)
    eot_draws: int = 10  # EOT draws for randomised defenses in the adaptive attack
    sanity: bool = False  # also craft on the undefended victim (transfer red flag)
    far: float = 1e-3  # faces: false-accept rate of the verification threshold (clean pairs)
    split: str | None = None  # affect / face: evaluate only this split (default: the task's rule)


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
    >>> parse_spec("x:region=0.3,0.1,0.2,0.8,steps=5")
    ('x', {'region': '0.3,0.1,0.2,0.8', 'steps': 5})
    """
    name, _, rest = spec.partition(":")
    kwargs: dict[str, Any] = {}
    # split only at commas that start a new key=, so values may hold commas (region=0.3,0.1,...)
    for item in filter(None, re.split(r",(?=\s*[\w.]+\s*=)", rest)):
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

    def feature_maps(self, x: Tensor):
        self.images_seen += x.shape[0]
        return self.victim.feature_maps(x)

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


def validate(cfg: RunConfig, task: str | None) -> str | None:
    """Check flags against each other before anything heavy happens; returns the mode.

    ``task=None`` checks only what does not depend on the task (it is known once the attacked
    victim is built: an affect head makes any dataset an affect run) and returns None.
    """
    mode = cfg.mode
    if task is not None:
        modes = MODES[task]
        mode = cfg.mode or modes[0]
        if mode == "evasion" and task == "face":
            mode = "dodging"
        if mode not in modes:
            raise InputError(f"--mode {mode} does not apply to {task} dataset {cfg.dataset!r}; "
                             f"use one of: {', '.join(modes)}")
    _check_affect_target(cfg, task, mode)
    if cfg.attack == "none" and mode in TARGETED_MODES:
        raise InputError(f"--attack none with --mode {mode}: a clean run has no target; "
                         "drop --mode or choose an attack")
    if cfg.attack == "none" and cfg.attack_args:
        raise InputError("--attack none takes no attack arguments")
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be >= 1, got {cfg.limit}")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    from .adaptive import ADAPTIVE_CHOICES

    if cfg.adaptive not in ADAPTIVE_CHOICES or cfg.eot_draws < 1:
        raise InputError(f"--adaptive must be one of {', '.join(ADAPTIVE_CHOICES)} and "
                         f"--eot-draws >= 1; got {cfg.adaptive!r}, {cfg.eot_draws}")
    if cfg.attack != "none":
        ATTACKS.get(cfg.attack)  # unknown names fail here, listing the available ones
    for spec in cfg.defenses:
        dname, kwargs = parse_spec(spec)
        create_defense(dname, **kwargs)  # unknown names and bad parameters fail here, cheaply
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {cfg.device}: CUDA is not available on this machine")
    return mode


def _check_affect_target(cfg: RunConfig, task: str | None, mode: str | None) -> None:
    """--target-class goes with affect --mode targeted, and that mode needs it."""
    if mode == "targeted" and not (cfg.target_class or "").strip():
        raise InputError("--mode targeted needs --target-class: a class name or index (e.g. happy), "
                         "a valence-arousal quadrant (q1..q4) or an AU pattern (e.g. AU12=1,AU4=0)")
    if cfg.target_class is not None and task not in (None, "affect"):
        raise InputError(f"--target-class applies to affect victims only; {cfg.victim!r} gives "
                         f"{task} embeddings")
    if cfg.target_class is not None and task == "affect" and mode != "targeted":
        raise InputError(f"--target-class {cfg.target_class} needs --mode targeted (got --mode {mode})")


def timed_attack(attack: Callable | None, victim, images: Tensor, targets: Tensor | None = None,
                 batch_size: int = 32, device: str = "cpu", desc: str = "attack"):
    """Run ``attack`` on ``images`` (and ``targets``) in batches on ``device``.

    Returns (adversarial images on the CPU, attack seconds, images forwarded through the victim).
    """
    from tqdm.auto import tqdm

    counted = CountingVictim(victim)
    out, seconds = [], 0.0
    for i in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        xb = images[i:i + batch_size].to(device)
        if attack is None:
            out.append(xb.cpu())
            continue
        tb = None if targets is None else targets[i:i + batch_size].to(device)
        t0 = time.perf_counter()
        out.append(attack(counted, xb, tb).detach().cpu())
        # wrappers that score the attack (sanity.LossTracker) report their own time separately
        seconds += time.perf_counter() - t0 - getattr(attack, "pop_overhead", lambda: 0.0)()
    return torch.cat(out), seconds, counted.images_seen


def attack_and_measure(attack: Callable | None, victim, images: Tensor, targets: Tensor | None,
                       batch_size: int, device: str, desc: str):
    """:func:`timed_attack`, plus the attack's distance kind and the mean perturbation size.

    Returns (adversarial images, attack seconds, images seen, kind, size); size 0 for no attack.
    """
    x_adv, seconds, seen = timed_attack(attack, victim, images, targets, batch_size, device, desc)
    kind = getattr(attack, "distance", "linf")
    pert = perturbation_size(images, x_adv, kind) if attack is not None else 0.0
    return x_adv, seconds, seen, kind, pert


def perturbation_size(clean: Tensor, adv: Tensor, kind: str) -> float:
    """Mean per-image L-inf, L2, or changed-pixel fraction (``patch``)."""
    d = (adv - clean).flatten(1)
    if kind == "l2":
        return float(d.norm(dim=1).mean())
    if kind == "patch":
        changed = (adv - clean).abs().amax(1) > 0
        return float(changed.flatten(1).float().mean(1).mean())
    return float(d.abs().amax(1).mean())


def sanity_columns(cfg, ds, mode, attack, victim, tracker, row, adaptive) -> dict[str, Any]:
    """Sanity columns for the attacked victim's row (see ``sanity.py``); warns on red flags."""
    from .tasks import TASKS

    cols = tracker.columns() if tracker is not None else {}
    flags = [cols.get("flags", "")]
    if adaptive == "no":
        flags.append("non-adaptive")
    key = headline(row)
    if cfg.sanity and attack is not None and cfg.defenses and key:
        plain = create_victim(cfg.victim, device=cfg.device)
        t_rows = TASKS[ds.task if victim.output == "embedding" else "affect"](
            cfg, ds, mode, attack, {"undefended": plain, "defended": victim})
        cols["transfer_" + key] = t_rows[1][key]
        flags.append(check_transfer(float(row[key]), float(t_rows[1][key])))
    cols["flags"] = join_flags(*flags)
    if cols["flags"]:
        log.warning("sanity flags for %s on %s: %s", cfg.attack, cfg.victim, cols["flags"])
    return cols


def run(cfg: RunConfig) -> list[dict[str, Any]]:
    """Evaluate ``cfg``; append one row per evaluated victim to ``cfg.out``; return the rows."""
    from .tasks import TASKS

    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be >= 1, got {cfg.limit}")
    ds = load_dataset(cfg.dataset, data_root=cfg.data_root)
    validate(cfg, None)  # task-independent flags, before any model is built
    attack = None if cfg.attack == "none" else create_attack(cfg.attack, **cfg.attack_args)
    torch.manual_seed(cfg.seed)
    names = list(dict.fromkeys([cfg.victim, *cfg.eval_victims]))
    victims = {n: build_victim(n, cfg.defenses, cfg.device) for n in names}
    # The attacked victim's head picks the field: an affect head (logits / regression /
    # multilabel) makes it an affect run on any dataset (ORL: clean predictions as reference).
    out_kind = getattr(victims[cfg.victim], "output", "embedding")
    task = "affect" if out_kind != "embedding" else ds.task
    mode = validate(cfg, task)
    if cfg.split is not None and task not in ("affect", "face"):
        raise InputError(f"--split applies to affect and face runs; {task} runs follow the "
                         "dataset's own query/gallery protocol")
    plain_attack = attack  # defenses: BPDA/EOT wrapper when needed; sanity checks (sanity.py)
    attack, adaptive = plan(attack, victims[cfg.victim], cfg.adaptive, cfg.eot_draws)
    tracker = LossTracker(attack, cfg.seed) if attack is not None else None
    # building victims draws random numbers (layer init before weights load), so re-seed here:
    # the attack's random start must not depend on how many --eval-victim were given
    torch.manual_seed(cfg.seed)
    rows = TASKS[task](cfg, ds, mode, tracker, victims)
    checks = sanity_columns(cfg, ds, mode, plain_attack, victims[cfg.victim], tracker, rows[0], adaptive)
    config = {**asdict(cfg), "mode": mode, "out": None}
    prov = provenance(config)
    base = {"dataset": cfg.dataset, "attack": cfg.attack, "mode": mode,
            "defense": "+".join(cfg.defenses) or "none", "adaptive": adaptive, "seed": cfg.seed, "device": cfg.device,
            "attack_config": repr(attack) if attack is not None else "", **prov}
    rows = [{**base, **r} for r in rows]
    rows[0].update(checks)
    append_rows(cfg.out, rows)
    return rows
