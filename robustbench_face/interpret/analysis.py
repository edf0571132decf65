"""The numbers of ``rbf interpret``, as pure functions of arrays: clustering of pooled
activations, channel ranking, patch mass, top-k overlap (``docs/interpret.md``).

Clustering follows ART's ``ActivationDefence`` (B. Chen et al., "Detecting Backdoor Attacks on
Deep Neural Networks by Activation Clustering", 2018): activations reduced to 10 dimensions
(here StandardScaler then PCA, ART uses FastICA or PCA), KMeans with k = 2, and a cluster under
35% of the points flagged (ART's ``size_threshold``, its "smaller" analysis). ART clusters each
class separately; here every input of the run shares one attack, so clean and adversarial
activations of all inputs are clustered together and the labels are clean / adversarial.
"""

from __future__ import annotations

import math

import numpy as np

PCA_DIMS = 10
SMALL = 0.35  # ART's relative-size threshold
K_RANGE = range(2, 9)


def purity(truth: np.ndarray, clusters: np.ndarray) -> float:
    """Share of points in their cluster's majority class.

    >>> purity(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])), purity(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    (1.0, 0.5)
    """
    total = 0
    for c in np.unique(clusters):
        total += np.bincount(truth[clusters == c]).max()
    return float(total / len(truth))


def jaccard(a, b) -> float:
    """|a & b| / |a | b| of two channel sets.

    >>> jaccard([1, 2, 3], [2, 3, 4])
    0.5
    """
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else math.nan


def reduce(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """StandardScaler, then PCA to ``PCA_DIMS`` dimensions (or fewer: features, points)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(features.astype(np.float64))
    dims = min(PCA_DIMS, z.shape[1], z.shape[0])
    return PCA(n_components=dims, random_state=seed).fit_transform(z)


def kmeans(z: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)


def silhouette(z: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    n = len(np.unique(labels))
    return float(silhouette_score(z, labels)) if 2 <= n <= len(z) - 1 else math.nan


def best_k(z: np.ndarray, seed: int = 0) -> tuple[int, np.ndarray, float]:
    """(k, labels, silhouette) of the k in 2..8 with the best silhouette (k < distinct points)."""
    distinct = len(np.unique(np.round(z, 9), axis=0))
    best = (2, kmeans(z, 2, seed), -math.inf)
    for k in K_RANGE:
        if k >= distinct:
            break
        labels = kmeans(z, k, seed)
        s = silhouette(z, labels)
        if s > best[2]:
            best = (k, labels, s)
    return best if math.isfinite(best[2]) else (2, best[1], math.nan)


def describe_clustering(name: str, labels: np.ndarray, is_adv: np.ndarray, success: np.ndarray,
                        z: np.ndarray) -> tuple[dict, list[dict]]:
    """(summary, one row per cluster) of one clustering against the clean/adversarial labels;
    ``success`` is per point (NaN for clean points and unscored inputs)."""
    from sklearn.metrics import adjusted_rand_score

    truth = is_adv.astype(int)
    k = int(labels.max()) + 1
    summary = {"clustering": name, "k": k, "purity": purity(truth, labels),
               "ari": float(adjusted_rand_score(truth, labels)), "silhouette": silhouette(z, labels)}
    rows = []
    for c in range(k):
        m = labels == c
        s = success[m & is_adv]
        s = s[~np.isnan(s)]
        rows.append({**summary, "cluster": c, "size": int(m.sum()), "share": float(m.mean()),
                     "n_clean": int((m & ~is_adv).sum()), "n_adv": int((m & is_adv).sum()),
                     "adv_share": float(is_adv[m].mean()) if m.any() else math.nan,
                     "success": float(s.mean()) if s.size else math.nan,
                     "n_scored": int(s.size), "small": bool(m.mean() < SMALL)})
    small = [r for r in rows if r["small"]]
    n_small_adv = sum(r["n_adv"] for r in small)
    summary.update(small_clusters=len(small),
                   small_adv_share=n_small_adv / sum(r["size"] for r in small) if small else math.nan)
    return summary, rows


def clusterings(features: np.ndarray, is_adv: np.ndarray, success: np.ndarray, k: str | int = "auto",
                seed: int = 0) -> tuple[dict, list[dict], np.ndarray, dict[str, np.ndarray]]:
    """Cluster ``features`` (points x channels): ART's k = 2, and ``k`` (``auto``: the best
    silhouette in 2..8). Returns (summary columns, cluster rows, the reduced points, labels)."""
    z = reduce(features, seed)
    labs = {"k2": kmeans(z, 2, seed)}
    if k == "auto":
        kk, labels, _ = best_k(z, seed)
    else:
        kk, labels = int(k), kmeans(z, int(k), seed)
    labs["best" if k == "auto" else f"k{kk}"] = labels
    summary, rows = {}, []
    for name, labels in labs.items():
        s, r = describe_clustering(name, labels, is_adv, success, z)
        rows += r
        prefix = "k2" if name == "k2" else "best"
        summary.update({f"{prefix}_{key}": v for key, v in s.items() if key != "clustering"})
    return summary, rows, z, labs


def rank_channels(sums: dict[str, np.ndarray], count: int) -> list[dict]:
    """Channels by mean |adv - clean| over paired images and positions, largest first, with the
    sign of the mean difference and the scale-free ``z`` (mean |delta| / the clean std)."""
    mean = {k: v / count for k, v in sums.items()}
    std = np.sqrt(np.maximum(mean["clean_sq"] - mean["clean"] ** 2, 0.0))
    total = mean["abs_delta"].sum()
    order = np.argsort(-mean["abs_delta"], kind="stable")
    rows = []
    for rank, c in enumerate(order, start=1):
        d = float(mean["delta"][c])
        rows.append({"rank": rank, "channel": int(c), "mean_abs_delta": float(mean["abs_delta"][c]),
                     "mean_delta": d, "sign": "promoted" if d > 0 else "suppressed" if d < 0 else "none",
                     "clean_mean": float(mean["clean"][c]), "adv_mean": float(mean["adv"][c]),
                     "clean_std": float(std[c]),
                     "z": float(mean["abs_delta"][c] / std[c]) if std[c] > 0 else math.nan,
                     "share": float(mean["abs_delta"][c] / total) if total > 0 else math.nan})
    return rows


def patch_mass(maps: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Per image, the share of a non-negative map's mass inside ``box`` (NaN for an all-zero map).

    >>> m = np.zeros((1, 4, 4)); m[0, :2, :2] = 1.0; m[0, 3, 3] = 1.0
    >>> patch_mass(m, (0, 0, 2, 2)).tolist()
    [0.8]
    """
    y0, x0, ph, pw = box
    total = maps.reshape(len(maps), -1).sum(1)
    inside = maps[:, y0:y0 + ph, x0:x0 + pw].reshape(len(maps), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)


def recovered_share(clean: float, adv: float, restored: float) -> float:
    """The share of the metric the attack moved (clean -> adv) that restoring brings back.

    >>> recovered_share(0.75, 0.25, 0.5), recovered_share(0.0, 1.0, 0.25)
    (0.5, 0.75)
    """
    lost = clean - adv
    return (restored - adv) / lost if abs(lost) > 1e-12 else math.nan
