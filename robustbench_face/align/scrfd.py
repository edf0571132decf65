"""SCRFD face detector with 5 landmarks (ONNX, onnxruntime), and the ``scrfd_112`` aligner.

Paper: J. Guo, J. Deng, A. Lattas, S. Zafeiriou, "Sample and Computation Redistribution for
Efficient Face Detection", ICLR 2022 (arXiv:2105.04714). Weights: insightface's SCRFD-500MF
with keypoints (``det_500m.onnx`` of the buffalo_s pack), **non-commercial research only**;
``aligners/scrfd.toml`` names the file and its sha256.

SCRFD is the detector insightface itself puts in front of its ArcFace models, so its landmarks
give the chips those models are deployed on. The decoding below is written from the paper's
anchor-free head and checked against insightface 2.1's ``SCRFD.detect`` (boxes and landmarks
within 0.5 px, the same detections: ``tests/test_scrfd.py``, ``benchmarks/arcface_reference.py``):

1. **Letterbox, at two sizes.** For each size of ``DET_SIZES`` (128x128, then 640x640: insightface
   2.1's default when no ``input_size`` is given) the image is scaled to fit it keeping its aspect
   ratio (the new size truncated to whole pixels), resized with ``cv2.resize`` (bilinear, 8-bit,
   as insightface does) and pasted at the top left of a black canvas. The small pass finds faces
   that fill the image (ORL's tight crops: at 640 they are too large for the anchors and SCRFD
   finds none); candidates of both passes go into one NMS.
2. **Network input.** RGB, ``(x - 127.5) / 128``, NCHW.
3. **Decoding.** Three levels, strides 8, 16 and 32; each cell of a level has two anchors at the
   same centre ``(col * stride, row * stride)`` (row-major, anchor fastest). Per anchor the
   network gives a score, four distances (left, top, right, bottom) and five landmark offsets,
   all in units of the stride: ``box = (cx - l, cy - t, cx + r, cy + b)``, ``point = c + d``.
4. Anchors scoring ``>= SCORE_THRESH`` (0.5) are kept, mapped back by the letterbox scale,
   pooled over both sizes (128 first), stably sorted by score and thinned by greedy NMS at IoU ``> NMS_THRESH`` (0.4), the IoU counting
   boxes with insightface's ``+1`` pixel convention.

**Which face** (:func:`main_face`): insightface's own rule for ``detect(max_num=1)``: the
largest ``area - 2 * |box centre - image centre|^2``, a big face that is also central.

**Fallback** when no face is found (``detected=False``, counted by ``align_source`` and in the
face task's ``n_fallback``): the same as ``arcface_112``, i.e. the image is taken as an upright,
centred, tight face crop (the ArcFace template stretched to the image). Faces are never dropped,
so every run scores the same images whatever the detector finds.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from . import register_aligner
from .arcface import fallback_landmarks, norm_crop
from .mtcnn import Detection

# (width, height) fed to the network, in this order: insightface 2.1's DEFAULT_DET_SIZES
DET_SIZES = ((128, 128), (640, 640))
SCORE_THRESH = 0.5      # insightface's det_thresh
NMS_THRESH = 0.4        # insightface's nms_thresh
STRIDES = (8, 16, 32)
ANCHORS = 2             # anchors per cell (same centre; the 9-output SCRFD models)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """(canvas, scale): ``image`` (H, W, 3) uint8 scaled into ``size`` (w, h) at the top left."""
    import cv2

    h, w = image.shape[:2]
    if h / w > size[1] / size[0]:
        nh = size[1]
        nw = int(nh / (h / w))
    else:
        nw = size[0]
        nh = int(nw * (h / w))
    canvas = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh))
    return canvas, nh / h


def anchor_centres(height: int, width: int, stride: int) -> np.ndarray:
    """(height * width * ANCHORS, 2) anchor centres (x, y) of one level, row-major, anchor fastest.

    >>> anchor_centres(1, 2, 8).tolist()
    [[0.0, 0.0], [0.0, 0.0], [8.0, 0.0], [8.0, 0.0]]
    """
    ys, xs = np.mgrid[:height, :width]
    centres = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centres, ANCHORS, axis=0)


def distance2bbox(centres: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Boxes (x1, y1, x2, y2) from centres and (left, top, right, bottom) distances."""
    return np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1)


def distance2kps(centres: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(N, K, 2) points from centres and (N, 2K) offsets (x0, y0, x1, y1, ...)."""
    return centres[:, None, :] + dist.reshape(len(dist), dist.shape[1] // 2, 2)


def nms(boxes: np.ndarray, scores: np.ndarray, thresh: float = NMS_THRESH) -> list[int]:
    """Greedy NMS: indices kept, best first; a box goes when its IoU with a kept one is > thresh.

    >>> b = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29]], dtype=np.float32)
    >>> nms(b, np.array([0.9, 0.8, 0.7]))
    [0, 2]
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)  # insightface's pixel-count convention
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= thresh]
    return keep


