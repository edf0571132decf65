"""Must-show table of issue 6: every built-in defense under non-adaptive and adaptive attacks.

For each defense and attack (``pgd`` L-inf 8/255, ``patch_iter`` torso patch) on ``mini_mars``
with ``osnet_x0_25.market1501``, three numbers: clean mAP of the defended victim, adversarial
mAP under the *non-adaptive* attack (plain autograd through the defense: zero gradient through
non-differentiable steps, one draw of the randomness) and under the *adaptive* attack (BPDA +
EOT, ``robustbench_face.adaptive``). A defense whose adaptive mAP falls far below its
non-adaptive one was only masking gradients (``masking`` column). Sanity columns come from the
runner (loss gain vs random, transfer from the undefended victim, flags); randomised defenses
get the std over ``--repeats`` seeds of the adaptive PGD run, and an eps sweep checks eps = 0
and monotonicity. Every run goes through ``runner.run`` and is appended to ``--runs-out``.

    python benchmarks/defenses.py --limit 32 --patch-steps 100 --runs-out /tmp/runs.csv

Faces (``--victim dlib_resnet --dataset orl``): the face runner's dodging protocol, so the
columns change name: ``clean_tar`` is the defended victim's TAR at the FAR calibrated on its
own clean pairs, ``nonadaptive_tar`` / ``adaptive_tar`` the TAR of the attacked genuine pairs
at that threshold (lower = stronger attack, like mAP), plus the dodging success rates
(``*_success``: attacked pairs the victim got right clean that now fail). ``--region`` sets
patch_iter's region (``eyeglass`` for aligned faces).
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

from robustbench_face.runner import RunConfig, run
from robustbench_face.sweeps import eps_sweep, repeat

DEFENSES = ["none", "jpeg", "bit_depth", "median", "gaussian_noise", "lgs", "patch_mask"]
COLUMNS = ["attack", "defense", "differentiable", "randomized", "clean_map", "nonadaptive_map",
           "adaptive_map", "transfer_map", "masking", "adaptive_std", "loss_gain_nonadaptive",
           "random_gain_nonadaptive", "loss_gain_adaptive", "flags", "settings", "seconds"]
# per task: (clean column, attacked column, their names in this table, sign: +1 = lower is stronger)
METRICS = {"reid": ("clean_map", "adv_map", "map"), "face": ("tar_at_far", "adv_tar", "tar")}


def columns(task: str) -> list[str]:
    if task == "reid":
        return COLUMNS
    cols = [c.replace("_map", "_tar") for c in COLUMNS]
    return cols[:7] + ["nonadaptive_success", "adaptive_success"] + cols[7:]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--victim", default="osnet_x0_25.market1501")
    p.add_argument("--dataset", default="mini_mars")
    p.add_argument("--attacks", nargs="+", default=["pgd", "patch_iter"])
    p.add_argument("--defenses", nargs="+", default=DEFENSES)
    p.add_argument("--limit", type=int, default=None, help="first N queries (default: all)")
    p.add_argument("--pgd-steps", type=int, default=20)
    p.add_argument("--patch-steps", type=int, default=200)
    p.add_argument("--eot-draws", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="seeds for randomised defenses (pgd)")
    p.add_argument("--sweep", type=float, nargs="*", default=[0, 2 / 255, 4 / 255, 8 / 255])
    p.add_argument("--sweep-defenses", nargs="+", default=["none", "jpeg"])
    p.add_argument("--only-sweep", action="store_true", help="only the pgd eps sweep (re-ID)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", default="benchmarks/results/defenses.csv")
    p.add_argument("--runs-out", default="runs/defenses_runs.csv")
    p.add_argument("--region", default=None, help="patch_iter region (default: the attack's)")
    p.add_argument("--masking-gap", type=float, default=0.10,
                   help="non-adaptive minus adaptive mAP above which a defense only masked gradients")
    return p.parse_args()


def config(a, attack: str, defense: str, adaptive: str, **kw) -> RunConfig:
    steps = a.pgd_steps if attack == "pgd" else a.patch_steps
    args = {"steps": steps}
    if attack == "patch_iter" and a.region:
        args["region"] = a.region
    return RunConfig(attack=attack, victim=a.victim, dataset=a.dataset, limit=a.limit,
                     defenses=[] if defense == "none" else [defense], device=a.device,
                     out=a.runs_out, attack_args=args, batch_size=a.batch_size,
                     adaptive=adaptive, eot_draws=a.eot_draws, **kw)


def one_row(a, attack: str, defense: str) -> dict:
    from robustbench_face import create_defense
    from robustbench_face.runner import parse_spec

    t0 = time.perf_counter()
    naive = run(config(a, attack, defense, "no", sanity=defense != "none"))[0]
    d = None
    if defense != "none":  # "gaussian_noise:draws=4": the same spec the runner parses
        dname, kwargs = parse_spec(defense)
        d = create_defense(dname, **kwargs)
    needs = d is not None and (not d.differentiable or d.randomized)
    adapt = run(config(a, attack, defense, "auto"))[0] if needs else naive
    task = naive.get("task", "reid")
    clean_key, adv_key, name = METRICS[task]
    row = {"attack": attack, "defense": defense, "task": task,
           "differentiable": "" if d is None else d.differentiable,
           "randomized": "" if d is None else d.randomized,
           f"clean_{'map' if task == 'reid' else 'tar'}": float(naive[clean_key]),
           f"nonadaptive_{name}": float(naive[adv_key]), f"adaptive_{name}": float(adapt[adv_key]),
           f"transfer_{name}": naive.get(f"transfer_{adv_key}", ""),
           "nonadaptive_success": naive.get("success_rate", ""), "adaptive_success": adapt.get("success_rate", ""),
           "loss_gain_nonadaptive": naive.get("loss_gain", ""),
           "random_gain_nonadaptive": naive.get("random_loss_gain", ""),
           "loss_gain_adaptive": adapt.get("loss_gain", ""),
           "flags": naive.get("flags", "")}
    gap = row[f"nonadaptive_{name}"] - row[f"adaptive_{name}"]
    row["masking"] = "yes" if gap > a.masking_gap else "no"
    if d is not None and d.randomized and attack == "pgd" and a.repeats > 1:
        row["adaptive_std"] = repeat(config(a, attack, defense, "auto"), a.repeats)["repeat_std"]
    row["settings"] = (f"limit={a.limit or 'all'};steps={a.pgd_steps if attack == 'pgd' else a.patch_steps};"
                       f"eot_draws={a.eot_draws};device={a.device}")
    row["seconds"] = time.perf_counter() - t0
    return row


def write(path: str, rows: list[dict], columns: list[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()})


def show(rows: list[dict]) -> None:
    task = rows[0].get("task", "reid") if rows else "reid"
    cols = [c for c in columns(task) if c in
            ("attack", "defense", "clean_map", "nonadaptive_map", "adaptive_map", "transfer_map",
             "clean_tar", "nonadaptive_tar", "adaptive_tar", "transfer_tar", "masking",
             "adaptive_std", "flags")]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r.get(c, ''):.3f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                         for c in cols), flush=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    a = parse()
    rows = []
    for attack in [] if a.only_sweep else a.attacks:
        for defense in a.defenses:
            rows.append(one_row(a, attack, defense))
            write(a.out, rows, columns(rows[0]["task"]))  # after every row: a killed run keeps what it measured
            show(rows[-1:])
    if a.sweep and "pgd" in a.attacks and (a.only_sweep or rows and rows[0]["task"] == "reid"):
        for defense in a.sweep_defenses:
            sweep = eps_sweep(config(a, "pgd", defense, "auto"), a.sweep)
            for s in sweep:
                print(f"sweep pgd {defense} eps={s['eps']:.4f} clean={float(s['clean_map']):.3f} "
                      f"adv={float(s['adv_map']):.3f} success={float(s['success_rate']):.3f} "
                      f"flags={s['flags']}", flush=True)
            rows.extend({"attack": f"pgd_eps={s['eps']:.4f}", "defense": defense,
                         "clean_map": float(s["clean_map"]), "adaptive_map": float(s["adv_map"]),
                         "flags": s["flags"], "settings": f"eps sweep;limit={a.limit or 'all'};device={a.device}"} for s in sweep)
            write(a.out, rows, COLUMNS)
    print()
    if rows:
        show(rows)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
