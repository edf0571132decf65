"""Facial affect under attack: expression classifiers, valence-arousal regressors, AU detectors.

The runner sends a run here when the attacked victim has an affect head (``victim.output`` is
``logits``, ``regression`` or ``multilabel``), whatever the dataset: an expression model run on
the ORL faces is an affect run. Protocol (``docs/affect.md``):

* **Images.** The first split present out of ``test``, ``PrivateTest``, ``val``, ``PublicTest``,
  ``all`` (else every sample), in dataset order, cut to ``--limit``.
* **Reference rule.** The ``reference`` column says what the clean / adversarial task metrics
  are scored against. ``labels``: an affect dataset (``dataset.task == "affect"``) with labels
  of the victim's kind -- expression classes in ``Sample.pid`` (mapped to the victim's classes
  by name), ``meta["va"]`` or ``meta["au"]``. ``clean_predictions``: anything else, including
  every face or re-ID dataset (ORL's ``pid`` is a person, not an expression): the victim's own
  clean predictions stand in for labels. ABAW's invalid labels (-1 expression / AU, -5 VA) are
  excluded entry by entry (:mod:`robustbench_face.metrics.affect`).
* **untargeted** ``success_rate``. Classifier: among the images whose clean prediction matches
  the reference (valid labels only), the fraction predicted differently after the attack; with
  ``clean_predictions`` that is exactly ``flip_rate``. Regressor: the fraction whose
  valence-arousal quadrant changed from the clean prediction's. AU detector: the fraction whose
  thresholded (0.5) AU pattern changed. ``flip_rate`` (classifier) is always against the
  clean predictions, on every image.
* **targeted** (task option ``target_class``, ``--target-class``, required): parsed by the
  victim's head (:mod:`robustbench_face.heads`): a class name or index; a quadrant ``q1..q4``
  (or ``high_valence_low_arousal`` etc.), attacked toward its centre (+-0.5, +-0.5); an AU
  pattern ``AU12=1,AU4=0`` (the other AUs keep their clean state as the goal). ``success_rate`` is
  the fraction, among the images not already at the target on the clean image, that reach it:
  predicted class, both VA signs, or every named AU on the adversarial image.
* Scoring is the head's (``metrics.affect.score_*``). ``ci_low`` / ``ci_high``: the Wilson
  95% interval of ``success_rate`` (``flip_ci_*`` likewise for ``flip_rate``); accuracy and
  macro-F1 of expression heads carry a seeded bootstrap interval over the images
  (``metrics/intervals.py``). Eval victims are scored on the same adversarial images with the same rules;
  a targeted run needs the target to parse for every victim.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..datasets._base import stratified_subset
from ..errors import DataError, InputError
from ..heads import Head, head_of
from ..metrics.intervals import rate_ci, wilson
from ._template import Row, Task

log = logging.getLogger(__name__)

EVAL_SPLITS = ("test", "PrivateTest", "val", "PublicTest", "all")


@dataclass
class AffectOptions:
    target_class: str | None = None  # targeted mode: a class, quadrant or AU pattern (the head parses it)
    split: str | None = None         # evaluate only this split (default: the first of EVAL_SPLITS present)


def affect_head(victim) -> Head:
    head = head_of(victim)
    if head.kind == "embedding":
        raise InputError(f"victim {getattr(victim, 'name', victim)!r} has output 'embedding': affect "
                         "runs need an affect head (logits, regression, multilabel); attack "
                         "embeddings on a face or re-ID dataset")
    return head


def eval_indices(ds, limit: int | None, split: str | None = None, seed: int = 0) -> tuple[np.ndarray, int]:
    """(indices of the evaluated images, how many the split has): ``split`` if given, else the
    first of EVAL_SPLITS present, else all samples; ``limit`` draws a seeded subset stratified
    by ``pid`` (the class, or the person on face data; ``datasets._base.stratified_subset``)."""
    present = {s.split for s in ds.samples}
    if split is not None and split not in present:
        raise DataError(f"dataset {ds.name!r} at {ds.root} has no {split!r} split; "
                        f"splits: {sorted(present)}")
    split = split or next((s for s in EVAL_SPLITS if s in present), None)
    idx = np.array([i for i, s in enumerate(ds.samples) if split is None or s.split == split], dtype=np.int64)
    if not idx.size:
        raise DataError(f"dataset {ds.name!r} at {ds.root} has no images to evaluate")
    return idx[stratified_subset([ds.samples[i].pid for i in idx], limit, seed)], int(idx.size)


def load_images(ds, idx: np.ndarray, victim):
    """The evaluated images as a source read a batch at a time; folders of in-the-wild crops of
    mixed sizes are read at the victim's input size (the file headers tell, nothing is decoded)."""
    source = ds.source([ds.samples[i] for i in idx])
    if len(source.sizes()) > 1:
        log.warning("dataset %s: images differ in size; loading them at %s", ds.name, victim.input_size)
        source = ds.source(source.samples, size=tuple(victim.input_size))
    return source