def _levels(outputs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(scores, boxes, kps) per stride, told apart by their widths (1, 4, 10) and lengths, so the
    graph's output order does not matter."""
    by_width: dict[int, list[np.ndarray]] = {}
    for out in outputs:
        out = out.reshape(-1, out.shape[-1])
        by_width.setdefault(out.shape[1], []).append(out)
    if sorted(by_width) != [1, 4, 10] or any(len(v) != len(STRIDES) for v in by_width.values()):
        raise ValueError(f"not a 9-output SCRFD graph with keypoints: widths {sorted(by_width)}")
    ordered = {k: sorted(v, key=len, reverse=True) for k, v in by_width.items()}  # stride 8 first
    return list(zip(ordered[1], ordered[4], ordered[10]))


class SCRFD:
    """The detector: ``detect(image) -> [Detection]``, best score first.

    ``image``: (H, W, 3) uint8 RGB (or (3, H, W) float in [0, 1], see :meth:`detect_tensor`).
    ``session``: an onnxruntime ``InferenceSession`` of a 9-output SCRFD model; ``sizes``: the
    (width, height) letterbox sizes, each a multiple of 32.
    """

    def __init__(self, session, sizes=DET_SIZES, score_thresh: float = SCORE_THRESH,
                 nms_thresh: float = NMS_THRESH):
        self.session, self.sizes = session, tuple(tuple(s) for s in sizes)
        self.score_thresh, self.nms_thresh = score_thresh, nms_thresh
        self.input_name = session.get_inputs()[0].name

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes with scores (N, 5), landmarks (N, 5, 2)) of every size, before NMS, in image
        pixels (float32 throughout, like insightface, so the two round alike)."""
        dets, kpss = [], []
        for size in self.sizes:
            d, k = self._raw_at(image, size)
            dets.append(d)
            kpss.append(k)
        return np.vstack(dets).astype(np.float32), np.vstack(kpss).astype(np.float32)

    def _raw_at(self, image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        canvas, scale = letterbox(image, size)
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})
        dets, kpss = [], []
        for stride, (score, dist, kdist) in zip(STRIDES, _levels(outs)):
            centres = anchor_centres(size[1] // stride, size[0] // stride, stride)
            keep = np.where(score[:, 0] >= self.score_thresh)[0]
            boxes = distance2bbox(centres[keep], dist[keep] * stride)
            dets.append(np.hstack([boxes / scale, score[keep]]))
            kpss.append(distance2kps(centres[keep], kdist[keep] * stride) / scale)
        return np.vstack(dets), np.vstack(kpss)

    def detect(self, image: np.ndarray) -> list[Detection]:
        dets, kpss = self.raw(image)
        keep = nms(dets[:, :4], dets[:, 4], self.nms_thresh)
        return [Detection(torch.from_numpy(dets[i, :4].copy()), float(dets[i, 4]),
                          torch.from_numpy(kpss[i].copy())) for i in keep]

    def detect_tensor(self, image: Tensor) -> list[Detection]:
        """:meth:`detect` on a (C, H, W) float image in [0, 1] (grey is repeated to RGB)."""
        rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
        u8 = rgb.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return self.detect(np.ascontiguousarray(u8))


def main_face(dets: list[Detection], shape: tuple[int, int]) -> Detection | None:
    """insightface's ``max_num=1`` choice: the largest ``area - 2 * offset^2``, the offset being
    the box centre's distance to the image centre ``(W // 2, H // 2)``.

    >>> big = Detection(torch.tensor([0., 0., 40., 40.]), 0.9, torch.zeros(5, 2))
    >>> central = Detection(torch.tensor([40., 40., 60., 60.]), 0.9, torch.zeros(5, 2))
    >>> main_face([big, central], (100, 100)) is central
    True
    """
    if not dets:
        return None
    H, W = shape

    def value(d: Detection) -> float:
        x1, y1, x2, y2 = d.box.tolist()
        off2 = ((x1 + x2) / 2 - W // 2) ** 2 + ((y1 + y2) / 2 - H // 2) ** 2
        return (x2 - x1) * (y2 - y1) - 2.0 * off2

    return max(dets, key=value)


def session(path, threads: int | None = None):
    """An onnxruntime CPU session using ``threads`` (default: torch's thread count, so a run
    limited with ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` stays within it)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # a dependency; say what to install rather than fail obscurely
        raise ImportError("the scrfd_112 aligner runs SCRFD with onnxruntime: pip install onnxruntime") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    # the file declares its output lengths for 640x640; at 128x128 onnxruntime warns on every run
    # that the (correct) outputs are shorter. Errors still show; warnings would flood the log.
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=1)
def default_scrfd() -> SCRFD:
    """One shared detector with the card's weights (sha256-checked, loaded on first use)."""
    from ..cards import load_card, resolve_weights

    path = resolve_weights("scrfd", load_card("aligners", "scrfd")["default"], kind="aligners")
    return SCRFD(session(path))


@register_aligner("scrfd_112")
def scrfd_112(images: list[Tensor]) -> tuple[Tensor, Tensor]:
    """SCRFD landmarks -> ArcFace ``norm_crop`` 112x112 (fallback: see module docstring)."""
    det = default_scrfd()
    chips, found = [], []
    for im in images:
        face = main_face(det.detect_tensor(im), tuple(im.shape[-2:]))
        lmk = face.landmarks.double() if face is not None else fallback_landmarks(*im.shape[-2:])
        rgb = im.expand(3, -1, -1) if im.shape[0] == 1 else im
        chips.append(norm_crop(rgb, lmk))
        found.append(face is not None)
    return torch.stack(chips), torch.tensor(found, dtype=torch.bool)
