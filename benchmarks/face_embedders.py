"""Clean quality of the face embedders on ORL: leave-one-out rank-1 identification
and all-pairs verification AUC.

For each victim, all 400 ORL faces are aligned as the victim declares (``victim.alignment``;
also without alignment, for comparison), embedded, and each face is matched by cosine
similarity to its nearest neighbour among the other 399. The table also says how many faces
MTCNN missed (those use the aligner's documented fallback).

    python benchmarks/face_embedders.py [--out benchmarks/results/face_embedders.csv]

Needs the asset home (RBF_HOME) with ORL and the two ONNX files; MTCNN weights are fetched
into RBF_CACHE on first use.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

import robustbench_face as rbf
from robustbench_face.align import align_samples

VICTIMS = ("faceres", "mobileface")


def rank1_loo(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out nearest-neighbour accuracy under cosine similarity.

    >>> rank1_loo(torch.eye(3)[[0, 0, 1, 1]], torch.tensor([0, 0, 1, 1]))
    1.0
    """
    emb = torch.nn.functional.normalize(emb, dim=1)
    sim = emb @ emb.T
    sim.fill_diagonal_(-float("inf"))
    return float((labels[sim.argmax(1)] == labels).float().mean())


def pair_auc(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC of cosine similarity over all pairs: P(genuine pair > impostor pair), ties half.

    >>> pair_auc(torch.eye(2)[[0, 0, 1, 1]], torch.tensor([0, 0, 1, 1]))
    1.0
    """
    emb = torch.nn.functional.normalize(emb.double(), dim=1)
    iu = torch.triu_indices(len(emb), len(emb), offset=1)
    sim = (emb @ emb.T)[iu[0], iu[1]]
    same = labels[iu[0]] == labels[iu[1]]
    ranks = torch.empty_like(sim)
    order = sim.argsort()
    ranks[order] = torch.arange(1, len(sim) + 1, dtype=sim.dtype)
    # average the ranks of tied scores (Mann-Whitney U)
    uniq, inv = torch.unique(sim, return_inverse=True)
    ranks = torch.zeros(len(uniq), dtype=sim.dtype).index_add_(0, inv, ranks)[inv] / torch.bincount(inv)[inv]
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def embed(victim, images: torch.Tensor, batch: int = 50) -> torch.Tensor:
    return torch.cat([victim(images[i:i + batch]) for i in range(0, len(images), batch)])


def _scores(emb: torch.Tensor, labels: torch.Tensor) -> dict:
    return {"rank1": round(rank1_loo(emb, labels), 4), "pair_auc": round(pair_auc(emb, labels), 5)}


def run(out: Path) -> list[dict]:
    ds = rbf.load_dataset("orl")
    samples = ds.samples
    labels = torch.tensor([s.pid for s in samples])
    raw = ds.load(samples)  # native 92x112, the victims resize themselves
    rows = []
    for name in VICTIMS:
        victim = rbf.create_victim(name)
        for alignment in (victim.alignment, None):
            t0 = time.time()
            if alignment is None:
                images, missed = raw, ""
            else:
                images, detected = align_samples(alignment, samples, lambda s: ds.load([s])[0])
                missed = int((~detected).sum())
            rows.append({
                "victim": victim.name, "alignment": alignment or "none", "faces": len(samples),
                "identities": int(labels.unique().numel()), "mtcnn_missed": missed,
                **_scores(embed(victim, images), labels),
                "seconds": round(time.time() - t0, 1),
            })
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/face_embedders.csv"))
    rows = run(ap.parse_args().out)
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


if __name__ == "__main__":
    main()
