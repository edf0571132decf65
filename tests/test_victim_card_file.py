"""A user's model declared by a card file, no code (``victims/from_card.py``).

The asset home's OSNet x0.25 MSMT17 is exported to ONNX here (its inner torchreid network, input =
the normalised 256x128 tensor), a card declares the file, its sha256 and the input spec, and the
card victim must score exactly as the built-in ``osnet_x0_25.msmt17``: the same embeddings, and
through ``rbf run`` the same clean mAP on mini_mars (0.698 in the asset README). A card that
lies about the file's sha256 is refused before the file is read.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

import robustbench_face as rbf
from robustbench_face.assets import sha256sum
from robustbench_face.errors import AssetError, ChecksumError, InputError
from robustbench_face.factory import victim_info

from conftest import REPO, have_asset

pytest.importorskip("onnx")
pytest.importorskip("onnx2torch")
pytestmark = [pytest.mark.skipif(not have_asset(*where.split("/")),
                                 reason=f"needs $RBF_HOME/{where} (RBF_HOME={os.environ.get('RBF_HOME')})")
              for where in ("weights/osnet_x0_25_msmt17.pth", "datasets/mini_mars")]


def write_card(path, **table) -> None:
    """A flat TOML card (scalars and one [input] table) as a user would write it."""
    spec = table.pop("input", None)
    lines = [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    if spec is not None:
        lines += ["", "[input]"] + [f"{k} = {json.dumps(v)}" for k, v in spec.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def builtin():
    return rbf.create_victim("osnet_x0_25.msmt17")


@pytest.fixture(scope="module")
def card(builtin, tmp_path_factory):
    """(card path, its table) for the exported network, in a folder of its own."""
    folder = tmp_path_factory.mktemp("user_model")
    onnx_path = folder / "osnet_x0_25_msmt17.onnx"
    with warnings.catch_warnings():  # the legacy exporter: the dynamo one needs onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(builtin.net, (torch.zeros(1, 3, 256, 128),), str(onnx_path), dynamo=False,
                          input_names=["input"], output_names=["feature"], opset_version=17,
                          dynamic_axes={"input": {0: "N"}, "feature": {0: "N"}})
    table = {"name": "my_osnet", "file": onnx_path.name, "sha256": sha256sum(onnx_path),
             "format": "onnx", "head": "embedding", "task": "reid", "alignment": "none",
             "input": builtin.input_spec.to_card()}
    path = folder / "my_osnet.toml"
    write_card(path, **table)
    return path, table


def test_card_victim_equals_builtin(builtin, card):
    ds = rbf.load_dataset("mini_mars")
    x = ds.load(ds.split("query")[::4] + ds.split("gallery")[::16])
    victim = rbf.create_victim(str(card[0]))
    assert (victim.name, victim.output, victim.task, victim.alignment) == ("my_osnet", "embedding", "reid", None)
    assert victim.input_spec == builtin.input_spec
    with torch.no_grad():
        diff = (victim(x) - builtin(x)).abs().max().item()
    assert diff < 1e-5, diff
    for size in ((128, 64), (384, 192)):  # the one spec also resizes the same way
        y = torch.nn.functional.interpolate(x[:4], size=size, mode="bilinear")
        with torch.no_grad():
            assert (victim(y) - builtin(y)).abs().max() < 1e-5


def test_info_reads_the_card_without_the_model(card, tmp_path):
    info = victim_info(str(card[0]))
    assert info == {"name": "my_osnet", "head": "embedding", "task": "reid", "alignment": None,
                    "input_size": [256, 128]}
    moved = tmp_path / "card.toml"
    write_card(moved, **{**card[1], "file": "nowhere.onnx"})
    assert victim_info(str(moved))["name"] == "my_osnet"  # no model file needed to describe it


def _clean_map(victim: str, out) -> float:
    cmd = [sys.executable, "-m", "robustbench_face.cli", "run", "--attack", "none", "--victim", victim,
           "--dataset", "mini_mars", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r.get("eval_victim") or r["eval_victim"] == r["victim"]]
    return float(rows[-1]["clean_map"])


def test_rbf_run_gives_the_builtin_clean_map(card, tmp_path):
    ours = _clean_map(str(card[0]), tmp_path / "card.csv")
    ref = _clean_map("osnet_x0_25.msmt17", tmp_path / "builtin.csv")
    assert abs(ours - ref) < 1e-4, (ours, ref)
    assert abs(ref - 0.698) < 2e-3


def test_wrong_sha256_is_refused(card, tmp_path):
    bad = tmp_path / "bad.toml"
    write_card(bad, **{**card[1], "file": str(card[0].parent / card[1]["file"]), "sha256": "0" * 64})
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*osnet_x0_25_msmt17\.onnx.*not used"):
        rbf.create_victim(str(bad))


def test_missing_sha256_names_the_files_sha256(card, tmp_path):
    table = {k: v for k, v in card[1].items() if k != "sha256"}
    bad = tmp_path / "nosha.toml"
    write_card(bad, **{**table, "file": str(card[0].parent / card[1]["file"])})
    with pytest.raises(InputError, match=f"sha256 is required.*{card[1]['sha256']}"):
        rbf.create_victim(str(bad))


@pytest.mark.parametrize("change, error, match", [
    ({"input": {"size": [256, 128], "channels": "gray"}}, InputError, r"\[input\].*channels must be one of RGB, BGR, grey"),
    ({"input": {"channels": "RGB"}}, InputError, r"size = \[H, W\] is required"),
    ({"head": "features"}, InputError, "unknown head 'features'"),
    ({"task": None}, InputError, "task is required"),
    ({"output": "feature"}, InputError, "unknown key.*output.*output_name"),
    ({"file": "missing.onnx"}, AssetError, "missing.onnx not found"),
])
def test_bad_cards_say_what_is_wrong(card, tmp_path, change, error, match):
    table = {k: v for k, v in {**card[1], **change}.items() if v is not None}
    if table["file"] != "missing.onnx":
        table["file"] = str(card[0].parent / table["file"])
    bad = tmp_path / "bad.toml"
    write_card(bad, **table)
    with pytest.raises(error, match=match):
        rbf.create_victim(str(bad))
