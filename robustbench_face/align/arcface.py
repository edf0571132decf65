"""ArcFace 5-point alignment (``arcface_112``) and a loose face box (``loose_224``).

``norm_crop`` follows insightface's ``face_align.norm_crop`` (J. Deng, J. Guo, N. Xue,
S. Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019):
the similarity transform (rotation, uniform scale, translation) that best maps the five
detected landmarks onto the fixed ArcFace template in a 112x112 chip is estimated in the
least-squares sense (Umeyama, "Least-squares estimation of transformation parameters
between two point patterns", TPAMI 1991), and the image is warped with it (bilinear, zero
outside the image, pixel centres at integer coordinates -- what ``cv2.warpAffine`` does).

Landmarks come from :mod:`.mtcnn`; when an image has several faces the largest (then most
central) is used.

Fallbacks (``detected=False``), chosen for identity-folder datasets of face crops such as
ORL (92x112, the face filling the frame):

* ``arcface_112``: assume the image itself is an upright, centred face crop laid out like
  the ArcFace chip, i.e. the template landmarks scaled to the image size per axis, and warp
  with the similarity fitted to those.
* ``loose_224``: the centred square of side min(H, W), resized to 224x224 (faceres's own
  README allows "a loose face box or a centre crop").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import register_aligner
from .mtcnn import default_mtcnn, main_face

# insightface's arcface_dst: left eye, right eye, nose tip, left and right mouth corner
ARCFACE_TEMPLATE = torch.tensor([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
    [41.5493, 92.3655], [70.7299, 92.2041]], dtype=torch.float64)
LOOSE_SCALE = 1.5


def umeyama(src: Tensor, dst: Tensor) -> Tensor:
    """The 2x3 similarity ``M`` minimising ``sum |M [src; 1] - dst|^2`` (Umeyama 1991).

    >>> src = torch.tensor([[0., 0.], [1., 0.], [0., 1.]])
    >>> M = umeyama(src, 2 * src + 3)
    >>> torch.allclose(M, torch.tensor([[2., 0., 3.], [0., 2., 3.]], dtype=torch.float64))
    True
    """
    src, dst = src.double(), dst.double()
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    U, S, Vh = torch.linalg.svd(cov)
    sign = torch.ones(2, dtype=torch.float64)
    if torch.linalg.det(cov) < 0:  # a reflection fits better; forbid it
        sign[-1] = -1
    R = U @ torch.diag(sign) @ Vh
    scale = (S * sign).sum() / s.pow(2).sum(1).mean()
    t = mu_d - scale * R @ mu_s
    return torch.cat([scale * R, t[:, None]], 1)


def warp_affine(image: Tensor, M: Tensor, size: tuple[int, int], edge: str = "zeros") -> Tensor:
    """Warp (C, H, W) ``image`` by the 2x3 pixel-space ``M`` (source -> output) to ``size``.

    ``edge="zeros"`` matches ``cv2.warpAffine(img, M, (w, h))`` with bilinear sampling and a
    zero border (what insightface does); ``edge="clip"`` is zero only outside the image's
    footprint and clamps inside it, so enlarging a crop does not darken its outer pixels.
    Differentiable in ``image``.

    >>> img = torch.arange(12.).view(1, 3, 4)
    >>> M = torch.tensor([[1., 0., 0.], [0., 1., 0.]])
    >>> torch.equal(warp_affine(img, M, (3, 4)), img)
    True
    """
    C, H, W = image.shape
    h, w = size
    A = torch.cat([M.double(), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
    inv = torch.linalg.inv(A)[:2]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1) @ inv.T  # (h, w, 2) source pixels
    grid = torch.stack([(2 * pts[..., 0] + 1) / W - 1, (2 * pts[..., 1] + 1) / H - 1], -1)
    out = F.grid_sample(image[None], grid[None].to(image.dtype), mode="bilinear",
                        padding_mode="zeros" if edge == "zeros" else "border", align_corners=False)[0]
    if edge == "clip":
        inside = (grid.abs() <= 1).all(-1)
        out = out * inside.to(out.dtype)
    return out


def norm_crop(image: Tensor, landmarks: Tensor, size: int = 112) -> Tensor:
    """insightface ``norm_crop``: (C, H, W) image + (5, 2) landmarks -> (C, size, size) chip."""
    dst = ARCFACE_TEMPLATE * (size / 112.0)
    return warp_affine(image, umeyama(landmarks, dst), (size, size)).clamp(0, 1)


def loose_crop(image: Tensor, box: Tensor, size: int = 224, scale: float = LOOSE_SCALE) -> Tensor:
    """The square of side ``scale * max(w, h)`` centred on ``box`` (x1, y1, x2, y2), zero
    outside the image, resized to ``size`` x ``size``."""
    x1, y1, x2, y2 = box.double().tolist()
    side = scale * max(x2 - x1, y2 - y1)
    return _square_crop(image, (x1 + x2) / 2, (y1 + y2) / 2, side, size)


def _square_crop(image: Tensor, cx: float, cy: float, side: float, size: int) -> Tensor:
    k = size / side
    # pixel centres sit at integer coordinates: the crop centre maps to (size - 1) / 2
    M = torch.tensor([[k, 0.0, (size - 1) / 2 - k * cx],
                      [0.0, k, (size - 1) / 2 - k * cy]], dtype=torch.float64)
    if k < 1:  # shrinking: low-pass first so the bilinear warp does not alias
        blurred = F.interpolate(image[None], scale_factor=k, mode="bilinear", antialias=True,
                                align_corners=False)[0]
        ky, kx = blurred.shape[1] / image.shape[1], blurred.shape[2] / image.shape[2]
        M = M @ torch.tensor([[1 / kx, 0, 0.5 / kx - 0.5], [0, 1 / ky, 0.5 / ky - 0.5], [0, 0, 1]],
                             dtype=torch.float64)
        image = blurred
    return warp_affine(image, M, (size, size), edge="clip").clamp(0, 1)


def _rgb(image: Tensor) -> Tensor:
    return image.expand(3, -1, -1) if image.shape[0] == 1 else image


def _detect(images: list[Tensor]):
    mtcnn = default_mtcnn()
    return [main_face(mtcnn.detect(_rgb(im)), tuple(im.shape[-2:])) for im in images]


def fallback_landmarks(height: int, width: int) -> Tensor:
    """The ArcFace template stretched to an image assumed to be a centred, tight face crop."""
    return ARCFACE_TEMPLATE * torch.tensor([width / 112.0, height / 112.0], dtype=torch.float64)


@register_aligner("arcface_112")
def arcface_112(images: list[Tensor]) -> tuple[Tensor, Tensor]:
    """MTCNN landmarks -> ArcFace ``norm_crop`` 112x112 (fallback: see module docstring)."""
    chips, found = [], []
    for im, face in zip(images, _detect(images)):
        lmk = face.landmarks if face is not None else fallback_landmarks(*im.shape[-2:])
        chips.append(norm_crop(_rgb(im), lmk))
        found.append(face is not None)
    return torch.stack(chips), torch.tensor(found, dtype=torch.bool)


@register_aligner("loose_224")
def loose_224(images: list[Tensor]) -> tuple[Tensor, Tensor]:
    """MTCNN box enlarged 1.5x, squared, resized to 224x224 (fallback: centred square)."""
    chips, found = [], []
    for im, face in zip(images, _detect(images)):
        im = _rgb(im)
        if face is not None:
            chips.append(loose_crop(im, face.box))
        else:
            H, W = im.shape[-2:]
            chips.append(_square_crop(im, (W - 1) / 2, (H - 1) / 2, float(min(H, W)), 224))
        found.append(face is not None)
    return torch.stack(chips), torch.tensor(found, dtype=torch.bool)
