"""Training of the conditional patch generator (``rbf train cond_patch``), checkpoint I/O.

Embedding victims (re-ID, faces) train with identity targets as below; classifier victims
(affect heads with logits) take the class-target path of ``classes.py`` through the same loop.

One step: draw ``batch_size`` training frames; each row is an impersonation row with
probability ``p_target`` (target = another training identity, conditioned on the normalised
mean of a random subset of 1..16 of its frames, so the generator sees target embeddings as
noisy as gallery means of unseen people) and an evasion row otherwise (null condition, decoy =
another identity's mean). The generator makes the patches, :func:`_eot.paste_eot` pastes them
through random physical-style transforms, every surrogate embeds the result and the losses of
:mod:`.losses` are averaged over surrogates. Source features, clean embeddings and identity
means are computed once up front (no gradients), so a step costs one forward + backward of
each surrogate plus the tiny generator.

Collapse, and its fix: the first generator's logits ran to |z| ~ 60-80 within 40 steps (the
unbounded condition MLP and FiLM amplified the decoder), the sigmoid saturated to a solid blue
square and every parameter gradient was exactly 0 (float32 underflow; Adam eps cannot help).
The bounded generator (``generator.py``) plus the ``sat`` penalty keep ~3% of the logits beyond
+-4 and all gradients alive. Two further changes make the condition matter: a ``contrast`` term
(cross-entropy over the training identity means toward the target) and ``balanced`` batches
(exactly ``p_target`` of the rows impersonate). A weaker attractor remains: patched embeddings
are still close to each other (pairwise cos ~0.9), the patch dominating OSNet's embedding.
``data_cache=FILE`` memoises the embedded split (1 min to build for mini-MARS).

Checkpoints: ``<out>.safetensors`` (float16 weights, config in the metadata), a JSON card
beside it (``<out>.json``: config, surrogates, data, seed, wall time, loss history) and, for
``--resume``, ``<out>.resume.pt`` (float32 weights, Adam state, RNG, history; not shipped).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from .._eot import EOTConfig, paste_eot
from .._regions import parse_region
from .bank import choose_rows, init_anchors, init_bases, separation, update_anchors
from .classes import prepare_class_data, step_classes
from .checkpoint import load_generator, save_generator
from .generator import GeneratorConfig, PatchGenerator, count_params, crop_maps
from .losses import LossWeights, patch_loss, saturation, tv

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- data
@dataclass
class TrainData:
    images: Tensor                  # (N, 3, H, W) uint8
    pids: Tensor                    # (N,) identity index 0..K-1
    identities: list[int]           # dataset pid of each index
    emb: list[Tensor]               # per surrogate (N, D) clean embeddings
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
    from ... import create_victim

    return [create_victim(n, device=device) for n in names]


def load_split(dataset: str, split: str, data_root: str | None, limit: int | None):
    """The dataset and the samples of ``split`` (``limit``: that many, evenly spread; tests)."""
    from ... import load_dataset

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
    """Load ``split`` as uint8 and embed it once on every surrogate (+ extractor crops)."""
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


def draw_batch(data: TrainData, bs: int, p_target: float, gen: torch.Generator, balanced: bool = False):
    """Frame indices, is_target mask, other-identity index, and per-surrogate target vectors.

    ``balanced``: exactly round(p_target * bs) impersonation rows (the first ones), not a coin
    flip per row, so every step carries both objectives.
    """
    n, k = len(data.pids), len(data.identities)
    idx = torch.randint(n, (bs,), generator=gen)
    is_t = torch.rand(bs, generator=gen) < p_target
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


# --------------------------------------------------------------------------- training
DEFAULTS: dict[str, Any] = dict(batch_size=8, lr=1e-3, base_lr=0.01, p_target=0.5, eot=True,
                                width=32, cond_dim=128, region="torso", pull=1.0, push=1.0,
                                margin=0.0, decoy=0.3, tv=0.01, contrast=1.0, tau=0.1, sat=1.0,
                                z_max=4.0, target_map=16, balanced=True, log_every=10, save_every=100,
                                limit=None, threads=None, init_base=None, data_cache=None,
                                adam_eps=1e-8, rank=0.0, rank_tau=0.05, init_from=None,
                                kappa=1.0, diverse=0.0, n_bases=1, explore=0.25, anchor_momentum=0.9,
                                separate=1.0, init_bases=None, extractor=None)


def _split_hparams(hp: dict) -> dict:
    unknown = set(hp) - set(DEFAULTS)
    if unknown:
        raise InputError(f"cond_patch train: unknown hyper-parameter(s) {sorted(unknown)}; "
                         f"known: {', '.join(sorted(DEFAULTS))}")
    return {**DEFAULTS, **hp}


def train(victims: list[str], dataset: str = "mini_mars", split: str = "train", steps: int = 2000,
          seed: int = 0, device: str = "cpu", out: str | None = None, resume: bool = False,
          data_root: str | None = None, **hparams) -> Path:
    """Train a generator on ``dataset/split`` against ``victims``; returns the checkpoint path."""
    hp = _split_hparams(hparams)
    if hp["threads"]:
        torch.set_num_threads(int(hp["threads"]))
    out_path = Path(out or f"runs/cond_patch.{victims[0]}.safetensors")
    region = parse_region(hp["region"])
    torch.manual_seed(seed)
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
    prep, step_fn = (prepare_data, _step) if kind == "embedding" else (prepare_class_data, step_classes)
    if kind != "embedding" and int(hp["n_bases"]) > 1:
        raise InputError("cond_patch train: n_bases > 1 (the attractor bank) needs an embedding "
                         f"victim; {victims[0]!r} is a classifier")
    t0 = time.perf_counter()
    data = _cached_data(hp["data_cache"], prep, surrogates, dataset, split, data_root, device,
                        region, hp["limit"])
    h, w = data.images.shape[-2:]
    box = region.box(h, w)
    cfg = GeneratorConfig(feat_channels=tuple(c.shape[1] for c in data.crops),
                          embed_dim=data.emb[0].shape[1], patch_size=(box[2], box[3]),
                          width=int(hp["width"]), cond_dim=int(hp["cond_dim"]),
                          region=(region.top, region.left, region.height, region.width),
                          z_max=float(hp["z_max"]), target_map=int(hp["target_map"]),
                          condition="embedding" if kind == "embedding" else "class",
                          n_bases=int(hp["n_bases"]), extractor=hp["extractor"] or None)
    model = PatchGenerator(cfg).to(device)
    if hp["init_base"]:  # warm start: the universal patch is the generator's starting point
        _init_base(model, hp["init_base"])
    if hp["init_from"]:  # fine-tune: every weight from an earlier generator of the same shape
        _init_from(model, hp["init_from"])
    fast = lambda n: n == "base" or n.startswith("tmap.")  # noqa: E731  (pixel-level logit maps)
    base_params = [p for n, p in model.named_parameters() if fast(n)]
    other = [p for n, p in model.named_parameters() if not fast(n)]
    opt = torch.optim.Adam([{"params": other, "lr": hp["lr"]}, {"params": base_params, "lr": hp["base_lr"]}],
                           eps=float(hp["adam_eps"]))  # see "collapse" in the module docstring
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=0)
    gen = torch.Generator().manual_seed(seed)
    w_loss = LossWeights(hp["pull"], hp["push"], hp["margin"], hp["decoy"], hp["tv"],
                         hp["contrast"], hp["tau"], hp["sat"], hp["rank"], hp["rank_tau"], hp["diverse"])
    eot = EOTConfig(enabled=bool(hp["eot"]))
    start, history, wall = 0, [], 0.0
    state_path = out_path.with_suffix(".resume.pt")
    if resume and state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"]); sched.load_state_dict(st["sched"])
        gen.set_state(st["gen"]); start, history, wall = st["step"], st["history"], st["wall"]
        log.info("resumed %s at step %d", state_path, start)
    elif cfg.n_bases > 1:
        if hp["init_bases"]:
            init_bases(model, data, hp["init_bases"], device)
        init_anchors(model, surrogates[0], data, box, device)
    prep_s = time.perf_counter() - t0

    def card() -> dict:
        from ... import __version__
        return {"attack": "cond_patch", "format": 1, "licence": "MIT (same as robustbench_face)",
                "config": cfg.to_dict(), "hparams": hp, "loss_weights": w_loss.to_dict(),
                "eot": eot.__dict__, "surrogates": victims, "dataset": dataset, "split": split,
                "n_images": len(data.pids), "identities": data.identities, "seed": seed,
                "steps": step, "device": device, "wall_time_s": round(wall, 1),
                "prep_time_s": round(prep_s, 1), "params": count_params(model),
                "torch": torch.__version__, "robustbench_face": __version__, "history": history}

    from tqdm.auto import tqdm

    step = start
    bar = tqdm(range(start, steps), desc="cond_patch train", unit="step", initial=start, total=steps)
    run_logs: dict[str, float] = {}
    for step in bar:
        ts = time.perf_counter()
        loss, logs = step_fn(model, surrogates, data, hp, w_loss, eot, box, gen, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step(); sched.step()
        wall += time.perf_counter() - ts
        for k, v in {"loss": float(loss.detach()), **logs}.items():
            run_logs[k] = 0.9 * run_logs.get(k, v) + 0.1 * v
        step += 1
        if step % hp["log_every"] == 0 or step == steps:
            history.append({"step": step, "wall_s": round(wall, 1), **{k: round(v, 4) for k, v in run_logs.items()}})
            bar.set_postfix({k: f"{v:.3f}" for k, v in run_logs.items()})
        if step % hp["save_every"] == 0 or step == steps:
            _save_all(out_path, state_path, model, opt, sched, gen, step, history, wall, card())
    _save_all(out_path, state_path, model, opt, sched, gen, step, history, wall, card())
    return out_path


def _cached_data(cache, prep, surrogates, dataset, split, data_root, device, region, limit) -> TrainData:
    """``prep`` (prepare_data or prepare_class_data), memoised in ``cache`` (a .pt file) when
    given: embedding the split is slow."""
    if cache and Path(cache).is_file():
        log.info("training data from cache %s", cache)
        return TrainData(**torch.load(cache, map_location="cpu", weights_only=False))
    data = prep(surrogates, dataset, split, data_root, device, region, limit)
    if cache:
        torch.save(data.__dict__, cache)
    return data


def _init_base(model: PatchGenerator, path: str) -> None:
    from ..patch_universal import load_patch

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


def _save_all(out_path, state_path, model, opt, sched, gen, step, history, wall, card) -> None:
    save_generator(out_path, model, card)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "gen": gen.get_state(), "step": step, "history": history, "wall": wall}, state_path)
