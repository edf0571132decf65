"""Built-in defenses: the wrapper contract, declared flags, gradient modes, bad parameters."""

import pytest
import torch

import robustbench_face as rbf
from robustbench_face.defenses import DefendedVictim, gradient_mode
from robustbench_face.errors import InputError, UnknownNameError
from robustbench_face.runner import build_victim
from robustbench_face.types import VictimBase

BUILTINS = ["jpeg", "bit_depth", "median", "gaussian_noise", "lgs", "patch_mask"]
FLAGS = {  # name: (differentiable, randomized)
    "jpeg": (False, False), "bit_depth": (False, False), "median": (True, False),
    "gaussian_noise": (True, True), "lgs": (False, False), "patch_mask": (False, False),
}


class Toy(VictimBase):
    """A tiny fixed-weight embedder: enough to exercise every defense in milliseconds."""

    output = "embedding"
    input_size = (32, 16)
    alignment = "toy_chip"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.name = "toy.v1"
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
        self.finalize("cpu")

    def forward(self, x):
        return torch.nn.functional.normalize(self.net(x), dim=1)


@pytest.fixture
def images():
    return torch.rand(3, 3, 32, 16, generator=torch.Generator().manual_seed(1))


def test_all_builtins_registered():
    assert set(BUILTINS) <= set(rbf.list_defenses())


@pytest.mark.parametrize("name", BUILTINS)
def test_wrapper_contract(name, images):
    victim = rbf.create_defense(name)(Toy())
    assert isinstance(victim, DefendedVictim)
    assert (victim.name, victim.output, victim.input_size, victim.alignment) == \
        ("toy.v1", "embedding", (32, 16), "toy_chip")
    assert (victim.differentiable, victim.randomized) == FLAGS[name]
    assert victim.defenses[0].startswith(name)
    out = victim(images)
    assert out.shape == (3, 32) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("name", BUILTINS)
def test_gradient_modes(name, images):
    """Non-differentiable steps: zero gradient naively, identity under BPDA, same forward."""
    victim = rbf.create_defense(name)(Toy())
    probe = torch.randn(32, generator=torch.Generator().manual_seed(2))
    grads, outs = {}, {}
    for mode in ("naive", "bpda"):
        x = images.clone().requires_grad_(True)
        torch.manual_seed(0)
        with gradient_mode(mode):
            out = victim(x)
        (out @ probe).sum().backward()
        grads[mode], outs[mode] = x.grad.abs().sum().item(), out.detach()
    assert torch.allclose(outs["naive"], outs["bpda"], atol=1e-5)
    assert grads["bpda"] > 0
    if FLAGS[name][0]:
        assert grads["naive"] == pytest.approx(grads["bpda"], rel=1e-4)
    else:
        assert grads["naive"] == 0


def test_stacking_follows_flag_order(monkeypatch):
    monkeypatch.setattr("robustbench_face.runner.create_victim", lambda name, device: Toy())
    victim = build_victim("toy", ["median:window=3", "jpeg:quality=50"], "cpu")
    assert victim.defenses == ["median:window=3", "jpeg:quality=50"]
    assert victim.differentiable is False and victim.inner.inner.name == "toy.v1"


def test_randomized_defense_draws(images):
    victim = rbf.create_defense("gaussian_noise", sigma=0.1, draws=4)(Toy())
    with torch.no_grad():
        a, b = victim(images), victim(images)
    assert not torch.equal(a, b)


def test_patch_mask_greys_the_dominant_window():
    class Spot(Toy):  # looks only at the centre: occluding it moves the output most
        def forward(self, x):
            return super().forward(x[..., 12:20, 4:12].repeat(1, 1, 4, 2))

    x = torch.rand(2, 3, 32, 16)
    masked = rbf.create_defense("patch_mask", rows=3, cols=1, height=0.3, width=1.0, threshold=0)
    out = masked.transform(x, Spot())
    assert (out[..., 12:20, 4:12] == 0.5).all()


def test_lgs_suppresses_high_frequency_patch():
    x = torch.full((1, 3, 64, 64), 0.5)
    x[..., 20:40, 20:40] = (torch.rand(1, 3, 20, 20) > 0.5).float()  # a noisy patch
    out = rbf.create_defense("lgs")(x)
    assert out[..., 20:40, 20:40].std() < x[..., 20:40, 20:40].std()
    assert torch.allclose(out[..., :10, :10], x[..., :10, :10])  # flat areas untouched


@pytest.mark.parametrize("spec, match", [
    (("jpeg", {"quality": 0}), "quality=0 is invalid"),
    (("bit_depth", {"bits": 9}), "bits=9"),
    (("median", {"window": 4}), "odd integer"),
    (("gaussian_noise", {"sigma": -1}), "sigma"),
    (("lgs", {"overlap": 20}), "overlap"),
    (("patch_mask", {"rows": 0}), "rows"),
    (("jpeg", {"qualty": 50}), r"unknown option 'qualty'; accepted: quality \(int\)"),
])
def test_bad_parameters(spec, match):
    name, kwargs = spec
    with pytest.raises(InputError, match=match):
        rbf.create_defense(name, **kwargs)


def test_unknown_defense_lists_available():
    with pytest.raises(UnknownNameError, match="available:.*jpeg"):
        rbf.create_defense("jpg")


def test_cli_bad_parameter_fails_before_models(tmp_path, capsys, monkeypatch):
    from robustbench_face import cli

    monkeypatch.setattr("sys.argv", ["rbf", "run", "--attack", "pgd", "--victim", "osnet_x0_25",
                                     "--dataset", "mini_market1501", "--defense", "jpeg:quality=200",
                                     "--out", str(tmp_path / "r.csv")])
    monkeypatch.setattr("robustbench_face.runner.create_victim",
                        lambda *a, **k: pytest.fail("a victim was built before the check"))
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 2
    assert "defense jpeg: quality=200 is invalid" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
