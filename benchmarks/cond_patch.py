"""Reproduce the cond_patch table: evasion / impersonation, white-box and transfer, cost per query.

Everything runs in this one process on the same machine, side by side, through the public
runner (``robustbench_face.runner.run``), so ``sec_per_query`` is comparable across methods:

* ``none``                      clean reference;
* ``cond_patch``                the shipped generator (or ``--checkpoint``), all queries;
* ``patch_universal``           the shipped universal patch (evasion only), all queries;
* ``patch_iter``                per-query Adam patch, ``--iter-steps`` steps, first
                                ``--iter-limit`` queries (it is ~1000x slower);
* ``cond_patch@iter-limit``     cond_patch again on exactly those queries, for a like-for-like row.

Attacked victim ``osnet_x0_25.market1501``; transfer victim ``osnet_x0_25.msmt17`` (never used
in training or tuning); dataset mini-MARS (test identities, unseen in training); patch area is
the 12.5% torso box for every method. Impersonation targets follow the runner's seeded rule.
``map_floor`` (evasion rows) is the lowest mAP any ranking of this gallery allows: every true
match ranked last (``metrics.reid.map_floor``); on mini-MARS's 494-image gallery it is 0.027.

    python benchmarks/cond_patch.py [--iter-limit 32] [--out benchmarks/results/cond_patch.csv]

Prints the table and writes it as a CSV (raw runner rows go to ``--raw``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from pathlib import Path

import torch

WB, BB = "osnet_x0_25.market1501", "osnet_x0_25.msmt17"
COLS = ["method", "mode", "n_queries", "patch_area", "wb_clean_map", "wb_adv_map", "bb_clean_map",
        "bb_adv_map", "map_floor", "wb_success", "bb_success", "wb_target_map", "bb_target_map", "sec_per_query",
        "attack_sec_per_query", "speedup_vs_patch_iter"]


def run_one(attack, mode, limit, attack_args, args):
    from robustbench_face.runner import RunConfig, run

    cfg = RunConfig(attack=attack, victim=WB, dataset="mini_mars", eval_victims=[BB], mode=mode,
                    seed=args.seed, device=args.device, limit=limit, out=args.raw,
                    attack_args=attack_args, batch_size=args.batch_size)
    wb, bb = run(cfg)
    return {"method": attack, "mode": mode, "n_queries": wb["n_queries"],
            "patch_area": round(wb["perturbation"], 4), "wb_clean_map": wb["clean_map"],
            "wb_adv_map": wb["adv_map"], "bb_clean_map": bb["clean_map"], "bb_adv_map": bb["adv_map"],
            "map_floor": wb.get("map_floor", ""),
            "wb_success": wb["success_rate"], "bb_success": bb["success_rate"],
            "wb_target_map": wb.get("target_map", ""), "bb_target_map": bb.get("target_map", ""),
            "sec_per_query": wb["sec_per_query"]}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cond_patch.csv")
    ap.add_argument("--raw", default="runs/cond_patch_raw.csv", help="runner rows (results CSV)")
    ap.add_argument("--checkpoint", default=None, help="cond_patch checkpoint (default: the card's)")
    ap.add_argument("--universal-checkpoint", default=None)
    ap.add_argument("--iter-steps", type=int, default=200)
    ap.add_argument("--iter-limit", type=int, default=32, help="queries attacked by patch_iter")
    ap.add_argument("--skip-iter", action="store_true", help="leave out patch_iter (minutes on CPU)")
    ap.add_argument("--reuse-iter", default=None,
                    help="with --skip-iter: copy the patch_iter and cond_patch@Nq rows of an earlier CSV "
                         "of this script (same machine) instead of re-running them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy CPU)")
    ap.add_argument("--figures", action="store_true",
                    help="also draw docs/cond_patch_training.png and docs/cond_patch_grid.png")
    args = ap.parse_args(argv)
    os.environ.setdefault("RBF_HOME", str(Path(__file__).resolve().parents[2] / "shared" / "assets"))
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    cp = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    pu = {"checkpoint": args.universal_checkpoint} if args.universal_checkpoint else {}
    it = {"steps": args.iter_steps}
    rows = []
    if not args.skip_iter:  # the slow part first
        rows += [run_one("patch_iter", m, args.iter_limit, it, args) for m in ("evasion", "impersonation")]
    rows.append(run_one("none", "evasion", None, {}, args))
    for mode in ("evasion", "impersonation"):
        rows.append(run_one("cond_patch", mode, None, cp, args))
    rows.append(run_one("patch_universal", "evasion", None, pu, args))
    if not args.skip_iter:  # cond_patch on exactly patch_iter's queries
        for mode in ("evasion", "impersonation"):
            same = run_one("cond_patch", mode, args.iter_limit, cp, args)
            same["method"] = f"cond_patch@{args.iter_limit}q"
            rows.append(same)
    if args.skip_iter and args.reuse_iter:
        with open(args.reuse_iter, newline="") as f:
            old = [r for r in csv.DictReader(f) if r["method"] == "patch_iter"]
        rows = [{k: _num(v) for k, v in r.items()} for r in old] + rows
        n_iter = int(float(old[0]["n_queries"])) if old else None
        for mode in ("evasion", "impersonation") if n_iter else ():  # like-for-like rows
            same = run_one("cond_patch", mode, n_iter, cp, args)
            same["method"] = f"cond_patch@{n_iter}q"
            rows.append(same)
    pure = attack_seconds(args, cp, pu)
    iter_spq = next((r["sec_per_query"] for r in rows if r["method"] == "patch_iter"), None)
    for r in rows:
        name = r["method"].split("@")[0]
        if name in pure:
            r["attack_sec_per_query"] = pure[name]
        elif name == "patch_iter":
            r["attack_sec_per_query"] = r["sec_per_query"]
        if iter_spq and r.get("attack_sec_per_query"):
            r["speedup_vs_patch_iter"] = iter_spq / r["attack_sec_per_query"]
    write(rows, args.out)
    show(rows)
    if args.figures:
        figures(args)
    return rows


def attack_seconds(args, cp, pu, repeats: int = 3) -> dict[str, float]:
    """Seconds per query of the attack call alone, same queries, same process, best of 3.

    The runner's ``sec_per_query`` also times its sanity checks (a few victim forwards per
    batch, see ``sanity.LossTracker``); that is noise for patch_iter (200 forward+backward
    passes per query) but dominates a one-pass attack, so the speed-up uses this clean timing
    for the cheap attacks. The generator's lazy checkpoint load is done before timing.
    """
    import time

    from robustbench_face import create_attack, create_victim, load_dataset

    ds = load_dataset("mini_mars")
    xq = ds.load(ds.split("query"))
    victim = create_victim(WB, device=args.device)
    out = {}
    for name, kw in (("cond_patch", cp), ("patch_universal", pu)):
        attack = create_attack(name, **kw)
        attack(victim, xq[:1].to(args.device))  # load the checkpoint once
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(0, len(xq), args.batch_size):
                attack(victim, xq[i:i + args.batch_size].to(args.device))
            best = min(best, time.perf_counter() - t0)
        out[name] = best / len(xq)
    return out


def figures(args, n: int = 6) -> None:
    """Training curve from the checkpoint card; source / target / patched grid on test queries."""
    import json

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from robustbench_face import create_attack, create_victim, load_dataset
    from robustbench_face.attacks.cond_patch import default_checkpoint
    from robustbench_face.tasks.reid import draw_targets

    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    card = json.loads(ckpt.with_suffix(".json").read_text())
    hist, bs = card["history"], card.get("hparams", {}).get("batch_size", "?")
    first = card.get("init_from_card", {}).get("history", [])  # a fine-tune: its start, first
    if first:
        hist = first + [{**h, "step": h["step"] + first[-1]["step"]} for h in hist]
    step = [h["step"] for h in hist]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for key, label in [("loss", "training loss"), ("cos_self_evasion", "cos(adv, clean), evasion rows"),
                       ("cos_target", "cos(adv, target), impersonation rows"),
                       ("top1_target", "target top-1 among train ids, impersonation rows"),
                       ("sat_frac", "fraction of logits beyond +-z_max")]:
        if any(key in h for h in hist):
            ax.plot(step, [h.get(key, np.nan) for h in hist], label=label)
    if first:
        ax.axvline(first[-1]["step"], color="grey", ls="--", lw=0.8)
        ax.text(first[-1]["step"], ax.get_ylim()[1], " attractor bank (2 bases)", fontsize=6, va="top")
    ax.set_xlabel(f"step (batch {bs}, train identities)"); ax.legend(fontsize=7); ax.grid(alpha=0.3)
    ax.set_title("cond_patch on osnet_x0_25.market1501 (EMA 0.9)", fontsize=9)
    fig.tight_layout(); fig.savefig("docs/cond_patch_training.png", dpi=110); plt.close(fig)

    ds = load_dataset("mini_mars")
    q, g = ds.split("query")[::21][:n], ds.split("gallery")
    g_pids = np.array([s.pid for s in g])
    tp = draw_targets(np.array([s.pid for s in q]), g_pids, args.seed)
    xq = ds.load(q)
    xt = ds.load([g[int(np.nonzero(g_pids == p)[0][0])] for p in tp])
    victim = create_victim(WB)
    attack = create_attack("cond_patch", **({"checkpoint": args.checkpoint} if args.checkpoint else {}))
    with torch.no_grad():
        ev = attack(victim, xq)
        im = attack(victim, xq, xt)  # target images: embedded by the victim inside the attack
    cols = [("source", xq), ("target", xt), ("evasion", ev), ("impersonation", im)]
    fig, axes = plt.subplots(len(cols), n, figsize=(n * 1.1, len(cols) * 2.1))
    for r, (name, imgs) in enumerate(cols):
        for c in range(n):
            axes[r, c].imshow(imgs[c].permute(1, 2, 0).numpy()); axes[r, c].axis("off")
        axes[r, 0].set_title(name, fontsize=8, loc="left")
    fig.tight_layout(); fig.savefig("docs/cond_patch_grid.png", dpi=90); plt.close(fig)


def _num(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def write(rows, out) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items() if k in COLS})


def show(rows) -> None:
    print(" | ".join(COLS))
    for r in rows:
        print(" | ".join(f"{r.get(c, ''):.4g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in COLS))


if __name__ == "__main__":
    main()
