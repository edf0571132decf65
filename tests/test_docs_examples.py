"""The authoring guides' code runs: the attack of ``docs/write_an_attack.md`` passes the attack
contract on every head, exactly as written there (its relative imports made absolute)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from robustbench_face.heads import KINDS
from robustbench_face.registry import Registry

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), flags=re.S)


def load_example(doc: str, package: str) -> dict:
    src = python_blocks(doc)[0]
    src = src.replace("from ..", "from robustbench_face.").replace("from .", f"from {package}.")
    ns: dict = {"__name__": f"{package}.doc_example"}
    import robustbench_face.registry as reg

    real = reg.ATTACKS
    reg.ATTACKS = Registry("attack", "robustbench_face.defenses")  # keep the real registry clean
    try:
        exec(compile(src, doc, "exec"), ns)
    finally:
        reg.ATTACKS = real
    return ns


@pytest.mark.parametrize("head", KINDS)
@pytest.mark.parametrize("targeted", [False, True])
def test_write_an_attack_example_passes_the_contract(head, targeted):
    from test_contracts import Toy, check_attack, sample_target

    ns = load_example("write_an_attack.md", "robustbench_face.attacks")
    attack = ns["FGSM"](eps=8 / 255)
    victim = Toy(head)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    check_attack(attack, victim, x, sample_target(victim, head, x) if targeted else None)
