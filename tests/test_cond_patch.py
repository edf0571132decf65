"""cond_patch: generator contract, checkpoint round trip, validate / describe, resume, and a
tiny training run."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import needs_mars, needs_osnet
from robustbench_face import create_attack
from robustbench_face.attacks._eot import EOTConfig, paste_eot
from robustbench_face.attacks._regions import parse_region, paste
from robustbench_face.attacks.cond_patch import CondPatch, default_checkpoint, load_generator, save_generator
from robustbench_face.attacks.cond_patch.generator import GeneratorConfig, PatchGenerator, encode_source
from robustbench_face.errors import InputError

TINY = GeneratorConfig(feat_channels=(4, 8, 8, 8), embed_dim=16, width=8, cond_dim=8)
V = "osnet_x0_25.market1501"


class FakeVictim(nn.Module):
    """Embedding victim with OSNet-like multi-scale maps (strides 2, 8, 16, 16)."""

    name = "fake"
    output = "embedding"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(3, 4, 3, 2, 1)
        self.c2 = nn.Conv2d(4, 8, 3, 4, 1)
        self.c3 = nn.Conv2d(8, 8, 3, 2, 1)
        self.c5 = nn.Conv2d(8, 8, 3, 1, 1)
        self.fc = nn.Linear(8, 16)

    def feature_maps(self, x):
        x = F.interpolate(x, size=(256, 128), mode="bilinear", align_corners=False)
        a = self.c1(x); b = self.c2(a); c = self.c3(b); d = self.c5(c)
        return [a, b, c, d]

    def forward(self, x):
        return F.normalize(self.fc(self.feature_maps(x)[-1].mean((2, 3))), dim=1)


@pytest.fixture
def tiny_ckpt(tmp_path):
    torch.manual_seed(1)
    model = PatchGenerator(TINY)
    with torch.no_grad():  # non-zero head and FiLM (both start at zero) so the condition matters
        model.head.weight.normal_(0, 0.5)
        for block in (model.b8, model.b16, model.b32, model.b64):
            block.film.weight.normal_(0, 0.5)
    path = tmp_path / "tiny.safetensors"
    save_generator(path, model, {"attack": "cond_patch"})
    return path, model


@pytest.mark.parametrize("target_kind", ["none", "embedding", "images", "mixed"])
def test_generator_shape_and_bounds(target_kind):
    model = PatchGenerator(TINY)
    with torch.no_grad():
        model.base.mul_(10)  # saturate: the sigmoid must still hold [0, 1]
    victim = FakeVictim()
    x = torch.rand(3, 3, 256, 128)
    crops, pooled = encode_source(victim, x, model.region)
    target = None if target_kind == "none" else F.normalize(torch.randn(3, 16), dim=1)
    is_t = torch.tensor([True, False, True]) if target_kind == "mixed" else None
    p = model(crops, pooled, target, is_t)
    assert p.shape == (3, 3, 64, 64)
    assert p.min() >= 0 and p.max() <= 1


@pytest.mark.parametrize("target_kind", ["none", "embedding", "images"])
def test_attack_contract(tiny_ckpt, target_kind):
    path, _ = tiny_ckpt
    attack = create_attack("cond_patch", checkpoint=str(path))
    assert attack.distance == "patch"
    x = torch.rand(2, 3, 256, 128)
    target = {"none": None, "embedding": F.normalize(torch.randn(2, 16), dim=1),
              "images": torch.rand(2, 3, 256, 128)}[target_kind]
    adv = attack(FakeVictim(), x, target)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    changed = (adv - x).abs().amax(1) > 0
    y0, x0, ph, pw = parse_region("torso").box(256, 128)
    outside = changed.clone(); outside[:, y0:y0 + ph, x0:x0 + pw] = False
    assert not outside.any() and changed.float().mean() <= 0.125


def test_target_condition_changes_patch(tiny_ckpt):
    path, _ = tiny_ckpt
    attack, v, x = CondPatch(checkpoint=path), FakeVictim(), torch.rand(2, 3, 256, 128)
    t = F.normalize(torch.randn(2, 16), dim=1)
    assert not torch.allclose(attack.generate(v, x, None), attack.generate(v, x, t))


def test_attack_rejects_bad_target(tiny_ckpt):
    with pytest.raises(InputError, match="target"):
        CondPatch(checkpoint=tiny_ckpt[0])(FakeVictim(), torch.rand(2, 3, 256, 128), torch.rand(2, 7))


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(InputError, match="nope.safetensors"):
        CondPatch(checkpoint=tmp_path / "nope.safetensors")(FakeVictim(), torch.rand(1, 3, 256, 128))


def test_checkpoint_round_trip(tiny_ckpt):
    path, model = tiny_ckpt
    loaded = load_generator(path)
    assert loaded.cfg == model.cfg
    crops, pooled = encode_source(FakeVictim(), torch.rand(2, 3, 256, 128), model.region)
    t = F.normalize(torch.randn(2, 16), dim=1)
    with torch.no_grad():
        assert torch.allclose(loaded(crops, pooled, t), model(crops, pooled, t), atol=5e-3)  # float16 storage
    assert json.loads(path.with_suffix(".json").read_text())["attack"] == "cond_patch"


def test_eot_off_is_hard_paste_and_on_is_differentiable():
    x, p = torch.rand(2, 3, 256, 128), torch.rand(2, 3, 64, 64, requires_grad=True)
    box = parse_region("torso").box(256, 128)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(paste_eot(x, p, box, gen, EOTConfig(enabled=False)), paste(x, p, box))
    out = paste_eot(x, p, box, gen, EOTConfig())
    assert out.shape == x.shape
    out.sum().backward()
    assert p.grad.abs().sum() > 0


def test_shipped_checkpoint_is_small_and_documented():
    path = default_checkpoint()
    assert path.stat().st_size < 2 << 20  # 1.6 MB: float16, 0.83 M params
    card = json.loads(path.with_suffix(".json").read_text())
    for key in ("config", "surrogates", "dataset", "split", "seed", "wall_time_s", "history"):
        assert key in card
    assert card["split"] == "train" and "msmt17" not in " ".join(card["surrogates"])
    assert load_generator(path).cfg.patch_size == (64, 64)


@needs_osnet
@needs_mars
def test_tiny_training_lowers_loss_and_resumes(tmp_path):
    from robustbench_face import create_victim
    import importlib

    train_mod = importlib.import_module("robustbench_face.attacks.cond_patch.train")  # the module, not the function
    from robustbench_face.attacks._learned.data import prepare_data
    from robustbench_face.attacks._learned.losses import LossWeights
    from robustbench_face.attacks.cond_patch import train

    kw = dict(limit=8, batch_size=4, width=8, cond_dim=16, eot=False, lr=5e-3, base_lr=0.1,
              log_every=1, save_every=100)
    p0 = train([V], steps=0, out=str(tmp_path / "a.safetensors"), **kw)
    m0 = load_generator(p0)
    p1 = train([V], steps=4, out=str(tmp_path / "a.safetensors"), resume=True, **kw)
    p1 = train([V], steps=8, out=str(tmp_path / "a.safetensors"), resume=True, **kw)
    card = json.loads(p1.with_suffix(".json").read_text())
    assert card["steps"] == 8 and [h["step"] for h in card["history"]] == list(range(1, 9))
    m1 = load_generator(p1)
    victim = create_victim(V)
    region = parse_region("torso")
    data = prepare_data([victim], "mini_mars", "train", None, "cpu", region, limit=8)
    hp = {**train_mod.DEFAULTS, **kw}
    box = region.box(256, 128)

    def loss(model):
        gen = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return float(train_mod._step(model, [victim], data, hp, LossWeights(), EOTConfig(enabled=False), box, gen, "cpu")[0])

    assert loss(m1) < loss(m0)


def test_bounded_generator_never_goes_dead():
    """The collapse fix: even with exploded weights the patch stays inside sigmoid(+-z_max) and
    every module still receives gradient (the unbounded network had exactly zero)."""
    model = PatchGenerator(TINY)
    assert TINY.bounded
    with torch.no_grad():
        model.head.weight.normal_(0, 50.0)  # logits |z| >> z_max, as in the collapsed run
        for block in (model.b8, model.b16, model.b32, model.b64):
            block.film.weight.normal_(0, 0.5)
    x = torch.rand(3, 3, 256, 128)
    crops, pooled = encode_source(FakeVictim(), x, model.region)
    p, z = model(crops, pooled, F.normalize(torch.randn(3, 16), dim=1), return_logits=True)
    lo = torch.sigmoid(torch.tensor(-TINY.z_max))
    assert p.min() >= lo - 1e-6 and p.max() <= 1 - lo + 1e-6 and z.abs().max() > TINY.z_max
    (p * torch.randn_like(p)).sum().backward()
    for name in ("base", "head.weight", "b64.film.weight", "b8.conv1.weight", "cond.0.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name


def test_pre_fix_checkpoint_config_loads_unbounded():
    d = TINY.to_dict()
    del d["bounded"], d["target_map"]
    cfg = GeneratorConfig.from_dict(d)
    assert not cfg.bounded and cfg.target_map == 0
    keys = set(PatchGenerator(cfg).state_dict())
    assert keys == set(PatchGenerator(TINY).state_dict()) - {"tmap.weight", "tmap.bias"}


def test_saturation_and_contrast_losses():
    from robustbench_face.attacks._learned.losses import contrast, saturation

    assert saturation(torch.full((2, 3, 4, 4), 3.0), 4.0).tolist() == [0.0, 0.0]
    means = F.normalize(torch.eye(3, 8), dim=1)
    good, bad = contrast(means, means, torch.arange(3), 0.1), contrast(means, means, torch.tensor([1, 2, 0]), 0.1)
    assert (good < bad).all()


BANK = GeneratorConfig(feat_channels=(4, 8, 8, 8), embed_dim=16, width=8, cond_dim=8, n_bases=3)


def test_attractor_bank_round_trip_and_choice(tmp_path):
    torch.manual_seed(2)
    model = PatchGenerator(BANK)
    with torch.no_grad():
        model.anchors.copy_(F.normalize(torch.randn(3, 16), dim=1))
    path = tmp_path / "bank.safetensors"
    save_generator(path, model, {"attack": "cond_patch"})
    loaded = load_generator(path)
    assert loaded.cfg.n_bases == 3 and torch.allclose(loaded.anchors, model.anchors, atol=1e-3)
    victim, x = FakeVictim(), torch.rand(4, 3, 256, 128)
    with torch.no_grad():
        src = victim(x)
        far = loaded.choose(src)
        assert torch.equal(far, (src @ loaded.anchors.T).argmin(1))  # evasion: the farthest anchor
        out = CondPatch(checkpoint=path)(victim, x)
        crops, pooled = encode_source(victim, x, loaded.region)
        want = paste(x, loaded(crops, pooled, choice=far), loaded.region.box(256, 128))
    assert torch.allclose(out, want)
    with pytest.raises(ValueError, match="choice"):
        loaded(crops, pooled)


def test_single_base_generator_seeds_a_bank(tmp_path, tiny_ckpt):
    from robustbench_face.attacks.cond_patch.train import _init_from

    path, small = tiny_ckpt
    bank = PatchGenerator(GeneratorConfig(**{**TINY.to_dict(), "n_bases": 2}))
    _init_from(bank, str(path))
    assert torch.allclose(bank.base[0], load_generator(path).base)
    assert not torch.allclose(bank.base[1], bank.base[0])


@needs_osnet
@needs_mars
def test_attractor_bank_trains_and_moves_its_anchors(tmp_path):
    from robustbench_face.attacks.cond_patch import train

    p = train([V], steps=3, out=str(tmp_path / "b.safetensors"), limit=8, batch_size=4, width=8,
              cond_dim=16, eot=False, n_bases=2, explore=1.0, log_every=1)
    model = load_generator(p)
    assert model.cfg.n_bases == 2 and model.base.shape[0] == 2
    assert torch.allclose(model.anchors.norm(dim=1), torch.ones(2), atol=1e-2)


def test_card_names_a_face_generator_trained_on_aligned_train_chips():
    path = default_checkpoint("dlib_resnet.v1")
    assert path.name == "cond_patch.dlib_resnet.v1.safetensors" and path.stat().st_size < 2 << 20
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["split"] == "train" and card["dataset"] == "orl" and card["n_images"] == 300
    assert load_generator(path).cfg.region == (0.30, 0.10, 0.16, 0.80)  # eyeglass


def test_face_run_on_holdout_people(tmp_path):
    """`rbf run --attack cond_patch --victim dlib_resnet --split holdout` on unseen ORL people."""
    from robustbench_face.errors import AssetError
    from robustbench_face.runner import RunConfig, run

    try:
        rows = run(RunConfig(attack="cond_patch", victim="dlib_resnet", dataset="orl", mode="dodging",
                             limit=4, task_options={"split": "holdout", "far": 0.01},
                             out=str(tmp_path / "r.csv")))
    except AssetError as exc:
        pytest.skip(f"ORL or dlib weights unavailable: {exc}")
    r = rows[0]
    assert "split=holdout" in r["pairs_rule"] and r["n_genuine"] == 450
    assert r["perturbation"] == pytest.approx(0.128, abs=2e-3) and 0 <= r["success_rate"] <= 1
    if r.get("attack_config"):  # the runner records describe(): the checkpoint it chose, by sha256
        cfg = json.loads(r["attack_config"])
        assert cfg["checkpoint"] == "checkpoints/cond_patch.dlib_resnet.v1.safetensors"
        assert len(cfg["checkpoint_sha256"]) == 64 and cfg["region"] == [0.3, 0.1, 0.16, 0.8]


@needs_osnet
@needs_mars
def test_any_backbone_as_the_extractor(tmp_path):
    """-a extractor=NAME: the generator conditions on another registered backbone's maps."""
    from robustbench_face import create_victim
    from robustbench_face.attacks.cond_patch import train
    from robustbench_face.registry import VICTIMS

    VICTIMS.register("fake_backbone", summary="test backbone with OSNet-like maps")(lambda device="cpu": FakeVictim())
    try:
        p = train([V], steps=2, out=str(tmp_path / "e.safetensors"), limit=8, batch_size=4, width=8,
                  cond_dim=16, eot=False, extractor="fake_backbone")
        model = load_generator(p)
        assert model.cfg.extractor == "fake_backbone" and model.cfg.feat_channels == (4, 8, 8, 8)
        assert model.cfg.embed_dim == 512  # targets still live in the attacked victim's space
        x = torch.rand(2, 3, 256, 128)
        out = CondPatch(checkpoint=p)(create_victim(V), x)
        assert out.shape == x.shape and not torch.equal(out, x)
    finally:
        VICTIMS.unregister("fake_backbone")
    with pytest.raises(InputError, match="feature_maps"):
        from robustbench_face.attacks._learned.data import WithExtractor
        WithExtractor(FakeVictim(), nn.Linear(2, 2))


