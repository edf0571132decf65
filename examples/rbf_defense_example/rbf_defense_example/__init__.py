"""box_blur: an example robustbench_face defense plugin (a separate, pip-installable package).

Paper: the mean filter as an input-smoothing defense is one of the "squeezers" studied by
W. Xu, D. Evans, Y. Qi, "Feature Squeezing", NDSS 2018 (they use the median; the mean filter
is its linear cousin and so gives an exact gradient).

Each channel is replaced by its ``size`` x ``size`` local mean (replicate padding). The step
is differentiable and deterministic, so the plain white-box attack is already adaptive.
"""

from __future__ import annotations

import torch.nn.functional as F

from robustbench_face.defenses import Transform, check_known, check_param


class BoxBlur(Transform):
    name = "box_blur"
    differentiable = True
    randomized = False

    def __init__(self, size: int = 3):
        check_param("box_blur", "size", size, isinstance(size, int) and size % 2 == 1 and 1 <= size <= 15,
                    "an odd integer in 1..15")
        super().__init__(size=size)
        self.size = size

    def transform(self, x, victim=None):
        r = self.size // 2
        return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), self.size, stride=1)


def create(**kwargs) -> BoxBlur:
    """Box blur of the input (mean filter; Xu et al. 2018 style squeezer), size=3, differentiable."""
    check_known("box_blur", kwargs, ("size",))
    return BoxBlur(**kwargs)
