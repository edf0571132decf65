"""cond_patch on a face embedder: ORL holdout people, eyeglass band, against patch_iter.

The generator (``attacks/checkpoints/cond_patch.dlib_resnet.v1.safetensors``, or
``--checkpoint``) was trained by ``rbf train cond_patch --victim dlib_resnet --dataset orl
--split train -a region=eyeglass`` on the dlib_150 chips of subjects s1..s30. Every row here
runs the face verification protocol (``docs/face.md``) on pairs drawn among s31..s40 only
(``--split holdout``: 450 genuine + 450 impostor pairs, 5 identity-disjoint folds), people
the generator never saw; the threshold is TAR@FAR 1e-2 on those clean pairs (450 impostor
pairs cannot resolve the usual 1e-3, and the runner refuses to pretend they can). Both patch
attacks paste into the same ``eyeglass`` band of the aligned chip (24x120 px of 150x150, 12.8%
of the pixels) and run side by side in this one process, so their ``sec_per_query`` ratio is
the cost ratio. Transfer: the adversarial chips are also scored by each ``--eval-victim``
(e.g. ``mobileface``, never used in training), at its own threshold.

Rows: dodging and impersonation, ``cond_patch`` on every eligible pair (one generator forward
pass each) and ``patch_iter`` (``--iter-steps`` Adam steps) on the first ``--iter-limit``.

    python benchmarks/face_cond_patch.py [--checkpoint PATH] [--iter-steps 200] [--iter-limit 30]
        [--eval-victim mobileface] [--out benchmarks/results/face_cond_patch.csv]
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import torch

VICTIM = "dlib_resnet"
SHOW = ["attack", "mode", "eval_victim", "n_scored", "success_rate", "wilson_low", "wilson_high",
        "tar_at_far", "threshold", "perturbation", "sec_per_query", "speedup"]


def main(argv=None) -> list[dict]:
    from robustbench_face.runner import RunConfig, run

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="generator (default: the card's for dlib_resnet)")
    ap.add_argument("--iter-steps", type=int, default=200)
    ap.add_argument("--iter-limit", type=int, default=30, help="pairs attacked by patch_iter")
    ap.add_argument("--limit", type=int, default=None, help="pairs attacked by cond_patch")
    ap.add_argument("--eval-victim", action="append", default=None)
    ap.add_argument("--far", type=float, default=0.01,
                    help="FAR of the threshold: the 450 holdout impostor pairs resolve 1e-2, not 1e-3")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/face_cond_patch.csv")
    ap.add_argument("--results", default="runs/face_cond_patch_runs.csv")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.threads:
        torch.set_num_threads(a.threads)
    cp = {"checkpoint": a.checkpoint} if a.checkpoint else {}
    rows = []
    for mode in ("dodging", "impersonation"):
        spq = {}
        for attack, args, limit in (("cond_patch", cp, a.limit),
                                    ("patch_iter", {"region": "eyeglass", "steps": a.iter_steps}, a.iter_limit)):
            got = run(RunConfig(attack=attack, victim=VICTIM, dataset="orl", split="holdout", mode=mode,
                                limit=limit, eval_victims=a.eval_victim or [], device=a.device, far=a.far,
                                attack_args=args, out=a.results, batch_size=64))
            spq[attack] = got[0]["sec_per_query"]
            rows += [{**r, "attack": attack, "settings": "checkpoint=" + (a.checkpoint or "card")
                      if attack == "cond_patch" else f"steps={a.iter_steps}"} for r in got]
        for r in rows:
            if r["mode"] == mode:
                r["speedup"] = spq["patch_iter"] / max(spq[r["attack"]], 1e-9)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    cols = SHOW + ["clean_acc", "n_eligible", "n_pairs", "pairs_rule", "settings",
                   "timestamp", "git_sha"]
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore", restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in r.items()})
    print(" | ".join(SHOW))
    for r in rows:
        print(" | ".join(f"{r.get(c):.4g}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                         for c in SHOW))
    print(f"wrote {a.out}")
    return rows


if __name__ == "__main__":
    main()
