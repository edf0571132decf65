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
* **targeted** (``--target-class`` required): a class name or index; a quadrant ``q1..q4`` (or
  ``high_valence_low_arousal`` etc.), attacked toward its centre (+-0.5, +-0.5); an AU pattern
  ``AU12=1,AU4=0`` (the other AUs keep their clean state as the goal). ``success_rate`` is
  the fraction, among the images not already at the target on the clean image, that reach it:
  predicted class, both VA signs, or every named AU on the adversarial image.
* ``ci_low`` / ``ci_high``: 95% percentile bootstrap of ``success_rate`` (1000 resamples, seed
  ``cfg.seed``). Eval victims are scored on the same adversarial images with the same rules;
  a targeted run needs the target to parse for every victim.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import torch

from ..errors import InputError
from ..metrics import affect as M
from ..metrics.verification import bootstrap_ci
from ..runner import attack_and_measure

log = logging.getLogger(__name__)

EVAL_SPLITS = ("test", "PrivateTest", "val", "PublicTest", "all")
HEADS = {"logits": "expression", "regression": "valence_arousal", "multilabel": "action_units"}
VA_TARGET = 0.5  # quadrant targets sit at (+-0.5, +-0.5), the middle of the quadrant
_SYNONYMS = {"anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise",
             "fearful": "fear", "disgusted": "disgust", "contempt": "contempt", "neutrality": "neutral"}


def _norm(name: str) -> str:
    n = str(name).strip().lower()
    return _SYNONYMS.get(n, n)


def classes_of(victim) -> tuple[str, ...]:
    cls = getattr(victim, "classes", None)
    if not cls:
        raise InputError(f"victim {victim.name!r} has logits but no 'classes' attribute naming them")
    return tuple(cls)


def head_of(victim) -> str:
    kind = getattr(victim, "output", None)
    if kind not in HEADS:
        raise InputError(f"victim {getattr(victim, 'name', victim)!r} has output {kind!r}: affect runs "
                         f"need an affect head ({', '.join(HEADS)}); attack embeddings on a face or re-ID dataset")
    return kind


# -- targets ---------------------------------------------------------------------------------

def parse_class(spec: str, classes) -> int:
    """Class name (case-insensitive, common synonyms) or index -> index.

    >>> parse_class("Happy", ("angry", "happy")), parse_class("1", ("angry", "happy"))
    (1, 1)
    """
    text = str(spec).strip()
    if re.fullmatch(r"\d+", text):
        if int(text) < len(classes):
            return int(text)
        raise InputError(f"--target-class {spec}: index out of range 0..{len(classes) - 1}")
    names = [_norm(c) for c in classes]
    if _norm(text) in names:
        return names.index(_norm(text))
    raise InputError(f"--target-class {spec!r} is not a class of this victim; "
                     f"choose from {', '.join(classes)} (or an index 0..{len(classes) - 1})")


def parse_quadrant(spec: str) -> tuple[int, int]:
    """Quadrant name -> (valence sign, arousal sign).

    >>> parse_quadrant("q2")
    (-1, 1)
    """
    key = str(spec).strip().lower()
    if key not in M.QUADRANTS:
        raise InputError(f"--target-class {spec!r} is not a valence-arousal quadrant; "
                         f"choose from {', '.join(M.QUADRANTS)}")
    return M.QUADRANTS[key]


def parse_au_pattern(spec: str, au_names) -> dict[int, int]:
    """``"AU12=1,AU4=0"`` -> {column: 0/1}; ``12`` matches ``AU12``; on/off/true/false accepted.

    >>> parse_au_pattern("AU12=1, 4=off", ("AU4", "AU12"))
    {1: 1, 0: 0}
    """
    names = [str(a).strip().upper() for a in au_names]
    out: dict[int, int] = {}
    for item in filter(None, (s.strip() for s in str(spec).split(","))):
        key, eq, val = (p.strip() for p in item.partition("="))
        key = key.upper() if key.upper().startswith("AU") else f"AU{key}"
        state = {"1": 1, "on": 1, "true": 1, "0": 0, "off": 0, "false": 0}.get(val.lower())
        if not eq or state is None:
            raise InputError(f"--target-class {spec!r}: bad item {item!r}; expected AU<n>=1 or AU<n>=0")
        if key not in names:
            raise InputError(f"--target-class {spec!r}: {key} is not an output of this victim; "
                             f"its AUs: {', '.join(names)}")
        out[names.index(key)] = state
    if not out:
        raise InputError(f"--target-class {spec!r}: empty AU pattern; expected e.g. AU12=1,AU4=0")
    return out


