"""A network file plus its declared contract as a differentiable victim.

Many published face, re-ID and affect models exist only as ONNX graphs or TorchScript files.
onnx2torch (T. Khaniukov et al., ENOT-AutoDL/onnx2torch, 2021) turns an ONNX graph into a
``torch.fx.GraphModule`` of ordinary torch ops, so gradients flow and attacks run as on a native
network. What a file does *not* say is how its input was prepared and what its output means: that
is the card (:mod:`._card`), i.e. an :class:`~robustbench_face.preprocess.InputSpec` and a head.

:class:`ModelVictim` is that pairing: ``net(spec(x))``, one named output (or a slice of the last
dimension), an output activation, and for embedding heads L2 normalisation. The built-in ONNX
face victims (``faceres``, ``mobileface``, ``arcface``), the affect victims and a user's card file
(``from_card``) are all instances of it.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AssetError, InputError
from ..heads import get_head
from ..preprocess import InputSpec
from ..types import VictimBase

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "none": lambda x: x,
    "log": lambda x: torch.log(x.clamp_min(1e-12)),  # probabilities -> logits (softmax inverts it)
    "tanh": torch.tanh,
    "clamp": lambda x: x.clamp(-1.0, 1.0),
    "sigmoid": torch.sigmoid,
}
# outputs must land in the head's range: valence/arousal in [-1, 1], AU probabilities in [0, 1]
DEFAULT_ACTIVATION = {"embedding": "none", "logits": "none", "regression": "clamp", "multilabel": "sigmoid"}


def load_onnx_graph(path: str | Path, output: str | None = None) -> nn.Module:
    """Convert ``path`` with onnx2torch, keeping only the graph output named ``output``.

    Unused heads (age/gender next to an identity descriptor) are pruned before conversion,
    so they cost nothing and the module returns a single tensor.
    """
    import onnx
    from onnx2torch import convert

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / OSError / ValueError
        raise AssetError(f"cannot read ONNX model {path}: {exc}") from None
    names = [o.name for o in model.graph.output]
    keep = output or names[0]
    if keep not in names:
        raise AssetError(f"ONNX model {path} has no output {keep!r}; outputs: {names}")
    if len(names) > 1:
        weights = {t.name for t in model.graph.initializer}
        model = onnx.utils.Extractor(model).extract_model(
            [i.name for i in model.graph.input if i.name not in weights], [keep])
    gm = convert(model)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def guess_format(path: str | Path) -> str:
    """``onnx`` for ``*.onnx``, else ``torchscript`` (``.pt`` / ``.pth`` / ``.ts`` / ``.jit``)."""
    return "onnx" if Path(path).suffix.lower() == ".onnx" else "torchscript"


def load_network(path: str | Path, format: str | None = None, output: str | None = None) -> nn.Module:
    """An ONNX graph (via onnx2torch, pruned to ``output``) or a TorchScript module.

    Pickled ``nn.Module`` files are refused: unpickling runs arbitrary code, and a card's sha256
    only says the file is the one its author meant, not that it is safe.
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"model file not found: {path}")
    format = format or guess_format(path)
    if format not in FORMATS:
        raise InputError(f"model format {format!r} of {path.name}: choose from {', '.join(FORMATS)}")
    if format == "onnx":
        return load_onnx_graph(path, output)
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise AssetError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0]}); export the "
                         "model with torch.jit.script / torch.jit.trace or to ONNX") from None


def _pick(out: Any, output: str | None) -> Tensor:
    """One tensor of a module's output: a dict entry by name, else the first item."""
    if isinstance(out, dict):
        if output is not None and output not in out:
            raise InputError(f"the model returns outputs {list(out)}, not {output!r}")
        return out[output] if output is not None else next(iter(out.values()))
    if isinstance(out, (tuple, list)):  # graphs that still return several outputs: the first
        return out[0]
    return out


