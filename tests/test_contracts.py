"""Contract tests parametrised over the registries (timm's style): a new plugin is tested with
no new test file.

* **Attacks**, crossed with every head they declare (on a tiny victim of that head, or on the
  real victim a learned attack's checkpoint was trained for: ``contract_victims``): the output
  stays inside the declared budget (eps ball, or the patch region); the head's objective moves
  against the clean reference; the same seed gives the same output. An attack that returns its
  input unchanged fails (``test_a_no_op_attack_fails_the_contract``).
* **Victims**: [0, 1] NCHW of any size in, finite output of the declared kind and width out,
  unit norm for embeddings, differentiable, eval mode, frozen, the input's device and dtype,
  and at least one hookable module with a 4-D output (``activations.spatial_layers``: the
  layers ``rbf interpret`` and ``feature_clip`` read).
  A victim is skipped only when its weights are absent (``AssetError``), with the reason; one
  that needs arguments declares ``factory.example(tmp_path) -> kwargs``.
* **Defenses**: wrapping a victim gives a victim; the declared ``differentiable`` /
  ``randomized`` flags match what the gradient and two forwards show. A defense that needs
  options to run on the toy victim (``feature_clip`` has no training data there) declares
  ``factory.example() -> kwargs``.
* **Datasets** have their own contract test (``tests/test_dataset_contract.py``); every kind's
  card <-> code correspondence is checked here.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robustbench_face as rbf
from robustbench_face.attacks._base import describe, distance_of, region_of
from robustbench_face.cards import list_cards
from robustbench_face.defenses import gradient_mode
from robustbench_face.errors import AssetError
from robustbench_face.heads import KINDS, get_head, head_of
from robustbench_face.registry import REGISTRIES
from robustbench_face.types import VictimBase

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    VICTIMS = rbf.list_victims()
    ATTACKS = rbf.list_attacks()
    DEFENSES = rbf.list_defenses()

# Fast settings so the contract runs in seconds; unknown attacks run with their defaults.
FAST = {"pgd": {"steps": 3}, "mifgsm": {"steps": 3}, "patch_iter": {"steps": 5}}
_built: dict = {}


class Toy(VictimBase):
    """A tiny conv net with the given head: instant, differentiable, deterministic."""

    WIDTH = {"embedding": 16, "logits": 5, "regression": 2, "multilabel": 3}

    def __init__(self, output: str):
        super().__init__()
        g = torch.Generator().manual_seed(KINDS.index(output))
        self.name, self.output, self.input_size = f"toy_{output}", output, (32, 32)
        self.classes = tuple("abcde") if output == "logits" else None
        self.au_names = ("AU1", "AU4", "AU12") if output == "multilabel" else None
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8 * 4, self.WIDTH[output])
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.5
        self.finalize()

    def forward(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        h = F.adaptive_avg_pool2d(torch.tanh(self.conv(x * 2 - 1)), 2).flatten(1)
        y = self.fc(h)
        return {"embedding": lambda: F.normalize(y, dim=1), "logits": lambda: y,
                "regression": lambda: torch.tanh(y), "multilabel": lambda: torch.sigmoid(y)}[self.output]()


def build(name: str, tmp_path=None):
    """A registered victim, cached; skipped (with the reason) only when its weights are absent."""
    if name not in _built:
        try:
            example = getattr(REGISTRIES["victims"].get(name.partition(".")[0]).factory, "example", None)
            kwargs = example(tmp_path) if callable(example) and tmp_path is not None else {}
            _built[name] = rbf.create_victim(name, **kwargs)
        except AssetError as exc:
            _built[name] = exc
    v = _built[name]
    if isinstance(v, AssetError):
        pytest.skip(f"{name}: weights absent: {v}")
    return v


def victim_for(factory, head: str):
    name = getattr(factory, "contract_victims", {}).get(head)
    return build(name) if name else Toy(head)


def sample_target(victim, head: str, x: torch.Tensor):
    with torch.no_grad():
        clean = victim(x)
    n = len(x)
    if head == "embedding":
        return F.normalize(torch.randn(n, clean.shape[1], generator=torch.Generator().manual_seed(1)), dim=1)
    if head == "logits":
        return (clean.argmax(1) + 1) % clean.shape[1]
    h = get_head(head)
    parsed = (-1, 1) if head == "regression" else {0: 1 - int(clean[0, 0] > 0.5)}
    return h.target_tensor(parsed, clean)


def check_attack(attack, victim, x: torch.Tensor, target) -> None:
    """The attack contract on one (victim, inputs, target); raises AssertionError."""
    torch.manual_seed(0)  # torchattacks draws random starts from the global generator
    adv = attack(victim, x, target)
    assert adv.shape == x.shape and adv.dtype == x.dtype, "output shape or dtype differs from the input"
    assert torch.isfinite(adv).all() and adv.min() >= 0 and adv.max() <= 1, "output leaves [0, 1]"
    assert not adv.requires_grad, "output still requires grad"
    kind, d = distance_of(attack), (adv - x).flatten(1)
    if kind == "linf":
        eps = describe(attack)["eps"]
        assert d.abs().max() <= eps + 1e-6, f"L-inf {float(d.abs().max()):.5f} > eps {eps:.5f}"
    elif kind == "l2":
        eps = describe(attack)["eps"]
        assert d.norm(dim=1).max() <= eps + 1e-4, f"L2 {float(d.norm(dim=1).max()):.4f} > eps {eps}"
    else:
        region = region_of(attack)
        assert region is not None, "a patch attack must declare its region"
        y0, x0, ph, pw = region.box(*x.shape[-2:])
        outside = (adv - x).abs().clone()
        outside[..., y0:y0 + ph, x0:x0 + pw] = 0
        assert outside.max() == 0, "pixels changed outside the declared patch region"
    with torch.no_grad():
        score = head_of(victim).objective(victim(x), None if target is None else torch.as_tensor(target))
        gain = float((score(victim(adv)) - score(victim(x))).mean())
    assert gain > 1e-4, f"the objective did not move against the clean reference (gain {gain:.2e})"
    torch.manual_seed(0)
    again = type(attack)(**{k: v for k, v in _options(attack).items()})(victim, x, target)
    assert torch.equal(adv, again), "the same seed gave a different output"


def _options(attack) -> dict:
    from robustbench_face.options import signature_options

    opts = signature_options(type(attack)) or {}
    return {k: getattr(attack, k) for k in opts if hasattr(attack, k)}


def attack_cases():
    for name in ATTACKS:
        factory = REGISTRIES["attacks"].get(name).factory
        for head in getattr(factory, "heads", KINDS):
            for targeted in (False, True):
                if (targeted and getattr(factory, "targeted", True)) or \
                        (not targeted and getattr(factory, "untargeted", True)):
                    yield pytest.param(name, head, targeted, id=f"{name}-{head}-{'t' if targeted else 'u'}")


@pytest.mark.parametrize("name, head, targeted", list(attack_cases()))
def test_attack_contract(name, head, targeted):
    factory = REGISTRIES["attacks"].get(name).factory
    victim = victim_for(factory, head)
    try:
        attack = rbf.create_attack(name, **FAST.get(name, {}))
    except AssetError as exc:
        pytest.skip(f"{name}: {exc}")
    size = tuple(getattr(victim, "input_size", None) or (32, 32))
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    check_attack(attack, victim, x, sample_target(victim, head, x) if targeted else None)


def test_a_no_op_attack_fails_the_contract():
    from robustbench_face.attacks._base import Attack

    class NoOp(Attack):
        """Returns its input unchanged."""

        name, distance = "no_op", "linf"

        def __init__(self, eps: float = 8 / 255, seed: int = 0):
            self.eps, self.seed = eps, seed

        def __call__(self, victim, images, target=None):
            return images.clone()

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError, match="objective did not move"):
        check_attack(NoOp(), Toy("embedding"), x, None)


@pytest.mark.parametrize("name", VICTIMS)
def test_victim_contract(name, tmp_path):
    v = build(name, tmp_path)
    assert v.output in KINDS
    assert not v.training and all(not p.requires_grad for p in v.parameters())
    x = torch.rand(2, 3, 97, 83, requires_grad=True)  # an odd size: the victim resizes
    y = v(x)
    assert y.ndim == 2 and y.shape[0] == 2 and torch.isfinite(y).all()
    assert y.device == x.device and y.dtype == torch.float32
    head_of(v).check_width(v, y)
    if v.output == "embedding":
        torch.testing.assert_close(y.norm(dim=1), torch.ones(2), atol=1e-4, rtol=0)
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert v(torch.rand(1, 1, 64, 64)).shape[0] == 1  # greyscale in
    # rbf interpret and feature_clip read a layer through forward hooks: every victim offers one
    from robustbench_face.activations import resolve_layer, spatial_layers

    layers = spatial_layers(v, x.detach()[:1])
    assert layers, f"{name}: no hookable module with a 4-D output"
    assert resolve_layer(v, "-1", x.detach()[:1])[0] in layers


@pytest.mark.parametrize("name", DEFENSES)
def test_defense_contract(name):
    inner = Toy("embedding")
    example = getattr(REGISTRIES["defenses"].get(name).factory, "example", None)
    dv = rbf.create_defense(name, **(example() if callable(example) else {}))(inner)
    assert dv.output == inner.output and dv.name == inner.name and hasattr(dv, "defenses")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    a = dv(x)
    torch.manual_seed(1)
    b = dv(x)
    assert a.shape == inner(x).shape and torch.isfinite(a).all()
    assert (not torch.equal(a, b)) == dv.randomized, f"randomized={dv.randomized} but two draws " \
        f"{'differ' if not torch.equal(a, b) else 'agree'}"
    xg = x.clone().requires_grad_(True)
    torch.manual_seed(0)
    dv(xg).sum().backward()
    naive = xg.grad.abs().sum()
    if dv.differentiable:
        assert naive > 0, "declared differentiable, but the gradient through it is zero"
    else:
        assert naive == 0, "declared non-differentiable, but plain autograd passes a gradient"
        xg.grad = None
        with gradient_mode("bpda"):
            dv(xg).sum().backward()
        assert xg.grad.abs().sum() > 0, "BPDA passes no gradient through the defense"


KINDS_WITH_CARDS = ("victims", "attacks", "defenses", "datasets")


@pytest.mark.parametrize("kind", KINDS_WITH_CARDS)
def test_every_registered_name_has_a_card_and_back(kind):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = [e for e in REGISTRIES[kind].entries() if e.source == "builtin"]
    cards = set(list_cards(kind))
    missing = sorted({f"{e.name} (card {e.card}.toml)" for e in entries if e.card not in cards})
    assert not missing, f"{kind} without a card in {kind}/: {missing}"
    orphans = sorted(cards - {e.card for e in entries})
    assert not orphans, f"cards in {kind}/ that name no registered {kind[:-1]}: {orphans}"
