"""Fetch an archive: resumable HTTP download into ``<name>.part`` (HTTP Range), checksum, then rename.

torchvision's ``download_url`` restarts from zero after an interruption, which on a 2 GB archive over a
slow line may never finish, so the transfer itself lives here (requests + tqdm)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from hummingbird.datasets.prepare.archives import Archive
from hummingbird.errors import DownloadError, DownloadUnavailableError, option

LOOKUP_TIMEOUT_S = 1.5  # a name server that does not answer (offline) is reported at once
CONNECT_TIMEOUT_S = 3.0  # and so is a host that does not answer
READ_TIMEOUT_S = 60.0
ATTEMPTS_WITHOUT_PROGRESS = 3  # attempts that add no byte before giving up (attempts that add bytes are free)
CHUNK = 1 << 20


def archive_url(archive: Archive, mirror: str | None = None) -> str:
    """The archive's URL, or the same path on ``mirror`` (a base URL replacing the official host)."""
    if not mirror:
        return archive.url
    parts = urlsplit(archive.url)
    return mirror.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def file_digest(path: Path, algorithm: str, progress: bool = True) -> str:
    """Hex digest of a file, read in 1 MiB chunks with a progress bar."""
    from tqdm.auto import tqdm

    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=f"{algorithm} {path.name}", disable=not progress) as bar:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify(path: Path, archive: Archive, progress: bool = True) -> None:
    """Refuse ``path`` unless it has ``archive``'s checksum (archives without one are not checked here)."""
    if archive.checksum is None:
        return
    found = file_digest(path, archive.algorithm, progress)
    if found != archive.digest:
        raise DownloadError(f"{path}: corrupted or wrong file for {archive.name}: {archive.algorithm} is {found}, "
                            f"expected {archive.digest} ({archive.checksum_source})")


def fetch(archive: Archive, folder: Path, mirror: str | None = None, progress: bool = True) -> Path:
    """``folder/<archive name>``, downloaded unless already there and verified. An interrupted transfer
    continues from ``<name>.part`` (in this run, or the next one); a download whose checksum is wrong is
    deleted and refused."""
    target = folder / archive.name
    if target.is_file():
        verify(target, archive, progress)
        return target
    url = archive_url(archive, mirror)
    if urlsplit(url).scheme == "file":  # a mirror on this machine: its file is read where it is
        return local_mirror_file(url, archive, target, progress)
    part = folder / f"{archive.name}.part"
    _download(url, part, archive, target, progress)
    try:
        verify(part, archive, progress)
    except DownloadError:
        part.unlink()
        raise DownloadError(f"{url}: downloaded {archive.name} is corrupted ({archive.algorithm} differs from "
                            f"{archive.digest}, {archive.checksum_source}); deleted it, run again to retry") from None
    os.replace(part, target)
    return target


def local_mirror_file(url: str, archive: Archive, target: Path, progress: bool = True) -> Path:
    """The file of a ``file://`` mirror URL, verified (a wrong file is refused and kept: it is the user's)."""
    from urllib.request import url2pathname

    parts = urlsplit(url)
    path = Path(url2pathname(parts.path))
    if parts.netloc not in ("", "localhost"):
        raise DownloadError(f"{url}: a file:// mirror must be on this machine (file:///path), not on {parts.netloc}")
    if not path.is_file():
        raise DownloadError(_offline_message(url, archive, target, f"{path} not found in the local mirror"))
    verify(path, archive, progress)
    return path


def _offline_message(url: str, archive: Archive, target: Path, reason: str) -> str:
    return (f"cannot download {archive.name} from {url} ({reason}); download it yourself "
            f"({archive.size}) and put it at {target}, or pass {option('from_archive', 'PATH', raw=True)} or {option('mirror', 'URL', raw=True)}")


def _download(url: str, part: Path, archive: Archive, target: Path, progress: bool) -> None:
    """Append to ``part`` until the server's full length is there; retries resume with a Range request."""
    import requests
    from tqdm.auto import tqdm

    stalled = 0
    while True:
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            if not requests.utils.get_environ_proxies(url):  # (through a proxy, the proxy looks the name up)
                _look_up(urlsplit(url).hostname or "", LOOKUP_TIMEOUT_S)
            response = requests.get(url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except (requests.RequestException, OSError) as exc:  # refused, no route, name not resolved, no answer
            kept = f"; {offset:,} bytes kept in {part} to resume" if offset else ""
            reason = _reason(exc)
            raise DownloadUnavailableError(_offline_message(url, archive, target, reason) + kept, reason) from None
        with response:
            if response.status_code == 416 and offset:  # nothing after offset: the part is complete
                return
            if response.status_code not in (200, 206):
                reason = f"HTTP {response.status_code} {response.reason}"
                raise DownloadUnavailableError(_offline_message(url, archive, target, reason), reason)
            if response.status_code == 200:
                offset = 0  # the server ignored the Range: start again
            total = _total_length(response, offset)
            response.raw.enforce_content_length = False  # keep the bytes of a cut transfer; the size is checked below
            try:
                part.parent.mkdir(parents=True, exist_ok=True)
                with open(part, "ab" if offset else "wb") as out, \
                        tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=f"download {archive.name}", disable=not progress) as bar:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
                reason = None
            except requests.RequestException as exc:  # connection closed or stalled mid-stream
                reason = _reason(exc)
        size = part.stat().st_size
        if reason is None and (total is None or size >= total):
            return
        reason = reason or f"connection closed after {size:,} of {total:,} bytes"
        stalled = 0 if size > offset else stalled + 1
        if stalled >= ATTEMPTS_WITHOUT_PROGRESS:
            raise DownloadError(f"{url}: download of {archive.name} failed ({reason}); {size:,} bytes kept in "
                                f"{part}, run again to resume")


def _look_up(host: str, timeout: float) -> None:
    """Resolve ``host`` within ``timeout`` seconds (the system's own lookup may wait far longer for a name
    server that is out of reach); :class:`OSError` if it fails or takes longer."""
    import socket
    import threading

    failed: list[OSError] = []

    def look() -> None:
        try:
            socket.getaddrinfo(host, None)
        except OSError as exc:
            failed.append(exc)

    lookup = threading.Thread(target=look, daemon=True)
    lookup.start()
    lookup.join(timeout)
    if lookup.is_alive():
        raise OSError(f"no answer from the name server for {host} within {timeout:g} s")
    if failed:
        raise OSError(f"cannot resolve {host}: {failed[0]}")


def _total_length(response, offset: int) -> int | None:
    """The full size of the file: from ``Content-Range`` (``bytes a-b/total``) or offset + ``Content-Length``."""
    ranged = response.headers.get("Content-Range", "")
    if "/" in ranged and ranged.rsplit("/", 1)[1].isdigit():
        return int(ranged.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None and length.isdigit() else None


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, in a few words."""
    inner = exc
    while inner.__context__ is not None:
        inner = inner.__context__
    return (str(inner) or type(inner).__name__)[:160]
