"""cond_patch with class targets on fer_xception: ORL holdout people, against patch_iter.

The generator (``checkpoints/cond_patch.fer_xception.fer2013.safetensors``, or
``--checkpoint``) was trained by ``rbf train cond_patch --victim fer_xception --dataset orl
--split train`` on subjects s1..s30; every row here evaluates the 100 faces of s31..s40
(``--split holdout``), which it never saw. ORL has no expression labels, so the victim's clean
predictions are the reference (see ``docs/affect.md``). Both patch attacks use the same eye
band ``0.34,0.10,0.16,0.80`` (18x74 px of 112x92, 12.9% of the pixels) and run side by side
in this one process, so their ``sec_per_query`` ratio is the cost ratio.

Rows: untargeted, targeted to ``happy``, targeted to ``neutral``; for each, ``cond_patch`` (one
generator forward pass per face) and ``patch_iter`` (``--iter-steps`` Adam steps per face).

    python benchmarks/affect_cond_patch.py [--checkpoint PATH] [--iter-steps 200]
        [--out benchmarks/results/affect_cond_patch.csv]
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import torch

EYE_BAND = "0.34,0.10,0.16,0.80"
SHOW = ["attack", "mode", "target_class", "n_queries", "success_rate", "ci_low", "ci_high",
        "flip_rate", "adv_target_rate", "perturbation", "sec_per_query", "speedup"]


def main(argv=None) -> list[dict]:
    from robustbench_face.runner import RunConfig, run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="class-target generator (default: the card's)")
    ap.add_argument("--iter-steps", type=int, default=200)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/affect_cond_patch.csv")
    ap.add_argument("--results", default="runs/affect_cond_patch_runs.csv")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    for mode, target in (("untargeted", None), ("targeted", "happy"), ("targeted", "neutral")):
        pair = {}
        for attack, args in (("cond_patch", {"checkpoint": a.checkpoint} if a.checkpoint else {}),
                             ("patch_iter", {"region": EYE_BAND, "steps": a.iter_steps})):
            opts = {"split": "holdout", **({"target_class": target} if target else {})}
            r = run(RunConfig(attack=attack, victim="fer_xception", dataset="orl", mode=mode,
                              task_options=opts, limit=a.limit, device=a.device,
                              attack_args=args, out=a.results, batch_size=100))[0]
            pair[attack] = r
            rows.append({**r, "target_class": target or "", "settings":
                         "checkpoint=" + (a.checkpoint or "card") if attack == "cond_patch"
                         else f"steps={a.iter_steps}"})
        ratio = pair["patch_iter"]["sec_per_query"] / max(pair["cond_patch"]["sec_per_query"], 1e-9)
        rows[-2]["speedup"] = ratio
        rows[-1]["speedup"] = 1.0
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    cols = SHOW + ["clean_target_rate", "reference", "split", "settings", "timestamp", "git_sha"]
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore", restval="")
        w.writeheader()
        for r in rows:
            w.writerow({**{k: f"{v:.4g}" if isinstance(v, float) else v for k, v in r.items()},
                        "split": "holdout"})
    print(" | ".join(SHOW))
    for r in rows:
        print(" | ".join(f"{r.get(c):.4g}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                         for c in SHOW))
    print(f"wrote {a.out}")
    return rows


if __name__ == "__main__":
    main()
