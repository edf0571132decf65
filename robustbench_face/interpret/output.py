"""``rbf interpret``'s files: ``interpret.csv`` (one row per run, the runner's provenance
columns included), ``interpret_clusters.csv``, ``interpret_channels.csv``,
``interpret_points.csv`` (each clustered point's clusters), ``interpret_overlap.csv`` (top-k
Jaccard between runs on the same victim and layer, and the ARI of their k = 2 labels) and
``figures/<run_id>/``. The CSVs are appended atomically (``results.append_rows``); a run
repeated with the same settings keeps its ``run_id`` and only its latest rows count for the
overlap."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from ..results import append_rows, read_rows
from . import analysis as A

STAMP = ("run_id", "victim", "attack", "mode", "dataset", "layer", "timestamp")


@dataclass
class InterpretResult:
    row: dict[str, Any]             # the interpret.csv row
    clusters: list[dict[str, Any]]
    channels: list[dict[str, Any]]
    overlap: list[dict[str, Any]]
    out: Path
    figures: list[Path] = field(default_factory=list)


def write(cfg, row: dict[str, Any], clusters: list[dict], channels: list[dict], data: dict):
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    if cfg.figures:
        from .figures import draw_all

        figures = draw_all(out / "figures" / row["run_id"], row, data)
        row["figures"] = str(Path("figures") / row["run_id"])
    stamp = {k: row.get(k, "") for k in STAMP}
    append_rows(out / "interpret.csv", [row])
    append_rows(out / "interpret_clusters.csv", [{**stamp, **c} for c in clusters])
    append_rows(out / "interpret_channels.csv", [{**stamp, **c} for c in channels])
    append_rows(out / "interpret_points.csv", point_rows(stamp, data))
    overlap = write_overlap(out, [Path(c) for c in cfg.compare], cfg.top_k)
    return InterpretResult(row, clusters, channels, overlap, out, figures)


def point_rows(stamp: dict[str, Any], data: dict) -> list[dict[str, Any]]:
    """One row per clustered point: point i < n is clean input i, else adversarial input i - n,
    with its cluster under each clustering (the seed-stability ARI compares these)."""
    n = len(data["adv"])
    names = list(data["labels"])
    return [{**stamp, "point": i, "input": i % n, "adversarial": bool(data["is_adv"][i]),
             **{f"cluster_{k}": int(data["labels"][k][i]) for k in names}}
            for i in range(len(data["is_adv"]))]


def latest_runs(folders: list[Path], name: str = "interpret_channels.csv") -> dict[str, list[dict[str, str]]]:
    """run_id -> its rows of ``name`` (the latest timestamp of that run_id), over ``folders``."""
    runs: dict[str, list[dict[str, str]]] = {}
    for folder in folders:
        for r in read_rows(folder / name)[1]:
            have = runs.get(r["run_id"])
            if have and have[0]["timestamp"] > r["timestamp"]:
                continue
            if have and have[0]["timestamp"] < r["timestamp"]:
                have.clear()
            runs.setdefault(r["run_id"], []).append(r)
    return runs


def label_ari(a: list[dict[str, str]], b: list[dict[str, str]]) -> float:
    """ARI between two runs' k = 2 cluster labels over the same points (NaN when the runs
    clustered different numbers of points: then they are not the same inputs)."""
    from sklearn.metrics import adjusted_rand_score

    if not a or len(a) != len(b):
        return float("nan")
    la = [r["cluster_k2"] for r in sorted(a, key=lambda r: int(r["point"]))]
    lb = [r["cluster_k2"] for r in sorted(b, key=lambda r: int(r["point"]))]
    return float(adjusted_rand_score(la, lb))


def overlap_rows(runs: dict[str, list[dict[str, str]]], k: int,
                 points: dict[str, list[dict[str, str]]] | None = None) -> list[dict[str, Any]]:
    """Top-``k`` Jaccard for every pair of runs on the same victim and layer, and the ARI of
    their k = 2 labels (``points``; the seed-stability check when only the seed differs)."""
    points = points or {}
    top = {rid: {int(r["channel"]) for r in rows if int(r["rank"]) <= k} for rid, rows in runs.items()}
    out = []
    for a, b in combinations(sorted(runs), 2):
        ra, rb = runs[a][0], runs[b][0]
        if (ra["victim"], ra["layer"]) != (rb["victim"], rb["layer"]):
            continue
        out.append({"run_a": a, "run_b": b, "attack_a": ra["attack"], "attack_b": rb["attack"],
                    "mode_a": ra["mode"], "mode_b": rb["mode"], "victim": ra["victim"], "layer": ra["layer"],
                    "k": k, "jaccard": A.jaccard(top[a], top[b]),
                    "shared": ";".join(map(str, sorted(top[a] & top[b]))),
                    "k2_label_ari": label_ari(points.get(a, []), points.get(b, []))})
    return out


def write_overlap(out: Path, compare: list[Path], k: int) -> list[dict[str, Any]]:
    """Rewrite ``out/interpret_overlap.csv`` over the runs in ``out`` and ``compare``."""
    folders = [out, *compare]
    rows = overlap_rows(latest_runs(folders), k, latest_runs(folders, "interpret_points.csv"))
    path = out / "interpret_overlap.csv"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        fields = ["run_a", "run_b", "attack_a", "attack_b", "mode_a", "mode_b", "victim", "layer", "k",
                  "jaccard", "shared", "k2_label_ari"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return rows
