"""Dataset loaders behind the cards: unchanged samples for published sets, the identity split
rule, every PIL format, card options as defaults, a new dataset as one card file, and the
missing-data message."""

import hashlib
import warnings

import numpy as np
import pytest
from PIL import Image

import robustbench_face as rbf
from robustbench_face import cards
from robustbench_face.datasets import manifest
from robustbench_face.datasets._base import image_suffixes
from robustbench_face.datasets._cards import register_loader
from robustbench_face.datasets.identity_folders import parse_split_rule
from robustbench_face.errors import AssetError, DataError, InputError
from robustbench_face.registry import Registry
from conftest import asset, have_asset

# sha256 of "<path relative to the root>\t<pid>\t<camid>\t<split>\t<tracklet>" lines, taken from
# the loaders before datasets became cards. Published numbers depend on exactly these samples
# in exactly this order: a change here must be deliberate.
FINGERPRINTS = {
    ("mini_mars", "mini_mars"): (2341, "d5cbddf45c27c9ee4930dd1aaca774643af7363dc49a73f578f9d9197acf1a73"),
    ("orl", "orl_faces"): (400, "e6192043db1399b2c8e6cf35c6ace86c93772e5da57240b57c82f18aae898719"),
    ("mini_market1501", "mini_market1501"): (96, "de4b431ad2b9789a40514fb89c8594441971cba96c127c717cea640696bb4a3d"),
    ("cuhk01", "cuhk01"): (3884, "fe8d90ccf3e204b718becba2243e54475cce2806bb4548940f275b121852c89d"),
    ("cuhk03_train", "cuhk03_train"): (4446, "bdf5b6cca84048a9cbe2c33537134f9a0da5d19cd42b1e9c398840da86b6fc23"),
    # celeba_ids and ckplus48 gained their train / holdout split rules (issue 14): only the split
    # column changed, see test_split_rules_changed_only_the_split
    ("celeba_ids", "celeba_ids"): (3928, "6668bc36c247a0cab4450ad369037423ed8010933401db98f7ecfa337e8835f1"),
    ("ckplus48", "ckplus48"): (981, "2b204391a721fffd66d0cebf66aa79ec5b53a8ecc6345e358cc743fcaf2f398b"),
}
# the same two before their split rules (every image "all")
UNSPLIT = {"celeba_ids": (3928, "b2b9a37d73156666152f451d86e8b594d41e787af99cd69026a1b49bd5747a6a"),
           "ckplus48": (981, "fd3a4c17bec93e65ab32ff9b79cdcfe0ab69be9113df7ec518e590abe83d8197")}


def _fingerprint(ds) -> tuple[int, str]:
    lines = [f"{s.path.relative_to(ds.root).as_posix()}\t{s.pid}\t{s.camid}\t{s.split}\t{s.tracklet}"
             for s in ds.samples]
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.mark.parametrize("name, folder", sorted(FINGERPRINTS))
def test_samples_unchanged(name, folder):
    if not asset("datasets", folder).is_dir():
        pytest.skip(f"{folder} not in RBF_HOME")
    assert _fingerprint(rbf.load_dataset(name)) == FINGERPRINTS[name, folder]


@pytest.mark.parametrize("name", sorted(UNSPLIT))
def test_split_rules_changed_only_the_split(name):
    asset("datasets", name)
    assert _fingerprint(rbf.load_dataset(name, split_rule="*:all")) == UNSPLIT[name]


@pytest.mark.skipif(not have_asset("datasets", "orl_faces"), reason="datasets/orl_faces not in RBF_HOME")
def test_orl_split_rule_and_options_override_the_card():
    ds = rbf.load_dataset("orl")
    assert (len(ds.split("train")), len(ds.split("holdout"))) == (300, 100)
    assert {ds.meta["identities"][s.pid] for s in ds.split("holdout")} == {f"s{i}" for i in range(31, 41)}
    assert {s.split for s in rbf.load_dataset("orl", split_rule="*:all").samples} == {"all"}
    assert rbf.load_dataset("cuhk01", image_size="128,64").image_size == (128, 64)
    with pytest.raises(InputError, match=r"unknown option 'csv'; accepted: data_root .*split_rule"):
        rbf.load_dataset("orl", csv="x.csv")


