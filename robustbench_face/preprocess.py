"""One input spec per victim: how [0, 1] NCHW images become the tensor its network was trained on.

A victim's card declares it once, in its ``[input]`` table (timm's pretrained configs do the same
with ``input_size`` / ``interpolation`` / ``mean`` / ``std``: R. Wightman, "PyTorch Image Models",
2019), and :class:`InputSpec` applies it differentiably, so attacks see exactly what the network
sees. Resizing is where libraries disagree most: PIL antialiases when it shrinks, OpenCV and
legacy TensorFlow do not, dlib aligns corners and TF.js samples without half-pixel centres, and
the differences move clean accuracy and attack success (G. Parmar, R. Zhang, J.-Y. Zhu, "On
Aliased Resizing and Surprising Subtleties in GAN Evaluation", CVPR 2022). So the spec names the
resize of each victim's *reference runtime* (``interpolation``, ``antialias``, ``coordinates``)
and the card says which runtime that is (``reference``).

One fixed order, for every victim:

1. channel rule: grey input is repeated to three channels for RGB/BGR networks; RGB input is
   converted to grey for grey networks with ITU-R BT.601 weights 0.299 R + 0.587 G + 0.114 B
   (what OpenCV's ``COLOR_BGR2GRAY`` and PIL's ``convert("L")`` use);
2. resize to ``size`` (skipped when the input already has it);
3. channel order flip (``channels = "BGR"``);
4. ``x * scale`` (1, or 255 for networks fed 0..255 pixels);
5. ``(x - mean) / std``, with mean/std in the *network's* channel order, in units after scale;
6. layout (``NHWC`` for graphs exported from TensorFlow).

>>> spec = InputSpec.from_card({"size": [2, 2], "channels": "BGR", "scale": 255,
...                             "mean": [104.0, 117.0, 123.0], "layout": "NHWC"})
>>> red = torch.zeros(1, 3, 4, 4); red[:, 0] = 1.0
>>> spec(red)[0, 0, 0].tolist()  # BGR order, mean subtracted after the flip
[-104.0, -117.0, 132.0]
>>> InputSpec(size=(64, 64), channels="grey", mean=(0.5,), std=(0.5,))(red).shape
torch.Size([1, 1, 64, 64])
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
COORDINATES = ("half_pixel", "align_corners", "asymmetric")
CHANNELS = ("RGB", "BGR", "grey")
LAYOUTS = ("NCHW", "NHWC")
SCALES = (1.0, 255.0)
BT601 = (0.299, 0.587, 0.114)

# Which resize each (interpolation, coordinates) pair reproduces; the reason a pair is allowed.
_RESIZES = {
    ("bilinear", "half_pixel"): "cv2 INTER_LINEAR; PIL BILINEAR with antialias",
    ("bicubic", "half_pixel"): "cv2 INTER_CUBIC; PIL BICUBIC with antialias",
    ("nearest", "half_pixel"): "PIL NEAREST, cv2 INTER_NEAREST_EXACT",
    ("area", "half_pixel"): "cv2 INTER_AREA (integer shrink factors)",
    ("bilinear", "align_corners"): "dlib resize_image, tf.image.resize_bilinear(align_corners=True)",
    ("bicubic", "align_corners"): "torch align_corners=True",
    ("bilinear", "asymmetric"): "TF.js / TF1 resizeBilinear without half-pixel centres",
    ("nearest", "asymmetric"): "cv2 INTER_NEAREST, TF1 resize_nearest_neighbor",
}


def _floats(value: Any, what: str) -> tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else (value,)
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items):
        raise InputError(f"{what} must be a number or a list of numbers, got {value!r}")
    out = tuple(float(v) for v in items)
    if not out or not all(math.isfinite(v) for v in out):
        raise InputError(f"{what} must be finite numbers, got {value!r}")
    return out


def _choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise InputError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


@dataclass(frozen=True)
class InputSpec:
    """What a network expects (module docstring); ``spec(x)`` applies it to [0, 1] NCHW images."""

    size: tuple[int, int]
    interpolation: str = "bilinear"
    antialias: bool = False
    coordinates: str = "half_pixel"
    channels: str = "RGB"
    layout: str = "NCHW"
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)  # one value applies to every channel
    std: tuple[float, ...] = (1.0,)
    reference: str = field(default="", compare=False)  # the runtime this spec reproduces, and why

    def __post_init__(self):
        size = self.size
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in size)):
            raise InputError(f"input size must be [height, width] in pixels, got {size!r}")
        _choice(self.interpolation, INTERPOLATIONS, "input interpolation")
        _choice(self.coordinates, COORDINATES, "input coordinates")
        _choice(self.channels, CHANNELS, "input channels")
        _choice(self.layout, LAYOUTS, "input layout")
        if not isinstance(self.antialias, bool):
            raise InputError(f"input antialias must be true or false, got {self.antialias!r}")
        if (self.interpolation, self.coordinates) not in _RESIZES:
            raise InputError(f"input interpolation {self.interpolation!r} has no {self.coordinates!r} "
                             f"variant; possible: {', '.join(f'{i}/{c}' for i, c in _RESIZES)}")
        if self.antialias and (self.interpolation not in ("bilinear", "bicubic")
                               or self.coordinates != "half_pixel"):
            raise InputError("input antialias applies to half_pixel bilinear or bicubic resizing "
                             f"only (PIL's filters), not {self.interpolation}/{self.coordinates}")
        scale = _floats(self.scale, "input scale")
        if len(scale) != 1 or scale[0] not in SCALES:
            raise InputError(f"input scale must be 1 (pixels in [0, 1]) or 255 (0..255), got {self.scale!r}")
        n = 1 if self.channels == "grey" else 3
        mean, std = _floats(self.mean, "input mean"), _floats(self.std, "input std")
        for what, v in (("mean", mean), ("std", std)):
            if len(v) not in (1, n):
                need = "1 value" if n == 1 else f"1 or {n} values"
                raise InputError(f"input {what} needs {need} for {self.channels} input, got {list(v)}")
        if any(s == 0 for s in std):
            raise InputError(f"input std must not be zero, got {list(std)}")
        for key, value in (("size", tuple(int(s) for s in size)), ("scale", scale[0]), ("mean", mean), ("std", std)):
            object.__setattr__(self, key, value)

    @classmethod
    def from_card(cls, table: Mapping[str, Any] | None, where: str = "card") -> InputSpec:
        """The spec of a card's ``[input]`` table; unknown keys and bad values raise :class:`InputError`.

        >>> InputSpec.from_card({"size": [64, 64], "channels": "gray"}, "victims/x.toml")
        Traceback (most recent call last):
        ...
        robustbench_face.errors.InputError: victims/x.toml [input]: input channels must be one of RGB, BGR, grey; got 'gray'
        """
        if not isinstance(table, Mapping):
            raise InputError(f"{where}: no [input] table; it must declare at least size = [H, W]")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(table) - set(names))
        if unknown:
            raise InputError(f"{where} [input]: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(names)}")
        if "size" not in table:
            raise InputError(f"{where} [input]: size = [H, W] is required")
        kw = dict(table)
        if isinstance(kw.get("size"), list):
            kw["size"] = tuple(kw["size"])
        try:
            return cls(**kw)
        except InputError as exc:
            raise InputError(f"{where} [input]: {exc}") from None

    def to_card(self) -> dict[str, Any]:
        """The ``[input]`` table that :meth:`from_card` reads back (lists, not tuples)."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return {k: v for k, v in out.items() if k != "reference" or v}

    def replace(self, **changes: Any) -> InputSpec:
        return dataclasses.replace(self, **changes)

    def __call__(self, x: Tensor) -> Tensor:
        """[0, 1] NCHW images, 1 or 3 channels, any size -> the network's input tensor."""
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] not in (1, 3):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise InputError(f"images must be (N, 1 or 3, H, W) tensors, got {got}")
        if not x.is_floating_point():
            raise InputError(f"images must be float in [0, 1], got {x.dtype} (divide 0..255 pixels by 255)")
        if not x.requires_grad and x.numel():  # clean inputs; attack iterates are clamped already
            lo, hi = torch.aminmax(x)
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise InputError(f"images must lie in [0, 1], got range [{float(lo):.3g}, {float(hi):.3g}]"
                                 + (" (0..255 pixels? divide by 255)" if hi > 2 else ""))
        if self.channels == "grey" and x.shape[1] == 3:
            w = torch.tensor(BT601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
        elif self.channels != "grey" and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.size:
            x = resize(x, self.size, self.interpolation, self.antialias, self.coordinates)
        if self.channels == "BGR":
            x = x.flip(1)
        if self.scale != 1.0:
            x = x * self.scale
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = (x - mean) / std
        return x.permute(0, 2, 3, 1) if self.layout == "NHWC" else x

    def describe(self) -> str:
        """One line for logs and error messages.

        >>> InputSpec(size=(112, 112), scale=255, mean=(127.5,), std=(127.5,)).describe()
        '112x112 RGB NCHW, bilinear half_pixel resize, x*255, mean [127.5], std [127.5]'
        """
        aa = " antialiased" if self.antialias else ""
        return (f"{self.size[0]}x{self.size[1]} {self.channels} {self.layout}, {self.interpolation} "
                f"{self.coordinates}{aa} resize, x*{self.scale:g}, mean {list(self.mean)}, std {list(self.std)}")


def resize(x: Tensor, size: tuple[int, int], interpolation: str = "bilinear", antialias: bool = False,
           coordinates: str = "half_pixel") -> Tensor:
    """Differentiable resize of NCHW ``x`` to ``size`` (H, W); see ``_RESIZES`` for what each
    (interpolation, coordinates) pair reproduces."""
    if coordinates == "half_pixel":
        if interpolation == "nearest":  # torch's "nearest" floors dst*scale: that is asymmetric
            return F.interpolate(x, size=size, mode="nearest-exact")
        if interpolation == "area":
            return F.interpolate(x, size=size, mode="area")
        return F.interpolate(x, size=size, mode=interpolation, align_corners=False, antialias=antialias)
    if coordinates == "align_corners":
        return F.interpolate(x, size=size, mode=interpolation, align_corners=True)
    if interpolation == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return _asymmetric_bilinear(x, size)


def _axis(n_in: int, n_out: int, device) -> tuple[Tensor, Tensor, Tensor]:
    # TF.js resizeBilinear, halfPixelCenters=false: src = dst * in/out, the upper neighbour clamped
    src = torch.arange(n_out, dtype=torch.float64, device=device) * (n_in / n_out)
    lo = src.floor().clamp(min=0)
    hi = src.ceil().clamp(max=n_in - 1)
    return lo.long(), hi.long(), src - lo


def _asymmetric_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear sampling at ``dst * in / out`` (no half-pixel offset), columns first, as TF.js does."""
    (h_lo, h_hi, h_f), (w_lo, w_hi, w_f) = (_axis(x.shape[-2], size[0], x.device),
                                            _axis(x.shape[-1], size[1], x.device))
    left, right = x.index_select(-1, w_lo), x.index_select(-1, w_hi)
    x = left + (right - left) * w_f.to(x.dtype)
    top, bottom = x.index_select(-2, h_lo), x.index_select(-2, h_hi)
    return top + (bottom - top) * h_f.to(x.dtype).view(-1, 1)
