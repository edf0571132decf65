"""Clean work shared between runs: a victim's outputs on clean inputs, cached on disk by a key.

A benchmark grid runs many cells over the same (victim, defense, dataset): every PGD, patch and
seed of a re-ID column embeds the same clean gallery, every face cell the same clean chips. The
runner asks :meth:`CleanCache.outputs` for them; the first cell computes and stores them, the
others read them back. Aligned chips are cached by the aligner itself (``align.align_source``),
and thresholds are recomputed from the cached scores (they cost nothing).

The key holds everything the numbers depend on: the victim's name and defense specs, its input
spec, the exact list of images (their paths, hashed), batch size, device, and the package
version and git commit, so a changed model, dataset or code is never served a stale entry. A
randomised victim (Gaussian-noise defense) is never cached: its clean outputs depend on the
draw. Entries are ``.npy`` files written under a temporary name and renamed, so concurrent
workers (``--executor ray``) and interrupted runs never leave half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np


class CleanCache:
    """A folder of cached clean outputs (module docstring); ``hits`` / ``misses`` count uses."""

    def __init__(self, root: str | os.PathLike, salt: str = ""):
        self.root, self.salt = Path(root), salt
        self.hits = self.misses = 0

    def key(self, victim, what: str, items: list[str], batch_size: int, device: str) -> str | None:
        if getattr(victim, "randomized", False):
            return None
        spec = getattr(getattr(victim, "input_spec", None), "describe", lambda: "")()
        blob = json.dumps({"victim": getattr(victim, "name", ""), "defenses": list(getattr(victim, "defenses", [])),
                           "spec": spec, "what": what, "batch_size": batch_size, "device": device,
                           "salt": self.salt, "items": hashlib.sha256("\n".join(items).encode()).hexdigest()},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def outputs(self, victim, what: str, items: list[str], batch_size: int, device: str,
                compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()``'s result for this victim and these items, from the cache when there."""
        key = self.key(victim, what, items, batch_size, device)
        if key is None:
            return compute()
        path = self.root / f"{key}.npy"
        if path.is_file():
            self.hits += 1
            return np.load(path)
        self.misses += 1
        out = compute()
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{key}.{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
        return out


def clean_outputs(cache: CleanCache | None, victim, what: str, samples: list[Any], batch_size: int,
                  device: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, through ``cache`` when a run has one (``samples`` identify the images)."""
    if cache is None:
        return compute()
    items = [str(getattr(s, "path", s)) for s in samples]
    return cache.outputs(victim, what, items, batch_size, device, compute)
