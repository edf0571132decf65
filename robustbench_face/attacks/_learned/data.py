"""Training data of the learned patch attacks: a dataset split embedded once, and batches of it.

Source features, clean embeddings and identity means are computed once up front (no
gradients), so a training step costs one forward + backward of each surrogate plus whatever is
being learned. ``data_cache=FILE`` memoises the embedded split (:func:`cached_data`; 1 min to
build for mini-MARS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ...errors import InputError
from .._regions import crop_maps

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    images: Tensor                  # (N, 3, H, W) uint8
    pids: Tensor                    # (N,) identity index 0..K-1 (class index for classifiers)
    identities: list[int]           # dataset pid of each index
    emb: list[Tensor]               # per surrogate (N, D) clean embeddings (or logits)
    means: list[Tensor]             # per surrogate (K, D) normalised identity means
    crops: list[Tensor] = field(default_factory=list)  # extractor crops, float16
    pooled: Tensor | None = None
    members: list[Tensor] = field(default_factory=list)  # frame indices of each identity


class WithExtractor(torch.nn.Module):
    """A surrogate whose multi-scale ``feature_maps`` come from another backbone (``-a
    extractor=VICTIM``): the generator conditions on that backbone's features, the losses on
    the surrogate's own outputs. Both are frozen."""

    def __init__(self, victim, extractor):
        super().__init__()
        if not hasattr(extractor, "feature_maps"):
            raise InputError(f"cond_patch: extractor {getattr(extractor, 'name', extractor)!r} has no "
                             "feature_maps(); pick a victim that exposes multi-scale maps")
        self.victim, self.extractor = victim, extractor
        for attr in ("name", "output", "alignment", "classes"):
            if hasattr(victim, attr):
                setattr(self, attr, getattr(victim, attr))

    def forward(self, x: Tensor) -> Tensor:
        return self.victim(x)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        return self.extractor.feature_maps(x)


def build_surrogates(names: list[str], device: str) -> list:
    from ...factory import create_victim

    return [create_victim(n, device=device) for n in names]


def load_split(dataset: str, split: str, data_root: str | None, limit: int | None):
    """The dataset and the samples of ``split`` (``limit``: that many, evenly spread; tests)."""
    from ...factory import load_dataset

    ds = load_dataset(dataset, data_root=data_root)
    samples = ds.split(split)
    if limit:
        samples = samples[::max(1, len(samples) // limit)][:limit]
    return ds, samples


@torch.no_grad()
def embed_samples(ds, samples: list, surrogates: list, device: str, region=None, chunk: int = 32):
    """uint8 images, every surrogate's outputs, and the first one's region crops + pooled map."""
    imgs, outs, crops, pooled = [], [[] for _ in surrogates], [], []
    chips = _aligned_chips(surrogates[0], samples)
    for i in range(0, len(samples), chunk):
        x = (ds.load(samples[i:i + chunk]) if chips is None else chips[i:i + chunk]).to(device)
        imgs.append((x * 255).round().to(torch.uint8).cpu())
        for k, v in enumerate(surrogates):
            outs[k].append(v(x).float().cpu())
        if region is not None:
            c, p = crop_maps(surrogates[0].feature_maps(x), region)
            crops.append([t.half().cpu() for t in c]); pooled.append(p.float().cpu())
    crops = [torch.cat([c[j] for c in crops]) for j in range(len(crops[0]))] if crops else []
    return torch.cat(imgs), [torch.cat(o) for o in outs], crops, torch.cat(pooled) if pooled else None


def _aligned_chips(extractor, samples: list) -> Tensor | None:
    """Face victims train on the chips they are attacked on (the face runner aligns every image
    with the attacked victim's ``alignment``), so a face region (``eyeglass``...) covers the
    same landmarks in training and at test time. None for victims without an alignment."""
    name = getattr(extractor, "alignment", None)
    if name is None:
        return None
    from ...align import align_samples

    return align_samples(name, samples)[0]


def prepare_data(surrogates: list, dataset: str, split: str, data_root: str | None, device: str,
                 region=None, limit: int | None = None) -> TrainData:
    """Load ``split`` as uint8 and embed it once on every surrogate (+ extractor crops when a
    ``region`` is given: what a generator conditions on)."""
    ds, samples = load_split(dataset, split, data_root, limit)
    # re-ID marks distractors with pid 0 and junk with -1; in face / identity-folder datasets
    # pid 0 is a person (ORL's s1)
    first = 1 if getattr(ds, "task", "reid") == "reid" else 0
    ids = sorted({s.pid for s in samples if s.pid >= first})
    if len(ids) < 2:
        raise InputError(f"{dataset}/{split}: need >= 2 identities to train, found {len(ids)}")
    keep = [s for s in samples if s.pid >= first]
    imgs, emb, crops, pooled = embed_samples(ds, keep, surrogates, device, region)
    pids = torch.tensor([ids.index(s.pid) for s in keep])
    means = [torch.nn.functional.normalize(torch.stack([e[pids == k].mean(0) for k in range(len(ids))]), dim=1)
             for e in emb]
    return TrainData(imgs, pids, ids, emb, means, crops=crops, pooled=pooled,
                     members=[torch.nonzero(pids == k).flatten() for k in range(len(ids))])


def cached_data(cache: str | None, prep: Callable[..., TrainData], *args) -> TrainData:
    """``prep(*args)``, memoised in ``cache`` (a .pt file) when given: embedding a split is slow.

    The cache is keyed by nothing but its file name: the caller picks a new name when the
    surrogates, the split or the region change.
    """
    if cache and Path(cache).is_file():
        log.info("training data from cache %s", cache)
        return TrainData(**torch.load(cache, map_location="cpu", weights_only=False))
    data = prep(*args)
    if cache:
        torch.save(data.__dict__, cache)
    return data


def draw_batch(data: TrainData, bs: int, p_target: float, gen: torch.Generator, balanced: bool = False):
    """Frame indices, is_target mask, other-identity index, and per-surrogate target vectors.

    A target is the normalised mean of a random 1..16 frames of another training identity, so
    the generator sees target embeddings as noisy as gallery means of unseen people.
    ``balanced``: exactly round(p_target * bs) impersonation rows (the first ones), not a coin
    flip per row, so every step carries both objectives.
    """
    n, k = len(data.pids), len(data.identities)
    idx = torch.randint(n, (bs,), generator=gen)
    is_t = torch.rand(bs, generator=gen) < p_target  # drawn even when balanced: same RNG stream
    if balanced:
        is_t = torch.arange(bs) < round(p_target * bs)
    other = (data.pids[idx] + torch.randint(1, k, (bs,), generator=gen)) % k  # never the source
    targets = []
    for e in data.emb:
        rows = []
        for o in other.tolist():
            m = data.members[o]
            size = int(torch.randint(1, min(16, len(m)) + 1, (1,), generator=gen))
            pick = m[torch.randperm(len(m), generator=gen)[:size]]
            rows.append(e[pick].mean(0))
        targets.append(torch.nn.functional.normalize(torch.stack(rows), dim=1))
    return idx, is_t, other, targets
