"""Universal adversarial patch: one patch for everyone, trained once, free at query time.

Papers: T. Brown, D. Mane, A. Roy, M. Abadi, J. Gilmer, "Adversarial Patch", 2017 (universal,
input-agnostic patches); S. Moosavi-Dezfooli et al., "Universal Adversarial Perturbations",
CVPR 2017. Distance: patch area (12.5% ``torso`` box by default, as ``patch_iter`` and
``cond_patch``).

It is the honest floor for ``cond_patch``: the same region, the same training identities, the
same evasion objective (push away from the source identity mean and the clean embedding, weak
decoy pull; :mod:`._learned.losses`), the same EOT and the same training loop
(:mod:`._learned`), but no generator and no conditioning. The patch pixels are optimised
directly with Adam (``lr`` 0.03, clamped to [0, 1]).

The attack pastes the checkpoint's patch (the card's ``checkpoint`` in ``checkpoints/``, or
``checkpoint=PATH``) into the region recorded with it. It is untargeted only: one patch cannot
depend on a target, so targeted modes are refused (:meth:`Attack.validate`) and so is a target
passed to a direct call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, RbfError
from ..registry import ATTACKS
from ..types import check_images
from ._base import Attack
from ._eot import EOTConfig, paste_eot
from ._learned import io
from ._learned.data import TrainData, build_surrogates, draw_batch, prepare_data
from ._learned.io import load_patch, save_patch
from ._learned.loop import TrainLoop, hyper_parameters
from ._learned.losses import LossWeights, patch_loss, tv
from ._regions import Region, paste, parse_region

__all__ = ["PatchUniversal", "default_checkpoint", "load_patch", "save_patch", "train"]

DEFAULTS = dict(batch_size=16, lr=0.03, region="torso", push=1.0, margin=0.0, decoy=0.3, tv=0.01,
                eot=True, log_every=10, save_every=50, limit=None, threads=None)


def default_checkpoint() -> Path:
    """The shipped patch the card ``attacks/patch_universal.toml`` names (in ``checkpoints/``)."""
    return _shipped()[0]


def _shipped() -> tuple[Path, str | None]:
    found = io.shipped("patch_universal")
    if found is None:
        raise InputError("attacks/patch_universal.toml names no checkpoint; pass checkpoint=PATH "
                         "or train one with `rbf train patch_universal`")
    return found


def train(victims: list[str], dataset: str = "mini_mars", split: str = "train", steps: int = 300,
          seed: int = 0, device: str = "cpu", out: str | None = None, resume: bool = False,
          data_root: str | None = None, **hparams) -> Path:
    """Optimise one patch on ``dataset/split`` against ``victims``; returns the checkpoint path."""
    hp = hyper_parameters("patch_universal", DEFAULTS, hparams)
    out_path = Path(out or f"runs/patch_universal.{victims[0]}.safetensors")
    region = parse_region(hp["region"])
    torch.manual_seed(seed)
    surrogates = build_surrogates(victims, device)
    data = prepare_data(surrogates, dataset, split, data_root, device, None, hp["limit"])
    box = region.box(*data.images.shape[-2:])
    gen = torch.Generator().manual_seed(seed)  # the initial pixels, batches and EOT draws
    patch = torch.rand(3, box[2], box[3], generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=hp["lr"])
    w = LossWeights(push=hp["push"], margin=hp["margin"], decoy=hp["decoy"], tv=hp["tv"])
    eot = EOTConfig(enabled=bool(hp["eot"]))
    loop = TrainLoop(out_path, steps, {"patch": patch, "opt": opt, "gen": gen},
                     log_every=hp["log_every"], save_every=hp["save_every"], desc="patch_universal train")
    if resume:
        loop.resume()

    def clamp() -> None:  # the patch is pixels: keep it a printable image
        with torch.no_grad():
            patch.clamp_(0, 1)

    def save(lp: TrainLoop) -> None:
        save_patch(out_path, patch, region, {
            "attack": "patch_universal", "format": 1, "licence": "MIT (same as robustbench_face)",
            "region": [region.top, region.left, region.height, region.width], "hparams": hp,
            "surrogates": victims, "dataset": dataset, "split": split, "n_images": len(data.pids),
            "identities": data.identities, "seed": seed, "steps": lp.step,
            "wall_time_s": round(lp.wall, 1), "torch": torch.__version__, "history": lp.history})

    loop.run(lambda: _step(patch, surrogates, data, hp, w, eot, box, gen, device), opt, save,
             after_step=clamp)
    return out_path


def _step(patch: Tensor, surrogates: list, data: TrainData, hp: dict, w: LossWeights, eot: EOTConfig,
          box, gen: torch.Generator, device: str) -> tuple[Tensor, dict[str, float]]:
    """cond_patch's evasion rows with one shared patch: (loss, logs of the first surrogate)."""
    idx, _, other, _ = draw_batch(data, int(hp["batch_size"]), 0.0, gen)
    x = data.images[idx].to(device).float() / 255
    x_adv = paste_eot(x, patch[None].expand(len(idx), -1, -1, -1), box, gen, eot)
    no_t = torch.zeros(len(idx), dtype=torch.bool, device=device)
    loss, logs = 0.0, {}
    for k, v in enumerate(surrogates):
        emb = v(x_adv)
        l, lg = patch_loss(emb, data.emb[k][idx].to(device), data.means[k][data.pids[idx]].to(device),
                           emb.detach(), data.means[k][other].to(device), no_t, w)
        loss = loss + l.mean() / len(surrogates)
        logs = logs or {"cos_self": lg["cos_self"]}
    return loss + w.tv * tv(patch[None]).mean(), logs


@ATTACKS.register()
class PatchUniversal(Attack):
    """One universal patch for everyone (Brown et al. 2017), trained once; 12.5% torso box."""

    name = "patch_universal"
    distance = "patch"
    heads = ("embedding",)
    targeted = False
    train = staticmethod(train)  # ``rbf train patch_universal`` (robustbench_face.training)
    contract_victims = {"embedding": "osnet_x0_25.market1501"}  # what the shipped patch was trained on

    def __init__(self, checkpoint: str | Path | None = None, seed: int = 0):
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        self.seed = int(seed)  # nothing is drawn at attack time: recorded only
        self._patch: tuple[Tensor, Region] | None = None
        self._sha: str | None = None

    def _path(self) -> Path:
        if self.checkpoint is None:
            self.checkpoint, self._sha = _shipped()
        return self.checkpoint

    @property
    def region(self) -> Region | None:  # type: ignore[override]
        try:
            return self._patch[1] if self._patch else io.patch_region(self._path())
        except RbfError:  # no checkpoint here: __call__ raises the full error
            return None

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        try:
            path = self._path()
            out.update(checkpoint=io.recorded_path(path), checkpoint_sha256=self._sha or io.sha256_of(path))
        except (RbfError, OSError):
            pass
        return out

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        check_images(images)
        if target is not None:
            raise InputError("patch_universal is untargeted only: one patch for everyone cannot "
                             "depend on a target (use --mode evasion / dodging / untargeted)")
        if self._patch is None:
            self._patch = load_patch(self._path())
        patch, region = self._patch
        box = region.box(*images.shape[-2:])
        p = patch[None].to(images)
        if tuple(p.shape[-2:]) != box[2:]:
            p = F.interpolate(p, size=box[2:], mode="bilinear", align_corners=False)
        return paste(images, p, box).detach()
