"""fer_xception under attack on the ORL faces: the affect must-show table.

Each row is one ``rbf run`` (``robustbench_face.runner.run``) on ``--dataset orl``, whose faces
carry no expression labels, so the victim's clean predictions are the reference (see
``robustbench_face/tasks/affect.py``):

* PGD L-inf untargeted at eps 2/255, 4/255, 8/255: flip rate;
* PGD L-inf 8/255 targeted to ``happy`` and to ``neutral``: targeted success (images already
  predicted as the target on the clean face are left out);
* ``patch_iter`` untargeted, an eye band ``0.34,0.10,0.16,0.80`` (top, left, height, width
  fractions: the ``eyeglass`` preset moved down 4% onto ORL's unaligned eyes; 18x74 px of the
  112x92 image, 12.9% of its pixels), Adam.

``--extended`` adds PGD at 0.25, 0.5 and 1/255 (fer_xception already flips every face at
2/255), targeted PGD at 0.5 and 1/255, and a 1.9% patch on the nose bridge.

Equivalent CLI, e.g. ``rbf run --attack pgd --victim fer_xception --dataset orl -a eps=2/255``.

    python benchmarks/affect_attacks.py [--limit N] [--steps 20] [--patch-steps 100]
        [--device cpu] [--extended] [--out benchmarks/results/affect_attacks.csv]

Prints the table and writes every column of every row to ``--out`` (overwritten); the raw
rows also go to ``--results`` (the runner's append-only results CSV).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

EYE_BAND = "0.34,0.10,0.16,0.80"
SMALL_PATCH = "0.40,0.40,0.10,0.20"  # 11x18 px on the nose bridge, 1.9% of the image
SHOW = ["attack", "mode", "target_class", "eps", "n_queries", "success_rate", "ci_low", "ci_high",
        "flip_rate", "adv_target_rate", "clean_target_rate", "perturbation", "perturbation_kind",
        "sec_per_query", "queries_per_image"]


def configs(steps: int, patch_steps: int, extended: bool = False) -> list[dict]:
    pgd = [dict(attack="pgd", attack_args={"eps": e / 255, "steps": steps}, eps=f"{e}/255")
           for e in (2, 4, 8)]
    tgt = [dict(attack="pgd", attack_args={"eps": 8 / 255, "steps": steps}, eps="8/255",
                mode="targeted", target_class=c) for c in ("happy", "neutral")]
    patch = [dict(attack="patch_iter", attack_args={"region": EYE_BAND, "steps": patch_steps},
                  eps=f"patch {EYE_BAND}")]
    if not extended:
        return pgd + tgt + patch
    # fer_xception saturates at 2/255; smaller budgets and a 2% patch show where it breaks
    low = [dict(attack="pgd", attack_args={"eps": e / 255, "steps": steps}, eps=f"{e}/255")
           for e in (0.25, 0.5, 1)]
    low_t = [dict(attack="pgd", attack_args={"eps": e / 255, "steps": steps}, eps=f"{e}/255",
                  mode="targeted", target_class=c) for e in (0.5, 1) for c in ("happy", "neutral")]
    small = [dict(attack="patch_iter", attack_args={"region": SMALL_PATCH, "steps": patch_steps},
                  eps=f"patch {SMALL_PATCH}")]
    return pgd + tgt + patch + low + low_t + small


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N ORL faces (default all 400)")
    ap.add_argument("--steps", type=int, default=20, help="PGD steps (alpha = eps/4)")
    ap.add_argument("--patch-steps", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extended", action="store_true",
                    help="also PGD at 0.25-1/255 (untargeted and targeted) and a 2%% patch")
    ap.add_argument("--only", default=None, help="comma-separated row numbers to run (0-5; 6-13 with --extended)")
    ap.add_argument("--results", default="runs/results.csv", help="the runner's results CSV")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "affect_attacks.csv")
    args = ap.parse_args(argv)

    from robustbench_face.runner import RunConfig, run

    todo = configs(args.steps, args.patch_steps, args.extended)
    if args.only:
        todo = [todo[int(i)] for i in args.only.split(",")]
    rows = []
    for c in todo:
        eps = c.pop("eps")
        if "target_class" in c:  # a task option of affect runs
            c["task_options"] = {"target_class": c.pop("target_class")}
        t0 = time.perf_counter()
        (row,) = run(RunConfig(victim="fer_xception", dataset="orl", limit=args.limit, device=args.device,
                               batch_size=args.batch_size, seed=args.seed, out=args.results, **c))
        row = {"eps": eps, "wall_s": round(time.perf_counter() - t0, 1), **row}
        rows.append(row)
        print(" | ".join(f"{k}={_fmt(row.get(k))}" for k in SHOW), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    print()
    print("| " + " | ".join(SHOW) + " |")
    print("|" + "---|" * len(SHOW))
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(k)) for k in SHOW) + " |")
    print(f"wrote {args.out}")
    return 0


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))


if __name__ == "__main__":
    sys.exit(main())
