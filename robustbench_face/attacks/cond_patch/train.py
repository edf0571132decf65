"""Training of the conditional patch generator (``rbf train cond_patch``).

Embedding victims (re-ID, faces) train with identity targets as below; classifier victims
(affect heads with logits) take the class-target path of ``classes.py`` through the same loop.
The data, the loop (resume, history, saves) and the losses are :mod:`.._learned`'s, shared
with ``patch_universal``.

One step: draw ``batch_size`` training frames; each row is an impersonation row with
probability ``p_target`` (target = another training identity, conditioned on the normalised
mean of a random subset of 1..16 of its frames, :func:`.._learned.data.draw_batch`) and an
evasion row otherwise (null condition, decoy = another identity's mean). The generator makes
the patches, :func:`.._eot.paste_eot` pastes them through random physical-style transforms,
every surrogate embeds the result and the losses of :mod:`.._learned.losses` are averaged
over surrogates.

Collapse, and its fix: the first generator's logits ran to |z| ~ 60-80 within 40 steps (the
unbounded condition MLP and FiLM amplified the decoder), the sigmoid saturated to a solid blue
square and every parameter gradient was exactly 0 (float32 underflow; Adam eps cannot help).
The bounded generator (``generator.py``) plus the ``sat`` penalty keep ~3% of the logits beyond
+-4 and all gradients alive. Two further changes make the condition matter: a ``contrast`` term
(cross-entropy over the training identity means toward the target) and ``balanced`` batches
(exactly ``p_target`` of the rows impersonate). A weaker attractor remains: patched embeddings
are still close to each other (pairwise cos ~0.9), the patch dominating OSNet's embedding.

Checkpoints: ``<out>.safetensors`` (float16 weights, config in the metadata), a JSON card
beside it (``<out>.json``: config, surrogates, data, seed, wall time, loss history) and, for
``--resume``, ``<out>.resume.pt`` (:class:`.._learned.loop.TrainLoop`; not shipped).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError
from .._eot import EOTConfig, paste_eot
from .._learned.data import (TrainData, WithExtractor, build_surrogates, cached_data, draw_batch,
                             prepare_data)
from .._learned.io import load_patch
from .._learned.loop import TrainLoop, hyper_parameters
from .._learned.losses import LossWeights, patch_loss, saturation, tv
from .._regions import parse_region
from .bank import choose_rows, init_anchors, init_bases, separation, update_anchors
from .checkpoint import load_generator, save_generator
from .classes import prepare_class_data, step_classes
from .generator import GeneratorConfig, PatchGenerator, count_params

__all__ = ["DEFAULTS", "train", "load_generator", "save_generator", "prepare_data", "TrainData",
           "WithExtractor"]

DEFAULTS: dict[str, Any] = dict(batch_size=8, lr=1e-3, base_lr=0.01, p_target=0.5, eot=True,
                                width=32, cond_dim=128, region="torso", pull=1.0, push=1.0,
                                margin=0.0, decoy=0.3, tv=0.01, contrast=1.0, tau=0.1, sat=1.0,
                                z_max=4.0, target_map=16, balanced=True, log_every=10, save_every=100,
                                limit=None, threads=None, init_base=None, data_cache=None,
                                adam_eps=1e-8, rank=0.0, rank_tau=0.05, init_from=None,
                                kappa=1.0, diverse=0.0, n_bases=1, explore=0.25, anchor_momentum=0.9,
                                separate=1.0, init_bases=None, extractor=None)


def train(victims: list[str], dataset: str = "mini_mars", split: str = "train", steps: int = 2000,
          seed: int = 0, device: str = "cpu", out: str | None = None, resume: bool = False,
          data_root: str | None = None, **hparams) -> Path:
    """Train a generator on ``dataset/split`` against ``victims``; returns the checkpoint path."""
    hp = hyper_parameters("cond_patch", DEFAULTS, hparams)
    out_path = Path(out or f"runs/cond_patch.{victims[0]}.safetensors")
    region = parse_region(hp["region"])
    torch.manual_seed(seed)  # the generator's initial weights
    surrogates, kind = _surrogates(victims, hp, device)
    prep, step_fn = (prepare_data, _step) if kind == "embedding" else (prepare_class_data, step_classes)
    t0 = time.perf_counter()
    data = cached_data(hp["data_cache"], prep, surrogates, dataset, split, data_root, device,
                       region, hp["limit"])
    box = region.box(*data.images.shape[-2:])
    model = _new_generator(data, box, region, kind, hp).to(device)
    opt, sched = _optimizer(model, hp, steps)
    gen = torch.Generator().manual_seed(seed)  # batches and EOT draws: saved for --resume
    w_loss = LossWeights(hp["pull"], hp["push"], hp["margin"], hp["decoy"], hp["tv"],
                         hp["contrast"], hp["tau"], hp["sat"], hp["rank"], hp["rank_tau"], hp["diverse"])
    eot = EOTConfig(enabled=bool(hp["eot"]))
    loop = TrainLoop(out_path, steps, {"model": model, "opt": opt, "sched": sched, "gen": gen},
                     log_every=hp["log_every"], save_every=hp["save_every"], desc="cond_patch train")
    if not (resume and loop.resume()) and model.cfg.n_bases > 1:  # a resumed bank has its anchors
        if hp["init_bases"]:
            init_bases(model, data, hp["init_bases"], device)
        init_anchors(model, surrogates[0], data, box, device)
    prep_s = time.perf_counter() - t0
    from ..._version import __version__

    def save(lp: TrainLoop) -> None:
        save_generator(out_path, model, {
            "attack": "cond_patch", "format": 1, "licence": "MIT (same as robustbench_face)",
            "config": model.cfg.to_dict(), "hparams": hp, "loss_weights": w_loss.to_dict(),
            "eot": eot.__dict__, "surrogates": victims, "dataset": dataset, "split": split,
            "n_images": len(data.pids), "identities": data.identities, "seed": seed,
            "steps": lp.step, "device": device, "wall_time_s": round(lp.wall, 1),
            "prep_time_s": round(prep_s, 1), "params": count_params(model),
            "torch": torch.__version__, "robustbench_face": __version__, "history": lp.history})

    loop.run(lambda: step_fn(model, surrogates, data, hp, w_loss, eot, box, gen, device), opt, save,
             after_step=sched.step)
    return out_path


def _surrogates(victims: list[str], hp: dict, device: str) -> tuple[list, str]:
    """The surrogates (the first one, or ``extractor``, gives the features) and their head."""
    surrogates = build_surrogates(victims, device)
    if hp["extractor"]:  # any backbone as the frozen feature extractor
        surrogates[0] = WithExtractor(surrogates[0], build_surrogates([hp["extractor"]], device)[0])
    if not hasattr(surrogates[0], "feature_maps"):
        raise InputError(f"cond_patch: the first --victim {victims[0]!r} has no feature_maps(); "
                         "it is the feature extractor and must expose multi-scale maps "
                         "(or name another backbone with -a extractor=VICTIM)")
    kind = getattr(surrogates[0], "output", "embedding")
    if kind not in ("embedding", "logits"):
        raise InputError(f"cond_patch train: victim {victims[0]!r} has a {kind!r} head; training "
                         "supports embedding victims (identity targets) and logits (class targets)")
    if kind != "embedding" and int(hp["n_bases"]) > 1:
        raise InputError("cond_patch train: n_bases > 1 (the attractor bank) needs an embedding "
                         f"victim; {victims[0]!r} is a classifier")
    return surrogates, kind


def _new_generator(data: TrainData, box, region, kind: str, hp: dict) -> PatchGenerator:
    cfg = GeneratorConfig(feat_channels=tuple(c.shape[1] for c in data.crops),
                          embed_dim=data.emb[0].shape[1], patch_size=(box[2], box[3]),
                          width=int(hp["width"]), cond_dim=int(hp["cond_dim"]),
                          region=(region.top, region.left, region.height, region.width),
                          z_max=float(hp["z_max"]), target_map=int(hp["target_map"]),
                          condition="embedding" if kind == "embedding" else "class",
                          n_bases=int(hp["n_bases"]), extractor=hp["extractor"] or None)
    model = PatchGenerator(cfg)
    if hp["init_base"]:  # warm start: the universal patch is the generator's starting point
        _init_base(model, hp["init_base"])
    if hp["init_from"]:  # fine-tune: every weight from an earlier generator of the same shape
        _init_from(model, hp["init_from"])
    return model


def _optimizer(model: PatchGenerator, hp: dict, steps: int):
    """Adam with a 10x faster rate for the pixel-level logit maps (``base``, the target map):
    at the network's rate they barely move from their random start in a short run."""
    fast = lambda n: n == "base" or n.startswith("tmap.")  # noqa: E731
    base_params = [p for n, p in model.named_parameters() if fast(n)]
    other = [p for n, p in model.named_parameters() if not fast(n)]
    opt = torch.optim.Adam([{"params": other, "lr": hp["lr"]}, {"params": base_params, "lr": hp["base_lr"]}],
                           eps=float(hp["adam_eps"]))  # see "collapse" in the module docstring
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=0)


