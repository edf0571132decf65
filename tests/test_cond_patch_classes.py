"""cond_patch with class targets on an affect victim (fer_xception on ORL): training lowers the
loss, the attack takes class indices, the runner scores it, and mismatches give clear errors."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

import robustbench_face as rbf
from robustbench_face.attacks._eot import EOTConfig
from robustbench_face.attacks._regions import parse_region
from robustbench_face.attacks._learned.losses import LossWeights
from robustbench_face.attacks.cond_patch import CondPatch, load_generator, train
from robustbench_face.attacks.cond_patch.classes import margin_loss, prepare_class_data
from robustbench_face.errors import DataError, InputError
from robustbench_face.runner import RunConfig, run

EYE_BAND = "0.34,0.10,0.16,0.80"
KW = dict(limit=12, batch_size=6, width=8, cond_dim=16, eot=False, lr=5e-3, base_lr=0.1,
          log_every=1, save_every=100, region=EYE_BAND)


@pytest.fixture(scope="module")
def fer(fer_victim):
    return fer_victim


@pytest.fixture(scope="module")
def trained(fer, tmp_path_factory):
    out = tmp_path_factory.mktemp("cp") / "fer.safetensors"
    p0 = train(["fer_xception"], dataset="orl", split="train", steps=0, out=str(out), **KW)
    m0 = load_generator(p0)
    p1 = train(["fer_xception"], dataset="orl", split="train", steps=12, out=str(out), resume=True, **KW)
    return m0, load_generator(p1), p1


def test_orl_split_is_identity_disjoint():
    ds = rbf.load_dataset("orl")
    train_ids = {s.pid for s in ds.split("train")}
    hold_ids = {s.pid for s in ds.split("holdout")}
    assert len(train_ids) == 30 and len(hold_ids) == 10 and not train_ids & hold_ids
    assert len(ds.samples) == 400


def test_class_training_lowers_loss(fer, trained):
    m0, m1, path = trained
    train_mod = importlib.import_module("robustbench_face.attacks.cond_patch.train")
    from robustbench_face.attacks.cond_patch.classes import step_classes

    assert m1.cfg.condition == "class" and m1.cfg.embed_dim == 7
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["dataset"] == "orl" and card["split"] == "train" and card["steps"] == 12
    region = parse_region(EYE_BAND)
    data = prepare_class_data([fer], "orl", "train", None, "cpu", region, limit=12)
    hp = {**train_mod.DEFAULTS, **KW}
    box = region.box(*data.images.shape[-2:])

    def loss(model):
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            return float(step_classes(model, [fer], data, hp, LossWeights(), EOTConfig(enabled=False),
                                      box, gen, "cpu")[0])

    assert loss(m1) < loss(m0)


def test_attack_takes_class_indices(fer, trained):
    _, _, path = trained
    ds = rbf.load_dataset("orl")
    x = ds.load(ds.split("holdout")[:3])
    attack = CondPatch(checkpoint=path)
    adv = attack(fer, x, torch.tensor([3, 6, 0]))
    assert adv.shape == x.shape and 0 <= adv.min() and adv.max() <= 1
    y0, x0, ph, pw = parse_region(EYE_BAND).box(*x.shape[-2:])
    outside = adv.clone()
    outside[..., y0:y0 + ph, x0:x0 + pw] = x[..., y0:y0 + ph, x0:x0 + pw]
    assert torch.equal(outside, x)  # only the eye band changed
    assert attack(fer, x).shape == x.shape  # untargeted: the null condition
    with pytest.raises(InputError, match="class indices in 0..6"):
        attack(fer, x, torch.tensor([3, 6, 9]))
    with pytest.raises(InputError, match="class indices"):
        attack(fer, x, torch.randn(3, 7))


def test_runner_scores_cond_patch_on_holdout(fer, trained, tmp_path):
    _, _, path = trained
    rows = run(RunConfig(attack="cond_patch", victim="fer_xception", dataset="orl", mode="targeted",
                         task_options={"split": "holdout", "target_class": "happy"}, limit=6, batch_size=6,
                         attack_args={"checkpoint": str(path)}, out=str(tmp_path / "r.csv")))
    r = rows[0]
    assert r["task"] == "affect" and r["n_queries"] == 6 and r["reference"] == "clean_predictions"
    assert 0 <= r["success_rate"] <= 1 and abs(r["perturbation"] - 0.16 * 0.80) < 0.02


def test_checkpoint_kind_must_match_victim(fer):
    ds = rbf.load_dataset("orl")
    x = ds.load(ds.split("holdout")[:1])
    from robustbench_face.attacks.cond_patch import default_checkpoint

    with pytest.raises(InputError, match="trained with embedding targets"):
        CondPatch(checkpoint=default_checkpoint("osnet_x0_25.market1501"))(fer, x, torch.tensor([3]))


def test_unknown_split_is_named(fer, tmp_path):
    with pytest.raises(DataError, match="no 'heldout' split"):
        run(RunConfig(attack="none", victim="fer_xception", dataset="orl", task_options={"split": "heldout"},
                      out=str(tmp_path / "r.csv")))


def test_split_is_refused_for_reid(tmp_path):
    pytest.importorskip("torchreid")
    from conftest import have_asset

    if not have_asset("weights", "osnet_x0_25_market1501.pth") or not have_asset("datasets", "mini_mars"):
        pytest.skip("osnet weights or mini-MARS not in RBF_HOME")
    with pytest.raises(InputError, match="--split does not apply to reid runs"):
        run(RunConfig(attack="none", victim="osnet_x0_25.market1501", dataset="mini_mars",
                      task_options={"split": "train"},
                      out=str(tmp_path / "r.csv")))


def test_margin_loss_zero_once_flipped():
    logits = torch.tensor([[0.0, 5.0, 1.0]])
    assert float(margin_loss(logits, torch.tensor([0]), 1.0)) == 0.0
    assert float(margin_loss(logits, torch.tensor([1]), 1.0)) == 5.0
