"""Results CSV: atomic appends with provenance, and leaderboards built from it.

Every row carries what is needed to re-run it: package version, git commit, a hash of the
run's configuration, seed, device and time. A row is written by rewriting the whole file to a
temporary sibling and renaming it over the original (``os.replace`` is atomic on POSIX), so a
crash leaves either the old file or the new one, never half a row, and rows already there are
copied through unchanged. New columns extend the header; old rows get blanks for them.
"""

from __future__ import annotations

import csv
import logging
import hashlib
import json
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ._version import __version__
from .errors import DataError

log = logging.getLogger(__name__)

# Leading columns, in order; any other keys follow alphabetically.
BASE_COLUMNS = [
    "task", "dataset", "victim", "eval_victim", "attack", "mode", "defense", "adaptive", "seed",
    "n_queries", "clean_map", "adv_map", "clean_rank1", "adv_rank1", "success_rate",
    "target_map", "clean_acc", "tar_at_far", "far", "ci_low", "ci_high",
    "sec_per_query", "perturbation", "perturbation_kind", "queries_per_image", "partial",
    "n_available", "attack_config", "device", "package_version", "git_sha", "provenance",
    "config_hash", "timestamp",
]


# What decides a number: the package, its cards and checkpoints, and the benchmark scripts
# (not their results folders, nor runs/). A change anywhere here makes a row "dirty".
_SOURCE_PATHS = ("robustbench_face", "victims", "attacks", "defenses", "datasets", "aligners",
                 "checkpoints", "benchmarks", ":(exclude)benchmarks/results", "pyproject.toml")


