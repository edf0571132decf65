"""Identity- and subject-disjoint splits: celeba_ids train / holdout by identity number, seeded
verification pairs inside one split, ckplus48 train / holdout by subject, and CK+ labels mapped
to FER2013 order with contempt excluded. Synthetic layouts check the rules anywhere; the real
sets (from RBF_HOME) check the documented sizes."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import robustbench_face as rbf
from robustbench_face.datasets.class_folders import group_of
from robustbench_face.errors import InputError
from robustbench_face.heads.logits import LogitsHead
from robustbench_face.tasks.face import build_pairs
from conftest import asset

FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CKPLUS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def _png(path: Path, value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 5), value, np.uint8)).save(path)


def _people(root: Path, names, per_person: int = 3) -> Path:
    for name in names:
        for i in range(per_person):
            _png(root / name / f"{name}_{i:06d}.jpg", 10 * i)
    return root


def _ckplus(root: Path, subjects) -> Path:
    # every subject shows two expressions, three frames each, like the real set's sequences
    for k, subject in enumerate(subjects):
        for seq, cls in enumerate((CKPLUS[k % 7], CKPLUS[(k + 3) % 7]), start=1):
            for frame in (10, 11, 12):
                _png(root / cls / f"{subject}_{seq:03d}_{frame:08d}.png", frame)
    return root


def _pair_people(ds, pairs) -> set[str]:
    pid = {s.path: s.pid for s in ds.samples}
    return {ds.meta["identities"][pid[p]] for pr in pairs for p in (pr.a, pr.b)}


# -- celeba_ids ---------------------------------------------------------------------------------
def test_celeba_rule_on_a_synthetic_tree(tmp_path):
    names = ["07201", "07300", "07429", "07431", "07499", "08000"]
    ds = rbf.load_dataset("celeba_ids", data_root=str(_people(tmp_path / "c", names)))
    split = {ds.meta["identities"][s.pid]: s.split for s in ds.samples}
    assert split == {"07201": "train", "07300": "train", "07429": "train",
                     "07431": "holdout", "07499": "holdout", "08000": "holdout"}


def test_pairs_stay_inside_a_split_and_are_seeded(tmp_path):
    names = [f"{7201 + i:05d}" for i in range(40)] + [f"{7431 + i:05d}" for i in range(24)]
    ds = rbf.load_dataset("celeba_ids", data_root=str(_people(tmp_path / "c", names)))
    pairs, rule = build_pairs(ds, seed=5, split="holdout")
    assert _pair_people(ds, pairs) <= {n for n in names if n >= "07431"} and "split=holdout" in rule
    assert len({p.fold for p in pairs}) == 10  # min(10, 24 // 2) identity-disjoint folds
    assert build_pairs(ds, seed=5, split="holdout")[0] == pairs
    assert build_pairs(ds, seed=6, split="holdout")[0] != pairs
    train, _ = build_pairs(ds, seed=5, split="train")
    assert not _pair_people(ds, train) & _pair_people(ds, pairs)


def test_celeba_real_split_sizes():
    asset("datasets", "celeba_ids")
    ds = rbf.load_dataset("celeba_ids")
    people = {sp: {ds.meta["identities"][s.pid] for s in ds.split(sp)} for sp in ("train", "holdout")}
    assert (len(people["train"]), len(people["holdout"])) == (200, 53)
    assert (len(ds.split("train")), len(ds.split("holdout"))) == (3122, 806)
    assert max(people["train"]) == "07429" < min(people["holdout"])
    pairs, _ = build_pairs(ds, seed=0, split="holdout")
    c = Counter(p.same for p in pairs)
    assert c[True] == c[False] == 3000 and _pair_people(ds, pairs) <= people["holdout"]


# -- ckplus48 -----------------------------------------------------------------------------------
def test_ckplus_rule_splits_by_subject_on_a_synthetic_tree(tmp_path):
    subjects = ["S005", "S006", "S010", "S012", "S130", "S999"]
    ds = rbf.load_dataset("ckplus48", data_root=str(_ckplus(tmp_path / "ck", subjects)))
    split = {}
    for s in ds.samples:
        split.setdefault(group_of(s.path), set()).add(s.split)
    assert split == {"S005": {"train"}, "S006": {"holdout"}, "S010": {"train"}, "S012": {"holdout"},
                     "S130": {"train"}, "S999": {"holdout"}}
    assert ds.meta["groups"] == subjects


def test_split_rule_refuses_a_split_folder_layout(tmp_path):
    _png(tmp_path / "d" / "train" / "happy" / "S1_1_1.png")
    with pytest.raises(InputError, match="split folders already"):
        rbf.load_dataset("class_folders", data_root=str(tmp_path / "d"), split_rule="*:x")


def test_ckplus_real_split_is_subject_disjoint():
    asset("datasets", "ckplus48")
    ds = rbf.load_dataset("ckplus48")
    subjects = {sp: {group_of(s.path) for s in ds.split(sp)} for sp in ("train", "holdout")}
    assert not subjects["train"] & subjects["holdout"]
    assert (len(subjects["train"]), len(subjects["holdout"])) == (83, 35)
    assert (len(ds.split("train")), len(ds.split("holdout"))) == (684, 297)
    assert all(int(s[1:]) % 3 == 0 for s in subjects["holdout"])


def test_ckplus_labels_map_to_fer2013_order_contempt_excluded(tmp_path):
    ds = rbf.load_dataset("ckplus48", data_root=str(_ckplus(tmp_path / "ck", [f"S{i:03d}" for i in range(1, 8)])))
    ds = replace(ds, samples=[s for s in ds.samples if s.path.name.endswith("_00000010.png")])
    idx = np.arange(len(ds.samples))
    labels = LogitsHead().references(ds, idx, SimpleNamespace(name="fer", classes=FER2013), 7)
    folder = [s.path.parent.name for s in ds.samples]
    want = {"anger": 0, "disgust": 1, "fear": 2, "happy": 3, "sadness": 4, "surprise": 5, "contempt": -1}
    assert labels.tolist() == [want[f] for f in folder]


def test_fer_xception_clean_on_ckplus_holdout_matches_its_card(fer_victim, tmp_path):
    """The card's measured_ckplus48 row is what `rbf run --attack none ... --split holdout` gives."""
    from robustbench_face import runner
    from robustbench_face.cards import load_card

    asset("datasets", "ckplus48")
    card = load_card("victims", "fer_xception")["variants"]["fer_xception.fer2013"]["measured_ckplus48"]
    (row,) = runner.run(runner.RunConfig(attack="none", victim="fer_xception", dataset="ckplus48",
                                         task_options={"split": "holdout"}, out=str(tmp_path / "r.csv")))
    assert row["reference"] == "labels" and row["n_queries"] == card["n_images"]
    assert abs(row["clean_acc"] - card["accuracy"]) < 1e-4
    assert abs(row["clean_macro_f1"] - card["macro_f1"]) < 1e-4
