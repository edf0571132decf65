"""A victim's intermediate feature maps through forward hooks on its named modules.

Every built-in victim is an ``nn.Module`` tree -- the ONNX ones too: onnx2torch turns a graph
into a ``torch.fx.GraphModule`` whose nodes are named modules -- so one mechanism reads (and
rewrites) any layer: :func:`spatial_layers` finds, by one dry forward, the modules whose output
is a 4-D (N, C, H, W) tensor; :func:`capture` records a layer's output; :func:`replace_output`
substitutes it (``rbf interpret``'s channel restore, the ``feature_clip`` defense). A module
called more than once per forward (a shared ReLU) is not offered: rewriting it would rewrite
every call. TorchScript modules run no Python hooks, so a TorchScript victim offers none.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from .errors import InputError


def _hookable(victim: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, m in victim.named_modules():
        if name and not isinstance(m, torch.jit.ScriptModule):
            yield name, m


@torch.no_grad()
def spatial_layers(victim: nn.Module, image: Tensor) -> dict[str, tuple[int, ...]]:
    """``{module name: (C, H, W)}`` of the modules that output one 4-D tensor on ``image``
    (a batch of one), in the order their forwards finish (so a container follows its parts)."""
    seen: dict[str, list] = {}
    handles = []
    for name, m in _hookable(victim):
        def hook(_m, _inp, out, name=name):
            seen.setdefault(name, []).append(tuple(out.shape[1:]) if isinstance(out, Tensor) and out.ndim == 4
                                             else None)
        handles.append(m.register_forward_hook(hook))
    try:
        victim(image[:1])
    finally:
        for h in handles:
            h.remove()
    return {n: shapes[0] for n, shapes in seen.items() if len(shapes) == 1 and shapes[0] is not None}


def resolve_layer(victim: nn.Module, layer: str | int, image: Tensor) -> tuple[str, tuple[int, ...]]:
    """(name, (C, H, W)) of ``layer``: a module name, or ``-1`` for the deepest module with a
    spatial (H x W > 1) 4-D output; an unknown name is refused with the valid ones listed."""
    layers = spatial_layers(victim, image)
    vname = getattr(victim, "name", type(victim).__name__)
    if not layers:
        raise InputError(f"victim {vname!r} has no hookable module with a 4-D output "
                         "(TorchScript modules run no Python hooks)")
    if str(layer).strip() == "-1":
        spatial = [n for n, s in layers.items() if s[1] * s[2] > 1]
        name = (spatial or list(layers))[-1]
        return name, layers[name]
    if str(layer) not in layers:
        listing = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in layers.items())
        raise InputError(f"--layer {layer!r} is not a module of {vname!r} with a 4-D output; "
                         f"valid layers (C x H x W): {listing}")
    return str(layer), layers[str(layer)]


def module_of(victim: nn.Module, name: str) -> nn.Module:
    try:
        return victim.get_submodule(name)
    except AttributeError:
        raise InputError(f"victim {getattr(victim, 'name', victim)!r} has no module {name!r}") from None


@contextmanager
def capture(victim: nn.Module, name: str) -> Iterator[list[Tensor]]:
    """Within the block, each forward of module ``name`` appends a copy of its output (a
    clone, detached: a later in-place ReLU must not change what was recorded)."""
    got: list[Tensor] = []
    h = module_of(victim, name).register_forward_hook(lambda _m, _i, out: got.append(out.detach().clone()))
    try:
        yield got
    finally:
        h.remove()


@contextmanager
def replace_output(victim: nn.Module, name: str, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, module ``name``'s output ``a`` is replaced by ``fn(a)`` (differentiable
    when ``fn`` is)."""
    h = module_of(victim, name).register_forward_hook(lambda _m, _i, out: fn(out))
    try:
        yield
    finally:
        h.remove()
