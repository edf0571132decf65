"""The one place that wires dataset -> attack -> victims -> metrics -> results rows.

:func:`validate` checks the whole configuration -- every name, every option, the victim's head
against the attack and the mode, the task's own options -- from the cards, before any model is
built or any image read, so a bad flag costs nothing. :func:`run` then builds the victims,
hands over to the field's task (``tasks/``: load inputs, draw targets, attack, score), appends
one row per evaluated victim to the results CSV and returns the rows.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import torch

from .adaptive import ADAPTIVE_CHOICES, plan
from .attacks._base import describe, distance_of, validate as validate_attack
from .errors import InputError
from .factory import (create_attack, create_defense, create_victim, dataset_info, load_dataset,
                      victim_info)
from .heads import head_of
from .measure import LossTracker
from .options import check_options, signature_options
from .registry import ATTACKS, DATASETS
from .results import append_rows, check_writable, provenance
from .sanity import check_transfer, headline, join_flags
from .tasks import TASKS, Context, get_task, run_task

log = logging.getLogger(__name__)


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
    adaptive: str = "auto"  # defended victims: auto | yes | no (see adaptive.plan)
    eot_draws: int = 10  # EOT draws for randomised defenses in the adaptive attack
    sanity: bool = False  # also craft on the undefended victim (transfer red flag)
    # options of one field's task: face far / split, affect target_class / split (tasks/*.py)
    task_options: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)  # extra columns on every row (demo = true)


@dataclass
class Plan:
    """What :func:`validate` worked out: the task, its mode and options, the attack."""

    task: str
    mode: str
    targeted: bool
    options: Any
    head: str | None          # the attacked victim's head from its card (None: read after build)
    attack: Any               # the built attack (cheap: learned attacks load weights lazily)


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


def build_victim(name: str, defenses: list[str], device: str):
    victim = create_victim(name, device=device)
    for spec in defenses:
        dname, kwargs = parse_spec(spec)
        victim = create_defense(dname, **kwargs)(victim)
    return victim


def build_attack(cfg: RunConfig):
    """The configured attack with the run's seed, or None for ``--attack none``."""
    if cfg.attack == "none":
        if cfg.attack_args:
            raise InputError("--attack none takes no attack arguments")
        return None
    if "seed" in cfg.attack_args:
        raise InputError("-a seed=...: an attack's seed is the run's --seed")
    entry = ATTACKS.get(cfg.attack)  # unknown names fail here, listing the available ones
    takes_seed = "seed" in (signature_options(entry.factory) or {})
    attack = create_attack(cfg.attack, **cfg.attack_args, **({"seed": cfg.seed} if takes_seed else {}))
    distance_of(attack)  # a required declaration: refuse an attack that says nothing
    return attack


def dataset_spec(cfg: RunConfig) -> tuple[str, dict[str, Any]]:
    """(name, loader options) of ``--dataset NAME[:key=value,...]`` and ``--data-root``."""
    name, opts = parse_spec(cfg.dataset)
    if cfg.data_root:
        opts["data_root"] = cfg.data_root
    return name, opts


def _check_generic(cfg: RunConfig) -> None:
    check_writable(cfg.out)
    if cfg.limit is not None and cfg.limit < 1:
        raise InputError(f"--limit must be >= 1, got {cfg.limit}")
    if cfg.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {cfg.batch_size}")
    if cfg.adaptive not in ADAPTIVE_CHOICES or cfg.eot_draws < 1:
        raise InputError(f"--adaptive must be one of {', '.join(ADAPTIVE_CHOICES)} and "
                         f"--eot-draws >= 1; got {cfg.adaptive!r}, {cfg.eot_draws}")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {cfg.device}: CUDA is not available on this machine")


