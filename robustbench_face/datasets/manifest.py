"""A manifest CSV ``path,split,pid,camid[,tracklet]`` with paths relative to the CSV's folder.

The loader behind the re-ID cards whose protocol is a CSV: ``mini_mars`` (real MARS frames,
L. Zheng et al., "MARS: A Video Benchmark for Large-Scale Person Re-Identification", ECCV
2016), ``cuhk01`` (W. Li, R. Zhao, X. Wang, "Human Reidentification with Transferred Metric
Learning", ACCV 2012) and ``cuhk03_train`` (W. Li et al., "DeepReID: Deep Filter Pairing Neural
Network for Person Re-identification", CVPR 2014). Rows keep the CSV's order; images load at
``image_size`` (default 256x128, torchreid's re-ID input), whatever their stored size.
"""

from __future__ import annotations

import csv as csvlib
from pathlib import Path

from ..errors import DataError
from ._base import ImageDataset, Sample
from ._cards import DatasetCard, register_loader

REQUIRED = ("path", "split", "pid", "camid")


def read_manifest(csv_path: Path, name: str, task: str = "reid",
                  image_size: tuple[int, int] | None = (256, 128)) -> ImageDataset:
    if not csv_path.is_file():
        raise DataError(f"manifest not found: {csv_path}")
    samples = []
    with open(csv_path, newline="") as f:
        reader = csvlib.DictReader(f)
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


def load(card: DatasetCard, data_root: str | None = None, csv: str = "protocol.csv",
         image_size: tuple[int, int] | None = (256, 128)) -> ImageDataset:
    """Any re-ID set described by a path,split,pid,camid[,tracklet] CSV (``csv``, relative to
    the data root)."""
    root = card.root(data_root)
    return read_manifest(root / csv, card.dataset_name(root), card.task, image_size)


register_loader("manifest", load)
