"""``rbf leaderboard RESULTS.csv --out DIR``: a published leaderboard, and ``--check ENTRY.json``.

From a results CSV (any number of ``rbf run`` / ``rbf bench`` rows) it writes

* ``leaderboard.csv``: one row per **entry** -- the same evaluation (task, dataset, victim, eval
  victim, attack and its settings, mode, defense, subset) over however many seeds -- with the
  seeds' mean and spread, the rank within its table and the entry's flags; duplicate rows (the
  same cell run twice) count once;
* ``entries/<id>.json``: the entry's spec, metrics, intervals, per-seed values, flags, provenance
  (commits, config hashes, times), the cards behind it (paper, licence, weights sha256) and the
  command that re-runs each seed, sealed by a ``digest`` of all of it;
* ``leaderboard.md`` and ``index.html`` (:mod:`.page`): one table per (task, dataset, mode, threat
  model), ranked by :func:`robustbench_face.results.rank_key`.

What may be shown (RobustBench's rules, made stricter): seeds are averaged with their spread;
partial (``--limit``), non-adaptive (a defense attacked without BPDA / EOT) and dirty-tree entries
are flagged and never ranked above full, adaptive, clean-tree ones; rows of a dirty or unknown
tree are refused unless ``allow_dirty``; demo rows never appear.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any

from .errors import DataError
from .page import as_row, table_key, write_markdown, write_page
from .results import flags_of, headline_metric, rank_key, trusted_rows

SCHEMA = 1
# what makes two rows the same entry (the seed, times and commits do not)
IDENTITY = ("task", "dataset", "dataset_options", "victim", "eval_victim", "attack", "mode", "defense",
            "adaptive", "n_queries", "n_available", "partial", "target_class", "far")
METRICS = ("clean_map", "adv_map", "clean_rank1", "adv_rank1", "target_map", "success_rate", "clean_acc",
           "adv_acc", "tar_at_far", "adv_tar", "flip_rate", "clean_macro_f1", "adv_macro_f1", "sec_per_query",
           "perturbation", "queries_per_image", "map_floor")
INTERVALS = {"success_rate": ("ci_low", "ci_high"), "clean_map": ("clean_map_ci_low", "clean_map_ci_high"),
             "adv_map": ("adv_map_ci_low", "adv_map_ci_high"), "tar_at_far": ("tar_ci_low", "tar_ci_high")}
PROVENANCE = ("git_sha", "package_version", "config_hash", "timestamp")


def _settings(r: dict[str, str]) -> dict[str, Any]:
    """The attack's settings without its seed (the seed is an entry's repetition, not its spec)."""
    try:
        cfg = json.loads(r.get("attack_config") or "{}")
    except json.JSONDecodeError:
        cfg = {"repr": r.get("attack_config")}
    cfg.pop("seed", None)
    return cfg


def entry_id(r: dict[str, str]) -> str:
    blob = json.dumps({**{k: r.get(k, "") for k in IDENTITY}, "attack_config": _settings(r)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def threat_model(r: dict[str, str]) -> str:
    return "white-box" if r.get("eval_victim") == r.get("victim") else "transfer"


def _cards(r: dict[str, str]) -> dict[str, Any]:
    """Paper, licence and weights sha256 of the victim, attack and dataset behind a row."""
    from .cards import load_card
    from .registry import ATTACKS, DATASETS, VICTIMS

    out = {}
    for kind, registry, name in (("victims", VICTIMS, r.get("eval_victim", "")), ("attacks", ATTACKS, r.get("attack", "")),
                                 ("datasets", DATASETS, r.get("dataset", ""))):
        try:
            card_name = registry.get(name.partition(".")[0]).card
            card = load_card(kind, card_name) if card_name else {}
        except Exception:  # a plug-in without a card, or an attack named "none"
            continue
        info = {"card": f"{kind}/{card_name}.toml", "paper": card.get("paper", ""), "licence": card.get("licence", "")}
        variant = card.get("variants", {}).get(name, {})
        if variant.get("sha256"):
            info["weights_sha256"] = variant["sha256"]
        ckpt = card.get("checkpoints", {}).get(r.get("victim", "")) if kind == "attacks" else None
        if isinstance(ckpt, dict) and ckpt.get("sha256"):  # a learned attack: the generator it ran
            info["checkpoint"], info["checkpoint_sha256"] = f"checkpoints/{ckpt['file']}", ckpt["sha256"]
        out[kind[:-1]] = info
    return out


def _digest(entry: dict[str, Any]) -> str:
    """sha256 of the entry without its digest and its rank (which depends on the other entries).
    It catches an entry edited after publication; it is no signature (anyone may recompute it),
    so trust comes from re-running the entry's commands on its commit."""
    body = {k: v for k, v in entry.items() if k not in ("digest", "rank")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def build_entry(rows: list[dict[str, str]]) -> dict[str, Any]:
    """One entry from the rows of its seeds (see the module docstring)."""
    first = rows[0]
    seeds = sorted({int(r.get("seed") or 0) for r in rows})
    metrics, spread = {}, {}
    for m in METRICS:
        vals = [v for v in (_num(r.get(m)) for r in rows) if v is not None]
        if vals:
            metrics[m] = statistics.fmean(vals)
            spread[m] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    intervals = {m: [_num(first.get(lo)), _num(first.get(hi))] for m, (lo, hi) in INTERVALS.items()
                 if _num(first.get(lo)) is not None}
    entry = {"schema": SCHEMA, "id": entry_id(first),
             "spec": {**{k: first.get(k, "") for k in IDENTITY}, "attack_config": _settings(first),
                      "threat_model": threat_model(first)},
             "seeds": seeds, "metrics": metrics, "spread": spread, "intervals": intervals,
             "interval_seed": int(first.get("seed") or 0),
             "per_seed": [{"seed": int(r.get("seed") or 0), **{m: _num(r.get(m)) for m in METRICS if _num(r.get(m)) is not None}}
                          for r in rows],
             "flags": sorted({f for r in rows for f in flags_of(r)}),
             "provenance": {k: sorted({r.get(k, "") for r in rows}) for k in PROVENANCE},
             "cards": _cards(first), "rerun": [r.get("rerun", "") for r in rows]}
    entry["digest"] = _digest(entry)
    return entry


def entries(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Rows grouped into entries (duplicates of one seed count once: the latest row wins)."""
    groups: dict[str, dict[int, dict[str, str]]] = {}
    for r in sorted(rows, key=lambda r: r.get("timestamp", "")):
        groups.setdefault(entry_id(r), {})[int(r.get("seed") or 0)] = r
    out = [build_entry(list(by_seed.values())) for by_seed in groups.values()]
    return sorted(out, key=lambda e: rank_key(as_row(e)))


def publish(results: str | Path, out: str | Path, allow_dirty: bool = False) -> list[dict[str, Any]]:
    """Write the leaderboard of ``results`` into the folder ``out`` (module docstring)."""
    rows = trusted_rows(results, allow_dirty)
    if not rows:
        raise DataError(f"{results}: no rows to publish")
    out = Path(out)
    (out / "entries").mkdir(parents=True, exist_ok=True)
    ranked = entries(rows)
    rank: dict[tuple, int] = {}
    for e in ranked:
        k = table_key(e)
        rank[k] = rank.get(k, 0) + 1
        e["rank"] = rank[k]
        (out / "entries" / f"{e['id']}.json").write_text(json.dumps(e, indent=1, sort_keys=True) + "\n")
    _write_csv(ranked, out / "leaderboard.csv")
    write_markdown(ranked, out / "leaderboard.md")
    write_page(ranked, out / "index.html")
    return ranked


def _write_csv(ranked: list[dict[str, Any]], path: Path) -> None:
    cols = ["rank", "id", "task", "dataset", "mode", "threat_model", "victim", "eval_victim", "attack", "defense",
            "adaptive", "n_queries", "seeds", "headline", "value", "spread", *METRICS, "ci_low", "ci_high", "flags"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for e in ranked:
            key, _ = headline_metric(as_row(e))
            lo, hi = e["intervals"].get("success_rate", [None, None])
            w.writerow({**e["spec"], **e["metrics"], "rank": e["rank"], "id": e["id"], "seeds": len(e["seeds"]),
                        "headline": key, "value": e["metrics"].get(key), "spread": e["spread"].get(key),
                        "ci_low": lo, "ci_high": hi, "flags": ";".join(e["flags"])})


def check_entry(path: str | Path) -> dict[str, Any]:
    """Validate a submitted entry: schema, provenance, re-run commands, intervals and the digest.
    Raises :class:`DataError` with what is wrong; returns the entry when it is sound."""
    try:
        e = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable entry: {exc}") from None
    name = f"entry {Path(path).name}"
    need = ("schema", "id", "spec", "seeds", "metrics", "intervals", "flags", "provenance", "rerun", "digest")
    missing = [k for k in need if k not in e]
    if missing:
        raise DataError(f"{name}: missing {', '.join(missing)}")
    prov = e["provenance"]
    for k in PROVENANCE:
        if not prov.get(k) or not all(prov[k]):
            raise DataError(f"{name}: provenance lacks {k}: an entry must say which commit, config and time made it")
    if any(str(s).endswith("-dirty") or s == "unknown" for s in prov["git_sha"]) and not any(
            f.endswith("-tree") for f in e["flags"]):
        raise DataError(f"{name}: made from a dirty or unknown tree but not flagged as such")
    if len(e["rerun"]) != len(e["seeds"]) or not all(str(c).startswith("rbf ") for c in e["rerun"]):
        raise DataError(f"{name}: needs one re-run command (rbf ...) per seed")
    for m, (lo, hi) in e["intervals"].items():
        v = next((p.get(m) for p in e.get("per_seed", []) if p.get("seed") == e.get("interval_seed")), None)
        if v is not None and lo is not None and hi is not None and not lo - 1e-9 <= v <= hi + 1e-9:
            raise DataError(f"{name}: {m} = {v} lies outside its own interval [{lo}, {hi}]: the metric was changed")
    if _digest(e) != e["digest"]:
        raise DataError(f"{name}: digest mismatch: the entry was changed after it was made (metrics, spec or "
                        "provenance); re-publish it from its results with rbf leaderboard")
    return e
