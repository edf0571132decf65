"""``rbf bench SPEC.toml``: a grid of runs that resumes, shares clean work, and scales out on Ray.

A spec (``benchmarks/*.toml``) names a benchmark and lists ``[[grid]]`` blocks; every key of a
block is an axis (a list) or a fixed value, merged over ``[defaults]``::

    name = "smoke"
    [defaults]
    limit = 8
    [[grid]]
    dataset = "mini_market1501"
    victim = ["osnet_x0_25.market1501", "osnet_x0_25.msmt17"]
    attack = ["none", "pgd:steps=3", {name = "pgd", eps = ["2/255", "8/255"]}]
    defense = ["none", "jpeg"]
    seed = [0, 1]

Axes: ``dataset``, ``victim``, ``eval_victims`` (a list of names is one value; a list of lists
an axis), ``attack`` (``name:key=value`` text, or a table whose list-valued options expand),
``defense`` (``none``, or specs joined by ``+``), ``mode``, ``seed``, ``limit``, ``batch_size``,
``device``, ``adaptive``, ``eot_draws``, ``data_root`` and the task options ``far``, ``split``,
``target_class``. A cell is one combination; its key is a hash of its settings (``config_hash``
of the cell), so the same cell in two specs is the same cell. A clean run with a targeted mode
has no target and is left out; any other invalid cell stops the bench before anything runs.

Output (``--out DIR``): ``cells/<key>.csv`` holds one finished cell's rows, written once under a
temporary name and renamed, never touched again; ``results.csv`` (the results schema, every
row tagged ``bench`` and ``cell``) is assembled from them; ``failed.csv`` lists cells that raised,
with the error, while the others go on; ``spec.toml`` is the spec that made them. ``--resume``
runs only the cells without a file, so a ``kill -9`` at any moment loses no finished cell and
never leaves half of one. ``cache/`` holds the clean work the cells share
(:mod:`robustbench_face.clean_cache`); built victims are shared in the process too.

Executors: ``local`` (in this process, one cell after another) and ``ray`` (one task per cell on
a Ray cluster -- ``RAY_ADDRESS`` or a local one; cells on CUDA request a GPU; a crashed worker's
cell is retried once, an error is recorded in ``failed.csv``).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import InputError
from .results import append_rows, git_sha, read_rows
from .runner import RunConfig, parse_spec, run, validate

log = logging.getLogger(__name__)
AXES = ("dataset", "victim", "eval_victims", "attack", "defense", "mode", "seed", "limit", "batch_size",
        "device", "adaptive", "eot_draws", "data_root", "far", "split", "target_class")
TASK_OPTIONS = ("far", "split", "target_class")


@dataclass(frozen=True)
class Cell:
    """One run of a grid: its canonical settings and their hash."""

    config: dict[str, Any]
    key: str

    def run_config(self, out: str | Path, spec_name: str) -> RunConfig:
        c = dict(self.config)
        opts = {k: c.pop(k) for k in TASK_OPTIONS if k in c}
        return RunConfig(out=str(out), task_options=opts, tags={"bench": spec_name, "cell": self.key}, **c)


def _attack_values(value: Any) -> list[tuple[str, dict]]:
    """``pgd:steps=3`` or ``{name = "pgd", eps = [...]}`` -> [(name, options), ...]."""
    if isinstance(value, str):
        return [parse_spec(value)]
    if isinstance(value, dict) and "name" in value:
        opts = {k: v for k, v in value.items() if k != "name"}
        keys = [k for k, v in opts.items() if isinstance(v, list)]
        out = []
        for combo in itertools.product(*(opts[k] for k in keys)):
            args = {**opts, **dict(zip(keys, combo))}
            out.append((value["name"], {k: parse_spec(f"x:{k}={v}")[1][k] if isinstance(v, str) else v
                                        for k, v in args.items()}))
        return out
    raise InputError(f"attack {value!r}: write 'name:key=value,...' or a table with name = ...")


def _axis(key: str, value: Any) -> list[Any]:
    if key == "attack":
        items = value if isinstance(value, list) else [value]
        return [a for item in items for a in _attack_values(item)]
    if key == "eval_victims":
        return value if value and isinstance(value[0], list) else [value]
    return value if isinstance(value, list) else [value]


def cell_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _cell(combo: dict[str, Any]) -> Cell:
    c = dict(combo)
    name, args = c.pop("attack", ("none", {}))
    defense = c.pop("defense", "none")
    c["attack"], c["attack_args"] = name, args
    c["defenses"] = [] if defense in ("none", "") else str(defense).split("+")
    return Cell(c, cell_key(c))


def expand(spec: dict[str, Any]) -> list[Cell]:
    """Every cell of ``spec`` (module docstring), in spec order, duplicates dropped."""
    defaults, cells, seen = spec.get("defaults", {}), [], set()
    grids = spec.get("grid") or []
    if not grids:
        raise InputError(f"spec {spec.get('name')!r} has no [[grid]] block")
    for i, grid in enumerate(grids):
        merged = {**defaults, **grid}
        unknown = sorted(set(merged) - set(AXES))
        if unknown:
            raise InputError(f"spec {spec.get('name')!r} grid {i}: unknown key(s) {', '.join(unknown)}; "
                             f"axes: {', '.join(AXES)}")
        for key in ("dataset", "victim", "attack"):
            if key not in merged:
                raise InputError(f"spec {spec.get('name')!r} grid {i}: {key} is required")
        keys = list(merged)
        for values in itertools.product(*(_axis(k, merged[k]) for k in keys)):
            cell = _cell(dict(zip(keys, values)))
            if cell.key not in seen:
                seen.add(cell.key)
                cells.append(cell)
    return cells


def load_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"bench spec not found: {path}")
    with open(path, "rb") as f:
        try:
            spec = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML: {exc}") from None
    spec.setdefault("name", path.stem)
    return spec


def check_cells(cells: list[Cell], spec_name: str) -> list[Cell]:
    """Validate every cell before anything runs; clean runs with a targeted mode are dropped."""
    kept = []
    for c in cells:
        try:
            validate(c.run_config(os.devnull, spec_name))
        except InputError as exc:
            if c.config["attack"] == "none" and "a clean run has no target" in str(exc):
                continue
            raise InputError(f"bench {spec_name}: cell {c.key} ({c.config['victim']}, {c.config['attack']}, "
                             f"{c.config.get('mode') or 'default mode'}): {exc}") from None
        kept.append(c)
    return kept


def run_cell(config: dict[str, Any], key: str, spec_name: str, out_dir: str, built: dict | None = None,
             cache=None) -> str:
    """Run one cell and store its rows in ``cells/<key>.csv``; the unit of work of both executors.

    The runner writes the rows to a scratch file of this process, renamed into place once the
    cell is complete: a cell file exists whole or not at all."""
    cells_dir = Path(out_dir) / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    scratch = cells_dir / f".{key}.{os.getpid()}.tmp"
    scratch.unlink(missing_ok=True)
    try:
        run(Cell(config, key).run_config(scratch, spec_name), built=built, cache=cache)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    os.replace(scratch, cells_dir / f"{key}.csv")
    return key


def _cache(out_dir: Path):
    from .clean_cache import CleanCache
    from ._version import __version__

    return CleanCache(out_dir / "cache", salt=f"{__version__}@{git_sha()}")


def _local(todo: list[Cell], spec_name: str, out_dir: Path, done: Callable[[Cell, str | None], None]) -> None:
    built, cache = {}, _cache(out_dir)
    for c in todo:
        try:
            run_cell(c.config, c.key, spec_name, str(out_dir), built, cache)
            done(c, None)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # one cell's failure is recorded; the others go on
            done(c, f"{type(exc).__name__}: {exc}")
    log.info("clean cache: %d hits, %d misses", cache.hits, cache.misses)


def _ray_cell(config, key, spec_name, out_dir):  # in a Ray worker
    return run_cell(config, key, spec_name, out_dir, None, _cache(Path(out_dir)))


def _ray(todo: list[Cell], spec_name: str, out_dir: Path, done: Callable[[Cell, str | None], None]) -> None:
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install -e '.[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, ignore_reinit_error=True,
                 log_to_driver=False, include_dashboard=False)
    remote = ray.remote(max_retries=1)(_ray_cell)  # a crashed worker's cell runs once more
    pending = {remote.options(num_cpus=1, num_gpus=1 if str(c.config.get("device", "")).startswith("cuda") else 0)
               .remote(c.config, c.key, spec_name, str(out_dir)): c for c in todo}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        cell = pending.pop(ready[0])
        try:
            ray.get(ready[0])
            done(cell, None)
        except Exception as exc:  # RayTaskError wraps the cell's own error
            done(cell, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:500]}")


EXECUTORS = {"local": _local, "ray": _ray}


def finished(out_dir: Path) -> set[str]:
    return {p.stem for p in (out_dir / "cells").glob("*.csv")} if (out_dir / "cells").is_dir() else set()


def assemble(cells: list[Cell], out_dir: Path) -> Path:
    """``results.csv`` from the cell files, in spec order (a view: the cell files are the record)."""
    rows = []
    for c in cells:
        path = out_dir / "cells" / f"{c.key}.csv"
        if path.is_file():
            rows += read_rows(path)[1]
    results = out_dir / "results.csv"
    results.unlink(missing_ok=True)
    if rows:
        append_rows(results, rows)
    return results


def _record_failure(out_dir: Path, cell: Cell, error: str) -> None:
    path = out_dir / "failed.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["cell", "victim", "attack", "attack_args", "defenses", "mode", "seed", "error"])
        c = cell.config
        w.writerow([cell.key, c.get("victim"), c.get("attack"), json.dumps(c.get("attack_args", {})),
                    "+".join(c.get("defenses", [])), c.get("mode", ""), c.get("seed", ""), error])


def bench(spec_path: str | Path, out: str | Path | None = None, resume: bool = False,
          executor: str = "local") -> dict[str, Any]:
    """Run the grid of ``spec_path`` (module docstring); returns counts and the results path."""
    from tqdm.auto import tqdm

    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    spec = load_spec(spec_path)
    name = spec["name"]
    cells = check_cells(expand(spec), name)
    out_dir = Path(out or Path("runs") / "bench" / name)
    had = finished(out_dir)
    if had and not resume:
        raise InputError(f"{out_dir} already holds {len(had)} finished cells: pass --resume to continue "
                         "it, or another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "spec.toml").write_bytes(Path(spec_path).read_bytes())
    todo = [c for c in cells if c.key not in had]
    failed: list[str] = []
    t0 = time.perf_counter()
    with tqdm(total=len(cells), initial=len(cells) - len(todo), desc=f"bench {name}", unit="cell") as bar:
        def done(cell: Cell, error: str | None) -> None:
            if error is not None:
                failed.append(cell.key)
                _record_failure(out_dir, cell, error)
                log.warning("cell %s failed: %s", cell.key, error)
            bar.update(1)

        try:
            EXECUTORS[executor](todo, name, out_dir, done)
        finally:  # Ctrl-C included: results.csv shows every cell finished so far
            results = assemble(cells, out_dir)
    return {"spec": name, "cells": len(cells), "finished_before": len(cells) - len(todo),
            "ran": len(todo) - len(failed), "failed": len(failed), "seconds": round(time.perf_counter() - t0, 1),
            "results": str(results), "out": str(out_dir)}
