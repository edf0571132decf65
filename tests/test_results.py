"""Results CSV: atomic appends, rows never lost, header grows, leaderboard order."""

import os

import pytest

from robustbench_face.errors import DataError
from robustbench_face.results import append_rows, flags_of, leaderboard, read_rows


def test_append_keeps_old_rows_and_extends_header(tmp_path):
    p = tmp_path / "r.csv"
    append_rows(p, [{"task": "reid", "adv_map": 0.5}])
    append_rows(p, [{"task": "face", "tar_at_far": 0.9, "new_col": "x"}])
    header, rows = read_rows(p)
    assert [r["task"] for r in rows] == ["reid", "face"]
    assert rows[0]["adv_map"] == "0.5" and rows[0]["new_col"] == ""
    assert header.index("task") < header.index("adv_map") < header.index("new_col")


def test_crash_while_writing_leaves_file_intact(tmp_path, monkeypatch):
    p = tmp_path / "r.csv"
    append_rows(p, [{"task": "reid", "adv_map": 0.5}])
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        append_rows(p, [{"task": "reid", "adv_map": 0.1}])
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["r.csv"]  # no stray temp file


def test_malformed_results_file_is_reported(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("task,adv_map\nreid,0.1,extra\n")
    with pytest.raises(DataError, match="r.csv:2"):
        append_rows(p, [{"task": "x"}])
    assert p.read_text() == "task,adv_map\nreid,0.1,extra\n"


def test_leaderboard_ranks_adaptive_rows_first(tmp_path):
    p = tmp_path / "r.csv"
    append_rows(p, [
        {"task": "reid", "dataset": "d", "git_sha": "0123abcd", "attack": "pgd", "defense": "jpeg", "adaptive": "no", "adv_map": 0.01},
        {"task": "reid", "dataset": "d", "git_sha": "0123abcd", "attack": "pgd", "defense": "jpeg", "adaptive": "yes", "adv_map": 0.30},
        {"task": "reid", "dataset": "d", "git_sha": "0123abcd", "attack": "pgd", "defense": "none", "adaptive": "", "adv_map": 0.02},
    ])
    rows = leaderboard(p, out=tmp_path / "lb.csv")
    assert [r["adv_map"] for r in rows] == ["0.02", "0.3", "0.01"]
    assert (tmp_path / "lb.csv").exists()
    # a clean run of a defended model has no attack to adapt (not flagged non-adaptive), and it is
    # the reference: it ranks after every attacked row, even one with a flag
    append_rows(p, [{"task": "reid", "dataset": "d", "git_sha": "0123abcd", "attack": "none",
                     "defense": "jpeg", "adaptive": "no", "adv_map": 0.005}])
    rows = leaderboard(p)
    assert [r["adv_map"] for r in rows] == ["0.02", "0.3", "0.01", "0.005"]
    assert flags_of(rows[3]) == []


def test_leaderboard_ranks_each_mode_apart_and_targeted_modes_by_success(tmp_path):
    p = tmp_path / "r.csv"
    append_rows(p, [
        {"task": "reid", "dataset": "d", "git_sha": "0123abcd", "mode": "impersonation", "adv_map": 0.10, "success_rate": 0.1},
        {"task": "reid", "dataset": "d", "git_sha": "0123abcd", "mode": "evasion", "adv_map": 0.30, "success_rate": 0.9},
        {"task": "reid", "dataset": "d", "git_sha": "0123abcd", "mode": "impersonation", "adv_map": 0.40, "success_rate": 0.9},
        {"task": "reid", "dataset": "d", "git_sha": "0123abcd", "mode": "evasion", "adv_map": 0.05, "success_rate": 1.0},
    ])
    rows = leaderboard(p)
    assert [(r["mode"], r["success_rate"]) for r in rows] == [
        ("evasion", "1"), ("evasion", "0.9"), ("impersonation", "0.9"), ("impersonation", "0.1")]


def test_leaderboard_refuses_dirty_rows_unless_asked_and_ranks_partial_after_full(tmp_path):
    p = tmp_path / "r.csv"
    append_rows(p, [
        {"task": "reid", "dataset": "d", "mode": "evasion", "adv_map": 0.01, "partial": True, "git_sha": "0123abcd"},
        {"task": "reid", "dataset": "d", "mode": "evasion", "adv_map": 0.20, "partial": False, "git_sha": "0123abcd"},
        {"task": "reid", "dataset": "d", "mode": "evasion", "adv_map": 0.05, "partial": False,
         "git_sha": "0123abcd-dirty"},
    ])
    with pytest.raises(DataError, match="1 of 3 rows .* dirty or unknown tree .*--allow-dirty"):
        leaderboard(p)
    rows = leaderboard(p, allow_dirty=True)
    # full clean rows first, then full dirty ones (flagged), partial rows last whatever their score
    assert [(r["adv_map"], r["provenance"]) for r in rows] == [("0.2", ""), ("0.05", "dirty-tree"), ("0.01", "")]
