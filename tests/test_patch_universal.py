"""patch_universal: one patch for all, checkpoint round trip, a tiny training run."""

import json

import pytest
import torch

from conftest import needs_mars, needs_osnet
from robustbench_face import create_attack
from robustbench_face.attacks._regions import parse_region
from robustbench_face.attacks._learned.io import load_patch, save_patch
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
    adv = attack(Dummy(), x)
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


def test_untargeted_only(ckpt):
    attack = create_attack("patch_universal", checkpoint=str(ckpt[0]))
    with pytest.raises(InputError, match="untargeted only"):
        attack(Dummy(), torch.rand(2, 3, 256, 128), torch.rand(2, 8))
    with pytest.raises(InputError, match="untargeted only"):
        attack.validate("osnet", "embedding", "impersonation", True)
    with pytest.raises(InputError, match="embedding"):
        attack.validate("fer_xception", "logits", "untargeted", False)
    attack.validate("osnet", "embedding", "evasion", False)


def test_describe_records_the_checkpoint_and_region(ckpt):
    from robustbench_face.assets import sha256sum
    from robustbench_face.cards import load_card

    d = create_attack("patch_universal").describe()
    entry = load_card("attacks", "patch_universal")["checkpoint"]
    assert d["checkpoint"] == "checkpoints/" + entry["file"] and d["checkpoint_sha256"] == entry["sha256"]
    assert d["region"] == [0.25, 0.25, 0.25, 0.5] and d["region_area"] == 0.125 and d["seed"] == 0
    path = ckpt[0]
    d = create_attack("patch_universal", checkpoint=str(path), seed=2).describe()
    assert d["checkpoint"] == path.name and d["checkpoint_sha256"] == sha256sum(path) and d["seed"] == 2


@pytest.mark.parametrize("attack", ["cond_patch", "patch_universal"])
def test_card_checkpoints_live_apart_with_their_sha256(attack):
    from robustbench_face.assets import sha256sum
    from robustbench_face.cards import REPO_ROOT, load_card

    card = load_card("attacks", attack)
    for entry in [card["checkpoint"], *card.get("checkpoints", {}).values()]:
        path = REPO_ROOT / "checkpoints" / entry["file"]
        assert sha256sum(path) == entry["sha256"], entry["file"]
        assert path.with_suffix(".json").is_file()


def test_is_trainable():
    assert callable(getattr(ATTACKS.get("patch_universal").factory, "train", None))
    assert callable(getattr(ATTACKS.get("cond_patch").factory, "train", None))


def test_shipped_checkpoint():
    from robustbench_face.assets import sha256sum
    from robustbench_face.attacks.patch_universal import default_checkpoint
    from robustbench_face.cards import load_card

    path = default_checkpoint()
    assert path.parent.name == "checkpoints"
    assert sha256sum(path) == load_card("attacks", "patch_universal")["checkpoint"]["sha256"]
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


@needs_osnet
@needs_mars
def test_resumed_training_equals_an_uninterrupted_run(tmp_path):
    from safetensors.torch import load_file

    from robustbench_face.attacks.patch_universal import train

    kw = dict(limit=8, batch_size=4, log_every=1, save_every=2)
    straight = train(["osnet_x0_25.market1501"], steps=4, out=str(tmp_path / "a.safetensors"), **kw)
    train(["osnet_x0_25.market1501"], steps=2, out=str(tmp_path / "b.safetensors"), **kw)
    resumed = train(["osnet_x0_25.market1501"], steps=4, out=str(tmp_path / "b.safetensors"), resume=True, **kw)
    assert torch.equal(load_file(str(straight))["patch"], load_file(str(resumed))["patch"])
    hist = [json.loads(p.with_suffix(".json").read_text())["history"] for p in (straight, resumed)]
    assert [h["step"] for h in hist[1]] == [1, 2, 3, 4]
    assert [h["cos_self"] for h in hist[0][:2]] == [h["cos_self"] for h in hist[1][:2]]
