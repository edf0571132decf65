"""Face alignment as a cached data-pipeline step, not part of any victim.

A face victim declares the chip it expects in ``victim.alignment`` (for example
``"dlib_150"`` or ``"arcface_112"``; ``None`` means it takes the image as it is).
An aligner is a function ``aligner(images) -> (chips, detected)``:

* ``images``: list of (3, H, W) float tensors in [0, 1] (sizes may differ);
* ``chips``: (N, 3, h, w) float tensor in [0, 1];
* ``detected``: (N,) bool tensor, False where no face was found and the aligner's documented
  fallback (its docstring says which) was used instead. Runners count and report these.

Aligners register with ``@register_aligner("name")`` in a module of this package; results
are cached per dataset under ``$RBF_CACHE/aligned/`` (a uint8 file read back a batch at a time)
by :func:`align_source` (read back row by row, never mapped); :func:`align_samples` loads them as
one tensor.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import logging
import os
import pkgutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..assets import cache_dir
from ..datasets._base import ArraySource
from ..errors import InputError, UnknownNameError

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


def _key(name: str, aligner: Aligner, samples) -> str:
    # the aligner's own source is part of the key: a changed aligner never gets stale chips
    code = Path(inspect.getfile(aligner)).read_bytes()
    blob = name.encode() + code + "\n".join(str(s.path) for s in samples).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def align_source(name: str, samples, read: Callable | None = None, cache: bool = True,
                 chunk: int = 64) -> tuple[ArraySource, Tensor]:
    """(chips, detected) for ``samples``, the chips an :class:`~..datasets._base.ArraySource`
    over a uint8 file in the cache: aligned ``chunk`` images at a time and read back a batch at
    a time, so memory stays flat however many faces a run has (images are read with
    ``read(sample) -> (3,H,W)``, by default the file at ``sample.path`` at native size).

    The cache key hashes the aligner's name and source file and the sample paths, so neither a
    changed file list nor a changed aligner is served a stale cache. Chips are 8-bit images,
    like the files they came from, and are quantised on the first run too, so cached and fresh
    runs give identical numbers.
    """
    samples = list(samples)
    aligner = get_aligner(name)
    if read is None:
        from ..datasets._base import read_image

        read = lambda s: read_image(s.path)  # noqa: E731
    path = cache_dir() / "aligned" / f"{name}-{_key(name, aligner, samples)}.u8"
    meta = path.with_suffix(".json")
    if cache and path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        return ArraySource(path=path, shape=tuple(info["shape"])), torch.tensor(info["detected"], dtype=torch.bool)
    shape, detected, parts = None, [], []
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    if cache:
        tmp.parent.mkdir(parents=True, exist_ok=True)
    # written with plain writes, not a mapping: dirty mapped pages would count as resident memory
    with (open(tmp, "wb") if cache else contextlib.nullcontext()) as f:
        for i in range(0, len(samples), chunk):
            chips, det = aligner([read(s) for s in samples[i:i + chunk]])
            chips8 = chips.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
            shape = shape or (len(samples), *chips8.shape[1:])
            if f is not None:
                f.write(np.ascontiguousarray(chips8).tobytes())
            else:
                parts.append(chips8)
            detected += det.tolist()
    if shape is None:
        raise InputError(f"align_source({name!r}): no samples to align")
    log.info("aligned %d faces with %s; %d fell back", len(samples), name, len(detected) - sum(detected))
    if not cache:
        return ArraySource(np.concatenate(parts)), torch.tensor(detected, dtype=torch.bool)
    meta.with_name(meta.name + ".tmp").write_text(json.dumps({"shape": list(shape), "detected": detected}))
    os.replace(tmp, path)
    os.replace(meta.with_name(meta.name + ".tmp"), meta)
    return ArraySource(path=path, shape=shape), torch.tensor(detected, dtype=torch.bool)


def align_samples(name: str, samples, read: Callable | None = None, cache: bool = True) -> tuple[Tensor, Tensor]:
    """:func:`align_source`, with the chips loaded as one float tensor (small sets, training)."""
    source, detected = align_source(name, samples, read, cache)
    return source[:], detected
