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

Expression sets record each person many times, so a split by image would test on faces whose
owner was trained on. In the ``<class>/`` layout, ``split_rule`` (the grammar of
:func:`._splits.parse_split_rule`) assigns each image by its **group**, the file-name stem up to
the first ``_`` (CK+'s ``S<subject>_<sequence>_<frame>.png``: the subject), so a person's images
are in one split whatever their expression. Group names are kept in ``meta["groups"]``.
"""

from __future__ import annotations

import re
from pathlib import Path

from typing import Callable

from ..errors import DataError, InputError
from ._base import ImageDataset, Sample, image_suffixes
from ._cards import DatasetCard, register_loader
from ._splits import parse_split_rule


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


def group_of(path: Path) -> str:
    """The person an image belongs to, by file name: the stem up to the first ``_``.

    >>> group_of(Path("anger/S010_004_00000017.png"))
    'S010'
    """
    return path.stem.partition("_")[0]


def read_class_folders(root: Path, name: str, classes: list[str] | None = None,
                       image_size: tuple[int, int] | None = None,
                       split_of: Callable[[str], str] | None = None) -> ImageDataset:
    """``split_of(group)`` names each image's split by its :func:`group_of` (``<class>/`` layout)."""
    if not root.is_dir():
        raise DataError(f"class folders root not found: {root}")
    top = _subdirs(root)
    split_layout = any(_subdirs(d) for d in top) and not any(_images(d) for d in top)
    if split_layout and split_of is not None:
        raise InputError(f"{root} has split folders already; split_rule is for <class>/ folders")
    splits = {d.name: _subdirs(d) for d in top} if split_layout else {"all": top}
    found = sorted({c.name for dirs in splits.values() for c in dirs}, key=_natural)
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{root}: class folder(s) {unknown} not in the given classes {classes}")
    index = {c: i for i, c in enumerate(classes)}
    samples = [Sample(p, index[c.name], -1, split_of(group_of(p)) if split_of else split)
               for split, dirs in splits.items() for c in dirs for p in _images(c)]
    if not samples:
        layout = "<split>/<class>/<image> or <class>/<image>"
        raise DataError(f"no images under {root} (expected {layout}, any format PIL reads)")
    groups = sorted({group_of(s.path) for s in samples}, key=_natural)
    return ImageDataset(name, root, samples, task="affect", image_size=image_size,
                        meta={"classes": list(classes), "groups": groups})


def load(card: DatasetCard, data_root: str | None = None, classes: str | list[str] | None = None,
         image_size: tuple[int, int] | None = None, split_rule: str | None = None) -> ImageDataset:
    """Expression images in <split>/<class>/ or <class>/ folders (RAF-DB, AffectNet style);
    ``classes`` ("anger,disgust,...") pins the class order; ``split_rule`` (e.g.
    ``S*%3=0:holdout,*:train``) splits <class>/ folders by the file-name prefix (CK+'s subject)."""
    root = card.root(data_root)
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    pinned = list(classes) if classes is not None else None
    split_of = parse_split_rule(split_rule) if split_rule else None
    return read_class_folders(root, card.dataset_name(root), pinned, image_size, split_of)


register_loader("class_folders", load)
