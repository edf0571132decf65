"""patch_universal: one patch for all, checkpoint round trip, a tiny training run."""

import json

import pytest
import torch

from conftest import needs_mars, needs_osnet
from robustbench_face import create_attack
from robustbench_face.attacks._regions import parse_region
from robustbench_face.attacks.patch_universal import load_patch, save_patch
from robustbench_face.errors import InputError
from robustbench_face.registry import ATTACKS


class Dummy(torch.nn.Module):
    name, output = "dummy", "embedding"

    def forward(self, x):
        return torch.nn.functional.normalize(x.flatten(1)[:, :8], dim=1)


@pytest.fixture
def ckpt(tmp_path):
    patch = torch.rand(3, 64, 64)
    path = tmp_path / "u.safetensors"
    save_patch(path, patch, parse_region("torso"), {"attack": "patch_universal"})
    return path, patch


@pytest.mark.parametrize("size", [(256, 128), (128, 64)])
def test_same_patch_for_everyone_in_the_box(ckpt, size):
    path, patch = ckpt
    attack = create_attack("patch_universal", checkpoint=str(path))
    assert attack.distance == "patch"
    x = torch.rand(3, 3, *size)
    adv = attack(Dummy(), x, torch.rand(3, 8))  # a target is ignored
    y0, x0, ph, pw = parse_region("torso").box(*size)
    inside = adv[..., y0:y0 + ph, x0:x0 + pw]
    assert torch.allclose(inside[0], inside[1]) and torch.allclose(inside[1], inside[2])
    mask = torch.zeros(size, dtype=torch.bool); mask[y0:y0 + ph, x0:x0 + pw] = True
    assert torch.equal(adv[..., ~mask], x[..., ~mask])
    if size == (256, 128):
        assert torch.allclose(inside[0], patch, atol=1e-3)  # float16 storage


def test_round_trip_and_errors(ckpt, tmp_path):
    path, patch = ckpt
    loaded, region = load_patch(path)
    assert region == parse_region("torso") and torch.allclose(loaded, patch, atol=1e-3)
    with pytest.raises(InputError, match="missing.safetensors"):
        load_patch(tmp_path / "missing.safetensors")


def test_is_trainable():
    assert callable(getattr(ATTACKS.get("patch_universal").factory, "train", None))
    assert callable(getattr(ATTACKS.get("cond_patch").factory, "train", None))


def test_shipped_checkpoint():
    from robustbench_face.attacks.patch_universal import default_checkpoint

    path = default_checkpoint()
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["split"] == "train" and card["surrogates"] == ["osnet_x0_25.market1501"]
    assert load_patch(path)[0].shape == (3, 64, 64)


@needs_osnet
@needs_mars
def test_tiny_training_lowers_loss(tmp_path):
    from robustbench_face.training import train

    path = train("patch_universal", victims=["osnet_x0_25.market1501"], steps=6,
                 out=str(tmp_path / "u.safetensors"), limit=8, batch_size=4, eot=False,
                 log_every=1, lr=0.1)
    hist = json.loads(path.with_suffix(".json").read_text())["history"]
    assert len(hist) == 6 and hist[-1]["cos_self"] < hist[0]["cos_self"]