@needs_osnet
@needs_mars
def test_ensemble_of_surrogates_trains_and_is_recorded(tmp_path):
    """--victim V --victim V2: the loss averages over surrogates; the first is the extractor."""
    from robustbench_face.attacks.cond_patch import train
    from robustbench_face.registry import VICTIMS

    VICTIMS.register("fake_surrogate", summary="test surrogate, 16-d embeddings")(lambda device="cpu": FakeVictim())
    try:
        p = train([V, "fake_surrogate"], steps=2, out=str(tmp_path / "s.safetensors"), limit=8,
                  batch_size=4, width=8, cond_dim=16, eot=False, log_every=1)
    finally:
        VICTIMS.unregister("fake_surrogate")
    card = json.loads(p.with_suffix(".json").read_text())
    assert card["surrogates"] == [V, "fake_surrogate"] and len(card["history"]) == 2
    assert load_generator(p).cfg.feat_channels == (16, 64, 96, 128)  # OSNet x0.25's maps


# -- on the Attack base: validate, describe, region, shipped checkpoints ----------------------

def test_is_a_registered_attack_class_with_a_train_hook():
    from robustbench_face.attacks._base import Attack
    from robustbench_face.registry import ATTACKS

    entry = ATTACKS.get("cond_patch")
    assert entry.factory is CondPatch and issubclass(CondPatch, Attack) and entry.card == "cond_patch"
    assert entry.summary.startswith("Conditional patch generator")
    assert CondPatch.train.__module__ == "robustbench_face.attacks.cond_patch.train"
    assert CondPatch.heads == ("embedding", "logits") and CondPatch.distance == "patch"
    assert create_attack("cond_patch", seed=3).seed == 3


