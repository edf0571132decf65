"""``rbf leaderboard RESULTS --out DIR``: entries (seeds averaged, duplicates once, flags), the
files written, ``--check`` refusing tampered entries, and the page in a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from robustbench_face.errors import DataError
from robustbench_face.publish import check_entry, publish
from robustbench_face.results import append_rows

CLEAN = "0123456789ab"


def row(**kw):
    base = {"task": "reid", "dataset": "mini_mars", "victim": "osnet_x0_25.market1501",
            "eval_victim": "osnet_x0_25.market1501", "attack": "pgd", "mode": "evasion", "defense": "none",
            "adaptive": "", "n_queries": 128, "n_available": 128, "partial": False, "clean_map": 0.8,
            "adv_map": 0.05, "success_rate": 0.95, "ci_low": 0.9, "ci_high": 0.98, "sec_per_query": 0.4,
            "attack_config": json.dumps({"attack": "pgd", "eps": 8 / 255, "seed": kw.get("seed", 0)}),
            "git_sha": CLEAN, "package_version": "0.1.0", "config_hash": f"h{kw.get('seed', 0)}",
            "timestamp": f"2026-12-01T00:00:0{kw.get('seed', 0)}+00:00", "seed": 0,
            "rerun": f"rbf run --attack pgd --victim osnet --seed {kw.get('seed', 0)}"}
    return {**base, **kw}


@pytest.fixture
def results(tmp_path):
    p = tmp_path / "results.csv"
    append_rows(p, [
        row(seed=0, adv_map=0.04), row(seed=1, adv_map=0.06), row(seed=1, adv_map=0.06),  # a duplicate
        row(attack="patch_iter", adv_map=0.01, partial=True, n_queries=16),               # best value, partial
        row(attack="patch_iter", adv_map=0.045, success_rate=0.9, sec_per_query=3.0),
        row(defense="jpeg:quality=75", adaptive="no", adv_map=0.02,
            attack_config=json.dumps({"attack": "pgd", "eps": 4 / 255})),                 # non-adaptive
        row(eval_victim="osnet_x0_25.msmt17", adv_map=0.6, success_rate=0.2),             # transfer table
    ])
    return p


def test_publish_entries_tables_and_files(results, tmp_path):
    out = tmp_path / "lb"
    ranked = publish(results, out)
    for f in ("leaderboard.csv", "leaderboard.md", "index.html"):
        assert (out / f).is_file()
    wb = [e for e in ranked if e["spec"]["threat_model"] == "white-box"]
    assert [e["spec"]["attack"] for e in wb] == ["patch_iter", "pgd", "pgd", "patch_iter"]
    assert [e["rank"] for e in wb] == [1, 2, 3, 4]
    pgd = wb[1]
    assert pgd["seeds"] == [0, 1] and pgd["metrics"]["adv_map"] == pytest.approx(0.05)  # seeds averaged
    assert pgd["spread"]["adv_map"] == pytest.approx(0.01414, abs=1e-4) and len(pgd["per_seed"]) == 2
    assert wb[2]["flags"] == ["non-adaptive"] and wb[3]["flags"] == ["partial"]  # never above full ones
    assert pgd["cards"]["victim"]["weights_sha256"].startswith("c0ff0917")
    assert "Madry" in pgd["cards"]["attack"]["paper"] and pgd["rerun"][0].startswith("rbf run")
    assert len(list((out / "entries").glob("*.json"))) == len(ranked) == 5
    check_entry(out / "entries" / f"{pgd['id']}.json")


def test_learned_attack_entries_name_their_checkpoint(tmp_path):
    p = tmp_path / "results.csv"
    append_rows(p, [row(attack="cond_patch", attack_config=json.dumps({"attack": "cond_patch"}))])
    (entry,) = publish(p, tmp_path / "lb")
    card = entry["cards"]["attack"]
    assert card["checkpoint"] == "checkpoints/cond_patch.osnet_x0_25.market1501.safetensors"
    assert card["checkpoint_sha256"].startswith("4c64a518")


def test_class_targets_are_entries_of_their_own(tmp_path):
    p = tmp_path / "results.csv"
    append_rows(p, [row(task="affect", mode="targeted", target_class=c, success_rate=v, adv_map="")
                    for c, v in (("happy", 0.9), ("neutral", 0.7))])
    ranked = publish(p, tmp_path / "lb")
    assert [e["spec"]["target_class"] for e in ranked] == ["happy", "neutral"]  # never averaged as seeds
    assert "pgd 8/255 → neutral" in (tmp_path / "lb" / "leaderboard.md").read_text()


def test_check_refuses_tampered_entries(results, tmp_path):
    ranked = publish(results, tmp_path / "lb")
    path = tmp_path / "lb" / "entries" / f"{ranked[0]['id']}.json"
    e = json.loads(path.read_text())
    bad = tmp_path / "bad.json"
    e2 = json.loads(json.dumps(e))
    e2["metrics"]["adv_map"] = 0.001
    bad.write_text(json.dumps(e2))
    with pytest.raises(DataError, match="digest mismatch: the entry was changed"):
        check_entry(bad)
    e3 = json.loads(json.dumps(e))
    e3["per_seed"][0]["success_rate"] = 0.5  # outside the entry's own interval
    bad.write_text(json.dumps(e3))
    with pytest.raises(DataError, match="outside its own interval"):
        check_entry(bad)
    e4 = json.loads(json.dumps(e))
    e4["provenance"]["git_sha"] = []
    bad.write_text(json.dumps(e4))
    with pytest.raises(DataError, match="provenance lacks git_sha"):
        check_entry(bad)


def test_dirty_rows_are_refused_unless_asked(tmp_path):
    p = tmp_path / "r.csv"
    append_rows(p, [row(git_sha=CLEAN + "-dirty")])
    with pytest.raises(DataError, match="dirty or unknown tree"):
        publish(p, tmp_path / "lb")
    (e,) = publish(p, tmp_path / "lb", allow_dirty=True)
    assert "dirty-tree" in e["flags"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--virtual-time-budget=10000"]


@pytest.mark.skipif(_chromium() is None, reason="no Chromium (Debian package chromium; .ci/run installs it)")
def test_page_renders_and_sorts_in_a_headless_browser(results, tmp_path):
    out = tmp_path / "lb"
    publish(results, out)
    url = (out / "index.html").as_uri()
    col = 7  # "value"
    dom = subprocess.run([_chromium(), *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          f"{url}#sort=t0:{col}:desc"], capture_output=True, text=True, timeout=120).stdout
    assert 'data-ready="1"' in dom, dom[-2000:]  # the script ran and every image decoded
    assert dom.count("<table") >= 2 and dom.count('data-ok="1"') == dom.count("<img") >= 2
    table = dom[dom.index('id="t0"'):].split("</table>")[0]
    assert 'data-sorted="7:desc"' in table
    values = [float(v) for v in re.findall(r"<tr[^>]*>(?:<td[^>]*>.*?</td>){7}<td data-v=\"([0-9.e-]+)\"", table)]
    assert len(values) >= 3 and values == sorted(values, reverse=True)
    shot = tmp_path / "page.png"
    subprocess.run([_chromium(), *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                    f"--screenshot={shot}", "--window-size=1200,1400", url], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
