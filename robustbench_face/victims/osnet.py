"""OSNet person re-ID embedders through torchreid.

Paper: K. Zhou, Y. Yang, A. Cavallaro, T. Xiang, "Omni-Scale Feature Learning for Person
Re-Identification", ICCV 2019. Weights: the torchreid model zoo (MIT), see ``models/osnet.toml``.

Input: images in [0, 1], any size; resized to 256x128 and normalised with ImageNet mean/std,
as torchreid trains them. Output: L2-normalised 512-d features (the eval-mode output of the
network, i.e. after its fc layer). ``osnet`` alone resolves to ``osnet_x0_25.market1501``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cards import load_card, resolve_weights
from ..registry import VICTIMS
from ..types import VictimBase

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class OSNetVictim(VictimBase):
    output = "embedding"
    input_size = (256, 128)

    def __init__(self, net: torch.nn.Module, name: str):
        super().__init__()
        self.net = net
        self.name = name
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def _prep(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.net(self._prep(x)), dim=1)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """conv1, conv2, conv3 and conv5 outputs (strides 2, 8, 16, 16), shallow to deep."""
        n = self.net
        c1 = n.conv1(self._prep(x))
        c2 = n.conv2(n.maxpool(c1))
        c3 = n.conv3(c2)
        c5 = n.conv5(n.conv4(c3))
        return [c1, c2, c3, c5]


def build_osnet(arch: str, weights: str | None, device: str = "cpu") -> OSNetVictim:
    import torchreid  # heavy import (pulls tensorboard): only when a victim is built

    card = load_card("victims", "osnet")
    weights = weights or card["default"].partition(".")[2]
    full = f"{arch}.{weights}"
    spec = card.get("variants", {}).get(full)
    if spec is None:
        from ..cards import variant
        variant(card, full, "osnet")  # raises with the list of variants
    net = torchreid.models.build_model(arch, num_classes=spec["num_classes"], pretrained=False)
    sd = torch.load(resolve_weights("osnet", full), map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd)  # upstream zoo files are checkpoints around the state dict
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    net.load_state_dict(sd, strict=True)
    return OSNetVictim(net, full).finalize(device)


def _register(arch: str) -> None:
    @VICTIMS.register(arch, summary=f"OSNet {arch[6:].replace('_', '.')} re-ID embedder (torchreid), 512-d")
    def factory(weights: str | None = None, device: str = "cpu") -> OSNetVictim:
        return build_osnet(arch, weights, device)


for _arch in ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25"):
    _register(_arch)


@VICTIMS.register("osnet", summary="alias of osnet_x0_25.market1501 (the default re-ID victim)")
def osnet(weights: str | None = None, device: str = "cpu") -> OSNetVictim:
    arch, _, tag = load_card("victims", "osnet")["default"].partition(".")
    return build_osnet(arch, weights or tag, device)
