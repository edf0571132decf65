"""Per-query iterative adversarial patch, optimised with Adam, with optional EOT.

Papers: T. Brown, D. Mane, A. Roy, M. Abadi, J. Gilmer, "Adversarial Patch", 2017 (the patch
threat model); M. Sharif et al., "Accessorize to a Crime", CCS 2016 (eyeglass-frame regions on
faces); A. Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018 (EOT).
Distance: patch area (fraction of the image replaced; the pixels inside are unconstrained).

Each image gets its own patch, optimised for ``steps`` Adam steps on the objective of
``_objective`` (evasion / impersonation / class / regression targets). All patches of a batch
are optimised together; Adam is element-wise, so this equals optimising them one by one.

Options: ``region`` (``torso`` = 12.5% box for re-ID; ``eyeglass``, ``forehead``, ``cheek``
for aligned faces; or ``top,left,height,width`` fractions), ``steps`` (200), ``lr`` (0.03),
``eot`` (False; when True each step sees a random brightness/contrast change, pixel noise and
a shift of up to ``eot_shift`` of the patch size), ``seed`` (the run's ``--seed``) for the
random init and EOT draws: every call seeds its own generator with it, so a batch's patches
depend only on the batch and the seed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import ATTACKS
from ._base import Attack
from ._objective import objective
from ._regions import Region, paste, parse_region


def eot_transform(patch: Tensor, gen: torch.Generator, strength: float = 1.0) -> Tensor:
    """Random brightness/contrast and noise, differentiable in ``patch``."""
    n = patch.shape[0]
    dev = patch.device
    b = (torch.rand(n, 1, 1, 1, generator=gen, device=dev) - 0.5) * 0.2 * strength
    c = 1 + (torch.rand(n, 1, 1, 1, generator=gen, device=dev) - 0.5) * 0.2 * strength
    noise = torch.randn(patch.shape, generator=gen, device=dev) * 0.02 * strength
    return ((patch - 0.5) * c + 0.5 + b + noise).clamp(0, 1)


@ATTACKS.register()
class PatchIter(Attack):
    """Per-query adversarial patch (Brown et al. 2017), Adam steps, optional EOT; 12.5% torso box."""

    name = "patch_iter"
    distance = "patch"

    def __init__(self, region: str | Region = "torso", steps: int = 200, lr: float = 0.03,
                 eot: bool = False, eot_shift: float = 0.1, seed: int = 0):
        if int(steps) < 1:
            raise InputError(f"patch_iter: steps must be >= 1, got {steps}")
        self.region = parse_region(region)
        self.steps, self.lr, self.eot, self.eot_shift, self.seed = int(steps), float(lr), bool(eot), float(eot_shift), int(seed)

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        score = objective(victim, images, target)
        n, c, h, w = images.shape
        box = self.region.box(h, w)
        gen = torch.Generator(device=images.device).manual_seed(self.seed)
        patch = torch.rand(n, c, box[2], box[3], generator=gen, device=images.device)
        patch.requires_grad_(True)
        opt = torch.optim.Adam([patch], lr=self.lr)
        for _ in range(self.steps):
            p, b = patch, box
            if self.eot:
                p = eot_transform(patch, gen)
                b = self._shifted(box, h, w, gen)
            loss = -score(victim(paste(images, p, b))).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                patch.clamp_(0, 1)
        return paste(images, patch.detach(), box).detach()

    def _shifted(self, box, h, w, gen):
        y0, x0, ph, pw = box
        dy, dx = ((torch.rand(2, generator=gen, device=gen.device).cpu() * 2 - 1) * self.eot_shift * torch.tensor([ph, pw])).round().int().tolist()
        return (min(max(y0 + dy, 0), h - ph), min(max(x0 + dx, 0), w - pw), ph, pw)
