"""The forwards of ``rbf interpret``: a layer's maps on clean and adversarial images (pooled,
per-channel sums, the spatial |delta| map), the input-gradient of the attack objective, and the
adversarial forward with chosen channels restored to their clean values. Batched; only
per-image summaries are kept, never a dataset's worth of full maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..activations import capture, replace_output
from ..attacks._objective import objective
from ..interrupt import check as check_interrupt


@dataclass
class LayerMaps:
    pooled_clean: np.ndarray   # (N, C) channel means over H, W
    pooled_adv: np.ndarray
    sums: dict[str, np.ndarray]  # per channel over images and positions: abs_delta, delta, clean, clean_sq, adv
    count: int                 # images x positions the sums run over
    delta_maps: np.ndarray     # (N, H, W) channel sum of |delta|, upsampled to the input size


def _maps(victim, layer: str, x: Tensor) -> Tensor:
    with torch.no_grad(), capture(victim, layer) as got:
        victim(x)
    return got[0].float()


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        check_interrupt()
        yield slice(i, min(i + batch_size, n))


def collect(victim, layer: str, clean, adv: Tensor, batch_size: int, device: str) -> LayerMaps:
    """Layer ``layer``'s maps on paired ``clean`` (a source) and ``adv`` images."""
    pooled_c, pooled_a, dmaps = [], [], []
    sums: dict[str, Tensor] = {}
    count = 0
    for s in _batches(len(adv), batch_size):
        xc, xa = clean[s].to(device), adv[s].to(device)
        mc, ma = _maps(victim, layer, xc), _maps(victim, layer, xa)
        d = ma - mc
        pooled_c.append(mc.mean((2, 3)).cpu()); pooled_a.append(ma.mean((2, 3)).cpu())
        for key, v in (("abs_delta", d.abs()), ("delta", d), ("clean", mc), ("clean_sq", mc * mc), ("adv", ma)):
            sums[key] = sums.get(key, 0) + v.sum((0, 2, 3)).double().cpu()
        count += d.shape[0] * d.shape[2] * d.shape[3]
        up = F.interpolate(d.abs().sum(1, keepdim=True), size=xa.shape[-2:], mode="bilinear", align_corners=False)
        dmaps.append(up[:, 0].clamp_min(0).cpu())
    return LayerMaps(torch.cat(pooled_c).numpy(), torch.cat(pooled_a).numpy(),
                     {k: v.numpy() for k, v in sums.items()}, count, torch.cat(dmaps).numpy())


def gradient_maps(victim, clean, adv: Tensor, targets: Tensor | None, batch_size: int,
                  device: str) -> np.ndarray:
    """(N, H, W): |d objective / d input| summed over colour channels, at the adversarial image;
    the objective is the victim head's (``heads``), against the clean outputs and the targets."""
    out = []
    for s in _batches(len(adv), batch_size):
        xc, xa = clean[s].to(device), adv[s].to(device).clone().requires_grad_(True)
        tb = None if targets is None else targets[s].to(device)
        score = objective(victim, xc, tb)
        (g,) = torch.autograd.grad(score(victim(xa)).sum(), xa)
        out.append(g.abs().sum(1).detach().cpu())
    return torch.cat(out).numpy()


def restored_outputs(victim, layer: str, clean, adv: Tensor, channel_sets: list[np.ndarray],
                     batch_size: int, device: str) -> list[np.ndarray]:
    """The victim's outputs on ``adv`` with each set of channels of ``layer`` replaced by the
    paired clean image's values (one output array per set)."""
    outs: list[list[Tensor]] = [[] for _ in channel_sets]
    for s in _batches(len(adv), batch_size):
        xa = adv[s].to(device)
        mc = _maps(victim, layer, clean[s].to(device))
        for j, idx in enumerate(channel_sets):
            ch = torch.as_tensor(np.asarray(idx), dtype=torch.long, device=mc.device)

            def restore(a: Tensor, ch=ch) -> Tensor:
                a = a.clone()
                a[:, ch] = mc[:, ch].to(a.dtype)
                return a

            with torch.no_grad(), replace_output(victim, layer, restore):
                outs[j].append(victim(xa).float().cpu())
    return [torch.cat(o).numpy() for o in outs]