class ModelVictim(VictimBase):
    """``net`` + :class:`InputSpec` + head (module docstring).

    ``head`` is an output kind (``embedding``/``logits``/``regression``/``multilabel``) or its
    label (``expression``/``valence_arousal``/``action_units``); ``labels`` name the classes
    or AUs; ``outputs`` slices the last dimension (a multi-task model feeding one head).
    """

    def __init__(self, net: nn.Module, name: str, spec: InputSpec, head: str = "embedding", *,
                 labels: Sequence[str] | None = None, outputs: slice | None = None,
                 activation: str | None = None, alignment: str | None = None, task: str | None = None,
                 output_name: str | None = None):
        super().__init__()
        try:
            kind = get_head(head).kind
        except InputError:
            raise InputError(f"victim {name!r}: unknown head {head!r}; choose from embedding, logits, "
                             "regression, multilabel (or expression, valence_arousal, action_units)") from None
        activation = activation or DEFAULT_ACTIVATION[kind]
        if activation not in ACTIVATIONS:
            raise InputError(f"victim {name!r}: unknown activation {activation!r}; "
                             f"choose from {', '.join(ACTIVATIONS)}")
        self.net, self.name, self.head_name, self.output = net, name, head, kind
        self.set_input(spec)
        self.alignment, self.task, self.output_name = alignment, task, output_name
        self.outputs, self.activation = outputs or slice(None), activation
        labels = tuple(str(s) for s in labels) if labels else None
        self.classes = labels if kind == "logits" else None
        self.au_names = labels if kind == "multilabel" else None
        self.expected = 2 if kind == "regression" else (len(labels) if labels else None)

    def forward(self, x: Tensor) -> Tensor:
        out = _pick(self.net(self.preprocess(x)), self.output_name).flatten(1)[:, self.outputs]
        out = ACTIVATIONS[self.activation](out)
        return F.normalize(out, dim=1) if self.output == "embedding" else out

    def check_outputs(self) -> ModelVictim:
        """One dummy forward: the model takes the declared input, and gives the declared width."""
        held = itertools.chain(self.parameters(), self.buffers())
        x = torch.full((1, 3, *self.input_size), 0.5, device=next(held, torch.empty(0)).device)
        try:
            with torch.no_grad():
                got = self(x).shape[-1]
        except Exception as exc:  # any failure inside a foreign graph: say what was fed
            raise InputError(f"victim {self.name!r}: the model rejects its declared input "
                             f"({self.input_spec.describe()}): {type(exc).__name__}: {exc}") from None
        if self.expected is not None and got != self.expected:
            what = {"logits": "classes", "multilabel": "AU names"}.get(self.output, "outputs")
            raise InputError(f"victim {self.name!r}: declared head {self.head_name!r} expects "
                             f"{self.expected} outputs ({what}), the model gives {got}")
        if self.output == "logits" and self.classes is None:
            self.classes = tuple(str(i) for i in range(got))
        if self.output == "multilabel" and self.au_names is None:
            self.au_names = tuple(f"AU{i}" for i in range(got))
        return self


def parse_slice(spec: Any) -> slice | None:
    """``"0:8"`` / ``"-2:"`` / ``[0, 8]`` -> slice.

    >>> parse_slice("-2:"), parse_slice([0, 8]), parse_slice(None)
    (slice(-2, None, None), slice(0, 8, None), None)
    """
    if spec is None or isinstance(spec, slice):
        return spec
    try:
        if isinstance(spec, str):
            a, _, b = spec.partition(":")
            return slice(int(a) if a.strip() else None, int(b) if b.strip() else None)
        return slice(*spec)
    except (TypeError, ValueError):
        raise InputError(f"outputs must be a slice such as \"0:8\" or [0, 8], got {spec!r}") from None


def parse_names(spec: Any) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``; empty -> None."""
    if isinstance(spec, str):
        return [s.strip() for s in spec.split(",") if s.strip()] or None
    return [str(s) for s in spec] if spec else None


def tiny_onnx(path: str | Path, n_out: int = 7, size: tuple[int, int] = (16, 16)) -> Path:
    """A real three-node ONNX graph (GlobalAveragePool -> Flatten -> Gemm, fixed weights) at
    ``path``: the model of the ``example`` of victims that need a file (contract tests)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(3, n_out)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "W"], ["scores"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, *size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_out])],
        initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)
