"""Tests for the box_blur defense plugin: the protocol, and discovery through the entry point."""

import pytest
import torch


def test_entry_point():
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="robustbench_face.defenses")}
    assert "box_blur" in eps, "install the package first: pip install -e ."


def test_protocol():
    from rbf_defense_example import create

    victim = create(size=3)(Toy())
    x = torch.rand(2, 3, 16, 8, requires_grad=True)
    out = victim(x)
    assert out.shape == (2, 3) and victim.defenses == ["box_blur:size=3"]
    out.sum().backward()
    assert x.grad.abs().sum() > 0  # differentiable


def test_bad_size():
    from rbf_defense_example import create
    from robustbench_face.errors import InputError

    with pytest.raises(InputError, match="size"):
        create(size=4)


class Toy(torch.nn.Module):
    name, output = "toy", "embedding"

    def forward(self, x):
        return torch.nn.functional.normalize(x.mean(dim=(2, 3)), dim=1)
