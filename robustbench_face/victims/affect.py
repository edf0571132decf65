"""Generic facial-affect victims: any torch module or ONNX / TorchScript file as an ABAW-style head.

Three heads, matching ``victim.output`` (see :mod:`robustbench_face.heads`):

* ``expression``: class logits, ``output="logits"`` (``classes`` names them);
* ``valence_arousal``: two values in [-1, 1], ``output="regression"``;
* ``action_units``: per-AU probabilities, ``output="multilabel"`` (``au_names`` names them).

Built on the same machinery as every card-described victim (:class:`._model.ModelVictim` with an
:class:`~robustbench_face.preprocess.InputSpec`): ``outputs`` picks a slice of the network's
last dimension (a multi-task model feeding several heads: HSEmotion's ``enet_b0_8_va_mtl`` gives
8 expression logits then valence, arousal), and ``activation`` maps raw outputs into the head's
range (``"log"`` turns probabilities into logits, ``"tanh"``/``"clamp"`` bound valence/arousal,
``"sigmoid"`` makes AU probabilities). At build time one dummy forward checks that the number of
outputs matches the declared head.

Cards: ``victims/affect.toml`` lists user-supplied models (HSEmotion: A. V. Savchenko,
"Facial expression and attributes recognition based on multi-task learning of lightweight
neural networks", SISY 2021, and "Video-based frame-level facial analysis of affective
behavior on mobile devices using EfficientNets", CVPR-W 2022). Each ``[archs.<name>]`` table
registers the victim ``<name>`` with its variants ``[variants."<name>.<weights>"]``.
``affect_model`` builds a victim from any file: ``create_victim("affect_model",
path="model.onnx", head="expression", classes="a,b,c", size=(224, 224), mean=..., std=...)``.

The keyword spelling of the input (``size``, ``grey``, ``bgr``, ``scale``, ``mean``, ``std``,
``layout``) maps onto the one input spec, so it follows its one order: the BGR flip comes
*before* normalisation, and ``mean``/``std`` are in the network's channel order (BGR for a BGR
network). Until this redesign the flip came after normalising with RGB-ordered means.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from ..cards import load_card, resolve_weights
from ..errors import UnknownNameError
from ..heads import get_head
from ..preprocess import InputSpec
from ..registry import VICTIMS
from . import _card
from ._model import ModelVictim, guess_format, load_network, parse_names, parse_slice, tiny_onnx

log = logging.getLogger(__name__)

_KEYWORDS = ("size", "mean", "std", "grey", "bgr", "scale", "layout")  # the keyword spelling of an input

def input_spec(size: Sequence[int] = (224, 224), mean: Sequence[float] = (0.0, 0.0, 0.0),
               std: Sequence[float] = (1.0, 1.0, 1.0), grey: bool = False, bgr: bool = False,
               scale: float = 1.0, layout: str = "NCHW", **more: Any) -> InputSpec:
    """The keyword spelling of an input (module docstring) as an :class:`InputSpec`.

    >>> input_spec((8, 8), grey=True, mean=(0.5,), std=(0.5,)).channels
    'grey'
    """
    channels = "grey" if grey else "BGR" if bgr else "RGB"
    return InputSpec(size=tuple(int(s) for s in size), channels=channels, layout=layout,
                     scale=float(scale), mean=tuple(mean), std=tuple(std), **more)


def build_affect_victim(net: nn.Module | str | Path, name: str, head: str, *,
                        input: InputSpec | dict | None = None, classes: Any = None,
                        au_names: Any = None, outputs: Any = None, activation: str | None = None,
                        device: str = "cpu", **spec: Any) -> ModelVictim:
    """A frozen, checked affect victim from a module or a model file (see module docstring).

    ``input`` is an :class:`InputSpec` (or a card's ``[input]`` table); otherwise the keyword
    spelling in ``spec`` (``size=(224, 224), mean=..., std=..., grey=..., bgr=...``).
    """
    if not isinstance(net, nn.Module):
        net = load_network(net)
    if isinstance(input, dict):
        input = InputSpec.from_card(input, f"victim {name}")
    prep = input or input_spec(**spec)
    kind = get_head(head).kind
    labels = parse_names(classes if kind == "logits" else au_names if kind == "multilabel" else None)
    victim = ModelVictim(net, name, prep, head, labels=labels, outputs=parse_slice(outputs),
                         activation=activation, task="affect")
    return victim.finalize(device).check_outputs()


def register_affect_victim(name: str, build: Callable[[], nn.Module | str | Path], head: str,
                           summary: str = "", **spec: Any) -> None:
    """Register victim ``name``: ``build()`` gives the module or file, ``spec`` the rest.

    For plugins: ``register_affect_victim("my_au", lambda: "au.onnx", "action_units",
    size=(112, 112), au_names="AU1,AU2,AU4")``; the file is loaded when the victim is created.
    """
    def factory(weights: str | None = None, device: str = "cpu") -> ModelVictim:
        return build_affect_victim(build(), name, head, device=device, **spec)

    prep = spec.get("input") or input_spec(**{k: v for k, v in spec.items() if k in _KEYWORDS})
    size = prep.size if isinstance(prep, InputSpec) else prep.get("size")
    factory.info = lambda weights=None, **_: {"name": name, "head": get_head(head).kind, "task": "affect",
                                              "alignment": None, "input_size": list(size)}
    VICTIMS.register(name, summary=summary or f"user-supplied affect model ({head})")(factory)


def _register_card_archs(card_name: str = "affect") -> None:
    """Register each ``[archs.<name>]`` of ``victims/<card_name>.toml`` as a victim."""
    try:
        card = load_card("victims", card_name)
    except UnknownNameError:
        log.debug("no victims/%s.toml: no card-defined affect victims", card_name)
        return
    for arch, info in card.get("archs", {}).items():
        def factory(weights: str | None = None, device: str = "cpu", _arch=arch) -> ModelVictim:
            full, table = _card.resolve(card_name, weights, _arch)
            return _card.build_model(table, full, resolve_weights(card_name, full), device,
                                     where=f"victims/{card_name}.toml [{full}]")

        _card.register(arch, card_name, factory, arch=arch, summary=info.get("summary", f"affect model {arch}"))


def affect_model(path: str, head: str = "expression", weights: str | None = None, device: str = "cpu",
                 size: tuple[int, ...] = (224, 224), mean: tuple[float, ...] = (0.0, 0.0, 0.0),
                 std: tuple[float, ...] = (1.0, 1.0, 1.0), grey: bool = False, bgr: bool = False,
                 scale: float = 1.0, layout: str = "NCHW", interpolation: str = "bilinear",
                 antialias: bool = False, coordinates: str = "half_pixel", classes: str | list[str] | None = None,
                 au_names: str | list[str] | None = None, outputs: str | list[int] | None = None,
                 activation: str | None = None, format: str | None = None) -> ModelVictim:
    """Build a victim from ``path`` (ONNX or TorchScript) with the declared head and input."""
    name = f"affect_model.{weights or Path(path).stem}"
    prep = input_spec(size, mean, std, grey, bgr, scale, layout, interpolation=interpolation,
                      antialias=antialias, coordinates=coordinates)
    net = load_network(path, format or guess_format(path))
    return build_affect_victim(net, name, head, input=prep, classes=classes, au_names=au_names,
                               outputs=outputs, activation=activation, device=device)


def _affect_model_info(weights: str | None = None, path: str | None = None, head: str = "expression",
                       **_: Any) -> dict[str, Any]:
    stem = weights or (Path(path).stem if path else "model")
    return {"name": f"affect_model.{stem}", "head": get_head(head).kind, "task": "affect",
            "alignment": None}


def _affect_model_example(tmp_path: Path) -> dict[str, Any]:
    """Options that build ``affect_model`` on a tiny real ONNX file (contract tests)."""
    return {"path": str(tiny_onnx(Path(tmp_path) / "affect_tiny.onnx", 7)), "head": "expression",
            "size": (16, 16)}


affect_model.info = _affect_model_info
affect_model.example = _affect_model_example
affect_model.card = "affect"
VICTIMS.register("affect_model", summary="any ONNX/TorchScript affect model file as a victim (path=..., head=...)")(affect_model)
_register_card_archs()
