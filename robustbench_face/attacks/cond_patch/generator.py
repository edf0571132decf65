"""The conditional patch generator G(source features, target condition) -> patch in [0, 1].

One readable network file (in the spirit of nanoGPT's ``model.py``). Shapes below are for the
default setting: OSNet x0.25 as the frozen feature extractor, 256x128 person crops, the 12.5%
``torso`` region, hence a 64x64 patch.

Inputs
------
* **Source multi-scale features.** The frozen extractor (by default the surrogate victim's own
  ``feature_maps``: conv1 / conv2 / conv3 / conv5 at strides 2 / 8 / 16 / 16) is run once on the
  clean source image. We keep only what lies under the patch region of each map (so the decoder
  sees the clothing it is about to cover, at every scale) and one global average of the deepest
  map (who the person is, for the whole body). Cropping costs nothing: the maps are needed anyway
  and the crops are tiny (16x32x32, 64x8x8, 96x4x4, 128x4x4).
* **Target condition.** For impersonation: the target's L2-normalised embedding on the
  extractor (the mean of its gallery embeddings, exactly what the runner passes; a batch of
  target images is embedded by the caller first). The embedding is the top of the target's
  feature hierarchy and the only target description that survives the runner's interface, so
  the target enters through it. For evasion: a learned "no target" vector of the same size.

Network
-------
``cond = MLP([target or null ; pooled source conv5 ; is_target])`` (128-d) modulates every
decoder stage through FiLM (per-channel scale and shift), and the source crops are fused scale
by scale, U-Net style, into a decoder that upsamples 8x8 -> 16x16 -> 32x32 -> 64x64:

    8x8   : [conv5 crop ; conv3 crop]  -> FiLMBlock(224 -> 2w)
    16x16 : [up ; conv2 crop]          -> FiLMBlock(2w + 64 -> 3w/2)
    32x32 : [up ; conv1 crop]          -> FiLMBlock(3w/2 + 16 -> w)
    64x64 : up                         -> FiLMBlock(w -> w/2) -> conv 3x3 -> 3 logits
    target: Linear(512 -> 3x16x16) on the target (or null) embedding -> upsampled 64x64 logits

The logits are ``z = base + residual + up(tmap(t))``: ``base`` is a learned per-pixel logit
image (a universal patch), ``residual`` the conditional decoder's output and ``tmap`` a linear
map from the target (or null) embedding ``t`` to a 3x16x16 logit image, bilinearly upsampled: a
direct target path, so the target does not have to squeeze through FiLM alone. The patch is
``sigmoid(clamp(z, -z_max, z_max))`` with a straight-through clamp, so it lies in
[0.018, 0.982] and its gradient never vanishes. About 0.82 M parameters at ``width=32``
(0.43 M decoder + 0.39 M target map).

Attractor bank (``cfg.n_bases`` = K > 1): ``base`` becomes K logit images and every row adds
one of them, ``choice`` (see :meth:`PatchGenerator.choose`): an evasion row takes the base whose
*anchor* (a buffer: the mean patched embedding that base produces, tracked during training)
is farthest from the source's clean embedding, an impersonation row the base whose anchor is
nearest the target. Why: with one base every patched query becomes the same "patch person",
and the people who already look like it stay matched (the evasion mAP floor of the single-base
generator, ``docs/cond_patch.md``). The choice costs one victim forward on the clean source.

Why bounded (``cfg.bounded``, the fix for the shipped model's collapse): the first network was
``sigmoid(base + residual)`` with an unbounded condition MLP and FiLM. Within 40 steps the
condition's norm grew from 0.6 to 19, FiLM amplified the decoder, the residual logits reached
|z| ~ 60 (100% of them beyond 4), the patch became exactly (0, 0, 1) blue for every input and
every parameter gradient was exactly 0. Now the condition is LayerNorm-ed, FiLM's scale and
shift go through tanh, the head starts small instead of zero (a zero head passes no gradient
to the conditional path) and the logits are clamped (plus a training penalty beyond z_max).
Checkpoints from before carry no ``bounded`` key and load as the original network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._regions import Region, crop_maps


@dataclass
class GeneratorConfig:
    feat_channels: tuple[int, ...] = (16, 64, 96, 128)  # conv1, conv2, conv3, conv5 (osnet_x0_25)
    embed_dim: int = 512          # target embedding size (the extractor's output)
    patch_size: tuple[int, int] = (64, 64)  # generated at this size, resized to the box if needed
    width: int = 32               # decoder width unit
    cond_dim: int = 128           # FiLM conditioning vector
    region: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.5)  # top, left, h, w
    # Bounded pre-activations (the fix for the collapse, see the module docstring): LayerNorm on
    # the condition, tanh-bounded FiLM, logits clamped to +-z_max (straight-through). Checkpoints
    # saved before this field existed load with bounded=False (the original, unbounded network).
    bounded: bool = True
    z_max: float = 4.0
    # Direct target path: a linear map from the target (or null) embedding to a
    # target_map x target_map logit image, upsampled and added to the logits; 0 = off.
    target_map: int = 16
    # What the target condition is: "embedding" (an identity's embedding, re-ID / faces) or
    # "class" (a one-hot class of a classifier victim, embed_dim = number of classes).
    condition: str = "embedding"
    # Attractor bank: K learned base logit images instead of one. Each row starts from the base
    # whose anchor (the mean patched embedding it produces, a buffer kept in the checkpoint)
    # lies farthest from the source's clean embedding (evasion) or nearest the target
    # (impersonation); see ``choose``. 1 = one universal base (every earlier checkpoint).
    n_bases: int = 1
    # The frozen feature extractor: None = the attacked victim's own feature_maps; else the
    # registry name of another backbone (``-a extractor=``), built by the attack at inference.
    extractor: str | None = None
    extra: dict = field(default_factory=dict)  # free-form provenance (never read by the net)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        d = dict(d)
        for k in ("feat_channels", "patch_size", "region"):
            if k in d:
                d[k] = tuple(d[k])
        d.setdefault("bounded", False)  # pre-fix checkpoints
        d.setdefault("target_map", 0)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@torch.no_grad()
def encode_source(extractor, images: Tensor, region: Region) -> tuple[list[Tensor], Tensor]:
    """Source conditioning from a frozen extractor with ``feature_maps`` (no gradients)."""
    return crop_maps(extractor.feature_maps(images), region)


class FiLMBlock(nn.Module):
    """conv-act-conv-norm, then a per-channel affine set by the condition, then act."""

    def __init__(self, cin: int, cout: int, cond_dim: int, bounded: bool = False):
        super().__init__()
        self.bounded = bounded
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        # affine-free GroupNorm: the affine comes from FiLM; batch-size independent (batch 1 ok)
        self.norm = nn.GroupNorm(min(8, cout // 4), cout, affine=False)
        self.film = nn.Linear(cond_dim, 2 * cout)
        nn.init.zeros_(self.film.weight); nn.init.zeros_(self.film.bias)  # start as identity

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.norm(self.conv2(F.silu(self.conv1(x))))
        gamma, beta = self.film(cond)[..., None, None].chunk(2, dim=1)
        if self.bounded:  # scale in (0, 2), shift in (-1, 1): FiLM cannot blow the logits up
            gamma, beta = torch.tanh(gamma), torch.tanh(beta)
        return F.silu(h * (1 + gamma) + beta)


class PatchGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, c5 = cfg.feat_channels
        w, d = cfg.width, cfg.cond_dim
        self.null_target = nn.Parameter(torch.randn(cfg.embed_dim) * 0.05)  # learned "no target"
        layers = [nn.Linear(cfg.embed_dim + c5 + 1, d), nn.SiLU(), nn.Linear(d, d)]
        if cfg.bounded:  # unit-scale condition whatever the MLP learns (its norm grew 0.6 -> 22)
            layers.append(nn.LayerNorm(d, elementwise_affine=False))
        self.cond = nn.Sequential(*layers)
        b = cfg.bounded
        self.b8 = FiLMBlock(c5 + c3, 2 * w, d, b)
        self.b16 = FiLMBlock(2 * w + c2, 3 * w // 2, d, b)
        self.b32 = FiLMBlock(3 * w // 2 + c1, w, d, b)
        self.b64 = FiLMBlock(w, w // 2, d, b)
        self.head = nn.Conv2d(w // 2, 3, 3, padding=1)
        nn.init.zeros_(self.head.bias)
        if b:  # small, not zero: a zero head blocks every gradient to the conditional path
            nn.init.normal_(self.head.weight, std=0.01)
        else:
            nn.init.zeros_(self.head.weight)                                  # start universal
        shape = (3, *cfg.patch_size) if cfg.n_bases == 1 else (cfg.n_bases, 3, *cfg.patch_size)
        self.base = nn.Parameter(torch.randn(shape) * (0.5 if b else 1.0))
        if cfg.n_bases > 1:
            self.register_buffer("anchors", torch.zeros(cfg.n_bases, cfg.embed_dim))
        if cfg.target_map:  # zero-init last layer: starts as the plain decoder
            self.tmap = nn.Linear(cfg.embed_dim, 3 * cfg.target_map ** 2)
            nn.init.zeros_(self.tmap.weight); nn.init.zeros_(self.tmap.bias)

    @property
    def region(self) -> Region:
        return Region(*self.cfg.region)

    def condition(self, target: Tensor | None, pooled: Tensor, with_t: bool = False):
        n = pooled.shape[0]
        if target is None:
            t, flag = self.null_target.expand(n, -1), pooled.new_zeros(n, 1)
        else:
            t, flag = F.normalize(target.to(pooled.dtype), dim=1), pooled.new_ones(n, 1)
        c = self.cond(torch.cat([t, pooled, flag], 1))
        return (c, t) if with_t else c

    def choose(self, source: Tensor, target: Tensor | None = None,
               is_target: Tensor | None = None) -> Tensor | None:
        """Which base each row starts from (None with a single base).

        Evasion rows take the base whose anchor is *farthest* from the source's clean embedding
        (``source``, (N, D)): one universal attractor leaves matched exactly the people who
        already look like it, so each source is sent to the attractor least like itself.
        Impersonation rows take the base whose anchor is *nearest* the target.

        >>> g = PatchGenerator(GeneratorConfig(embed_dim=2, n_bases=2))
        >>> g.anchors.copy_(torch.eye(2))
        tensor([[1., 0.],
                [0., 1.]])
        >>> g.choose(torch.tensor([[1.0, 0.1], [0.1, 1.0]])).tolist()
        [1, 0]
        >>> g.choose(torch.tensor([[1.0, 0.1]]), torch.tensor([[1.0, 0.0]])).tolist()
        [0]
        """
        if self.cfg.n_bases == 1:
            return None
        far = (F.normalize(source.float(), dim=1) @ self.anchors.T).argmin(1)
        if target is None:
            return far
        near = (F.normalize(target.float(), dim=1) @ self.anchors.T).argmax(1)
        return near if is_target is None else torch.where(is_target, near, far)

    def forward(self, crops: list[Tensor], pooled: Tensor, target: Tensor | None = None,
                is_target: Tensor | None = None, return_logits: bool = False,
                choice: Tensor | None = None):
        """Patches (N, 3, *patch_size) in [0, 1] (and the raw logits if ``return_logits``).

        ``target`` (N, D) embeddings or None (evasion for all). ``is_target`` (N,) bool mixes
        both in one batch during training: rows where it is False use the null condition.
        ``choice`` (N,) base indices, required with more than one base (see ``choose``).
        """
        if self.cfg.n_bases > 1 and choice is None:
            raise ValueError(f"this generator has {self.cfg.n_bases} bases: pass choice= (see choose)")
        if target is not None and is_target is not None:
            c_t, t_t = self.condition(target, pooled, True)
            c_0, t_0 = self.condition(None, pooled, True)
            cond = torch.where(is_target[:, None], c_t, c_0)
            t = torch.where(is_target[:, None], t_t, t_0)
        else:
            cond, t = self.condition(target, pooled, True)
        f1, f2, f3, f5 = crops
        ph, pw = self.cfg.patch_size
        rs = lambda x, k: F.interpolate(x, size=(ph // k, pw // k), mode="bilinear",  # noqa: E731
                                        align_corners=False)
        h = self.b8(torch.cat([rs(f5, 8), rs(f3, 8)], 1), cond)
        h = self.b16(torch.cat([rs(h, 4), rs(f2, 4)], 1), cond)
        h = self.b32(torch.cat([rs(h, 2), rs(f1, 2)], 1), cond)
        h = self.b64(rs(h, 1), cond)
        z = (self.base if self.cfg.n_bases == 1 else self.base[choice]) + self.head(h)
        if self.cfg.target_map:
            k = self.cfg.target_map
            z = z + F.interpolate(self.tmap(t).view(-1, 3, k, k), size=(ph, pw), mode="bilinear",
                                  align_corners=False)
        if self.cfg.bounded:  # clamp forward, identity backward: never a dead sigmoid
            zm = self.cfg.z_max
            patch = torch.sigmoid(z + (z.clamp(-zm, zm) - z).detach())
        else:
            patch = torch.sigmoid(z)
        return (patch, z) if return_logits else patch


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
