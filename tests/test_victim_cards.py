"""Victim cards: every card names a victim module and back, declares head / task / alignment and a
valid [input] (per variant too), ``info`` reads it without building, aligner cards live in
``aligners/`` named after their modules, and a weight file that disagrees with its card is refused."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import pytest

import robustbench_face.align as align_pkg
import robustbench_face.victims as victims_pkg
from robustbench_face.cards import list_cards, load_card
from robustbench_face.factory import victim_info
from robustbench_face.heads import get_head
from robustbench_face.preprocess import InputSpec
from robustbench_face.registry import VICTIMS
from robustbench_face.victims import _card

DOC_ONLY = {"from_card"}  # documents the schema of a user's card; its victims are those cards


def _builtin_entries():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [e for e in VICTIMS.entries() if e.source == "builtin"]


def _modules(pkg) -> set[str]:
    return {m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")}


def test_cards_and_victim_modules_correspond():
    entries = _builtin_entries()
    cards, modules = set(list_cards("victims")), _modules(victims_pkg)
    registering = {e.card for e in entries}
    assert cards - modules == set(), "cards in victims/ that name no module in robustbench_face/victims/"
    assert cards - registering == set(), "cards whose module registers no victim"
    missing = sorted(f"{e.name} ({e.module})" for e in entries if e.card not in cards)
    assert not missing, f"built-in victims without a card: {missing}"
    assert "mtcnn" not in cards  # an aligner: aligners/mtcnn.toml


@pytest.mark.parametrize("card_name", sorted(set(list_cards("victims")) - DOC_ONLY))
def test_every_variant_declares_a_valid_contract(card_name):
    card = load_card("victims", card_name)
    for key in ("head", "task", "alignment"):
        assert key in card, f"victims/{card_name}.toml has no top-level {key}"
    assert isinstance(card.get("input"), dict), f"victims/{card_name}.toml has no [input] table"
    archs = {full.partition(".")[0] for full in card["variants"]}
    for full in card["variants"]:
        arch, _, tag = full.partition(".")
        name, table = _card.resolve(card_name, tag, arch if arch != card_name else None)
        assert name == full
        spec = _card.spec_of(table, full)
        assert isinstance(spec, InputSpec)
        assert spec.reference, f"{full}: [input].reference must say which runtime the spec reproduces"
        get_head(table["head"])
        assert table["task"] in _card.TASKS
    assert archs


def test_info_of_every_victim_reads_the_card_without_building():
    for e in _builtin_entries():
        info = e.factory.info() if e.name not in ("from_card",) else e.factory.info(path=None)
        if e.name == "from_card":
            assert info is None
            continue
        assert {"name", "head", "task", "alignment"} <= set(info), e.name
        assert info["head"] in ("embedding", "logits", "regression", "multilabel")
        assert info["task"] in ("reid", "face", "affect")
    assert victim_info("osnet_x0_25.msmt17") == {"name": "osnet_x0_25.msmt17", "head": "embedding", "task": "reid",
                                                 "alignment": None, "input_size": [256, 128]}
    assert victim_info("hsemotion_va")["head"] == "regression"
    assert victim_info("arcface.mobilefacenet_ms1m")["alignment"] == "scrfd_112"
    assert victim_info("dlib_resnet")["alignment"] == "dlib_150"
    assert victim_info("fer_xception")["head"] == "logits"


def test_variant_input_overrides_single_keys():
    _, base = _card.resolve("arcface", "w600k_r50")
    _, own = _card.resolve("arcface", "mobilefacenet_ms1m")
    a, b = _card.spec_of(base, "w600k"), _card.spec_of(own, "mobilefacenet")
    assert (a.mean, a.std) == ((127.5,) * 3, (127.5,) * 3)
    assert (b.mean, b.std) == ((0.0,) * 3, (1.0,) * 3)
    assert a.replace(mean=b.mean, std=b.std) == b  # nothing else changed
    _, b2 = _card.resolve("affect", "enet_b2_8", "hsemotion")
    assert _card.spec_of(b2, "b2").size == (260, 260)


def test_aligner_cards_are_named_after_their_modules():
    cards = set(list_cards("aligners"))
    assert {"mtcnn", "dlib_chips"} <= cards
    assert cards <= _modules(align_pkg)
    for name in cards:
        card = load_card("aligners", name)
        importlib.import_module(f"robustbench_face.align.{name}")
        assert card["default"] in card["variants"]


def test_schema_card_example_is_a_valid_card():
    example = load_card("victims", "from_card")["example"]
    info = _card.describe(example, example["name"], "victims/from_card.toml [example]")
    assert info["head"] == "embedding" and info["input_size"] == [256, 128]
    schema = load_card("victims", "from_card")["schema"]
    from robustbench_face.victims.from_card import ACCEPTED
    assert set(schema) == set(ACCEPTED)


def test_dlib_weight_file_must_agree_with_the_card(tmp_path):
    from robustbench_face.cards import resolve_weights
    from robustbench_face.errors import AssetError
    from robustbench_face.victims.dlib_resnet import load_dlib_resnet

    try:
        weights = resolve_weights("dlib_resnet", "dlib_resnet.v1")
    except AssetError as exc:
        pytest.skip(f"dlib_resnet weights unavailable: {exc}")
    spec = _card.spec_of(_card.resolve("dlib_resnet")[1], "dlib")
    victim = load_dlib_resnet(weights, spec=spec)
    assert victim.input_spec.mean != spec.mean and max(abs(a - b) for a, b in zip(victim.input_spec.mean, spec.mean)) < 1e-3
    with pytest.raises(AssetError, match=r"input_rgb_image_sized<150>.*122\.782.*declares 150x150 RGB"):
        load_dlib_resnet(weights, spec=spec.replace(mean=(120.0, 117.001, 104.298)))
    with pytest.raises(AssetError, match="input_rgb_image_sized<150>"):
        load_dlib_resnet(weights, spec=spec.replace(size=(112, 112)))
