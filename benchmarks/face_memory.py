"""Peak memory of a clean face run against the number of faces: it must stay flat.

A folder of real faces (``celeba_ids``' 3,928 loose crops, 250x250 like LFW) is laid out as an
identity-folder dataset of N images, repeating the set under new identity names when N is
larger (symbolic links, no copies). For each N a fresh ``rbf run --attack none`` runs in its own
process, and its peak resident set size is read from the kernel (``wait4`` rusage), so model
weights, alignment, embedding and scoring are all counted. Images stream a batch at a time and
aligned chips live in a uint8 file (``align.align_source``), so the peak should not grow with N
(target: within 1.5x from 1k to 13k faces).

    python benchmarks/face_memory.py [--sizes 1000,4000,13000] [--victim dlib_resnet]
        [--out benchmarks/results/face_memory.csv]

Prints a table and writes the CSV. ``make_pairs`` caps a run at 3,000 genuine + 3,000 impostor
pairs, so at 13k faces about 11k images are aligned and embedded.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_folder(src: Path, dest: Path, n: int) -> int:
    """``dest/<identity>[_rK]/<image>`` links to ``n`` images of ``src``; returns how many."""
    people = sorted(p for p in src.iterdir() if p.is_dir())
    count, rep = 0, 0
    while count < n:
        for person in people:
            files = sorted(person.iterdir())
            if count >= n:
                break
            folder = dest / (person.name if rep == 0 else f"{person.name}_r{rep}")
            folder.mkdir(parents=True, exist_ok=True)
            for f in files[: n - count]:
                (folder / f.name).symlink_to(f)
                count += 1
        rep += 1
    return count


def peak_rss(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(peak RSS in MiB, wall seconds, exit code) of ``cmd`` run as a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(err[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, code


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,4000,13000")
    ap.add_argument("--victim", default="dlib_resnet")
    ap.add_argument("--source", default=None, help="identity folders of real faces (default: $RBF_HOME/datasets/celeba_ids)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default="benchmarks/results/face_memory.csv")
    args = ap.parse_args(argv)
    home = Path(os.environ.get("RBF_HOME", Path(__file__).resolve().parents[2] / "shared" / "assets"))
    src = Path(args.source) if args.source else home / "datasets" / "celeba_ids"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / f"faces_{n}"
            got = build_folder(src, folder, n)
            cmd = [sys.executable, "-m", "robustbench_face.cli", "run", "--attack", "none", "--victim",
                   args.victim, "--dataset", "identity_folders", "--data-root", str(folder), "--out",
                   str(Path(tmp) / "r.csv"), "--batch-size", str(args.batch_size)]
            rss, wall, code = peak_rss(cmd, {**os.environ, "RBF_HOME": str(home)})
            rows.append({"images": got, "victim": args.victim, "peak_rss_mib": round(rss, 1),
                         "wall_s": round(wall, 1), "exit_code": code})
            print(f"{got:>6} faces  peak RSS {rss:8.1f} MiB  {wall:7.1f} s  exit {code}", flush=True)
    base = rows[0]["peak_rss_mib"]
    for r in rows:
        r["ratio_to_smallest"] = round(r["peak_rss_mib"] / base, 3)
    print(f"largest / smallest peak: {max(r['ratio_to_smallest'] for r in rows):.2f}x (target <= 1.5x)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
