"""Asset resolution: home, cache, download with sha256 (loopback HTTP server), clear errors."""

import hashlib
import http.server
import threading
from functools import partial

import pytest

from robustbench_face.assets import resolve
from robustbench_face.errors import AssetError, ChecksumError

PAYLOAD = b"not really weights\n" * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def homes(tmp_path, monkeypatch):
    home, cache = tmp_path / "home", tmp_path / "cache"
    (home / "weights").mkdir(parents=True)
    monkeypatch.setenv("RBF_HOME", str(home))
    monkeypatch.setenv("RBF_CACHE", str(cache))
    return home, cache


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    (root / "w.bin").write_bytes(PAYLOAD)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_found_in_home(homes):
    home, _ = homes
    (home / "weights" / "w.bin").write_bytes(PAYLOAD)
    assert resolve("w.bin", SHA) == home / "weights" / "w.bin"


def test_cache_searched_after_home(homes):
    _, cache = homes
    (cache / "weights").mkdir(parents=True)
    (cache / "weights" / "w.bin").write_bytes(PAYLOAD)
    assert resolve("w.bin", SHA) == cache / "weights" / "w.bin"


def test_download_into_cache_with_checksum(homes, server):
    home, cache = homes
    p = resolve("w.bin", SHA, f"{server}/w.bin")
    assert p == cache / "weights" / "w.bin" and p.read_bytes() == PAYLOAD
    assert not (home / "weights" / "w.bin").exists()  # the home may be read-only


def test_download_checksum_mismatch_is_removed(homes, server):
    _, cache = homes
    with pytest.raises(ChecksumError, match="expected sha256 0+"):
        resolve("w.bin", "0" * 64, f"{server}/w.bin")
    assert not (cache / "weights" / "w.bin").exists()


def test_checksum_mismatch_in_home_is_not_used(homes):
    home, _ = homes
    (home / "weights" / "w.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match=r"w\.bin.*expected sha256 " + SHA):
        resolve("w.bin", SHA)


def test_missing_asset_names_file_sha_and_place(homes, server):
    home, _ = homes
    with pytest.raises(AssetError) as exc:
        resolve("absent.bin", SHA, f"{server}/absent.bin")
    msg = str(exc.value)
    assert "absent.bin" in msg and SHA in msg and str(home / "weights") in msg
