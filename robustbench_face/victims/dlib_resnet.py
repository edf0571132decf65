"""dlib's 128-d ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``), in PyTorch.

Model: D. E. King, dlib (http://dlib.net), "High Quality Face Recognition with Deep Metric
Learning" (dlib blog, 2017): a 29-conv ResNet (K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual
Learning for Image Recognition", CVPR 2016) with half the filters per layer, trained with a
pairwise hinge metric loss (margin 0.04, distance threshold 0.6) on about 3 million faces;
LFW accuracy 99.38%. Weights: CC0, carried by the PyPI package ``face-recognition-models``
(see ``victims/dlib_resnet.toml``), read by our own parser of dlib's format
(:mod:`._dlib_dat`); dlib itself is not needed.

Input: images in [0, 1], any size; greyscale is repeated to RGB. The network expects the
150x150 chips of dlib's ``get_face_chip(size=150, padding=0.25)`` (aligner ``dlib_150``). dlib
itself refuses any other chip size; a dlib user resizes with ``dlib.resize_image`` (bilinear,
aligned corners, no antialiasing), and so do we (the card's ``[input]``). Preprocessing is
dlib's ``input_rgb_image_sized``: ``(pixel_0_255 - avg) / 256`` per channel, avg = (122.782,
117.001, 104.298) for R, G, B, declared on the card and checked against the weight file.

Output: **L2-normalised** 128-d descriptors, as every embedding victim here. dlib itself
returns the raw fc output (norm 1.42 +- 0.05 on ORL, range 1.25 to 1.57, not 1) and calls two
faces the same person when their Euclidean distance is below 0.6. Since
|a - b|^2 = |a|^2 + |b|^2 - 2|a||b|cos(a, b) and the norms vary a little from face to face, a
cosine threshold on our unit vectors orders pairs almost, but not exactly, as dlib's Euclidean
distance does (0.6 at norm 1.42 is cosine ~0.91). ``victim.descriptor(x)`` returns dlib's raw
descriptor for dlib-style thresholds; ``victim.distance_threshold`` is dlib's 0.6.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cards import resolve_weights
from ..errors import AssetError
from ..preprocess import InputSpec
from ..types import VictimBase
from . import _card
from ._dlib_dat import DlibLayer, DlibNet, read_dlib_net


def _block() -> list[str]:
    # dlib: block = BN<con<N,3,3,1,1, relu<BN<con<N,3,3,stride,stride, SUBNET>>>>>, BN = affine
    return ["affine", "con", "relu", "affine", "con"]


def _ares() -> list[str]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return ["relu", "add_prev1", *_block(), "tag1"]


def _ares_down() -> list[str]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return ["relu", "add_prev2", "avg_pool", "skip1", "tag2", *_block(), "tag1"]


def anet_chain() -> list[str]:
    """dlib's ``anet_type`` (dnn_face_recognition_ex.cpp), top (under the loss) to bottom."""
    level0 = _ares_down()                                   # 256 filters
    level1 = _ares() + _ares() + _ares_down()               # 256
    level2 = _ares() + _ares() + _ares_down()               # 128
    level3 = _ares() + _ares() + _ares() + _ares_down()     # 64
    level4 = _ares() + _ares() + _ares()                    # 32
    stem = ["max_pool", "relu", "affine", "con"]            # max_pool<3,3,2,2> relu affine con<32,7,7,2,2>
    return ["fc", "avg_pool", *level0, *level1, *level2, *level3, *level4, *stem]


class _Affine(nn.Module):
    """dlib's affine_ layer: batch norm frozen into a per-channel scale and shift."""

    def __init__(self, gamma: Tensor, beta: Tensor):
        super().__init__()
        self.register_buffer("gamma", gamma)
        self.register_buffer("beta", beta)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma + self.beta


class _Pool(nn.Module):
    def __init__(self, kind: str, window: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int]):
        super().__init__()
        self.kind, self.window, self.stride, self.padding = kind, window, stride, padding
        if kind == "avg_pool" and any(padding):
            # dlib's padded average pooling is not needed by any released model we load.
            raise NotImplementedError("padded avg_pool is not supported")

    def forward(self, x: Tensor) -> Tensor:
        window = tuple(w or s for w, s in zip(self.window, x.shape[-2:]))  # 0 = whole map
        if self.kind == "max_pool":
            return F.max_pool2d(x, window, self.stride, self.padding)
        return F.avg_pool2d(x, window, self.stride)


def _padded_add(a: Tensor, b: Tensor) -> Tensor:
    """dlib's add_prev: sum over the larger shape, the smaller tensor zero-padded at the end.

    dlib's ResNet relies on this where a down-sampling block's 3x3 stride-2 conv and its 2x2
    average-pooled shortcut disagree in size (3x3 vs 4x4 at 8x8 input) and channel count.
    """
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(p, q) for p, q in zip(a.shape[1:], b.shape[1:]))

    def pad(t: Tensor) -> Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))
    return pad(a) + pad(b)


