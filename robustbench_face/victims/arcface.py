"""ArcFace face embedders of the insightface family (ONNX packs and arcface_torch ``.pth``).

Paper: J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin Loss for
Deep Face Recognition", CVPR 2019 (arXiv:1801.07698); training sets WebFace42M / Glint360K /
MS1MV3. Weights: the insightface model zoo, see ``victims/arcface.toml`` -- **pretrained
insightface weights are for non-commercial research only**. A bare ``arcface`` is
``arcface.mobilefacenet_ms1m`` (insightface's MobileFaceNet-ArcFace on MS1M-refine-v1), the one
file the asset home carries; the other variants (``create_victim("arcface.w600k_r50")``...)
need the file put in place by the user (the :class:`~robustbench_face.errors.AssetError` says
which file, its sha256 and where).

Contract (insightface ``ArcFaceONNX.get_feat``): 112x112 RGB, ``(x - 127.5) / 127.5``, NCHW,
resized with cv2 INTER_LINEAR, faces aligned with ``norm_crop`` on SCRFD's landmarks
(``alignment = "scrfd_112"``, what insightface's own pipeline gives these models);
graphs that normalise themselves (``arcface.mobilefacenet_ms1m``, the asset home's real
ArcFace) override mean/std on their variant. Output L2-normalised here. Card variants with
``format = "onnx"`` are built by the generic card builder (:func:`._card.build_model`, as a
user's card file would be); ``format = "pth"`` are arcface_torch ``backbone.pth`` state dicts
for :mod:`._iresnet`, with the same input spec.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..cards import load_card, resolve_weights
from ..errors import AssetError
from . import _card
from ._iresnet import iresnet
from ._model import ModelVictim

_WHERE = "victims/arcface.toml"


def _table() -> dict:
    """The card's top level alone: the contract of an insightface file the card does not list."""
    return _card.merge(load_card("victims", "arcface"))


def arcface_from_onnx(path: str | Path, name: str = "arcface.onnx", device: str = "cpu",
                      table: dict | None = None) -> ModelVictim:
    """Any insightface recognition ``.onnx`` (w600k_r50, glintr100, ...) as a victim."""
    return _card.build_model(table or _table(), name, path, device, where=_WHERE)


def arcface_from_iresnet(net: nn.Module, name: str = "arcface.iresnet", device: str = "cpu",
                         table: dict | None = None) -> ModelVictim:
    """A torch iresnet (e.g. from :func:`load_iresnet`) with the same contract as the ONNX route."""
    table = table or _table()
    spec = _card.spec_of(table, _WHERE)
    return ModelVictim(net, name, spec, "embedding", alignment=_card.alignment_of(table),
                       task="face").finalize(device).check_outputs()


def load_iresnet(path: str | Path, depth: str, num_features: int = 512) -> nn.Module:
    """An arcface_torch ``backbone.pth`` (plain state dict; fp16-trained ones are cast)."""
    sd = torch.load(path, map_location="cpu", weights_only=True)
    sd = {k.removeprefix("module."): v.float() for k, v in sd.get("state_dict", sd).items()}
    net = iresnet(depth, num_features=num_features)
    net.load_state_dict(sd, strict=True)
    return net


def _weights(full: str, spec: dict) -> Path:
    try:
        return resolve_weights("arcface", full)
    except AssetError as exc:
        where = spec.get("archive") or spec.get("download_page")
        if not where:
            raise
        member = f" (member {spec['member_in_archive']})" if spec.get("member_in_archive") else ""
        raise AssetError(f"{exc}; it is published in {where}{member}; insightface weights are "
                         "for non-commercial research only") from None


def arcface(weights: str | None = None, device: str = "cpu") -> ModelVictim:
    """insightface ArcFace (ONNX packs, iresnet .pth), scrfd_112 chips."""
    full, table = _card.resolve("arcface", weights)
    path = _weights(full, table)
    if table.get("format", "onnx") == "onnx":
        return arcface_from_onnx(path, full, device, table)
    net = load_iresnet(path, table["arch"], table.get("num_features", 512))
    return arcface_from_iresnet(net, full, device, table)


_card.register("arcface", "arcface", arcface,
               summary="insightface ArcFace (mobilefacenet_ms1m / w600k_r50 / glintr100 ONNX, iresnet .pth), scrfd_112")
