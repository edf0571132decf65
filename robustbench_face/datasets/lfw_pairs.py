"""Verification pairs: LFW's ``pairs.txt`` and a seeded pair rule for identity folders.

The ``lfw_pairs`` loader reads identity folders plus a pairs file, the layout of the ``lfw``
card: G. B. Huang et al., "Labeled Faces in the Wild: A Database for Studying Face Recognition
in Unconstrained Environments", UMass TR 07-49, 2007: ``<root>/<Name>/<Name>_<iiii>.jpg`` plus
``<root>/pairs.txt`` (View 2: 10 sets of 300 same + 300 different pairs, mutually exclusive in
people). The pairs are in ``meta["pairs"]``. Identity-folder sets without a pairs file
(``orl``, ``celeba_ids``, ``celebahq_ids``, ``pubfig``: cards over ``identity_folders``) get
pairs from :func:`make_pairs`. Images load at native size (victims resize inside ``forward``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._base import ImageDataset
from ._cards import DatasetCard, register_loader
from .identity_folders import read_identity_folders

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool
    fold: int


def _header(line: str, where: str) -> tuple[int, int]:
    """``"<n_sets> <n_per_set>"`` or ``"<n>"`` (one set of n same + n different pairs)."""
    try:
        nums = [int(x) for x in line.split()]
    except ValueError:
        nums = []
    if len(nums) == 2 and min(nums) > 0:
        return nums[0], nums[1]
    if len(nums) == 1 and nums[0] > 0:
        return 1, nums[0]
    raise DataError(f"{where}: bad header {line.strip()!r}; expected '<n_sets> <n_per_set>' or '<n>'")


def _image(root: Path, name: str, index: str, where: str) -> Path:
    try:
        i = int(index)
    except ValueError:
        raise DataError(f"{where}: image number {index!r} is not an integer") from None
    if i < 1:
        raise DataError(f"{where}: image number {i} must be >= 1")
    return root / name / f"{name}_{i:04d}.jpg"


def read_lfw_pairs(pairs_file: str | Path, root: str | Path,
                   skip_missing: bool = False) -> tuple[list[Pair], int]:
    """Parse an LFW pairs file; returns ``(pairs, n_skipped)``.

    Line 1 is ``<n_sets> <n_per_set>`` (``pairs.txt``: ``10 300``) or a single count
    (``pairsDevTrain.txt``: ``1100``, one set). Then each set in turn lists ``n_per_set``
    same-person lines ``name i j`` and ``n_per_set`` different-person lines
    ``name1 i name2 j``; a pair's ``fold`` is the index of its set, so folds are consecutive
    blocks of ``2 * n_per_set`` lines. Images are ``<root>/<name>/<name>_<iiii>.jpg``.

    A missing file, a malformed line (reported as ``file:line``) or a wrong number of lines
    raise :class:`DataError`; so does a pair naming an image that does not exist, unless
    ``skip_missing`` is set: such pairs are then dropped, counted in ``n_skipped`` and logged.
    """
    pairs_file, root = Path(pairs_file), Path(root)
    if not pairs_file.is_file():
        raise DataError(f"LFW pairs file not found: {pairs_file}")
    lines = pairs_file.read_text().splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{pairs_file}:1: empty pairs file")
    n_sets, per_set = _header(lines[0], f"{pairs_file}:1")
    body = [(no, ln.split()) for no, ln in enumerate(lines[1:], start=2) if ln.strip()]
    if len(body) != n_sets * 2 * per_set:
        raise DataError(f"{pairs_file}: header says {n_sets} set(s) x 2 x {per_set} pairs = "
                        f"{n_sets * 2 * per_set} lines, found {len(body)}")
    pairs, skipped, exists = [], 0, {}
    for k, (no, tok) in enumerate(body):
        where = f"{pairs_file}:{no}"
        if len(tok) == 3:
            a, b = _image(root, tok[0], tok[1], where), _image(root, tok[0], tok[2], where)
        elif len(tok) == 4:
            a, b = _image(root, tok[0], tok[1], where), _image(root, tok[2], tok[3], where)
        else:
            raise DataError(f"{where}: expected 'name i j' or 'name1 i name2 j', got {' '.join(tok)!r}")
        missing = [p for p in (a, b) if not exists.setdefault(p, p.is_file())]
        if missing:
            if not skip_missing:
                raise DataError(f"{where}: image not found: {missing[0]} (pass skip_missing=True "
                                "to drop such pairs and count them)")
            skipped += 1
            continue
        pairs.append(Pair(a, b, len(tok) == 3, k // (2 * per_set)))
    if skipped:
        log.warning("%s: skipped %d of %d pairs naming missing images", pairs_file, skipped, len(body))
    return pairs, skipped


def _quotas(n: int, folds: int) -> list[int]:
    return [n // folds + (1 if f < n % folds else 0) for f in range(folds)]


def _impostors(rng: np.random.Generator, by_id: list[list[int]], quota: int,
               where: str) -> list[tuple[int, int]]:
    """``quota`` distinct different-identity pairs: two identities, then one image of each."""
    sizes = np.array([len(x) for x in by_id])
    pool = (sizes.sum() ** 2 - (sizes ** 2).sum()) // 2
    if quota > pool:
        raise DataError(f"{where}: only {pool} impostor pairs exist, {quota} requested")
    chosen: dict[tuple[int, int], None] = {}  # insertion-ordered set: the order is the draw order
    for _ in range(100 * quota + 1000):  # rejection of repeats; bounded so it always ends
        if len(chosen) == quota:
            break
        i, j = rng.choice(len(by_id), size=2, replace=False)
        a, b = by_id[i][rng.integers(len(by_id[i]))], by_id[j][rng.integers(len(by_id[j]))]
        chosen.setdefault((min(a, b), max(a, b)))
    if len(chosen) < quota:
        raise DataError(f"{where}: drew only {len(chosen)} distinct impostor pairs of {quota} "
                        f"(pool {pool}); ask for fewer")
    return list(chosen)


def make_pairs(dataset: ImageDataset, n_genuine: int | None, n_impostor: int | None,
               seed: int, folds: int = 10) -> list[Pair]:
    """Seeded verification pairs for an identity-folder dataset without a pairs file.

    The rule, all draws from one ``numpy.random.default_rng(seed)``:

    1. identities (``pid >= 0``) are shuffled and dealt round-robin into ``folds`` folds, so
       no identity is in two folds. Why: ``kfold_accuracy`` picks its threshold on the other
       folds, and if a test person also appeared there the threshold would be tuned on that
       person's own faces, inflating accuracy (LFW's View 2 sets are disjoint in people for
       the same reason). Impostor pairs are therefore drawn within a fold.
    2. genuine pairs: every unordered pair of images of one identity (``n_genuine=None``), or
       ``n_genuine`` split evenly over folds and sampled without replacement in each fold.
    3. impostor pairs: per fold, as many as that fold's genuine pairs (``n_impostor=None``) or
       ``n_impostor`` split evenly over folds; each is two distinct identities of the fold
       drawn uniformly, then one image of each drawn uniformly; repeats are redrawn.

    Pairs are listed fold by fold, genuine before impostor (LFW's file order), so
    ``kfold_accuracy(..., fold_ids=[p.fold for p in pairs])`` runs the 10-fold protocol.
    A fold that cannot supply its quota raises :class:`DataError`.
    """
    samples = [s for s in dataset.samples if s.pid >= 0]
    ids = sorted({s.pid for s in samples})
    if len(ids) < 2 * folds:  # each fold needs two identities for impostor pairs
        raise DataError(f"dataset {dataset.name!r}: {len(ids)} identities cannot fill {folds} "
                        f"identity-disjoint folds: that needs at least {2 * folds} identities (2 per fold)")
    rng = np.random.default_rng(seed)
    fold_of = {pid: k % folds for k, pid in enumerate(rng.permutation(ids).tolist())}
    by_fold: list[list[list[int]]] = [[] for _ in range(folds)]
    by_id: dict[int, list[int]] = {pid: [] for pid in ids}
    for i, s in enumerate(samples):
        by_id[s.pid].append(i)
    for pid in ids:
        by_fold[fold_of[pid]].append(by_id[pid])
    gen_q = _quotas(n_genuine, folds) if n_genuine is not None else [None] * folds
    imp_q = _quotas(n_impostor, folds) if n_impostor is not None else [None] * folds
    pairs: list[Pair] = []
    for f in range(folds):
        where = f"dataset {dataset.name!r}, fold {f}"
        gen = [p for idx in by_fold[f] for p in combinations(idx, 2)]
        if gen_q[f] is not None:
            if gen_q[f] > len(gen):
                raise DataError(f"{where}: only {len(gen)} genuine pairs exist, {gen_q[f]} requested")
            gen = [gen[i] for i in sorted(rng.choice(len(gen), size=gen_q[f], replace=False))]
        imp = _impostors(rng, by_fold[f], len(gen) if imp_q[f] is None else imp_q[f], where)
        pairs += [Pair(samples[a].path, samples[b].path, True, f) for a, b in gen]
        pairs += [Pair(samples[a].path, samples[b].path, False, f) for a, b in imp]
    return pairs


def load(card: DatasetCard, data_root: str | None = None, pairs: str = "pairs.txt",
         skip_missing: bool = False) -> ImageDataset:
    """Identity folders + an LFW-format pairs file (10 folds for View 2) in meta["pairs"].

    ``pairs`` is relative to the data root (or absolute); ``meta["pairs_skipped"]`` counts
    pairs dropped for missing images when ``skip_missing`` is set.
    """
    root = card.root(data_root)
    ds = read_identity_folders(root, card.dataset_name(root), card.task)
    ds.meta["pairs"], ds.meta["pairs_skipped"] = read_lfw_pairs(root / pairs, root, skip_missing)
    return ds


register_loader("lfw_pairs", load)
