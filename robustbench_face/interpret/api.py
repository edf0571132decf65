"""``rbf interpret``: what an attack does inside the victim, on the inputs ``rbf run`` crafts.

:func:`interpret` crafts adversarial inputs exactly as ``rbf run`` does (the runner's
:func:`~robustbench_face.runner.prepare`: the same validation, seed, ``--limit`` subset, attack
and targets; the task template's :func:`~robustbench_face.tasks.craft`), then at one layer of
the attacked victim (a forward hook, :mod:`robustbench_face.activations`):

1. clusters the channel-pooled activations of clean and adversarial images together
   (:mod:`.analysis`: ART's k = 2, plus the best k by silhouette);
2. ranks channels by mean |adv - clean|;
3. measures where the change sits: ``patch_mass`` (the |delta| map) and ``grad_patch_mass``
   (the objective's input gradient) inside the attack's region, or ``torso`` as a control;
4. restores the top channels to their clean values on the adversarial forward and re-scores the
   task metric, against as many random channels (the causal check).

Outputs and how to read them: ``docs/interpret.md``.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..activations import resolve_layer
from ..attacks._base import region_of
from ..attacks._regions import PRESETS
from ..errors import InputError
from ..runner import RunConfig, prepare, record
from ..tasks import TASKS, craft
from . import analysis as A
from .collect import collect, gradient_maps, restored_outputs
from .output import InterpretResult, write


@dataclass
class InterpretConfig:
    victim: str
    attack: str
    dataset: str = "mini_mars"
    mode: str | None = None
    layer: str = "-1"               # a module name, or -1: the deepest with a spatial 4-D output
    attack_args: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    k: str | int = "auto"           # the second clustering's k: auto (best silhouette in 2..8) or 2..8
    seed: int = 0
    out: str = "runs/interpret"     # a folder: interpret*.csv and figures/
    top_k: int = 10                 # channels restored in the causal check and compared across runs
    n_random: int = 5               # random channel sets of the same size (seeds seed..seed+n-1)
    device: str = "cpu"
    batch_size: int = 32
    defenses: list[str] = field(default_factory=list)
    task_options: dict[str, Any] = field(default_factory=dict)  # far / split / target_class
    data_root: str | None = None
    compare: list[str] = field(default_factory=list)  # earlier interpret folders for the top-k overlap
    figures: bool = True


class MemoCache:
    """Clean outputs computed once per run (the causal check re-scores many times)."""

    def __init__(self):
        self._d: dict = {}

    def outputs(self, victim, what, items, batch_size, device, compute):
        key = (id(victim), what, hash(tuple(items)))
        if key not in self._d:
            self._d[key] = compute()
        return self._d[key]


def check(cfg: InterpretConfig) -> None:
    if not (cfg.k == "auto" or (str(cfg.k).isdigit() and 2 <= int(cfg.k) <= 8)):
        raise InputError(f"--k must be auto or an integer in 2..8, got {cfg.k!r}")
    if cfg.top_k < 1 or cfg.n_random < 0:
        raise InputError(f"--top-k must be >= 1 and --n-random >= 0; got {cfg.top_k}, {cfg.n_random}")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; rbf interpret writes a folder")
    for c in cfg.compare:
        if not (Path(c) / "interpret_channels.csv").is_file():
            raise InputError(f"--compare {c}: no interpret_channels.csv there (an rbf interpret --out folder)")


def run_config(cfg: InterpretConfig) -> RunConfig:
    return RunConfig(attack=cfg.attack, victim=cfg.victim, dataset=cfg.dataset, mode=cfg.mode,
                     seed=cfg.seed, device=cfg.device, limit=cfg.limit,
                     out=str(Path(cfg.out) / "interpret.csv"), data_root=cfg.data_root,
                     attack_args=dict(cfg.attack_args), batch_size=cfg.batch_size,
                     defenses=list(cfg.defenses), task_options=dict(cfg.task_options))


def rerun_command(cfg: InterpretConfig) -> str:
    """The ``rbf interpret`` command line of ``cfg``.

    >>> rerun_command(InterpretConfig(victim="osnet", attack="pgd", attack_args={"steps": 5}))
    'rbf interpret --victim osnet --attack pgd --dataset mini_mars --layer -1 --k auto --seed 0 --out runs/interpret -a steps=5'
    """
    parts = ["rbf", "interpret", "--victim", cfg.victim, "--attack", cfg.attack, "--dataset", cfg.dataset]
    if cfg.mode:
        parts += ["--mode", cfg.mode]
    parts += ["--layer", str(cfg.layer), "--k", str(cfg.k), "--seed", str(cfg.seed), "--out", cfg.out]
    for flag, value, default in (("--limit", cfg.limit, None), ("--top-k", cfg.top_k, 10),
                                 ("--n-random", cfg.n_random, 5), ("--device", cfg.device, "cpu"),
                                 ("--batch-size", cfg.batch_size, 32)):
        if value != default:
            parts += [flag, str(value)]
    for d in cfg.defenses:
        parts += ["--defense", d]
    for key, value in cfg.task_options.items():
        parts += ["--" + key.replace("_", "-"), str(value)]
    for key, value in cfg.attack_args.items():
        parts += ["-a", f"{key}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


def settings(cfg: InterpretConfig) -> dict[str, Any]:
    """What an interpret run's numbers depend on beyond the run's own configuration."""
    return {"interpret": {"layer": str(cfg.layer), "k": str(cfg.k), "top_k": cfg.top_k, "n_random": cfg.n_random}}


def score_outputs(task, ctx, inputs, outcome, outputs: np.ndarray) -> dict[str, Any]:
    """The attacked victim's row had its outputs on the attacked inputs been ``outputs``."""
    name = ctx.names[0]
    one = dataclasses.replace(ctx, victims={name: ctx.attacked})
    return task.score(one, inputs, dataclasses.replace(outcome, outputs={name: outputs}))[0].to_dict()


