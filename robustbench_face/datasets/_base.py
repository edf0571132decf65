"""What every dataset loader returns, and the one image reader everything uses."""

from __future__ import annotations

import functools
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
