"""insightface 2.1 as a test-only reference runtime (``pip install insightface``, the ``dev`` extra).

``import insightface`` imports its whole package, and ``insightface.utils.face_align`` needs
scikit-image, a compiled dependency that the reference paths used here never touch:
``ArcFaceONNX.get_feat`` (``cv2.dnn.blobFromImages`` + onnxruntime) and ``SCRFD.detect`` (cv2
resize, onnxruntime, numpy decoding and NMS). When scikit-image is absent, a stand-in whose
every use raises is put in place for the import only and removed again, so nothing else sees a
fake scikit-image and a reference path that did need it would fail loudly, not silently differ.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest


class _Absent(types.ModuleType):
    """A module whose every name imports fine and raises when used (insightface imports a few
    scikit-image names at import time; only alignment and liveness code would call them)."""

    def __getattr__(self, name):
        if name.startswith("__"):  # the import machinery probes __path__, __spec__ ...
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            raise ImportError(f"scikit-image is not installed (skimage {name} was called); "
                              "insightface's face_align needs it, get_feat / SCRFD.detect do not")
        return unavailable


def insightface_model_zoo():
    """``insightface.model_zoo``, or a skip naming the package when it is not installed."""
    if importlib.util.find_spec("insightface") is None:
        pytest.skip("insightface is not installed (test-only reference: pip install insightface==2.1)")
    if "insightface" in sys.modules or importlib.util.find_spec("skimage") is not None:
        return importlib.import_module("insightface.model_zoo")
    stand_in = {"skimage": _Absent("skimage"), "skimage.transform": _Absent("skimage.transform")}
    stand_in["skimage"].transform = stand_in["skimage.transform"]  # `from skimage import transform`
    sys.modules.update(stand_in)
    try:
        return importlib.import_module("insightface.model_zoo")
    finally:
        for name in stand_in:
            sys.modules.pop(name, None)


def arcface_onnx(path):
    """insightface's ``ArcFaceONNX`` on the file (CPU; it picks mean/std from the graph itself)."""
    zoo = insightface_model_zoo()
    model = zoo.ArcFaceONNX(model_file=str(path))
    model.prepare(ctx_id=-1)
    return model


def scrfd(path, det_thresh: float = 0.5, nms_thresh: float = 0.4):
    """insightface's ``SCRFD`` on the file (CPU), with the thresholds given."""
    zoo = insightface_model_zoo()
    model = zoo.SCRFD(model_file=str(path))
    model.prepare(ctx_id=-1, det_thresh=det_thresh, nms_thresh=nms_thresh)
    return model