def validate(cfg: RunConfig) -> Plan:
    """Check every name and option against each other and the cards; nothing is built or read."""
    _check_generic(cfg)
    attack = build_attack(cfg)
    for spec in cfg.defenses:
        dname, kwargs = parse_spec(spec)
        create_defense(dname, **kwargs)  # unknown names and bad parameters fail here, cheaply
    infos = {n: victim_info(n) for n in dict.fromkeys([cfg.victim, *cfg.eval_victims])}
    ds_name, ds_opts = dataset_spec(cfg)
    entry = DATASETS.get(ds_name)
    check_options(f"dataset {ds_name}", entry.factory, ds_opts)
    head = (infos[cfg.victim] or {}).get("head")
    ds_task = (dataset_info(ds_name) or {}).get("task")
    if head is None or (head == "embedding" and ds_task is None):
        plan = _finish(cfg, attack, None, None)  # learnt from the built victim and dataset
    else:
        plan = _finish(cfg, attack, head, "affect" if head != "embedding" else ds_task)
    if callable(getattr(entry.factory, "root", None)):
        entry.factory.root(ds_opts.get("data_root"))  # a missing dataset fails here, before any model
    return plan


def _finish(cfg: RunConfig, attack, head: str | None, task: str | None) -> Plan:
    """The task-dependent checks, once the head and task are known (from cards or built objects)."""
    if task is None:
        return Plan("", cfg.mode or "", False, None, head, attack)
    t = get_task(task)
    mode, targeted = t.resolve_mode(cfg.mode)
    options = t.options(cfg.task_options)
    t.check(options, mode, targeted)
    if attack is None and targeted:
        raise InputError(f"--attack none with --mode {mode}: a clean run has no target; "
                         "drop --mode or choose an attack")
    if attack is not None and head is not None:
        validate_attack(attack, cfg.victim, head, mode, targeted)
    return Plan(task, mode, targeted, options, head, attack)


def sanity_columns(cfg: RunConfig, ctx: Context, tracker, row: dict, adaptive: str, plain_attack) -> dict[str, Any]:
    """Sanity columns for the attacked victim's row (see ``sanity.py``); warns on red flags."""
    cols = tracker.columns() if tracker is not None else {}
    flags = [cols.get("flags", "")]
    if adaptive == "no":
        flags.append("non-adaptive")
    key = headline(row)
    if cfg.sanity and plain_attack is not None and cfg.defenses and key:
        plain = create_victim(cfg.victim, device=cfg.device)
        t_ctx = Context(cfg, ctx.options, ctx.ds, ctx.mode, ctx.targeted, plain_attack,
                        {"undefended": plain, "defended": ctx.attacked})
        t_rows = run_task(TASKS[_task_of(ctx)], t_ctx)
        cols["transfer_" + key] = t_rows[1].to_dict()[key]
        flags.append(check_transfer(float(row[key]), float(cols["transfer_" + key])))
    cols["flags"] = join_flags(*flags)
    if cols["flags"]:
        log.warning("sanity flags for %s on %s: %s", cfg.attack, cfg.victim, cols["flags"])
    return cols


def _task_of(ctx: Context) -> str:
    return "affect" if head_of(ctx.attacked).kind != "embedding" else ctx.ds.task