def _init_base(model: PatchGenerator, path: str) -> None:
    patch, _ = load_patch(path)
    if tuple(patch.shape[-2:]) != tuple(model.cfg.patch_size):
        raise InputError(f"init_base {path}: patch {tuple(patch.shape)} vs generator {model.cfg.patch_size}")
    with torch.no_grad():
        model.base.copy_(torch.logit(patch.clamp(0.01, 0.99)))


def _init_from(model: PatchGenerator, path: str) -> None:
    """Every weight from an earlier generator of the same shape. A single-base generator may
    seed an attractor bank: its base becomes base 0, the others keep their random start."""
    src = load_generator(path)
    free = {"extra": {}, "n_bases": 1}
    if src.cfg.to_dict() | free != model.cfg.to_dict() | free or src.cfg.n_bases not in (1, model.cfg.n_bases):
        raise InputError(f"init_from {path}: generator config {src.cfg.to_dict()} differs from "
                         f"this run's {model.cfg.to_dict()}")
    sd = src.state_dict()
    if src.cfg.n_bases != model.cfg.n_bases:
        base = model.base.detach().clone()
        base[0] = sd.pop("base")
        sd["base"] = base
        sd["anchors"] = model.anchors
    model.load_state_dict(sd)


def _step(model, surrogates, data: TrainData, hp, w_loss, eot, box, gen, device):
    """One training step on embedding surrogates: (loss, logs)."""
    idx, is_t, other, targets = draw_batch(data, int(hp["batch_size"]), float(hp["p_target"]), gen,
                                           bool(hp.get("balanced", False)))
    x = data.images[idx].to(device).float() / 255
    crops = [c[idx].to(device).float() for c in data.crops]
    pooled = data.pooled[idx].to(device)
    is_t = is_t.to(device)
    choice = choose_rows(model, data.emb[0][idx].to(device), targets[0].to(device), is_t, hp, gen)
    patch, z = model(crops, pooled, targets[0].to(device), is_t, return_logits=True, choice=choice)
    x_adv = paste_eot(x, patch, box, gen, eot)
    total, logs, extra = 0.0, {}, {}
    for k, v in enumerate(surrogates):
        emb = v(x_adv)
        if k == 0 and choice is not None:
            sep = separation(model, emb, choice)
            total = total + float(hp["separate"]) * (sep * ~is_t).sum() / max(int((~is_t).sum()), 1)
            extra["separation"] = float(sep.detach().mean())
            update_anchors(model, emb, choice, ~is_t, float(hp["anchor_momentum"]))
        src = data.means[k][data.pids[idx]].to(device)
        decoy = data.means[k][other].to(device)
        l, lg = patch_loss(emb, data.emb[k][idx].to(device), src, targets[k].to(device), decoy, is_t, w_loss,
                           data.means[k].to(device), other.to(device), data.pids[idx].to(device))
        total = total + l.mean() / len(surrogates)
        if k == 0:
            logs = {**lg, **extra}
    total = total + w_loss.tv * tv(patch).mean()
    if w_loss.sat:
        total = total + w_loss.sat * saturation(z, model.cfg.z_max).mean()
    with torch.no_grad():  # collapse monitors: saturated logits, patch spread over the batch
        logs["sat_frac"] = float((z.abs() > model.cfg.z_max).float().mean())
        logs["patch_std"] = float(patch.std(0).mean()) if len(patch) > 1 else 0.0
    return total, logs
