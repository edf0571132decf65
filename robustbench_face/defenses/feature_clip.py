"""Feature clipping: clamp one layer's channels to the range they take on clean training images.

The idea is the activation-range restriction of "ranger" (Z. Chen, G. Li, K. Pattabiraman,
"A Low-cost Fault Corrector for Deep Neural Networks through Range Restriction", DSN 2021) and
of feature-level defenses against adversarial patches, which make a small region dominate a
few channels (``rbf interpret`` measures that; ``docs/interpret.md``): a value outside what any
clean image produced is clamped back to that range.

Bounds: per channel, the ``low`` / ``high`` percentiles (default 0.1 / 99.9) of the layer's
activations (every spatial position) on up to ``limit`` clean images of a **training** split that
the evaluation never uses: ``dataset="auto"`` takes ``mini_mars`` ``train`` for re-ID victims
and ``orl`` ``train`` for face and affect victims (evaluate those on ``--split holdout`` so no
fitted image is evaluated). Fitted once and cached as a small ``.npz`` under
``$RBF_CACHE/feature_clip/``, keyed by victim, its defenses, layer, dataset, split, limit and
percentiles. ``dataset="first_batch"`` fits on the first images the wrapped victim sees: only
for toy victims and the contract test (in a run those could be the attacked images).

``data_root`` reads the dataset from a folder anywhere on disk (as ``--data-root``). ``layer`` is a module name or ``-1`` (the deepest with a spatial 4-D output,
:func:`robustbench_face.activations.resolve_layer`); ``channels`` is ``all`` or the indices to
clip (``"3;17;42"``, e.g. the top channels ``rbf interpret`` reports: its ``top_channels``).
The clamp is a forward hook on that module: differentiable (gradient 1 inside the bounds, 0
where clamped) and deterministic, so ``--adaptive auto`` runs the plain white-box attack on the
true gradient. That gradient is zero through every clamped value, which can starve an attack
that pushes a few channels out of range; ``--adaptive yes`` (BPDA, ``robustbench_face.adaptive``)
passes the gradient straight through the clamp instead (forward clamped, backward identity):
the attack that knows the clipping. ``docs/interpret.md`` compares the two.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np
import torch
from torch import Tensor, nn

from ..activations import capture, replace_output, resolve_layer
from ..errors import InputError
from ..registry import DEFENSES
from ._base import check_param, current_gradient_mode

log = logging.getLogger(__name__)

AUTO_DATASET = {"reid": "mini_mars", "face": "orl", "affect": "orl"}
MAX_VALUES = 200_000  # activations kept per channel for the percentiles (a seeded subsample)


def device_of(victim: nn.Module) -> torch.device:
    t = next(iter([*victim.parameters(), *victim.buffers()]), None)
    return t.device if t is not None else torch.device("cpu")


def parse_channels(spec: str) -> list[int] | None:
    """``all`` -> None, ``"3;17,42"`` -> [3, 17, 42].

    >>> parse_channels("all"), parse_channels("3;17,42")
    (None, [3, 17, 42])
    """
    if str(spec).strip().lower() == "all":
        return None
    try:
        out = [int(c) for c in str(spec).replace(",", ";").split(";") if c.strip()]
    except ValueError:
        out = []
    check_param("feature_clip", "channels", spec, bool(out) and min(out) >= 0,
                "'all' or channel indices such as 3;17;42")
    return out


@DEFENSES.register()
class FeatureClip:
    """Clamp a layer's channels to percentile bounds fitted on clean training images."""

    name = "feature_clip"
    differentiable = True
    randomized = False

    def __init__(self, layer: str | int = "-1", channels: str | int = "all", low: float = 0.1, high: float = 99.9,
                 dataset: str = "auto", split: str = "train", limit: int = 256, batch_size: int = 32,
                 data_root: str | None = None):
        check_param("feature_clip", "low/high", (low, high), 0 <= low < high <= 100,
                    "percentiles with 0 <= low < high <= 100")
        check_param("feature_clip", "limit", limit, isinstance(limit, int) and limit >= 1, "an integer >= 1")
        check_param("feature_clip", "batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1,
                    "an integer >= 1")
        self.layer, self.channels = str(layer), parse_channels(channels)
        self.low, self.high, self.dataset, self.split = float(low), float(high), dataset, split
        self.limit, self.batch_size, self.data_root = limit, batch_size, data_root
        self.params = {"layer": self.layer, "channels": channels, "low": low, "high": high,
                       "dataset": dataset, "split": split, "limit": limit,
                       **({"data_root": data_root} if data_root else {})}

    @staticmethod
    def example() -> dict:
        """Options for the contract test's toy victim, which has no training data."""
        return {"dataset": "first_batch"}

    @property
    def spec(self) -> str:
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in self.params.items())

    def __call__(self, victim: nn.Module) -> "ClippedVictim":
        if not hasattr(victim, "output"):
            raise InputError(f"defense feature_clip wraps victims; got {type(victim).__name__}")
        return ClippedVictim(victim, self)

    # -- fitting ---------------------------------------------------------------------------
    def dataset_of(self, victim) -> str:
        if self.dataset != "auto":
            return self.dataset
        task = getattr(victim, "task", None)
        if task not in AUTO_DATASET:
            raise InputError(f"defense feature_clip: victim {victim.name!r} declares no task; "
                             "pass dataset=NAME (a dataset with a training split)")
        return AUTO_DATASET[task]

    def training_images(self, victim, name: str):
        """The clean training images of dataset ``name``: a source read a batch at a time."""
        from ..datasets._base import stratified_subset
        from ..factory import load_dataset

        ds = load_dataset(name, **({"data_root": self.data_root} if self.data_root else {}))
        samples = ds.split(self.split)
        samples = [samples[i] for i in stratified_subset([s.pid for s in samples], self.limit, 0)]
        align = getattr(victim, "alignment", None)
        if align is not None:
            from ..align import align_source

            return align_source(align, samples)[0]
        source = ds.source(samples)
        if len(source.sizes()) > 1:
            source = ds.source(samples, size=tuple(victim.input_size))
        return source

    def fit(self, victim, layer: str, images) -> tuple[Tensor, Tensor]:
        """Per-channel (low, high) percentiles of ``layer`` on ``images`` (all positions)."""
        n_batches = -(-len(images) // self.batch_size)
        gen, dev = torch.Generator().manual_seed(0), device_of(victim)
        parts = []
        with torch.no_grad():
            for i in range(0, len(images), self.batch_size):
                with capture(victim, layer) as got:
                    victim(images[i:i + self.batch_size].to(dev))
                a = got[0].transpose(0, 1).flatten(1).cpu()  # (C, n*h*w)
                keep = min(a.shape[1], -(-MAX_VALUES // n_batches))
                parts.append(a[:, torch.randperm(a.shape[1], generator=gen)[:keep]])
        values = torch.cat(parts, 1).double().numpy()
        lo, hi = np.percentile(values, [self.low, self.high], axis=1)
        return torch.from_numpy(lo).float(), torch.from_numpy(hi).float()

    def cache_path(self, victim, layer: str, dataset: str):
        from ..assets import cache_dir

        blob = json.dumps({"victim": victim.name, "defenses": list(getattr(victim, "defenses", [])),
                           "layer": layer, "dataset": dataset, "data_root": self.data_root, "split": self.split,
                           "limit": self.limit,
                           "low": self.low, "high": self.high}, sort_keys=True)
        key = hashlib.sha256(blob.encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{victim.name}-{layer}")
        return cache_dir() / "feature_clip" / f"{safe}-{dataset}-{self.split}-{key}.npz"

    def bounds(self, victim, layer: str) -> tuple[Tensor, Tensor]:
        """Fitted bounds for ``victim``'s ``layer``: from the cache, else fitted and stored."""
        dataset = self.dataset_of(victim)
        path = self.cache_path(victim, layer, dataset)
        if path.is_file():
            with np.load(path) as z:
                return torch.from_numpy(z["low"]), torch.from_numpy(z["high"])
        images = self.training_images(victim, dataset)
        lo, hi = self.fit(victim, layer, images)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, low=lo.numpy(), high=hi.numpy(), n_images=len(images))
        os.replace(tmp, path)
        log.info("feature_clip: bounds of %s %s fitted on %d %s/%s images -> %s", victim.name, layer,
                 len(images), dataset, self.split, path)
        return lo, hi


class ClippedVictim(nn.Module):
    """``victim`` with one layer's channels clamped (module docstring); looks like the victim."""

    def __init__(self, victim: nn.Module, clip: FeatureClip):
        super().__init__()
        self.inner, self.clip = victim, clip
        self.name, self.output = victim.name, victim.output
        self.input_size = getattr(victim, "input_size", None)
        self.alignment = getattr(victim, "alignment", None)
        self.defenses = [*getattr(victim, "defenses", []), clip.spec]
        self.differentiable = getattr(victim, "differentiable", True)
        self.randomized = getattr(victim, "randomized", False)
        self.layer: str | None = None
        self.register_buffer("low", torch.zeros(0), persistent=False)
        self.register_buffer("high", torch.zeros(0), persistent=False)
        if clip.dataset != "first_batch":  # resolve the layer on a grey image at the victim's size
            grey = torch.full((1, 3, *(self.input_size or (64, 64))), 0.5, device=device_of(victim))
            self._set(*clip.bounds(victim, self._resolve(grey)))

    def _resolve(self, image: Tensor) -> str:
        self.layer, _ = resolve_layer(self.inner, self.clip.layer, image)
        return self.layer

    def _set(self, lo: Tensor, hi: Tensor) -> None:
        if self.clip.channels is not None:
            if max(self.clip.channels) >= lo.numel():
                raise InputError(f"defense feature_clip: channel {max(self.clip.channels)} is out of range; "
                                 f"layer {self.layer} has {lo.numel()} channels")
            keep = torch.zeros(lo.numel(), dtype=torch.bool)
            keep[self.clip.channels] = True
            lo = torch.where(keep, lo, torch.tensor(-torch.inf))
            hi = torch.where(keep, hi, torch.tensor(torch.inf))
        self.low, self.high = lo.view(1, -1, 1, 1), hi.view(1, -1, 1, 1)

    def _clamp(self, a: Tensor) -> Tensor:
        hi, lo = self.high.to(a.device, a.dtype), self.low.to(a.device, a.dtype)
        y = torch.maximum(torch.minimum(a, hi), lo)
        if current_gradient_mode() == "bpda":  # the adaptive attack: straight through the clamp
            return a + (y - a).detach()
        return y

    def forward(self, x: Tensor) -> Tensor:
        if self.layer is None:  # first_batch: fit on what is seen first (toy victims only)
            log.warning("feature_clip: fitting bounds on the first %d input image(s) (dataset=first_batch)",
                        x.shape[0])
            self._set(*self.clip.fit(self.inner, self._resolve(x[:1].detach()), x.detach()))
        with replace_output(self.inner, self.layer, self._clamp):
            return self.inner(x)

    def train(self, mode: bool = True):
        return super().train(False)  # a victim stays in eval mode

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layer={self.layer!r}, defenses={self.defenses}"
