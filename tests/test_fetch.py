"""``rbf fetch`` against a loopback HTTP server: progress, sha256 refusal of a corrupted archive,
resume after an interrupted download (HTTP Range), and the extracted layout loads."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

import robustbench_face.fetch as F
from robustbench_face.errors import AssetError, ChecksumError

from conftest import asset, have_asset


class Server(http.server.ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) with Range support; ``cut`` makes the first full GET of
    a file stop after that many bytes (a dropped connection)."""

    def __init__(self, files: dict[str, bytes], cut: int | None = None):
        self.files, self.cut, self.requests = files, cut, []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        srv: Server = self.server  # type: ignore[assignment]
        data = srv.files.get(self.path.lstrip("/"))
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if data is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = data[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut is not None and not rng:
            self.wfile.write(body[:srv.cut])
            srv.cut = None
            self.connection.shutdown(2)  # drop the connection mid-body
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def orl_zip() -> bytes:
    if not have_asset("datasets", "orl_faces"):
        pytest.skip("ORL faces not in RBF_HOME (datasets/orl_faces)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the public archive's layout: s1/ .. s40/ at the top
        for s in ("s1", "s2", "s31"):
            for i in (1, 2, 3):
                z.write(asset("datasets", "orl_faces", s, f"{i}.pgm"), f"{s}/{i}.pgm")
        z.writestr("README", "ORL subset for the fetch test")
    return buf.getvalue()


def serve(files, cut=None):
    srv = Server(files, cut)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture
def card(monkeypatch, tmp_path, orl_zip):
    monkeypatch.setenv("RBF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RBF_CACHE", str(tmp_path / "cache"))
    info = {"folder": "orl_faces", "sha256": hashlib.sha256(orl_zip).hexdigest()}
    monkeypatch.setattr(F, "dataset_info", lambda name: info)
    return info


def test_fetch_resumes_checks_and_loads(card, orl_zip, tmp_path, capsys):
    srv = serve({"att_faces.zip": orl_zip}, cut=len(orl_zip) // 3)
    card["url"] = f"{srv.url}/att_faces.zip"
    with pytest.raises(AssetError, match="run the same command again to resume"):
        F.fetch("orl")
    part = tmp_path / "cache" / "downloads" / "orl-att_faces.zip.part"
    assert part.stat().st_size == len(orl_zip) // 3
    root = F.fetch("orl")
    assert srv.requests[-1] == ("/att_faces.zip", f"bytes={len(orl_zip) // 3}-")  # resumed
    assert root == tmp_path / "home" / "datasets" / "orl_faces" and (root / "s31" / "2.pgm").is_file()
    import robustbench_face as rbf

    ds = rbf.load_dataset("orl", data_root=str(root))
    assert len(ds.samples) == 9 and {s.split for s in ds.samples} == {"train", "holdout"}
    assert "%" in capsys.readouterr().err  # the progress bar


def test_fetch_refuses_a_corrupted_archive(card, orl_zip, tmp_path):
    bad = orl_zip[:-10] + b"x" * 10
    srv = serve({"att_faces.zip": bad})
    card["url"] = f"{srv.url}/att_faces.zip"
    with pytest.raises(ChecksumError, match="nothing was extracted"):
        F.fetch("orl")
    assert not (tmp_path / "home" / "datasets" / "orl_faces").exists()
    assert not list((tmp_path / "cache" / "downloads").iterdir())  # the bad download is gone


def test_by_request_dataset_names_its_page(monkeypatch):
    monkeypatch.setattr(F, "dataset_info", lambda name: {"folder": "cuhk01", "request": "http://x/y"})
    with pytest.raises(AssetError, match="request it at http://x/y"):
        F.fetch("cuhk01")


def test_extraction_refuses_paths_outside(tmp_path):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("../outside.txt", "no")
    from robustbench_face.errors import DataError

    with pytest.raises(DataError, match="outside the target"):
        F.extract(zpath, tmp_path / "t")
    assert not (tmp_path / "outside.txt").exists()


def test_single_top_folder_is_unwrapped(tmp_path):
    zpath = tmp_path / "lfw.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("lfw/Ann/Ann_0001.jpg", "x")
    F.extract(zpath, tmp_path / "lfw")
    assert (tmp_path / "lfw" / "Ann" / "Ann_0001.jpg").is_file()
