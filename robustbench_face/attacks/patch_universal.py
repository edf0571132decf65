"""Universal adversarial patch: one patch for everyone, trained once, free at query time.

Papers: T. Brown, D. Mane, A. Roy, M. Abadi, J. Gilmer, "Adversarial Patch", 2017 (universal,
input-agnostic patches); S. Moosavi-Dezfooli et al., "Universal Adversarial Perturbations",
CVPR 2017. Distance: patch area (12.5% ``torso`` box by default, as ``patch_iter`` and
``cond_patch``).

It is the honest floor for ``cond_patch``: the same region, the same training identities, the
same evasion objective (push away from the source identity mean and the clean embedding, weak
decoy pull; :mod:`.cond_patch.losses`) and the same EOT, but no generator and no conditioning.
The patch pixels are optimised directly with Adam (``lr`` 0.03, clamped to [0, 1]).

The attack pastes the checkpoint's patch (the card's ``checkpoint``, or ``checkpoint=PATH``).
It is evasion-only: a target passed in impersonation mode is ignored (with a warning), since a
single patch cannot depend on it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError
from ..registry import ATTACKS
from ..types import check_images
from ._eot import EOTConfig, paste_eot
from ._regions import Region, paste, parse_region
from .cond_patch.losses import LossWeights, patch_loss, tv
from .cond_patch.train import build_surrogates, draw_batch, prepare_data

log = logging.getLogger(__name__)

DEFAULTS = dict(batch_size=16, lr=0.03, region="torso", push=1.0, margin=0.0, decoy=0.3, tv=0.01,
                eot=True, log_every=10, save_every=50, limit=None, threads=None)


def default_checkpoint() -> Path:
    from ..cards import card_dirs, load_card

    rel = load_card("attacks", "patch_universal").get("checkpoint", "")
    for d in card_dirs("attacks"):
        if rel and (d / rel).is_file():
            return d / rel
    raise InputError(f"patch_universal checkpoint {rel!r} not found beside attacks/patch_universal.toml; "
                     "pass checkpoint=PATH or train one with `rbf train patch_universal`")


def save_patch(path: Path, patch: Tensor, region: Region, card: dict) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"attack": "patch_universal", "region": json.dumps([region.top, region.left, region.height, region.width])}
    save_file({"patch": patch.detach().to(torch.float16).contiguous().cpu()}, str(path), metadata=meta)
    path.with_suffix(".json").write_text(json.dumps(card, indent=1, default=str) + "\n")


def load_patch(path: str | Path) -> tuple[Tensor, Region]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"patch_universal checkpoint not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if "patch" not in f.keys():
            raise InputError(f"{path} is not a patch_universal checkpoint (no 'patch' tensor)")
        patch = f.get_tensor("patch").float()
    return patch, Region(*json.loads(meta.get("region", "[0.25, 0.25, 0.25, 0.5]")))


class PatchUniversal:
    distance = "patch"

    def __init__(self, checkpoint: str | Path | None = None):
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        self._patch: tuple[Tensor, Region] | None = None
        self._warned = False

    def __call__(self, victim, images: Tensor, target: Tensor | None = None) -> Tensor:
        check_images(images)
        if self._patch is None:
            self.checkpoint = self.checkpoint or default_checkpoint()
            self._patch = load_patch(self.checkpoint)
        if target is not None and not self._warned:
            log.warning("patch_universal ignores the target: one patch for everyone (evasion only)")
            self._warned = True
        patch, region = self._patch
        box = region.box(*images.shape[-2:])
        p = patch[None].to(images)
        if tuple(p.shape[-2:]) != box[2:]:
            p = F.interpolate(p, size=box[2:], mode="bilinear", align_corners=False)
        return paste(images, p, box).detach()

    def __repr__(self) -> str:
        return f"PatchUniversal(checkpoint={self.checkpoint or 'card default'})"


def train(victims: list[str], dataset: str = "mini_mars", split: str = "train", steps: int = 300,
          seed: int = 0, device: str = "cpu", out: str | None = None, resume: bool = False,
          data_root: str | None = None, **hparams) -> Path:
    """Optimise one patch on ``dataset/split`` against ``victims``; returns the checkpoint path."""
    unknown = set(hparams) - set(DEFAULTS)
    if unknown:
        raise InputError(f"patch_universal train: unknown hyper-parameter(s) {sorted(unknown)}; "
                         f"known: {', '.join(sorted(DEFAULTS))}")
    hp = {**DEFAULTS, **hparams}
    if hp["threads"]:
        torch.set_num_threads(int(hp["threads"]))
    out_path = Path(out or f"runs/patch_universal.{victims[0]}.safetensors")
    state_path = out_path.with_suffix(".resume.pt")
    region = parse_region(hp["region"])
    torch.manual_seed(seed)
    surrogates = build_surrogates(victims, device)
    data = prepare_data(surrogates, dataset, split, data_root, device, None, hp["limit"])
    box = region.box(*data.images.shape[-2:])
    gen = torch.Generator().manual_seed(seed)
    patch = torch.rand(3, box[2], box[3], generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.Adam([patch], lr=hp["lr"])
    w = LossWeights(push=hp["push"], margin=hp["margin"], decoy=hp["decoy"], tv=hp["tv"])
    eot = EOTConfig(enabled=bool(hp["eot"]))
    start, history, wall = 0, [], 0.0
    if resume and state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        with torch.no_grad():
            patch.copy_(st["patch"])
        opt.load_state_dict(st["opt"]); gen.set_state(st["gen"])
        start, history, wall = st["step"], st["history"], st["wall"]
    from tqdm.auto import tqdm

    step, ema = start, {}
    for step in tqdm(range(start, steps), desc="patch_universal train", initial=start, total=steps):
        ts = time.perf_counter()
        idx, _, other, _ = draw_batch(data, int(hp["batch_size"]), 0.0, gen)
        x = data.images[idx].to(device).float() / 255
        x_adv = paste_eot(x, patch[None].expand(len(idx), -1, -1, -1), box, gen, eot)
        no_t = torch.zeros(len(idx), dtype=torch.bool, device=device)
        loss = 0.0
        for k, v in enumerate(surrogates):
            emb = v(x_adv)
            l, logs = patch_loss(emb, data.emb[k][idx].to(device), data.means[k][data.pids[idx]].to(device),
                                 emb.detach(), data.means[k][other].to(device), no_t, w)
            loss = loss + l.mean() / len(surrogates)
        loss = loss + w.tv * tv(patch[None]).mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        with torch.no_grad():
            patch.clamp_(0, 1)
        wall += time.perf_counter() - ts
        step += 1
        for k, v in {"loss": float(loss.detach()), "cos_self": logs["cos_self"]}.items():
            ema[k] = 0.9 * ema.get(k, v) + 0.1 * v
        if step % hp["log_every"] == 0 or step == steps:
            history.append({"step": step, "wall_s": round(wall, 1), **{k: round(v, 4) for k, v in ema.items()}})
        if step % hp["save_every"] == 0 or step == steps:
            _save(out_path, state_path, patch, region, opt, gen, step, history, wall, hp, victims, dataset, split, seed, data)
    _save(out_path, state_path, patch, region, opt, gen, step, history, wall, hp, victims, dataset, split, seed, data)
    return out_path


def _save(out_path, state_path, patch, region, opt, gen, step, history, wall, hp, victims, dataset,
          split, seed, data) -> None:
    card = {"attack": "patch_universal", "format": 1, "licence": "MIT (same as robustbench_face)",
            "region": [region.top, region.left, region.height, region.width], "hparams": hp,
            "surrogates": victims, "dataset": dataset, "split": split, "n_images": len(data.pids),
            "identities": data.identities, "seed": seed, "steps": step, "wall_time_s": round(wall, 1),
            "torch": torch.__version__, "history": history}
    save_patch(out_path, patch, region, card)
    torch.save({"patch": patch.detach().cpu(), "opt": opt.state_dict(), "gen": gen.get_state(),
                "step": step, "history": history, "wall": wall}, state_path)


@ATTACKS.register("patch_universal")
def patch_universal(**kwargs) -> PatchUniversal:
    """One universal patch for everyone (Brown et al. 2017), trained once; 12.5% torso box."""
    return PatchUniversal(**kwargs)


patch_universal.train = train