@dataclass
class AffectInputs:
    images: object                       # an ImageSource (read a batch at a time)
    idx: np.ndarray
    heads: dict[str, Head]
    goals: dict[str, object]             # parsed target per victim (targeted runs)
    clean: dict[str, np.ndarray]         # clean outputs per victim
    refs: dict[str, np.ndarray | None]   # labels per victim, None = clean predictions
    n_available: int = 0                 # images of the split (--limit draws a stratified subset)


@dataclass
class AffectRow(Row):
    head: str = ""
    reference: str = ""
    success_rate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n_scored: int = 0
    extra: dict = field(default_factory=dict)  # the head's metric columns


class Affect(Task):
    name = "affect"
    modes = ("untargeted", "targeted")
    Options = AffectOptions

    def check(self, options: AffectOptions, mode, targeted) -> None:
        """--target-class goes with --mode targeted, and that mode needs it."""
        if targeted and not (options.target_class or "").strip():
            raise InputError("--mode targeted needs --target-class: a class name or index (e.g. happy), "
                             "a valence-arousal quadrant (q1..q4) or an AU pattern (e.g. AU12=1,AU4=0)")
        if options.target_class is not None and not targeted:
            raise InputError(f"--target-class {options.target_class} needs --mode targeted (got --mode {mode})")

    def inputs(self, ctx) -> AffectInputs:
        heads = {n: affect_head(v) for n, v in ctx.victims.items()}
        goals = {n: heads[n].parse_target(ctx.options.target_class, v)
                 for n, v in ctx.victims.items()} if ctx.targeted else {}
        idx, n_available = eval_indices(ctx.ds, ctx.cfg.limit, ctx.options.split, ctx.cfg.seed)
        x = load_images(ctx.ds, idx, ctx.attacked)
        clean = {n: ctx.clean(v, f"affect-images:{x.size}", x.samples, x) for n, v in ctx.victims.items()}
        refs = {}
        for n, v in ctx.victims.items():
            heads[n].check_width(v, clean[n])
            refs[n] = heads[n].references(ctx.ds, idx, v, clean[n].shape[1]) if ctx.ds.task == "affect" else None
            if refs[n] is None and ctx.ds.task == "affect":
                log.warning("dataset %s has no labels for a %s head: clean predictions are the reference",
                            ctx.ds.name, heads[n].label)
        return AffectInputs(x, idx, heads, goals, clean, refs, n_available)

    def targets(self, ctx, inp: AffectInputs) -> torch.Tensor:
        n0 = ctx.names[0]
        return inp.heads[n0].target_tensor(inp.goals[n0], torch.from_numpy(inp.clean[n0]))

    def success(self, ctx, inp: AffectInputs, outputs: np.ndarray) -> np.ndarray:
        n = ctx.names[0]
        return inp.heads[n].success(inp.clean[n], outputs, inp.refs[n], inp.goals.get(n), ctx.attacked)

    def score(self, ctx, inp: AffectInputs, outcome) -> list[AffectRow]:
        rows = []
        for n, v in ctx.victims.items():
            adv = outcome.outputs[n]
            cols, success = inp.heads[n].score(inp.clean[n], adv, inp.refs[n], inp.goals.get(n), v,
                                               seed=ctx.cfg.seed)
            lo, hi = rate_ci(success)
            if "flip_rate" in cols:  # a rate over every image
                n_img = len(inp.idx)
                cols["flip_ci_low"], cols["flip_ci_high"] = wilson(round(cols["flip_rate"] * n_img), n_img)
            rows.append(AffectRow("affect", ctx.attacked.name, v.name, len(inp.idx), outcome.columns(),
                                  n_available=inp.n_available, partial=len(inp.idx) < inp.n_available,
                                  head=inp.heads[n].label,
                                  reference="clean_predictions" if inp.refs[n] is None else "labels",
                                  success_rate=float(success.mean()) if success.size else math.nan,
                                  ci_low=lo, ci_high=hi, n_scored=int(success.size), extra=cols))
            log.info("%s on %s (%s): success %.3f over %d images", ctx.attack_name, v.name, ctx.mode,
                     rows[-1].success_rate, success.size)
        return rows