def test_validate_refuses_a_victim_without_a_generator():
    attack = create_attack("cond_patch")
    with pytest.raises(InputError, match=r"no generator trained for victim 'mobileface'.*rbf train cond_patch"):
        attack.validate("mobileface", "embedding", "impersonation", True)
    with pytest.raises(InputError, match="regression"):
        attack.validate("osnet", "regression", "targeted", True)


@pytest.mark.parametrize("victim,head,kind", [("fer_xception", "embedding", "class"),
                                              ("osnet", "logits", "embedding"),
                                              ("dlib_resnet", "logits", "embedding")])
def test_validate_refuses_a_head_the_checkpoint_does_not_fit(victim, head, kind):
    with pytest.raises(InputError, match=f"trained with {kind} targets.*rbf train cond_patch --victim {victim}"):
        create_attack("cond_patch").validate(victim, head, "targeted", True)


@pytest.mark.parametrize("victim,head,file,region", [
    ("osnet", "embedding", "cond_patch.osnet_x0_25.market1501.safetensors", [0.25, 0.25, 0.25, 0.5]),
    ("dlib_resnet", "embedding", "cond_patch.dlib_resnet.v1.safetensors", [0.30, 0.10, 0.16, 0.80]),
    ("fer_xception.fer2013", "logits", "cond_patch.fer_xception.fer2013.safetensors", [0.34, 0.10, 0.16, 0.80])])
