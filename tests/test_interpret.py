"""``rbf interpret`` on a synthetic re-ID set and a toy victim whose layer ``feat`` has one
channel (2) that alone reads the blue input channel, attacked by an "attack" that raises blue
inside the torso box: the clustering separates clean from adversarial perfectly, channel 2
ranks first, the change sits in the box, and restoring channel 2 undoes the attack. With
``--attack none`` the clustering is at chance. Also the unknown-layer error, the top-k overlap
between runs, the CLI, and the ``feature_clip`` defense fitted on the synthetic train split."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from robustbench_face.attacks._base import Attack
from robustbench_face.attacks._regions import parse_region
from robustbench_face.errors import InputError
from robustbench_face.interpret import InterpretConfig, interpret, interpret_many
from robustbench_face.registry import ATTACKS, VICTIMS
from robustbench_face.types import VictimBase

SIZE = 64
AMP = 0.1  # identity pattern strength: weaker than the attack, stronger than the noise


class BlueNet(VictimBase):
    """``feat``: a stride-2 2x2 conv with 6 channels, each reading one colour at one or all
    taps (so their noise is independent). Channels 2, 4 and 5 read blue with total weights 2,
    1 and 0.5 (channel 2 changes most under the blue "attack"), 0, 1 and 3 read red or green;
    then a 4x4 average pool flattened to a 96-d embedding: identity lives in the layout."""

    name, output, input_size, task = "toy_blue", "embedding", (SIZE, SIZE), "reid"
    # (colour, row, col, weight); None: blue at every tap, weight 0.5 each
    TAPS = ((0, 0, 0, 1.0), (0, 1, 1, 1.0), None, (1, 0, 1, 1.0), (2, 1, 0, 1.0), (2, 0, 1, 0.5))

    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(3, 6, 2, stride=2)
        w = torch.zeros(6, 3, 2, 2)
        for c, tap in enumerate(self.TAPS):
            if tap is None:
                w[c, 2] = 0.5
            else:
                w[c, tap[0], tap[1], tap[2]] = tap[3]
        with torch.no_grad():
            self.feat.weight.copy_(w)
            self.feat.bias.copy_(-0.5 * w.sum((1, 2, 3)))  # grey 0.5 -> 0
        self.finalize()

    def forward(self, x):
        x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return F.normalize(F.adaptive_avg_pool2d(self.feat(x), 4).flatten(1), dim=1)


class BlueBox(Attack):
    """Raises the blue channel inside ``region`` by ``shift`` (a synthetic patch attack)."""

    name, distance = "blue_box_test", "patch"

    def __init__(self, region: str = "torso", shift: float = 0.5, seed: int = 0):
        self.region, self.shift, self.seed = parse_region(region), shift, seed

    def __call__(self, victim, images, target=None):
        y0, x0, ph, pw = self.region.box(*images.shape[-2:])
        adv = images.clone()
        adv[:, 2, y0:y0 + ph, x0:x0 + pw] += self.shift
        return adv.clamp(0, 1)


@pytest.fixture(autouse=True, scope="module")
def _plugins():
    VICTIMS.register("toy_blue", summary="test victim")(lambda weights=None, device="cpu": BlueNet().finalize(device))
    ATTACKS.register("blue_box_test", summary="test attack")(BlueBox)
    yield
    VICTIMS.unregister("toy_blue")
    ATTACKS.unregister("blue_box_test")


def _image(pid: int, rng) -> np.ndarray:
    """Grey with mild noise and the identity's zero-mean pattern on a 4x4 grid of 16 px cells:
    person 1 a blue block over the torso cells (so the blue "attack" makes others look like
    them) and a dark blue one lower down; the others a bright and a dark grey block elsewhere."""
    img = np.full((SIZE, SIZE, 3), 0.5) + rng.uniform(-0.04, 0.04, (SIZE, SIZE, 3))
    cell = lambda r, c: (slice(16 * r, 16 * r + 16), slice(16 * c, 16 * c + 16))  # noqa: E731
    if pid == 1:
        for (r, c), sign in (((1, 1), 1), ((1, 2), 1), ((3, 1), -1), ((3, 2), -1)):
            img[(*cell(r, c), 2)] += sign * AMP
    else:
        free = [(r, c) for r in range(4) for c in range(4) if r != 1]
        for k, sign in ((pid, 1), (3 * pid + 5, -1)):
            img[cell(*free[k % len(free)])] += sign * AMP
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A manifest re-ID set: 8 people, 2 queries (camera 0) and 3 gallery images (camera 1)
    each, and 4 training images each of 8 other people."""
    root = tmp_path_factory.mktemp("synthetic_reid")
    rng = np.random.default_rng(0)
    rows = []
    for split, pids, n, cam in (("query", range(1, 9), 2, 0), ("gallery", range(1, 9), 3, 1),
                                ("train", range(9, 17), 4, 0)):
        for pid in pids:
            for j in range(n):
                path = f"{split}/{pid}_{j}.png"
                (root / split).mkdir(exist_ok=True)
                Image.fromarray(_image(pid, rng)).save(root / path)
                rows.append({"path": path, "split": split, "pid": pid, "camid": cam})
    with open(root / "protocol.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "split", "pid", "camid"])
        w.writeheader()
        w.writerows(rows)
    return root


def run(data_root, out, attack="blue_box_test", **kw):
    kw.setdefault("figures", False)
    return interpret("toy_blue", attack, dataset=f"manifest:image_size={SIZE},{SIZE}", data_root=str(data_root),
                     out=str(out), batch_size=8, **kw)


def test_the_shifted_channel_is_found(data_root, tmp_path):
    r = run(data_root, tmp_path / "out", figures=True, top_k=1)
    row = r.row
    assert row["layer"] == "feat" and row["layer_shape"] == "6x32x32" and row["n_inputs"] == 16
    assert row["k2_purity"] == 1.0 and row["k2_ari"] == pytest.approx(1.0)
    assert r.channels[0]["channel"] == 2 and r.channels[0]["sign"] == "promoted"
    assert [c["channel"] for c in r.channels[:3]] == [2, 4, 5]
    assert all(c["mean_abs_delta"] == 0 for c in r.channels[3:])  # red and green: untouched
    assert row["top_channels"] == "2" and row["patch_mass"] >= 0.9 and row["region_source"] == "attack"
    assert math.isfinite(row["grad_patch_mass"])
    assert row["adv_map"] < row["clean_map"]  # the toy attack does hurt retrieval
    assert row["recovered_top"] == pytest.approx(1.0)  # restoring channel 2 undoes it exactly
    assert row["recovered_random_mean"] < 1.0
    for name in ("interpret.csv", "interpret_clusters.csv", "interpret_channels.csv", "interpret_points.csv",
                 "interpret_overlap.csv"):
        assert (tmp_path / "out" / name).is_file(), name
    assert {p.name for p in r.figures} >= {"embedding.png", "montage_k2.png", "heatmaps.png", "channels.png"}
    with open(tmp_path / "out" / "interpret.csv") as f:
        (saved,) = list(csv.DictReader(f))
    assert saved["git_sha"] and saved["config_hash"] and saved["rerun"].startswith("rbf interpret")
    k2 = [c for c in r.clusters if c["clustering"] == "k2"]
    assert sorted(c["adv_share"] for c in k2) == [0.0, 1.0] and sum(c["size"] for c in k2) == 32


def test_no_attack_is_at_chance(data_root, tmp_path):
    row = run(data_root, tmp_path, attack="none").row
    assert row["k2_purity"] == pytest.approx(0.5) and abs(row["k2_ari"]) < 0.1
    assert math.isnan(row["patch_mass"]) and row["region_source"] == "control:torso"
    assert math.isnan(row["recovered_top"])  # nothing was lost


def test_unknown_layer_lists_the_valid_ones(data_root, tmp_path):
    with pytest.raises(InputError, match=r"--layer 'nope'.*valid layers.*feat 6x32x32"):
        run(data_root, tmp_path, layer="nope")
    assert not (tmp_path / "interpret.csv").exists()


def test_top_k_overlap_across_runs(data_root, tmp_path):
    cfgs = [InterpretConfig(victim="toy_blue", attack="blue_box_test", dataset=f"manifest:image_size={SIZE},{SIZE}",
                            data_root=str(data_root), out=str(tmp_path), attack_args={"shift": s},
                            top_k=1, n_random=1, figures=False, batch_size=16) for s in (0.4, 0.2)]
    results = interpret_many(cfgs)
    (pair,) = results[-1].overlap
    assert pair["jaccard"] == 1.0 and pair["shared"] == "2"
    assert pair["k2_label_ari"] == pytest.approx(1.0)  # both split clean from adversarial


def test_cli(data_root, tmp_path):
    from typer.testing import CliRunner

    from robustbench_face.cli import app

    res = CliRunner().invoke(app, ["interpret", "--victim", "toy_blue", "--attack", "blue_box_test",
                                   "--dataset", f"manifest:image_size={SIZE},{SIZE}", "--data-root", str(data_root),
                                   "--out", str(tmp_path), "--k", "3", "--limit", "8", "--no-figures",
                                   "--n-random", "2"])
    assert res.exit_code == 0, res.output
    assert "top channels 2" in res.output
    with open(tmp_path / "interpret_clusters.csv") as f:
        assert {r["clustering"] for r in csv.DictReader(f)} == {"k2", "k3"}


# -- the feature_clip defense ------------------------------------------------------------------

def test_feature_clip_fits_on_the_train_split_and_caches(data_root, tmp_path, monkeypatch):
    import robustbench_face as rbf

    monkeypatch.setenv("RBF_CACHE", str(tmp_path))
    d = rbf.create_defense("feature_clip", dataset="manifest", data_root=str(data_root), channels="2")
    v = d(BlueNet())
    assert v.layer == "feat" and v.defenses[-1].startswith("feature_clip:") and v.differentiable
    (path,) = (tmp_path / "feature_clip").glob("*.npz")
    assert torch.isinf(v.low[0, [0, 1, 3, 4, 5]]).all() and torch.isfinite(v.low[0, 2])
    again = d(BlueNet())
    assert torch.equal(again.high, v.high)  # read back from the cache file
    x = torch.from_numpy(_image(3, np.random.default_rng(1))).permute(2, 0, 1)[None].float() / 255
    adv = BlueBox(shift=0.5)(None, x)
    plain, clipped, clean = BlueNet()(adv), v(adv), BlueNet()(x)
    assert (v(x) * clean).sum() > 0.99  # a clean image is (all but its 0.1% tails) inside the bounds
    assert (clipped * clean).sum() > (plain * clean).sum() + 0.1  # clipping pulls back toward clean


def test_feature_clip_in_a_run_is_adaptive_without_bpda(data_root, tmp_path, monkeypatch):
    from robustbench_face.runner import RunConfig, run as run_

    monkeypatch.setenv("RBF_CACHE", str(tmp_path))
    (row,) = run_(RunConfig(attack="blue_box_test", victim="toy_blue", dataset=f"manifest:image_size={SIZE},{SIZE}",
                            data_root=str(data_root), defenses=[f"feature_clip:dataset=manifest,data_root={data_root}"],
                            out=str(tmp_path / "r.csv"), batch_size=16))
    assert row["adaptive"] == "yes" and row["defense"].startswith("feature_clip:")
    assert "BPDA" not in row["attack_config"]


def test_feature_clip_bpda_passes_the_gradient_through_the_clamp(data_root, tmp_path, monkeypatch):
    import robustbench_face as rbf
    from robustbench_face.defenses._base import gradient_mode

    monkeypatch.setenv("RBF_CACHE", str(tmp_path))
    v = rbf.create_defense("feature_clip", dataset="manifest", data_root=str(data_root), channels="2")(BlueNet())
    x = BlueBox(shift=0.5)(None, torch.full((1, 3, SIZE, SIZE), 0.5))
    grads = {}
    for mode in ("naive", "bpda"):
        xi = x.clone().requires_grad_(True)
        with gradient_mode(mode):
            out = v(xi)
        out[0, 2 * 16 + 4 + 1].backward()  # channel 2's pooled cell (1, 1): inside the clamped torso box
        grads[mode] = xi.grad[0, 2].abs().sum().item()
    with gradient_mode("bpda"):
        same = v(x)
    torch.testing.assert_close(same, v(x))  # the forward value does not depend on the mode
    # clamped, channel 2 passes no gradient (what is left comes through the other blue
    # channels and the normalisation) unless straight through
    assert grads["bpda"] > 2 * grads["naive"]
