"""Conditional adversarial patch: one generator forward pass per (source, target) pair.

Method (the project's headline attack): a conditional encoder-decoder synthesises a patch for a
(source, target) pair in a single forward pass, guided by multi-scale features of the source
and target, trained with a dual pull / push objective; it does evasion (the person is no longer
matched) and impersonation (matched as the target) on re-ID and face models. Related work:
T. Brown et al., "Adversarial Patch", 2017; O. Poursaeed et al., "Generative Adversarial
Perturbations", CVPR 2018 (feed-forward attack generators); E. Perez et al., "FiLM", AAAI 2018
(conditioning). Distance: patch area (12.5% ``torso`` box by default, as ``patch_iter``).

Design choices (all in ``attacks/cond_patch.toml`` and ``docs/cond_patch.md``):

* the frozen feature extractor is the attacked victim's own ``feature_maps`` (multi-scale
  maps; the same network the generator was trained on), so conditioning costs one forward pass;
  a checkpoint trained with ``-a extractor=VICTIM`` names another backbone, built on first use;
* ``target`` may be an (N, D) embedding (what the runner passes: the mean gallery embedding of
  the target identity on the attacked victim) or an (N, 3, H, W) batch of target images, which
  are embedded by the victim first; ``None`` means evasion (learned null condition);
* on a classifier victim (``output == "logits"``, the affect heads) the target is a class: an
  (N,) tensor of class indices (what the affect runner passes), fed as a one-hot condition to a
  generator trained with class targets (``classes.py``); ``None`` is untargeted;
* the checkpoint is chosen per attacked victim from the card's ``[checkpoints]`` table (victim
  name -> file, relative to the card folder), else the card's ``checkpoint``; it is loaded on
  first use; ``checkpoint=PATH`` overrides it; ``.train`` trains a new one (``rbf train``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InputError
from ...registry import ATTACKS
from ...types import check_images
from .._regions import paste
from .generator import GeneratorConfig, PatchGenerator, encode_source
from .train import load_generator, train

log = logging.getLogger(__name__)

__all__ = ["CondPatch", "GeneratorConfig", "PatchGenerator", "default_checkpoint", "train"]


def default_checkpoint(victim: str | None = None) -> Path:
    """The checkpoint the card ``attacks/cond_patch.toml`` names for ``victim``, beside the card."""
    from ...cards import card_dirs, card_path, load_card

    card = load_card("attacks", "cond_patch")
    rel = card.get("checkpoints", {}).get(victim) or card.get("checkpoint")
    if not rel:
        raise InputError(f"{card_path('attacks', 'cond_patch')} names no checkpoint; pass checkpoint=PATH")
    for d in card_dirs("attacks"):
        if (d / rel).is_file():
            return d / rel
    raise InputError(f"cond_patch checkpoint {rel!r} not found under "
                     f"{', '.join(map(str, card_dirs('attacks')))}; pass checkpoint=PATH")


class CondPatch:
    distance = "patch"

    def __init__(self, checkpoint: str | Path | None = None, device: str | None = None):
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        self.device = device
        self._model: PatchGenerator | None = None
        self._backbone: tuple[str, object] | None = None  # (name, victim) of a named extractor

    def model_for(self, victim) -> PatchGenerator:
        if self._model is None:
            path = self.checkpoint or default_checkpoint(getattr(victim, "name", None))
            self._model = load_generator(path, self.device or "cpu")
            self.checkpoint = path
        return self._model

    @property
    def model(self) -> PatchGenerator:
        return self.model_for(None)

    def generate(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        """Patches (N, 3, ph, pw) in [0, 1] for ``images`` and an optional target."""
        check_images(images)
        model = self.model_for(victim).to(images.device)
        want = "class" if getattr(victim, "output", "embedding") == "logits" else "embedding"
        if model.cfg.condition != want:
            raise InputError(f"cond_patch checkpoint {self.checkpoint} was trained with "
                             f"{model.cfg.condition} targets; victim {getattr(victim, 'name', victim)!r} "
                             f"needs {want} targets: train one with rbf train cond_patch --victim ...")
        source = self._extractor(victim, model, images.device)
        if not hasattr(source, "feature_maps"):
            raise InputError(f"cond_patch: victim {getattr(source, 'name', source)!r} has no "
                             "feature_maps(); the generator conditions on its multi-scale features")
        crops, pooled = encode_source(source, images, model.region)
        got = tuple(c.shape[1] for c in crops)
        if got != tuple(model.cfg.feat_channels):
            raise InputError(f"cond_patch checkpoint {self.checkpoint} expects feature channels "
                             f"{model.cfg.feat_channels}, extractor {getattr(source, 'name', source)!r} gives {got}")
        t = self._target_embedding(victim, images, target)
        with torch.no_grad():
            choice = model.choose(victim(images).float(), t) if model.cfg.n_bases > 1 else None
            return model(crops, pooled, t, choice=choice)

    def _extractor(self, victim, model: PatchGenerator, device):
        """The checkpoint's feature extractor: the victim itself, or the backbone it names
        (built once, on the images' device)."""
        name = model.cfg.extractor
        if not name:
            return victim
        if self._backbone is None or self._backbone[0] != name:
            from ... import create_victim

            self._backbone = (name, create_victim(name, device=str(device)))
        return self._backbone[1]

    def _target_embedding(self, victim, images: Tensor, target: Tensor | None) -> Tensor | None:
        if target is None:
            return None
        target = torch.as_tensor(target, device=images.device)
        if target.shape[0] != images.shape[0]:
            raise InputError(f"cond_patch: target has {target.shape[0]} rows for {images.shape[0]} images")
        n_cls = self.model.cfg.embed_dim
        if self.model.cfg.condition == "class":
            if target.dim() != 1 or target.is_floating_point() or not bool(((target >= 0) & (target < n_cls)).all()):
                raise InputError(f"cond_patch: a class-target checkpoint takes (N,) class indices in "
                                 f"0..{n_cls - 1}, got shape {tuple(target.shape)}")
            return F.one_hot(target.long(), n_cls).float()
        if target.dim() == 4:  # target images: their embedding on the extractor
            with torch.no_grad():
                target = victim(target.to(images.dtype))
        if target.dim() != 2 or target.shape[1] != self.model.cfg.embed_dim:
            raise InputError(f"cond_patch: target must be (N, {self.model.cfg.embed_dim}) embeddings "
                             f"or (N, 3, H, W) images, got shape {tuple(target.shape)}")
        return F.normalize(target.float(), dim=1)

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        patch = self.generate(victim, images, target)
        box = self.model.region.box(*images.shape[-2:])
        if tuple(patch.shape[-2:]) != box[2:]:  # another resolution: same region, resized patch
            patch = F.interpolate(patch, size=box[2:], mode="bilinear", align_corners=False)
        return paste(images, patch.to(images.dtype), box).detach()

    def __repr__(self) -> str:
        return f"CondPatch(checkpoint={self.checkpoint or 'card default'})"


@ATTACKS.register("cond_patch")
def cond_patch(**kwargs) -> CondPatch:
    """Conditional patch generator: evasion/impersonation patch in one forward pass (12.5% torso)."""
    return CondPatch(**kwargs)


cond_patch.train = train
