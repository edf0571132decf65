"""Market-1501 in its official layout: ``query/``, ``bounding_box_test/``, ``bounding_box_train/``.

Paper: L. Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015. The
loader of the ``market1501`` card (the full set) and of ``mini_market1501`` (an extract).
File names ``0004_c2s3_059152_00.jpg`` give person 0004 and camera 2; person ``-1`` is junk
(kept here, ignored by the metric) and ``0000`` a distractor (kept and ranked).
Splits: ``query``, ``gallery`` (= ``bounding_box_test``) and ``train``. Images load at
``image_size`` (default 256x128).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError
from ._base import ImageDataset, Sample
from ._cards import DatasetCard, register_loader

_NAME = re.compile(r"^(-?\d+)_c(\d+)")
_SPLITS = {"query": "query", "bounding_box_test": "gallery", "bounding_box_train": "train"}


def read_market_layout(root: Path, name: str,
                       image_size: tuple[int, int] | None = (256, 128)) -> ImageDataset:
    samples = []
    for folder, split in _SPLITS.items():
        d = root / folder
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.jpg")):  # the official release is JPEG only
            m = _NAME.match(p.name)
            if m is None:
                raise DataError(f"{p}: file name does not follow Market-1501's <pid>_c<cam>... pattern")
            samples.append(Sample(p, int(m.group(1)), int(m.group(2)), split))
    if not samples:
        raise DataError(f"no Market-1501 images under {root} (expected {', '.join(_SPLITS)}/*.jpg)")
    return ImageDataset(name, root, samples, task="reid", image_size=image_size)


def load(card: DatasetCard, data_root: str | None = None,
         image_size: tuple[int, int] | None = (256, 128)) -> ImageDataset:
    """Market-1501 (official layout), query/gallery/train splits."""
    # named by the card, not the folder: a copy anywhere on disk is still Market-1501
    return read_market_layout(card.root(data_root), card.name, image_size)


register_loader("market1501", load)
