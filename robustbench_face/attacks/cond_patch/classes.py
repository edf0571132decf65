"""cond_patch against classifiers (affect heads): the target is a class, not an identity.

The generator is the same network; only what conditions it and what it is trained to do
change:

* **condition**: the one-hot target class (``embed_dim`` = number of classes) for targeted
  rows, the learned null vector for untargeted rows; source features come from the
  classifier's own ``feature_maps`` as for re-ID;
* **reference**: images carry no expression labels here (ORL), so the classifier's clean
  prediction is the class to move away from (untargeted) and is never drawn as the target,
  the same rule the affect runner scores with;
* **losses** (per sample, minimised, averaged over surrogates):
  targeted ``CE(f(x'), t)``; untargeted the C&W margin
  ``max(f(x')_y - max_{j != y} f(x')_j + kappa, 0)``, y = clean prediction (bounded, so flipped
  images stop pulling and the batch's gradient goes to the ones not yet flipped).

Logged: ``target_hit`` (argmax == t on targeted rows) and ``flip`` (argmax != y on
untargeted rows), the training-set versions of the runner's success rates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InputError
from .._eot import paste_eot
from .._learned.data import TrainData, embed_samples, load_split
from .._learned.losses import saturation, tv


def margin_loss(logits: Tensor, y: Tensor, kappa: float) -> Tensor:
    """``max(logit_y - max_{j != y} logit_j + kappa, 0)`` per sample.

    >>> margin_loss(torch.tensor([[3.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 0]), 1.0).tolist()
    [3.0, 0.0]
    """
    own = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return (own - other + kappa).clamp_min(0)


def prepare_class_data(surrogates: list, dataset: str, split: str, data_root: str | None,
                       device: str, region, limit: int | None = None):
    """``split`` as uint8, clean logits of every surrogate, the first one's crops and predictions."""
    ds, samples = load_split(dataset, split, data_root, limit)
    imgs, out, crops, pooled = embed_samples(ds, samples, surrogates, device, region, chunk=64)
    n_cls = out[0].shape[1]
    if any(o.shape[1] != n_cls for o in out):
        raise InputError(f"cond_patch: surrogates disagree on the number of classes: {[o.shape[1] for o in out]}")
    pred = out[0].argmax(1)
    eye = torch.eye(n_cls)
    return TrainData(imgs, pred, list(range(n_cls)), out, [eye for _ in out], crops=crops, pooled=pooled,
                     members=[torch.nonzero(pred == k).flatten() for k in range(n_cls)])


def step_classes(model, surrogates, data, hp, w_loss, eot, box, gen, device):
    """One training step on a classifier surrogate: (loss, logs)."""
    bs, n, n_cls = int(hp["batch_size"]), len(data.pids), len(data.identities)
    idx = torch.randint(n, (bs,), generator=gen)
    is_t = torch.arange(bs) < round(float(hp["p_target"]) * bs)
    y = data.pids[idx]
    t = (y + torch.randint(1, n_cls, (bs,), generator=gen)) % n_cls  # never the clean class
    x = data.images[idx].to(device).float() / 255
    crops = [c[idx].to(device).float() for c in data.crops]
    cond = F.one_hot(t, n_cls).float().to(device)
    is_t, y, t = is_t.to(device), y.to(device), t.to(device)
    patch, z = model(crops, data.pooled[idx].to(device), cond, is_t, return_logits=True)
    x_adv = paste_eot(x, patch, box, gen, eot)
    total, logs = 0.0, {}
    for k, v in enumerate(surrogates):
        out = v(x_adv)
        loss = torch.where(is_t, F.cross_entropy(out, t, reduction="none"),
                           margin_loss(out, y, float(hp["kappa"])))
        total = total + loss.mean() / len(surrogates)
        if k == 0:
            with torch.no_grad():
                hit = out.argmax(1) == t
                logs = {"target_hit": float(hit[is_t].float().mean()) if is_t.any() else 0.0,
                        "flip": float((out.argmax(1) != y)[~is_t].float().mean()) if (~is_t).any() else 0.0}
    total = total + w_loss.tv * tv(patch).mean()
    if w_loss.sat:
        total = total + w_loss.sat * saturation(z, model.cfg.z_max).mean()
    with torch.no_grad():
        logs["sat_frac"] = float((z.abs() > model.cfg.z_max).float().mean())
        logs["patch_std"] = float(patch.std(0).mean()) if len(patch) > 1 else 0.0
    return total, logs
