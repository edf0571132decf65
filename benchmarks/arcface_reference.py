"""insightface equality of the ``scrfd_112`` aligner and the ``arcface`` victim, and clean face
verification of the four face victims on CelebA holdout people.

* **(a) SCRFD.** Our decoding + NMS (``robustbench_face/align/scrfd.py``) against insightface 2.1's
  ``SCRFD.detect`` on every ORL image and a seeded 500-face CelebA sample (``celeba_ids``, both
  splits): an image *matches* when both find the same number of faces and every box and
  landmark (paired in score order) is within 0.5 px; the max box / landmark errors are over all
  detections of all images.
* **(b) ArcFace.** ``arcface`` (``arcface.mobilefacenet_ms1m``) against insightface's
  ``ArcFaceONNX.get_feat`` on the same 8-bit ``scrfd_112`` chips of the same images: the
  minimum cosine (target >= 0.99999).
* **(c) Clean verification on CelebA holdout** (53 people, 806 crops, 10 identity-disjoint
  folds): ``rbf run --attack none --dataset celeba_ids --split holdout --far F`` through the
  runner, for ``arcface``, ``dlib_resnet``, ``faceres`` and ``mobileface`` (with its card's
  ``arcface_112`` = MTCNN and with ``scrfd_112``), at FAR 1e-3 and 1e-2: 10-fold accuracy and TAR
  with its Wilson 95% interval.

    python benchmarks/arcface_reference.py [--parts abc] [--celeba 500] [--out benchmarks/results/arcface_reference.csv]

Needs the asset home (RBF_HOME) with ORL, celeba_ids and both ONNX files, and insightface 2.1
(the test-only reference, ``pip install insightface==2.1``) for parts a and b.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

import robustbench_face as rbf
from robustbench_face.align import align_samples

REPO = Path(__file__).resolve().parents[1]
TOL_PX = 0.5
COS_TARGET = 0.99999
CLEAN_VICTIMS = (("arcface", None), ("dlib_resnet", None), ("faceres", None),
                 ("mobileface", None), ("mobileface", "scrfd_112"))
FIELDS = ["part", "subject", "images", "metric", "value", "n", "ci_low", "ci_high", "command"]


def insightface_ref():
    # the import shim for insightface without scikit-image lives with the tests that use it
    sys.path.insert(0, str(REPO / "tests"))
    import insightface_ref as ref

    return ref


def image_sets(n_celeba: int, seed: int = 0) -> dict[str, list]:
    """``{"orl": every ORL sample, "celeba500": a seeded sample of celeba_ids}`` (path order)."""
    orl = rbf.load_dataset("orl").samples
    celeba = rbf.load_dataset("celeba_ids").samples
    pick = np.sort(np.random.default_rng(seed).choice(len(celeba), n_celeba, replace=False))
    return {"orl": list(orl), f"celeba{n_celeba}": [celeba[i] for i in pick]}


def _u8(sample) -> np.ndarray:
    from robustbench_face.datasets._base import read_image

    im = read_image(sample.path)
    return np.ascontiguousarray(im.expand(3, -1, -1).mul(255).round().byte().permute(1, 2, 0).numpy())


def compare_scrfd(samples: list, ours, ref) -> dict:
    """Detections of ours vs insightface on each image (same count, paired in score order)."""
    matched = n_faces = n_none = 0
    box_err = kps_err = 0.0
    for s in samples:
        u8 = _u8(s)
        mine = ours.detect(u8)
        boxes, kps = ref.detect(np.ascontiguousarray(u8[:, :, ::-1]))  # insightface takes BGR
        ok = len(mine) == len(boxes)
        for d, b, k in zip(mine, boxes, kps):
            e_box = float(np.abs(d.box.numpy() - b[:4]).max())
            e_kps = float(np.abs(d.landmarks.numpy() - k).max())
            box_err, kps_err = max(box_err, e_box), max(kps_err, e_kps)
            ok = ok and e_box <= TOL_PX and e_kps <= TOL_PX
        matched += ok
        n_faces += len(mine)
        n_none += not mine
    return {"images_matched": matched, "max_box_err_px": box_err, "max_landmark_err_px": kps_err,
            "detections": n_faces, "images_without_face": n_none, "n": len(samples)}


def compare_arcface(samples: list, ref_model, batch: int = 64) -> dict:
    """Cosine of ``arcface`` vs ``get_feat`` on the cached 8-bit ``scrfd_112`` chips."""
    chips, detected = align_samples("scrfd_112", samples)
    victim = rbf.create_victim("arcface")
    cos = []
    for i in range(0, len(chips), batch):
        x = chips[i:i + batch]
        with torch.no_grad():
            mine = victim(x).double().numpy()
        bgr = [np.ascontiguousarray(c.mul(255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1]) for c in x]
        theirs = ref_model.get_feat(bgr).astype(np.float64)
        theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
        cos.append((mine * theirs).sum(1))
    cos = np.concatenate(cos)
    return {"min_cosine": float(cos.min()), "below_target": int((cos < COS_TARGET).sum()),
            "scrfd_fallbacks": int((~detected).sum()), "n": len(samples)}


def part_ab(parts: str, n_celeba: int) -> list[dict]:
    from robustbench_face.align.scrfd import default_scrfd
    from robustbench_face.cards import resolve_weights

    ref = insightface_ref()
    rows = []
    cmd = f"python benchmarks/arcface_reference.py --parts {parts} --celeba {n_celeba}"
    for name, samples in image_sets(n_celeba).items():
        if "a" in parts:
            det = ref.scrfd(resolve_weights("scrfd", "scrfd.500m_kps", kind="aligners"))
            res = compare_scrfd(samples, default_scrfd(), det)
            rows += [_row("a", "scrfd vs insightface SCRFD.detect", name, k, v, res["n"], cmd)
                     for k, v in res.items() if k != "n"]
        if "b" in parts:
            model = ref.arcface_onnx(resolve_weights("arcface", "arcface.mobilefacenet_ms1m"))
            res = compare_arcface(samples, model)
            rows += [_row("b", "arcface vs insightface ArcFaceONNX.get_feat", name, k, v, res["n"], cmd)
                     for k, v in res.items() if k != "n"]
    return rows


def _row(part, subject, images, metric, value, n, command, lo="", hi="") -> dict:
    return {"part": part, "subject": subject, "images": images, "metric": metric, "value": value,
            "n": n, "ci_low": lo, "ci_high": hi, "command": command}


def clean_run(victim: str, alignment: str | None, far: float, built: dict) -> dict:
    """One clean runner row on celeba_ids holdout; ``alignment`` overrides the card's."""
    from robustbench_face.runner import RunConfig, build_victim, run

    key = (victim, (), "cpu")
    if alignment is not None:  # the same network on other chips: a separate built victim
        v = build_victim(victim, [], "cpu")
        v.alignment = alignment
        built = {key: v}
    cfg = RunConfig(attack="none", victim=victim, dataset="celeba_ids", out=str(_scratch()),
                    task_options={"far": far, "split": "holdout"})
    return run(cfg, built=built)[0]


