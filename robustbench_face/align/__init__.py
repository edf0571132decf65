"""Face alignment as a cached data-pipeline step, not part of any victim.

A face victim declares the chip it expects in ``victim.alignment`` (for example
``"dlib_150"`` or ``"arcface_112"``; ``None`` means it takes the image as it is).
An aligner is a function ``aligner(images) -> (chips, detected)``:

* ``images``: list of (3, H, W) float tensors in [0, 1] (sizes may differ);
* ``chips``: (N, 3, h, w) float tensor in [0, 1];
* ``detected``: (N,) bool tensor, False where no face was found and the aligner's documented
  fallback (its docstring says which) was used instead. Runners count and report these.

Aligners register with ``@register_aligner("name")`` in a module of this package; results
are cached per dataset under ``$RBF_CACHE/aligned/`` by :func:`align_samples`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import pkgutil
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..assets import cache_dir
from ..errors import UnknownNameError

log = logging.getLogger(__name__)
Aligner = Callable[[list[Tensor]], tuple[Tensor, Tensor]]
_ALIGNERS: dict[str, Aligner] = {}


def register_aligner(name: str):
    def deco(fn: Aligner) -> Aligner:
        if name in _ALIGNERS:
            raise ValueError(f"duplicate aligner {name!r}")
        _ALIGNERS[name] = fn
        return fn
    return deco


def get_aligner(name: str) -> Aligner:
    # import every aligner module, not only when none is registered: importing one module
    # directly (dlib_chips) must not hide the others (that made lookups depend on test order)
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    if name not in _ALIGNERS:
        raise UnknownNameError(f"unknown alignment {name!r}; available: {', '.join(sorted(_ALIGNERS))}")
    return _ALIGNERS[name]


def align_samples(name: str, samples, read: Callable | None = None, cache: bool = True) -> tuple[Tensor, Tensor]:
    """Align the images of ``samples`` (read with ``read(sample) -> (3,H,W)``, by default the
    image at ``sample.path`` at native size), cached on disk.

    The cache key hashes the aligner's name and source file and the sample paths, so neither a
    changed file list nor a changed aligner is served a stale cache.
    """
    aligner = get_aligner(name)
    # the aligner's own source is part of the key: a changed aligner never gets stale chips
    code = Path(inspect.getfile(aligner)).read_bytes()
    blob = name.encode() + code + "\n".join(str(s.path) for s in samples).encode()
    key = hashlib.sha256(blob).hexdigest()[:16]
    path = cache_dir() / "aligned" / f"{name}-{key}.pt"
    if cache and path.is_file():
        blob = torch.load(path, weights_only=True)
        return blob["chips"].float().div_(255), blob["detected"]
    if read is None:
        from ..datasets._base import read_image

        read = lambda s: read_image(s.path)  # noqa: E731
    chips, detected = aligner([read(s) for s in samples])
    # chips are 8-bit images, like the files they came from: stored as uint8 (4x smaller), and
    # returned quantised on the first run too, so cached and fresh runs give identical numbers
    chips8 = chips.clamp(0, 1).mul(255).round().to(torch.uint8)
    chips = chips8.float().div_(255)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"chips": chips8, "detected": detected}, tmp)
        tmp.replace(path)
    log.info("aligned %d faces with %s; %d fell back", len(samples), name, int((~detected).sum()))
    return chips, detected
