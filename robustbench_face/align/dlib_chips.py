"""``dlib_150``: dlib's own face chips, the input of the ``dlib_resnet`` victim.

Pipeline, as dlib's face recognition example does it: the HOG frontal face detector
(``dlib.get_frontal_face_detector``; N. Dalal and B. Triggs, "Histograms of Oriented Gradients
for Human Detection", CVPR 2005), then the 5-point shape predictor
(``shape_predictor_5_face_landmarks.dat``, an ensemble of regression trees: V. Kazemi and
J. Sullivan, "One Millisecond Face Alignment with an Ensemble of Regression Trees", CVPR 2014),
then ``dlib.get_face_chip(size=150, padding=0.25)``, a similarity warp of the eyes and nose to
fixed positions in a 150x150 chip.

Detection: the detector runs on the image as it is and, if it finds nothing, once more on the
image upsampled 2x (faces smaller than about 80 px are missed otherwise; ORL's 92x112 faces
need it). Of several faces the largest box is used.

Fallback (``detected=False``): when neither pass finds a face, the whole image is taken as the
face box: the rectangle (0, 0, W-1, H-1) is given to the shape predictor, whose landmarks
then drive ``get_face_chip`` as usual. This suits tight face crops such as ORL.

dlib (PyPI ``dlib-bin``) is an optional dependency used only here; it is imported when the
aligner first runs. The landmark model is the default variant of ``aligners/dlib_chips.toml``
(same carrier package as the ``dlib_resnet`` victim's weights).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from ..cards import load_card, resolve_weights
from ..errors import InputError, RbfError
from . import register_aligner

CHIP_SIZE = 150
PADDING = 0.25


def _dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise RbfError("the dlib_150 aligner needs dlib, an optional dependency: "
                       "pip install dlib-bin (or dlib)") from None
    return dlib


@functools.lru_cache(maxsize=1)
def _models() -> tuple[Any, Any]:
    """(face detector, 5-point shape predictor), loaded once per process."""
    dlib = _dlib()
    path = resolve_weights("dlib_chips", load_card("aligners", "dlib_chips")["default"], kind="aligners")
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def _to_uint8_rgb(img: Tensor):
    if not isinstance(img, Tensor) or img.ndim != 3 or img.shape[0] not in (1, 3):
        got = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
        raise InputError(f"dlib_150 expects (3, H, W) or (1, H, W) image tensors, got {got}")
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    arr = (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return arr.permute(1, 2, 0).contiguous().cpu().numpy()


def _largest_face(detector: Any, arr) -> Any | None:
    for upsample in (0, 1):
        boxes = list(detector(arr, upsample))
        if boxes:
            return max(boxes, key=lambda r: r.width() * r.height())
    return None


def align_one(arr) -> tuple[Any, bool]:
    """One HxWx3 uint8 RGB array -> (150x150x3 uint8 chip, detected)."""
    dlib = _dlib()
    detector, predictor = _models()
    box = _largest_face(detector, arr)
    detected = box is not None
    if box is None:
        box = dlib.rectangle(0, 0, arr.shape[1] - 1, arr.shape[0] - 1)
    shape = predictor(arr, box)
    return dlib.get_face_chip(arr, shape, size=CHIP_SIZE, padding=PADDING), detected


@register_aligner("dlib_150")
def dlib_150(images: list[Tensor]) -> tuple[Tensor, Tensor]:
    """dlib 150x150 chips (padding 0.25); the whole image is the face box where none is found."""
    chips, detected = [], []
    for img in images:
        chip, found = align_one(_to_uint8_rgb(img))
        chips.append(torch.from_numpy(chip).permute(2, 0, 1).float().div_(255.0))
        detected.append(found)
    if not chips:
        return torch.zeros(0, 3, CHIP_SIZE, CHIP_SIZE), torch.zeros(0, dtype=torch.bool)
    return torch.stack(chips), torch.tensor(detected, dtype=torch.bool)
