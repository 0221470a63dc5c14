"""Downloads for ``data_scripts/``: a progress bar, resume after an interruption, checksums.

A download goes to ``<target>.part``; an interrupted one is resumed from where it stopped (an
HTTP Range request) the next time. Only a file whose size and SHA-256 match is renamed to its
final name; a mismatch keeps the bytes as ``<target>.corrupt`` for inspection and says so.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    """A file to fetch: where from, how big, and its SHA-256 (``None`` when no pin is known)."""

    url: str
    size: int | None
    sha256: str | None

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def sha256_of(path, progress=False) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path, remote: Remote) -> None:
    """Raise ``ValueError`` (and keep the file as ``.corrupt``) unless size and hash match."""
    path = Path(path)
    size = path.stat().st_size
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"it has {size:,} bytes, expected {remote.size:,}"
    elif remote.sha256 is not None and (digest := sha256_of(path)) != remote.sha256:
        problem = f"its SHA-256 is {digest}, expected {remote.sha256}"
    if problem:
        corrupt = path.with_name(path.name.removesuffix(".part") + ".corrupt")
        path.replace(corrupt)
        raise ValueError(f"{remote.name} is corrupt: {problem}. The bytes were kept as "
                         f"{corrupt}; delete it and run the script again to download afresh.")


def download(remote: Remote, folder, progress=True) -> Path:
    """Fetch ``remote`` into ``folder`` (resuming a ``.part`` file), verify it, return its path.
    An already complete, verified file is not fetched again."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    if target.exists():
        return target
    partial = folder / f"{remote.name}.part"
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(remote.url, headers={"Range": f"bytes={have}-"} if have
                                     else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        if have and response.status != 206:  # the server ignored the Range: start over
            have = 0
        total = remote.size or (have + int(response.headers.get("Content-Length", 0)) or None)
        with open(partial, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=remote.name,
                disable=not progress) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))
    received = partial.stat().st_size
    if total is not None and received < total:
        raise ConnectionError(f"the download of {remote.name} stopped at {received:,} of "
                              f"{total:,} bytes; run the script again to resume it.")
    verify(partial, remote)
    partial.replace(target)
    return target


def extract(archive, folder) -> Path:
    """Unpack a .tar / .tar.gz / .zip into ``folder``; a broken archive is a ``ValueError``."""
    folder = Path(folder)
    try:
        shutil.unpack_archive(str(archive), str(folder))
    except (shutil.ReadError, EOFError, OSError) as error:
        raise ValueError(f"cannot unpack {archive}: {error}. Delete it and download again.") \
            from error
    return folder