def test_validate_binds_the_victims_checkpoint_and_describe_records_it(victim, head, file, region):
    from robustbench_face.cards import load_card

    attack = create_attack("cond_patch")
    assert attack.region is None and "per victim" in attack.describe()["checkpoint"]
    attack.validate(victim, head, "evasion", False)
    d = attack.describe()
    entry = next(e for e in load_card("attacks", "cond_patch")["checkpoints"].values() if e["file"] == file)
    assert d["checkpoint"] == f"checkpoints/{file}" and d["checkpoint_sha256"] == entry["sha256"]
    assert d["region"] == pytest.approx(region) and attack.region.area == pytest.approx(region[2] * region[3])
    assert d["generator"]["condition"] == ("class" if head == "logits" else "embedding")
    assert not attack._models  # metadata only: no generator was built
    json.dumps(d)


def test_explicit_checkpoint_region_and_describe_without_loading(tiny_ckpt):
    from robustbench_face.assets import sha256sum

    path, model = tiny_ckpt
    attack = create_attack("cond_patch", checkpoint=str(path))
    assert attack.region == model.region and not attack._models
    d = attack.describe()
    assert d["checkpoint"] == "tiny.safetensors"  # outside the checkout: never an absolute path
    assert d["checkpoint_sha256"] == sha256sum(path)


def test_an_altered_checkpoint_is_never_used(tmp_path, monkeypatch):
    from robustbench_face import cards
    from robustbench_face.errors import ChecksumError

    bad = tmp_path / "checkpoints"
    bad.mkdir()
    (bad / "cond_patch.osnet_x0_25.market1501.safetensors").write_bytes(b"not the generator")
    monkeypatch.setattr(cards, "checkpoint_dirs", lambda: [bad])
    with pytest.raises(ChecksumError):
        create_attack("cond_patch").validate("osnet", "embedding", "evasion", False)
