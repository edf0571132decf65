"""Retrieval at scale: our mAP/CMC against torchreid's Python and Cython evaluators.

At galleries of 1k / 10k / 100k / 1M (synthetic 128-d features of ``gallery / 20`` people over 6
cameras, 100 queries by default), each evaluator runs in a fresh process so its peak RSS is its
own; repetitions are interleaved (the order reverses every rep) and the median time reported:

* ``torchreid_py``: ``torchreid.reid.metrics.rank.evaluate_rank(use_cython=False)`` on the
  float64 distance matrix;
* ``torchreid_cy``: torchreid's Cython ``evaluate_cy`` on the same matrix. torchreid's wheel and
  sdist do not ship ``rank_cy.pyx``; pass ``--torchreid-pyx`` (from a deep-person-reid checkout)
  and it is compiled into ``$RBF_CACHE/torchreid_cy``, else the row says it is unavailable;
* ``ours``: :func:`evaluate_rank` on the same matrix (time includes the matrix, on both sides);
* ``ours_features``: :func:`evaluate_features`, streaming float32 distances in bounded memory;
* ``ours_topk``: :func:`topk_cmc`, faiss exact top-k, CMC only.

``max_abs_diff`` is the largest mAP / CMC difference from ``torchreid_py`` (``topk``: CMC only).
``extra_mib`` is the peak RSS above the process's RSS once the features exist.

    python benchmarks/retrieval.py --torchreid-pyx PATH/rank_cy.pyx --out benchmarks/results/retrieval.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

METHODS = ["torchreid_py", "torchreid_cy", "ours", "ours_features", "ours_topk"]


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _data(gallery: int, queries: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = max(gallery // 20, 10)
    centers = rng.normal(size=(ids, 128)).astype(np.float32)
    g_pids, q_pids = rng.integers(0, ids, gallery), rng.integers(0, ids, queries)
    g = centers[g_pids] + rng.normal(scale=1.5, size=(gallery, 128)).astype(np.float32)
    q = centers[q_pids] + rng.normal(scale=1.5, size=(queries, 128)).astype(np.float32)
    return q, g, q_pids, g_pids, rng.integers(0, 6, queries), rng.integers(0, 6, gallery)


def _cython_module(pyx: str | None):
    """torchreid's evaluate_cy, compiled once into the cache; None when no source was given."""
    if not pyx:
        return None
    build = Path(os.environ.get("RBF_CACHE", Path.home() / ".cache" / "robustbench_face")) / "torchreid_cy"
    build.mkdir(parents=True, exist_ok=True)
    src = build / "rank_cy.pyx"
    if not src.exists() or src.read_bytes() != Path(pyx).read_bytes():
        src.write_bytes(Path(pyx).read_bytes())
    if not list(build.glob("rank_cy*.so")):
        env = dict(os.environ, CFLAGS=f"-I{np.get_include()}")
        subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", str(src)],
                       cwd=build, env=env, check=True, capture_output=True)
    sys.path.insert(0, str(build))
    import rank_cy

    return rank_cy


def worker(method: str, gallery: int, queries: int, pyx: str | None) -> dict:
    from robustbench_face.metrics.reid import distance_matrix, evaluate_features, evaluate_rank, topk_cmc

    q, g, *labels = _data(gallery, queries)
    if method == "torchreid_cy":
        cy = _cython_module(pyx)
        if cy is None:
            return {"unavailable": "no --torchreid-pyx: torchreid's PyPI files do not ship rank_cy.pyx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchreid.reid.metrics.rank import evaluate_rank as torchreid_rank
    base = _rss_mib()
    t0 = time.perf_counter()
    if method == "torchreid_py":
        cmc, m = torchreid_rank(distance_matrix(q, g), *labels, max_rank=50, use_cython=False)
    elif method == "torchreid_cy":
        cmc, m = cy.evaluate_cy(distance_matrix(q, g), *labels, 50)
    elif method == "ours":
        r = evaluate_rank(distance_matrix(q, g), *labels, max_rank=50)
        cmc, m = r.cmc, r.map
    elif method == "ours_features":
        r = evaluate_features(q, g, *labels, max_rank=50)
        cmc, m = r.cmc, r.map
    else:
        cmc, m = topk_cmc(q, g, *labels, max_rank=50).cmc, float("nan")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mib": peak, "extra_mib": peak - base,
            "map": float(m), "cmc": [float(c) for c in cmc]}


def _spawn(method: str, gallery: int, queries: int, pyx: str | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--gallery", str(gallery),
           "--queries", str(queries)] + (["--torchreid-pyx", pyx] if pyx else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        return {"unavailable": f"exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(gallery: int, queries: int, reps: int, pyx: str | None, methods: list[str]) -> list[dict]:
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for rep in range(reps):
        for m in (methods if rep % 2 == 0 else methods[::-1]):
            runs[m].append(_spawn(m, gallery, queries, pyx))
    ref = runs.get("torchreid_py", [{}])[0]
    rows = []
    for m, rs in runs.items():
        if "unavailable" in rs[0]:
            rows.append({"gallery": gallery, "queries": queries, "method": m, "note": rs[0]["unavailable"]})
            continue
        row = {"gallery": gallery, "queries": queries, "method": m, "reps": len(rs),
               "seconds": statistics.median(r["seconds"] for r in rs),
               "peak_mib": max(r["peak_mib"] for r in rs), "extra_mib": max(r["extra_mib"] for r in rs),
               "map": rs[0]["map"]}
        if "cmc" in ref:
            diff = float(np.abs(np.array(rs[0]["cmc"]) - np.array(ref["cmc"])).max())
            if m != "ours_topk":
                diff = max(diff, abs(rs[0]["map"] - ref["map"]))
            row["max_abs_diff"] = diff
        rows.append(row)
    for row in rows:
        for other in ("torchreid_py", "torchreid_cy"):
            theirs = next((r for r in rows if r["method"] == other and "seconds" in r), None)
            if theirs and "seconds" in row:
                row[f"speedup_vs_{other}"] = theirs["seconds"] / row["seconds"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/retrieval.csv")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reps-1m", type=int, default=1, help="repetitions at galleries of 1M and more")
    ap.add_argument("--torchreid-pyx", help="torchreid's rank_cy.pyx (not on PyPI)")
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--gallery", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.gallery, a.queries, a.torchreid_pyx)))
        return
    if a.torchreid_pyx:
        _cython_module(a.torchreid_pyx)  # build once here, not inside a timed worker
    rows = []
    for size in a.sizes:
        rows += measure(size, a.queries, a.reps if size < 1_000_000 else a.reps_1m, a.torchreid_pyx, a.methods)
    fields = ["gallery", "queries", "method", "reps", "seconds", "speedup_vs_torchreid_py",
              "speedup_vs_torchreid_cy", "max_abs_diff", "map", "peak_mib", "extra_mib", "note"]
    print(f"{'gallery':>8} {'method':<14}{'seconds':>9}{'x py':>8}{'x cy':>7}{'max diff':>10}"
          f"{'peak MiB':>10}{'extra':>8}  note")
    for r in rows:
        f = lambda k, spec: format(r[k], spec) if k in r else "-"  # noqa: E731
        print(f"{r['gallery']:>8} {r['method']:<14}{f('seconds', '9.3f')}{f('speedup_vs_torchreid_py', '8.1f')}"
              f"{f('speedup_vs_torchreid_cy', '7.2f')}{f('max_abs_diff', '10.1e')}{f('peak_mib', '10.0f')}"
              f"{f('extra_mib', '8.0f')}  {r.get('note', '')}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
