"""An OCI image layout directory as a repository that images are pulled from and pushed
to, as skopeo's and podman's ``oci:PATH[:REFERENCE]`` transport does.

:class:`OCILayoutRepository` implements both
:class:`~aiopod.transports.registry.endpoints.ImageSource` and
:class:`~aiopod.transports.registry.endpoints.ImageDestination` on a directory holding
``oci-layout``, ``index.json`` and ``blobs/sha256/…``.  A *reference* inside it is the
``org.opencontainers.image.ref.name`` annotation of an ``index.json`` entry (a tag such as
``v1``; it may hold ``:`` and ``/``), or a ``sha256:`` digest of any blob it holds; the
empty reference names the layout's only image.

Reading checks what a transport must (``endpoints.py``): a manifest over 4 MiB is refused,
a blob never yields more than its descriptor's size, a manifest of a requested digest
hashes to it, and blob paths are only ever formed from validated digests.  Writing puts
each blob under a temporary name and renames it into place once its size and digest are
verified; ``index.json`` is replaced atomically.  Concurrent writers in one process are
serialised by a lock per repository object; a reader in another process sees either the
old or the new ``index.json``.

Every method may be cancelled; a cancelled write leaves at most a temporary file
(``blobs/sha256/.tmp-…``), never a blob under its digest that does not hash to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread

from aiopod._reference import normalize_local
from aiopod.errors import DigestMismatch, ImageNotKnown, InvalidArchive, LimitExceeded
from aiopod.storage.digest import sha256_digest, split_digest
from aiopod.storage.fsutil import atomic_write
from aiopod.storage.layout import INDEX_MEDIA_TYPE, LAYOUT_FILE_CONTENT, REF_NAME_ANNOTATION
from aiopod.transports import mediatypes as mt
from aiopod.transports.documents import check_descriptor
from aiopod.transports.jsonutil import MiB, parse_json_object
from aiopod.transports.registry.endpoints import BlobDescriptor, FetchedManifest

__all__ = ("OCILayoutRepository", "parse_oci_reference")

_MAX_INDEX = 4 * MiB
_MAX_MANIFEST = 4 * MiB
_CHUNK = 1 << 20


def parse_oci_reference(text: str) -> tuple[Path, str]:
    """Split ``PATH[:REFERENCE]`` (what follows ``oci:``) at its first ``:``, as
    containers/image does; the reference is ``""`` when there is none."""
    path, _, reference = text.partition(":")
    if not path:
        raise InvalidArchive(f"oci:{text}: no directory given (use oci:PATH[:REFERENCE])")
    return Path(path), reference


class OCILayoutRepository:
    """The OCI layout at *path* as an image source and destination.

    The directory need not exist for pushing: the first write creates it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = anyio.Lock()

    @property
    def name(self) -> str:
        """The name podman gives an image pulled from here: ``localhost/<path>`` (the
        directory's absolute path without its leading ``/``)."""
        absolute = os.path.abspath(self.path).lstrip("/")
        return normalize_local(f"localhost/{absolute}").name

    def __repr__(self) -> str:
        return f"OCILayoutRepository({str(self.path)!r})"

    # -- reading --------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        try:
            algorithm, encoded = split_digest(digest)
        except ValueError:
            raise InvalidArchive(f"invalid digest {digest!r}") from None
        return self.path / "blobs" / algorithm / encoded

    def _index(self) -> dict[str, Any]:
        try:
            with (self.path / "index.json").open("rb") as stream:
                data = stream.read(_MAX_INDEX + 1)
        except FileNotFoundError:
            raise InvalidArchive(f"{self.path} is not an OCI layout (no index.json)") from None
        return parse_json_object(data, what=f"{self.path}/index.json", max_size=_MAX_INDEX)

    def _entries(self, index: dict[str, Any]) -> list[dict[str, Any]]:
        manifests = index.get("manifests", [])
        if not isinstance(manifests, list):
            raise InvalidArchive(f"{self.path}/index.json has no manifests list")
        return [
            check_descriptor(m, f"{self.path}/index.json manifests[{i}]")
            for i, m in enumerate(manifests)
        ]

    def _find(self, reference: str) -> tuple[str, str | None, int | None]:
        """(digest, media type or None, size or None) of what *reference* names."""
        entries = self._entries(self._index())
        if reference.startswith("sha256:"):
            for entry in entries:
                if entry["digest"] == reference:
                    return reference, entry["mediaType"], entry["size"]
            return reference, None, None
        if not reference:
            if len(entries) != 1:
                raise ImageNotKnown(
                    f"oci:{self.path}",
                    f"{self.path} holds {len(entries)} images: name one (oci:PATH:REFERENCE)",
                )
            chosen = entries[0]
        else:
            named = [
                e
                for e in entries
                if isinstance(e.get("annotations"), dict)
                and e["annotations"].get(REF_NAME_ANNOTATION) == reference
            ]
            if not named:
                raise ImageNotKnown(
                    f"oci:{self.path}:{reference}",
                    f"no descriptor found for reference {reference!r} in {self.path}",
                )
            chosen = named[0]
        return chosen["digest"], chosen["mediaType"], chosen["size"]

    def _read_manifest(self, reference: str) -> FetchedManifest:
        digest, media_type, size = self._find(reference)
        path = self._blob_path(digest)
        try:
            with path.open("rb") as stream:
                data = stream.read(_MAX_MANIFEST + 1)
        except FileNotFoundError:
            raise ImageNotKnown(f"oci:{self.path}:{reference}", f"{path}: no such blob") from None
        if len(data) > _MAX_MANIFEST:
            raise LimitExceeded(f"manifest {digest} is larger than {_MAX_MANIFEST} bytes")
        if size is not None and len(data) != size:
            raise DigestMismatch(f"manifest {digest} is {len(data)} bytes, index says {size}")
        if reference.startswith("sha256:") and sha256_digest(data) != reference:
            raise DigestMismatch(f"blob {reference} has content with another digest")
        # A blob named by digest only has no listed type: the document's own decides.
        return FetchedManifest(data, media_type or "", sha256_digest(data))

    async def fetch_manifest(self, reference: str) -> FetchedManifest:
        """The manifest or index *reference* names (see the module's docstring).

        :raises ~aiopod.errors.ImageNotKnown: no entry has that reference.
        """
        return await anyio.to_thread.run_sync(self._read_manifest, reference)

    def open_blob(self, blob: BlobDescriptor) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's bytes in chunks of up to 1 MiB, read in worker threads; a blob file
        longer than ``blob.size`` is an error (:class:`~aiopod.errors.LimitExceeded`)."""
        return self._open_blob(blob)

    @asynccontextmanager
    async def _open_blob(self, blob: BlobDescriptor) -> AsyncIterator[AsyncIterator[bytes]]:
        path = self._blob_path(blob.digest)
        try:
            stream: BinaryIO = await anyio.to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:
            raise InvalidArchive(f"{self.path} has no blob {blob.digest}") from None

        async def chunks() -> AsyncIterator[bytes]:
            remaining = blob.size
            while True:
                chunk = await anyio.to_thread.run_sync(stream.read, min(_CHUNK, remaining + 1))
                if not chunk:
                    return
                if len(chunk) > remaining:
                    raise LimitExceeded(f"blob {blob.digest} is longer than {blob.size} bytes")
                remaining -= len(chunk)
                yield chunk

        try:
            yield chunks()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stream.close)

    # -- writing --------------------------------------------------------------------------

    def _prepare(self) -> None:
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        layout = self.path / "oci-layout"
        if not layout.exists():
            atomic_write(layout, LAYOUT_FILE_CONTENT)

    def _present(self, blob: BlobDescriptor) -> bool:
        try:
            return self._blob_path(blob.digest).stat().st_size == blob.size
        except FileNotFoundError:
            return False

    async def has_blob(self, blob: BlobDescriptor) -> bool:
        """Whether a blob file of the digest and size is there (its content is trusted, as
        skopeo trusts it)."""
        return await anyio.to_thread.run_sync(self._present, blob)

    async def mount_blob(self, blob: BlobDescriptor, from_repository: str) -> bool:
        """Always False: a layout directory is a repository of its own."""
        return False

    async def put_blob(self, blob: BlobDescriptor, chunks: AsyncIterable[bytes]) -> None:
        """Write the blob; it appears under its digest only once its size and digest are
        verified.

        :raises ~aiopod.errors.DigestMismatch: the bytes are not the blob's.
        """
        await anyio.to_thread.run_sync(self._prepare)
        target = self._blob_path(blob.digest)
        temporary = target.with_name(f".tmp-{secrets.token_hex(8)}")
        stream: BinaryIO = await anyio.to_thread.run_sync(temporary.open, "xb")
        digest = hashlib.sha256()
        size = 0

        def write(chunk: bytes) -> None:
            stream.write(chunk)
            digest.update(chunk)

        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > blob.size:
                        raise DigestMismatch(f"blob {blob.digest} is longer than {blob.size}")
                    await anyio.to_thread.run_sync(write, chunk)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(stream.close)
            actual = "sha256:" + digest.hexdigest()
            if size != blob.size or actual != blob.digest:
                raise DigestMismatch(
                    f"blob {blob.digest} was sent as {size} bytes with digest {actual}"
                )
            await anyio.to_thread.run_sync(os.replace, temporary, target)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: temporary.unlink(missing_ok=True))

    def _write_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        self._prepare()
        digest = sha256_digest(data)
        target = self._blob_path(digest)
        if not target.exists():
            atomic_write(target, data)
        try:
            index = self._index()
        except InvalidArchive:
            if (self.path / "index.json").exists():
                raise
            index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
        entries = [
            e
            for e in self._entries(index)
            if tag is None or (e.get("annotations") or {}).get(REF_NAME_ANNOTATION) != tag
        ]
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if tag is not None:
            entry["annotations"] = {REF_NAME_ANNOTATION: tag}
        if entry not in entries:
            entries.append(entry)
        index["manifests"] = entries
        atomic_write(self.path / "index.json", json.dumps(index).encode())
        return digest

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        """Store the manifest and list it in ``index.json`` (under *tag*, replacing any
        entry of that tag); returns its digest."""
        if media_type not in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
            raise InvalidArchive(f"cannot store a manifest of type {media_type!r}")
        async with self._lock:
            with anyio.CancelScope(shield=True):  # index.json is replaced once begun
                digest = await anyio.to_thread.run_sync(self._write_manifest, data, media_type, tag)
        return digest
