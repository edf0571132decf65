"""Affect dataset loaders (fer2013, class_folders, abaw) on small fixture files written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import robustbench_face as rbf
from robustbench_face.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RBF_CACHE", str(tmp_path / "cache"))


def _png(path, value=128, size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)


# -- fer2013 -----------------------------------------------------------------------------------

def _fer_csv(path, rows, header="emotion,pixels,Usage"):
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def _pixels(seed):
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, 48 * 48)))


def test_fer2013_decodes_and_splits(tmp_path):
    csv = _fer_csv(tmp_path / "fer2013.csv", [f"3,{_pixels(0)},Training", f"6,{_pixels(1)},PublicTest",
                                              f"0,{_pixels(2)},PrivateTest", f"5,{_pixels(3)},Training"])
    ds = rbf.load_dataset("fer2013", data_root=str(tmp_path))
    assert ds.task == "affect" and ds.meta["classes"][3] == "happy"
    assert [s.pid for s in ds.split("Training")] == [3, 5]
    assert len(ds.split("PublicTest")) == len(ds.split("PrivateTest")) == 1
    x = ds.load(ds.samples[:1])
    assert x.shape == (1, 3, 48, 48)
    want = np.array(_pixels(0).split(), dtype=np.float32).reshape(48, 48) / 255
    assert torch.allclose(x[0, 0], torch.from_numpy(want))
    again = rbf.load_dataset("fer2013", data_root=str(csv))  # the CSV path itself works too
    assert again.samples == ds.samples  # decoded once, found in the cache


def test_fer2013_spaced_header_and_unlabelled(tmp_path):
    _fer_csv(tmp_path / "icml.csv", [f"2, Training,{_pixels(0)}"], header="emotion, Usage, pixels")
    assert rbf.load_dataset("fer2013", data_root=str(tmp_path / "icml.csv")).samples[0].pid == 2
    _fer_csv(tmp_path / "test.csv", [_pixels(1)], header="pixels")
    s = rbf.load_dataset("fer2013", data_root=str(tmp_path / "test.csv")).samples[0]
    assert (s.pid, s.split) == (-1, "all")


@pytest.mark.parametrize("row, message", [
    ("9,{p},Training", "emotion 9"),
    ("x,{p},Training", "bad row"),
    ("1,1 2 3,Training", "3 pixels"),
    ("1,{p},Training,extra", "4 fields"),
])
def test_fer2013_bad_rows_name_file_and_line(tmp_path, row, message):
    csv = _fer_csv(tmp_path / "fer2013.csv", [f"3,{_pixels(0)},Training", row.format(p=_pixels(1))])
    with pytest.raises(DataError, match=rf"fer2013\.csv:3: .*{message}"):
        rbf.load_dataset("fer2013", data_root=str(csv))


def test_fer2013_empty(tmp_path):
    with pytest.raises(DataError, match="no data rows"):
        rbf.load_dataset("fer2013", data_root=str(_fer_csv(tmp_path / "e.csv", [])))


# -- class_folders -----------------------------------------------------------------------------

def test_class_folders_with_splits(tmp_path):
    for split in ("train", "test"):
        for c in ("1", "2", "10"):
            _png(tmp_path / "raf" / split / c / "a.jpg")
    _png(tmp_path / "raf" / "train" / "2" / "b.png")
    ds = rbf.load_dataset("class_folders", data_root=str(tmp_path / "raf"))
    assert ds.meta["classes"] == ["1", "2", "10"]  # natural order
    assert [s.pid for s in ds.split("train")] == [0, 1, 1, 2]
    assert len(ds.split("test")) == 3


def test_class_folders_flat_and_pinned_classes(tmp_path):
    for c in ("happy", "angry"):
        _png(tmp_path / "d" / c / "x.jpg")
    ds = rbf.load_dataset("class_folders", data_root=str(tmp_path / "d"), classes="neutral,happy,angry")
    assert {s.split for s in ds.samples} == {"all"}
    assert sorted(s.pid for s in ds.samples) == [1, 2]
    with pytest.raises(DataError, match=r"\['happy'\] not in the given classes"):
        rbf.load_dataset("class_folders", data_root=str(tmp_path / "d"), classes="angry")


def test_class_folders_empty(tmp_path):
    (tmp_path / "d" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="no images under"):
        rbf.load_dataset("class_folders", data_root=str(tmp_path / "d"))


# -- abaw --------------------------------------------------------------------------------------

def _abaw(root, set_name, split, video, text, frames=3):
    ann = root / "annotations" / set_name / split / f"{video}.txt"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(text)
    for i in range(1, frames + 1):
        _png(root / "cropped_aligned" / video / f"{i:05d}.jpg")


EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"


def test_abaw_expr(tmp_path):
    _abaw(tmp_path, "EXPR_Set", "Training_Set", "v1", EXPR_HEADER + "4\n-1\n7\n0\n", frames=3)  # frame 4 has no image
    _abaw(tmp_path, "EXPR_Set", "Validation_Set", "v2", EXPR_HEADER + "1\n", frames=1)
    ds = rbf.load_dataset("abaw", data_root=str(tmp_path), task="expr")
    assert [(s.path.name, s.pid, s.split) for s in ds.split("train")] == [("00001.jpg", 4, "train"),
                                                                         ("00003.jpg", 7, "train")]
    assert ds.split("val")[0].tracklet == 1 and ds.meta["videos"] == ["v1", "v2"]
    assert ds.meta["classes"][7] == "Other" and ds.meta["missing_frames"] == 1
    kept = rbf.load_dataset("abaw", data_root=str(tmp_path), task="expr", keep_invalid=True)
    assert [s.pid for s in kept.split("train")] == [4, -1, 7]


def test_abaw_va_and_au(tmp_path):
    _abaw(tmp_path, "VA_Estimation_Challenge", "Train_Set", "v1", "valence,arousal\n0.5,-0.25\n-5,-5\n-0.1,0.9\n")
    ds = rbf.load_dataset("abaw", data_root=str(tmp_path), task="va")
    assert torch.equal(ds.meta["va"], torch.tensor([[0.5, -0.25], [-0.1, 0.9]]))
    assert all(s.pid == -1 for s in ds.samples)
    _abaw(tmp_path, "AU_Set", "Train_Set", "v1", "AU1,AU2,AU12\n1,0,1\n-1,-1,-1\n0,0,1\n")
    ds = rbf.load_dataset("abaw", data_root=str(tmp_path), task="au")
    assert ds.meta["au_names"] == ["AU1", "AU2", "AU12"]
    assert ds.meta["au"].tolist() == [[1, 0, 1], [0, 0, 1]] and len(ds.samples) == 2


@pytest.mark.parametrize("set_name, text, message", [
    ("EXPR_Set", EXPR_HEADER + "1\n8\n", r"v1\.txt:3: bad label '8'"),
    ("EXPR_Set", EXPR_HEADER + "1\n\n2\n", r"v1\.txt:3: blank line"),
    ("VA_Set", "valence,arousal\n0.1,0.2\n1.5,0\n", r"v1\.txt:3: bad label"),
    ("VA_Set", "arousal,valence\n0.1,0.2\n", r"v1\.txt:1: VA header"),
    ("AU_Set", "AU1,AU2\n1,0\n1\n", r"v1\.txt:3: bad label '1': expected 2 values"),
])
def test_abaw_bad_lines(tmp_path, set_name, text, message):
    _abaw(tmp_path, set_name, "Train_Set", "v1", text)
    task = set_name.split("_")[0].lower()
    with pytest.raises(DataError, match=message):
        rbf.load_dataset("abaw", data_root=str(tmp_path), task=task)


def test_abaw_empty(tmp_path):
    _abaw(tmp_path, "EXPR_Set", "Train_Set", "v1", EXPR_HEADER + "-1\n-1\n")
    with pytest.raises(DataError, match="no labelled frames"):
        rbf.load_dataset("abaw", data_root=str(tmp_path), task="expr")
    with pytest.raises(DataError, match="no VA_Set"):
        rbf.load_dataset("abaw", data_root=str(tmp_path), task="va")
