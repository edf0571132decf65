"""Market-1501 in its official layout: ``query/``, ``bounding_box_test/``, ``bounding_box_train/``.

Paper: L. Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015.
File names ``0004_c2s3_059152_00.jpg`` give person 0004 and camera 2; person ``-1`` is junk
(kept here, ignored by the metric) and ``0000`` a distractor (kept and ranked).
Splits: ``query``, ``gallery`` (= ``bounding_box_test``) and ``train``. Images load at 256x128.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..assets import dataset_root
from ..errors import DataError
from ..registry import DATASETS
from ._base import ImageDataset, Sample

_NAME = re.compile(r"^(-?\d+)_c(\d+)")
_SPLITS = {"query": "query", "bounding_box_test": "gallery", "bounding_box_train": "train"}


def read_market_layout(root: Path, name: str) -> ImageDataset:
    samples = []
    for folder, split in _SPLITS.items():
        d = root / folder
        if not d.is_dir():
            continue
        for p in sorted(d.glob("*.jpg")):
            m = _NAME.match(p.name)
            if m is None:
                raise DataError(f"{p}: file name does not follow Market-1501's <pid>_c<cam>... pattern")
            samples.append(Sample(p, int(m.group(1)), int(m.group(2)), split))
    if not samples:
        raise DataError(f"no Market-1501 images under {root} (expected {', '.join(_SPLITS)}/*.jpg)")
    return ImageDataset(name, root, samples, task="reid", image_size=(256, 128))


@DATASETS.register("market1501")
def market1501(data_root: str | None = None) -> ImageDataset:
    """Market-1501 (official layout), query/gallery/train splits."""
    return read_market_layout(dataset_root("market1501", data_root), "market1501")


@DATASETS.register("mini_market1501")
def mini_market1501(data_root: str | None = None) -> ImageDataset:
    """96 real Market-1501 crops in the official layout (asset home)."""
    return read_market_layout(dataset_root("mini_market1501", data_root), "mini_market1501")
