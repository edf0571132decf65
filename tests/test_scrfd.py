"""The ``scrfd_112`` aligner: our SCRFD decoding + NMS equals insightface 2.1's ``SCRFD.detect``
(boxes and landmarks within 0.5 px, the same detections), its face choice and fallback, and the
ArcFace victims that declare it. The insightface comparisons skip when insightface (a test-only
reference, like dlib-bin) or the detector file is absent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import asset
from insightface_ref import arcface_onnx, scrfd as reference_scrfd

from robustbench_face.align import get_aligner
from robustbench_face.align.arcface import fallback_landmarks, norm_crop
from robustbench_face.datasets._base import read_image
from robustbench_face.factory import victim_info

TOL_PX = 0.5


def _u8(path) -> np.ndarray:
    im = read_image(path)
    return np.ascontiguousarray(im.expand(3, -1, -1).mul(255).round().byte().permute(1, 2, 0).numpy())


def _test_images() -> list[np.ndarray]:
    """One ORL image of 10 people (tight grey crops: only the 128 px pass finds them), 10 CelebA
    loose crops, and two CelebA faces side by side (several detections, so NMS and the order of
    the detections are checked too)."""
    orl = asset("datasets", "orl_faces")
    celeba = asset("datasets", "celeba_ids")
    images = [_u8(orl / f"s{i}" / "1.pgm") for i in range(1, 41, 4)]
    people = sorted(p for p in celeba.iterdir() if p.is_dir())[:10]
    images += [_u8(sorted(p.glob("*.jpg"))[0]) for p in people]
    images.append(np.concatenate([images[-1], images[-2]], axis=1))
    return images


@pytest.fixture(scope="module")
def detectors():
    from robustbench_face.align.scrfd import default_scrfd

    path = asset("weights", "scrfd_500m_kps.onnx")
    return default_scrfd(), reference_scrfd(path)


def test_detect_equals_insightface(detectors):
    ours, ref = detectors
    n_faces = 0
    for k, u8 in enumerate(_test_images()):
        mine = ours.detect(u8)
        boxes, kps = ref.detect(np.ascontiguousarray(u8[:, :, ::-1]))  # insightface takes BGR
        assert len(mine) == len(boxes), f"image {k}: {len(mine)} faces, insightface {len(boxes)}"
        for d, box, pts in zip(mine, boxes, kps):  # both best score first
            assert np.abs(d.box.numpy() - box[:4]).max() <= TOL_PX, k
            assert np.abs(d.landmarks.numpy() - pts).max() <= TOL_PX, k
            assert abs(d.score - box[4]) < 1e-4, k
        n_faces += len(mine)
    assert n_faces >= 22  # every single-face image found, and both faces of the pair


def test_main_face_is_insightfaces_max_num_1(detectors):
    ours, ref = detectors
    from robustbench_face.align.scrfd import main_face

    pair = _test_images()[-1]
    face = main_face(ours.detect(pair), pair.shape[:2])
    boxes, _ = ref.detect(np.ascontiguousarray(pair[:, :, ::-1]), max_num=1)
    assert np.abs(face.box.numpy() - boxes[0, :4]).max() <= TOL_PX


def test_aligner_chips_and_fallback():
    asset("weights", "scrfd_500m_kps.onnx")  # needs the detector, not insightface
    align = get_aligner("scrfd_112")
    face = torch.from_numpy(_test_images()[0]).permute(2, 0, 1).float() / 255
    blank = torch.zeros(1, 100, 80)  # nothing to find: the documented fallback
    chips, detected = align([face, blank])
    assert chips.shape == (2, 3, 112, 112) and detected.tolist() == [True, False]
    expected = norm_crop(blank.expand(3, -1, -1), fallback_landmarks(100, 80))
    assert torch.equal(chips[1], expected)


def test_arcface_declares_scrfd():
    # insightface deploys its ArcFace models on SCRFD landmarks: the chips they were made for
    assert victim_info("arcface")["alignment"] == "scrfd_112"


def test_arcface_equals_insightface_get_feat():
    """ArcFace (``arcface``) vs insightface's ``ArcFaceONNX.get_feat`` on the same SCRFD chips."""
    import robustbench_face as rbf

    path = asset("weights", "arcface_mobilefacenet_ms1m.onnx")
    ref = arcface_onnx(path)
    faces = [torch.from_numpy(u8).permute(2, 0, 1).float() / 255 for u8 in _test_images()[:-1]]
    chips, _ = get_aligner("scrfd_112")(faces)
    chips = chips.mul(255).round().div(255)  # the 8-bit chips the pipeline caches
    with torch.no_grad():
        mine = rbf.create_victim("arcface")(chips).numpy()
    bgr = [np.ascontiguousarray(c.mul(255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1]) for c in chips]
    theirs = ref.get_feat(bgr)
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    assert (mine * theirs).sum(1).min() >= 0.99999
