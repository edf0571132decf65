"""Identity folders: ``<root>/<identity>/<image>``, one folder per person.

The loader behind the face cards stored this way: ``orl`` (F. Samaria, A. Harter,
"Parameterisation of a stochastic model for human face identification", WACV 1994),
``celeba_ids`` and ``celebahq_ids`` (Z. Liu et al., "Deep Learning Face Attributes in the Wild",
ICCV 2015; T. Karras et al., "Progressive Growing of GANs", ICLR 2018) and ``pubfig`` (N. Kumar
et al., "Attribute and Simile Classifiers for Face Verification", ICCV 2009).

Identities are numbered in sorted folder order and the folder names are kept in
``meta["identities"]``. Inside a folder, images sort by name length then name, so ``2.pgm``
comes before ``10.pgm``. Any format PIL decodes is taken (:func:`._base.image_suffixes`).
Every image gets split ``all`` unless a ``split_rule`` (:func:`parse_split_rule`) assigns
whole identities to splits; ORL's card uses one for its identity-disjoint train / holdout split.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from ..errors import DataError, InputError
from ._base import ImageDataset, Sample, image_suffixes
from ._cards import DatasetCard, register_loader

_RANGE = re.compile(r"(?P<prefix>[^\d]*)(?P<lo>[0-9]+)\.\.(?P<prefix2>[^\d]*)(?P<hi>[0-9]+)")


def _matcher(pattern: str, rule: str) -> Callable[[str], bool]:
    if pattern == "*":
        return lambda folder: True
    m = _RANGE.fullmatch(pattern)
    if m is None or m["prefix2"] not in ("", m["prefix"]) or int(m["lo"]) > int(m["hi"]):
        raise InputError(f"split rule {rule!r}: {pattern!r} is neither '*' nor a range like s1..s30")
    prefix, lo, hi = m["prefix"], int(m["lo"]), int(m["hi"])
    number = re.compile(re.escape(prefix) + "([0-9]+)")

    def matches(folder: str) -> bool:
        n = number.fullmatch(folder)
        return n is not None and lo <= int(n[1]) <= hi

    return matches


def parse_split_rule(rule: str) -> Callable[[str], str]:
    """A split rule over identity-folder names, as cards and ``--dataset`` options write it.

    ``rule`` is comma-separated ``<folders>:<split>`` items, tried in order. ``<folders>`` is
    ``<prefix><lo>..<prefix><hi>``: the folders named the prefix and then a whole number from lo
    to hi inclusive (``s1..s30``, ``1..500``; leading zeros are allowed), or ``*``: any folder.
    Whole identities go to one split, so splits never share a person. A folder that no item
    matches raises :class:`DataError` (end the rule with ``*:<split>`` to catch the rest).

    >>> rule = parse_split_rule("s1..s30:train, *:holdout")
    >>> [rule(f) for f in ("s1", "s30", "s31", "s40", "extra")]
    ['train', 'train', 'holdout', 'holdout', 'holdout']
    """
    items = []
    for item in filter(None, (i.strip() for i in rule.split(","))):
        pattern, colon, split = (x.strip() for x in item.rpartition(":"))
        if not colon or not pattern or not split:
            raise InputError(f"split rule {rule!r}: item {item!r} is not <folders>:<split>")
        items.append((_matcher(pattern, rule), split))
    if not items:
        raise InputError(f"split rule {rule!r} is empty")

    def split_of(folder: str) -> str:
        for matches, split in items:
            if matches(folder):
                return split
        raise DataError(f"identity folder {folder!r} matches no item of the split rule {rule!r}")

    return split_of


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
    """Any <identity>/<image> tree; ``split_rule`` (e.g. ``s1..s30:train,*:holdout``) assigns
    whole identities to splits, else every image is in split ``all``."""
    root = card.root(data_root)
    split_of = parse_split_rule(split_rule) if split_rule else None
    return read_identity_folders(root, card.dataset_name(root), card.task, image_size, split_of)


register_loader("identity_folders", load)
