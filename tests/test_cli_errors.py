"""Bad input: one clear line on stderr, non-zero exit, and the results CSV left as it was."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import asset, needs_mars, needs_osnet

ROWS = "task,adv_map\nreid,0.123\n"


def rbf(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "robustbench_face.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=600)


@pytest.fixture
def results(tmp_path):
    p = tmp_path / "results.csv"
    p.write_text(ROWS)
    return p


def assert_clean_failure(proc, results, *needles):
    assert proc.returncode != 0, proc.stdout
    lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert results.read_text() == ROWS


def test_unknown_victim(results):
    p = rbf("run", "--attack", "pgd", "--victim", "nope", "--out", str(results))
    assert_clean_failure(p, results, "unknown victim 'nope'", "osnet_x0_25")


def test_impossible_flag_combination(results):
    p = rbf("run", "--attack", "none", "--victim", "osnet", "--mode", "impersonation", "--out", str(results))
    assert_clean_failure(p, results, "--attack none", "--mode impersonation")
    p = rbf("run", "--attack", "pgd", "--victim", "osnet", "--mode", "dodging", "--out", str(results))
    assert_clean_failure(p, results, "--mode dodging", "evasion")


def test_non_finite_attack_argument(results):
    p = rbf("run", "--attack", "pgd", "--victim", "osnet", "-a", "eps=nan", "--out", str(results))
    assert_clean_failure(p, results, "eps must be a finite number")


@pytest.mark.parametrize("arg, needles", [
    ("epss=4/255", ["attack pgd: unknown option 'epss'", "accepted: eps (float or None)", "steps (int)",
                    "norm ('linf' or 'l2')", "seed (int)"]),
    ("eps=abc", ["attack pgd: option eps='abc' is not a number", "accepted: eps (float or None)"]),
    ("steps=2.5", ["attack pgd: option steps=2.5 is not an integer"]),
])
def test_bad_attack_option_is_one_line(results, arg, needles):
    p = rbf("run", "--attack", "pgd", "--victim", "osnet", "-a", arg, "--out", str(results))
    assert p.returncode == 2
    assert_clean_failure(p, results, *needles)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_non_finite_images_rejected():
    import torch

    from robustbench_face.attacks._objective import objective
    from robustbench_face.errors import InputError

    x = torch.rand(1, 3, 8, 8)
    x[0, 0, 0, 0] = float("inf")
    with pytest.raises(InputError, match="non-finite"):
        objective(lambda t: t.flatten(1), x)


def test_missing_asset(results, tmp_path):
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    shutil.copytree(asset("datasets", "mini_market1501"), home / "datasets" / "mini_market1501")
    env = {"RBF_HOME": str(home), "RBF_CACHE": str(tmp_path / "cache")}
    p = rbf("run", "--attack", "none", "--victim", "osnet_x0_25.market1501", "--dataset", "mini_market1501",
            "--out", str(results), env=env)
    assert_clean_failure(p, results, "missing asset osnet_x0_25_market1501.pth",
                         "c0ff09177a21417a19bc73bbf5af4eb5d2b097c2074ed35e67819ee6cd93612c", str(home / "weights"))


def test_checksum_mismatch(results, tmp_path):
    home = tmp_path / "home"
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "osnet_x0_25_market1501.pth").write_bytes(b"corrupted download")
    shutil.copytree(asset("datasets", "mini_market1501"), home / "datasets" / "mini_market1501")
    env = {"RBF_HOME": str(home), "RBF_CACHE": str(tmp_path / "cache")}
    p = rbf("run", "--attack", "none", "--victim", "osnet_x0_25.market1501", "--dataset", "mini_market1501",
            "--out", str(results), env=env)
    assert_clean_failure(p, results, "checksum mismatch", "osnet_x0_25_market1501.pth")


@needs_osnet
@needs_mars
def test_corrupt_image(results, tmp_path):
    root = tmp_path / "market"
    shutil.copytree(asset("datasets", "mini_market1501"), root)
    bad = sorted((root / "query").glob("*.jpg"))[0]
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    p = rbf("run", "--attack", "none", "--victim", "osnet_x0_25.market1501", "--dataset", "market1501",
            "--data-root", str(root), "--out", str(results))
    assert_clean_failure(p, results, "cannot read image", bad.name)


def test_missing_dataset_root(results, tmp_path):
    p = rbf("run", "--attack", "none", "--victim", "osnet", "--dataset", "market1501",
            "--data-root", str(tmp_path / "nowhere"), "--out", str(results))
    assert_clean_failure(p, results, "nowhere")


def test_help_on_every_command():
    for cmd in ([], ["run"], ["list"], ["train"], ["leaderboard"]):
        p = rbf(*cmd, "--help")
        assert p.returncode == 0 and "Usage" in p.stdout, (cmd, p.stderr)