def git_sha() -> str:
    """The commit the code ran from, ``<sha>-dirty`` when the sources above differ from it, or
    ``unknown`` outside a git checkout (a wheel install)."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        sha = out.stdout.strip()
        if out.returncode == 0 and sha:
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *_SOURCE_PATHS],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def tree_flag(sha: str) -> str:
    """The provenance flag of a row's ``git_sha``: ``dirty-tree``, ``unknown-tree`` or ``""``.

    >>> tree_flag("abc123"), tree_flag("abc123-dirty"), tree_flag("unknown")
    ('', 'dirty-tree', 'unknown-tree')
    """
    if not sha or sha == "unknown":
        return "unknown-tree"
    return "dirty-tree" if sha.endswith("-dirty") else ""


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a run configuration.

    >>> config_hash({"a": 1, "b": [2]}) == config_hash({"b": [2], "a": 1})
    True
    """
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def provenance(config: dict[str, Any]) -> dict[str, Any]:
    sha = git_sha()
    return {
        "package_version": __version__,
        "git_sha": sha,
        "provenance": tree_flag(sha),
        "config_hash": config_hash(config),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def check_writable(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuse, before any work, a results path that cannot be written: a directory, a path
    under a regular file, or an unwritable folder (nothing is created here)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{flag} {path} is a directory; give a CSV file path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise DataError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise DataError(f"{flag} {path}: {path if path.exists() else parent} is not writable")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    if not path.exists():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise DataError(f"{path}:{i}: malformed row (column count differs from the header)")
    return header, rows


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def append_rows(path: str | os.PathLike, new_rows: Iterable[dict[str, Any]]) -> Path:
    """Append rows atomically (see module docstring); returns the path."""
    path = Path(path)
    new_rows = [{k: _fmt(v) for k, v in r.items()} for r in new_rows]
    header, rows = read_rows(path)
    keys = set(header)
    for r in new_rows:
        keys.update(r)
    ordered = [c for c in BASE_COLUMNS if c in keys]
    ordered += [c for c in header if c not in ordered]
    ordered += sorted(keys - set(ordered))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=ordered, restval="")
            w.writeheader()
            w.writerows(rows)
            w.writerows(new_rows)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; give the CSV the usual permissions (or keep the old ones)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _truthy(v: Any) -> bool:
    return str(v or "").lower() in ("true", "1", "yes")


TARGETED = ("impersonation", "targeted")


def headline_metric(r: dict[str, str]) -> tuple[str, float]:
    """(column, rank value) a row is ranked by: lower ranks first. Untargeted modes rank by
    ``adv_map`` where there is one (re-ID), else by ``success_rate`` (highest first); targeted
    modes by ``success_rate``, since their ``adv_map`` only says how far the query moved."""
    order = ("success_rate", "adv_map", "adv_rank1") if r.get("mode") in TARGETED else \
        ("adv_map", "success_rate", "adv_rank1")
    for k in order:
        if r.get(k) not in (None, ""):
            v = float(r[k])
            return k, (-v if k == "success_rate" else v)
    for k in ("tar_at_far", "clean_acc", "clean_map"):  # a clean verification row: shown, ranked last
        if r.get(k) not in (None, ""):
            return k, float("inf")
    return "", float("inf")


def flags_of(r: dict[str, str]) -> list[str]:
    """Why a row is not a full, adaptive, clean-tree evaluation (empty when it is)."""
    out = []
    if _truthy(r.get("partial")):
        out.append("partial")
    attacked = r.get("attack", "none") not in ("", "none")  # a clean run has no attack to adapt
    if attacked and r.get("defense", "none") not in ("", "none") and r.get("adaptive") != "yes":
        out.append("non-adaptive")
    tree = r.get("provenance") or tree_flag(r.get("git_sha", ""))
    if tree:
        out.append(tree)
    out += [f for f in str(r.get("flags", "") or "").split(";") if f and f not in out]
    return out


def rank_key(r: dict[str, str]) -> tuple:
    """Within (task, dataset, mode): attacked before clean (the reference, not a competitor), full
    before partial, adaptive before non-adaptive, clean-tree before dirty-tree rows, then the
    headline metric (:func:`headline_metric`)."""
    flags = flags_of(r)
    clean = r.get("attack", "none") in ("", "none")
    return (r.get("task", ""), r.get("dataset", ""), r.get("mode", ""), clean, "partial" in flags,
            "non-adaptive" in flags, any(f.endswith("-tree") for f in flags), headline_metric(r)[1])


def trusted_rows(results: str | os.PathLike, allow_dirty: bool = False) -> list[dict[str, str]]:
    """The rows of ``results`` that may be ranked: demo rows left out, and rows of a dirty or
    unknown tree refused unless ``allow_dirty`` (then they keep their ``provenance`` flag)."""
    _, rows = read_rows(results)
    demo = [r for r in rows if _truthy(r.get("demo"))]
    if demo:
        log.warning("%d demo rows of %s left out: rbf demo rows are never ranked", len(demo), results)
    rows = [r for r in rows if not _truthy(r.get("demo"))]
    for r in rows:
        r["provenance"] = r.get("provenance") or tree_flag(r.get("git_sha", ""))
    untrusted = [r for r in rows if r["provenance"]]
    if untrusted and not allow_dirty:
        shas = sorted({r.get("git_sha", "") or "(none)" for r in untrusted})
        raise DataError(f"{len(untrusted)} of {len(rows)} rows of {results} come from a dirty or unknown "
                        f"tree (git_sha {', '.join(shas[:4])}): re-run them from a clean checkout, or "
                        "pass --allow-dirty to publish them flagged")
    return rows


def leaderboard(results: str | os.PathLike, task: str | None = None, dataset: str | None = None,
                out: str | os.PathLike | None = None, allow_dirty: bool = False) -> list[dict[str, str]]:
    """The rows of ``results`` ranked (:func:`rank_key`): the strongest attack / weakest model
    first, each mode on its own; rows of a dirty or unknown tree are refused unless
    ``allow_dirty`` (:func:`trusted_rows`). ``out`` writes them as a CSV."""
    rows = [r for r in trusted_rows(results, allow_dirty) if (task is None or r.get("task") == task)
            and (dataset is None or r.get("dataset") == dataset)]
    rows.sort(key=rank_key)
    if out is not None:
        header = list(dict.fromkeys(k for r in rows for k in r)) if rows else BASE_COLUMNS
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header, restval="")
            w.writeheader()
            w.writerows(rows)
    return rows
