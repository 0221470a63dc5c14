"""Downloads for ``data_scripts/``: a progress bar, resume after an interruption, checksums.

A download goes to ``<target>.part``; an interrupted one is resumed from where it stopped (an
HTTP Range request) the next time, and one that is already complete (say the run was stopped
while it was being checked) is checked without fetching anything. A server that ignores the
Range request is read from the start again. Only a file whose size and SHA-256 match the pin is
renamed to its final name; a mismatch keeps the bytes as ``<target>.corrupt`` for inspection and
says so. A file already at its final name is checked too (its size, then its SHA-256, once: a
passed check is remembered in ``<target>.sha256`` until the file's size or time changes); one
that fails is kept as ``.corrupt`` and fetched afresh. When the server's file has another size
than the pin, nothing is fetched and the error names both sizes. A network failure is one
``ConnectionError`` that names the URL and where to place the file by hand; nothing retries.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
TIMEOUT = 30  # seconds without an answer (connecting or reading) before a download gives up


@dataclass(frozen=True)
class Remote:
    """A file to fetch: where from, how big, and its SHA-256 (``None`` when no pin is known)."""

    url: str
    size: int | None
    sha256: str | None

    @property
    def name(self) -> str:
        """The file name the URL ends with, under which the download is stored."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]


class SizeMismatch(ValueError):
    """The server's file has another size than the pin: fetching it again cannot help."""


def sha256_of(path, progress=False) -> str:
    """The file's SHA-256 as hex, read in chunks (a bar with ``progress``)."""
    from tqdm.auto import tqdm

    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                          desc=f"checking {path.name}",
                                          disable=not progress) as bar:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def _remembered(path: Path, sha256: str) -> bool:
    """Whether ``path`` passed the check against ``sha256`` and has not changed since."""
    try:
        return _sidecar(path).read_text().split() == [sha256, *_stamp(path).split()]
    except (OSError, ValueError):
        return False


def _remember(path: Path, sha256: str) -> None:
    with contextlib.suppress(OSError):  # a read-only folder: hashed again on the next run
        _sidecar(path).write_text(f"{sha256} {_stamp(path)}\n")


def _put_aside(path: Path) -> Path:
    corrupt = path.with_name(path.name.removesuffix(".part") + ".corrupt")
    path.replace(corrupt)
    _sidecar(path).unlink(missing_ok=True)
    return corrupt


def _problem(path: Path, remote: Remote, progress=False) -> str | None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"it has {size:,} bytes, expected {remote.size:,}"
    if remote.sha256 is not None and not _remembered(path, remote.sha256):
        digest = sha256_of(path, progress)
        if digest != remote.sha256:
            return f"its SHA-256 is {digest}, expected {remote.sha256}"
        _remember(path, remote.sha256)
    return None


def verify(path, remote: Remote, progress=False) -> None:
    """Raise ``ValueError`` (and keep the file as ``.corrupt``) unless size and hash match."""
    path = Path(path)
    if problem := _problem(path, remote, progress):
        corrupt = _put_aside(path)
        raise ValueError(
            f"{remote.name} is corrupt: {problem}. The bytes were kept as {corrupt}; run the "
            f"script again to download it afresh, and if the same mismatch comes back the file "
            f"at {remote.url} is no longer the pinned one (update the pin after checking it).")


def _place_by_hand(remote: Remote, target: Path) -> str:
    pins = [f"{remote.size:,} bytes" if remote.size is not None else "",
            f"SHA-256 {remote.sha256}" if remote.sha256 else ""]
    pinned = ", ".join(p for p in pins if p)
    return f"or fetch it another way and place it at {target}" + (f" ({pinned})" if pinned
                                                                    else "")


def _unreachable(remote: Remote, target: Path, reason) -> ConnectionError:
    return ConnectionError(
        f"cannot download {remote.url} ({reason}); check the network connection (or proxy) "
        f"and run the script again, {_place_by_hand(remote, target)}.")


def _size_mismatch(remote: Remote, server_size: int) -> SizeMismatch:
    return SizeMismatch(
        f"the server's {remote.name} has {server_size:,} bytes but the pin says "
        f"{remote.size:,} bytes: either the pin is wrong or the server changed the file "
        f"({remote.url}). Running the script again will not help; check the file's source and "
        f"correct the pin (size and SHA-256) in the script if the new file is the right one.")


