"""``rbf plugin new defense|attack|victim NAME``: scaffold a separate, installable plugin package.

Third-party plugins are ordinary Python distributions that declare an entry point in the group
``robustbench_face.<kind>s`` (``victims``, ``attacks``, ``defenses``, ``datasets``): the entry
point's name is the plugin name and its object the factory, exactly like a built-in registered
with ``@DEFENSES.register``. After ``pip install``, ``rbf list`` shows it and ``rbf run`` uses it;
nothing in robustbench_face changes. A plugin that fails to import warns with its name and is
skipped (see ``registry.py``). The scaffold writes::

    rbf-<kind>-<name>/
      pyproject.toml        entry point: [project.entry-points."robustbench_face.<kind>s"]
      rbf_<name>/__init__.py the factory ``create(**kwargs)``, paper in the docstring
      tests/test_<name>.py  pytest: builds the plugin, checks the protocol and the entry point
      README.md             install, use, test
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from .errors import InputError

PLUGIN_KINDS = ("defense", "attack", "victim")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "rbf-{kind}-{dist}"
version = "0.1.0"
description = "{summary}"
requires-python = ">=3.11"
dependencies = ["robustbench_face"]

[project.entry-points."robustbench_face.{kind}s"]
{name} = "rbf_{name}:create"

[tool.setuptools]
packages = ["rbf_{name}"]
'''

_MODULES = {
    "defense": '''"""{name}: a robustbench_face defense plugin. {summary}

Paper: <authors, title, venue, year> -- say where the idea comes from.

A defense factory returns ``defense(victim) -> victim``. Subclassing ``Transform`` gives that
for free: implement ``transform`` (images in [0, 1] -> images in [0, 1]) and declare whether
it is ``differentiable`` (False: attacks get BPDA) and ``randomized`` (True: attacks get EOT).
"""

from __future__ import annotations

from robustbench_face.defenses import Transform, check_known, check_param


class {cls}(Transform):
    name = "{name}"
    differentiable = True
    randomized = False

    def __init__(self, strength: float = 0.5):
        check_param("{name}", "strength", strength,
                    isinstance(strength, (int, float)) and 0 <= strength <= 1, "a number in [0, 1]")
        super().__init__(strength=strength)
        self.strength = float(strength)

    def transform(self, x, victim=None):
        # Replace with your defense. This one blends each image toward its mean colour.
        mean = x.mean(dim=(2, 3), keepdim=True)
        return (1 - self.strength) * x + self.strength * mean


def create(**kwargs) -> {cls}:
    """{summary}"""
    check_known("{name}", kwargs, ("strength",))
    return {cls}(**kwargs)
''',
    "attack": '''"""{name}: a robustbench_face attack plugin. {summary}

Paper: <authors, title, venue, year>. Distance: L-inf.

An attack is a callable ``attack(victim, images, target=None) -> adv_images`` (images in
[0, 1]); ``objective`` turns any victim head into a per-sample score to maximise.
"""

from __future__ import annotations

import torch

from robustbench_face.attacks._objective import objective


class {cls}:
    distance = "linf"

    def __init__(self, eps: float = 8 / 255):
        self.eps = float(eps)

    def __call__(self, victim, images, target=None):
        # Replace with your attack. This one is a single signed-gradient (FGSM) step.
        score = objective(victim, images, target)
        x = images.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(score(victim(x)).sum(), x)
        return (images + self.eps * grad.sign()).clamp(0, 1).detach()

    def __repr__(self):
        return f"{cls}(eps={{self.eps:.5g}})"


def create(**kwargs) -> {cls}:
    """{summary}"""
    return {cls}(**kwargs)
''',
    "victim": '''"""{name}: a robustbench_face victim plugin. {summary}

Paper / weights: <where the model and its weights come from, and their licence>.

A victim is an ``nn.Module`` taking NCHW images in [0, 1] of any size, doing its own resize
and normalisation differentiably, and returning L2-normalised embeddings (or logits ...).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustbench_face.types import VictimBase


