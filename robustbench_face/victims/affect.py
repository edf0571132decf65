"""Generic facial-affect victims: any torch module or ONNX file as an ABAW-style head.

Three heads, matching ``victim.output`` (see :mod:`robustbench_face.types`):

* ``expression``: class logits, ``output="logits"`` (``classes`` names them);
* ``valence_arousal``: two values in [-1, 1], ``output="regression"``;
* ``action_units``: per-AU probabilities, ``output="multilabel"`` (``au_names`` names them).

A :class:`Preprocess` declares what the network expects (size, greyscale, BGR, pixel scale,
mean/std, NCHW or NHWC); the victim applies it differentiably to [0, 1] images of any size.
``outputs`` picks a slice of the network's last dimension (a multi-task model feeding several
heads: HSEmotion's ``enet_b0_8_va_mtl`` gives 8 expression logits then valence, arousal), and
``activation`` maps raw outputs into the head's range (``"log"`` turns probabilities into
logits, ``"tanh"``/``"clamp"`` bound valence/arousal, ``"sigmoid"`` makes AU probabilities).
At build time one dummy forward checks that the number of outputs matches the declared head.

Cards: ``models/affect.toml`` lists user-supplied models (HSEmotion: A. V. Savchenko,
"Facial expression and attributes recognition based on multi-task learning of lightweight
neural networks", SISY 2021, and "Video-based frame-level facial analysis of affective
behavior on mobile devices using EfficientNets", CVPR-W 2022). Each ``[archs.<name>]`` table
registers the victim ``<name>`` with its variants ``[variants."<name>.<weights>"]``.
``affect_model`` builds a victim from any file: ``create_victim("affect_model",
path="model.onnx", head="expression", classes="a,b,c", size=(224, 224), mean=..., std=...)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cards import load_card, resolve_weights, variant
from ..errors import AssetError, InputError, UnknownNameError
from ..registry import VICTIMS
from ..types import VictimBase

log = logging.getLogger(__name__)

HEADS = {"expression": "logits", "valence_arousal": "regression", "action_units": "multilabel"}
_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda x: x,
    "log": lambda x: torch.log(x.clamp_min(1e-12)),  # probabilities -> logits (softmax inverts it)
    "tanh": torch.tanh,
    "clamp": lambda x: x.clamp(-1.0, 1.0),
    "sigmoid": torch.sigmoid,
}
_DEFAULT_ACTIVATION = {"expression": "none", "valence_arousal": "clamp", "action_units": "sigmoid"}
_GREY = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Preprocess:
    """What the network expects. Pixels go [0, 1] -> grey? -> resize -> x*scale -> (x-mean)/std.

    ``bgr`` flips the channel order after normalisation (mean/std are given in RGB order);
    ``layout="NHWC"`` permutes for graphs exported from TensorFlow.
    """

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    grey: bool = False
    bgr: bool = False
    scale: float = 1.0
    layout: str = "NCHW"

    def __post_init__(self):
        if self.layout not in ("NCHW", "NHWC"):
            raise InputError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        ch = 1 if self.grey else 3
        if len(self.mean) not in (1, ch) or len(self.std) not in (1, ch):
            raise InputError(f"mean/std need 1 or {ch} values, got {self.mean} and {self.std}")


class AffectVictim(VictimBase):
    """A network + declared preprocessing + head; see the module docstring."""

    def __init__(self, net: nn.Module, name: str, head: str, prep: Preprocess,
                 labels: Sequence[str] | None = None, outputs: slice | None = None,
                 activation: str | None = None):
        super().__init__()
        if head not in HEADS:
            raise InputError(f"victim {name!r}: unknown head {head!r}; choose from {', '.join(HEADS)}")
        activation = activation or _DEFAULT_ACTIVATION[head]
        if activation not in _ACTIVATIONS:
            raise InputError(f"victim {name!r}: unknown activation {activation!r}; "
                             f"choose from {', '.join(_ACTIVATIONS)}")
        self.net, self.name, self.head, self.prep = net, name, head, prep
        self.output = HEADS[head]
        self.input_size = tuple(prep.size)
        self.outputs = outputs or slice(None)
        self.activation = activation
        labels = tuple(labels) if labels else None
        if head == "expression":
            self.classes = labels
        elif head == "action_units":
            self.au_names = labels
        self.expected = 2 if head == "valence_arousal" else (len(labels) if labels else None)
        ch = 1 if prep.grey else 3
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32).view(1, -1, 1, 1).expand(1, ch, 1, 1).clone())
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32).view(1, -1, 1, 1).expand(1, ch, 1, 1).clone())
        self.register_buffer("grey_w", torch.tensor(_GREY).view(1, 3, 1, 1))

    def preprocess(self, x: Tensor) -> Tensor:
        if self.prep.grey and x.shape[1] == 3:
            x = (x * self.grey_w).sum(1, keepdim=True)
        elif not self.prep.grey and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        x = (x * self.prep.scale - self.mean) / self.std
        if self.prep.bgr and x.shape[1] == 3:
            x = x.flip(1)
        return x.permute(0, 2, 3, 1) if self.prep.layout == "NHWC" else x

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(self.preprocess(x))
        if isinstance(out, (tuple, list)):  # multi-output graphs: the first output is the scores
            out = out[0]
        return _ACTIVATIONS[self.activation](out.flatten(1)[:, self.outputs])

    def check_outputs(self) -> "AffectVictim":
        """One dummy forward: the number of outputs must match the declared head."""
        ch = 1 if self.prep.grey else 3
        with torch.no_grad():
            got = self(torch.full((1, ch, *self.input_size), 0.5, device=self.mean.device)).shape[-1]
        if self.expected is not None and got != self.expected:
            what = {"expression": "classes", "action_units": "AU names"}.get(self.head, "outputs")
            raise InputError(f"affect victim {self.name!r}: declared head {self.head!r} expects "
                             f"{self.expected} outputs ({what}), the model gives {got}")
        if self.head == "expression" and self.classes is None:
            self.classes = tuple(str(i) for i in range(got))
        if self.head == "action_units" and self.au_names is None:
            self.au_names = tuple(f"AU{i}" for i in range(got))
        return self


def load_network(path: str | Path) -> nn.Module:
    """An ONNX file (via onnx2torch), a TorchScript file, or a pickled ``nn.Module``.

    Pickled modules run arbitrary code when loaded: only load files you trust (the
    card's sha256 is checked before this is called).
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        import onnx
        from onnx2torch import convert

        return convert(onnx.load(str(path)))
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        pass
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, nn.Module):
        raise AssetError(f"{path}: holds a {type(obj).__name__}, not a module; export it to ONNX "
                         "or TorchScript, or build the module and pass it to build_affect_victim")
    return obj


