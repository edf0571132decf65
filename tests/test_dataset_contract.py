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


def _load(name: str) -> ImageDataset:
    if name not in _cache:
        try:
            _cache[name] = rbf.load_dataset(name, **_expected(dataset_info(name))[0])
        except AssetError as exc:  # the data is absent; anything else is a failure
            _cache[name] = exc
    ds = _cache[name]
    if isinstance(ds, AssetError):
        pytest.skip(f"{name}: {ds}")
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
def test_dataset_contract(name):
    ds = _load(name)
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
