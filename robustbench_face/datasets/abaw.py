"""ABAW / Aff-Wild2 per-video annotations with cropped-aligned frames.

Papers: D. Kollias, S. Zafeiriou, "Expression, Affect, Action Unit Recognition: Aff-Wild2,
Multi-Task Learning and ArcFace", BMVC 2019; D. Kollias et al., the ABAW challenge reports
(FG 2020, ICCV-W 2021, CVPR-W 2022-2024). Aff-Wild2 is research-only (EULA from its authors).

Layout (``--data-root``)::

    <root>/<annotations>/<EXPR_Set|VA_Set|AU_Set>/<Train_Set|Training_Set|Validation_Set>/<video>.txt
    <root>/cropped_aligned/<video>/00001.jpg, 00002.jpg, ...

Later ABAW editions name the set folders ``EXPR_Classification_Challenge``,
``VA_Estimation_Challenge`` and ``AU_Detection_Challenge``; both names are found, at most three
folders below the root. Each annotation file has one header line, then line ``i`` (1-based,
after the header) labels frame ``{i:05d}.jpg``:

* ``expr``: header = the class names (``Neutral,Anger,...,Other``: 8 in ABAW 3+, 7 before);
  one int per line, ``-1`` invalid. ``Sample.pid`` is the class; ``meta["classes"]``.
* ``va``: header ``valence,arousal``; two floats in [-1, 1] per line, ``-5`` invalid.
  ``meta["va"]`` is an (N, 2) float32 tensor aligned with ``samples``; ``pid`` is -1.
* ``au``: header = the AU names (``AU1,AU2,...``); 0/1/-1 per AU per line.
  ``meta["au"]`` is an (N, K) int8 tensor aligned with ``samples``, ``meta["au_names"]``.

Splits: ``train``, ``val``, ``test`` (from the folder names), else the folder name lowercased.
``Sample.tracklet`` is the video's index in ``meta["videos"]``. Frames with no cropped image
(the face was not detected) are skipped and counted in ``meta["missing_frames"]``; frames whose
labels are all invalid are dropped unless ``keep_invalid=True`` (metrics exclude them anyway).
A malformed line raises :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..errors import DataError, InputError
from ._base import ImageDataset, Sample
from ._cards import DatasetCard, register_loader

log = logging.getLogger(__name__)

SET_NAMES = {
    "expr": ("EXPR_Set", "EXPR_Classification_Challenge", "EXPR_Recognition_Challenge"),
    "va": ("VA_Set", "VA_Estimation_Challenge"),
    "au": ("AU_Set", "AU_Detection_Challenge"),
}
_SPLITS = {"train_set": "train", "training_set": "train", "validation_set": "val",
           "valid_set": "val", "test_set": "test"}


def _find_set_dir(root: Path, task: str, frames: str) -> Path:
    """The first ``SET_NAMES[task]`` folder at most three levels below ``root``."""
    level = [root]
    for _ in range(4):
        for d in level:
            for name in SET_NAMES[task]:
                if (d / name).is_dir():
                    return d / name
        level = [s for d in level for s in d.iterdir() if s.is_dir() and s.name != frames]
    raise DataError(f"no {' or '.join(SET_NAMES[task])} folder under {root} for ABAW task {task!r}")


def _parse_label(task: str, text: str, width: int, where: str):
    parts = [p.strip() for p in text.split(",")]
    try:
        if task == "expr":
            value = int(parts[0]) if len(parts) == 1 else None
            if value is None or not -1 <= value < width:
                raise ValueError(f"expected one class in -1..{width - 1}")
            return value
        if task == "va":
            v = [float(p) for p in parts]
            if len(v) != 2 or any(not (-1 <= x <= 1 or x == -5) for x in v):
                raise ValueError("expected valence,arousal in [-1, 1] or -5")
            return v
        au = [int(p) for p in parts]
        if len(au) != width or any(a not in (-1, 0, 1) for a in au):
            raise ValueError(f"expected {width} values in {{-1, 0, 1}}")
        return au
    except ValueError as exc:
        raise DataError(f"{where}: bad label {text!r}: {exc}") from None


def _invalid(task: str, label) -> bool:
    if task == "expr":
        return label == -1
    if task == "va":
        return all(x == -5 for x in label)
    return all(a == -1 for a in label)


def read_annotation_file(path: Path, task: str) -> tuple[list[str], list]:
    """(header names, one label per frame) of one ABAW annotation file."""
    with open(path) as f:
        lines = f.read().splitlines()
    if not lines:
        raise DataError(f"{path}: empty annotation file (expected a header line)")
    header = [h.strip() for h in lines[0].split(",") if h.strip()]
    if task == "va" and [h.lower() for h in header] != ["valence", "arousal"]:
        raise DataError(f"{path}:1: VA header must be 'valence,arousal', got {lines[0]!r}")
    labels = []
    for i, text in enumerate(lines[1:], start=2):
        if not text.strip():
            if any(t.strip() for t in lines[i:]):
                raise DataError(f"{path}:{i}: blank line inside the annotations")
            break
        labels.append(_parse_label(task, text, len(header), f"{path}:{i}"))
    return header, labels


def read_abaw(root: Path, task: str = "expr", frames: str = "cropped_aligned",
              keep_invalid: bool = False, name: str = "abaw") -> ImageDataset:
    if task not in SET_NAMES:
        raise InputError(f"unknown ABAW task {task!r}; choose from {', '.join(SET_NAMES)}")
    set_dir, frame_root = _find_set_dir(root, task, frames), root / frames
    if not frame_root.is_dir():
        raise DataError(f"ABAW frames folder not found: {frame_root}")
    samples, labels, videos, header0 = [], [], [], None
    missing = dropped = 0
    for split_dir in sorted(d for d in set_dir.iterdir() if d.is_dir()):
        split = _SPLITS.get(split_dir.name.lower(), split_dir.name.lower())
        for txt in sorted(split_dir.glob("*.txt")):
            header, rows = read_annotation_file(txt, task)
            if header0 is not None and header != header0:
                raise DataError(f"{txt}:1: header {header} differs from the other files' {header0}")
            header0 = header
            vdir = frame_root / txt.stem
            have = set(os.listdir(vdir)) if vdir.is_dir() else set()
            if not have:
                log.warning("ABAW video %s has no frames in %s", txt.stem, vdir)
            vid = len(videos)
            videos.append(txt.stem)
            for i, label in enumerate(rows, start=1):
                frame = f"{i:05d}.jpg"
                if frame not in have:
                    missing += 1
                elif not keep_invalid and _invalid(task, label):
                    dropped += 1
                else:
                    samples.append(Sample(vdir / frame, label if task == "expr" else -1, -1, split, vid))
                    labels.append(label)
    if not samples:
        raise DataError(f"ABAW {task}: no labelled frames with images under {set_dir} and {frame_root} "
                        f"({missing} frames without images, {dropped} with invalid labels)")
    meta = {"task": task, "videos": videos, "missing_frames": missing, "dropped_invalid": dropped}
    if task == "expr":
        meta["classes"] = header0
    elif task == "va":
        meta["va"] = torch.tensor(labels, dtype=torch.float32)
    else:
        meta["au"], meta["au_names"] = torch.tensor(labels, dtype=torch.int8), header0
    return ImageDataset(name, root, samples, task="affect", image_size=None, meta=meta)


def load(card: DatasetCard, data_root: str | None = None, task: str = "expr",
         frames: str = "cropped_aligned", keep_invalid: bool = False) -> ImageDataset:
    """Aff-Wild2 / ABAW frames with EXPR, VA or AU labels (task=expr|va|au)."""
    return read_abaw(card.root(data_root), task, frames, bool(keep_invalid), card.name)


register_loader("abaw", load)