def causal_check(task, ctx, crafted, layer: str, clean, adv, order: np.ndarray,
                 cfg: InterpretConfig) -> dict[str, Any]:
    """Restore the top-k channels (then k random ones, ``n_random`` seeds) and re-score."""
    k = min(cfg.top_k, len(order))
    sets = [order[:k]] + [np.random.default_rng(cfg.seed + r).choice(len(order), k, replace=False)
                          for r in range(cfg.n_random)]
    outs = restored_outputs(ctx.attacked, layer, clean, adv, sets, cfg.batch_size, cfg.device)
    clean_key, adv_key = task.metric
    base = score_outputs(task, ctx, crafted.inputs, crafted.outcome, crafted.outcome.outputs[ctx.names[0]])
    m_clean = float(base[clean_key]) if clean_key else 0.0
    m_adv = float(base[adv_key])
    restored = [float(score_outputs(task, ctx, crafted.inputs, crafted.outcome, o)[adv_key]) for o in outs]
    shares = [A.recovered_share(m_clean, m_adv, m) for m in restored]
    rand = np.array(shares[1:], dtype=float)
    return {"restore_k": k, "causal_metric": adv_key, "metric_clean": m_clean, "metric_adv": m_adv,
            "metric_restored_top": restored[0], "recovered_top": shares[0],
            "recovered_random_mean": float(np.mean(rand)) if rand.size else math.nan,
            "recovered_random_std": float(np.std(rand, ddof=1)) if rand.size > 1 else math.nan,
            "n_random": int(rand.size)}