def _module(layer: DlibLayer) -> nn.Module:
    arr = {k: torch.from_numpy(v) for k, v in layer.arrays.items()}
    if layer.kind == "con":
        w = arr["weight"]
        conv = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=layer.meta["stride"],
                         padding=layer.meta["padding"], bias=True)
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(arr["bias"])
        return conv
    if layer.kind == "affine":
        return _Affine(arr["gamma"], arr["beta"])
    if layer.kind == "relu":
        return nn.ReLU()
    if layer.kind in ("avg_pool", "max_pool"):
        return _Pool(layer.kind, layer.meta["window"], layer.meta["stride"], layer.meta["padding"])
    if layer.kind == "fc":
        fc = nn.Linear(layer.meta["num_inputs"], layer.meta["num_outputs"], bias="bias" in arr)
        fc.weight.data.copy_(arr["weight"].T)  # dlib computes x @ W with W of shape (in, out)
        if "bias" in arr:
            fc.bias.data.copy_(arr["bias"])
        return fc
    return nn.Identity()  # tag / skip / add_prev: handled by DlibChain.forward


class DlibChain(nn.Module):
    """Runs a dlib layer chain bottom-up, keeping dlib's tag/skip/add_prev semantics."""

    def __init__(self, net: DlibNet):
        super().__init__()
        self.plan = [(layer.kind, layer.tag) for layer in net.layers]
        self.layers = nn.ModuleList(_module(layer) for layer in net.layers)

    def forward(self, x: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        tags: dict[int, Tensor] = {}
        prev = ""
        for (kind, tag), mod in zip(self.plan, self.layers):
            if kind == "tag":
                tags[tag] = x  # a later add_prevN / skipN sees the nearest tagN below it
            elif kind == "skip":
                x = tags[tag]
            elif kind == "add_prev":
                x = _padded_add(x, tags[tag])
            elif kind == "fc":
                x = mod(x.flatten(1))
            else:
                x = mod(x)
                if maps is not None and kind == "relu" and prev == "add_prev":
                    maps.append(x)  # output of a residual unit
            prev = kind
        return x


class DlibResNetVictim(VictimBase):
    output = "embedding"
    task = "face"
    alignment = "dlib_150"

    def __init__(self, net: DlibNet, name: str, spec: InputSpec):
        super().__init__()
        self.name = name
        self.net = DlibChain(net)
        self.set_input(_agreed_spec(net, spec, name))
        self.distance_threshold = float(net.loss_meta["distance_threshold"])

    def descriptor(self, x: Tensor) -> Tensor:
        """dlib's raw (un-normalised) 128-d descriptor; same person when distance < 0.6."""
        return self.net(self.preprocess(x))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.descriptor(x), dim=1)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """Last residual-unit output at each resolution (35, 17, 8, 4, 2 px), shallow to deep."""
        maps: list[Tensor] = []
        self.net(self.preprocess(x), maps)
        last: dict[tuple[int, int], Tensor] = {}
        for m in maps:  # dicts keep first-insertion order: shallow to deep
            last[tuple(m.shape[-2:])] = m
        return list(last.values())


def _agreed_spec(net: DlibNet, spec: InputSpec, name: str) -> InputSpec:
    """The card's spec, checked against the input layer stored in the weight file.

    The file's own avg values are then used (the card rounds them to 3 decimals), so the port
    stays bit-identical to what dlib computes.
    """
    avg, size = tuple(float(a) for a in net.input_meta["avg_rgb"]), tuple(net.input_meta["size"])
    card_mean = spec.mean * 3 if len(spec.mean) == 1 else spec.mean
    if size != spec.size or any(abs(a - m) > 1e-3 for a, m in zip(avg, card_mean)) \
            or spec.scale != 255.0 or any(s != 256.0 for s in spec.std) or spec.channels != "RGB":
        raise AssetError(f"{name}: the weight file's input layer is input_rgb_image_sized<{size[0]}> with "
                         f"(pixel - {[round(a, 3) for a in avg]}) / 256 on 0..255 RGB, but "
                         f"victims/dlib_resnet.toml [input] declares {spec.describe()}; fix the card "
                         "or use the weight file it was written for")
    return spec.replace(mean=avg)


def load_dlib_resnet(path: str | Path, name: str = "dlib_resnet", device: str = "cpu",
                     spec: InputSpec | None = None) -> DlibResNetVictim:
    """Build the victim straight from a ``dlib_face_recognition_resnet_model_v1.dat`` file
    (``spec``: the card's, by default)."""
    if spec is None:
        spec = _card.spec_of(_card.resolve("dlib_resnet")[1], "victims/dlib_resnet.toml")
    return DlibResNetVictim(read_dlib_net(path, anet_chain()), name, spec).finalize(device)


def dlib_resnet(weights: str | None = None, device: str = "cpu") -> DlibResNetVictim:
    """dlib ResNet-29 face descriptor (dlib_150 chips), 128-d."""
    full, table = _card.resolve("dlib_resnet", weights)
    spec = _card.spec_of(table, f"victims/dlib_resnet.toml [{full}]")
    return load_dlib_resnet(resolve_weights("dlib_resnet", full), full, device, spec)


_card.register("dlib_resnet", "dlib_resnet", dlib_resnet,
               summary="dlib ResNet-29 face descriptor (dlib_150 chips), 128-d")
