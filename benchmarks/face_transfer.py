"""3x3 face transfer matrix: an attack made on each face victim, scored on every one.

Each source victim gets one ``rbf run`` (through :func:`robustbench_face.runner.run`) with
the other two as ``--eval-victim``; the rows go to the results CSV and are pivoted into
``leaderboards/face_transfer_<dataset>.csv``: one row per (source, eval) victim with the
success rate, its Wilson 95% interval and the FAR. Every victim is scored on the source
victim's aligned chips, its threshold calibrated on clean chips of that alignment (see
``robustbench_face/tasks/face.py``). The printed matrix has sources as rows.

    python benchmarks/face_transfer.py --dataset orl --mode dodging --eps 8/255 --limit 10 \\
        --results /work/notes/runs/face_results.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from robustbench_face.runner import RunConfig, parse_value, run

VICTIMS = ["dlib_resnet", "faceres", "mobileface"]
COLUMNS = ["source", "eval", "eval_alignment", "mode", "far", "success_rate", "ci_low", "ci_high",
           "n_scored", "n_queries", "n_fallback", "clean_acc",
           "tar_at_far", "clean_acc_native", "tar_at_far_native", "attack_config"]


def transfer_rows(dataset: str, mode: str, attack: str, attack_args: dict, limit: int | None,
                  far: float, seed: int, results: str, victims=VICTIMS) -> list[dict]:
    out = []
    for src in victims:
        others = [v for v in victims if v != src]
        rows = run(RunConfig(attack=attack, victim=src, dataset=dataset, eval_victims=others,
                             mode=mode, limit=limit, task_options={"far": far}, seed=seed, out=results,
                             attack_args=attack_args))
        out += [_pivot(r, src) for r in rows]
    return out


def _pivot(r: dict, src: str) -> dict:
    return {"source": src, "eval": r["eval_victim"].split(".")[0], **{k: r.get(k, "") for k in COLUMNS[2:]}}


def rows_from_results(results: str, dataset: str, mode: str, attack: str, victims=VICTIMS) -> list[dict]:
    """Re-pivot finished runs: per source, the latest run (config_hash) that scored all victims."""
    from robustbench_face.results import read_rows

    runs: dict[str, list[dict]] = {}
    for r in read_rows(results)[1]:
        if (r.get("task"), r.get("dataset"), r.get("mode"), r.get("attack")) == ("face", dataset, mode, attack):
            runs.setdefault(r["config_hash"], []).append(r)
    latest: dict[str, list[dict]] = {}
    for group in runs.values():
        src = group[0]["victim"].split(".")[0]
        if src in victims and {g["eval_victim"].split(".")[0] for g in group} == set(victims):
            latest[src] = group  # results rows are appended in time order
    out = []
    for src in victims:
        for r in latest.get(src, []):
            row = _pivot(r, src)
            out.append({k: float(v) if k in ("success_rate", "ci_low", "ci_high") else v for k, v in row.items()})
    return out


def write(rows: list[dict], path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})


def matrix(rows: list[dict], victims=VICTIMS) -> str:
    cell = {(r["source"], r["eval"]): r for r in rows}
    lines = ["source \\ eval".ljust(14) + "".join(v.rjust(24) for v in victims)]
    for s in victims:
        txt = [f"{cell[s, e]['success_rate']:.2f} [{cell[s, e]['ci_low']:.2f},{cell[s, e]['ci_high']:.2f}]"
               if (s, e) in cell else "-" for e in victims]
        lines.append(s.ljust(14) + "".join(t.rjust(24) for t in txt))
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="orl")
    ap.add_argument("--mode", default="dodging", choices=["dodging", "impersonation"])
    ap.add_argument("--attack", default="pgd")
    ap.add_argument("--eps", default="8/255")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--limit", type=int, default=10, help="attacked pairs per source victim")
    ap.add_argument("--far", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default="runs/results.csv")
    ap.add_argument("--out", default=None, help="default: leaderboards/face_transfer_<dataset>.csv")
    ap.add_argument("--from-results", action="store_true",
                    help="do not run; pivot the latest matching runs already in --results")
    a = ap.parse_args(argv)
    args = {"eps": parse_value(a.eps), "steps": a.steps} if a.attack in ("pgd", "mifgsm") else {"steps": a.steps}
    if a.from_results:
        rows = rows_from_results(a.results, a.dataset, a.mode, a.attack)
    else:
        rows = transfer_rows(a.dataset, a.mode, a.attack, args, a.limit, a.far, a.seed, a.results)
    out = a.out or f"leaderboards/face_transfer_{a.dataset}.csv"
    write(rows, out)
    print(f"{a.attack} {args} {a.mode} on {a.dataset}, FAR {a.far:g}, {a.limit} pairs per source")
    print(matrix(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