def _content_range(headers) -> tuple[int | None, int | None]:
    """``Content-Range: bytes START-END/TOTAL`` (or ``bytes */TOTAL``) → (START, TOTAL)."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*",
                         headers.get("Content-Range", "") if headers else "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _open(remote: Remote, target: Path, have: int):
    """The server's answer for the bytes from ``have`` on: (response or None, its start, the
    server's whole size or None). ``None`` as response: the server has nothing past ``have``."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(remote.url, headers=headers),
                                          timeout=TIMEOUT)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == 416 and have:  # nothing to send from `have` on: how big is it?
            return None, have, _content_range(error.headers)[1]
        raise ConnectionError(
            f"the server answered HTTP {error.code} ({error.reason}) for {remote.url}; check "
            f"the URL, {_place_by_hand(remote, target)}.") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise _unreachable(remote, target, getattr(error, "reason", error)) from None
    start, total = _content_range(response.headers)
    if response.status != 206:  # no Range asked, or the server ignored it: the whole file
        start, total = 0, None
    elif start is None:  # a 206 without Content-Range: take it as the bytes asked for
        start = have
    length = response.headers.get("Content-Length")
    if total is None and length is not None and start is not None:
        total = start + int(length)
    if start != have and response.status == 206:
        response.close()
        raise ConnectionError(
            f"asked for {remote.url} from byte {have:,}, the server sent bytes from {start}; "
            f"delete {target}.part and run the script again to download from the start.")
    return response, start, total


def download(remote: Remote, folder, progress=True) -> Path:
    """Fetch ``remote`` into ``folder`` (resuming a ``.part`` file), verify it, return its path.
    A file already there is verified (its size and SHA-256, where pinned) and not fetched
    again; one that fails is kept as ``.corrupt`` and fetched afresh."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    partial = folder / f"{remote.name}.part"
    if target.exists():
        problem = _problem(target, remote, progress)
        if problem is None:
            return target
        corrupt = _put_aside(target)
        print(f"note: {target} is not the pinned file ({problem}); kept it as {corrupt} and "
              f"download it afresh.", file=sys.stderr)

    for _ in range(2):  # a second round only after a .part was put aside (it starts at 0)
        have = partial.stat().st_size if partial.exists() else 0
        if remote.size is not None and have > remote.size:
            corrupt = _put_aside(partial)
            print(f"note: {partial} has {have:,} bytes, more than the {remote.size:,} pinned; "
                  f"kept it as {corrupt} and download from the start.", file=sys.stderr)
            continue
        if remote.size is not None and have == remote.size:
            break  # complete already (stopped while being checked): check it, fetch nothing
        response, start, total = _open(remote, target, have)
        if total is not None and remote.size is not None and total != remote.size:
            if response is not None:
                response.close()
            raise _size_mismatch(remote, total)
        if response is None:  # HTTP 416: the server has nothing from byte `have` on
            if total == have:
                break  # the .part is complete: check it
            corrupt = _put_aside(partial)
            print(f"note: the server cannot resume {remote.name} from byte {have:,} (it has "
                  f"{'an unknown number of' if total is None else f'{total:,}'} bytes); kept "
                  f"{partial} as {corrupt} and download from the start.", file=sys.stderr)
            continue
        total = remote.size if remote.size is not None else total
        with response, open(partial, "ab" if start else "wb") as out, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=remote.name,
                disable=not progress) as bar:
            received = start
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    of = f" of {total:,}" if total is not None else ""
                    raise ConnectionError(
                        f"the download of {remote.name} stopped at {received:,}{of} bytes "
                        f"({error or type(error).__name__}); run the script again to resume "
                        f"it.") from None
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
        received = partial.stat().st_size
        if total is not None and received < total:
            raise ConnectionError(f"the download of {remote.name} stopped at {received:,} of "
                                  f"{total:,} bytes; run the script again to resume it.")
        break
    verify(partial, remote, progress)
    partial.replace(target)
    if _sidecar(partial).exists():  # the rename keeps size and time: the check stays valid
        _sidecar(partial).replace(_sidecar(target))
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
