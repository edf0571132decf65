"""What every dataset loader returns, the one image reader everything uses, and image sources
that read a batch at a time (so memory does not grow with the dataset)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


@dataclass(frozen=True)
class Sample:
    """One image. ``pid`` is the identity (or class); -1 marks junk, 0 a distractor in re-ID."""

    path: Path
    pid: int
    camid: int = -1
    split: str = ""
    tracklet: int = -1


@dataclass
class ImageDataset:
    """A list of samples with named splits; images are read lazily by :meth:`load`."""

    name: str
    root: Path
    samples: list[Sample]
    task: str  # "reid", "face" or "affect"
    image_size: tuple[int, int] | None = None  # (H, W) images are resized to when loaded
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Sample]:
        out = [s for s in self.samples if s.split == name]
        if not out:
            have = sorted({s.split for s in self.samples})
            raise DataError(f"dataset {self.name!r} at {self.root} has no {name!r} split; splits: {have}")
        return out

    def load(self, samples: list[Sample], size: tuple[int, int] | None = None) -> Tensor:
        """Stack ``samples`` as an (N, 3, H, W) float tensor in [0, 1]."""
        size = size or self.image_size
        return torch.stack([read_image(s.path, size) for s in samples])

    def source(self, samples: list[Sample], size: tuple[int, int] | None = None) -> "ImageSource":
        """``samples`` as an :class:`ImageSource`: read a batch at a time, never all at once."""
        return ImageSource(samples, size or self.image_size)


class ImageSource:
    """Images read on demand as float32 in [0, 1]: ``len(src)`` and ``src[i:j]`` (or an index
    array) give an (N, 3, H, W) tensor like slicing a loaded tensor would, but only the batch
    asked for is ever decoded, so a run's peak memory is bounded by its batch size, not by the
    dataset (a 13k-face set held as float32 would take 8 GB)."""

    def __init__(self, samples: list[Sample], size: tuple[int, int] | None = None):
        self.samples, self.size = list(samples), size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key) -> Tensor:
        if isinstance(key, (int, np.integer)):
            return read_image(self.samples[key].path, self.size)
        idx = range(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64).tolist()
        imgs = [read_image(self.samples[i].path, self.size) for i in idx]
        if not imgs:
            return torch.zeros(0, 3, *(self.size or (1, 1)))
        try:
            return torch.stack(imgs)
        except RuntimeError:
            raise DataError(f"images differ in size ({', '.join(sorted({str(tuple(i.shape[1:])) for i in imgs}))}); "
                            "load them at one size (an aligner, or the dataset's image_size)") from None

    def sizes(self) -> set[tuple[int, int]]:
        """The (H, W) sizes the batches will have, read from the file headers only."""
        if self.size is not None:
            return {tuple(self.size)}
        from PIL import Image

        out = set()
        for s in self.samples:
            with Image.open(s.path) as im:
                out.add((im.size[1], im.size[0]))
        return out


class ArraySource:
    """uint8 (N, C, H, W) images -- an array in memory, or a raw file of them on disk -- served
    like :class:`ImageSource`: batches as float32 in [0, 1], decoded on demand.

    A file is read with ``os.pread``, row by row, rather than memory-mapped: pages of a mapping
    count toward the process's resident memory once touched, so a mapped file of 12k face chips
    would grow a run's peak RSS with the dataset, which streaming is there to prevent."""

    def __init__(self, array: np.ndarray | None = None, path: str | Path | None = None,
                 shape: tuple[int, ...] | None = None):
        if (array is None) == (path is None):
            raise ValueError("ArraySource takes an array or a file path (with its shape)")
        self.array, self.path = array, None if path is None else Path(path)
        self.shape = tuple(array.shape) if array is not None else tuple(shape)
        self._row = int(np.prod(self.shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for j, i in enumerate(idx.tolist()):
                buf = os.pread(fd, self._row, i * self._row)
                out[j] = np.frombuffer(buf, dtype=np.uint8).reshape(self.shape[1:])
        finally:
            os.close(fd)
        return out

    def __getitem__(self, key) -> Tensor:
        single = isinstance(key, (int, np.integer))
        idx = np.arange(len(self))[key] if isinstance(key, (slice, int, np.integer)) else np.asarray(key, dtype=np.int64)
        idx = np.atleast_1d(idx)
        data = np.array(self.array[idx]) if self.array is not None else self._rows(idx)
        x = torch.from_numpy(data).float().div_(255)
        return x[0] if single else x


class Subset:
    """The items ``indices`` of another source (a tensor, :class:`ImageSource`, ...), lazily."""

    def __init__(self, source, indices):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key) -> Tensor:
        return self.source[self.indices[key]]


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> Tensor:
    """Read an image file as a (3, H, W) float tensor in [0, 1]; greyscale is repeated to RGB.

    ``size`` is (H, W); resizing uses PIL bilinear on 8-bit pixels, as torchreid's and most
    face pipelines' transforms do, so clean numbers match theirs.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


# Formats PIL opens but cannot turn into pixels: it parses MPEG's header only, and IPTC files
# hold metadata, not an image. (Stub formats are left out by their class.)
_NO_PIXELS = {"MPEG", "IPTC"}


@functools.lru_cache(maxsize=1)
def image_suffixes() -> frozenset[str]:
    """Lower-case file suffixes of every format PIL can decode (``.jpg``, ``.pgm``, ``.tif``, ...).

    Read from PIL's own registry rather than kept as a list here, so folder loaders take any
    image PIL reads (a hand-kept list once rejected ORL-style ``.tif`` sets) and pick up what a
    newer Pillow or a PIL plugin adds. Stub formats (HDF5, GRIB, BUFR, WMF off Windows) need a
    handler installed from outside to decode, so they are left out.

    >>> {".jpg", ".pgm", ".png", ".tif", ".tiff"} <= image_suffixes(), ".h5" in image_suffixes()
    (True, False)
    """
    from PIL import Image, ImageFile

    Image.init()
    out = set()
    for suffix, fmt in Image.registered_extensions().items():
        factory = Image.OPEN.get(fmt, (None,))[0]
        if factory is None or fmt in _NO_PIXELS:
            continue
        if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
            continue
        out.add(suffix.lower())
    return frozenset(out)


def stratified_subset(pids, n: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded, identity-stratified subset of ``n`` items (all when ``n`` is None or
    covers them), in dataset order: what ``--limit N`` evaluates.

    The rule (``docs/protocols.md``): with ``numpy.random.default_rng(seed)``, shuffle the
    identities, then shuffle each identity's items; take the first item of every identity in
    that order, then the second of every identity that has one, and so on, until ``n``. So
    ``--limit 16`` on mini_mars is one query of each of the 16 people, not 16 frames of one
    tracklet, and the same seed always draws the same subset.

    >>> stratified_subset([1, 1, 1, 2, 2, 3], 3, seed=0).tolist()  # one item of each identity
    [2, 3, 5]
    >>> stratified_subset([1, 1, 2], None, seed=0).tolist()
    [0, 1, 2]
    """
    pids = np.asarray(pids)
    if n is None or n >= len(pids):
        return np.arange(len(pids))
    rng = np.random.default_rng(seed)
    ids = np.unique(pids)
    rng.shuffle(ids)
    queues = [list(rng.permutation(np.flatnonzero(pids == p))) for p in ids]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        picked += [int(q[depth]) for q in queues if depth < len(q)][: n - len(picked)]
        depth += 1
    return np.sort(np.array(picked, dtype=np.int64))
