"""Expression class folders: ``<root>/<split>/<class>/<image>`` or ``<root>/<class>/<image>``.

The loader behind ``ckplus48`` (P. Lucey et al., "The Extended Cohn-Kanade Dataset (CK+)",
CVPR-W 2010), and the layout that RAF-DB (S. Li, W. Deng, J. Du, "Reliable Crowdsourcing and
Deep Locality-Preserving Learning for Expression Recognition in the Wild", CVPR 2017) and
AffectNet (A. Mollahosseini, B. Hasani, M. H. Mahoor, "AffectNet: A Database for Facial
Expression, Valence, and Arousal Computing in the Wild", IEEE TAC 2017) are commonly unpacked to.

The layout is told apart by where the images are: if the root's sub-folders hold images, they
are classes and every image gets split ``all``; if they hold folders of images, they are splits.
Class indices: by default the class folder names in natural order (``1, 2, ..., 10``, then
alphabetically), the same for every split; pass ``classes`` ("anger,disgust,...": a
comma-separated list of folder names, in index order) to pin the order a model predicts in.
The order used is kept in ``meta["classes"]`` and ``Sample.pid`` holds the class index.
Any format PIL decodes is taken (:func:`._base.image_suffixes`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from ._base import ImageDataset, Sample, image_suffixes
from ._cards import DatasetCard, register_loader


def _natural(name: str) -> tuple:
    """Sort key putting "2" before "10": digit runs compare as numbers.

    >>> sorted(["10", "2", "angry", "1"], key=_natural)
    ['1', '2', '10', 'angry']
    """
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p)


def _images(d: Path) -> list[Path]:
    suffixes = image_suffixes()
    return sorted((p for p in d.iterdir() if p.is_file() and p.suffix.lower() in suffixes),
                  key=lambda p: _natural(p.name))


def _subdirs(d: Path) -> list[Path]:
    return sorted((p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: _natural(p.name))


def read_class_folders(root: Path, name: str, classes: list[str] | None = None,
                       image_size: tuple[int, int] | None = None) -> ImageDataset:
    if not root.is_dir():
        raise DataError(f"class folders root not found: {root}")
    top = _subdirs(root)
    split_layout = any(_subdirs(d) for d in top) and not any(_images(d) for d in top)
    splits = {d.name: _subdirs(d) for d in top} if split_layout else {"all": top}
    found = sorted({c.name for dirs in splits.values() for c in dirs}, key=_natural)
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{root}: class folder(s) {unknown} not in the given classes {classes}")
    index = {c: i for i, c in enumerate(classes)}
    samples = [Sample(p, index[c.name], -1, split)
               for split, dirs in splits.items() for c in dirs for p in _images(c)]
    if not samples:
        layout = "<split>/<class>/<image> or <class>/<image>"
        raise DataError(f"no images under {root} (expected {layout}, any format PIL reads)")
    return ImageDataset(name, root, samples, task="affect", image_size=image_size,
                        meta={"classes": list(classes)})


def load(card: DatasetCard, data_root: str | None = None, classes: str | list[str] | None = None,
         image_size: tuple[int, int] | None = None) -> ImageDataset:
    """Expression images in <split>/<class>/ or <class>/ folders (RAF-DB, AffectNet style);
    ``classes`` ("anger,disgust,...") pins the class order."""
    root = card.root(data_root)
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    pinned = list(classes) if classes is not None else None
    return read_class_folders(root, card.dataset_name(root), pinned, image_size)


register_loader("class_folders", load)
