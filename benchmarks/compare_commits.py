"""Published figures, re-run on an older commit and on this tree, side by side in one run.

For each figure the same command runs twice, once with the old commit's code (a ``git worktree``
of ``--old``, put first on ``PYTHONPATH``, its own benchmark scripts and cards) and once with
this tree's, in alternating order (old first for one figure, new first for the next) so a
machine that gets busier or quieter does not favour one side. The metric columns of every row
are then paired and printed, with their largest absolute difference, and written as a CSV:

* ``pgd``       ``rbf run --attack pgd`` on mini-MARS, white-box + MSMT17 transfer, 128 queries;
* ``patch_iter`` the same with ``patch_iter -a steps=200``;
* ``cond_patch`` ``benchmarks/cond_patch.py --iter-limit 16`` (the cond_patch card's table);
* ``face``      ``benchmarks/face_transfer.py`` (ORL dodging, PGD 8/255, 10 pairs per source);
* ``affect``    ``benchmarks/affect_attacks.py`` (fer_xception flip rates on the 400 ORL faces).

    python benchmarks/compare_commits.py --old 073850f [--new REF] [--only pgd,face] [--threads 2]
        [--out benchmarks/results/compare_commits.csv]

Timings (``sec_per_query``) are paired too; they are only comparable because both sides ran
in this one process, one after the other, on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
REID = ["--victim", "osnet_x0_25.market1501", "--dataset", "mini_mars", "--eval-victim",
        "osnet_x0_25.msmt17", "--seed", "0"]
FIGURES = {
    # name: (command after the python executable, output flag, row key columns)
    "pgd": (["-m", "robustbench_face.cli", "run", "--attack", "pgd", *REID], "--out", ["eval_victim"]),
    "patch_iter": (["-m", "robustbench_face.cli", "run", "--attack", "patch_iter", "-a", "steps=200", *REID],
                   "--out", ["eval_victim"]),
    "cond_patch": (["benchmarks/cond_patch.py", "--iter-limit", "16"], "--out", ["method", "mode"]),
    "face": (["benchmarks/face_transfer.py", "--dataset", "orl", "--mode", "dodging", "--eps", "8/255",
              "--limit", "10"], "--out", ["source", "eval"]),
    "affect": (["benchmarks/affect_attacks.py"], "--out", ["attack", "mode", "target_class", "eps"]),
}
EXTRA = {"face": ["--results"], "affect": ["--results"], "cond_patch": ["--raw"]}  # side files
SKIP = {"timestamp", "git_sha", "config_hash", "package_version", "attack_config", "wall_s",
        "settings", "sec_per_query", "attack_sec_per_query", "speedup_vs_patch_iter", "speedup"}


def worktree(ref: str) -> Path:
    sha = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short=12", ref], check=True,
                         capture_output=True, text=True).stdout.strip()
    path = Path(os.environ.get("RBF_CACHE", HERE / ".rbf-cache")) / "worktrees" / sha
    if not path.is_dir():
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(path), sha],
                       check=True, capture_output=True)
    return path


def run_side(tree: Path, figure: str, tmp: Path, threads: int | None) -> tuple[list[dict], float]:
    cmd, out_flag, _ = FIGURES[figure]
    out = tmp / f"{figure}-{tree.name}.csv"
    args = [sys.executable, *cmd, out_flag, str(out)]
    for flag in EXTRA.get(figure, []):
        args += [flag, str(tmp / f"{figure}-{tree.name}{flag.replace('-', '_')}.csv")]
    if figure == "cond_patch" and threads:
        args += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{figure} on {tree} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(out, newline="") as f:
        return list(csv.DictReader(f)), wall


def _num(v: str):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def pair(figure: str, old: list[dict], new: list[dict]) -> list[dict]:
    keys = FIGURES[figure][2]
    index = {tuple(r.get(k, "") for k in keys): r for r in new}
    rows = []
    for r in old:
        key = tuple(r.get(k, "") for k in keys)
        n = index.get(key)
        if n is None:
            rows.append({"figure": figure, "row": "/".join(key), "column": "(row)", "old": "present",
                         "new": "missing", "abs_diff": ""})
            continue
        for col, v in r.items():
            a, b = _num(v), _num(n.get(col))
            if col in SKIP or col in keys or a is None:
                continue
            diff = "" if b is None else (0.0 if (math.isnan(a) and math.isnan(b)) else abs(a - b))
            rows.append({"figure": figure, "row": "/".join(key), "column": col, "old": v,
                         "new": n.get(col, "(absent)"), "abs_diff": diff})
        for col in ("sec_per_query",):
            if col in r:
                rows.append({"figure": figure, "row": "/".join(key), "column": col, "old": r[col],
                             "new": n.get(col, ""), "abs_diff": "timing"})
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the commit whose published figures are checked")
    ap.add_argument("--new", default=None, help="the commit to check them on (default: this working tree)")
    ap.add_argument("--only", default=",".join(FIGURES))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/compare_commits.csv")
    args = ap.parse_args(argv)
    os.environ.setdefault("RBF_HOME", str(HERE.parent / "shared" / "assets"))
    os.environ.setdefault("RBF_CACHE", str(HERE / ".rbf-cache"))  # both sides share fetched weights
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    old_tree, out_rows, walls = worktree(args.old), [], []
    new_tree = worktree(args.new) if args.new else HERE
    with tempfile.TemporaryDirectory() as tmp:
        for i, fig in enumerate(args.only.split(",")):
            order = [("old", old_tree), ("new", new_tree)][:: 1 if i % 2 == 0 else -1]
            got = {}
            for side, tree in order:
                got[side] = run_side(tree, fig, Path(tmp), args.threads)
                print(f"{fig:<11} {side}: {got[side][1]:.0f} s", flush=True)
            walls.append((fig, got["old"][1], got["new"][1]))
            out_rows += pair(fig, got["old"][0], got["new"][0])
    worst = {}
    for r in out_rows:
        if isinstance(r["abs_diff"], float):
            worst[r["figure"]] = max(worst.get(r["figure"], 0.0), r["abs_diff"])
    print(f"\n{'figure':<11} {'metric values paired':>20} {'max |old - new|':>16} {'wall old / new (s)':>20}")
    for fig, wo, wn in walls:
        n = sum(1 for r in out_rows if r["figure"] == fig and isinstance(r["abs_diff"], float))
        print(f"{fig:<11} {n:>20} {worst.get(fig, float('nan')):>16.3g} {wo:>9.0f} / {wn:<9.0f}")
    for r in out_rows:
        if r["abs_diff"] == "timing" or (isinstance(r["abs_diff"], float) and r["abs_diff"] > 0) \
                or r["column"] == "(row)":
            print(f"  {r['figure']:<11} {r['row']:<40} {r['column']:<22} {r['old']:>12} -> {r['new']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["figure", "row", "column", "old", "new", "abs_diff"])
        w.writeheader()
        w.writerows(out_rows)
    print(f"wrote {args.out}")
    return out_rows


if __name__ == "__main__":
    main()
