"""Identity folders: ``<root>/<identity>/<image>``, one folder per person.

The loader behind the face cards stored this way: ``orl`` (F. Samaria, A. Harter,
"Parameterisation of a stochastic model for human face identification", WACV 1994),
``celeba_ids`` and ``celebahq_ids`` (Z. Liu et al., "Deep Learning Face Attributes in the Wild",
ICCV 2015; T. Karras et al., "Progressive Growing of GANs", ICLR 2018) and ``pubfig`` (N. Kumar
et al., "Attribute and Simile Classifiers for Face Verification", ICCV 2009).

Identities are numbered in sorted folder order and the folder names are kept in
``meta["identities"]``. Inside a folder, images sort by name length then name, so ``2.pgm``
comes before ``10.pgm``. Any format PIL decodes is taken (:func:`._base.image_suffixes`).
Every image gets split ``all`` unless a ``split_rule`` (:func:`._splits.parse_split_rule`)
assigns whole identities to splits; the ORL and CelebA cards use one for their identity-disjoint
train / holdout splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import DataError
from ._base import ImageDataset, Sample, image_suffixes
from ._cards import DatasetCard, register_loader
from ._splits import parse_split_rule

__all__ = ["load", "parse_split_rule", "read_identity_folders"]


def read_identity_folders(root: Path, name: str, task: str = "face",
                          image_size: tuple[int, int] | None = None,
                          split_of: Callable[[str], str] | None = None) -> ImageDataset:
    """``split_of(folder name)`` names each identity's split (default: ``all``)."""
    if not root.is_dir():
        raise DataError(f"identity folders root not found: {root}")
    idents = sorted(d for d in root.iterdir() if d.is_dir())
    suffixes = image_suffixes()
    samples = []
    for pid, d in enumerate(idents):
        split = split_of(d.name) if split_of else "all"
        for p in sorted(d.iterdir(), key=lambda q: (len(q.stem), q.name)):
            if p.suffix.lower() in suffixes:
                samples.append(Sample(p, pid, -1, split))
    if not samples:
        raise DataError(f"no images in identity folders under {root} (expected <identity>/<image>)")
    return ImageDataset(name, root, samples, task=task, image_size=image_size,
                        meta={"identities": [d.name for d in idents]})


def load(card: DatasetCard, data_root: str | None = None, split_rule: str | None = None,
         image_size: tuple[int, int] | None = None) -> ImageDataset:
    """Any <identity>/<image> tree; ``split_rule`` (e.g. ``s1..s30:train,*:holdout``, or
    ``S*%3=0:holdout,*:train``) assigns whole identities to splits, else every image is in split
    ``all``."""
    root = card.root(data_root)
    split_of = parse_split_rule(split_rule) if split_rule else None
    return read_identity_folders(root, card.dataset_name(root), card.task, image_size, split_of)


register_loader("identity_folders", load)
