"""Runs of runs: an eps sweep and seed repeats, checked by :mod:`.sanity`.

These sit above the runner (they call :func:`robustbench_face.runner.run` once per setting), so
``sanity.py`` stays pure checks and the runner never imports back up.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Sequence

from .runner import run as run_
from .sanity import check_eps_zero, check_monotone, headline, join_flags, mean_std

log = logging.getLogger(__name__)


def eps_sweep(cfg, eps_values: Sequence[float], run: Callable | None = None) -> list[dict]:
    """Run ``cfg`` at each eps; flags eps-zero and non-monotone success on every row.

    At eps = 0 the attack cannot move, so the row's own ``loss-not-improving`` flag is expected
    there and dropped; what is checked at eps = 0 is that the clean numbers come back.
    """
    run = run or run_
    rows = []
    for eps in eps_values:
        c = dataclasses.replace(cfg, attack_args={**cfg.attack_args, "eps": eps})
        rows.append((eps, run(c)[0]))
    flag = check_monotone([e for e, _ in rows], [float(r["success_rate"]) for _, r in rows])
    out = []
    for eps, r in rows:
        key = headline(r)
        f0 = check_eps_zero(float(r[key.replace("adv_", "clean_")]), float(r[key])) \
            if eps == 0 and key and key.startswith("adv_") else ""
        own = r.get("flags", "") or ""
        if eps == 0:
            own = join_flags(*[f for f in own.split(";") if f != "loss-not-improving"])
        flags = join_flags(own, f0, flag)
        if f0 or flag:
            log.warning("sanity: %s at eps=%g: %s", cfg.attack, eps, flags)
        out.append({**r, "eps": eps, "flags": flags})
    return out


def repeat(cfg, n: int = 3, run: Callable | None = None) -> dict[str, float]:
    """Mean and std of the headline metric over ``n`` runs with seeds ``seed .. seed+n-1``."""
    run = run or run_
    vals = []
    for k in range(n):
        row = run(dataclasses.replace(cfg, seed=cfg.seed + k))[0]
        vals.append(float(row[headline(row)]))
    mean, std = mean_std(vals)
    return {"repeat_mean": mean, "repeat_std": std, "repeats": n}
