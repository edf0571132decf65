"""LFW pairs parsing, the make_pairs rule, and the lfw / celebahq_ids / pubfig datasets (cards over
the lfw_pairs and identity_folders loaders)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from robustbench_face.datasets._base import ImageDataset, Sample
from robustbench_face.datasets.lfw_pairs import Pair, make_pairs, read_lfw_pairs
from robustbench_face.errors import DataError
from robustbench_face.metrics.verification import kfold_accuracy
from conftest import asset


def lfw(**options):
    import robustbench_face as rbf

    return rbf.load_dataset("lfw", **options)

PEOPLE = {"Alice_A": 3, "Bob_B": 2, "Carol_C": 1, "Dave_D": 2}
PAIRS = """2\t2
Alice_A\t1\t2
Alice_A\t1\t3
Alice_A\t1\tBob_B\t1
Carol_C\t1\tDave_D\t2
Bob_B\t1\t2
Dave_D\t1\t2
Alice_A\t2\tCarol_C\t1
Bob_B\t2\tDave_D\t1
"""


def _tree(root: Path, people: dict[str, int], pairs: str | None = PAIRS) -> Path:
    from PIL import Image

    for name, n in people.items():
        (root / name).mkdir(parents=True)
        for i in range(1, n + 1):
            Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(root / name / f"{name}_{i:04d}.jpg")
    if pairs is not None:
        (root / "pairs.txt").write_text(pairs)
    return root


@pytest.fixture
def lfw_root(tmp_path):
    return _tree(tmp_path / "lfw", PEOPLE)


def test_parse_pairs_file(lfw_root):
    pairs, skipped = read_lfw_pairs(lfw_root / "pairs.txt", lfw_root)
    assert skipped == 0 and len(pairs) == 8
    assert [p.fold for p in pairs] == [0] * 4 + [1] * 4
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert pairs[0] == Pair(lfw_root / "Alice_A/Alice_A_0001.jpg",
                            lfw_root / "Alice_A/Alice_A_0002.jpg", True, 0)
    assert pairs[3].b == lfw_root / "Dave_D/Dave_D_0002.jpg"


def test_single_count_header_is_one_fold(lfw_root):
    body = PAIRS.splitlines()[1:]
    (lfw_root / "dev.txt").write_text("2\n" + "\n".join(body[:4]) + "\n\n")  # blank line ok
    pairs, _ = read_lfw_pairs(lfw_root / "dev.txt", lfw_root)
    assert [p.fold for p in pairs] == [0] * 4 and sum(p.same for p in pairs) == 2


def test_missing_pairs_file(tmp_path):
    with pytest.raises(DataError, match="pairs file not found: .*nope.txt"):
        read_lfw_pairs(tmp_path / "nope.txt", tmp_path)


def test_pairs_naming_missing_images_error_or_counted_skip(lfw_root, caplog):
    text = PAIRS.replace("Alice_A\t1\t3", "Alice_A\t1\t4").replace("Dave_D\t1\t2", "Eve_E\t1\t2")
    (lfw_root / "pairs.txt").write_text(text)
    with pytest.raises(DataError, match=r"pairs.txt:3: image not found: .*Alice_A_0004\.jpg"):
        read_lfw_pairs(lfw_root / "pairs.txt", lfw_root)
    with caplog.at_level(logging.WARNING):
        pairs, skipped = read_lfw_pairs(lfw_root / "pairs.txt", lfw_root, skip_missing=True)
    assert skipped == 2 and len(pairs) == 6
    assert "skipped 2 of 8" in caplog.text
    assert all(p.a.is_file() and p.b.is_file() for p in pairs)


@pytest.mark.parametrize("line_no,bad,match", [
    (2, "Alice_A\t1", "expected 'name i j'"),
    (3, "Alice_A\tone\t3", "image number 'one' is not an integer"),
    (4, "Alice_A\t0\tBob_B\t1", "image number 0 must be >= 1"),
    (5, "Carol_C 1 Dave_D 2 extra", "expected 'name i j'"),
])
def test_malformed_line_names_file_and_line(lfw_root, line_no, bad, match):
    lines = PAIRS.splitlines()
    lines[line_no - 1] = bad
    (lfw_root / "pairs.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"pairs\.txt:{line_no}: {match}"):
        read_lfw_pairs(lfw_root / "pairs.txt", lfw_root)


@pytest.mark.parametrize("text,match", [
    ("ten 300\n", r"pairs\.txt:1: bad header"),
    ("", r"pairs\.txt:1: empty"),
    (PAIRS.replace("2\t2", "3\t2", 1), "header says 3 set"),
    ("\n".join(PAIRS.splitlines()[:-1]), "found 7"),
])
def test_bad_header_or_count(lfw_root, text, match):
    (lfw_root / "pairs.txt").write_text(text)
    with pytest.raises(DataError, match=match):
        read_lfw_pairs(lfw_root / "pairs.txt", lfw_root)


def test_lfw_dataset_attaches_pairs(lfw_root):
    ds = lfw(data_root=str(lfw_root))
    assert ds.name == "lfw" and ds.task == "face" and len(ds.samples) == 8
    assert ds.meta["identities"] == sorted(PEOPLE) and ds.meta["pairs_skipped"] == 0
    paths = {s.path for s in ds.samples}
    assert all(p.a in paths and p.b in paths for p in ds.meta["pairs"])
    (lfw_root / "pairs.txt").unlink()
    with pytest.raises(DataError, match="pairs file not found"):
        lfw(data_root=str(lfw_root))


def test_lfw_dataset_skip_missing(lfw_root):
    (lfw_root / "Bob_B" / "Bob_B_0002.jpg").unlink()
    with pytest.raises(DataError, match="Bob_B_0002.jpg"):
        lfw(data_root=str(lfw_root))
    ds = lfw(data_root=str(lfw_root), skip_missing=True)
    assert ds.meta["pairs_skipped"] == 2 and len(ds.meta["pairs"]) == 6


@pytest.mark.parametrize("name", ["celebahq_ids", "pubfig"])
def test_folder_layouts(tmp_path, name):
    import robustbench_face as rbf

    root = _tree(tmp_path / name, {"101": 2, "2040": 3} if name == "celebahq_ids" else PEOPLE, None)
    ds = rbf.load_dataset(name, data_root=str(root))
    assert ds.name == name and ds.task == "face"
    assert len(ds.samples) == sum(len(list(d.iterdir())) for d in root.iterdir())


def test_datasets_are_registered(lfw_root):
    import robustbench_face as rbf

    assert {"lfw", "lfw_pairs", "celebahq_ids", "pubfig"} <= set(rbf.list_datasets())
    assert len(rbf.load_dataset("lfw", data_root=str(lfw_root)).meta["pairs"]) == 8
    generic = rbf.load_dataset("lfw_pairs", data_root=str(lfw_root))
    assert generic.name == "lfw" and len(generic.meta["pairs"]) == 8  # named after its folder


def _synthetic(n_ids: int, seed: int = 0) -> tuple[ImageDataset, dict[Path, int]]:
    counts = np.random.default_rng(seed).integers(1, 7, n_ids)  # 1..6 images, some singletons
    samples = [Sample(Path(f"/x/{p}/{i}.jpg"), p, -1, "all") for p in range(n_ids) for i in range(counts[p])]
    samples.append(Sample(Path("/x/junk.jpg"), -1, -1, "all"))
    return ImageDataset("syn", Path("/x"), samples, "face"), {s.path: s.pid for s in samples}


def test_make_pairs_rule():
    ds, pid = _synthetic(37)
    pairs = make_pairs(ds, None, None, seed=3)
    folds_of: dict[int, set[int]] = {}
    for p in pairs:
        assert (pid[p.a] == pid[p.b]) == p.same and p.a != p.b
        for x in (p.a, p.b):
            folds_of.setdefault(pid[x], set()).add(p.fold)
    assert -1 not in folds_of  # junk never paired
    assert all(len(f) == 1 for f in folds_of.values())  # no identity in two folds
    counts = Counter((p.fold, p.same) for p in pairs)
    assert all(counts[f, True] == counts[f, False] for f in range(10))  # balanced per fold
    n_gen = sum(n * (n - 1) // 2 for n in Counter(s.pid for s in ds.samples if s.pid >= 0).values())
    assert counts.total() == 2 * n_gen
    assert len({(p.a, p.b) for p in pairs}) == len(pairs)  # no repeats
    assert [p.fold for p in pairs] == sorted(p.fold for p in pairs)  # fold by fold
    assert make_pairs(ds, None, None, seed=3) == pairs
    assert make_pairs(ds, None, None, seed=4) != pairs


def test_make_pairs_quotas_and_errors():
    ds, _ = _synthetic(40)
    pairs = make_pairs(ds, 103, 250, seed=0, folds=5)
    c = Counter((p.fold, p.same) for p in pairs)
    assert [c[f, True] for f in range(5)] == [21, 21, 21, 20, 20]
    assert [c[f, False] for f in range(5)] == [50] * 5
    with pytest.raises(DataError, match="cannot fill 10 identity-disjoint folds"):
        make_pairs(_synthetic(15)[0], None, None, seed=0)
    with pytest.raises(DataError, match="genuine pairs exist"):
        make_pairs(ds, 10_000, None, seed=0)
    with pytest.raises(DataError, match="impostor pairs exist"):
        make_pairs(ds, None, 100_000, seed=0)


def test_make_pairs_feeds_kfold_accuracy():
    ds, pid = _synthetic(30, seed=1)
    pairs = make_pairs(ds, None, None, seed=0)
    # a perfect scorer: same-identity pairs score 1, others 0
    s = np.array([1.0 if pid[p.a] == pid[p.b] else 0.0 for p in pairs])
    r = kfold_accuracy(s, [p.same for p in pairs], fold_ids=[p.fold for p in pairs])
    assert r.mean == 1.0 and len(r.accuracies) == 10


def test_make_pairs_on_orl():
    from robustbench_face.datasets.identity_folders import read_identity_folders

    pairs = make_pairs(read_identity_folders(asset("datasets", "orl_faces"), "orl"), None, None, seed=0)
    c = Counter((p.fold, p.same) for p in pairs)
    assert sum(p.same for p in pairs) == 1800 and len(pairs) == 3600  # 40 ids x C(10, 2) genuine
    assert set(c.values()) == {180}