def parse_target(victim, spec: str | None):
    """The target in the head's terms: class index, (sv, sa) signs, or {AU column: state}."""
    if spec is None or not str(spec).strip():
        raise InputError("--mode targeted needs --target-class (a class name or index, a quadrant "
                         "q1..q4, or an AU pattern like AU12=1,AU4=0)")
    kind = head_of(victim)
    if kind == "logits":
        return parse_class(spec, classes_of(victim))
    if kind == "regression":
        return parse_quadrant(spec)
    au = getattr(victim, "au_names", None) or tuple(f"AU{i}" for i in range(getattr(victim, "expected", 0) or 0))
    return parse_au_pattern(spec, au)


def target_tensor(kind: str, target, clean: torch.Tensor) -> torch.Tensor:
    """Per-image attack target from the parsed target and the clean outputs (N, K)."""
    n = clean.shape[0]
    if kind == "logits":
        return torch.full((n,), target, dtype=torch.long)
    if kind == "regression":
        return torch.tensor(target, dtype=clean.dtype).mul(VA_TARGET).expand(n, 2).clone()
    goal = (clean > 0.5).to(clean.dtype)
    for col, state in target.items():
        goal[:, col] = float(state)
    return goal


# -- references --------------------------------------------------------------------------

def class_labels(ds, idx: np.ndarray, victim) -> np.ndarray | None:
    """Dataset expression labels mapped into the victim's class order (-1 = excluded)."""
    names = ds.meta.get("classes")
    pids = np.array([ds.samples[i].pid for i in idx])
    if not names or not (pids >= 0).any():
        return None
    vic = [_norm(c) for c in classes_of(victim)]
    mapping = np.array([vic.index(_norm(c)) if _norm(c) in vic else -1 for c in names] + [-1])
    if (mapping[:-1] < 0).all():
        raise InputError(f"dataset {ds.name!r} classes {list(names)} share no name with victim "
                         f"{victim.name!r} classes {list(classes_of(victim))}; pass the class "
                         "order the folders use (e.g. classes=...) so labels can be mapped")
    dropped = [c for c, m in zip(names, mapping) if m < 0]
    if dropped:
        log.warning("dataset classes %s have no counterpart in %s: those images are excluded", dropped, victim.name)
    return mapping[np.where((pids >= 0) & (pids < len(names)), pids, -1)]


def references(ds, idx: np.ndarray, victim, n_out: int):
    """Labels for the victim's head, or None: then its clean predictions are the reference."""
    if ds.task != "affect":
        return None  # face / re-ID data: pid is a person, not an affect label
    kind = head_of(victim)
    if kind == "logits":
        return class_labels(ds, idx, victim)
    if kind == "regression" and "va" in ds.meta:
        return np.asarray(ds.meta["va"], dtype=float)[idx]
    if kind == "multilabel" and "au" in ds.meta:
        au = np.asarray(ds.meta["au"], dtype=int)[idx]
        names, ds_names = getattr(victim, "au_names", None), ds.meta.get("au_names")
        same = names and ds_names and [str(a).upper() for a in ds_names] == [str(a).upper() for a in names]
        if au.shape[1] != n_out or (names and ds_names and not same):
            raise InputError(f"dataset {ds.name!r} AUs {list(ds_names or [])} ({au.shape[1]}) do not match "
                             f"victim {victim.name!r} AUs {list(names or [])} ({n_out} outputs)")
        return au
    log.warning("dataset %s has no labels for a %s head: clean predictions are the reference",
                ds.name, HEADS[kind])
    return None


# -- scoring -------------------------------------------------------------------------------
# Each scorer returns (metric columns, per-image success indicators over the scored images).

