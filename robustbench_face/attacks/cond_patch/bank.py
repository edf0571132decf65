"""The attractor bank's training pieces (``n_bases`` > 1; the network side is in ``generator.py``).

One universal attractor leaves matched exactly the people who already look like the "patch
person" every patched query turns into. The bank keeps K bases, each with an anchor (where it
sends people), and sends each source to the base least like itself
(:meth:`.generator.PatchGenerator.choose`). Here: how bases start (:func:`init_bases`), how
anchors start and follow training (:func:`init_anchors`, :func:`update_anchors`), the training
rows' choice (:func:`choose_rows`) and the term that keeps the bases apart (:func:`separation`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InputError
from .._learned.io import load_patch
from .._regions import paste
from .generator import PatchGenerator


def _probe_rows(data, n: int, device: str):
    """``n`` training frames spread evenly over the split: indices, region crops, pooled map."""
    idx = torch.linspace(0, len(data.pids) - 1, n).long()
    return idx, [c[idx].to(device).float() for c in data.crops], data.pooled[idx].to(device)


@torch.no_grad()
def init_bases(model: PatchGenerator, data, paths: str, device: str, n: int = 64) -> None:
    """Bases 1, 2, ... start so that an evasion row's patch *is* the given universal patch
    (``patch_universal`` checkpoints, comma-separated; ``random:SEED`` is an 8x8 grid of random
    colours): base = logit(patch) minus the network's
    mean evasion residual. In a trained generator the decoder and the null target map carry
    almost all of the universal patch (|logit| 2.8 against 0.3 for ``base``), so a random base
    barely moves the attractor; independently trained universal patches are distinct ones
    (patched-embedding cos 0.31 between ``patch_universal``'s and ``cond_patch``'s)."""
    paths = [p for p in str(paths).split(",") if p]
    if len(paths) > model.cfg.n_bases - 1:
        raise InputError(f"init_bases: {len(paths)} patches for {model.cfg.n_bases - 1} free bases")
    _, crops, pooled = _probe_rows(data, n, device)
    zero = torch.zeros(n, dtype=torch.long, device=device)
    _, z = model(crops, pooled, choice=zero, return_logits=True)
    resid = (z - model.base[0]).mean(0)
    for k, path in enumerate(paths, start=1):
        if path.startswith("random:"):  # a fresh start of its own, for a basin not yet found
            g = torch.Generator().manual_seed(int(path.split(":", 1)[1]))
            small = torch.rand(1, 3, 8, 8, generator=g)
            patch = F.interpolate(small, size=model.cfg.patch_size, mode="nearest")[0]
        else:
            patch, _ = load_patch(path)
        if tuple(patch.shape[-2:]) != tuple(model.cfg.patch_size):
            raise InputError(f"init_bases {path}: patch {tuple(patch.shape)} vs generator {model.cfg.patch_size}")
        model.base[k] = torch.logit(patch.clamp(0.02, 0.98)).to(device) - resid


@torch.no_grad()
def init_anchors(model: PatchGenerator, extractor, data, box, device: str, n: int = 32) -> None:
    """Each base's anchor: the mean patched embedding (extractor) of ``n`` evasion rows."""
    idx, crops, pooled = _probe_rows(data, n, device)
    x = data.images[idx].to(device).float() / 255
    for k in range(model.cfg.n_bases):
        choice = torch.full((n,), k, dtype=torch.long, device=device)
        emb = F.normalize(extractor(paste(x, model(crops, pooled, choice=choice), box)).float(), dim=1)
        model.anchors[k] = F.normalize(emb.mean(0), dim=0)


def choose_rows(model: PatchGenerator, clean: Tensor, target: Tensor, is_t: Tensor, hp, gen) -> Tensor | None:
    """The inference rule (``PatchGenerator.choose``), except that a share ``explore`` of the
    evasion rows get a random base, so that no base starves before its anchor means anything."""
    choice = model.choose(clean, target, is_t)
    if choice is None:
        return None
    rnd = (torch.rand(len(choice), generator=gen) < float(hp["explore"])).to(choice.device) & ~is_t
    other = torch.randint(model.cfg.n_bases, (len(choice),), generator=gen).to(choice.device)
    return torch.where(rnd, other, choice)


def separation(model: PatchGenerator, emb: Tensor, choice: Tensor) -> Tensor:
    """Per row, the mean cos of its patched embedding to the *other* bases' anchors. Without
    it every base trained on random sources converges to the same strongest attractor (anchor
    cos 0.99 after 400 steps), and the bank is one attractor again."""
    sims = F.normalize(emb.float(), dim=1) @ model.anchors.T.clone()  # updated in place later
    other = torch.ones_like(sims, dtype=torch.bool)
    other[torch.arange(len(choice)), choice] = False
    return (sims * other).sum(1) / other.sum(1)


@torch.no_grad()
def update_anchors(model: PatchGenerator, emb: Tensor, choice: Tensor, evasion: Tensor, m: float) -> None:
    """Moving average of where each base sends the evasion rows that used it."""
    emb = F.normalize(emb.detach().float(), dim=1)
    for k in range(model.cfg.n_bases):
        rows = evasion & (choice == k)
        if rows.any():
            a = m * model.anchors[k] + (1 - m) * emb[rows].mean(0)
            model.anchors[k] = F.normalize(a, dim=0)
