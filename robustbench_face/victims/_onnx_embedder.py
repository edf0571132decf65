"""A differentiable face embedder built from an ONNX file through onnx2torch.

Many published face recognizers exist only as ONNX graphs (insightface's model packs, the
TF.js models converted for the asset home). onnx2torch turns such a graph into a
``torch.fx.GraphModule`` of ordinary torch ops, so gradients flow and attacks work as on a
native network. What the graph does *not* say is how its input was prepared; that is the
:class:`OnnxContract`, declared per model from its documentation and checked against
onnxruntime in ``tests/test_face_onnx.py``.

The victim protocol applies: the victim takes NCHW float images in [0, 1] of any size,
expands greyscale to three channels, resizes differentiably to the contract's size, applies
the contract (channel order, scale, mean/std, layout) and returns L2-normalised embeddings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AssetError
from ..types import VictimBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxContract:
    """How a graph wants its input: ``x_net = (x01 * scale - mean) / std`` in ``channels`` order.

    ``mean``/``std`` are per channel *in the graph's channel order*, in the units after
    ``scale`` (so Caffe BGR means are given as ``(103.939, 116.779, 123.68)`` with
    ``scale=255``). ``output`` selects one named graph output (``None``: the first).
    """

    input_size: tuple[int, int]  # (H, W)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    channels: Literal["RGB", "BGR"] = "RGB"
    scale: float = 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output: str | None = None
    alignment: str | None = None
    embedding_dim: int | None = None


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
        model = onnx.utils.Extractor(model).extract_model(
            [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}],
            [keep])
    gm = convert(model)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


class OnnxEmbedder(VictimBase):
    """Any ``image -> embedding`` network plus its :class:`OnnxContract` (see module doc).

    ``net`` may be an onnx2torch graph or any torch module that takes the prepared tensor
    (that is how the iresnet ``.pth`` checkpoints reuse this class).
    """

    output = "embedding"

    def __init__(self, net: nn.Module, contract: OnnxContract, name: str):
        super().__init__()
        self.net = net
        self.contract = contract
        self.name = name
        self.input_size = tuple(contract.input_size)
        self.alignment = contract.alignment
        self.register_buffer("mean", torch.tensor(contract.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(contract.std, dtype=torch.float32).view(1, 3, 1, 1))

    def prepare(self, x: Tensor) -> Tensor:
        """[0, 1] NCHW RGB (or greyscale) of any size -> the tensor the graph expects."""
        c = self.contract
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.input_size:
            # antialias only matters when shrinking; it keeps large inputs from aliasing
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False,
                              antialias=True)
        if c.channels == "BGR":
            x = x.flip(1)
        x = (x * c.scale - self.mean) / self.std
        if c.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(self.prepare(x))
        if isinstance(out, (tuple, list)):  # a graph that still returns several outputs
            out = out[0]
        return F.normalize(out.flatten(1), dim=1)


def onnx_embedder(path: str | Path, contract: OnnxContract, name: str,
                  device: str | torch.device = "cpu") -> OnnxEmbedder:
    """Build a frozen victim from an ONNX file and its preprocessing contract."""
    net = load_onnx_graph(path, contract.output)
    log.debug("converted %s (%s) with onnx2torch", path, name)
    return OnnxEmbedder(net, contract, name).finalize(device)
