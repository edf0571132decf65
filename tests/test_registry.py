"""Registries: decorator registration, duplicates, unknown names, entry-point plugins."""

import warnings
from importlib.metadata import EntryPoint

import pytest

import robustbench_face as rbf
from robustbench_face.errors import PluginError, UnknownNameError
from robustbench_face.registry import Registry


def _fresh():
    return Registry("attack", "robustbench_face.defenses")  # a package with no attacks in it


def test_register_and_create():
    reg = _fresh()

    @reg.register("thing")
    def thing(x=1):
        """A thing."""
        return x

    assert reg.get("thing").factory(x=3) == 3
    assert reg.get("thing").summary == "A thing."
    assert "thing" in reg.names()


def test_duplicate_name_raises():
    reg = _fresh()
    reg.register("a")(lambda: 1)
    with pytest.raises(PluginError, match="duplicate attack name 'a'"):
        reg.register("a")(lambda: 2)


def test_unknown_name_lists_available():
    with pytest.raises(UnknownNameError, match=r"unknown victim 'nope'; available: .*osnet"):
        rbf.create_victim("nope")
    with pytest.raises(UnknownNameError, match="available: .*pgd"):
        rbf.create_attack("nope")


def test_unknown_weights_variant_lists_variants():
    with pytest.raises(UnknownNameError, match=r"osnet_x0_25\.market1501"):
        rbf.create_victim("osnet_x0_25.imagenet_typo")


def _with_entry_points(monkeypatch, reg, eps):
    import robustbench_face.registry as mod

    monkeypatch.setattr(mod, "entry_points", lambda group: [e for e in eps if e.group == group])
    return reg


def test_entry_point_plugin_is_lazy_and_loaded(monkeypatch):
    reg = _with_entry_points(monkeypatch, _fresh(), [
        EntryPoint("plug", "robustbench_face.attacks.pgd:PGD", "robustbench_face.attacks")])
    assert "plug" in reg.names()
    assert reg._pending and "plug" not in reg._entries  # not imported until asked for
    assert reg.get("plug").factory is rbf.create_attack.__globals__["ATTACKS"].get("pgd").factory


def test_broken_plugin_warns_and_is_skipped(monkeypatch):
    reg = _with_entry_points(monkeypatch, _fresh(), [
        EntryPoint("broken", "no_such_module_xyz:factory", "robustbench_face.attacks"),
        EntryPoint("missing_obj", "robustbench_face.attacks.pgd:no_such_object", "robustbench_face.attacks"),
        EntryPoint("good", "robustbench_face.attacks.pgd:PGD", "robustbench_face.attacks")])
    with pytest.warns(UserWarning) as rec:
        entries = reg.entries()
    msgs = " ".join(str(w.message) for w in rec)
    assert "'broken'" in msgs and "'missing_obj'" in msgs
    assert [e.name for e in entries] == ["good"]
    with pytest.raises(UnknownNameError, match="available: good"):
        reg.get("broken")


def test_plugin_name_clash_with_builtin_warns(monkeypatch):
    import robustbench_face.registry as mod

    eps = [EntryPoint("pgd", "somewhere:else", "robustbench_face.attacks")]
    monkeypatch.setattr(mod, "entry_points", lambda group: [e for e in eps if e.group == group])
    reg = _fresh()
    reg.register("pgd")(lambda: "builtin")
    with pytest.warns(UserWarning, match="'pgd'.*already taken"):
        reg.names()
    assert reg.get("pgd").source == "builtin"


@pytest.mark.parametrize("kind", ["victims", "attacks", "defenses", "datasets"])
def test_every_entry_has_a_summary(kind):
    from robustbench_face.registry import REGISTRIES

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in REGISTRIES[kind].entries():
            assert e.summary, f"{kind} {e.name} has no one-line summary"
