"""The face verification task: calibrated thresholds, dodging / impersonation rows with CIs,
and bad input (no face, missing pairs file, pairs naming missing images) that is counted or
fails clearly -- never a silent number.

A tiny LFW-layout set is built in tmp_path from real ORL faces: 4 people x 3 images and a
2-set pairs file (2 x (3 genuine + 3 impostor) pairs). With 6 impostors the FAR is 0.2 (one
false accept allowed); the victim is the real dlib ResNet (its aligner needs dlib-bin).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import asset, have_asset

from robustbench_face.datasets._base import ImageDataset, Sample
from robustbench_face.errors import DataError, InputError
from robustbench_face.runner import RunConfig, run
from robustbench_face.tasks.face import build_pairs, choose_attacked

pytest.importorskip("dlib", reason="the dlib_150 aligner needs dlib-bin")
needs_orl = pytest.mark.skipif(not have_asset("datasets", "orl_faces"), reason=f"datasets/orl_faces not in RBF_HOME={os.environ['RBF_HOME']}")
PEOPLE = {"Ann": 1, "Bob": 5, "Cid": 12, "Dee": 33}  # name -> ORL folder s<k>
PAIRS = """2 3
Ann 1 2
Bob 1 3
Cid 2 3
Ann 1 Bob 2
Cid 1 Dee 1
Bob 3 Dee 2
Dee 1 3
Ann 2 3
Cid 1 2
Ann 3 Cid 3
Bob 1 Cid 2
Dee 3 Ann 1
"""


@pytest.fixture
def lfw_root(tmp_path) -> Path:
    from PIL import Image

    root = tmp_path / "lfw"
    for name, k in PEOPLE.items():
        (root / name).mkdir(parents=True)
        for i in (1, 2, 3):
            Image.open(asset("datasets", "orl_faces", f"s{k}", f"{i}.pgm")).convert("RGB").save(
                root / name / f"{name}_{i:04d}.jpg", quality=95)
    (root / "pairs.txt").write_text(PAIRS)
    return root


def cfg(root: Path, tmp_path: Path, far: float = 0.2, **kw) -> RunConfig:
    base = dict(attack="pgd", victim="dlib_resnet", dataset="lfw", data_root=str(root),
                task_options={"far": far}, attack_args={"steps": 2, "eps": 8 / 255},
                out=str(tmp_path / "results.csv"), seed=0)
    return RunConfig(**{**base, **kw})


@needs_orl
@pytest.mark.parametrize("mode", ["dodging", "impersonation"])
def test_attack_rows_have_cis(lfw_root, tmp_path, mode):
    rows = run(cfg(lfw_root, tmp_path, mode=mode, limit=2))
    (r,) = rows
    assert r["task"] == "face" and r["mode"] == mode and r["far"] == 0.2
    assert r["n_pairs"] == 12 and r["n_genuine"] == 6 and r["n_fallback"] == 0
    assert r["eval_alignment"] == "dlib_150" and r["pairs_rule"] == "pairs_file"
    assert 0.0 <= r["clean_acc"] <= 1.0 and np.isfinite(r["threshold"])
    assert r["achieved_far"] <= 0.2
    assert r["n_queries"] == 2 and r["n_queries"] <= r["n_eligible"]
    assert 0.0 <= r["ci_low"] <= r["success_rate"] <= r["ci_high"] <= 1.0  # Wilson
    assert r["ci_high"] - r["ci_low"] > 0  # never a zero-width interval on 2 pairs
    assert 0.0 <= r["tar_ci_low"] <= r["tar_at_far"] <= r["tar_ci_high"] <= 1.0
    assert 0 < r["perturbation"] <= 8 / 255 + 1e-6 and r["perturbation_kind"] == "linf"
    assert r["queries_per_image"] > 0
    assert (tmp_path / "results.csv").read_text().count("\n") == 2  # header + 1 row


@needs_orl
def test_no_face_is_counted(lfw_root, tmp_path):
    from PIL import Image

    Image.new("RGB", (92, 112), (128, 128, 128)).save(lfw_root / "Dee" / "Dee_0003.jpg")
    (r,) = run(cfg(lfw_root, tmp_path, attack="none", attack_args={}))
    assert r["n_fallback"] == 1 and r["n_images"] == 12


def test_missing_pairs_file_is_a_clear_error(lfw_root, tmp_path):
    (lfw_root / "pairs.txt").unlink()
    with pytest.raises(DataError, match="pairs file not found"):
        run(cfg(lfw_root, tmp_path))
    assert not (tmp_path / "results.csv").exists()


def test_pairs_naming_missing_images_is_a_clear_error(lfw_root, tmp_path):
    (lfw_root / "pairs.txt").write_text(PAIRS.replace("Cid 1 Dee 1", "Cid 1 Eve 1"))
    with pytest.raises(DataError, match=r"pairs.txt:6: image not found: .*Eve_0001.jpg"):
        run(cfg(lfw_root, tmp_path))


def test_cli_missing_pairs_file(lfw_root, tmp_path):
    (lfw_root / "pairs.txt").unlink()
    p = subprocess.run([sys.executable, "-m", "robustbench_face.cli", "run", "--attack", "none",
                        "--victim", "dlib_resnet", "--dataset", "lfw", "--data-root", str(lfw_root),
                        "--far", "0.2", "--out", str(tmp_path / "r.csv")],
                       capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert p.returncode == 2, p.stderr
    assert "error: LFW pairs file not found" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "r.csv").exists()


@needs_orl
@pytest.mark.parametrize("attack", ["pgd", "none"])
def test_unresolvable_far_is_a_clear_error(lfw_root, tmp_path, attack):
    """Attacked and clean runs alike: a clean run used to write tar_at_far=nan silently."""
    with pytest.raises(InputError, match="FAR 0.001 cannot be resolved with 6 impostor"):
        run(cfg(lfw_root, tmp_path, far=1e-3, attack=attack, attack_args={} if attack == "none" else {"steps": 1}))
    assert not (tmp_path / "results.csv").exists()


def test_pairs_rule_without_pairs_file():
    samples = [Sample(Path(f"p{i}/{j}.png"), i) for i in range(20) for j in range(3)]
    ds = ImageDataset("toy", Path("."), samples, "face")
    pairs, rule = build_pairs(ds, seed=3)
    assert rule.startswith("make_pairs(seed=3") and sum(p.same for p in pairs) == 60
    assert sum(not p.same for p in pairs) == 60 and {p.fold for p in pairs} == set(range(10))


def test_pairs_of_one_split_use_only_its_people():
    samples = [Sample(Path(f"p{i}/{j}.png"), i, split="train" if i < 20 else "holdout")
               for i in range(26) for j in range(3)]
    ds = ImageDataset("toy", Path("."), samples, "face")
    pairs, rule = build_pairs(ds, seed=3, split="holdout")
    people = {p.a.parent.name for p in pairs} | {p.b.parent.name for p in pairs}
    assert people == {f"p{i}" for i in range(20, 26)} and "split=holdout" in rule
    assert {p.fold for p in pairs} == set(range(3))  # 6 people: 3 folds of 2
    with pytest.raises(DataError, match="nope"):
        build_pairs(ds, seed=3, split="nope")


def test_choose_attacked_is_seeded_and_limited():
    ok = np.arange(50) % 3 == 0
    a, b = choose_attacked(ok, 5, seed=1), choose_attacked(ok, 5, seed=1)
    assert a.tolist() == b.tolist() and len(a) == 5 and ok[a].all()
    assert len(choose_attacked(ok, None, seed=0)) == ok.sum()
