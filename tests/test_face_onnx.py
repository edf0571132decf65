"""faceres / mobileface through onnx2torch vs onnxruntime on real ORL faces; the victim
contract; MTCNN on ORL; the ArcFace similarity fit and warp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import robustbench_face as rbf
from robustbench_face.align import get_aligner
from robustbench_face.align.arcface import umeyama, warp_affine
from robustbench_face.cards import resolve_weights
from robustbench_face.errors import AssetError, ChecksumError, UnknownNameError

ort = pytest.importorskip("onnxruntime")

# name -> (embedding dim, expected alignment, onnx input name, output name, BGR?, mean)
SPECS = {
    "faceres": (1024, "loose_224", "input", "description", True, (103.939, 116.779, 123.68)),
    "mobileface": (256, "arcface_112", "data", "embedding", False, (0.0, 0.0, 0.0)),
}


@pytest.fixture(scope="module")
def faces():
    ds = rbf.load_dataset("orl")
    return [ds.load([s])[0] for s in ds.samples[::100]]  # 4 people, native 92x112


@pytest.fixture(scope="module")
def mtcnn_ready():
    try:
        for part in ("pnet", "rnet", "onet"):
            resolve_weights("mtcnn", f"mtcnn.{part}", kind="aligners")
    except ChecksumError:
        raise
    except AssetError as exc:  # no cached copy and PyPI unreachable
        pytest.skip(f"MTCNN weights unavailable: {exc}")


@pytest.fixture(scope="module", params=sorted(SPECS))
def victim(request):
    return rbf.create_victim(request.param)


def test_matches_onnxruntime(victim, faces, mtcnn_ready):
    dim, alignment, in_name, out_name, bgr, mean = SPECS[victim.name.partition(".")[0]]
    chips, detected = get_aligner(alignment)(faces)
    assert detected.all()
    with torch.no_grad():
        ours = victim(chips).numpy()
    x = chips.permute(0, 2, 3, 1).numpy().astype(np.float32) * 255.0  # NHWC, 0..255
    if bgr:
        x = x[..., ::-1]
    x = np.ascontiguousarray(x - np.asarray(mean, dtype=np.float32))
    sess = ort.InferenceSession(str(resolve_weights(victim.name.partition(".")[0], victim.name)),
                                providers=["CPUExecutionProvider"])
    ref = sess.run([out_name], {in_name: x})[0]
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert ours.shape == (len(faces), dim)
    assert np.abs(ours - ref).max() < 1e-4


def test_victim_contract(victim, faces):
    dim, alignment = SPECS[victim.name.partition(".")[0]][:2]
    assert victim.output == "embedding" and victim.alignment == alignment
    grey = torch.stack([f[:1] for f in faces[:2]]).requires_grad_(True)  # (2, 1, 112, 92)
    emb = victim(grey)
    assert emb.shape == (2, dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    (emb[0] @ emb[1]).backward()
    assert torch.isfinite(grey.grad).all() and grey.grad.abs().sum() > 0
    big = victim(torch.rand(1, 3, 300, 250))
    assert big.shape == (1, dim)
    assert not any(p.requires_grad for p in victim.parameters())


def test_unknown_weights():
    with pytest.raises(UnknownNameError, match="faceres.hse"):
        rbf.create_victim("faceres.nope")


def test_mtcnn_on_orl(faces, mtcnn_ready):
    from robustbench_face.align.mtcnn import default_mtcnn, main_face

    for img in faces:
        face = main_face(default_mtcnn().detect(img), tuple(img.shape[-2:]))
        assert face is not None and face.score > 0.9
        (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks.tolist()
        assert lx < nx < rx and mlx < mrx  # image-left eye first
        assert max(ly, ry) < ny < min(mly, mry)  # eyes above nose above mouth
        x1, y1, x2, y2 = face.box.tolist()
        assert x1 < lx and rx < x2 and y1 < ly and max(mly, mry) < y2
    chips, detected = get_aligner("arcface_112")(faces)
    assert chips.shape == (len(faces), 3, 112, 112) and detected.all()
    assert 0 <= chips.min() and chips.max() <= 1


def test_fallback_when_no_face(mtcnn_ready):
    blank = [torch.full((3, 112, 92), 0.5)]
    chips, detected = get_aligner("arcface_112")(blank)
    assert chips.shape == (1, 3, 112, 112) and not detected[0]
    chips, detected = get_aligner("loose_224")(blank)
    assert chips.shape == (1, 3, 224, 224) and not detected[0]
    assert torch.allclose(chips, torch.full_like(chips, 0.5), atol=1e-6)  # a centre crop, no padding


def test_umeyama_is_least_squares_similarity():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(5, 2, generator=g, dtype=torch.float64) * 100
    dst = torch.rand(5, 2, generator=g, dtype=torch.float64) * 100
    # a similarity [a -b tx; b a ty] is linear in (a, b, tx, ty): solve it directly
    A = torch.zeros(10, 4, dtype=torch.float64)
    A[0::2] = torch.stack([src[:, 0], -src[:, 1], torch.ones(5), torch.zeros(5)], 1)
    A[1::2] = torch.stack([src[:, 1], src[:, 0], torch.zeros(5), torch.ones(5)], 1)
    a, b, tx, ty = torch.linalg.lstsq(A, dst.reshape(-1, 1)).solution.flatten().tolist()
    expected = torch.tensor([[a, -b, tx], [b, a, ty]], dtype=torch.float64)
    assert torch.allclose(umeyama(src, dst), expected, atol=1e-8)


def test_warp_matches_cv2():
    cv2 = pytest.importorskip("cv2")
    img = torch.rand(3, 40, 30, generator=torch.Generator().manual_seed(0))
    M = torch.tensor([[0.9, -0.2, 3.0], [0.25, 1.1, -4.0]], dtype=torch.float64)
    ours = warp_affine(img, M, (35, 33)).permute(1, 2, 0).numpy()
    ref = cv2.warpAffine(img.permute(1, 2, 0).numpy(), M.numpy(), (33, 35), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    assert np.abs(ours - ref)[2:-2, 2:-2].max() < 1e-3  # cv2 uses 5-bit fixed-point weights
