"""Reading an image archive (a tar, possibly compressed) or an OCI layout directory into a
staging area, so that the format parsers can look members up by name.

A tar archive is read once, as a stream: every regular member is copied into the
staging area while it is hashed (and, for compressed layers, decompressed and hashed),
so the order of members does not matter and memory stays bounded.  Member names are
only ever looked up, never used as file-system paths.  A directory is read on demand,
and only at paths of the form ``blobs/<algorithm>/<hex>`` or a few fixed file names.

Everything here blocks; callers run it in a worker thread.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiopod.errors import InvalidArchive, LimitExceeded, UnsafeLayer
from aiopod.storage.compression import open_decompressed
from aiopod.storage.digest import split_digest
from aiopod.storage.ingest import StagedBlob, StagingArea
from aiopod.storage.tar_reader import TarReader
from aiopod.transports.archive_progress import ArchiveReport, counted
from aiopod.transports.jsonutil import parse_json_list, parse_json_object

__all__ = ("ArchiveLimits", "ArchiveSource", "DirectorySource", "TarSource", "open_source")

_FIXED_NAMES = frozenset({"oci-layout", "index.json", "manifest.json", "repositories"})


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Bounds on what an archive may contain (all configurable)."""

    max_members: int = 200_000
    max_blob_bytes: int = 64 << 30
    max_uncompressed_bytes: int = 256 << 30
    max_index_json: int = 4 << 20
    max_docker_manifest_json: int = 1 << 20
    max_manifest: int = 4 << 20
    max_config: int = 4 << 20
    max_link_hops: int = 16


class ArchiveSource:
    """Members of an archive or layout, staged and found by name."""

    def __init__(
        self, area: StagingArea, limits: ArchiveLimits, report: ArchiveReport | None = None
    ) -> None:
        self.area = area
        self.limits = limits
        self.report = report

    def has(self, name: str) -> bool:
        """Whether the archive holds a member called *name*."""
        raise NotImplementedError

    def get(self, name: str) -> StagedBlob:
        """The staged member *name*; :class:`InvalidArchive` when there is none."""
        raise NotImplementedError

    def get_blob(self, digest: str, size: int | None = None) -> StagedBlob:
        """The OCI layout blob for *digest*, checked against its digest and *size*."""
        try:
            algorithm, encoded = split_digest(digest)
        except ValueError:
            raise InvalidArchive(f"invalid digest {digest!r} in a descriptor") from None
        if algorithm != "sha256":
            raise InvalidArchive(f"unsupported digest algorithm in {digest}")
        blob = self.get(f"blobs/{algorithm}/{encoded}")
        if blob.digest != digest:
            raise InvalidArchive(f"blob {digest} has content with digest {blob.digest}")
        if size is not None and blob.size != size:
            raise InvalidArchive(f"blob {digest} is {blob.size} bytes, descriptor says {size}")
        return blob

    def read_bytes(self, blob: StagedBlob, *, what: str, max_size: int) -> bytes:
        """The content of a staged member, refusing anything larger than *max_size*."""
        if blob.size > max_size:
            raise LimitExceeded(f"{what} is {blob.size} bytes, more than the limit of {max_size}")
        return blob.path.read_bytes()

    def json_object(self, blob: StagedBlob, *, what: str, max_size: int) -> dict[str, Any]:
        """A staged member parsed as a strict JSON object."""
        data = self.read_bytes(blob, what=what, max_size=max_size)
        return parse_json_object(data, what=what, max_size=max_size)

    def json_list(self, blob: StagedBlob, *, what: str, max_size: int) -> list[Any]:
        """A staged member parsed as a strict JSON array."""
        data = self.read_bytes(blob, what=what, max_size=max_size)
        return parse_json_list(data, what=what, max_size=max_size)


