"""``rbf interpret``'s figures (matplotlib ``Figure`` objects, so the Agg canvas and no pyplot
state): the 2-D embedding of the activations, a montage of each cluster's images, heat maps
(clean | adversarial | |delta| at the layer | objective gradient, the patch box drawn) and the
top channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MONTAGE = 8       # images per cluster row
EXAMPLES = 4      # heat-map rows
BAR_CHANNELS = 20


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _image(t) -> np.ndarray:
    a = t.detach().cpu().float().clamp(0, 1).numpy()
    return a.transpose(1, 2, 0) if a.shape[0] == 3 else a[0]


def _box(ax, box, colour="lime") -> None:
    from matplotlib.patches import Rectangle

    y0, x0, ph, pw = box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), pw, ph, fill=False, edgecolor=colour, linewidth=1.2))


def embedding(path: Path, z: np.ndarray, is_adv: np.ndarray, labels: np.ndarray, title: str) -> Path:
    fig = _figure(9, 4)
    xy = z[:, :2] if z.shape[1] >= 2 else np.c_[z[:, 0], np.zeros(len(z))]
    a, b = fig.subplots(1, 2)
    for flag, colour, name in ((False, "tab:blue", "clean"), (True, "tab:red", "adversarial")):
        m = is_adv == flag
        a.scatter(xy[m, 0], xy[m, 1], s=10, c=colour, label=name, alpha=0.7)
    a.legend(fontsize=8); a.set_title("clean / adversarial", fontsize=9)
    sc = b.scatter(xy[:, 0], xy[:, 1], s=10, c=labels, cmap="tab10", vmin=0, vmax=9, alpha=0.8)
    b.legend(*sc.legend_elements(), fontsize=7, title="cluster"); b.set_title("clusters", fontsize=9)
    for ax in (a, b):
        ax.set_xlabel("PC 1"); ax.set_ylabel("PC 2")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)
    return path


def montage(path: Path, labels: np.ndarray, clean, adv, n: int, title: str) -> Path:
    """One row per cluster: up to ``MONTAGE`` of its points' images (point i < n is clean image
    i, else adversarial image i - n), in point order."""
    k = int(labels.max()) + 1
    fig = _figure(1.2 * MONTAGE, 1.6 * k + 0.4)
    axes = np.atleast_2d(fig.subplots(k, MONTAGE, squeeze=False))
    for c in range(k):
        idx = np.flatnonzero(labels == c)[:MONTAGE]
        for j, ax in enumerate(axes[c]):
            ax.axis("off")
            if j < len(idx):
                i = int(idx[j])
                ax.imshow(_image(clean[i] if i < n else adv[i - n]))
                ax.set_title(("clean " if i < n else "adv ") + str(i % n), fontsize=6)
        axes[c][0].text(-0.1, 0.5, f"cluster {c}\n{int((labels == c).sum())} pts", transform=axes[c][0].transAxes,
                        ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)
    return path


def heatmaps(path: Path, clean, adv, maps: np.ndarray, grads: np.ndarray, success: np.ndarray,
             box, title: str) -> Path:
    """Successful inputs first (then the rest), ``EXAMPLES`` rows."""
    order = np.argsort(-np.nan_to_num(success, nan=-1), kind="stable")[:EXAMPLES]
    fig = _figure(10, 2.6 * len(order) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(order), 4, squeeze=False))
    for row, i in zip(axes, order):
        i = int(i)
        panels = ((_image(clean[i]), "clean", None), (_image(adv[i]), "adversarial", None),
                  (maps[i], "|delta| at the layer", "magma"), (grads[i], "|objective gradient|", "viridis"))
        for ax, (img, name, cmap) in zip(row, panels):
            ax.imshow(img, cmap=cmap)
            _box(ax, box)
            ax.set_title(f"{name} ({i})" if name == "clean" else name, fontsize=7)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)
    return path


def channels_bar(path: Path, channels: list[dict], title: str) -> Path:
    top = channels[:BAR_CHANNELS]
    fig = _figure(9, 3.5)
    ax = fig.subplots()
    vals = [c["mean_delta"] for c in top]
    ax.bar(range(len(top)), vals, color=["tab:red" if v > 0 else "tab:blue" for v in vals])
    ax.scatter(range(len(top)), [c["mean_abs_delta"] for c in top], marker="_", s=120, c="k",
               label="mean |delta|")
    ax.set_xticks(range(len(top)), [str(c["channel"]) for c in top], fontsize=7, rotation=90)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel("channel (by rank)"); ax.set_ylabel("mean delta (red: promoted, blue: suppressed)")
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)
    return path


def draw_all(folder: Path, row: dict, d: dict) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(d["adv"])
    title = f"{row['attack']} on {row['victim']}, layer {row['layer']}"
    out = [embedding(folder / "embedding.png", d["z"], d["is_adv"], d["labels"][_best(d)], title)]
    for name, labels in d["labels"].items():
        out.append(montage(folder / f"montage_{name}.png", labels, d["clean"], d["adv"], n, f"{title}: {name}"))
    out.append(heatmaps(folder / "heatmaps.png", d["clean"], d["adv"], d["maps"].delta_maps, d["grads"],
                        d["success"], d["box"], title))
    out.append(channels_bar(folder / "channels.png", d["channels"], title))
    return out


def _best(d: dict) -> str:
    return next(k for k in d["labels"] if k != "k2") if len(d["labels"]) > 1 else "k2"
