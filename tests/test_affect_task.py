"""The affect task runner: fer_xception on a few ORL faces (clean predictions as reference),
labelled class folders, tiny valence-arousal / AU victims, and the flag and head errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

import robustbench_face as rbf
from robustbench_face import runner
from robustbench_face.errors import InputError
from robustbench_face.registry import VICTIMS
from robustbench_face.runner import RunConfig
from robustbench_face.heads.logits import parse_class
from robustbench_face.heads.multilabel import parse_au_pattern
from robustbench_face.heads.regression import parse_quadrant
from robustbench_face.metrics.affect import score_expression, score_valence_arousal
from robustbench_face.tasks.affect import affect_head
from robustbench_face.types import VictimBase
from robustbench_face.victims.affect import register_affect_victim


@pytest.fixture(scope="module")
def fer_ok(fer_victim):
    """The runner builds its own fer_xception; this only skips when its weights are missing."""


def cfg(tmp_path, target_class=None, **kw) -> RunConfig:
    base = dict(attack="pgd", victim="fer_xception", dataset="orl", limit=4, batch_size=4,
                attack_args={"steps": 2}, out=str(tmp_path / "results.csv"))
    opts = {"task_options": {"target_class": target_class}} if target_class is not None else {}
    return RunConfig(**{**base, **opts, **kw})


# -- tiny affect victims: registered once per session -----------------------------------------

class Tiny(nn.Module):
    """Mean colour + a fixed linear map: deterministic, differentiable, instant."""

    def __init__(self, n_out: int, squash=None):
        super().__init__()
        g = torch.Generator().manual_seed(n_out)
        self.lin = nn.Linear(3, n_out)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(n_out, 3, generator=g) * 8)
            self.lin.bias.copy_(torch.randn(n_out, generator=g) - 4 * self.lin.weight.sum(1) / 8)
        self.squash = squash

    def forward(self, x):
        y = self.lin(x.mean(dim=(2, 3)))
        return self.squash(y) if self.squash else y


class LyingVictim(VictimBase):
    """Declares 7 classes but gives 5 logits: the runner itself must catch it."""

    name, output, input_size, classes = "lying_logits", "logits", (8, 8), tuple("abcdefg")

    def forward(self, x):
        return x.mean(dim=(2, 3)).repeat(1, 2)[:, :5]


TEST_VICTIMS = ("tiny_va", "tiny_au", "tiny_wrong_head", "lying_logits")


@pytest.fixture(autouse=True, scope="module")
def _test_victims():
    """Register the tiny victims for this module only: the registry is global state."""
    _register()
    yield
    for name in TEST_VICTIMS:
        VICTIMS.unregister(name)


def _register():
    if "tiny_va" in VICTIMS.names():
        return
    register_affect_victim("tiny_va", lambda: Tiny(2, torch.tanh), "valence_arousal", size=(8, 8))
    register_affect_victim("tiny_au", lambda: Tiny(3), "action_units", size=(8, 8), au_names="AU1,AU4,AU12")
    register_affect_victim("tiny_wrong_head", lambda: Tiny(5), "expression", size=(8, 8), classes="a,b,c")
    VICTIMS.register("lying_logits", summary="test victim: declares 7 classes, returns 5")(
        lambda weights=None, device="cpu": LyingVictim().finalize(device))


# -- fer_xception on ORL ---------------------------------------------------------------------

def test_untargeted_rows(fer_ok, tmp_path):
    (row,) = runner.run(cfg(tmp_path))
    assert row["task"] == "affect" and row["mode"] == "untargeted" and row["head"] == "expression"
    assert row["reference"] == "clean_predictions" and row["n_queries"] == 4
    assert row["clean_acc"] == 1.0 and row["success_rate"] == row["flip_rate"]
    assert row["ci_low"] <= row["success_rate"] <= row["ci_high"]
    assert row["perturbation"] <= 8 / 255 + 1e-6 and row["queries_per_image"] > 1
    with open(tmp_path / "results.csv") as f:
        assert next(csv.DictReader(f))["reference"] == "clean_predictions"


@pytest.mark.parametrize("target", ["happy", "6"])
def test_targeted_rows(fer_ok, tmp_path, target):
    (row,) = runner.run(cfg(tmp_path, mode="targeted", target_class=target))
    assert row["mode"] == "targeted" and row["target_class"] in ("happy", "neutral")
    assert row["success_rate"] == row["targeted_success"] or np.isnan(row["targeted_success"])
    assert 0 <= row["adv_target_rate"] <= 1


def test_targeted_needs_target_class_before_any_model(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "build_victim", lambda *a: pytest.fail("built a victim first"))
    with pytest.raises(InputError, match="--mode targeted needs --target-class"):
        runner.run(cfg(tmp_path, mode="targeted"))
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize("kw, msg", [
    ({"mode": "targeted", "target_class": "joyful"}, r"'joyful' is not a class.*angry, disgust"),
    ({"mode": "targeted", "target_class": "9"}, r"index out of range 0..6"),
    ({"target_class": "happy"}, r"needs --mode targeted"),
    ({"mode": "dodging"}, r"--mode dodging does not apply.*untargeted, targeted"),
])
def test_bad_targets(fer_ok, tmp_path, kw, msg):
    with pytest.raises(InputError, match=msg):
        runner.run(cfg(tmp_path, **kw))
    assert not (tmp_path / "results.csv").exists()


# -- wrong number of outputs for the declared head -------------------------------------------

@pytest.mark.parametrize("victim, msg", [
    ("tiny_wrong_head", r"'tiny_wrong_head': declared head 'expression' expects 3 outputs.*gives 5"),
    ("lying_logits", r"'lying_logits': declared head 'expression' expects 7 outputs.*shape \(5,\)"),
])
def test_wrong_output_count(tmp_path, victim, msg):
    with pytest.raises(InputError, match=msg):
        runner.run(cfg(tmp_path, victim=victim, limit=2))


def test_embedding_victim_on_affect_data(tmp_path):
    with pytest.raises(InputError, match="need an affect head"):
        affect_head(type("V", (), {"name": "osnet", "output": "embedding"})())


# -- the other heads ----------------------------------------------------------------------

@pytest.mark.parametrize("victim, target, col", [
    ("tiny_va", None, "quadrant_flip_rate"), ("tiny_va", "q2", "quadrant_shift"),
    ("tiny_au", None, "au_flip_rate"), ("tiny_au", "AU12=1,AU4=0", "au_forced_rate"),
])
def test_regression_and_au_heads(tmp_path, victim, target, col):
    mode = "targeted" if target else "untargeted"
    (row,) = runner.run(cfg(tmp_path, victim=victim, mode=mode, target_class=target,
                            attack_args={"steps": 3, "eps": 0.3}))
    assert col in row and row["reference"] == "clean_predictions"
    assert 0 <= row["success_rate"] <= 1 or np.isnan(row["success_rate"])


@pytest.mark.parametrize("victim, target, msg", [
    ("tiny_va", "happy", "not a valence-arousal quadrant"),
    ("tiny_au", "AU99=1", "AU99 is not an output"),
    ("tiny_au", "AU12", "bad item"),
])
def test_bad_head_targets(tmp_path, victim, target, msg):
    with pytest.raises(InputError, match=msg):
        runner.run(cfg(tmp_path, victim=victim, mode="targeted", target_class=target))


def test_target_parsers():
    from robustbench_face.heads import get_head

    assert parse_class("Happiness", ("angry", "happy")) == 1  # ABAW / RAF-DB spelling
    assert parse_quadrant("low_valence_low_arousal") == (-1, -1)
    assert parse_au_pattern("au12=on,4=0", ("AU4", "AU12")) == {1: 1, 0: 0}
    goal = get_head("multilabel").target_tensor({1: 1}, torch.tensor([[0.9, 0.1], [0.2, 0.3]]))
    assert goal.tolist() == [[1.0, 1.0], [0.0, 1.0]]  # unnamed AUs keep their clean state


# -- labelled data: scorers against labels, invalid labels excluded -------------------------

def test_scorers_with_labels():
    clean = np.array([[3.0, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0]])
    adv = np.array([[0, 3.0, 0], [0, 3, 0], [3, 0, 0], [3, 0, 0]])
    cols, success = score_expression(clean, adv, np.array([0, 1, 1, -1]), None, ("a", "b", "c"))
    assert cols["clean_acc"] == pytest.approx(2 / 3) and cols["adv_acc"] == pytest.approx(1 / 3)
    assert success.tolist() == [True, False]  # only clean-correct, valid-labelled images
    va_c = np.array([[0.5, 0.5], [-0.5, 0.2], [0.1, -0.3]])
    va_a = np.array([[-0.1, 0.5], [-0.5, 0.2], [0.1, -0.3]])
    cols, success = score_valence_arousal(va_c, va_a, np.array([[0.4, 0.5], [-0.5, 0.1], [-5, -5]]),
                                          (-1, 1))
    assert success.tolist() == [True, False] and cols["quadrant_flip_rate"] == pytest.approx(1 / 3)
    assert cols["clean_ccc_mean"] > cols["adv_ccc_mean"]


def test_labelled_class_folders(fer_ok, tmp_path):
    from PIL import Image

    ds = rbf.load_dataset("orl")
    for i, cls in enumerate(["happy", "sad", "happy", "neutral"]):
        (tmp_path / "data" / cls).mkdir(parents=True, exist_ok=True)
        Image.open(ds.samples[i * 10].path).convert("RGB").save(tmp_path / "data" / cls / f"{i}.png")
    (row,) = runner.run(cfg(tmp_path, dataset="class_folders", data_root=str(tmp_path / "data")))
    assert row["reference"] == "labels" and row["n_queries"] == 4
    assert 0 <= row["clean_acc"] <= 1 and row["n_scored"] == round(row["clean_acc"] * 4)