def score_logits(clean, adv, labels, target, victim) -> tuple[dict, np.ndarray]:
    classes = classes_of(victim)
    pc, pa = clean.argmax(1), adv.argmax(1)
    ref = pc if labels is None else labels
    # Macro-F1 over the classes present in reference or predictions (scikit-learn's default):
    # over all C classes, classes absent from a small or clean-prediction reference would
    # count as 0 and cap even a perfect score.
    cols = {"clean_acc": M.accuracy(pc, ref), "adv_acc": M.accuracy(pa, ref),
            "clean_macro_f1": M.f1_macro(pc, ref), "adv_macro_f1": M.f1_macro(pa, ref),
            "flip_rate": M.flip_rate(pc, pa)}
    if target is None:
        scored = (ref != M.EXPR_INVALID) & (pc == ref)  # right before the attack
        return cols, (pa[scored] != ref[scored])
    keep = pc != target
    cols.update(target_class=classes[target], clean_target_rate=float((pc == target).mean()),
                adv_target_rate=float((pa == target).mean()),
                targeted_success=M.targeted_success_rate(pa, target, pred_clean=pc))
    return cols, (pa[keep] == target)


def _in_quadrant(va: np.ndarray, signs) -> np.ndarray:
    return (va[:, 0] * signs[0] > 0) & (va[:, 1] * signs[1] > 0)


def score_regression(clean, adv, labels, target, victim) -> tuple[dict, np.ndarray]:
    ref = clean if labels is None else labels
    c, a = M.va_ccc(clean, ref), M.va_ccc(adv, ref)
    cols = {**{f"clean_{k}": v for k, v in c.items()}, **{f"adv_{k}": v for k, v in a.items()},
            "ccc_mean_drop": c["ccc_mean"] - a["ccc_mean"],
            "va_mean_abs_shift": float(np.abs(adv - clean).mean())}
    flipped = ((clean > 0) != (adv > 0)).any(1)
    cols["quadrant_flip_rate"] = float(flipped.mean())
    if target is None:
        return cols, flipped
    name = next(k for k, v in M.QUADRANTS.items() if v == tuple(target) and k.startswith("q"))
    keep = ~_in_quadrant(clean, target)
    success = _in_quadrant(adv, target)[keep]
    cols.update(target_class=name, quadrant_shift=M.quadrant_shift(clean, adv, name),
                clean_target_rate=float(1 - keep.mean()),
                targeted_success=float(success.mean()) if keep.any() else math.nan)
    return cols, success


def score_multilabel(clean, adv, labels, target, victim) -> tuple[dict, np.ndarray]:
    on_c, on_a = clean >= 0.5, adv >= 0.5
    ref = on_c.astype(int) if labels is None else labels
    cols = {"clean_au_f1": M.au_f1(clean, ref), "adv_au_f1": M.au_f1(adv, ref),
            "au_f1_drop": M.au_f1_drop(clean, adv, ref), "au_flip_rate": float((on_c != on_a).mean())}
    changed = (on_c != on_a).any(1)
    if target is None:
        return cols, changed
    names = getattr(victim, "au_names", None) or [f"AU{i}" for i in range(clean.shape[1])]
    cols_t, states = list(target), np.array(list(target.values()), dtype=bool)
    keep = ~(on_c[:, cols_t] == states).all(1)
    success = (on_a[:, cols_t] == states).all(1)[keep]
    forced = [M.au_forced_rate(clean, adv, c, on=bool(s)) for c, s in target.items()]
    cols.update(target_class=",".join(f"{names[c]}={s}" for c, s in target.items()),
                clean_target_rate=float(1 - keep.mean()), au_forced_rate=float(np.nanmean(forced))
                if not all(math.isnan(f) for f in forced) else math.nan,
                targeted_success=float(success.mean()) if keep.any() else math.nan)
    return cols, success


SCORERS = {"logits": score_logits, "regression": score_regression, "multilabel": score_multilabel}


# -- the runner ----------------------------------------------------------------------------

