"""The re-ID runner end to end on real data (a few queries, few steps): rows, determinism."""

import json

import pytest
import torch

from robustbench_face import create_attack
from robustbench_face.errors import InputError
from robustbench_face.results import read_rows
from robustbench_face.runner import RunConfig, run

from conftest import needs_mars, needs_osnet

pytestmark = [needs_osnet, needs_mars]


def _cfg(tmp_path, **kw):
    base = dict(attack="pgd", victim="osnet_x0_25.market1501", dataset="mini_market1501",
                eval_victims=["osnet_x0_25.msmt17"], limit=6, out=str(tmp_path / "r.csv"),
                attack_args={"steps": 3})
    return RunConfig(**{**base, **kw})


def test_rows_and_determinism(tmp_path):
    a = run(_cfg(tmp_path))
    b = run(_cfg(tmp_path))
    keys = ["clean_map", "adv_map", "clean_rank1", "adv_rank1", "success_rate"]
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]
    assert [r["eval_victim"] for r in a] == ["osnet_x0_25.market1501", "osnet_x0_25.msmt17"]
    white = a[0]
    assert white["adv_map"] < white["clean_map"]
    assert white["perturbation"] <= 8 / 255 + 1e-6 and white["perturbation_kind"] == "linf"
    assert white["queries_per_image"] == pytest.approx(1 + 3)  # reference pass + 3 steps
    header, rows = read_rows(tmp_path / "r.csv")
    assert len(rows) == 4
    for col in ("task", "dataset", "victim", "eval_victim", "attack", "mode", "defense", "seed",
                "n_queries", "clean_map", "adv_map", "clean_rank1", "adv_rank1", "success_rate",
                "sec_per_query", "perturbation", "package_version", "git_sha", "config_hash", "timestamp"):
        assert col in header
    assert rows[0]["config_hash"] == rows[2]["config_hash"]


def test_impersonation_rows(tmp_path):
    rows = run(_cfg(tmp_path, mode="impersonation", eval_victims=[], attack_args={"steps": 5}))
    assert 0 <= rows[0]["success_rate"] <= 1 and "target_map" in rows[0]


def test_clean_run_matches_adv(tmp_path):
    rows = run(_cfg(tmp_path, attack="none", attack_args={}, eval_victims=[]))
    assert rows[0]["adv_map"] == rows[0]["clean_map"] and rows[0]["success_rate"] == 0


def test_bad_limit(tmp_path):
    with pytest.raises(InputError, match="--limit"):
        run(_cfg(tmp_path, limit=0))


def test_seed_reaches_patch_iter(tmp_path):
    """--seed is the attack's seed: different seeds start from different random patches, the
    same seed gives identical rows (each batch reseeds from it, so batching does not matter)."""
    keys = ["adv_map", "adv_rank1", "success_rate", "loss_gain"]
    common = dict(attack="patch_iter", eval_victims=[], limit=4, batch_size=2,
                  attack_args={"steps": 2})
    one, two, again = (run(_cfg(tmp_path, seed=s, **common))[0] for s in (1, 2, 1))
    assert [one[k] for k in keys] == [again[k] for k in keys]
    assert [one[k] for k in keys] != [two[k] for k in keys]
    assert json.loads(one["attack_config"])["seed"] == 1 and json.loads(two["attack_config"])["seed"] == 2
    with pytest.raises(InputError, match="--seed"):
        run(_cfg(tmp_path, attack="patch_iter", attack_args={"seed": 3}))


def test_patch_iter_random_start_follows_the_seed():
    from test_contracts import Toy

    x = torch.zeros(2, 3, 32, 32)
    start = {s: create_attack("patch_iter", steps=1, lr=0.0, seed=s)(Toy("embedding"), x) for s in (1, 2)}
    assert not torch.equal(start[1], start[2])
    assert torch.equal(start[1], create_attack("patch_iter", steps=1, lr=0.0, seed=1)(Toy("embedding"), x))
