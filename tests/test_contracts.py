"""Contract tests parametrised over the registries: a new plugin is tested without a new file.

Victims: [0,1] NCHW of any size in, finite output of the declared kind out, unit norm for
embeddings, differentiable, eval mode, frozen. Attacks: same shape, inside [0,1], finite,
untargeted and targeted. Victims whose weights are not available here are skipped, with the
reason; victims that need user-supplied weights (no default) are skipped likewise.
"""

import warnings

import pytest
import torch

import robustbench_face as rbf
from robustbench_face.errors import AssetError, RbfError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    VICTIMS = rbf.list_victims()
    ATTACKS = rbf.list_attacks()

# Fast settings so the contract runs in seconds; unknown attacks run with their defaults.
FAST = {"pgd": {"steps": 2}, "mifgsm": {"steps": 2}, "patch_iter": {"steps": 2},
        "patch_universal": {}, "cond_patch": {}}
_cache = {}


def victim(name):
    if name not in _cache:
        try:
            _cache[name] = rbf.create_victim(name)
        except (AssetError, TypeError) as exc:  # weights absent, or required user arguments
            _cache[name] = exc
        except RbfError as exc:
            _cache[name] = exc
    v = _cache[name]
    if isinstance(v, Exception):
        pytest.skip(f"{name}: {v}")
    return v


@pytest.mark.parametrize("name", VICTIMS)
def test_victim_contract(name):
    v = victim(name)
    assert v.output in ("embedding", "logits", "regression", "multilabel")
    assert not v.training and all(not p.requires_grad for p in v.parameters())
    x = torch.rand(2, 3, 97, 83, requires_grad=True)  # an odd size: the victim resizes
    y = v(x)
    assert y.ndim == 2 and y.shape[0] == 2 and torch.isfinite(y).all()
    if v.output == "embedding":
        torch.testing.assert_close(y.norm(dim=1), torch.ones(2), atol=1e-4, rtol=0)
    (y * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grey = v(torch.rand(1, 1, 64, 64))
    assert grey.shape[0] == 1


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_contract(name):
    v = victim("osnet_x0_25.market1501")
    try:
        atk = rbf.create_attack(name, **FAST.get(name, {}))
    except AssetError as exc:
        pytest.skip(f"{name}: {exc}")
    torch.manual_seed(0)
    x = torch.rand(2, 3, 256, 128)
    for target in (None, torch.nn.functional.normalize(torch.randn(2, 512), dim=1)):
        adv = atk(v, x, target)
        assert adv.shape == x.shape and adv.dtype == x.dtype
        assert torch.isfinite(adv).all() and adv.min() >= 0 and adv.max() <= 1
        assert not adv.requires_grad
    assert getattr(atk, "distance", "linf") in ("linf", "l2", "patch")