def rerun_command(cfg: RunConfig) -> str:
    """The ``rbf run`` command line that re-makes ``cfg``'s rows (recorded on every row).

    >>> rerun_command(RunConfig(attack="pgd", victim="osnet", attack_args={"eps": 0.5}, seed=2))
    'rbf run --attack pgd --victim osnet --dataset mini_mars --seed 2 -a eps=0.5'
    """
    import shlex

    parts = ["rbf", "run", "--attack", cfg.attack, "--victim", cfg.victim, "--dataset", cfg.dataset]
    for v in cfg.eval_victims:
        parts += ["--eval-victim", v]
    for d in cfg.defenses:
        parts += ["--defense", d]
    if cfg.mode:
        parts += ["--mode", cfg.mode]
    parts += ["--seed", str(cfg.seed)]
    if cfg.limit is not None:
        parts += ["--limit", str(cfg.limit)]
    for flag, value, default in (("--device", cfg.device, "cpu"), ("--batch-size", cfg.batch_size, 32),
                                 ("--adaptive", cfg.adaptive, "auto"), ("--eot-draws", cfg.eot_draws, 10)):
        if value != default:
            parts += [flag, str(value)]
    for key, value in cfg.task_options.items():
        parts += ["--" + key.replace("_", "-"), str(value)]
    for key, value in cfg.attack_args.items():
        parts += ["-a", f"{key}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


def build_victims(cfg: RunConfig, built: dict | None = None) -> dict[str, Any]:
    """The run's victims (attacked first), each with the run's defenses; ``built`` (a grid's
    dict of already built ones, keyed by name, defenses and device) is read and filled."""
    from tqdm.auto import tqdm

    built = {} if built is None else built
    victims = {}
    # a context-managed bar is cleared even when a build fails, so an error starts its own line
    names = list(dict.fromkeys([cfg.victim, *cfg.eval_victims]))
    with tqdm(names, desc="loading victims", unit="victim", leave=False, disable=None) as bar:
        for n in bar:
            key = (n, tuple(cfg.defenses), cfg.device)
            if key not in built:
                built[key] = build_victim(n, cfg.defenses, cfg.device)
            victims[n] = built[key]
    return victims


@dataclass
class Prepared:
    """A run wired up and ready to attack (:func:`prepare`): what :func:`record` needs after."""

    cfg: RunConfig
    plan: Plan
    ds_name: str
    ds_opts: dict[str, Any]
    task: str                 # the field's task name (``TASKS`` key)
    ctx: Context
    adaptive: str             # the ``adaptive`` column
    tracker: Any              # the LossTracker the attack runs in, None for a clean run


def prepare(cfg: RunConfig, built: dict | None = None, cache=None) -> Prepared:
    """Validate ``cfg``, load the dataset, build the victims, plan the (adaptive) attack and
    seed: everything before the task's steps, shared by :func:`run` and ``rbf interpret``."""
    p = validate(cfg)  # before any model is built or image read
    ds_name, ds_opts = dataset_spec(cfg)
    ds = load_dataset(ds_name, **ds_opts)
    torch.manual_seed(cfg.seed)
    victims = build_victims(cfg, built)
    # a plug-in victim without a card: its head (and so the field) is known only now
    task = "affect" if head_of(victims[cfg.victim]).kind != "embedding" else ds.task
    if p.head is None or p.task != task:
        p = _finish(cfg, p.attack, head_of(victims[cfg.victim]).kind, task)
    attack, adaptive = plan(p.attack, victims[cfg.victim], cfg.adaptive, cfg.eot_draws)
    tracker = LossTracker(attack, cfg.seed) if attack is not None else None
    # building victims draws random numbers (layer init before weights load), so re-seed here:
    # the attack's random start must not depend on how many --eval-victim were given
    torch.manual_seed(cfg.seed)
    ctx = Context(cfg, p.options, ds, p.mode, p.targeted, tracker, victims, cache)
    return Prepared(cfg, p, ds_name, ds_opts, task, ctx, adaptive, tracker)


def record(prep: Prepared, rows: list[dict[str, Any]], config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The task's rows with the run's columns, provenance and sanity checks (first row);
    ``config`` adds settings to the hashed configuration (``rbf interpret``'s layer...)."""
    cfg, p = prep.cfg, prep.plan
    checks = sanity_columns(cfg, prep.ctx, prep.tracker, rows[0], prep.adaptive, p.attack)
    prov = provenance({**asdict(cfg), "mode": p.mode, "out": None, **(config or {})})
    defended = getattr(prep.ctx.attacked, "defenses", [])
    shown_opts = {k: v for k, v in prep.ds_opts.items() if k != "data_root"}
    attack = prep.tracker
    base = {"dataset": prep.ds_name, "attack": cfg.attack, "mode": p.mode,
            "dataset_options": json.dumps(shown_opts, sort_keys=True) if shown_opts else "",
            "defense": "+".join(defended) or "none", "adaptive": prep.adaptive, "seed": cfg.seed,
            "device": cfg.device,
            "attack_config": json.dumps(describe(attack), sort_keys=True) if attack is not None else "",
            "rerun": rerun_command(cfg), **prov}
    rows = [{**base, **r, **cfg.tags} for r in rows]
    rows[0].update(checks)
    return rows


def run(cfg: RunConfig, built: dict | None = None, cache=None) -> list[dict[str, Any]]:
    """Evaluate ``cfg``; append one row per evaluated victim to ``cfg.out``; return the rows.

    ``built`` and ``cache`` (a :class:`~robustbench_face.clean_cache.CleanCache`) let the cells
    of a benchmark grid share built victims and clean outputs (``bench.py``)."""
    prep = prepare(cfg, built, cache)
    rows = record(prep, [r.to_dict() for r in run_task(TASKS[prep.task], prep.ctx)])
    append_rows(cfg.out, rows)
    return rows
