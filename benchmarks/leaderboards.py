"""Regenerate the shipped leaderboards in ``leaderboards/`` from the current code, on a clean tree.

Each leaderboard is a list of runs (the exact ``rbf run`` settings below), appended to one results
CSV under ``runs/`` and ranked by ``rbf leaderboard`` (which refuses rows of a dirty tree):

* ``reid``     -> ``leaderboards/reid_mini_mars.csv``: PGD L-inf 8/255, patch_iter (200 steps),
                  cond_patch (evasion and impersonation) and patch_universal on all 128 mini_mars
                  queries, white-box ``osnet_x0_25.market1501`` and transfer ``osnet_x0_25.msmt17``;
* ``defenses`` -> ``leaderboards/defenses_mini_mars.csv``: PGD on every deterministic built-in
                  defense, non-adaptive and adaptive (BPDA), 128 queries;
* ``face``     -> ``leaderboards/face_transfer_orl.csv``: ``benchmarks/face_transfer.py``'s ORL
                  dodging transfer matrix.

    python benchmarks/leaderboards.py [--only reid,defenses,face] [--threads 2]

Rows a CPU here cannot re-make in reasonable time are not shipped (randomised defenses under
EOT, patch_iter against each defense; see ``leaderboards/README.md``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REID = dict(victim="osnet_x0_25.market1501", dataset="mini_mars", eval_victims=["osnet_x0_25.msmt17"], seed=0)
DETERMINISTIC = ["none", "jpeg", "bit_depth", "median", "lgs", "patch_mask"]


def reid_runs() -> list[dict]:
    return [dict(attack="pgd", **REID), dict(attack="patch_iter", attack_args={"steps": 200}, **REID),
            dict(attack="cond_patch", **REID), dict(attack="cond_patch", mode="impersonation", **REID),
            dict(attack="patch_universal", **REID)]


def defense_runs() -> list[dict]:
    base = dict(attack="pgd", victim="osnet_x0_25.market1501", dataset="mini_mars", seed=0)
    runs = []
    for d in DETERMINISTIC:
        if d == "none":
            runs.append(dict(base))
            continue
        runs += [dict(base, defenses=[d], adaptive="no"), dict(base, defenses=[d], adaptive="auto")]
    return runs


def run_all(runs: list[dict], results: Path) -> None:
    from robustbench_face.runner import RunConfig, run

    for kw in runs:
        rows = run(RunConfig(out=str(results), **kw))
        print(f"  {kw.get('attack')} {kw.get('mode', '')} {'+'.join(kw.get('defenses', [])) or 'none'} "
              f"{kw.get('adaptive', '')}: {rows[0].get('adv_map', rows[0].get('success_rate')):.4f}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="reid,defenses,face")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runs", default="runs", help="where the results CSVs go")
    args = ap.parse_args(argv)
    os.environ.setdefault("RBF_HOME", str(Path(__file__).resolve().parents[2] / "shared" / "assets"))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from robustbench_face.results import git_sha, leaderboard

    if git_sha().endswith("-dirty") or git_sha() == "unknown":
        raise SystemExit(f"the tree is {git_sha()}: commit first, leaderboards are made from a clean tree")
    runs = Path(args.runs)
    for name in args.only.split(","):
        print(f"{name}:", flush=True)
        if name == "face":
            import face_transfer

            face_transfer.main(["--dataset", "orl", "--mode", "dodging", "--eps", "8/255", "--limit", "10",
                                "--results", str(runs / "lb_face.csv")])
            continue
        results = runs / f"lb_{name}.csv"
        results.unlink(missing_ok=True)
        run_all(reid_runs() if name == "reid" else defense_runs(), results)
        out = Path("leaderboards") / ("reid_mini_mars.csv" if name == "reid" else "defenses_mini_mars.csv")
        rows = leaderboard(results, out=out)
        print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