def test_split_rule_grammar():
    rule = parse_split_rule("id001..id010:train, id11..20:val, *:test")
    assert [rule(f) for f in ("id1", "id010", "id011", "id20", "id21", "x")] == [
        "train", "train", "val", "val", "test", "test"]
    strict = parse_split_rule("1..5:a")
    assert strict("3") == "a"
    with pytest.raises(DataError, match="'6' matches no item"):
        strict("6")
    every_third = parse_split_rule("S*%3=0:holdout, *:train")
    assert [every_third(f) for f in ("S005", "S006", "S010", "S999", "x")] == [
        "train", "holdout", "train", "holdout", "train"]
    for bad in ("s1-s30:train", "train", "s30..s1:train", "s1..t30:x", "", "S*%3=3:x", "S*%0=0:x"):
        with pytest.raises(InputError, match="split rule"):
            parse_split_rule(bad)


def _img(path, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 5), 90, np.uint8)).save(path, format=fmt)


def test_every_pil_format_is_an_image(tmp_path):
    assert {".tif", ".tiff", ".pgm", ".jpg", ".png", ".bmp", ".webp", ".gif"} <= image_suffixes()
    assert not {".h5", ".mpg", ".txt", ".csv"} & image_suffixes()
    for person, name in (("s1", "1.tif"), ("s1", "2.TIFF"), ("s2", "1.pgm"), ("s2", "2.gif")):
        _img(tmp_path / "ids" / person / name)
    (tmp_path / "ids" / "s2" / "notes.txt").write_text("not an image")
    ds = rbf.load_dataset("identity_folders", data_root=str(tmp_path / "ids"))
    assert [(s.path.name, s.pid) for s in ds.samples] == [
        ("1.tif", 0), ("2.TIFF", 0), ("1.pgm", 1), ("2.gif", 1)]
    assert ds.load(ds.samples).shape == (4, 3, 6, 5)
    _img(tmp_path / "cls" / "happy" / "a.tif")
    assert len(rbf.load_dataset("class_folders", data_root=str(tmp_path / "cls")).samples) == 1


def test_missing_dataset_names_card_place_and_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RBF_HOME", str(tmp_path / "home"))
    with pytest.raises(AssetError) as err:
        rbf.load_dataset("orl")
    msg = str(err.value)
    for part in ("dataset 'orl'", "AT&T / ORL faces", str(tmp_path / "home" / "datasets" / "orl_faces"),
                 f"RBF_HOME={tmp_path / 'home'}", "att_faces.zip"):
        assert part in msg
    with pytest.raises(AssetError, match=r"'cuhk01' .*access on request at .*looked in .*nowhere"):
        rbf.load_dataset("cuhk01", data_root=str(tmp_path / "nowhere"))


def test_a_new_dataset_is_one_card(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    rows = "path,split,pid,camid\na.png,query,1,1\nb.png,gallery,1,2\n"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "index.csv").write_text(rows)
    (tmp_path / "datasets" / "my_set.toml").write_text(f'''
summary = "two frames"
paper = "nobody, 2025"
licence = "CC0"
loader = "manifest"
folder = "{tmp_path / 'data'}"
task = "reid"
splits = ["query", "gallery"]
meta = []
request = "https://example.org"
[options]
csv = "index.csv"
image_size = [32, 16]
''')
    builtin = cards.card_dirs
    monkeypatch.setattr(cards, "card_dirs", lambda kind: [tmp_path / kind, *builtin(kind)])
    reg = Registry("dataset", "robustbench_face.datasets")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a well-formed card registers without a word
        register_loader("manifest", manifest.load, registry=reg)
    assert {"manifest", "mini_mars", "my_set"} <= set(reg._entries)
    entry = reg._entries["my_set"]
    assert entry.card == "my_set" and entry.summary == "two frames"
    assert entry.factory.info()["task"] == "reid" and entry.module == "robustbench_face.datasets.manifest"
    ds = entry.factory()
    assert ds.name == "my_set" and ds.image_size == (32, 16) and [s.split for s in ds.samples] == ["query", "gallery"]


def test_a_broken_card_warns_and_is_skipped(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "bad.toml").write_text('loader = "manifest"\nsummary = "x"\n')
    (tmp_path / "datasets" / "typo.toml").write_text(
        'loader = "manifest"\nsummary = "x"\npaper = "p"\nlicence = "l"\nfolder = "f"\ntask = "reid"\n'
        'splits = ["train"]\nmeta = []\nrequest = "r"\n[options]\ncvs = "a.csv"\n')
    monkeypatch.setattr(cards, "card_dirs", lambda kind: [tmp_path / kind])
    reg = Registry("dataset", "robustbench_face.datasets")
    with pytest.warns(UserWarning) as rec:
        register_loader("manifest", manifest.load, registry=reg)
    text = " ".join(str(w.message) for w in rec)
    assert "bad.toml: paper must be a str" in text and "unknown option(s) cvs" in text
    assert "no card datasets/manifest.toml" in text and not reg._entries
