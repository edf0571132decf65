"""``rbf bench``: grid expansion, resume after ``kill -9`` with finished cells byte for byte, a
failing cell recorded while the others go on, the shared clean cache, and the Ray executor."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from robustbench_face.bench import bench, expand
from robustbench_face.errors import InputError
from robustbench_face.results import read_rows

from conftest import needs_osnet

needs_market = pytest.mark.skipif(
    not Path(os.environ["RBF_HOME"], "datasets", "mini_market1501").is_dir(),
    reason="datasets/mini_market1501 not in RBF_HOME")


def spec(tmp_path: Path, body: str, name: str = "t") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(f'name = "{name}"\n' + textwrap.dedent(body))
    return p


def test_expand_axes_and_attack_tables(tmp_path):
    cells = expand({"name": "x", "defaults": {"limit": 2}, "grid": [{
        "dataset": "mini_market1501", "victim": ["a", "b"], "eval_victims": ["c"],
        "attack": ["none", "pgd:steps=3", {"name": "pgd", "eps": ["2/255", "8/255"], "steps": 2}],
        "defense": ["none", "jpeg:quality=50+median"], "seed": [0, 1]}]})
    assert len(cells) == 2 * 4 * 2 * 2
    c = next(c for c in cells if c.config["attack_args"].get("eps") == pytest.approx(2 / 255))
    assert c.config["eval_victims"] == ["c"] and c.config["limit"] == 2 and c.config["attack_args"]["steps"] == 2
    assert {tuple(c.config["defenses"]) for c in cells} == {(), ("jpeg:quality=50", "median")}
    assert len({c.key for c in cells}) == len(cells)  # every cell its own key
    again = expand({"name": "y", "grid": [{"dataset": "mini_market1501", "victim": "a", "eval_victims": ["c"],
                                           "attack": "pgd:steps=3", "limit": 2, "seed": 1}]})
    assert again[0].key in {c.key for c in cells}  # the same cell in another spec: the same key
    with pytest.raises(InputError, match="unknown key.*epss"):
        expand({"name": "x", "grid": [{"dataset": "d", "victim": "v", "attack": "none", "epss": 1}]})


@needs_osnet
@needs_market
def test_resume_after_kill_9_keeps_finished_cells(tmp_path):
    s = spec(tmp_path, """
        [[grid]]
        dataset = "mini_market1501"
        victim = "osnet_x0_25.market1501"
        attack = ["patch_iter:steps=40"]
        seed = [0, 1, 2, 3, 4, 5]
        limit = 2
        batch_size = 2
        """)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "robustbench_face.cli", "bench", str(s), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and len(list((out / "cells").glob("*.csv"))) < 2:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # kill -9: no handler runs
    proc.wait()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "cells").glob("*.csv")}
    assert 2 <= len(before) < 6, before
    with pytest.raises(InputError, match="--resume"):
        bench(s, out)
    r = bench(s, out, resume=True)
    assert (r["cells"], r["finished_before"], r["ran"], r["failed"]) == (6, len(before), 6 - len(before), 0)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "cells").glob("*.csv")}
    assert {k: after[k] for k in before} == before  # finished cells unchanged, byte for byte
    _, rows = read_rows(out / "results.csv")
    assert sorted(int(r["seed"]) for r in rows) == list(range(6)) and all(r["bench"] == "t" for r in rows)


@needs_osnet
@needs_market
def test_failing_cell_is_recorded_and_the_others_go_on(tmp_path):
    from robustbench_face.attacks._base import Attack
    from robustbench_face.registry import ATTACKS

    @ATTACKS.register("boom_test")
    class Boom(Attack):
        """Raises inside the attack (a test plugin)."""

        name, distance = "boom_test", "linf"

        def __init__(self, seed: int = 0):
            self.seed = seed

        def __call__(self, victim, images, target=None):
            raise RuntimeError("boom")

    try:
        s = spec(tmp_path, """
            [[grid]]
            dataset = "mini_market1501"
            victim = "osnet_x0_25.market1501"
            attack = ["none", "boom_test", "pgd:steps=1"]
            limit = 2
            """)
        r = bench(s, tmp_path / "out")
        assert (r["ran"], r["failed"]) == (2, 1)
        failed = (tmp_path / "out" / "failed.csv").read_text()
        assert "boom_test" in failed and "RuntimeError: boom" in failed
        assert len(read_rows(tmp_path / "out" / "results.csv")[1]) == 2
        assert len(list((tmp_path / "out" / "cache").glob("*.npy"))) == 2  # gallery + queries, shared by 2 cells
    finally:
        ATTACKS.unregister("boom_test")


@needs_osnet
@needs_market
def test_ray_executor_gives_the_local_numbers(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an extra: pip install -e '.[ray]'")
    s = spec(tmp_path, """
        [[grid]]
        dataset = "mini_market1501"
        victim = "osnet_x0_25.market1501"
        attack = ["none", "pgd:steps=2"]
        seed = [0, 1]
        limit = 2
        """)
    local = bench(s, tmp_path / "local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: os.environ[k] for k in ("RBF_HOME", "RBF_CACHE")}})
    try:
        remote = bench(s, tmp_path / "ray", executor="ray")
    finally:
        ray.shutdown()
    assert remote["ran"] == local["ran"] == 4 and remote["failed"] == 0
    keys = ("cell", "eval_victim", "clean_map", "adv_map", "success_rate", "adv_rank1")
    pick = lambda p: sorted(tuple(r[k] for k in keys) for r in read_rows(p / "results.csv")[1])  # noqa: E731
    assert pick(tmp_path / "local") == pick(tmp_path / "ray")
