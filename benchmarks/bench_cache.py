"""What a grid's shared clean work saves: ``rbf bench SPEC`` against the same cells as separate
``rbf run`` calls, side by side in one run on one machine.

The bench runs every cell in one process, sharing built victims and the clean outputs of each
(victim, defense, dataset) through its cache; the separate runs start a fresh ``rbf run`` per
cell (each one's exact command is the cell's re-run command), as a user without the grid would.
Both produce the same metric values (checked); the wall times and their ratio are printed and
written as a CSV (target: the bench at least 2x faster).

    python benchmarks/bench_cache.py [--spec benchmarks/smoke.toml] [--out benchmarks/results/bench_cache.csv]
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="benchmarks/smoke.toml")
    ap.add_argument("--out", default="benchmarks/results/bench_cache.csv")
    args = ap.parse_args(argv)
    from robustbench_face.bench import bench, check_cells, expand, load_spec
    from robustbench_face.results import read_rows
    from robustbench_face.runner import rerun_command

    spec = load_spec(args.spec)
    cells = check_cells(expand(spec), spec["name"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = bench(args.spec, out=Path(tmp) / "bench")
        t_bench = time.perf_counter() - t0
        sep = Path(tmp) / "separate.csv"
        t0 = time.perf_counter()
        for c in cells:
            cmd = shlex.split(rerun_command(c.run_config(sep, spec["name"])))[1:] + ["--out", str(sep)]
            subprocess.run([sys.executable, "-m", "robustbench_face.cli", *cmd], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
        t_sep = time.perf_counter() - t0
        keys = ("victim", "eval_victim", "attack", "defense", "seed", "clean_map", "adv_map", "success_rate")
        a = sorted(tuple(row[k] for k in keys) for row in read_rows(r["results"])[1])
        b = sorted(tuple(row[k] for k in keys) for row in read_rows(sep)[1])
    same = a == b
    out = {"spec": spec["name"], "cells": len(cells), "bench_s": round(t_bench, 1), "separate_s": round(t_sep, 1),
           "speedup": round(t_sep / t_bench, 2), "same_metrics": same}
    print(f"{out['cells']} cells: bench {out['bench_s']} s, separate rbf run calls {out['separate_s']} s: "
          f"{out['speedup']}x; same metric values: {same}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out))
        w.writeheader()
        w.writerow(out)
    return out


if __name__ == "__main__":
    main()
