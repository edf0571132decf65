"""Identity folders: ``<root>/<identity>/<image>`` (ORL, LFW, CelebA-HQ identity and PubFig style).

Every image gets the split ``all``; identities are numbered in sorted folder order and the
folder names are kept in ``meta["identities"]``. ``orl`` is the AT&T / ORL face set
(Samaria & Harter, "Parameterisation of a stochastic model for human face identification",
WACV 1994): 40 people, 10 greyscale 92x112 images each, loaded at native size. ORL carries
a fixed identity-disjoint split for learned attacks: subjects ``s1``..``s30`` are ``train``,
``s31``..``s40`` are ``holdout`` (a name outside the affect runner's default evaluation splits,
so plain runs still evaluate all 400 faces; ``--split holdout`` evaluates the unseen people).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..assets import dataset_root
from ..errors import DataError
from ..registry import DATASETS
from ._base import ImageDataset, Sample

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".ppm", ".webp"}


def read_identity_folders(root: Path, name: str, task: str = "face",
                          image_size: tuple[int, int] | None = None,
                          split_of: Callable[[str], str] | None = None) -> ImageDataset:
    """``split_of(folder name)`` names each identity's split (default: ``all``)."""
    idents = sorted(d for d in root.iterdir() if d.is_dir())
    samples = []
    for pid, d in enumerate(idents):
        split = split_of(d.name) if split_of else "all"
        for p in sorted(d.iterdir(), key=lambda q: (len(q.stem), q.name)):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(p, pid, -1, split))
    if not samples:
        raise DataError(f"no images in identity folders under {root} (expected <identity>/<image>)")
    return ImageDataset(name, root, samples, task=task, image_size=image_size,
                        meta={"identities": [d.name for d in idents]})


@DATASETS.register("identity_folders")
def identity_folders(data_root: str | None = None) -> ImageDataset:
    """Any <identity>/<image> tree (--data-root), e.g. LFW, CelebA-HQ identities, PubFig."""
    root = dataset_root("identity_folders", data_root)
    return read_identity_folders(root, root.name)


@DATASETS.register("orl")
def orl(data_root: str | None = None) -> ImageDataset:
    """AT&T / ORL faces: 40 identities x 10 greyscale 92x112 images (asset home)."""
    return read_identity_folders(dataset_root("orl_faces", data_root), "orl", split_of=orl_split)


def orl_split(folder: str) -> str:
    """``train`` for subjects s1..s30, ``holdout`` for s31..s40 (and any other folder).

    >>> [orl_split(f) for f in ("s1", "s30", "s31", "s40", "extra")]
    ['train', 'train', 'holdout', 'holdout', 'holdout']
    """
    digits = folder[1:] if folder[:1] == "s" else ""
    return "train" if digits.isdigit() and 1 <= int(digits) <= 30 else "holdout"