def _scratch() -> Path:
    # the runner appends its rows; this benchmark's own CSV is the record
    return Path("/tmp") / f"rbf_arcface_reference_runs_{time.strftime('%Y%m%d')}.csv"


def part_c() -> list[dict]:
    rows, built = [], {}
    for victim, alignment in CLEAN_VICTIMS:
        for far in (1e-3, 1e-2):
            t = time.time()
            r = clean_run(victim, alignment, far, built)
            subject = f"{victim} ({r.get('alignment')})"
            cmd = (f"rbf run --attack none --victim {victim} --dataset celeba_ids --split holdout --far {far:g}"
                   + (f"  [alignment overridden to {alignment}]" if alignment else ""))
            n_pairs = r.get("n_genuine", "")
            rows.append(_row("c", subject, "celeba_ids holdout", f"tar_at_far_{far:g}", r["tar_at_far"],
                             n_pairs, cmd, r.get("tar_ci_low", ""), r.get("tar_ci_high", "")))
            if far == 1e-3:
                rows.append(_row("c", subject, "celeba_ids holdout", "clean_acc_10fold", r["clean_acc"],
                                 r.get("n_pairs", ""), cmd))
                rows.append(_row("c", subject, "celeba_ids holdout", "n_fallback", r.get("n_fallback", ""),
                                 r.get("n_images", ""), cmd))
            print(f"  {subject} far {far:g}: {time.time() - t:.0f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="abc", help="any of a (SCRFD), b (ArcFace), c (clean verification)")
    ap.add_argument("--celeba", type=int, default=500, help="CelebA sample size for a and b")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/arcface_reference.csv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = part_ab(args.parts, args.celeba) if set(args.parts) & set("ab") else []
    if "c" in args.parts:
        rows += part_c()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        ci = f"  [{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] != "" else ""
        value = f"{r['value']:.10g}" if isinstance(r["value"], float) else r["value"]
        print(f"{r['part']}  {r['subject']:<44} {r['images']:<20} {r['metric']:<22} {value}{ci}  (n={r['n']})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
