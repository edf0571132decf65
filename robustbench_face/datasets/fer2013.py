"""FER2013 from its Kaggle CSV: ``emotion,pixels,Usage`` (one 48x48 greyscale face per row).

Paper: I. J. Goodfellow et al., "Challenges in Representation Learning: A report on three
machine learning contests", ICONIP 2013. Classes 0..6: angry, disgust, fear, happy, sad,
surprise, neutral (the order ``fer_xception`` predicts in). Splits keep the CSV's ``Usage``
names: ``Training`` (28,709), ``PublicTest`` (3,589), ``PrivateTest`` (3,589).
A CSV without ``emotion`` (Kaggle's ``test.csv``) loads unlabelled (pid -1); one without
``Usage`` puts everything in split ``all``. Column names are matched after stripping spaces,
so ``icml_face_data.csv`` (``emotion, Usage, pixels``) loads too.

Why PNG files: :class:`ImageDataset` hands out :class:`Sample` paths and everything
downstream (``ImageDataset.load``, ``read_image``, the aligner cache keyed on paths, runners
that log a path per attacked image) reads files. Decoding each row once into
``$RBF_CACHE/datasets/fer2013/<key>/<split>/<row>.png`` (about 70 MB for the full set, a
one-off) keeps all of them working unchanged, where a tensor-backed subclass would need every
reader to learn a second kind of sample. The cache key hashes the CSV's path, size and
modification time, so an edited CSV is decoded afresh; the folder is written under a
temporary name and renamed when complete, so an interrupted run never leaves half a cache.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..assets import cache_dir
from ..errors import DataError
from ._base import ImageDataset, Sample
from ._cards import DatasetCard, register_loader

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIDE = 48


def _parse_row(row: dict, csv_path: Path, line: int) -> tuple[int, np.ndarray, str]:
    try:
        emotion = int(row["emotion"]) if "emotion" in row else -1
        pixels = np.array(row["pixels"].split(), dtype=np.int64)
    except (ValueError, AttributeError, KeyError) as exc:
        raise DataError(f"{csv_path}:{line}: bad row: {exc}") from None
    if "emotion" in row and not 0 <= emotion < len(CLASSES):
        raise DataError(f"{csv_path}:{line}: emotion {emotion} outside 0..{len(CLASSES) - 1}")
    if pixels.size != SIDE * SIDE:
        raise DataError(f"{csv_path}:{line}: {pixels.size} pixels, expected {SIDE * SIDE} (48x48)")
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{csv_path}:{line}: pixel values outside 0..255")
    split = (row.get("Usage") or "all").strip()
    return emotion, pixels.astype(np.uint8).reshape(SIDE, SIDE), split


def read_fer2013_csv(csv_path: Path) -> list[tuple[int, np.ndarray, str]]:
    """Parse and validate every row: (emotion, 48x48 uint8 image, split)."""
    if not csv_path.is_file():
        raise DataError(f"FER2013 CSV not found: {csv_path}")
    rows = []
    with open(csv_path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if "pixels" not in header:
            raise DataError(f"{csv_path}: no 'pixels' column in header {header}")
        for line, values in enumerate(reader, start=2):
            if not values:
                continue
            if len(values) != len(header):
                raise DataError(f"{csv_path}:{line}: {len(values)} fields, header has {len(header)}")
            rows.append(_parse_row(dict(zip(header, values)), csv_path, line))
    if not rows:
        raise DataError(f"{csv_path}: no data rows (an empty FER2013 CSV)")
    return rows


def _cache_key(csv_path: Path) -> str:
    st = csv_path.stat()
    return hashlib.sha256(f"{csv_path.resolve()}\n{st.st_size}\n{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _write_pngs(rows, dest: Path) -> None:
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        for i, (_, img, split) in enumerate(rows):
            (tmp / split).mkdir(exist_ok=True)
            Image.fromarray(img).save(tmp / split / f"{i:05d}.png")
        os.replace(tmp, dest)  # another process may have won the race: then ours is dropped
    except OSError:
        if not dest.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_fer2013(csv_path: Path, name: str = "fer2013") -> ImageDataset:
    rows = read_fer2013_csv(csv_path)
    dest = cache_dir() / "datasets" / "fer2013" / _cache_key(csv_path)
    if not dest.is_dir():
        _write_pngs(rows, dest)
    samples = [Sample(dest / split / f"{i:05d}.png", emotion, -1, split)
               for i, (emotion, _, split) in enumerate(rows)]
    return ImageDataset(name, csv_path.parent, samples, task="affect", image_size=None,
                        meta={"classes": list(CLASSES), "csv": str(csv_path), "decoded_to": str(dest)})


def load(card: DatasetCard, data_root: str | None = None, csv: str = "fer2013.csv") -> ImageDataset:
    """FER2013 Kaggle CSV (emotion,pixels,Usage): 48x48 grey faces, 7 expressions. ``data_root``
    may be the CSV itself."""
    if data_root and Path(data_root).is_file():
        return load_fer2013(Path(data_root), card.name)
    return load_fer2013(card.root(data_root) / csv, card.name)


register_loader("fer2013", load)
