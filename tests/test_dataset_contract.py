"""Dataset contract, parametrised over the registry: a new dataset (one card file) is tested
with no new test. Each is loaded (a generic loader on its card's ``[example]`` folder) and
checked against what its card declares; a dataset whose data is absent is skipped, with the
reason. A second group checks that cards and registered datasets match one to one."""

import pkgutil
import re
import warnings
from pathlib import Path

import pytest
import torch

import robustbench_face as rbf
import robustbench_face.datasets
from robustbench_face.assets import asset_home
from robustbench_face.cards import list_cards, load_card
from robustbench_face.datasets._base import ImageDataset
from robustbench_face.datasets._cards import TASKS, check_card
from robustbench_face.errors import AssetError
from robustbench_face.factory import dataset_info
from robustbench_face.registry import DATASETS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    DATASET_NAMES = rbf.list_datasets()
CARDS = list_cards("datasets")
_cache: dict[str, object] = {}


def _expected(info: dict) -> tuple[dict, list[str], list[str]]:
    """(load options, splits, meta) to check: a loader's example, else the card itself."""
    example = info.get("example")
    if not example:
        return {}, info["splits"], info["meta"]
    root = asset_home() / "datasets" / example["folder"]
    options = {"data_root": str(root), **example.get("options", {})}
    return options, example.get("splits", info["splits"]), example.get("meta", info["meta"])


def _image(path: Path, size=(24, 20)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size[1], size[0]), (200, 120, 60)).save(path)


def _group_names(card: dict) -> list[str]:
    """One group name (person, subject) per split the card declares, found by trying names made
    of the rule's own prefixes and numbers; two arbitrary names when the card has no rule."""
    from robustbench_face.datasets._splits import parse_split_rule

    rule = card.get("options", {}).get("split_rule", "")
    if not rule:
        return ["1001", "1002"]
    split_of = parse_split_rule(rule)
    width = max((len(d) for d in re.findall(r"[0-9]+", rule)), default=1)
    tried = [f"{p}{n:0{width}d}" for p in dict.fromkeys(re.findall(r"([^\d,:*\s.]*)[0-9*]", rule))
             for n in range(10 ** min(width, 5))] + ["other"]
    found: dict[str, str] = {}
    for name in tried:
        found.setdefault(split_of(name), name)
    return [found[sp] for sp in card["splits"]]


def _identity_folders(root: Path, card: dict) -> None:
    for person in _group_names(card):
        for i in (1, 2):
            _image(root / person / f"{person}_{i:04d}.jpg")


def _class_folders(root: Path, card: dict) -> None:
    for cls, subject in zip(("happy", "sadness"), _group_names(card)):
        _image(root / cls / f"{subject}_001_00000001.png", (48, 48))


def _lfw(root: Path, card: dict) -> None:
    for person in ("Ann", "Bob"):
        for i in (1, 2):
            _image(root / person / f"{person}_{i:04d}.jpg")
    (root / card.get("options", {}).get("pairs", "pairs.txt")).write_text("1 1\nAnn 1 2\nAnn 1 Bob 1\n")


def _market(root: Path, card: dict) -> None:
    for folder, pid in (("query", 1), ("bounding_box_test", 1), ("bounding_box_train", 2)):
        _image(root / folder / f"{pid:04d}_c1s1_000001_00.jpg", (128, 64))


def _fer2013(root: Path, card: dict) -> None:
    px = " ".join(["128"] * 48 * 48)
    rows = [f"{k},{px},{usage}" for k, usage in enumerate(("Training", "PublicTest", "PrivateTest"))]
    root.mkdir(parents=True)
    (root / card.get("options", {}).get("csv", "fer2013.csv")).write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")


def _abaw(root: Path, card: dict) -> None:
    for split in ("Train_Set", "Validation_Set"):
        ann = root / "annotations" / "EXPR_Set" / split / f"video_{split}.txt"
        ann.parent.mkdir(parents=True)
        ann.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n4\n")
        for i in (1, 2):
            _image(root / "cropped_aligned" / f"video_{split}" / f"{i:05d}.jpg", (112, 112))


