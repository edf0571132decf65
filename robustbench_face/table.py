"""The console table of ``rbf run``: compact by default, every column with ``--wide``.

The compact table has one headline metric per row, named in its ``metric`` column (re-ID mAP,
face TAR at the calibrated FAR, affect accuracy / CCC / AU-F1), its clean and adversarial
values, the success rate with its 95% interval, and the attack's cost per query.
"""

from __future__ import annotations

from typing import Any

# (clean column, adversarial column, metric name) by task and head, first match wins
_HEADLINES = [
    ("clean_map", "adv_map", "mAP"),
    ("tar_at_far", "adv_tar", "TAR@FAR"),
    ("clean_acc", "adv_acc", "accuracy"),
    ("clean_ccc_mean", "adv_ccc_mean", "CCC"),
    ("clean_au_f1", "adv_au_f1", "AU-F1"),
    ("clean_dlib_distance", "adv_dlib_distance", "dlib dist"),
]
_SKIP = {"package_version", "git_sha", "config_hash", "timestamp", "attack_config", "device", "dataset", "seed"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def _ci(r: dict) -> str:
    for lo, hi in (("ci_low", "ci_high"),):
        if isinstance(r.get(lo), float) and isinstance(r.get(hi), float):
            return f"{r[lo]:.3f}-{r[hi]:.3f}"
    return ""


def compact(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) of the compact table.

    >>> compact([{"task": "reid", "victim": "v", "eval_victim": "v", "attack": "pgd", "mode": "evasion",
    ...           "clean_map": 0.8, "adv_map": 0.04, "success_rate": 0.98, "sec_per_query": 0.9}])[1]
    [['reid', 'v', 'v', 'pgd', 'evasion', 'mAP', '0.8000', '0.0400', '0.9800', '', '0.9000']]
    """
    header = ["task", "victim", "eval victim", "attack", "mode", "metric", "clean", "adv", "success",
              "95% CI", "s/query"]
    cells = []
    for r in rows:
        clean_k, adv_k, name = next(((c, a, n) for c, a, n in _HEADLINES if c in r), ("", "", ""))
        cells.append([_fmt(r.get("task")), _fmt(r.get("victim")), _fmt(r.get("eval_victim")),
                      _fmt(r.get("attack")), _fmt(r.get("mode")), name, _fmt(r.get(clean_k)),
                      _fmt(r.get(adv_k)), _fmt(r.get("success_rate")), _ci(r), _fmt(r.get("sec_per_query"))])
    return header, cells


def wide(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    cols = [k for k in rows[0] if k not in _SKIP and any(r.get(k) not in (None, "") for r in rows)]
    return cols, [[_fmt(r.get(c)) for c in cols] for r in rows]


def print_rows(rows: list[dict], wide_table: bool = False) -> None:
    """Print ``rows`` (``wide=True``: every column), never cutting a name short."""
    from rich.console import Console
    from rich.table import Table

    header, cells = (wide if wide_table else compact)(rows)
    table = Table(*header)
    for col in table.columns:
        col.no_wrap, col.overflow = True, "fold"
    for row in cells:
        table.add_row(*row)
    Console(width=max(120, sum(max(len(h), *(len(c[i]) for c in cells)) + 4
                               for i, h in enumerate(header)))).print(table)
