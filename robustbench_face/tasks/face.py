"""Face verification under attack: thresholds at a FAR on clean pairs, dodging, impersonation.

The runner sends a run here when ``dataset.task == "face"`` and the attacked victim outputs
embeddings. Protocol (``docs/face.md``):

* **Pairs.** ``ds.meta["pairs"]`` when the dataset has a pairs file (LFW ``pairs.txt``; its
  sets are the folds). Otherwise :func:`~robustbench_face.datasets.lfw_pairs.make_pairs` with
  ``seed=cfg.seed`` and 10 identity-disjoint folds: every genuine pair and as many impostor
  pairs when that is at most ``MAX_PAIRS`` (ORL: 1800 + 1800), else ``MAX_PAIRS`` of each.
  ``--limit`` caps the number of *attacked* pairs; calibration always uses every pair.
  The task option ``split`` (``--split S``) draws the pairs among that split's people only
  (ORL ``holdout``: the 10 people a learned attack never saw), with ``min(10, identities // 2)``
  folds.
* **Alignment.** Every image named by a pair is aligned with the attacked victim's
  ``alignment`` (``align_samples``, cached); undetected faces get the aligner's documented
  fallback and are counted in ``n_fallback``. Attacks run on these chips, so face patch
  regions (``eyeglass``...) land on the eyes. *Transfer*: every eval victim sees the attacked
  victim's chips, clean and adversarial alike (it resizes them itself), and its threshold is
  calibrated on the clean chips of that same alignment (``eval_alignment``), so clean and
  adversarial scores are comparable. When that differs from the victim's own alignment its
  native clean numbers are added (``clean_acc_native``, ``tar_at_far_native``).
* **Threshold.** Scores are cosines of L2-normalised embeddings; a pair is accepted when
  ``score > threshold``, the threshold of TAR@FAR ``far`` (task option, default 1e-3) on all clean
  pairs. ``clean_acc`` is the 10-fold accuracy (the pair folds), ``tar_at_far`` the clean TAR.
* **dodging.** The first image (``a``) of each genuine pair that the attacked victim accepts
  clean is attacked *untargeted* (pushed away from its own clean embedding; the attacker does
  not know the enrolled partner photo, and every attack implements this mode). Success: the
  pair score falls to ``<= threshold``.
* **impersonation.** Image ``a`` of each impostor pair that the attacked victim rejects clean
  is pulled toward the partner's clean embedding on the attacked victim. Success: ``> thr``.
* Attacked pairs: the eligible ones (correct on the clean pair for the attacked victim, count
  ``n_eligible``); with ``--limit``, a seeded subset stratified by the person in image ``a``
  (``datasets._base.stratified_subset``), and the row is marked ``partial``.
  Each victim's ``success_rate`` is over the attacked pairs it also got right clean
  (``n_scored``), with the Wilson score 95% interval (``ci_low``/``ci_high``), which stays wide
  at 0% or 100% on few pairs where a bootstrap collapses to a point; the clean ``tar_at_far``
  has its own Wilson interval over the genuine pairs (``tar_ci_low``/``tar_ci_high``).
* ``clean_rank1`` / ``clean_map``: closed-set identification, gallery = the first image (path
  order) of each identity, queries = the other images.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field, replace
from math import comb

import numpy as np
import torch
import torch.nn.functional as F

from ..datasets._base import ImageSource, Sample, Subset, stratified_subset
from ..datasets.lfw_pairs import make_pairs
from ..errors import DataError, InputError
from ..metrics import verification as V
from ..metrics.intervals import wilson
from ._template import Row, Task

log = logging.getLogger(__name__)

MAX_PAIRS = 3000  # per kind for make_pairs; LFW View 2 has 3000 genuine + 3000 impostor pairs

__all__ = ["Face", "FaceOptions", "build_pairs", "calibrate", "choose_attacked", "identify"]


@dataclass
class FaceOptions:
    far: float = 1e-3           # false-accept rate of the verification threshold (clean pairs)
    split: str | None = None    # pairs among one split's people only (a learned attack's unseen people)


def build_pairs(ds, seed: int, split: str | None = None) -> tuple[list, str]:
    """The dataset's own pairs, else the seeded ``make_pairs`` rule (see module docstring)."""
    if split is not None:  # only the people of one split (a learned attack's unseen people)
        if ds.meta.get("pairs") is not None:
            raise InputError(f"--split: dataset {ds.name!r} has a fixed pairs file; it cannot "
                             "be restricted to one split")
        ds = replace(ds, samples=ds.split(split))
    if ds.meta.get("pairs") is not None:
        pairs = list(ds.meta["pairs"])
        if not pairs:
            raise DataError(f"dataset {ds.name!r}: its pairs file lists no usable pairs")
        return pairs, "pairs_file"
    sizes: dict[int, int] = {}
    for s in ds.samples:
        if s.pid >= 0:
            sizes[s.pid] = sizes.get(s.pid, 0) + 1
    if len(sizes) < 2:
        raise DataError(f"dataset {ds.name!r}{f' split {split!r}' if split else ''} has {len(sizes)} "
                        "identities: face verification needs at least 2 (impostor pairs), and the "
                        "10-fold protocol 20")
    n_gen = sum(comb(n, 2) for n in sizes.values())
    cap = None if n_gen <= MAX_PAIRS else MAX_PAIRS
    # LFW's 10 identity-disjoint folds when there are people enough (20), else as many as fit
    folds = 10 if split is None and len(sizes) >= 20 else max(1, min(10, len(sizes) // 2))
    pairs = make_pairs(ds, n_genuine=cap, n_impostor=cap, seed=seed, folds=folds)
    where = "" if split is None else f",split={split}"
    return pairs, f"make_pairs(seed={seed},folds={folds},{'all' if cap is None else cap} genuine{where})"


def _images(ds, pairs) -> list[Sample]:
    """Every image a pair names, in order of first appearance, with its identity when known."""
    pid = {s.path: s.pid for s in ds.samples}
    paths = list(dict.fromkeys(p for pr in pairs for p in (pr.a, pr.b)))
    return [Sample(path=p, pid=pid.get(p, -1)) for p in paths]


def aligned(name: str | None, samples: list[Sample]) -> tuple[object, torch.Tensor]:
    """(chips, detected) for one alignment, the chips a source read a batch at a time (the
    aligner's cache, or the image files); ``None`` feeds the images as they are."""
    if name is not None:
        from ..align import align_source

        return align_source(name, samples)
    source = ImageSource(samples)
    if len(source.sizes()) > 1:
        raise InputError("the victim declares no alignment and the images differ in size; "
                         "use a victim with an alignment or a dataset of equal-size images")
    return source, torch.ones(len(samples), dtype=torch.bool)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def calibrate(scores: np.ndarray, same: np.ndarray, folds: np.ndarray, far: float,
              seed: int) -> dict:
    """Clean verification numbers and the threshold at ``far`` (NaN when unresolvable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V.InsufficientPairsWarning)
        t = V.tar_at_far(scores[same], scores[~same], far)
    if len(np.unique(folds)) >= 2:
        k = V.kfold_accuracy(scores, same, fold_ids=folds)
    else:  # a single-set pairs file: 10 seeded folds instead
        k = V.kfold_accuracy(scores, same, folds=min(10, len(scores)), seed=seed)
    n_gen = int(same.sum())
    lo, hi = wilson(round(t.tar * n_gen), n_gen) if not math.isnan(t.tar) else (math.nan, math.nan)
    return {"clean_acc": k.mean, "clean_acc_std": k.std, "tar_at_far": t.tar, "tar_ci_low": lo,
            "tar_ci_high": hi, "threshold": t.threshold, "achieved_far": t.achieved_far}


def identify(emb: np.ndarray, samples: list[Sample]) -> dict:
    """Clean rank-1 / mAP: first image of each identity (path order) as the gallery."""
    pids = np.array([s.pid for s in samples])
    order = sorted(range(len(samples)), key=lambda i: str(samples[i].path))
    first: dict[int, int] = {}
    for i in order:
        if pids[i] >= 0:
            first.setdefault(int(pids[i]), i)
    g = sorted(first.values())
    in_gallery = set(g)
    q = [i for i in range(len(samples)) if pids[i] >= 0 and i not in in_gallery]
    if len(g) < 2 or not q:
        return {}
    r = V.identification(emb[q], pids[q], emb[g], pids[g])
    return {"clean_rank1": r.rank1, "clean_map": r.mAP}


def choose_attacked(eligible: np.ndarray, limit: int | None, seed: int,
                    people: np.ndarray | None = None) -> np.ndarray:
    """Indices of eligible pairs to attack, in pair order: all of them, or with ``limit`` a
    seeded subset stratified by the identity of the attacked image ``people`` (the
    ``--limit`` rule of ``datasets._base.stratified_subset``).

    >>> choose_attacked(np.array([True, False, True, True]), 2, seed=0, people=np.array([1, 1, 1, 2])).tolist()
    [0, 3]
    """
    idx = np.flatnonzero(eligible)
    groups = np.zeros(len(idx), dtype=np.int64) if people is None else np.asarray(people)[idx]
    return idx[stratified_subset(groups, limit, seed)]


def pair_success(dodging: bool, adv: np.ndarray, clean: np.ndarray, thr: float) -> np.ndarray:
    """Per attacked pair: 1 / 0, NaN where this victim got the clean pair wrong (not scored);
    the rules of ``V.dodging_success`` / ``V.impersonation_success``.

    >>> pair_success(True, np.array([0.1, 0.9, 0.1]), np.array([0.8, 0.8, 0.2]), 0.5).tolist()
    [1.0, 0.0, nan]
    """
    right = clean > thr if dodging else clean <= thr
    hit = adv <= thr if dodging else adv > thr
    return np.where(right, hit.astype(float), np.nan)


def _success(dodging: bool, adv: np.ndarray, clean: np.ndarray, thr: float) -> dict:
    """Success over attacked pairs this victim got right clean, with its Wilson interval."""
    per = pair_success(dodging, adv, clean, thr)
    s = per[~np.isnan(per)]
    out = {"n_scored": int(s.size), "score_clean": float(clean.mean()) if clean.size else math.nan,
           "score_adv": float(adv.mean()) if adv.size else math.nan}
    out["adv_tar" if dodging else "adv_far"] = float(np.mean(adv > thr)) if adv.size else math.nan
    if s.size == 0:
        return {**out, "success_rate": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    lo, hi = wilson(int(s.sum()), int(s.size))
    return {**out, "success_rate": float(s.mean()), "ci_low": lo, "ci_high": hi}


@dataclass
class FaceInputs:
    pairs: list
    rule: str
    samples: list[Sample]
    ia: np.ndarray
    ib: np.ndarray
    same: np.ndarray
    folds: np.ndarray
    chips: object                   # every pair image's chip, read a batch at a time
    n_fallback: int
    alignment: str | None
    emb: dict[str, np.ndarray]
    cal: dict[str, dict]
    sel: np.ndarray | None = None   # attacked pairs (None: a clean run)
    n_eligible: int = 0
    images: object = field(default_factory=lambda: torch.zeros(0))  # image a of each attacked pair


@dataclass
class FaceRow(Row):
    n_queries: int | None = None    # attacked pairs; none in a clean run
    extra: dict = field(default_factory=dict)  # protocol, calibration and success columns


class Face(Task):
    name = "face"
    modes = ("dodging", "impersonation")
    aliases = {"evasion": "dodging"}
    Options = FaceOptions
    # the mean cosine of the attacked pairs: continuous, so the causal check of rbf interpret sees
    # a partial restore that does not yet cross the threshold (a success rate saturates at 1.0)
    metric = ("score_clean", "score_adv")

    def check(self, options: FaceOptions, mode, targeted) -> None:
        if not 0.0 < float(options.far) <= 1.0:
            raise InputError(f"--far must be in (0, 1], got {options.far}")

    def inputs(self, ctx) -> FaceInputs:
        far, seed = float(ctx.options.far), ctx.cfg.seed
        pairs, rule = build_pairs(ctx.ds, seed, ctx.options.split)
        samples = _images(ctx.ds, pairs)
        index = {s.path: i for i, s in enumerate(samples)}
        ia = np.array([index[p.a] for p in pairs]); ib = np.array([index[p.b] for p in pairs])
        same = np.array([p.same for p in pairs], dtype=bool)
        folds = np.array([p.fold for p in pairs])
        align = getattr(ctx.attacked, "alignment", None)
        chips, detected = aligned(align, samples)
        n_fallback = int((~detected).sum())
        if n_fallback:
            log.warning("%d of %d images: no face found by %s, aligner fallback used (n_fallback)",
                        n_fallback, len(samples), align)
        emb = {n: ctx.clean(v, f"face-chips:{align}", samples, chips, desc=f"faces on {v.name}")
               for n, v in ctx.victims.items()}
        cal = {n: calibrate(_cos(emb[n][ia], emb[n][ib]), same, folds, far, seed) for n in ctx.names}
        if math.isnan(cal[ctx.names[0]]["threshold"]):  # clean and attacked runs alike
            raise InputError(f"FAR {far:g} cannot be resolved with {int((~same).sum())} impostor "
                             f"pairs (needs >= {math.ceil(1 / far)}); raise --far or use more pairs")
        inp = FaceInputs(pairs, rule, samples, ia, ib, same, folds, chips, n_fallback, align, emb, cal,
                         images=Subset(chips, []))
        if ctx.attack is not None:
            self._select(ctx, inp)
        return inp

    def _select(self, ctx, inp: FaceInputs) -> None:
        """The attacked pairs: eligible ones (right clean on the attacked victim), seeded order."""
        thr = inp.cal[ctx.names[0]]["threshold"]
        clean0 = _cos(inp.emb[ctx.names[0]][inp.ia], inp.emb[ctx.names[0]][inp.ib])
        eligible = (inp.same & (clean0 > thr)) if not ctx.targeted else (~inp.same & (clean0 <= thr))
        people = np.array([inp.samples[i].pid for i in inp.ia])
        inp.sel = choose_attacked(eligible, ctx.cfg.limit, ctx.cfg.seed, people)
        if inp.sel.size == 0:
            raise InputError(f"no {'impostor' if ctx.targeted else 'genuine'} pair is correctly "
                             f"classified clean by {ctx.attacked.name}; nothing to attack")
        inp.n_eligible = int(eligible.sum())
        inp.images = Subset(inp.chips, inp.ia[inp.sel])

    def targets(self, ctx, inp: FaceInputs) -> torch.Tensor:
        """The partner's clean embedding on the attacked victim."""
        t = torch.from_numpy(inp.emb[ctx.names[0]][inp.ib[inp.sel]]).float()
        return F.normalize(t, dim=1)

    def success(self, ctx, inp: FaceInputs, outputs: np.ndarray) -> np.ndarray:
        emb, sel = inp.emb[ctx.names[0]], inp.sel
        if sel is None:
            return np.zeros(0)
        clean, adv = _cos(emb[inp.ia[sel]], emb[inp.ib[sel]]), _cos(outputs, emb[inp.ib[sel]])
        return pair_success(not ctx.targeted, adv, clean, inp.cal[ctx.names[0]]["threshold"])

    def score(self, ctx, inp: FaceInputs, outcome) -> list[FaceRow]:
        rows = []
        adv_emb = outcome.outputs if inp.sel is not None else {}
        for n, v in ctx.victims.items():
            extra = {"alignment": getattr(v, "alignment", None) or "none",
                     "eval_alignment": inp.alignment or "none", "n_images": len(inp.samples),
                     "n_fallback": inp.n_fallback, "n_pairs": len(inp.pairs), "n_genuine": int(inp.same.sum()),
                     "n_impostor": int((~inp.same).sum()), "pairs_rule": inp.rule,
                     "pairs_skipped": int(ctx.ds.meta.get("pairs_skipped", 0) or 0),
                     "far": float(ctx.options.far), **inp.cal[n], **identify(inp.emb[n], inp.samples)}
            if getattr(v, "alignment", None) != inp.alignment:
                extra.update(_native(ctx, v, inp))
            row = FaceRow("face", ctx.attacked.name, v.name, extra=extra)
            if inp.sel is not None:
                clean = _cos(inp.emb[n][inp.ia[inp.sel]], inp.emb[n][inp.ib[inp.sel]])
                adv = _cos(adv_emb[n], inp.emb[n][inp.ib[inp.sel]])
                row.n_queries, row.cost = int(inp.sel.size), outcome.columns()
                row.n_available, row.partial = inp.n_eligible, int(inp.sel.size) < inp.n_eligible
                extra.update(n_eligible=inp.n_eligible, attacked_image="a",
                             **_success(not ctx.targeted, adv, clean, inp.cal[n]["threshold"]))
            rows.append(row)
            log.info("%s on %s: clean acc %.4f, TAR@FAR %g %.4f, success %s", ctx.attack_name, v.name,
                     extra["clean_acc"], ctx.options.far, extra["tar_at_far"], extra.get("success_rate"))
        return rows


def _native(ctx, victim, inp: FaceInputs) -> dict:
    """Clean numbers of an eval victim on chips of its own alignment (transfer rows only)."""
    own = getattr(victim, "alignment", None)
    chips, det = aligned(own, inp.samples)
    e = ctx.clean(victim, f"face-chips:{own}", inp.samples, chips)
    c = calibrate(_cos(e[inp.ia], e[inp.ib]), inp.same, inp.folds, float(ctx.options.far), ctx.cfg.seed)
    return {"clean_acc_native": c["clean_acc"], "tar_at_far_native": c["tar_at_far"],
            "threshold_native": c["threshold"], "n_fallback_native": int((~det).sum())}