# A loader whose real data is absent (not in the asset home) is tried on a synthetic layout of
# its own format instead of being skipped: its card's declarations are still checked.
SYNTHETIC = {"identity_folders": _identity_folders, "lfw_pairs": _lfw, "market1501": _market,
             "fer2013": _fer2013, "abaw": _abaw, "class_folders": _class_folders}


def _load(name: str, tmp_path: Path) -> ImageDataset:
    if name not in _cache:
        try:
            _cache[name] = rbf.load_dataset(name, **_expected(dataset_info(name))[0])
        except AssetError as exc:  # the data is absent; anything else is a failure
            _cache[name] = exc
    ds = _cache[name]
    if isinstance(ds, AssetError):
        info = dataset_info(name)
        build = SYNTHETIC.get(info["loader"])
        if build is None:
            pytest.skip(f"{name}: {ds}")
        build(tmp_path / "data", info)
        return rbf.load_dataset(name, data_root=str(tmp_path / "data"))
    return ds


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_info_without_data(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RBF_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("RBF_CACHE", str(tmp_path / "cache"))
    info = dataset_info(name)
    assert info is not None and info["name"] == name
    assert info["task"] in TASKS and isinstance(info["folder"], str) and info["folder"]
    assert isinstance(info["splits"], list) and isinstance(info["meta"], list)
    assert info["loader"] in DATASET_NAMES
    where = re.escape(str(tmp_path / "empty"))
    with pytest.raises(AssetError, match=rf"dataset '{name}' .*{where}.*RBF_HOME="):
        rbf.load_dataset(name)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_dataset_contract(name, tmp_path, monkeypatch):
    monkeypatch.setenv("RBF_CACHE", str(tmp_path / "cache"))  # fer2013 decodes its CSV there
    ds = _load(name, tmp_path)
    info = dataset_info(name)
    _, splits, meta = _expected(info)
    assert isinstance(ds, ImageDataset) and ds.samples
    assert ds.task == info["task"]
    if info["loader"] != name:  # a named set is called by its card (a loader by its folder)
        assert ds.name == name
    present = {s.split for s in ds.samples}
    if splits:
        assert present == set(splits), f"{name}: splits {sorted(present)}, card declares {splits}"
    assert set(meta) <= set(ds.meta), f"{name}: meta {sorted(ds.meta)} lacks some of {meta}"
    for s in ds.samples:
        assert isinstance(s.path, Path) and isinstance(s.split, str) and s.split
        assert all(type(v) is int for v in (s.pid, s.camid, s.tracklet)), s
    assert ds.image_size is None or (len(ds.image_size) == 2 and all(type(v) is int for v in ds.image_size))
    x = ds.load(ds.samples[:1])
    assert x.dtype == torch.float32 and x.shape[:2] == (1, 3) and 0 <= x.min() <= x.max() <= 1
    if ds.image_size:
        assert tuple(x.shape[-2:]) == tuple(ds.image_size)


@pytest.mark.parametrize("card", CARDS)
def test_card_schema_and_registered(card):
    assert check_card(card, load_card("datasets", card)) == []
    assert card in DATASET_NAMES, f"datasets/{card}.toml registered no dataset (a warning says why)"
    assert DATASETS.get(card).card == card


def test_every_dataset_has_a_card():
    builtin = [e for e in DATASETS.entries() if e.source == "builtin"]
    assert {e.name for e in builtin} == set(CARDS)
    assert all(e.card == e.name for e in builtin)
    modules = pkgutil.iter_modules(robustbench_face.datasets.__path__)
    loaders = {m.name for m in modules if not m.name.startswith("_")}
    assert loaders <= set(CARDS), "every loader module has its own card"
    for name in CARDS:
        loader = load_card("datasets", name)["loader"]
        assert loader in loaders and DATASETS.get(name).module == f"robustbench_face.datasets.{loader}"
