"""ArcFace face embedders of the insightface family (ONNX packs and arcface_torch ``.pth``).

Paper: J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin Loss for
Deep Face Recognition", CVPR 2019 (arXiv:1801.07698); training sets WebFace42M / Glint360K /
MS1MV3. Weights: the insightface model zoo, see ``models/arcface.toml`` -- **pretrained
insightface weights are for non-commercial research only**; none ship in the asset home, so
``create_victim("arcface.w600k_r50")`` needs the file put in place by the user (the
:class:`~robustbench_face.errors.AssetError` says which file, its sha256 and where).

Contract (insightface ``ArcFaceONNX``): 112x112 RGB, ``(x - 127.5) / 127.5``, NCHW, faces
aligned with ``norm_crop`` (``alignment = "arcface_112"``); output 512-d, L2-normalised here.
Card variants with ``format = "onnx"`` go through :mod:`._onnx_embedder` (onnx2torch);
``format = "pth"`` are arcface_torch ``backbone.pth`` state dicts for :mod:`._iresnet`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..cards import load_card, resolve_weights, variant
from ..errors import AssetError
from ..registry import VICTIMS
from ._iresnet import iresnet
from ._onnx_embedder import OnnxContract, OnnxEmbedder, onnx_embedder

CONTRACT = OnnxContract(
    input_size=(112, 112), layout="NCHW", channels="RGB", scale=255.0,
    mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5),
    alignment="arcface_112", embedding_dim=512,
)


def arcface_from_onnx(path: str | Path, name: str = "arcface.onnx", device: str = "cpu") -> OnnxEmbedder:
    """Any insightface recognition ``.onnx`` (w600k_r50, glintr100, ...) as a victim."""
    return onnx_embedder(path, CONTRACT, name, device)


def arcface_from_iresnet(net: nn.Module, name: str = "arcface.iresnet", device: str = "cpu") -> OnnxEmbedder:
    """A torch iresnet (e.g. from :func:`load_iresnet`) with the same contract as the ONNX route."""
    return OnnxEmbedder(net, CONTRACT, name).finalize(device)


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


@VICTIMS.register("arcface", summary="insightface ArcFace (w600k_r50 / glintr100 ONNX, iresnet .pth), 512-d, arcface_112")
def arcface(weights: str | None = None, device: str = "cpu") -> OnnxEmbedder:
    card = load_card("victims", "arcface")
    full = f"arcface.{weights}" if weights else card["default"]
    spec = variant(card, full, "arcface")
    path = _weights(full, spec)
    if spec.get("format", "onnx") == "onnx":
        return arcface_from_onnx(path, full, device)
    net = load_iresnet(path, spec["arch"], spec.get("num_features", 512))
    return arcface_from_iresnet(net, full, device)