def eval_indices(ds, limit: int | None, split: str | None = None) -> np.ndarray:
    """Indices of the evaluated images: ``split`` if given, else the first of EVAL_SPLITS
    present, else all samples."""
    from ..errors import DataError

    present = {s.split for s in ds.samples}
    if split is not None and split not in present:
        raise DataError(f"dataset {ds.name!r} at {ds.root} has no {split!r} split; "
                        f"splits: {sorted(present)}")
    split = split or next((s for s in EVAL_SPLITS if s in present), None)
    idx = [i for i, s in enumerate(ds.samples) if split is None or s.split == split][:limit]
    if not idx:
        raise DataError(f"dataset {ds.name!r} at {ds.root} has no images to evaluate")
    return np.array(idx)


@torch.no_grad()
def predict(victim, images: torch.Tensor, batch_size: int, device: str) -> np.ndarray:
    out = [victim(images[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def check_width(victim, out: np.ndarray) -> None:
    """The victim's output count must match its declared head (a plugin may lie)."""
    kind = head_of(victim)
    if kind == "logits":
        want, what = len(classes_of(victim)), "classes"
    elif kind == "regression":
        want, what = 2, "valence, arousal"
    else:
        names = getattr(victim, "au_names", None)
        want, what = (len(names), "AU names") if names else (out.shape[1], "")
    if out.ndim != 2 or out.shape[1] != want:
        raise InputError(f"affect victim {victim.name!r}: declared head {HEADS[kind]!r} expects {want} "
                         f"outputs ({what}), the model gives shape {tuple(out.shape[1:])}")


def load_images(ds, idx: np.ndarray, victim) -> torch.Tensor:
    samples = [ds.samples[i] for i in idx]
    try:
        return ds.load(samples)
    except RuntimeError:  # mixed image sizes (folders of in-the-wild crops): bring to one size
        log.warning("dataset %s: images differ in size; loading them at %s", ds.name, victim.input_size)
        return ds.load(samples, size=tuple(victim.input_size))


def _ci(success: np.ndarray, seed: int) -> tuple[float, float]:
    if success.size == 0:
        return math.nan, math.nan
    return bootstrap_ci(success.astype(np.float64), seed=seed)


def run_task(cfg, ds, mode, attack, victims) -> list[dict]:
    names = list(victims)
    attacked = victims[names[0]]
    kinds = {n: head_of(victims[n]) for n in names}
    goals = {n: parse_target(victims[n], cfg.target_class) for n in names} if mode == "targeted" else {}
    idx = eval_indices(ds, cfg.limit, cfg.split)
    x = load_images(ds, idx, attacked)
    bs, dev = cfg.batch_size, cfg.device
    clean = {n: predict(victims[n], x, bs, dev) for n in names}
    for n in names:
        check_width(victims[n], clean[n])
    refs = {n: references(ds, idx, victims[n], clean[n].shape[1]) for n in names}

    targets = None
    if mode == "targeted":
        targets = target_tensor(kinds[names[0]], goals[names[0]], torch.from_numpy(clean[names[0]]))
    x_adv, seconds, seen, kind, pert = attack_and_measure(attack, attacked, x, targets, bs, dev,
                                                          desc=f"{cfg.attack} on {attacked.name}")

    rows = []
    for n in names:
        adv = predict(victims[n], x_adv, bs, dev)
        cols, success = SCORERS[kinds[n]](clean[n], adv, refs[n], goals.get(n), victims[n])
        lo, hi = _ci(success, cfg.seed)
        rows.append({"task": "affect", "victim": attacked.name, "eval_victim": victims[n].name,
                     "head": HEADS[kinds[n]], "n_queries": len(idx),
                     "reference": "clean_predictions" if refs[n] is None else "labels",
                     "success_rate": float(success.mean()) if success.size else math.nan,
                     "ci_low": lo, "ci_high": hi, "n_scored": int(success.size), **cols,
                     "sec_per_query": seconds / len(idx), "perturbation": pert,
                     "perturbation_kind": kind if attack is not None else "",
                     "queries_per_image": seen / len(idx)})
        log.info("%s on %s (%s): success %.3f over %d images", cfg.attack, victims[n].name, mode,
                 rows[-1]["success_rate"], success.size)
    return rows
