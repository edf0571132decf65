"""OSNet person re-ID embedders through torchreid.

Paper: K. Zhou, Y. Yang, A. Cavallaro, T. Xiang, "Omni-Scale Feature Learning for Person
Re-Identification", ICCV 2019. Weights: the torchreid model zoo (MIT), see ``victims/osnet.toml``.

Input: the card's ``[input]``: 256x128 RGB, ImageNet mean/std, resized the way torchreid's own
test transform does it (PIL bilinear, antialiased when shrinking). Output: L2-normalised 512-d
features (the eval-mode output of the network, i.e. after its fc layer). ``osnet`` alone
resolves to ``osnet_x0_25.market1501``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cards import load_card, resolve_weights
from ..types import VictimBase
from . import _card

ARCHS = ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25")


class OSNetVictim(VictimBase):
    output = "embedding"
    task = "reid"

    def __init__(self, net: torch.nn.Module, name: str, spec):
        super().__init__()
        self.net = net
        self.name = name
        self.set_input(spec)

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.net(self.preprocess(x)), dim=1)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """conv1, conv2, conv3 and conv5 outputs (strides 2, 8, 16, 16), shallow to deep."""
        n = self.net
        c1 = n.conv1(self.preprocess(x))
        c2 = n.conv2(n.maxpool(c1))
        c3 = n.conv3(c2)
        c5 = n.conv5(n.conv4(c3))
        return [c1, c2, c3, c5]


def _torchreid():
    """torchreid, imported when a victim is built (it pulls tensorboard). Its import warns that
    the Cython evaluator is missing: we never use torchreid's evaluator (metrics/reid.py is ours),
    so the warning is silenced here, at its source."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cython evaluation", category=UserWarning)
        import torchreid
    return torchreid


def build_osnet(arch: str, weights: str | None, device: str = "cpu") -> OSNetVictim:
    torchreid = _torchreid()

    full, table = _card.resolve("osnet", weights, arch)
    spec = _card.spec_of(table, f"victims/osnet.toml [{full}]")
    net = torchreid.models.build_model(arch, num_classes=table["num_classes"], pretrained=False)
    sd = torch.load(resolve_weights("osnet", full), map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd)  # upstream zoo files are checkpoints around the state dict
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    net.load_state_dict(sd, strict=True)
    return OSNetVictim(net, full, spec).finalize(device)


def _register(arch: str) -> None:
    def factory(weights: str | None = None, device: str = "cpu") -> OSNetVictim:
        return build_osnet(arch, weights, device)

    _card.register(arch, "osnet", factory, arch=arch,
                   summary=f"OSNet {arch[6:].replace('_', '.')} re-ID embedder (torchreid), 512-d")


for _arch in ARCHS:
    _register(_arch)


def osnet(weights: str | None = None, device: str = "cpu") -> OSNetVictim:
    """Alias of ``osnet_x0_25.market1501``, the default re-ID victim."""
    arch, _, tag = load_card("victims", "osnet")["default"].partition(".")
    return build_osnet(arch, weights or tag, device)


def _alias_info(weights: str | None = None, **_) -> dict:
    arch = load_card("victims", "osnet")["default"].partition(".")[0]
    return _card.info_for("osnet", arch)(weights)


_card.register("osnet", "osnet", osnet, summary="alias of osnet_x0_25.market1501 (the default re-ID victim)")
osnet.info = _alias_info
