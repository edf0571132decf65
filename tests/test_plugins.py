"""Third-party plugins end to end: scaffold, pip install, discovery, use, and the error cases.

Packages are pip-installed (``--no-deps --no-build-isolation``) into a temporary target folder
that only the subprocesses see (``PYTHONPATH``), so the venv itself is never modified.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import have_asset, needs_osnet

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "rbf_defense_example"


def rbf(*args, path=(), check=True):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, path), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "robustbench_face.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"rbf {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def pip_install(src: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(src)],
                   check=True, capture_output=True, timeout=300)


def fake_dist(site: Path, dist: str, entry_points: dict[str, str], modules=None) -> None:
    """A minimal installed distribution: dist-info with entry points, plus modules."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[robustbench_face.defenses]\n{lines}\n")
    for name, text in (modules or {}).items():
        (site / f"{name}.py").write_text(text)


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    pip_install(EXAMPLE, site)
    return site


def test_scaffold_install_list(tmp_path):
    out = rbf("plugin", "new", "defense", "e2e_blur", "--dir", str(tmp_path)).stdout
    root = tmp_path / "rbf-defense-e2e-blur"
    assert str(root) in out
    for rel in ("pyproject.toml", "rbf_e2e_blur/__init__.py", "tests/test_e2e_blur.py", "README.md"):
        assert (root / rel).is_file(), rel
    assert '[project.entry-points."robustbench_face.defenses"]' in (root / "pyproject.toml").read_text()
    site = tmp_path / "site"
    pip_install(root, site)
    listing = rbf("list", "defenses", path=[site]).stdout
    assert "e2e_blur" in listing and "jpeg" in listing
    test = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(root / "tests")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}, cwd=tmp_path)
    assert test.returncode == 0, test.stdout + test.stderr


@pytest.mark.parametrize("kind, name", [("attack", "my_attack"), ("victim", "my_victim")])
def test_scaffold_other_kinds(tmp_path, kind, name):
    from robustbench_face.plugin import new_plugin

    root = new_plugin(kind, name, tmp_path)
    assert f'"robustbench_face.{kind}s"' in (root / "pyproject.toml").read_text()
    compile((root / f"rbf_{name}/__init__.py").read_text(), name, "exec")


def test_scaffold_rejects_bad_names(tmp_path):
    assert "plugin name 'Bad-Name'" in rbf("plugin", "new", "defense", "Bad-Name", "--dir",
                                           str(tmp_path), check=False).stderr
    assert "plugin kind 'widget'" in rbf("plugin", "new", "widget", "x", "--dir", str(tmp_path),
                                         check=False).stderr


def test_example_listed(example_site):
    out = rbf("list", "defenses", path=[example_site]).stdout
    assert "box_blur" in out and "Box blur of the input" in out


@needs_osnet
@pytest.mark.skipif(not have_asset("datasets", "mini_market1501"), reason="datasets/mini_market1501 not in RBF_HOME")
def test_example_used_by_run(example_site, tmp_path):
    out = tmp_path / "r.csv"
    common = ["run", "--attack", "pgd", "-a", "steps=1", "--victim", "osnet_x0_25.market1501",
              "--dataset", "mini_market1501", "--limit", "2", "--out", str(out)]
    rbf(*common, "--defense", "box_blur:size=3", "--defense", "jpeg", path=[example_site])
    row = next(csv.DictReader(open(out)))
    assert row["defense"] == "box_blur:size=3+jpeg:quality=75" and row["adaptive"] == "yes"  # full specs
    bad = rbf(*common, "--defense", "box_blur:size=4", path=[example_site], check=False)
    assert bad.returncode == 2 and "defense box_blur: size=4 is invalid" in bad.stderr


def test_plugin_raising_on_import_warns_and_rest_works(tmp_path):
    fake_dist(tmp_path, "rbf_broken", {"broken_def": "rbf_broken_mod:create"},
              {"rbf_broken_mod": "raise RuntimeError('boom at import')\n"})
    proc = rbf("list", "defenses", path=[tmp_path])
    assert "defense plugin 'broken_def'" in proc.stderr and "boom at import" in proc.stderr
    assert "jpeg" in proc.stdout and "broken_def" not in proc.stdout


def test_entry_point_naming_missing_object(tmp_path):
    fake_dist(tmp_path, "rbf_ghost", {"ghost": "rbf_ghost_mod:does_not_exist"},
              {"rbf_ghost_mod": "x = 1\n"})
    proc = rbf("list", "defenses", path=[tmp_path])
    assert "'ghost' (rbf_ghost_mod:does_not_exist) failed to load" in proc.stderr
    assert "does_not_exist" in proc.stderr and "jpeg" in proc.stdout


def test_two_plugins_with_the_same_name(tmp_path):
    blur = "from rbf_defense_example import create\n"
    fake_dist(tmp_path, "rbf_twin_a", {"twin": "rbf_twin_a:create"}, {"rbf_twin_a": blur})
    fake_dist(tmp_path, "rbf_twin_b", {"twin": "rbf_twin_b:create", "jpeg": "rbf_twin_b:create"},
              {"rbf_twin_b": blur})
    proc = rbf("list", "defenses", path=[tmp_path, EXAMPLE])
    assert "defense plugin 'twin'" in proc.stderr and "already taken" in proc.stderr
    assert "defense plugin 'jpeg'" in proc.stderr and "already taken by builtin" in proc.stderr
    assert [l.split()[0] for l in proc.stdout.splitlines()].count("twin") == 1
