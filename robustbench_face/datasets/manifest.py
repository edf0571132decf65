"""A manifest CSV ``path,split,pid,camid[,tracklet]`` with paths relative to the CSV's folder.

``mini_mars`` is such a manifest over real MARS frames (L. Zheng et al., "MARS: A Video
Benchmark for Large-Scale Person Re-Identification", ECCV 2016): ``protocol.csv`` fixes an
image-level protocol of 128 queries and 494 gallery frames from 16 test identities, and a
``train`` split of 16 other identities. Images load at 256x128.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..assets import dataset_root
from ..errors import DataError
from ..registry import DATASETS
from ._base import ImageDataset, Sample

REQUIRED = ("path", "split", "pid", "camid")


def read_manifest(csv_path: Path, name: str, task: str = "reid",
                  image_size: tuple[int, int] | None = (256, 128)) -> ImageDataset:
    if not csv_path.is_file():
        raise DataError(f"manifest not found: {csv_path}")
    samples = []
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                samples.append(Sample(csv_path.parent / row["path"], int(row["pid"]), int(row["camid"]),
                                      row["split"], int(row.get("tracklet") or -1)))
            except (TypeError, ValueError) as exc:
                raise DataError(f"{csv_path}:{line}: bad row {row}: {exc}") from None
    if not samples:
        raise DataError(f"{csv_path}: no rows")
    return ImageDataset(name, csv_path.parent, samples, task=task, image_size=image_size)


@DATASETS.register("manifest")
def manifest(data_root: str | None = None, csv: str = "protocol.csv") -> ImageDataset:
    """Any re-ID set described by a path,split,pid,camid[,tracklet] CSV (--data-root)."""
    root = dataset_root("manifest", data_root)
    return read_manifest(root / csv, root.name)


@DATASETS.register("mini_mars")
def mini_mars(data_root: str | None = None) -> ImageDataset:
    """5,572 real MARS frames with a fixed query/gallery/train protocol (asset home)."""
    return read_manifest(dataset_root("mini_mars", data_root) / "protocol.csv", "mini_mars")
