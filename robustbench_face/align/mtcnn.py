"""MTCNN face detector with 5 landmarks, in plain PyTorch.

Paper: K. Zhang, Z. Zhang, Z. Li, Y. Qiao, "Joint Face Detection and Alignment using
Multi-task Cascaded Convolutional Networks", IEEE Signal Processing Letters 23(10), 2016.

Three small networks run as a cascade: P-Net scans an image pyramid fully convolutionally
for 12x12 face candidates, R-Net rescores and refines 24x24 crops of the survivors, and
O-Net rescores 48x48 crops and adds five landmarks (left eye, right eye, nose, left and
right mouth corner, as seen in the image). The weights are the original authors' Caffe
weights as converted for facenet-pytorch (MIT); they ship inside its wheel, which pins
torch<2.3, so the package is never installed or imported: ``aligners/mtcnn.toml`` names the
three files as card variants that ``resolve_weights`` pulls out of the downloaded wheel.

Deliberate difference from facenet-pytorch: R-Net/O-Net crops that stick out of the image
are zero-padded (as in the original code) instead of clipped and stretched, which matters on
tight face crops such as ORL where every face touches the border.

This module only detects; it registers no aligner (see ``align/arcface.py``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms


def _flat(x: Tensor) -> Tensor:
    # the converted dense weights expect the Caffe/TF (W, H, C) flattening order
    return x.permute(0, 3, 2, 1).flatten(1)


class PNet(nn.Module):
    """Proposal net: fully convolutional, one 12x12 window per output cell (stride 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_1(x).softmax(1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refine net on 24x24 crops: face probability and box regression."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(_flat(self.prelu3(self.conv3(x)))))
        return self.dense5_1(x).softmax(1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: probability, box regression and 5 landmarks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_flat(self.prelu4(self.conv4(x)))))
        return self.dense6_1(x).softmax(1)[:, 1], self.dense6_2(x), self.dense6_3(x)


@dataclass
class Detection:
    """One face: ``box`` (x1, y1, x2, y2) in pixels, ``score``, ``landmarks`` (5, 2) as (x, y)."""

    box: Tensor
    score: float
    landmarks: Tensor


# -- box helpers (boxes are (K, 5): x1, y1, x2, y2, score) --------------------------------
def _square(b: Tensor) -> Tensor:
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = torch.maximum(w, h)
    x1, y1 = b[:, 0] + (w - side) / 2, b[:, 1] + (h - side) / 2
    return torch.stack([x1, y1, x1 + side, y1 + side, b[:, 4]], 1)


def _regress(b: Tensor, reg: Tensor, plus_one: bool = True) -> Tensor:
    w = b[:, 2] - b[:, 0] + plus_one
    h = b[:, 3] - b[:, 1] + plus_one
    out = b.clone()
    out[:, :4] = b[:, :4] + reg * torch.stack([w, h, w, h], 1)
    return out


def _nms_min(b: Tensor, thresh: float) -> Tensor:
    """Greedy NMS with intersection over the *smaller* box (the last MTCNN stage uses it)."""
    order = b[:, 4].argsort(descending=True)
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = (torch.minimum(b[i, 2], b[rest, 2]) - torch.maximum(b[i, 0], b[rest, 0]) + 1).clamp(min=0)
        ih = (torch.minimum(b[i, 3], b[rest, 3]) - torch.maximum(b[i, 1], b[rest, 1]) + 1).clamp(min=0)
        overlap = iw * ih / torch.minimum(area[i], area[rest])
        order = rest[overlap <= thresh]
    return torch.tensor(keep, dtype=torch.long)


def _crops(img: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Integer crops of ``boxes`` from ``img`` (3, H, W) in 0..255, zero-padded, resized."""
    _, H, W = img.shape
    out = []
    for x1, y1, x2, y2 in boxes[:, :4].trunc().long().tolist():
        x1, y1 = x1 - 1, y1 - 1  # MTCNN boxes are 1-based and inclusive
        w, h = max(x2 - x1, 1), max(y2 - y1, 1)
        tile = img.new_zeros(3, h, w)
        sx0, sy0, sx1, sy1 = max(x1, 0), max(y1, 0), min(x1 + w, W), min(y1 + h, H)
        if sx1 > sx0 and sy1 > sy0:
            tile[:, sy0 - y1:sy1 - y1, sx0 - x1:sx1 - x1] = img[:, sy0:sy1, sx0:sx1]
        out.append(F.interpolate(tile[None], size=(size, size), mode="area"))
    return (torch.cat(out) - 127.5) * 0.0078125


class MTCNN(nn.Module):
    """The cascade. ``detect(image)`` returns every face, highest score first.

    ``image`` is a (3, H, W) RGB float tensor in [0, 1] (greyscale repeated to 3 channels).
    Defaults are the paper's / facenet-pytorch's: minimum face 20 px, pyramid factor 0.709,
    stage thresholds (0.6, 0.7, 0.7).
    """

    def __init__(self, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face_size, self.thresholds, self.factor = min_face_size, tuple(thresholds), factor
        self.eval()

    def load_weights(self) -> MTCNN:
        from ..cards import resolve_weights

        for part in ("pnet", "rnet", "onet"):
            path = resolve_weights("mtcnn", f"mtcnn.{part}", kind="aligners")
            sd = torch.load(path, map_location="cpu", weights_only=True)
            getattr(self, part).load_state_dict(sd, strict=True)
        return self

    def _scales(self, h: int, w: int) -> list[float]:
        m = 12.0 / self.min_face_size
        n = int(math.floor(math.log(12.0 / (min(h, w) * m)) / math.log(self.factor))) + 1
        return [m * self.factor ** i for i in range(max(n, 0))]

    def _stage1(self, img: Tensor) -> Tensor:
        _, H, W = img.shape
        found = []
        for s in self._scales(H, W):
            im = F.interpolate(img[None], size=(int(H * s + 1), int(W * s + 1)), mode="area")
            prob, reg = self.pnet((im - 127.5) * 0.0078125)
            yx = (prob[0] >= self.thresholds[0]).nonzero()
            if not len(yx):
                continue
            xy = yx.flip(1).to(img.dtype)
            q1 = ((2 * xy + 1) / s).floor()
            q2 = ((2 * xy + 12) / s).floor()
            r = reg[0][:, yx[:, 0], yx[:, 1]].T
            b = torch.cat([q1, q2, prob[0][yx[:, 0], yx[:, 1]][:, None], r], 1)
            found.append(b[nms(b[:, :4], b[:, 4], 0.5)])
        if not found:
            return img.new_zeros(0, 5)
        b = torch.cat(found)
        b = b[nms(b[:, :4], b[:, 4], 0.7)]
        return _square(_regress(b[:, :5], b[:, 5:9], plus_one=False))

    @torch.no_grad()
    def detect(self, image: Tensor) -> list[Detection]:
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        img = image.float() * 255.0
        b = self._stage1(img)
        if not len(b):
            return []
        prob, reg = self.rnet(_crops(img, b, 24))
        ok = prob > self.thresholds[1]
        b, reg = torch.cat([b[ok, :4], prob[ok, None]], 1), reg[ok]
        keep = nms(b[:, :4], b[:, 4], 0.7)
        b = _square(_regress(b[keep], reg[keep]))
        if not len(b):
            return []
        prob, reg, pts = self.onet(_crops(img, b, 48))
        ok = prob > self.thresholds[2]
        b, reg, pts = torch.cat([b[ok, :4], prob[ok, None]], 1), reg[ok], pts[ok]
        w = (b[:, 2] - b[:, 0] + 1)[:, None]
        h = (b[:, 3] - b[:, 1] + 1)[:, None]
        lmk = torch.stack([w * pts[:, :5] + b[:, :1] - 1, h * pts[:, 5:] + b[:, 1:2] - 1], 2)
        b = _regress(b, reg)
        keep = _nms_min(b, 0.7)
        return [Detection(b[i, :4], float(b[i, 4]), lmk[i]) for i in keep.tolist()]


@functools.lru_cache(maxsize=1)
def default_mtcnn() -> MTCNN:
    """One shared detector with the facenet-pytorch weights (loaded on first use)."""
    return MTCNN().load_weights()


def main_face(dets: list[Detection], shape: tuple[int, int]) -> Detection | None:
    """The face an identity-folder image is about: the largest box, ties to the most central.

    >>> main_face([], (10, 10)) is None
    True
    """
    if not dets:
        return None
    H, W = shape

    def key(d: Detection) -> tuple[float, float]:
        x1, y1, x2, y2 = d.box.tolist()
        off = abs((x1 + x2) / 2 - W / 2) + abs((y1 + y2) / 2 - H / 2)
        return (round((x2 - x1) * (y2 - y1), -1), -off)

    return max(dets, key=key)