def nanmean(v: np.ndarray) -> float:
    """Mean over the finite entries; NaN when there are none (no change anywhere).

    >>> nanmean(np.array([np.nan, 1.0, 3.0])), nanmean(np.array([np.nan]))
    (2.0, nan)
    """
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def region_columns(attack, maps: np.ndarray, grads: np.ndarray) -> tuple[dict[str, Any], tuple]:
    """Patch-mass columns: the attack's region, or ``torso`` as the negative control."""
    region = region_of(attack) if attack is not None else None
    source = "attack" if region is not None else "control:torso"
    region = region or PRESETS["torso"]
    box = region.box(*maps.shape[-2:])
    cols = {"region": ",".join(f"{v:g}" for v in (region.top, region.left, region.height, region.width)),
            "region_source": source, "patch_mass": nanmean(A.patch_mass(maps, box)),
            "grad_patch_mass": nanmean(A.patch_mass(grads, box)), "region_area_share": region.area}
    return cols, box


def interpret(victim: str, attack: str, dataset: str = "mini_mars", **options: Any) -> InterpretResult:
    """Interpret one attack on one victim (``InterpretConfig`` fields as keyword options)."""
    return run_interpret(InterpretConfig(victim=victim, attack=attack, dataset=dataset, **options))


def interpret_many(configs: Sequence[InterpretConfig]) -> list[InterpretResult]:
    """Several runs (e.g. one per attack) into their folders; each run's overlap table covers
    the runs before it in the same folder, so the last one compares them all."""
    return [run_interpret(c) for c in configs]


def run_interpret(cfg: InterpretConfig) -> InterpretResult:
    """The whole pipeline of one interpret run (module docstring); writes under ``cfg.out``."""
    check(cfg)
    prep = prepare(run_config(cfg), cache=MemoCache())
    ctx, task = prep.ctx, TASKS[prep.task]
    size = getattr(ctx.attacked, "input_size", None) or (64, 64)
    resolve_layer(ctx.attacked, cfg.layer, torch.full((1, 3, *size), 0.5, device=cfg.device))  # fail fast
    crafted = craft(task, ctx, keep_images=True)
    if crafted.outcome.n == 0:
        raise InputError(f"{cfg.attack} on {cfg.victim}: no input was attacked (a face run with "
                         "--attack none selects no pairs); nothing to interpret")
    clean, adv = task.attack_images(ctx, crafted.inputs), crafted.outcome.x_adv
    success = task.success(ctx, crafted.inputs, crafted.outcome.outputs[ctx.names[0]])
    layer, shape = resolve_layer(ctx.attacked, cfg.layer, clean[:1].to(cfg.device))
    maps = collect(ctx.attacked, layer, clean, adv, cfg.batch_size, cfg.device)
    n = len(adv)
    is_adv = np.r_[np.zeros(n, bool), np.ones(n, bool)]
    summary, clusters, z, labels = A.clusterings(np.vstack([maps.pooled_clean, maps.pooled_adv]), is_adv,
                                                 np.r_[np.full(n, np.nan), success], cfg.k, cfg.seed)
    channels = A.rank_channels(maps.sums, maps.count)
    order = np.array([c["channel"] for c in channels])
    grads = gradient_maps(ctx.attacked, clean, adv, crafted.targets, cfg.batch_size, cfg.device)
    region, box = region_columns(ctx.attack, maps.delta_maps, grads)
    causal = causal_check(task, ctx, crafted, layer, clean, adv, order, cfg)
    row = record(prep, [score_outputs(task, ctx, crafted.inputs, crafted.outcome,
                                      crafted.outcome.outputs[ctx.names[0]])], settings(cfg))[0]
    top = order[:min(cfg.top_k, len(order))]
    row.update(run_id=f"{cfg.attack}-{row['config_hash']}", layer=layer, layer_shape="x".join(map(str, shape)),
               n_inputs=n, n_scored=int((~np.isnan(success)).sum()), **summary,
               top_channels=";".join(map(str, top)),
               top_share=float(sum(c["share"] for c in channels[:len(top)])), **region, **causal,
               rerun=rerun_command(cfg))
    data = {"clean": clean, "adv": adv, "z": z, "labels": labels, "is_adv": is_adv, "success": success,
            "maps": maps, "grads": grads, "box": box, "channels": channels}
    return write(cfg, row, clusters, channels, data)
