"""Check the PyTorch port of dlib's face descriptor against dlib itself on all 400 ORL faces.

Every face is aligned with the ``dlib_150`` aligner (dlib HOG detector + 5-point landmarks +
``get_face_chip(size=150, padding=0.25)``; whole-image box where no face is found), then
described twice on the same chip: by our port (``dlib_resnet``, raw descriptor) and by
``dlib.face_recognition_model_v1.compute_face_descriptor``. Prints the min/mean cosine between
the two, the number of fallbacks, per-image CPU time of both, and ORL leave-one-out rank-1 and
pair AUC of our L2-normalised embeddings; writes one CSV row per face.

Needs dlib (``pip install dlib-bin``) and the ORL faces in the asset home (``RBF_HOME``).
Run: ``python benchmarks/dlib_port.py [--out benchmarks/results/dlib_port.csv]``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

import robustbench_face as rbf
from robustbench_face.align import get_aligner
from robustbench_face.cards import resolve_weights
from robustbench_face.datasets._base import read_image


def pair_auc(sim: np.ndarray, same: np.ndarray) -> float:
    """ROC AUC of similarity scores for same-identity pairs (Mann-Whitney, ties count half).

    >>> pair_auc(np.array([0.9, 0.8, 0.1]), np.array([True, False, False]))
    1.0
    """
    pos, neg = sim[same], sim[~same]
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):  # average ranks of ties
        m = allv == v
        ranks[m] = ranks[m].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/dlib_port.csv")
    ap.add_argument("--data-root", default=None, help="ORL folder (default: asset home)")
    ap.add_argument("--batch", type=int, default=50)
    args = ap.parse_args(argv)

    import dlib

    ds = rbf.load_dataset("orl", data_root=args.data_root)
    samples = ds.samples
    t0 = time.perf_counter()
    chips, detected = get_aligner("dlib_150")([read_image(s.path) for s in samples])
    t_align = (time.perf_counter() - t0) / len(samples)

    victim = rbf.create_victim("dlib_resnet")
    t0 = time.perf_counter()
    with torch.no_grad():
        ours = torch.cat([victim.descriptor(chips[i:i + args.batch])
                          for i in range(0, len(chips), args.batch)]).double().numpy()
    t_ours = (time.perf_counter() - t0) / len(samples)

    rec = dlib.face_recognition_model_v1(str(resolve_weights("dlib_resnet", victim.name)))
    chips_u8 = (chips * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    t0 = time.perf_counter()
    ref = np.array([np.array(rec.compute_face_descriptor(c)) for c in chips_u8])
    t_dlib = (time.perf_counter() - t0) / len(samples)

    n_ours, n_ref = np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1)
    cos = (ours * ref).sum(1) / (n_ours * n_ref)
    maxdiff = np.abs(ours - ref).max(1)

    emb = ours / n_ours[:, None]
    pids = np.array([s.pid for s in samples])
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    rank1 = float((pids[sim.argmax(1)] == pids).mean())
    iu = np.triu_indices(len(samples), 1)
    auc = pair_auc(sim[iu], (pids[:, None] == pids[None, :])[iu])
    dist = np.linalg.norm(ref[:, None] - ref[None], axis=2)[iu]
    acc06 = float(((dist < 0.6) == (pids[:, None] == pids[None, :])[iu]).mean())

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "pid", "detected", "cosine", "max_abs_diff", "norm_dlib", "norm_port"])
        for i, s in enumerate(samples):
            w.writerow([Path(s.path).relative_to(ds.root).as_posix(), s.pid, int(detected[i]),
                        f"{cos[i]:.12f}", f"{maxdiff[i]:.3e}", f"{n_ref[i]:.6f}", f"{n_ours[i]:.6f}"])

    print(f"faces: {len(samples)}  detected: {int(detected.sum())}  fallbacks: {int((~detected).sum())}")
    print(f"port vs dlib cosine: min {cos.min():.12f}  mean {cos.mean():.12f}  "
          f"(max 1-cos {(1 - cos).max():.1e}, max |diff| {maxdiff.max():.2e})")
    print(f"raw dlib descriptor norm: mean {n_ref.mean():.4f}  std {n_ref.std():.4f}  "
          f"range [{n_ref.min():.4f}, {n_ref.max():.4f}]")
    print(f"per image (CPU, {torch.get_num_threads()} threads): align {1e3 * t_align:.1f} ms  "
          f"port {1e3 * t_ours:.1f} ms (batch {args.batch})  dlib {1e3 * t_dlib:.1f} ms")
    print(f"ORL with the port: rank-1 {rank1:.4f}  pair AUC {auc:.5f}  "
          f"dlib Euclidean<0.6 pair accuracy {acc06:.4f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