class {cls}(VictimBase):
    output = "embedding"
    input_size = (64, 64)

    def __init__(self):
        super().__init__()
        self.name = "{name}"
        torch.manual_seed(0)  # replace with real weights
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def forward(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return F.normalize(self.net(x), dim=1)


def create(device: str = "cpu", weights: str | None = None) -> {cls}:
    """{summary}"""
    return {cls}().finalize(device)
''',
}

_TESTS = {
    "defense": '''
def test_protocol():
    from rbf_{name} import create

    defense = create()
    victim = defense(Toy())
    x = torch.rand(2, 3, 32, 16)
    assert victim(x).shape == (2, 4)
    assert victim.defenses == ["{name}:strength=0.5"]


class Toy(torch.nn.Module):
    name, output = "toy", "embedding"

    def forward(self, x):
        return torch.nn.functional.normalize(x.mean(dim=(2, 3)).repeat(1, 2)[:, :4], dim=1)
''',
    "attack": '''
def test_protocol():
    from rbf_{name} import create

    victim = Toy()
    x = torch.rand(2, 3, 8, 8)
    adv = create(eps=8 / 255)(victim, x)
    assert adv.shape == x.shape and float((adv - x).abs().max()) <= 8 / 255 + 1e-6


class Toy(torch.nn.Module):
    name, output = "toy", "embedding"

    def forward(self, x):
        return torch.nn.functional.normalize(x.flatten(1)[:, :4], dim=1)
''',
    "victim": '''
def test_protocol():
    from rbf_{name} import create

    victim = create()
    out = victim(torch.rand(2, 3, 100, 50))
    assert out.shape == (2, 16) and torch.allclose(out.norm(dim=1), torch.ones(2))
''',
}

_TEST_HEAD = '''"""Tests for the {name} {kind} plugin: the protocol, and discovery through the entry point."""

import torch


def test_entry_point():
    from importlib.metadata import entry_points

    eps = {{ep.name: ep for ep in entry_points(group="robustbench_face.{kind}s")}}
    assert "{name}" in eps, "install the package first: pip install -e ."
'''

_README = '''# rbf-{kind}-{dist}

{summary}

A [robustbench_face](https://github.com/) {kind} plugin. Installing it registers the {kind}
`{name}` through the entry point group `robustbench_face.{kind}s`; nothing else is needed.

```bash
pip install -e .            # or: pip install .
rbf list {kind}s            # shows {name}
{usage}
pytest tests/
```

Edit `rbf_{name}/__init__.py`: the factory `create(**kwargs)` is what the entry point names.
Its docstring's first line is the summary `rbf list` prints. Keep the paper in the module
docstring.
'''

_USAGE = {
    "defense": "rbf run --attack pgd --victim osnet_x0_25.market1501 --defense {name}:strength=0.3",
    "attack": "rbf run --attack {name} -a eps=4/255 --victim osnet_x0_25.market1501",
    "victim": "rbf run --attack pgd --victim {name}",
}


def check_name(kind: str, name: str) -> None:
    if kind not in PLUGIN_KINDS:
        raise InputError(f"plugin kind {kind!r}: use one of {', '.join(PLUGIN_KINDS)}")
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise InputError(f"plugin name {name!r}: use lower-case letters, digits and '_', "
                         "starting with a letter (it becomes a Python module name)")


def new_plugin(kind: str, name: str, directory: str | Path = ".",
               summary: str | None = None) -> Path:
    """Write the scaffold of a ``kind`` plugin called ``name`` under ``directory``; returns it."""
    check_name(kind, name)
    dist = name.replace("_", "-")
    root = Path(directory) / f"rbf-{kind}-{dist}"
    if root.exists():
        raise InputError(f"{root} already exists; choose another name or --dir")
    summary = summary or f"The {name} {kind} for robustbench_face."
    fields = {"kind": kind, "name": name, "dist": dist, "summary": summary,
              "cls": "".join(p.title() for p in name.split("_"))}
    fields["usage"] = _USAGE[kind].format(**fields)
    files = {
        "pyproject.toml": _PYPROJECT.format(**fields),
        f"rbf_{name}/__init__.py": _MODULES[kind].format(**fields),
        f"tests/test_{name}.py": (_TEST_HEAD + _TESTS[kind]).format(**fields),
        "README.md": _README.format(**fields),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
