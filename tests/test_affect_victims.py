"""Generic affect victims (victims/affect.py): heads, output-count checks, preprocessing, ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import robustbench_face as rbf
from robustbench_face.errors import InputError
from robustbench_face.victims.affect import build_affect_victim


class Tiny(nn.Module):
    def __init__(self, n_out: int, ch: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(ch, n_out)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def _onnx_model(path, n_out: int, size: int = 8):
    """A real ONNX graph: GlobalAveragePool -> Flatten -> Gemm, written with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(3, n_out)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "W"], ["scores"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_out])],
        initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("head, n_out, kw, output", [
    ("expression", 7, {"classes": "a,b,c,d,e,f,g"}, "logits"),
    ("valence_arousal", 2, {}, "regression"),
    ("valence_arousal", 10, {"outputs": "-2:", "activation": "tanh"}, "regression"),
    ("action_units", 12, {"au_names": [f"AU{i}" for i in range(12)]}, "multilabel"),
])
def test_heads(head, n_out, kw, output):
    v = build_affect_victim(Tiny(n_out), "tiny", head, size=(16, 16), **kw)
    assert v.output == output and v.input_size == (16, 16)
    out = v(torch.rand(4, 3, 40, 30))
    assert out.shape == (4, v.expected)
    if head != "expression":
        assert out.min() >= -1 and out.max() <= 1
    if head == "action_units":
        assert out.min() >= 0 and len(v.au_names) == 12
    x = torch.rand(2, 3, 20, 20, requires_grad=True)
    v(x).sum().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("head, n_out, kw, expected", [
    ("expression", 8, {"classes": "a,b,c,d,e,f,g"}, 7),
    ("valence_arousal", 3, {}, 2),
    ("action_units", 5, {"au_names": "AU1,AU2"}, 2),
])
def test_output_count_mismatch_names_everything(head, n_out, kw, expected):
    msg = rf"'my_model': declared head '{head}' expects {expected} outputs.*gives {n_out}"
    with pytest.raises(InputError, match=msg):
        build_affect_victim(Tiny(n_out), "my_model", head, size=(8, 8), **kw)


def test_preprocessing_grey_scale_bgr_nhwc():
    seen = {}

    class Spy(nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x.flatten(1)[:, :3]

    img = torch.zeros(1, 3, 4, 4)
    img[:, 0] = 1.0  # pure red
    build_affect_victim(Spy(), "s", "expression", size=(4, 4), grey=True, scale=255.0,
                        mean=(127.5,), std=(127.5,))(img)
    assert torch.allclose(seen["x"], torch.full((1, 1, 4, 4), (0.299 * 255 - 127.5) / 127.5))
    build_affect_victim(Spy(), "s", "expression", size=(4, 4), bgr=True, layout="NHWC")(img)
    assert seen["x"].shape == (1, 4, 4, 3) and seen["x"][0, 0, 0].tolist() == [0.0, 0.0, 1.0]
    # the one input spec's order: flip to BGR first, then mean/std in the network's (BGR) order
    build_affect_victim(Spy(), "s", "expression", size=(4, 4), bgr=True, mean=(0.25, 0.5, 0.75))(img)
    assert seen["x"][0, :, 0, 0].tolist() == [-0.25, -0.5, 0.25]


def test_input_spec_or_card_table():
    from robustbench_face.preprocess import InputSpec

    spec = InputSpec(size=(8, 8), channels="grey", mean=(0.5,), std=(0.5,))
    v = build_affect_victim(Tiny(3, ch=1), "g", "expression", input=spec)
    assert v.input_spec == spec and v(torch.rand(2, 3, 20, 20)).shape == (2, 3)
    w = build_affect_victim(Tiny(3, ch=1), "g", "expression", input=spec.to_card())
    assert w.input_spec == spec
    with pytest.raises(InputError, match=r"\[input\].*channels must be one of"):
        build_affect_victim(Tiny(3), "g", "expression", input={"size": [8, 8], "channels": "gray"})


def test_probability_outputs_become_logits():
    probs = nn.Sequential(Tiny(4), nn.Softmax(dim=1))
    v = build_affect_victim(probs, "p", "expression", size=(8, 8), activation="log")
    x = torch.rand(3, 3, 8, 8)
    assert torch.allclose(v(x).softmax(1), probs(x * 1.0), atol=1e-6)
    assert v.classes == ("0", "1", "2", "3")  # unnamed classes are numbered


def test_onnx_file_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = _onnx_model(tmp_path / "tiny.onnx", 8)
    v = rbf.create_victim("affect_model", path=str(path), head="expression", size=(8, 8),
                          mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert v.name == "affect_model.tiny" and len(v.classes) == 8
    x = torch.rand(2, 3, 8, 8)
    want = ort.InferenceSession(str(path)).run(None, {"input": v.preprocess(x).numpy()})[0]
    assert np.abs(v(x).detach().numpy() - want).max() < 1e-5


def test_card_arch_uses_card_preprocessing(tmp_path, monkeypatch):
    weights = tmp_path / "home" / "weights"
    weights.mkdir(parents=True)
    monkeypatch.setenv("RBF_HOME", str(tmp_path / "home"))
    _onnx_model(weights / "enet_b0_8_best_afew.onnx", 8, size=224)
    _onnx_model(weights / "enet_b0_8_va_mtl.onnx", 10, size=224)
    # upstream publishes no sha256: a user's file in the asset home is used as it is
    expr = rbf.create_victim("hsemotion")
    assert expr.name == "hsemotion.enet_b0_8_best_afew" and expr.classes[1] == "Contempt"
    assert expr.input_size == (224, 224)
    va = rbf.create_victim("hsemotion_va")
    assert va.output == "regression" and va(torch.rand(1, 3, 100, 100)).shape == (1, 2)
    mtl = rbf.create_victim("hsemotion.enet_b0_8_va_mtl")
    assert mtl(torch.rand(1, 3, 64, 64)).shape == (1, 8)
