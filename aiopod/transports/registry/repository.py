"""A repository on a registry (``HOST/NAME``) as an image source and destination.

:class:`RegistryRepository` implements :class:`~.endpoints.ImageSource` and
:class:`~.endpoints.ImageDestination` over the distribution API, on a
:class:`~.client.RegistryClient`; :func:`open_repository` makes one from a name and
the options of a pull or push (:class:`RegistryOptions`).

What it checks (the transport's share; the puller checks the content):

* every digest it is given is ``sha256:``/``sha512:`` with lower-case hex, before it is
  put in a URL; a tag matches the tag grammar;
* a manifest is at most 4 MiB; fetched by digest it must hash to that digest; a
  ``Docker-Content-Digest`` header that disagrees with the bytes is an error; Docker
  schema 1 is refused;
* a blob never yields more than its descriptor's size (a longer stream is cut at
  ``size + 1`` bytes and refused) and must yield exactly that many;
* a download broken off mid-blob is resumed with ``Range: bytes=N-`` only when the answer
  is a ``206`` whose ``Content-Range`` starts exactly at ``N`` (and ends at the blob's
  end); any other answer fails the download (nothing is spliced), after at most
  ``retries`` reconnections, each after some progress (1 MiB) except the first;
* layer ``urls`` are never fetched: blobs come from the registry only.

Errors: :class:`~aiopod.errors.ManifestUnknown` (404 on a manifest),
:class:`~aiopod.errors.AuthenticationFailed` (401/403),
:class:`~aiopod.errors.RegistryRequestFailed` (other answers),
:class:`~aiopod.errors.RegistryUnreachable`, :class:`~aiopod.errors.DigestMismatch`
(digests and sizes), :class:`~aiopod.errors.LimitExceeded` (sizes over a cap),
:class:`~aiopod.errors.UnsupportedManifest` (schema 1), with podman's messages
(``reading manifest latest in HOST/NAME: manifest unknown: manifest unknown``).  A pull
puts podman's ``initializing source docker://REF: `` before the first manifest's error
with :func:`~.client.with_context`.

Cancellation: every call may be cancelled.  A cancelled or failed upload is deleted on
the registry (best effort, shielded, a few seconds at most), so nothing half-written is
left that a later push would trust; a registry discards unfinished uploads anyway.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import httpx

from aiopod._reference import Reference, normalize_docker
from aiopod.errors import (
    AuthenticationFailed,
    DigestMismatch,
    InvalidReference,
    LimitExceeded,
    ManifestUnknown,
    RegistryError,
    RegistryRequestFailed,
    UnsupportedManifest,
)
from aiopod.storage.digest import is_digest, split_digest
from aiopod.transports.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from aiopod.transports.registry.client import RegistryClient
from aiopod.transports.registry.credentials import auth_files, find_credentials
from aiopod.transports.registry.endpoints import BlobDescriptor, FetchedManifest
from aiopod.transports.registry.responses import MAX_MANIFEST_SIZE, error_body, read_limited
from aiopod.transports.registry.target import RegistryOptions

__all__ = (
    "MANIFEST_ACCEPT",
    "SCHEMA1_TYPES",
    "RegistryOptions",
    "RegistryRepository",
    "open_repository",
)

#: The manifest types a pull asks for, in order of preference.
MANIFEST_ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
#: Docker's schema 1, which aiopod does not pull.
SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
#: Reconnect mid-blob only after this much progress since the last reconnection.
_RESUME_PROGRESS = 1 << 20
#: How long the deletion of an abandoned upload may take.
_CLEANUP_TIMEOUT = 5.0


def _check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise DigestMismatch(f"invalid digest {digest!r}: expected sha256: or sha512: and hex")
    return digest


def _check_reference(reference: str) -> str:
    if ":" in reference:
        return _check_digest(reference)
    if _TAG.fullmatch(reference) is None:
        raise InvalidReference(f"invalid tag {reference!r}", text=reference)
    return reference


def _hash(algorithm: str, data: bytes) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _guess_media_type(data: bytes) -> str:
    """The media type a manifest's bytes say they are (for a registry that sends none,
    or a generic one); ``""`` when they do not say."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    if not isinstance(document, dict):
        return ""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if document.get("schemaVersion") == 1:
        return "application/vnd.docker.distribution.manifest.v1+json"
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document or "layers" in document:
        return OCI_MANIFEST
    return ""


