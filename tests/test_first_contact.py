"""What a new user meets first: each finding of the trust issue, as a test (issue 12).

Every CLI case checks one clear line, the exit code, and that the results CSV is untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, have_asset, needs_mars, needs_osnet

ROWS = "task,adv_map\nreid,0.123\n"


def rbf(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "robustbench_face.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture
def results(tmp_path):
    p = tmp_path / "results.csv"
    p.write_text(ROWS)
    return p


def one_error_line(p) -> str:
    lines = [line for line in p.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


# 1. no asset home: tests skip with a reason naming RBF_HOME (the suite itself runs like this in
#    tests/test_first_contact.py::test_suite_skips_without_assets, a slow test)
@pytest.mark.slow
def test_suite_skips_without_assets(tmp_path):
    env = {"RBF_HOME": str(tmp_path / "empty"), "RBF_CACHE": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "tests/test_runner_reid.py", "tests/test_face_task.py", "tests/test_cli_errors.py"],
                       capture_output=True, text=True, cwd=REPO, env={**os.environ, **env}, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:]
    skips = [line for line in p.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("RBF_HOME" in s for s in skips), skips


# 2. a missing dataset says what it is, where it was looked for, RBF_HOME; names are checked first
def test_missing_dataset_message_and_names_first(results, tmp_path):
    env = {"RBF_HOME": str(tmp_path / "empty"), "RBF_CACHE": str(tmp_path / "cache")}
    line = one_error_line(rbf("run", "--attack", "none", "--victim", "osnet", "--out", str(results), env=env))
    for needle in ("dataset 'mini_mars'", "MARS pedestrian frames", "RBF_HOME=", str(tmp_path / "empty"),
                   "on request at"):
        assert needle in line, line
    line = one_error_line(rbf("run", "--attack", "none", "--victim", "osnett", "--out", str(results), env=env))
    assert "unknown victim 'osnett'" in line and "dataset" not in line
    line = one_error_line(rbf("run", "--attack", "none", "--victim", "dlib_resnet", "--dataset", "lfw",
                              "--out", str(results), env=env))
    assert "rbf fetch lfw" in line
    assert results.read_text() == ROWS


# 3. Ctrl-C exits 130 with one line; the CSV is byte-identical
@needs_osnet
@needs_mars
def test_ctrl_c_exits_130_and_writes_nothing(results):
    before = results.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "robustbench_face.cli", "run", "--attack", "patch_iter",
                             "--victim", "osnet", "-a", "steps=200", "--out", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(20)  # well into the attack
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: 0 rows written" in err and "Traceback" not in err
    assert results.read_bytes() == before


# 4. an --out that cannot be written fails before any work, in one line
def test_bad_out_path_fails_first(results):
    t0 = time.perf_counter()
    p = rbf("run", "--attack", "pgd", "--victim", "osnet", "--out", str(results / "x.csv"))  # under a file
    assert p.returncode == 2 and "--out" in one_error_line(p) and "is a file" in p.stderr
    assert time.perf_counter() - t0 < 60  # no model built, no image read
    assert results.read_text() == ROWS


def test_unwritable_out_folder_is_refused(tmp_path, monkeypatch):
    from robustbench_face.errors import DataError
    from robustbench_face.results import check_writable

    # as root every folder is writable, so the check is shown on what os.access reports
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(DataError, match="is not writable"):
        check_writable(tmp_path / "r.csv")
    with pytest.raises(DataError, match="is a directory"):
        check_writable(tmp_path)


# 5 + 6. --limit draws a seeded identity-stratified subset and marks the row partial; re-ID
# rows carry their valid-query denominator
@needs_osnet
@needs_mars
def test_limit_is_stratified_and_partial(tmp_path):
    from robustbench_face.runner import RunConfig, run

    (row,) = run(RunConfig(attack="none", victim="osnet", limit=16, out=str(tmp_path / "r.csv")))
    assert row["partial"] is True and row["n_queries"] == 16 and row["n_available"] == 128
    assert 0 < row["n_valid_queries"] <= 16
    from robustbench_face import load_dataset
    from robustbench_face.datasets._base import stratified_subset

    q = load_dataset("mini_mars").split("query")
    assert len({q[i].pid for i in stratified_subset([s.pid for s in q], 16, 0)}) == 16  # 16 people


# 9. (a clean face run whose FAR cannot be resolved refuses: tests/test_face_task.py)


# 10. every image format PIL reads; dataset options from the CLI; how many identities are needed
def test_tiff_and_dataset_options(tmp_path):
    from PIL import Image

    import robustbench_face as rbf_

    for person in ("a", "b"):
        (tmp_path / person).mkdir()
        for i in range(2):
            Image.new("RGB", (20, 24), (40 * i, 90, 200)).save(tmp_path / person / f"{i}.tif")
    ds = rbf_.load_dataset("identity_folders", data_root=str(tmp_path), image_size=(12, 10))
    assert len(ds.samples) == 4 and ds.load(ds.samples[:1]).shape == (1, 3, 12, 10)
    from robustbench_face.runner import RunConfig, dataset_spec

    assert dataset_spec(RunConfig(attack="none", victim="x", dataset="lfw:skip_missing=true")) == \
        ("lfw", {"skip_missing": True})
    from robustbench_face.datasets._base import ImageDataset, Sample
    from robustbench_face.errors import DataError
    from robustbench_face.tasks.face import build_pairs

    one = ImageDataset("one", tmp_path, [Sample(tmp_path / "a" / "0.tif", 0), Sample(tmp_path / "a" / "1.tif", 0)], "face")
    with pytest.raises(DataError, match="1 identities: face verification needs at least 2"):
        build_pairs(one, seed=0)


def test_bad_dataset_option_is_one_line(results):
    p = rbf("run", "--attack", "none", "--victim", "osnet", "--dataset", "mini_mars:csvv=x.csv",
            "--out", str(results))
    line = one_error_line(p)
    assert p.returncode == 2 and "dataset mini_mars: unknown option 'csvv'" in line and "csv (str)" in line


# 11. quiet console: no third-party noise, a compact table with whole victim names
@needs_osnet
def test_quiet_compact_console(tmp_path):
    if not have_asset("datasets", "mini_market1501"):
        pytest.skip("mini_market1501 not in RBF_HOME (datasets/mini_market1501)")
    p = rbf("run", "--attack", "pgd", "--victim", "osnet_x0_25.market1501", "--dataset", "mini_market1501",
            "--limit", "2", "-a", "steps=1", "--out", str(tmp_path / "r.csv"))
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert "Cython" not in out and "Failed to set device" not in out
    assert "osnet_x0_25.market1501" in p.stdout and "…" not in p.stdout
    header = next(line for line in p.stdout.splitlines() if "task" in line and "victim" in line)
    assert header.count("┃") <= 12  # 11 columns


# 12. victims refuse 0..255 pixels and wrong shapes, clearly
@needs_osnet
def test_victim_input_checks():
    import torch

    import robustbench_face as rbf_
    from robustbench_face.errors import InputError

    v = rbf_.create_victim("osnet")
    with pytest.raises(InputError, match=r"\[0, 1\].*divide by 255"):
        v(torch.rand(1, 3, 64, 32) * 255)
    with pytest.raises(InputError, match=r"\(N, 1 or 3, H, W\)"):
        v(torch.rand(3, 64, 32))
    with pytest.raises(InputError, match="must be float"):
        v(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# 13. runs stream their images: a face run keeps chips as uint8 on disk, read a batch at a time
def test_face_chips_are_a_uint8_file(tmp_path, monkeypatch):
    import torch

    from robustbench_face.align import _ALIGNERS, align_source
    from robustbench_face.datasets._base import ArraySource, Sample

    monkeypatch.setenv("RBF_CACHE", str(tmp_path))
    monkeypatch.setitem(_ALIGNERS, "toy_8", lambda imgs: (torch.stack([i[:, :8, :8] for i in imgs]),
                                                          torch.ones(len(imgs), dtype=torch.bool)))
    from PIL import Image

    samples = []
    for i in range(5):
        Image.new("RGB", (10, 10), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
        samples.append(Sample(tmp_path / f"{i}.png", i))
    chips, det = align_source("toy_8", samples, chunk=2)
    assert isinstance(chips, ArraySource) and chips.path is not None and chips.path.suffix == ".u8"
    assert chips.path.stat().st_size == 5 * 3 * 8 * 8 and chips[1:3].shape == (2, 3, 8, 8) and det.all()
    again, _ = align_source("toy_8", samples)  # served from the cache file
    assert torch.equal(again[:], chips[:])