class TarSource(ArchiveSource):
    """A tar archive (plain, gzip, zstd, …) staged in one streaming pass."""

    def __init__(
        self,
        area: StagingArea,
        limits: ArchiveLimits,
        path: Path,
        report: ArchiveReport | None = None,
    ) -> None:
        super().__init__(area, limits, report)
        self._members: dict[str, StagedBlob] = {}
        self._links: dict[str, str] = {}
        self._read(path)

    def _read(self, path: Path) -> None:
        count = 0
        try:
            limits = self.area.limits  # a compressed archive is held to the layers' ratio
            with (
                path.open("rb") as raw,
                open_decompressed(
                    counted(raw, str(path), os.fstat(raw.fileno()).st_size, self.report),
                    max_ratio=limits.max_compression_ratio,
                    ratio_after=limits.ratio_after_bytes,
                    what=f"archive {path}",
                ) as stream,
            ):
                reader = TarReader(stream)
                for member in reader:
                    count += 1
                    if count > self.limits.max_members:
                        raise LimitExceeded(
                            f"archive has more than {self.limits.max_members} members"
                        )
                    name = member.name.removeprefix("./")
                    if member.isfile():
                        self._members[name] = self.area.ingest(
                            reader.member_stream(member),
                            max_size=self.limits.max_blob_bytes,
                            max_uncompressed=self.limits.max_uncompressed_bytes,
                            expected_size=member.size,
                            what=f"{name} of {path}",
                        )
                    elif member.issym():
                        parent = posixpath.dirname(name)
                        self._links[name] = posixpath.join(parent, member.linkname)
                    elif member.islnk():
                        self._links[name] = member.linkname
                reader.drain()
        except UnsafeLayer as exc:
            raise InvalidArchive(f"{path} is not a readable tar archive: {exc}") from None

    def has(self, name: str) -> bool:
        try:
            self.get(name)
        except InvalidArchive:
            return False
        return True

    def get(self, name: str) -> StagedBlob:
        current = name.removeprefix("./")
        for _ in range(self.limits.max_link_hops):
            blob = self._members.get(current)
            if blob is not None:
                return blob
            target = self._links.get(current)
            if target is None:
                break
            normalised = posixpath.normpath(target)
            if normalised.startswith("../") or normalised == ".." or normalised.startswith("/"):
                break
            current = normalised
        raise InvalidArchive(f"archive has no member {name!r}")


class DirectorySource(ArchiveSource):
    """An OCI image layout directory, read on demand."""

    def __init__(
        self,
        area: StagingArea,
        limits: ArchiveLimits,
        path: Path,
        report: ArchiveReport | None = None,
    ) -> None:
        super().__init__(area, limits, report)
        self._root = path
        self._cache: dict[str, StagedBlob] = {}
        self._read = 0  # bytes of the blobs read so far

    def _path_for(self, name: str) -> Path | None:
        parts = name.split("/")
        if name in _FIXED_NAMES:
            return self._root / name
        if len(parts) == 3 and parts[0] == "blobs":
            try:
                split_digest(f"{parts[1]}:{parts[2]}")
            except ValueError:
                return None
            return self._root.joinpath(*parts)
        return None

    def has(self, name: str) -> bool:
        path = self._path_for(name)
        return path is not None and path.is_file() and not path.is_symlink()

    def get(self, name: str) -> StagedBlob:
        if name in self._cache:
            return self._cache[name]
        path = self._path_for(name)
        if path is None or path.is_symlink() or not path.is_file():
            raise InvalidArchive(f"OCI layout {self._root} has no file {name!r}")
        with path.open("rb") as raw:
            blob = self.area.ingest(
                counted(raw, str(self._root), None, self.report, self._read),
                max_size=self.limits.max_blob_bytes,
                max_uncompressed=self.limits.max_uncompressed_bytes,
                what=str(path),
            )
        self._read += blob.size
        self._cache[name] = blob
        return blob


def open_source(
    area: StagingArea, path: Path, limits: ArchiveLimits, report: ArchiveReport | None = None
) -> ArchiveSource:
    """Stage *path*: a directory is an OCI layout, a file is a tar archive; *report*
    receives how much has been read (``ArchiveRead``)."""
    if path.is_dir():
        return DirectorySource(area, limits, path, report)
    if not path.exists():
        raise InvalidArchive(f"{path}: no such file or directory")
    return TarSource(area, limits, path, report)
