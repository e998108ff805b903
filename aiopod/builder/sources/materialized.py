"""Sources of a ``COPY``/``ADD`` that are not files of the build context.

Two kinds, both written as one file into a private directory of the build's staging area
and then copied exactly like a context file (same destination rules, ``--chown``,
``--chmod``, layer writer):

* ``ADD <url>`` (:func:`download`): fetched with httpx, following redirects; the file gets
  mode 0600 and the ``Last-Modified`` time of the response (else the Unix epoch), and it is
  never extracted, even when it is an archive (``hostile-input.md`` B6, CVE-2020-10696).
  Its name is the last component of the URL's path unless the destination names the
  file.  The history summary is buildah's: the hex sha256 of the one-entry tar stream
  buildah's downloader writes (Go's tar header with that name, mode, owner and time, the
  data, the end blocks), with no ``file:`` prefix (:func:`url_summary`).
* heredoc documents (:func:`write_heredoc`), ``COPY <<EOF /dest`` as Docker defines them:
  a file named after the delimiter, mode 0644, holding the body, in which variables are
  expanded unless the delimiter was quoted (quotes in the body are kept).

Cancellation: a cancelled download leaves a partial file in the staging area, which the
build removes with the area.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import urllib.parse
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from aiopod.builder.dockerfile.parser import Heredoc
from aiopod.builder.dockerfile.words import process_word
from aiopod.builder.layers.tar_header import go_tar_header
from aiopod.errors import BuildError, ExpansionError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ("Downloaded", "download", "is_url", "url_summary", "write_heredoc")

#: Mode of a downloaded file (buildah and Docker).
DOWNLOAD_MODE = 0o600
#: Mode of a heredoc document (BuildKit).
HEREDOC_MODE = 0o644
_CHUNK = 1 << 20


def is_url(text: str) -> bool:
    """Whether an ``ADD`` source is remote (``http://`` or ``https://``)."""
    return text.startswith(("http://", "https://"))


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A downloaded ``ADD`` source: the file ``directory/name`` and what its summary needs."""

    url: str
    directory: Path
    name: str
    """The file's name in ``directory``: :attr:`url_name`, or ``download`` when that is
    not a usable name (then the destination must name the file)."""
    url_name: str
    """The last component of the URL's path (Go's ``path.Base``: ``/`` or ``.`` for none)."""
    size: int
    mtime: int
    """Seconds since the epoch: ``Last-Modified``, or 0 without it."""


def _name_from_url(url: str) -> str:
    """The last component of the URL's (decoded) path, as Go's ``path.Base`` gives it."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return posixpath.basename(path.rstrip("/")) or ("/" if path else ".")


def _check_name(name: str, what: str) -> None:
    if name in ("", ".", "..", "/") or "/" in name or "\0" in name:
        raise BuildError(f"{what}: cannot name a file {name!r}; give the destination file name")


def _last_modified(url: str, value: str | None) -> int:
    if not value:
        return 0
    import email.utils  # only builds with remote sources pay for the import

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise BuildError(f"reading {url!r}: parsing last-modified time {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


async def download(url: str, directory: Path) -> Downloaded:
    """Fetch ``url`` into a new file of ``directory`` (which must exist and be private).

    Raises :class:`BuildError` for a URL without a usable file name, a connection or TLS
    failure, a response status outside 200-399 after redirects (buildah's ``invalid
    response status N``), or a malformed ``Last-Modified``.  Proxies from the environment
    apply (httpx's ``trust_env``).  Cancellable at every chunk.
    """
    import httpx  # only builds with remote sources pay for the import

    url_name = _name_from_url(url)
    name = "download" if url_name in ("", ".", "..", "/") else url_name
    target = directory / name
    timeout = httpx.Timeout(60.0, connect=30.0)
    size = 0
    try:
        async with (
            httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client,
            client.stream("GET", url) as response,
        ):
            if not 200 <= response.status_code < 400:
                raise BuildError(
                    f"reading {url!r}: invalid response status {response.status_code}"
                    f" ({response.reason_phrase})"
                )
            mtime = _last_modified(url, response.headers.get("last-modified"))
            async with await anyio.open_file(target, "wb") as out:
                async for chunk in response.aiter_bytes(_CHUNK):
                    size += len(chunk)
                    await out.write(chunk)
    except httpx.HTTPError as exc:
        raise BuildError(f"reading {url!r}: {exc}") from None
    except OSError as exc:
        raise BuildError(f"storing {url!r}: {exc.strerror or exc}") from None

    def finish() -> None:
        os.chmod(target, DOWNLOAD_MODE)
        os.utime(target, (mtime, mtime))

    await anyio.to_thread.run_sync(finish)
    return Downloaded(url, directory, name, url_name, size, mtime)


def url_summary(
    source: Downloaded, *, name: str, chown: tuple[int, int] | None, chmod: int | None
) -> str:
    """buildah's history summary of a downloaded source stored as ``name`` (the plan's
    rename, or the URL's base name).  Blocking: reads the file once."""
    _check_name(name, f"ADD {source.url}")
    uid, gid = chown if chown is not None else (0, 0)
    digest = hashlib.sha256(
        go_tar_header(
            name,
            typeflag=b"0",
            mode=chmod if chmod is not None else DOWNLOAD_MODE,
            uid=uid,
            gid=gid,
            size=source.size,
            mtime=source.mtime,
        )
    )
    with open(source.directory / source.name, "rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    digest.update(bytes(-source.size % 512) + bytes(1024))
    return digest.hexdigest()


def write_heredoc(
    heredoc: Heredoc, directory: Path, env: Mapping[str, str], *, mtime: int, keyword: str
) -> str:
    """Write ``heredoc`` as the file ``directory/<delimiter>`` (mode 0644, ``mtime``) and
    return its name.  Variables in the body are expanded when the delimiter was not
    quoted, BuildKit's way (quotes kept, escapes processed).  Blocking."""
    _check_name(heredoc.name, f"{keyword} <<{heredoc.name}")
    content = heredoc.content
    if heredoc.expand:
        try:
            content = process_word(content, env, raw_quotes=True)[0]
        except ExpansionError as exc:
            raise BuildError(f"{keyword} <<{heredoc.name}: {exc}") from None
    path = directory / heredoc.name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, HEREDOC_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(content.encode("utf-8", "surrogateescape"))
    os.chmod(path, HEREDOC_MODE)  # not narrowed by the umask
    os.utime(path, (mtime, mtime), follow_symlinks=False)
    return heredoc.name
