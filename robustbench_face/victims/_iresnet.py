"""The ``iresnet`` backbones of insightface's arcface_torch (improved ResNet for faces).

Papers: J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin Loss for
Deep Face Recognition", CVPR 2019 (the "IR" / improved residual unit); I. C. Duta et al.,
"Improved Residual Networks for Image and Video Recognition", 2020. Written after
``recognition/arcface_torch/backbones/iresnet.py`` of deepinsight/insightface (MIT); module
and parameter names are kept identical so its ``.pth`` checkpoints load with ``strict=True``.

Shape contract: (N, 3, 112, 112) normalised as (x - 127.5) / 127.5 -> (N, num_features).
The residual unit is BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN (no ReLU after
the sum), and the head is BN -> flatten -> (dropout) -> FC -> BN1d over a 7x7 map.
"""

from __future__ import annotations

from torch import Tensor, nn

DEPTHS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3),
          "r100": (3, 13, 30, 3), "r200": (6, 26, 60, 6)}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = _conv3x3(cout, cout, stride)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    fc_scale = 7 * 7  # 112 input, four stride-2 stages

    def __init__(self, layers: tuple[int, int, int, int], num_features: int = 512,
                 dropout: float = 0.0, widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for i, (n, w) in enumerate(zip(layers, widths), start=1):
            setattr(self, f"layer{i}", self._stage(cin, w, n))
            cin = w
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(cin * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False  # upstream freezes this scale

    @staticmethod
    def _stage(cin: int, cout: int, blocks: int) -> nn.Sequential:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout, eps=1e-5))
        return nn.Sequential(IBasicBlock(cin, cout, 2, down),
                             *[IBasicBlock(cout, cout) for _ in range(blocks - 1)])

    def forward(self, x: Tensor) -> Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x).flatten(1))
        return self.features(self.fc(x))


def iresnet(depth: str, num_features: int = 512, **kwargs) -> IResNet:
    """``iresnet("r50")``; ``depth`` is one of :data:`DEPTHS` or a tuple of 4 block counts.

    >>> iresnet("r18").layer2[0].conv2.stride
    (2, 2)
    """
    layers = DEPTHS[depth] if isinstance(depth, str) else tuple(depth)
    return IResNet(layers, num_features=num_features, **kwargs)