def _slice(spec: Any) -> slice | None:
    """``"0:8"`` / ``"-2:"`` / ``[0, 8]`` -> slice.

    >>> _slice("-2:"), _slice([0, 8]), _slice(None)
    (slice(-2, None, None), slice(0, 8, None), None)
    """
    if spec is None or isinstance(spec, slice):
        return spec
    if isinstance(spec, str):
        a, _, b = spec.partition(":")
        return slice(int(a) if a.strip() else None, int(b) if b.strip() else None)
    return slice(*spec)


def _names(spec: Any) -> list[str] | None:
    if isinstance(spec, str):
        return [s.strip() for s in spec.split(",") if s.strip()]
    return list(spec) if spec else None


def build_affect_victim(net: nn.Module | str | Path, name: str, head: str, *,
                        size: Sequence[int] = (224, 224), mean: Sequence[float] = (0.0, 0.0, 0.0),
                        std: Sequence[float] = (1.0, 1.0, 1.0), grey: bool = False, bgr: bool = False,
                        scale: float = 1.0, layout: str = "NCHW", classes: Any = None,
                        au_names: Any = None, outputs: Any = None, activation: str | None = None,
                        device: str = "cpu") -> AffectVictim:
    """A frozen, checked affect victim from a module or a model file (see module docstring)."""
    if not isinstance(net, nn.Module):
        net = load_network(net)
    prep = Preprocess(tuple(size), tuple(mean), tuple(std), bool(grey), bool(bgr), float(scale), layout)
    labels = _names(classes if head == "expression" else au_names)
    victim = AffectVictim(net, name, head, prep, labels, _slice(outputs), activation)
    return victim.finalize(device).check_outputs()


def register_affect_victim(name: str, build: Callable[[], nn.Module | str | Path], head: str,
                           summary: str = "", **spec: Any) -> None:
    """Register victim ``name``: ``build()`` gives the module or file, ``spec`` the rest.

    For plugins: ``register_affect_victim("my_au", lambda: "au.onnx", "action_units",
    size=(112, 112), au_names="AU1,AU2,AU4")``; the file is loaded when the victim is created.
    """
    def factory(weights: str | None = None, device: str = "cpu") -> AffectVictim:
        return build_affect_victim(build(), name, head, device=device, **spec)

    VICTIMS.register(name, summary=summary or f"user-supplied affect model ({head})")(factory)


_SPEC_KEYS = ("size", "mean", "std", "grey", "bgr", "scale", "layout", "classes", "au_names",
              "outputs", "activation")


def _register_card_archs(card_name: str = "affect") -> None:
    """Register each ``[archs.<name>]`` of ``models/<card_name>.toml`` as a victim."""
    try:
        card = load_card("victims", card_name)
    except UnknownNameError:
        log.debug("no models/%s.toml: no card-defined affect victims", card_name)
        return
    for arch, info in card.get("archs", {}).items():
        def factory(weights: str | None = None, device: str = "cpu", _arch=arch, _info=info) -> AffectVictim:
            full = f"{_arch}.{weights}" if weights else _info["default"]
            spec = variant(card, full, card_name)
            kw = {k: spec[k] for k in _SPEC_KEYS if k in spec}
            path = resolve_weights(card_name, full)
            return build_affect_victim(path, full, spec["head"], device=device, **kw)

        VICTIMS.register(arch, summary=info.get("summary", f"affect model {arch}"))(factory)


@VICTIMS.register("affect_model", summary="any ONNX/TorchScript affect model file as a victim (path=..., head=...)")
def affect_model(path: str, head: str = "expression", weights: str | None = None, device: str = "cpu",
                 **spec: Any) -> AffectVictim:
    """Build a victim from ``path`` with the declared head and preprocessing (``spec``)."""
    name = f"affect_model.{weights or Path(path).stem}"
    return build_affect_victim(path, name, head, device=device, **spec)


_register_card_archs()
