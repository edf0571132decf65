"""Collect the rows of ``rbf interpret`` runs (``runs/interpret/<name>/``) into one small CSV for
``docs/interpret.md``: per run, the clustering, channel, patch-mass and causal-check numbers, with
the command that reproduces it; and the overlap table's rows (top-k Jaccard across attacks,
k = 2 label ARI across seeds).

    python benchmarks/interpret_summary.py runs/interpret --out benchmarks/results/interpret.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

RUN = ["folder", "victim", "attack", "mode", "dataset", "seed", "layer", "layer_shape", "n_inputs",
       "n_scored", "metric_clean", "metric_adv", "causal_metric", "success_rate", "k2_purity", "k2_ari",
       "best_k", "best_purity", "best_ari", "k2_small_clusters", "patch_mass", "grad_patch_mass",
       "region_source", "top_channels", "top_share", "restore_k", "metric_restored_top", "recovered_top",
       "recovered_random_mean", "recovered_random_std", "n_random", "sec_per_query", "git_sha", "rerun"]
OVERLAP = ["folder", "attack_a", "attack_b", "run_a", "run_b", "layer", "k", "jaccard", "shared",
           "k2_label_ari"]


def rows_of(root: Path, name: str) -> list[dict[str, str]]:
    out = []
    for path in sorted(root.glob(f"*/{name}")):
        with open(path, newline="") as f:
            out += [{**r, "folder": path.parent.name} for r in csv.DictReader(f)]
    return out


def write(path: Path, rows: list[dict[str, str]], fields: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", nargs="?", default="runs/interpret")
    p.add_argument("--out", default="benchmarks/results/interpret.csv")
    a = p.parse_args()
    root, out = Path(a.root), Path(a.out)
    runs = rows_of(root, "interpret.csv")
    write(out, runs, RUN)
    write(out.with_name(out.stem + "_overlap.csv"), rows_of(root, "interpret_overlap.csv"), OVERLAP)
    for r in runs:
        print(f"{r['folder']:>16} {r['attack']:>10} {r['layer']:>10} n={r['n_inputs']:>4} "
              f"purity {float(r['k2_purity']):.3f} patch_mass {float(r['patch_mass']):.3f} "
              f"restore {float(r['recovered_top']):.3f} vs {float(r['recovered_random_mean']):.3f}")


if __name__ == "__main__":
    main()
