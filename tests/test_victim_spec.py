"""The one input spec (robustbench_face/preprocess.py): order, channel rule, validation, and each
resize against the library it claims to reproduce (cv2, PIL, dlib, onnxruntime's asymmetric Resize)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustbench_face.errors import InputError
from robustbench_face.preprocess import InputSpec, resize

RNG = np.random.default_rng(0)


def _img(h: int, w: int, c: int = 3) -> np.ndarray:
    return RNG.random((h, w, c), dtype=np.float32)


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def test_fixed_order_flip_before_normalise():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    spec = InputSpec(size=(2, 2), channels="BGR", scale=255, mean=(10.0, 20.0, 30.0), std=(1.0, 2.0, 5.0))
    # network order B, G, R: mean/std apply to the flipped channels
    assert spec(red)[0, :, 0, 0].tolist() == [-10.0, -10.0, (255 - 30) / 5]
    assert spec.replace(layout="NHWC")(red).shape == (1, 2, 2, 3)


def test_channel_rule():
    grey_net = InputSpec(size=(4, 4), channels="grey")
    rgb = torch.rand(2, 3, 4, 4)
    want = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    torch.testing.assert_close(grey_net(rgb)[:, 0], want)
    g = torch.rand(2, 1, 4, 4)
    assert torch.equal(InputSpec(size=(4, 4))(g), g.expand(-1, 3, -1, -1))
    with pytest.raises(InputError, match=r"\(N, 1 or 3, H, W\)"):
        InputSpec(size=(4, 4))(torch.rand(1, 4, 4, 4))


def test_same_size_is_untouched_and_gradients_flow():
    x = torch.rand(1, 3, 8, 6, requires_grad=True)
    for coords in ("half_pixel", "align_corners", "asymmetric"):
        spec = InputSpec(size=(8, 6), coordinates=coords)
        assert torch.equal(spec(x), x)
        InputSpec(size=(5, 9), coordinates=coords)(x).sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        x.grad = None


@pytest.mark.parametrize("src, dst", [((48, 48), (64, 64)), ((224, 224), (64, 64)), ((100, 90), (64, 64))])
def test_bilinear_half_pixel_is_cv2_inter_linear(src, dst):
    cv2 = pytest.importorskip("cv2")
    a = _img(*src)
    ref = cv2.resize(a, dst[::-1], interpolation=cv2.INTER_LINEAR)
    ours = resize(_nchw(a), dst)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - ref).max() < 1e-5


@pytest.mark.parametrize("src, dst", [((384, 192), (256, 128)), ((128, 64), (256, 128)), ((300, 250), (224, 224))])
def test_antialiased_bilinear_is_pil(src, dst):
    from PIL import Image

    a = (_img(*src) * 255).round().astype(np.uint8)
    ref = np.asarray(Image.fromarray(a).resize(dst[::-1], Image.BILINEAR), dtype=np.float32)
    ours = resize(_nchw(a.astype(np.float32)), dst, antialias=True)[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - ref).max() <= 1.0  # PIL rounds to 8 bits
    assert np.abs(ours - ref).mean() < 0.4
    if src[0] > dst[0]:  # shrinking: without antialias it is another image
        plain = resize(_nchw(a.astype(np.float32)), dst)[0].permute(1, 2, 0).numpy()
        assert np.abs(plain - ref).max() > 10


@pytest.mark.parametrize("src", [(100, 100), (224, 224), (75, 90)])
def test_align_corners_is_dlib_resize_image(src):
    dlib = pytest.importorskip("dlib")
    a = _img(*src, c=1)[..., 0]
    ref = dlib.resize_image(a, 150, 150)
    ours = resize(torch.from_numpy(a)[None, None], (150, 150), coordinates="align_corners")[0, 0].numpy()
    assert np.abs(ours - ref).max() < 1e-4


def _tfjs_resize_bilinear(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """tfjs-backend-cpu's resizeBilinear, alignCorners = halfPixelCenters = false (transcribed)."""
    H, W = a.shape[:2]
    out = np.zeros((h, w, a.shape[2]), dtype=np.float64)
    for r in range(h):
        sr = H / h * r
        r0, r1 = max(0, int(np.floor(sr))), min(H - 1, int(np.ceil(sr)))
        for c in range(w):
            sc = W / w * c
            c0, c1 = max(0, int(np.floor(sc))), min(W - 1, int(np.ceil(sc)))
            top = a[r0, c0] + (a[r0, c1] - a[r0, c0]) * (sc - c0)
            bottom = a[r1, c0] + (a[r1, c1] - a[r1, c0]) * (sc - c0)
            out[r, c] = top + (bottom - top) * (sr - r0)
    return out.astype(np.float32)


@pytest.mark.parametrize("src, dst", [((92, 112), (112, 112)), ((300, 250), (224, 224)), ((40, 30), (112, 112))])
def test_asymmetric_is_tfjs_and_onnxruntime(src, dst):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    a = _img(*src)
    ours = resize(_nchw(a), dst, coordinates="asymmetric")[0].permute(1, 2, 0).numpy()
    assert np.abs(ours - _tfjs_resize_bilinear(a, *dst)).max() < 1e-6
    sizes = numpy_helper.from_array(np.array([1, 3, *dst], dtype=np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear",
                            coordinate_transformation_mode="asymmetric")
    graph = helper.make_graph([node], "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[sizes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"x": _nchw(a).numpy()})[0][0].transpose(1, 2, 0)
    assert np.abs(ours - ref).max() < 1e-4  # onnxruntime computes the coordinates in float32


def test_nearest_follows_its_coordinates():
    cv2 = pytest.importorskip("cv2")
    a = _img(37, 23)
    ref = cv2.resize(a, (16, 20), interpolation=cv2.INTER_NEAREST)
    ours = resize(_nchw(a), (20, 16), "nearest", coordinates="asymmetric")[0].permute(1, 2, 0).numpy()
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("table, match", [
    ({"size": [64]}, r"size must be \[height, width\]"),
    ({"size": [64, 64], "interpolation": "lanczos"}, "interpolation must be one of bilinear"),
    ({"size": [64, 64], "antialias": True, "coordinates": "asymmetric"}, "antialias applies to half_pixel"),
    ({"size": [64, 64], "interpolation": "area", "coordinates": "align_corners"}, "has no 'align_corners' variant"),
    ({"size": [64, 64], "scale": 127.5}, "scale must be 1"),
    ({"size": [64, 64], "channels": "grey", "mean": [0.5, 0.5, 0.5]}, "mean needs 1 value for grey input"),
    ({"size": [64, 64], "std": [1, 0, 1]}, "std must not be zero"),
    ({"size": [64, 64], "antialias": "yes"}, "antialias must be true or false"),
    ({"size": [64, 64], "mean": "0.5"}, "mean must be"),
    ({"size": [64, 64], "normalise": True}, r"unknown key\(s\) normalise; accepted: size, interpolation"),
    ({"scale": 1}, r"size = \[H, W\] is required"),
])
def test_from_card_refuses_bad_tables(table, match):
    with pytest.raises(InputError, match=match):
        InputSpec.from_card(table, "victims/x.toml")


def test_card_round_trip_and_description():
    spec = InputSpec.from_card({"size": [150, 150], "coordinates": "align_corners", "scale": 255,
                                "mean": [122.782, 117.001, 104.298], "std": [256, 256, 256], "reference": "dlib"})
    assert InputSpec.from_card(spec.to_card()) == spec
    assert spec.std == (256.0, 256.0, 256.0) and spec.size == (150, 150)
    assert "align_corners" in spec.describe() and "x*255" in spec.describe()
