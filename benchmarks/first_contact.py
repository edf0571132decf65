"""The trust issue's findings, before -> after: each command on an older commit and on this tree.

Every finding that a command shows is run twice, with the old commit's code (a git worktree put
first on PYTHONPATH) and with this tree's, and the exit code and the line that matters (the
error line, or the row value the finding is about) are printed side by side as a markdown
table, and written as a CSV.

    python benchmarks/first_contact.py --old 073850f [--out benchmarks/results/first_contact.csv]

Needs the asset home (mini_mars, ORL, the OSNet weights); a few runs take a minute each.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
KEEP = "task\n"  # the results CSV the Ctrl-C and bad --out findings must leave as it was
sys.path.insert(0, str(HERE / "benchmarks"))
from compare_commits import worktree  # noqa: E402


def rbf(tree: Path, args: list[str], env: dict | None = None, interrupt_after: float | None = None):
    cmd = [sys.executable, "-m", "robustbench_face.cli", *args]
    full = {**os.environ, "PYTHONPATH": str(tree), **(env or {})}
    if interrupt_after is None:
        p = subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=tree, timeout=1800)
        return p.returncode, p.stdout, p.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full, cwd=tree)
    time.sleep(interrupt_after)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return "still running 120 s after SIGINT (killed)", out, err
    return proc.returncode, out, err


def last_error(err: str, out: str = "") -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:") or "Error" in line]
    text = lines[-1] if lines else (err.strip().splitlines() or out.strip().splitlines() or [""])[-1]
    n_tb = err.count("\n") if "Traceback" in err else 0
    short = text if len(text) <= 260 else text[:150] + " ... " + text[-105:]  # keep the tail: RBF_HOME, the fix
    return short + (f" [{n_tb}-line traceback]" if n_tb else "")


def row_value(csv_path: Path, keys: list[str]) -> str:
    if not csv_path.exists():
        return "(no CSV)"
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return "(no rows)"
    r = rows[-1]
    return ", ".join(f"{k}={r.get(k, '(absent)') or '(blank)'}" for k in keys)


def findings(tmp: Path) -> list[tuple[str, str, callable]]:
    empty = {"RBF_HOME": str(tmp / "empty"), "RBF_CACHE": str(tmp / "cache")}
    csv_file = tmp / "keep.csv"

    def out(name):
        return str(tmp / f"{name}.csv")

    return [
        ("2 no asset home", "rbf run --attack none --victim osnet (RBF_HOME empty)",
         lambda t: rbf(t, ["run", "--attack", "none", "--victim", "osnet", "--out", out("f2")], empty)),
        ("2 names first", "rbf run --attack none --victim osnett (RBF_HOME empty)",
         lambda t: rbf(t, ["run", "--attack", "none", "--victim", "osnett", "--out", out("f2b")], empty)),
        ("3 Ctrl-C", "rbf run --attack patch_iter --victim osnet -a steps=200, SIGINT after 20 s",
         lambda t: rbf(t, ["run", "--attack", "patch_iter", "--victim", "osnet", "-a", "steps=200",
                           "--out", str(csv_file)], interrupt_after=20)),
        ("4 bad --out", "rbf run --attack pgd --victim osnet --limit 2 --out <file>/x.csv",
         lambda t: rbf(t, ["run", "--attack", "pgd", "--victim", "osnet", "--limit", "2", "-a", "steps=1",
                           "--out", str(csv_file) + "/x.csv"])),
        ("5,6 --limit", "rbf run --attack none --victim osnet --limit 4",
         lambda t: rbf(t, ["run", "--attack", "none", "--victim", "osnet", "--limit", "4", "--out", out(f"f5{t.name}")])),
        ("7 intervals", "rbf run --attack pgd --victim fer_xception --dataset orl --limit 8 -a steps=5",
         lambda t: rbf(t, ["run", "--attack", "pgd", "--victim", "fer_xception", "--dataset", "orl", "--limit", "8",
                           "-a", "steps=5", "--out", out(f"f7{t.name}")])),
        ("9 clean FAR", "rbf run --attack none --victim dlib_resnet --dataset orl --split holdout --far 1e-3",
         lambda t: rbf(t, ["run", "--attack", "none", "--victim", "dlib_resnet", "--dataset", "orl", "--split",
                           "holdout", "--far", "1e-3", "--out", out(f"f9{t.name}")])),
        ("10 dataset options", "rbf run --attack none --victim osnet --dataset mini_mars:csv=protocol.csv --limit 2",
         lambda t: rbf(t, ["run", "--attack", "none", "--victim", "osnet", "--dataset", "mini_mars:csv=protocol.csv",
                           "--limit", "2", "--out", out(f"f10{t.name}")])),
        ("11 noise", "rbf run --attack pgd --victim fer_xception --dataset orl --limit 2 -a steps=1",
         lambda t: rbf(t, ["run", "--attack", "pgd", "--victim", "fer_xception", "--dataset", "orl", "--limit", "2",
                           "-a", "steps=1", "--out", out(f"f11{t.name}")])),
    ]


def describe(name: str, code: int, out: str, err: str, tmp: Path, tree: Path) -> str:
    if name.startswith("5"):
        return row_value(tmp / f"f5{tree.name}.csv", ["clean_map", "n_queries", "partial", "n_available", "n_valid_queries"])
    if name.startswith("7"):
        return row_value(tmp / f"f7{tree.name}.csv", ["success_rate", "ci_low", "ci_high"])
    if name.startswith("9") and code == 0:
        return row_value(tmp / f"f9{tree.name}.csv", ["tar_at_far", "n_impostor"])
    if name.startswith("11"):
        noise = [k for k in ("Cython", "Failed to set device") if k in out + err]
        header = next((line for line in out.splitlines() if "task" in line and "victim" in line), "")
        return f"noise: {', '.join(noise) or 'none'}; table columns: {max(header.count('┃') - 1, 0)}"
    if name.startswith("3"):
        unchanged = (tmp / "keep.csv").read_text() == KEEP
        return (last_error(err) or "(nothing printed)") + f"; CSV unchanged: {unchanged}"
    return last_error(err, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", default=None)
    ap.add_argument("--out", default="benchmarks/results/first_contact.csv")
    args = ap.parse_args(argv)
    os.environ.setdefault("RBF_HOME", str(HERE.parent / "shared" / "assets"))
    os.environ.setdefault("RBF_CACHE", str(HERE / ".rbf-cache"))
    trees = {"before": worktree(args.old), "after": worktree(args.new) if args.new else HERE}
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, command, fn in findings(tmp):
            row = {"finding": name, "command": command}
            for side, tree in trees.items():
                (tmp / "keep.csv").write_text(KEEP)
                code, out, err = fn(tree)
                row[f"{side}_exit"], row[f"{side}"] = code, describe(name, code, out, err, tmp, tree)
            rows.append(row)
            print(f"| {name} | `{command}` | {row['before_exit']}: {row['before']} | {row['after_exit']}: {row['after']} |",
                  flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
