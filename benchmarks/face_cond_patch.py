"""cond_patch on a face embedder: ORL holdout people, eyeglass band, against patch_iter.

The generator (``checkpoints/cond_patch.dlib_resnet.v1.safetensors``, or
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
SHOW = ["attack", "mode", "eval_victim", "n_scored", "success_rate", "ci_low", "ci_high",
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
    ap.add_argument("--figures", action="store_true", help="also draw docs/cond_patch_face_grid.png")
    ap.add_argument("--figures-only", action="store_true", help="draw the figure, run nothing else")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.figures_only:
        figure(a.checkpoint)
        return []
    cp = {"checkpoint": a.checkpoint} if a.checkpoint else {}
    rows = []
    for mode in ("dodging", "impersonation"):
        spq = {}
        for attack, args, limit in (("cond_patch", cp, a.limit),
                                    ("patch_iter", {"region": "eyeglass", "steps": a.iter_steps}, a.iter_limit)):
            got = run(RunConfig(attack=attack, victim=VICTIM, dataset="orl", mode=mode,
                                limit=limit, eval_victims=a.eval_victim or [], device=a.device,
                                task_options={"split": "holdout", "far": a.far},
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
    if a.figures:
        figure(a.checkpoint)
    return rows


def figure(checkpoint: str | None, n: int = 6, out: str = "docs/cond_patch_face_grid.png") -> None:
    """Source / target / dodging / impersonation chips for ``n`` holdout people (never seen)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustbench_face import create_attack, create_victim, load_dataset
    from robustbench_face.align import align_samples

    ds = load_dataset("orl")
    hold = ds.split("holdout")
    src = [hold[10 * k] for k in range(n)]          # first face of n different people
    tgt = [hold[10 * ((k + 1) % 10) + 3] for k in range(n)]  # another holdout person each
    victim = create_victim(VICTIM)
    xs, _ = align_samples(victim.alignment, src)
    xt, _ = align_samples(victim.alignment, tgt)
    attack = create_attack("cond_patch", **({"checkpoint": checkpoint} if checkpoint else {}))
    with torch.no_grad():
        dodge = attack(victim, xs)
        imp = attack(victim, xs, xt)  # target images: embedded by the victim inside the attack
        cos = lambda a, b: (victim(a) * victim(b)).sum(1)  # noqa: E731
        c_clean, c_imp = cos(xs, xt), cos(imp, xt)
        c_self = cos(dodge, xs)
    cols = [("source", xs), ("target", xt), ("dodging", dodge), ("impersonation", imp)]
    fig, axes = plt.subplots(len(cols), n, figsize=(n * 1.3, len(cols) * 1.5))
    for r, (name, imgs) in enumerate(cols):
        for c in range(n):
            axes[r, c].imshow(imgs[c].permute(1, 2, 0).numpy()); axes[r, c].axis("off")
            note = {"dodging": f"cos to self {c_self[c]:.2f}",
                    "impersonation": f"cos to target {c_clean[c]:.2f}->{c_imp[c]:.2f}"}.get(name)
            if note:
                axes[r, c].set_title(note, fontsize=6)
        axes[r, 0].text(0, -0.15, name, fontsize=8, transform=axes[r, 0].transAxes)
    fig.suptitle("cond_patch on dlib_resnet, ORL holdout (unseen) people, eyeglass band", fontsize=8)
    fig.tight_layout(); fig.savefig(out, dpi=100); plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