def _content_range(value: str | None) -> tuple[int, int | None, int | None] | None:
    """``bytes START-END/TOTAL`` (TOTAL may be ``*``) as numbers, or ``None``."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if match is None:
        return None
    total = match.group(3)
    return int(match.group(1)), int(match.group(2)), None if total == "*" else int(total)


class _BlobStream:
    """The chunks of one blob download, resumed by ``Range`` as the module says."""

    def __init__(self, repository: RegistryRepository, blob: BlobDescriptor) -> None:
        self._repository = repository
        self._blob = blob
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._offset = 0
        self._reconnects = 0
        self._resumed_at = 0
        self._done = False

    def __aiter__(self) -> _BlobStream:
        return self

    async def _open(self) -> None:
        repository, blob = self._repository, self._blob
        headers = {"range": f"bytes={self._offset}-"} if self._offset else {}
        response = await repository.client.request(
            "GET", repository.blob_path(blob.digest), scopes=repository.scopes, headers=headers
        )
        what = f"reading blob {blob.digest}"
        if self._offset == 0:
            if response.status_code != 200:
                raise await repository.error(response, f"{what}: fetching blob")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > blob.size:
                await response.aclose()
                raise DigestMismatch(
                    f"{what}: the registry sends {declared} bytes for a blob of {blob.size}"
                )
        else:
            expected = (self._offset, blob.size - 1, blob.size)
            found = _content_range(response.headers.get("content-range"))
            if (
                response.status_code != 206
                or found is None
                or found[:2] != expected[:2]
                or found[2] not in (None, blob.size)
            ):
                status = response.status_code
                await response.aclose()
                raise RegistryRequestFailed(
                    f"{what}: resuming at byte {self._offset}: the registry answered "
                    f"{status} with Content-Range {response.headers.get('content-range')!r} "
                    f"instead of 206 from byte {self._offset}; the download is not resumed",
                    status=status,
                )
        self._response = response
        self._chunks = response.aiter_raw()

    async def _reconnect(self, error: httpx.TransportError) -> None:
        await self.aclose()
        progress = self._offset - self._resumed_at
        policy = self._repository.client.retry
        if self._reconnects >= policy.retries or (
            self._reconnects > 0 and progress < _RESUME_PROGRESS
        ):
            raise RegistryRequestFailed(
                f"reading blob {self._blob.digest}: the connection broke at byte "
                f"{self._offset} of {self._blob.size} ({error or type(error).__name__})"
            ) from error
        self._reconnects += 1
        self._resumed_at = self._offset
        await anyio.sleep(policy.wait(1))

    async def __anext__(self) -> bytes:
        blob = self._blob
        while not self._done:
            if self._chunks is None:
                await self._open()
            assert self._chunks is not None
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                self._done = True
                await self.aclose()
                break
            except httpx.TransportError as exc:
                if self._offset == blob.size:
                    self._done = True
                    break
                await self._reconnect(exc)
                continue
            if self._offset + len(chunk) > blob.size:
                await self.aclose()
                raise DigestMismatch(
                    f"reading blob {blob.digest}: the registry sent more than its size, "
                    f"{blob.size} bytes"
                )
            self._offset += len(chunk)
            if chunk:
                return chunk
        if self._offset != blob.size:
            raise DigestMismatch(
                f"reading blob {blob.digest}: the registry sent {self._offset} bytes of {blob.size}"
            )
        raise StopAsyncIteration

    async def aclose(self) -> None:
        response, self._response, self._chunks = self._response, None, None
        if response is not None:
            await response.aclose()


class RegistryRepository:
    """``HOST/NAME`` on a registry, as an image source and destination (see the module).

    :param client: the registry's client (shared by repositories of one registry with
        the same credentials).
    :param path: the repository's path on the registry (``team/app``).
    :param push: whether tokens are asked for pushing too (``pull,push``).
    :param chunk_size: upload blobs in ``PATCH`` chunks of this many bytes; ``None``
        uploads each blob in one ``PUT`` (streamed, monolithic).
    """

    def __init__(
        self,
        client: RegistryClient,
        path: str,
        *,
        push: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        if chunk_size is not None and chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.client = client
        self.path = path
        self.chunk_size = chunk_size
        self.scopes: tuple[str, ...] = (f"repository:{path}:{'pull,push' if push else 'pull'}",)

    def __repr__(self) -> str:
        return f"RegistryRepository({self.name!r})"

    @property
    def name(self) -> str:
        """The repository as podman names it (``registry.example:5000/team/app``)."""
        return f"{self.client.registry}/{self.path}"

    def blob_path(self, digest: str) -> str:
        return f"/v2/{self.path}/blobs/{_check_digest(digest)}"

    def _manifest_path(self, reference: str) -> str:
        return f"/v2/{self.path}/manifests/{_check_reference(reference)}"

    async def error(self, response: httpx.Response, what: str) -> RegistryError | DigestMismatch:
        """The error for an unexpected answer to *what* (closes the response)."""
        problem = await error_body(response)
        text = f"{what}: {problem.text}"
        if problem.status in (401, 403):
            return AuthenticationFailed(text)
        if problem.status == 400 and "DIGEST_INVALID" in problem.codes:
            return DigestMismatch(text)
        return RegistryRequestFailed(text, status=problem.status)

    # -- source ------------------------------------------------------------------------------

    async def fetch_manifest(self, reference: str) -> FetchedManifest:
        """The manifest or index *reference* (a tag or digest) names; see the module.

        :raises ~aiopod.errors.ManifestUnknown: the registry has no such manifest.
        """
        path = self._manifest_path(reference)
        what = f"reading manifest {reference} in {self.name}"
        response = await self.client.request(
            "GET", path, scopes=self.scopes, headers={"accept": ", ".join(MANIFEST_ACCEPT)}
        )
        if response.status_code == 404:
            problem = await error_body(response)
            separator = "@" if ":" in reference else ":"
            raise ManifestUnknown(f"{self.name}{separator}{reference}", f"{what}: {problem.text}")
        if response.status_code != 200:
            raise await self.error(response, what)
        header_digest = response.headers.get("docker-content-digest", "").strip()
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        data = await read_limited(response, MAX_MANIFEST_SIZE, f"{what}: the manifest")
        media_type = content_type
        if media_type not in MANIFEST_ACCEPT:
            media_type = _guess_media_type(data) or content_type
        if media_type in SCHEMA1_TYPES:
            raise UnsupportedManifest(
                f"{what}: unsupported manifest type {media_type}: Docker schema 1 images "
                "are not supported"
            )
        if ":" in reference:
            algorithm, _ = split_digest(reference)
            actual = _hash(algorithm, data)
            if actual != reference:
                raise DigestMismatch(f"{what}: the manifest's digest is {actual}")
        if header_digest and is_digest(header_digest):
            algorithm, _ = split_digest(header_digest)
            if _hash(algorithm, data) != header_digest:
                raise DigestMismatch(
                    f"{what}: Docker-Content-Digest {header_digest} does not match the "
                    f"manifest's digest {_hash(algorithm, data)}"
                )
        return FetchedManifest(data, media_type, _hash("sha256", data))

    async def manifest_digest(self, reference: str) -> str | None:
        """The digest the registry gives for *reference* (``HEAD``), without fetching the
        manifest: ``None`` when it has none or does not say (then fetch it).  A pull
        with ``policy="newer"`` compares it with the stored image's digest.

        :raises ~aiopod.errors.ManifestUnknown: the registry has no such manifest.
        """
        path = self._manifest_path(reference)
        response = await self.client.request(
            "HEAD", path, scopes=self.scopes, headers={"accept": ", ".join(MANIFEST_ACCEPT)}
        )
        await response.aclose()
        what = f"reading manifest {reference} in {self.name}"
        if response.status_code == 404:
            raise ManifestUnknown(f"{self.name}:{reference}", f"{what}: manifest unknown")
        if response.status_code != 200:
            raise await self.error(response, what)
        digest = response.headers.get("docker-content-digest", "").strip()
        return digest if is_digest(digest) else None

    def open_blob(self, blob: BlobDescriptor) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The blob's bytes as chunks, from the registry only (its ``urls`` are never
        fetched); see the module for the checks and the resumption rule."""
        _check_digest(blob.digest)
        return self._open_blob(blob)

    @asynccontextmanager
    async def _open_blob(self, blob: BlobDescriptor) -> AsyncIterator[AsyncIterator[bytes]]:
        stream = _BlobStream(self, blob)
        try:
            yield stream
        finally:
            await stream.aclose()

    # -- destination -------------------------------------------------------------------------

    async def has_blob(self, blob: BlobDescriptor) -> bool:
        """Whether the repository holds the blob (``HEAD``); a blob it holds with
        another size is an error."""
        response = await self.client.request(
            "HEAD", self.blob_path(blob.digest), scopes=self.scopes
        )
        await response.aclose()
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise await self.error(
                response, f"checking whether a blob {blob.digest} exists in {self.name}"
            )
        size = response.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) != blob.size:
            raise DigestMismatch(
                f"the registry holds blob {blob.digest} with {size} bytes, not {blob.size}"
            )
        return True

    async def mount_blob(self, blob: BlobDescriptor, from_repository: str) -> bool:
        """Link the blob from *from_repository* (a path on this registry, or a full name
        on it); whether the registry did (``201``).  A registry that opens an upload
        instead (``202``) has that upload cancelled, and ``False`` is returned."""
        source = from_repository
        if source.startswith(f"{self.client.registry}/"):
            source = source[len(self.client.registry) + 1 :]
        scopes = (*self.scopes, f"repository:{source}:pull")
        params = {"mount": _check_digest(blob.digest), "from": source}
        path = f"/v2/{self.path}/blobs/uploads/"
        response = await self.client.request("POST", path, scopes=scopes, params=params)
        if response.status_code == 201:
            await response.aclose()
            return True
        if response.status_code == 202:
            await response.aclose()
            location = response.headers.get("location")
            if location:
                await self._cancel_upload(self.client.url(location), scopes)
            return False
        raise await self.error(response, f"mounting blob {blob.digest} from {source}")

    async def _start_upload(self) -> httpx.URL:
        response = await self.client.request(
            "POST", f"/v2/{self.path}/blobs/uploads/", scopes=self.scopes
        )
        if response.status_code != 202 or "location" not in response.headers:
            raise await self.error(response, "initiating layer upload to " + self.name)
        await response.aclose()
        return self.client.url(response.headers["location"], response.request.url)

    async def _cancel_upload(self, location: httpx.URL, scopes: Sequence[str]) -> None:
        with anyio.move_on_after(_CLEANUP_TIMEOUT, shield=True):
            try:
                response = await self.client.request("DELETE", location, scopes=scopes, retry=False)
                await response.aclose()
            except (RegistryError, httpx.HTTPError):
                pass  # the registry discards abandoned uploads anyway

    async def put_blob(self, blob: BlobDescriptor, chunks: AsyncIterable[bytes]) -> None:
        """Upload the blob: ``POST`` an upload, then one streamed ``PUT ?digest=``
        (monolithic) or ``PATCH`` chunks of ``chunk_size`` and an empty ``PUT
        ?digest=``, each following the last answer's ``Location``.  The registry
        verifies the digest; *chunks* must hold exactly ``blob.size`` bytes.

        The body is sent once (a failure while sending it is not retried: the caller
        may put the blob again).
        """
        _check_digest(blob.digest)
        location = await self._start_upload()
        try:
            if self.chunk_size is None:
                final = await self._request_upload(
                    "PUT",
                    location.copy_merge_params({"digest": blob.digest}),
                    content=_exactly(blob, chunks),
                    length=blob.size,
                    expect=201,
                )
            else:
                async for start, piece in _pieces(blob, chunks, self.chunk_size):
                    location = await self._patch(location, start, piece)
                final = await self._request_upload(
                    "PUT", location.copy_merge_params({"digest": blob.digest}), expect=201
                )
        except BaseException:
            await self._cancel_upload(location, self.scopes)
            raise
        reported = final.headers.get("docker-content-digest", "").strip()
        if reported and reported != blob.digest:
            raise DigestMismatch(
                f"uploading blob {blob.digest}: the registry stored it as {reported}"
            )

    async def _patch(self, location: httpx.URL, start: int, piece: bytes) -> httpx.URL:
        response = await self._request_upload(
            "PATCH",
            location,
            content=piece,
            length=len(piece),
            expect=202,
            extra={"content-range": f"{start}-{start + len(piece) - 1}"},
        )
        return self.client.url(response.headers.get("location") or str(location), location)

    async def _request_upload(
        self,
        method: str,
        url: httpx.URL,
        *,
        content: bytes | AsyncIterable[bytes] | None = None,
        length: int = 0,
        expect: int,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {
            "content-type": "application/octet-stream",
            "content-length": str(length),
            **(extra or {}),
        }
        response = await self.client.request(
            method, url, scopes=self.scopes, headers=headers, content=content, retry=False
        )
        if response.status_code != expect:
            raise await self.error(response, f"uploading layer to {self.name}")
        await response.aclose()
        return response

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        """Store a manifest under *tag* (or by its digest only); returns its sha256
        digest, checked against the registry's ``Docker-Content-Digest`` when it sends
        one.

        :raises ~aiopod.errors.LimitExceeded: the manifest is larger than 4 MiB.
        """
        if len(data) > MAX_MANIFEST_SIZE:
            raise LimitExceeded(f"the manifest is larger than {MAX_MANIFEST_SIZE} bytes")
        digest = _hash("sha256", data)
        reference = tag if tag is not None else digest
        response = await self.client.request(
            "PUT",
            self._manifest_path(reference),
            scopes=self.scopes,
            headers={"content-type": media_type},
            content=data,
        )
        if response.status_code not in (200, 201):
            raise await self.error(response, f"writing manifest {reference} to {self.name}")
        await response.aclose()
        reported = response.headers.get("docker-content-digest", "").strip()
        if reported and reported != digest:
            raise DigestMismatch(
                f"writing manifest {reference} to {self.name}: the registry reports digest "
                f"{reported}, not {digest}"
            )
        return digest


async def _exactly(blob: BlobDescriptor, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        if sent > blob.size:
            raise DigestMismatch(f"blob {blob.digest} has more than its size, {blob.size} bytes")
        yield chunk
    if sent != blob.size:
        raise DigestMismatch(f"blob {blob.digest} has {sent} bytes, not {blob.size}")


async def _pieces(
    blob: BlobDescriptor, chunks: AsyncIterable[bytes], size: int
) -> AsyncIterator[tuple[int, bytes]]:
    buffer = bytearray()
    start = 0
    async for chunk in _exactly(blob, chunks):
        buffer += chunk
        while len(buffer) >= size:
            yield start, bytes(buffer[:size])
            del buffer[:size]
            start += size
    if buffer:
        yield start, bytes(buffer)


async def open_repository(
    http: httpx.AsyncClient,
    name: str | Reference,
    options: RegistryOptions | None = None,
    *,
    insecure: bool = False,
    push: bool = False,
    primary_registry: str | None = None,
    chunk_size: int | None = None,
) -> RegistryRepository:
    """The repository *name* (``HOST/PATH``, tag and digest ignored) on its registry.

    *insecure* is what ``registries.conf`` says of the registry (a
    :class:`~.config.PullSource`'s or :class:`~.config.PushTarget`'s ``insecure``);
    ``options.tls_verify`` overrides it.  Credentials are ``options.credentials`` when
    the registry is *primary_registry* (default: this registry; a mirror on another
    host never gets them), else the auth files' entry for ``HOST/PATH`` (read in a
    worker thread).  Nothing is sent until the first request.

    :raises ~aiopod.errors.InvalidReference: *name* is malformed or has no registry.
    :raises ~aiopod.errors.ConfigurationError: an auth file is malformed.
    """
    options = options or RegistryOptions()
    ref = name if isinstance(name, Reference) else normalize_docker(name)
    if not ref.domain:
        raise InvalidReference(f"{ref}: the name has no registry", text=str(ref))
    credentials = options.credentials
    if credentials is None or (primary_registry not in (None, ref.domain)):
        files = auth_files(options.authfile)
        key = f"{ref.domain}/{ref.path}"
        credentials = await anyio.to_thread.run_sync(
            lambda: find_credentials(key, files), abandon_on_cancel=True
        )
    client = RegistryClient(
        http,
        ref.domain,
        insecure=options.insecure(insecure),
        cert_dir=options.cert_dir,
        credentials=credentials,
        retry=options.retry,
    )
    return RegistryRepository(client, ref.path, push=push, chunk_size=chunk_size)
