"""Conditional adversarial patch: one generator forward pass per (source, target) pair.

Method (the project's headline attack): a conditional encoder-decoder synthesises a patch for a
(source, target) pair in a single forward pass, guided by multi-scale features of the source
and target, trained with a dual pull / push objective; it does evasion (the person is no longer
matched) and impersonation (matched as the target) on re-ID and face models. Related work:
T. Brown et al., "Adversarial Patch", 2017; O. Poursaeed et al., "Generative Adversarial
Perturbations", CVPR 2018 (feed-forward attack generators); E. Perez et al., "FiLM", AAAI 2018
(conditioning). Distance: patch area (the checkpoint's region; 12.5% ``torso`` box for re-ID,
as ``patch_iter``).

Design choices (all in ``attacks/cond_patch.toml`` and ``docs/cond_patch.md``):

* the frozen feature extractor is the attacked victim's own ``feature_maps`` (multi-scale
  maps; the same network the generator was trained on), so conditioning costs one forward pass;
  a checkpoint trained with ``-a extractor=VICTIM`` names another backbone, built on first use;
* ``target`` may be an (N, D) embedding (what the runner passes: the mean gallery embedding of
  the target identity on the attacked victim) or an (N, 3, H, W) batch of target images, which
  are embedded by the victim first; ``None`` means evasion (learned null condition);
* on a classifier victim (``logits`` head, the affect heads) the target is a class: an (N,)
  tensor of class indices (what the affect runner passes), fed as a one-hot condition to a
  generator trained with class targets (``classes.py``); ``None`` is untargeted;
* the checkpoint is chosen per attacked victim from the card's ``[checkpoints]`` table (victim
  name -> file in ``checkpoints/`` + sha256); a victim the table does not name needs
  ``checkpoint=PATH`` (:meth:`CondPatch.validate` says so before anything is built). The
  region and the condition kind are read from the checkpoint's metadata, without loading its
  weights; the generator is loaded on first use. ``.train`` trains a new one (``rbf train``).

Layout: ``generator.py`` (the network), ``checkpoint.py`` (its files), ``train.py`` (``rbf
train``), ``bank.py`` (attractor-bank training), ``classes.py`` (class targets). What it shares
with ``patch_universal`` (data, loop, losses, checkpoint format) is in :mod:`.._learned`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InputError
from ...registry import ATTACKS
from ...types import check_images
from .._base import Attack
from .._learned import io
from .._regions import Region, paste
from .checkpoint import load_generator, read_config, save_generator
from .generator import GeneratorConfig, PatchGenerator, encode_source
from .train import train

__all__ = ["CondPatch", "GeneratorConfig", "PatchGenerator", "default_checkpoint", "train",
           "load_generator", "save_generator", "read_config"]

_KIND_OF_HEAD = {"embedding": "embedding", "logits": "class"}  # head -> condition it needs


def default_checkpoint(victim: str | None = None) -> Path:
    """The shipped generator the card ``attacks/cond_patch.toml`` names for ``victim`` (its
    ``[checkpoints]`` table; with no victim, the card's headline ``checkpoint``)."""
    found = io.shipped("cond_patch", victim)
    if found is None:
        raise InputError(_no_checkpoint(victim))
    return found[0]


def _no_checkpoint(victim: str | None) -> str:
    _, table = io.card_entries("cond_patch")
    return (f"cond_patch has no generator trained for victim {victim!r} (attacks/cond_patch.toml "
            f"[checkpoints] names {', '.join(sorted(table)) or 'none'}): train one with `rbf train "
            f"cond_patch --victim {victim or 'VICTIM'} --dataset DATASET --split train` and pass "
            "-a checkpoint=PATH")


@ATTACKS.register()
class CondPatch(Attack):
    """Conditional patch generator: evasion/impersonation patch in one forward pass (12.5% torso)."""

    name = "cond_patch"
    distance = "patch"
    heads = ("embedding", "logits")
    train = staticmethod(train)  # ``rbf train cond_patch`` (robustbench_face.training)
    # the victims the shipped generators were trained for (tests/test_contracts.py): a
    # generator is only meaningful on the features it was trained on
    contract_victims = {"embedding": "osnet_x0_25.market1501", "logits": "fer_xception.fer2013"}

    def __init__(self, checkpoint: str | Path | None = None, device: str | None = None, seed: int = 0):
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        self.device = device
        self.seed = int(seed)  # the generator is deterministic: recorded, never drawn from
        self._victim: str | None = None  # the attacked victim (validate / the last call)
        self._models: dict[Path, PatchGenerator] = {}
        self._backbone: tuple[str, object] | None = None  # (name, victim) of a named extractor

    # -- which checkpoint ---------------------------------------------------------------
    def checkpoint_for(self, victim: str | None) -> tuple[Path, str | None]:
        """(path, sha256 from the card or None) of the generator used against ``victim``."""
        if self.checkpoint is not None:
            return self.checkpoint, None
        found = io.shipped("cond_patch", victim) if victim else None
        if found is None:
            raise InputError(_no_checkpoint(victim))
        return found

    def _current(self) -> tuple[Path, str | None] | None:
        """The checkpoint known so far: given, or chosen for the bound victim; None before."""
        if self.checkpoint is None and self._victim is None:
            return None
        return self.checkpoint_for(self._victim)

    @property
    def region(self) -> Region | None:  # type: ignore[override]
        current = self._current()
        return None if current is None else Region(*read_config(current[0]).region)

    def validate(self, victim: str, head: str, mode: str, targeted: bool) -> None:
        """Refuse a victim without a trained generator, or a head the checkpoint's targets do
        not fit, before any model is built (only the checkpoint's metadata is read)."""
        super().validate(victim, head, mode, targeted)
        path, _ = self.checkpoint_for(victim)
        cfg = read_config(path)
        want = _KIND_OF_HEAD[head]
        if cfg.condition != want:
            raise InputError(f"cond_patch checkpoint {io.recorded_path(path)} was trained with "
                             f"{cfg.condition} targets; victim {victim!r} ({head} head) needs {want} "
                             f"targets: train one with `rbf train cond_patch --victim {victim} ...`")
        self._victim = victim

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        current = self._current()
        if current is None:
            out["checkpoint"] = "per victim: attacks/cond_patch.toml [checkpoints]"
            return out
        path, sha = current
        cfg = read_config(path)
        out.update(checkpoint=io.recorded_path(path), checkpoint_sha256=sha or io.sha256_of(path),
                   generator={"condition": cfg.condition, "n_bases": cfg.n_bases,
                              "extractor": cfg.extractor, "width": cfg.width,
                              "patch_size": list(cfg.patch_size), "embed_dim": cfg.embed_dim})
        return out

    def model_for(self, victim) -> PatchGenerator:
        """The generator for a built ``victim`` (loaded once per checkpoint)."""
        return self._load(victim)[1]

    def _load(self, victim) -> tuple[Path, PatchGenerator]:
        name = getattr(victim, "name", None) or self._victim  # a plug-in may carry no name
        path, _ = self.checkpoint_for(name)
        if path not in self._models:
            self._models[path] = load_generator(path, self.device or "cpu")
        self._victim = name
        return path, self._models[path]

    # -- the attack ---------------------------------------------------------------------
    def generate(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        """Patches (N, 3, ph, pw) in [0, 1] for ``images`` and an optional target."""
        return self._generate(victim, images, target)[0]

    def _generate(self, victim, images: Tensor, target: Tensor | None) -> tuple[Tensor, PatchGenerator]:
        check_images(images)
        path, model = self._load(victim)
        model = model.to(images.device)
        want = "class" if getattr(victim, "output", "embedding") == "logits" else "embedding"
        if model.cfg.condition != want:
            raise InputError(f"cond_patch checkpoint {path} was trained with "
                             f"{model.cfg.condition} targets; victim {getattr(victim, 'name', victim)!r} "
                             f"needs {want} targets: train one with rbf train cond_patch --victim ...")
        source = self._extractor(victim, model, images.device)
        if not hasattr(source, "feature_maps"):
            raise InputError(f"cond_patch: victim {getattr(source, 'name', source)!r} has no "
                             "feature_maps(); the generator conditions on its multi-scale features")
        crops, pooled = encode_source(source, images, model.region)
        got = tuple(c.shape[1] for c in crops)
        if got != tuple(model.cfg.feat_channels):
            raise InputError(f"cond_patch checkpoint {path} expects feature channels "
                             f"{model.cfg.feat_channels}, extractor {getattr(source, 'name', source)!r} gives {got}")
        t = self._target_embedding(model, victim, images, target)
        with torch.no_grad():
            choice = model.choose(victim(images).float(), t) if model.cfg.n_bases > 1 else None
            return model(crops, pooled, t, choice=choice), model

    def _extractor(self, victim, model: PatchGenerator, device):
        """The checkpoint's feature extractor: the victim itself, or the backbone it names
        (built once, on the images' device)."""
        name = model.cfg.extractor
        if not name:
            return victim
        if self._backbone is None or self._backbone[0] != name:
            from ...factory import create_victim

            self._backbone = (name, create_victim(name, device=str(device)))
        return self._backbone[1]

    @staticmethod
    def _target_embedding(model: PatchGenerator, victim, images: Tensor, target: Tensor | None) -> Tensor | None:
        if target is None:
            return None
        target = torch.as_tensor(target, device=images.device)
        if target.shape[0] != images.shape[0]:
            raise InputError(f"cond_patch: target has {target.shape[0]} rows for {images.shape[0]} images")
        n_cls = model.cfg.embed_dim
        if model.cfg.condition == "class":
            if target.dim() != 1 or target.is_floating_point() or not bool(((target >= 0) & (target < n_cls)).all()):
                raise InputError(f"cond_patch: a class-target checkpoint takes (N,) class indices in "
                                 f"0..{n_cls - 1}, got shape {tuple(target.shape)}")
            return F.one_hot(target.long(), n_cls).float()
        if target.dim() == 4:  # target images: their embedding on the extractor
            with torch.no_grad():
                target = victim(target.to(images.dtype))
        if target.dim() != 2 or target.shape[1] != model.cfg.embed_dim:
            raise InputError(f"cond_patch: target must be (N, {model.cfg.embed_dim}) embeddings "
                             f"or (N, 3, H, W) images, got shape {tuple(target.shape)}")
        return F.normalize(target.float(), dim=1)

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        patch, model = self._generate(victim, images, target)
        box = model.region.box(*images.shape[-2:])
        if tuple(patch.shape[-2:]) != box[2:]:  # another resolution: same region, resized patch
            patch = F.interpolate(patch, size=box[2:], mode="bilinear", align_corners=False)
        return paste(images, patch.to(images.dtype), box).detach()
