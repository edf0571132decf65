"""ArcFace family: a random iresnet exported to ONNX and loaded back through the ONNX route
matches the torch model; .pth loading; a missing weight file gives a useful AssetError; a bare
``arcface`` is the asset home's MobileFaceNet."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

import robustbench_face as rbf
from robustbench_face.errors import AssetError, UnknownNameError
from robustbench_face.factory import victim_info
from robustbench_face.victims._iresnet import iresnet
from robustbench_face.victims.arcface import arcface_from_iresnet, arcface_from_onnx, load_iresnet
from conftest import have_asset


def _random_iresnet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = iresnet("r18").eval()
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN is really tested
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
            elif isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.1, 0.3)
            elif isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight)
    return net


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = _random_iresnet()
    path = tmp_path_factory.mktemp("arcface") / "iresnet18.onnx"
    # the legacy exporter: the dynamo one needs onnxscript, which is not a dependency
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False,
                          input_names=["input.1"], output_names=["embedding"], opset_version=17,
                          dynamic_axes={"input.1": {0: "N"}, "embedding": {0: "N"}})
    return net, path


@pytest.fixture(scope="module")
def onnx_victim(exported):
    return arcface_from_onnx(exported[1], "arcface.random_r18_onnx")


def test_onnx_route_matches_torch(exported, onnx_victim):
    torch_victim = arcface_from_iresnet(exported[0], "arcface.random_r18")
    assert onnx_victim.alignment == "scrfd_112" and onnx_victim.input_size == (112, 112)
    x = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        raw_t = torch_victim.net(torch_victim.preprocess(x))
        raw_o = onnx_victim.net(onnx_victim.preprocess(x))
        emb_t, emb_o = torch_victim(x), onnx_victim(x)
    assert emb_o.shape == (3, 512)
    assert (raw_t - raw_o).abs().max() <= 1e-5 * raw_t.abs().max().clamp(min=1)
    assert (emb_t - emb_o).abs().max() < 1e-5
    assert torch.allclose(emb_o.norm(dim=1), torch.ones(3), atol=1e-5)


def test_onnx_route_differentiable_any_size(onnx_victim):
    x = torch.rand(2, 1, 92, 112, requires_grad=True)  # greyscale, ORL size
    onnx_victim(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_pth_checkpoint_loads(tmp_path):
    net = _random_iresnet(seed=2)
    sd = {f"module.{k}": v.half() for k, v in net.state_dict().items()}  # DDP + fp16 style
    torch.save(sd, tmp_path / "backbone.pth")
    loaded = load_iresnet(tmp_path / "backbone.pth", "r18")
    x = torch.rand(1, 3, 112, 112)
    a = arcface_from_iresnet(net.half().float())(x)
    b = arcface_from_iresnet(loaded)(x)
    assert (a - b).abs().max() < 1e-5


def test_missing_weights_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RBF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RBF_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AssetError) as err:
        rbf.create_victim("arcface.w600k_r50")
    msg = str(err.value)
    assert "w600k_r50.onnx" in msg
    assert "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43" in msg
    assert str(tmp_path / "home" / "weights") in msg
    assert "buffalo_l.zip" in msg and "non-commercial" in msg


def test_unknown_variant():
    with pytest.raises(UnknownNameError, match="w600k_r50"):
        rbf.create_victim("arcface.nope")


def test_bare_arcface_is_the_asset_homes_file():
    # the one ArcFace file the asset home carries; a fixed default, not "whatever is on disk"
    assert victim_info("arcface")["name"] == "arcface.mobilefacenet_ms1m"
    if not have_asset("weights", "arcface_mobilefacenet_ms1m.onnx"):
        pytest.skip(f"weights/arcface_mobilefacenet_ms1m.onnx not in the asset home (RBF_HOME={os.environ['RBF_HOME']})")
    victim = rbf.create_victim("arcface")
    assert victim.name == "arcface.mobilefacenet_ms1m" and victim(torch.rand(1, 3, 112, 112)).shape == (1, 128)
