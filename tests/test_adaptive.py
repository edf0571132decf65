"""Adaptive evaluation: when BPDA/EOT run, what they change, and the sanity flags."""

import json

import pytest
import torch

import robustbench_face as rbf
from robustbench_face.adaptive import AdaptiveAttack, EOTView, plan
from robustbench_face.errors import InputError
from robustbench_face.measure import CountingVictim, LossTracker
from conftest import have_asset, needs_osnet
from test_defenses import Toy


def defended(*specs):
    victim = Toy()
    for name, kw in specs:
        victim = rbf.create_defense(name, **kw)(victim)
    return victim


@pytest.mark.parametrize("specs, mode, wrapped, column", [
    ([], "auto", False, ""),
    ([("median", {})], "auto", False, "yes"),  # differentiable + deterministic: plain = adaptive
    ([("jpeg", {})], "auto", True, "yes"),
    ([("gaussian_noise", {})], "auto", True, "yes"),
    ([("jpeg", {})], "no", False, "no"),
    ([("median", {})], "yes", True, "yes"),
])
def test_plan(specs, mode, wrapped, column):
    attack = rbf.create_attack("pgd", steps=1)
    out, col = plan(attack, defended(*specs), mode)
    assert isinstance(out, AdaptiveAttack) == wrapped and col == column
    assert plan(None, defended(*specs), mode) == (None, "")


def test_plan_rejects_bad_choice():
    with pytest.raises(InputError, match="--adaptive"):
        plan(rbf.create_attack("pgd"), defended(("jpeg", {})), "maybe")


def cos_drop(victim, x, adv):
    with torch.no_grad():
        return float(1 - (victim(adv) * victim(x)).sum(1).mean())


def test_bpda_breaks_what_naive_pgd_cannot():
    victim = defended(("bit_depth", {"bits": 5}))
    x = torch.rand(4, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    pgd = rbf.create_attack("pgd", eps=16 / 255, steps=10, random_start=False)
    naive = pgd(victim, x)
    assert torch.equal(naive, x)  # zero gradient: sign(0) never moves
    adaptive = AdaptiveAttack(pgd)(victim, x)
    assert cos_drop(victim, x, adaptive) > 0.01


def test_eot_view_averages_and_counts_queries():
    victim = CountingVictim(defended(("gaussian_noise", {"sigma": 0.2, "draws": 1})))
    x = torch.rand(2, 3, 32, 16)
    view = AdaptiveAttack(rbf.create_attack("pgd"), eot_draws=16).view(victim)
    assert isinstance(view, EOTView) and view.name == "toy.v1"
    with torch.no_grad():
        single = torch.stack([victim(x) for _ in range(8)]).std(0).mean()
        averaged = torch.stack([view(x) for _ in range(8)]).std(0).mean()
    assert averaged < single
    assert victim.images_seen == 2 * 8 + 2 * 16 * 8


def test_loss_tracker_flags_masked_gradients():
    victim = defended(("jpeg", {"quality": 50}))
    x = torch.rand(2, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    naive = LossTracker(rbf.create_attack("pgd", steps=3))
    naive(victim, x)
    assert "loss-not-improving" in naive.columns()["flags"]
    adaptive = LossTracker(AdaptiveAttack(rbf.create_attack("pgd", steps=3)))
    adaptive(victim, x)
    assert adaptive.columns()["flags"] == ""
    assert adaptive.describe()["adaptive"] == "BPDA+EOT(10)" and adaptive.describe()["attack"] == "pgd"


def test_eps_sweep_flags():
    from robustbench_face.runner import RunConfig
    from robustbench_face.sweeps import eps_sweep, repeat

    table = {0: (0.9, 0.0), 0.01: (0.5, 0.6), 0.02: (0.7, 0.3)}  # eps: (adv_map, success)

    def fake_run(cfg):
        m, s = table[cfg.attack_args["eps"]]
        return [{"clean_map": 0.9, "adv_map": m, "success_rate": s, "flags": ""}]

    rows = eps_sweep(RunConfig(attack="pgd", victim="toy"), [0, 0.01, 0.02], run=fake_run)
    assert [r["flags"] for r in rows] == ["non-monotone"] * 3

    def stuck_at_zero(cfg):  # an attack cannot move at eps 0: that flag is expected there only
        flags = "loss-not-improving;non-adaptive" if cfg.attack_args["eps"] == 0 else "loss-not-improving"
        return [{"clean_map": 0.9, "adv_map": 0.9 - cfg.attack_args["eps"], "success_rate": cfg.attack_args["eps"],
                 "flags": flags}]

    rows = eps_sweep(RunConfig(attack="pgd", victim="toy"), [0, 0.01], run=stuck_at_zero)
    assert [r["flags"] for r in rows] == ["non-adaptive", "loss-not-improving"]
    stats = repeat(RunConfig(attack="pgd", victim="toy"), 3, run=lambda c: [{"adv_map": c.seed}])
    assert stats["repeat_std"] == 1.0


@needs_osnet
@pytest.mark.skipif(not have_asset("datasets", "mini_market1501"), reason="datasets/mini_market1501 not in RBF_HOME")
def test_runner_rows_mark_adaptive(tmp_path):
    from robustbench_face.results import leaderboard
    from robustbench_face.runner import RunConfig, run

    out = tmp_path / "r.csv"
    common = dict(attack="pgd", victim="osnet_x0_25.market1501", dataset="mini_market1501",
                  limit=2, out=str(out), attack_args={"steps": 1}, defenses=["bit_depth"])
    naive = run(RunConfig(adaptive="no", **common))[0]
    adaptive = run(RunConfig(**common))[0]
    assert naive["adaptive"] == "no" and "non-adaptive" in naive["flags"]
    assert adaptive["adaptive"] == "yes" and json.loads(adaptive["attack_config"])["adaptive"] == "BPDA+EOT(10)"
    ranked = leaderboard(out, allow_dirty=True)  # rows of a working tree are dirty until committed
    assert [r["adaptive"] for r in ranked] == ["yes", "no"]  # never above an adaptive row
