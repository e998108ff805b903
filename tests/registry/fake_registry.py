"""A small registry of the tests' own: enough of the distribution API v2 for a client, with
switches that make it misbehave the ways a hostile or broken registry does.

:func:`serve_registry` runs one on ``HOST:<free port>`` (``127.0.0.1`` by default; a
second one on ``127.0.0.2`` is "another host") in a thread of ``http.server``; use it as
a context manager.  What it serves is what the test puts in:
:meth:`FakeRegistry.add_blob`, :meth:`FakeRegistry.add_manifest`,
:meth:`FakeRegistry.add_image`; pushes (monolithic, chunked, mounts) land in the same
store.  Every request is recorded (:attr:`FakeRegistry.requests`: method, path with
query, headers) so that a test can check what the client sent, and where.

Authentication (:attr:`FakeRegistry.auth`): ``"none"``; ``"basic"`` (``users``); or
``"bearer"``: a token endpoint at ``/token`` that checks Basic credentials (or hands out
anonymous tokens when ``anonymous`` is set, for pulls only), issues tokens for the scopes
asked for, valid ``token_lifetime`` seconds (``expires_in``), and the registry accepts a
token only for the scopes it was issued for (``401`` with ``error="insufficient_scope"``
otherwise).

Misbehaviours (attributes of :class:`Misbehaviour`, all off by default):

* ``endless_blobs``: these blob digests stream without end (no ``Content-Length``);
* ``huge_manifest``, ``huge_token``, ``huge_error``: bodies over the client's caps
  (5 MiB manifest, 2 MiB token answer, 2 MiB error body);
* ``redirect_blobs_to``: blob GETs answer ``307`` to the same path on this base URL
  (another fake registry serving the same blobs, on another host);
* ``reset_blob_after``: the first GET of each blob sends this many bytes of it and then
  resets the connection; the Range request that follows is answered as
  ``resume_answer`` says: ``"206"`` (correctly), ``"200"`` (the whole blob, Range
  ignored), ``"wrong-range"`` (206 starting elsewhere);
* ``manifest_bytes``: digest → bytes served instead of the manifest's own (a manifest
  by digest that hashes to something else);
* ``lying_digest_header``: ``Docker-Content-Digest`` names a different digest;
* ``failures``: a list of (status, Retry-After or ``None``) answered, in order, to the
  next requests (except the token endpoint and ``/v2/``), before normal service;
* ``drop_connections``: this many next connections are closed without an answer;
* ``absolute_locations``: upload ``Location`` headers are absolute URLs (else paths);
* ``refuse_mounts``: cross-repository mounts are answered with this error status (as a
  registry that denies reading the source repository).

Layer ``urls`` are just manifest content here: :meth:`FakeRegistry.add_image` takes them,
and :attr:`FakeRegistry.requests` shows that a client never followed them.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.server
import json
import random
import re
import secrets
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

__all__ = ("FakeRegistry", "Misbehaviour", "RecordedRequest", "serve_registry")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

_NAME = r"(?P<name>[a-z0-9]+(?:[._/-]+[a-z0-9]+)*)"
_ROUTES = [
    ("manifest", re.compile(rf"/v2/{_NAME}/manifests/(?P<ref>[^/]+)")),
    ("uploads", re.compile(rf"/v2/{_NAME}/blobs/uploads/?")),
    ("upload", re.compile(rf"/v2/{_NAME}/blobs/uploads/(?P<uuid>[0-9a-f]+)")),
    ("blob", re.compile(rf"/v2/{_NAME}/blobs/(?P<ref>[^/]+)")),
]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Misbehaviour:
    endless_blobs: set[str] = field(default_factory=set)
    huge_manifest: bool = False
    huge_token: bool = False
    huge_error: bool = False
    redirect_blobs_to: str | None = None
    reset_blob_after: int | None = None
    resume_answer: Literal["206", "200", "wrong-range"] = "206"
    manifest_bytes: dict[str, bytes] = field(default_factory=dict)
    lying_digest_header: bool = False
    failures: list[tuple[int, str | None]] = field(default_factory=list)
    drop_connections: int = 0
    absolute_locations: bool = False
    refuse_mounts: int | None = None


@dataclass
class _Token:
    scopes: set[str]
    expires: float


@dataclass
class FakeRegistry:
    """A running fake registry (see the module)."""

    host: str
    port: int = 0
    auth: Literal["none", "basic", "bearer"] = "none"
    users: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    token_lifetime: int = 60
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    tokens_issued: list[tuple[str | None, tuple[str, ...]]] = field(default_factory=list)
    members: set[tuple[str, str]] = field(default_factory=set)
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _uploads: dict[str, tuple[str, bytearray]] = field(default_factory=dict)
    _blob_gets: dict[str, int] = field(default_factory=dict)
    repository_scoped_blobs: bool = False
    """As a real registry: ``GET`` too finds a blob only through the repositories that
    hold it (uploaded or mounted there, or added with a name), as ``HEAD`` always does."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def address(self) -> str:
        """``HOST:PORT``, the registry as references name it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    # -- content -------------------------------------------------------------------------------

    def add_blob(self, data: bytes, name: str | None = None) -> dict[str, Any]:
        """Store a blob (in repository *name*, for mounts); its descriptor (``digest``,
        ``size``).  A GET finds any blob through any repository; a HEAD, as distribution's,
        only through a repository it was stored in, mounted into or uploaded to."""
        digest = digest_of(data)
        self.blobs[digest] = data
        if name is not None:
            self.members.add((name, digest))
        return {"digest": digest, "size": len(data)}

    def add_manifest(
        self, name: str, data: bytes, media_type: str = OCI_MANIFEST, tag: str | None = None
    ) -> str:
        """Store a manifest under its digest (and *tag*); its digest."""
        digest = digest_of(data)
        self.manifests[(name, digest)] = (data, media_type)
        if tag is not None:
            self.manifests[(name, tag)] = (data, media_type)
        return digest

    def add_image(
        self,
        name: str,
        tag: str,
        layers: list[bytes],
        *,
        config: bytes = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}',
        layer_urls: list[str] | None = None,
    ) -> tuple[str, bytes]:
        """Store an OCI image (layers stored as given, media type gzip); its manifest
        digest and bytes.  *layer_urls* go into every layer descriptor's ``urls``."""
        config_descriptor = {"mediaType": OCI_CONFIG, **self.add_blob(config, name)}
        descriptors = []
        for layer in layers:
            descriptor: dict[str, Any] = {"mediaType": OCI_LAYER_GZIP, **self.add_blob(layer, name)}
            if layer_urls:
                descriptor["urls"] = layer_urls
            descriptors.append(descriptor)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_descriptor,
                "layers": descriptors,
            }
        ).encode()
        return self.add_manifest(name, manifest, OCI_MANIFEST, tag), manifest

    def add_noisy_image(
        self, name: str, tag: str, *, noise_size: int, seed: int
    ) -> tuple[list[bytes], bytes]:
        """Store an image of two gzip layers, the first *noise_size* bytes of seeded noise
        (a transfer of many chunks), the second a small file, and a config naming their
        diff IDs; its layers and config as stored."""
        from peers import file, sha256_hex, tar_bytes

        noise = random.Random(seed).randbytes(noise_size)
        tars = [tar_bytes([file("noise.bin", noise)]), tar_bytes([file("hello.txt", b"hello\n")])]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256_hex(t)}" for t in tars]},
            }
        ).encode()
        layers = [gzip.compress(t, compresslevel=1, mtime=0) for t in tars]
        self.add_image(name, tag, layers, config=config)
        return layers, config

    def requests_to(self, fragment: str) -> list[RecordedRequest]:
        return [r for r in self.requests if fragment in r.path]

    # -- authentication ------------------------------------------------------------------------

    def _basic_user(self, header: str) -> str | None:
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if self.users.get(user) == password and user else None

    def issue_token(self, authorization: str, scopes: list[str]) -> str | None:
        user = self._basic_user(authorization) if authorization else None
        if authorization and user is None:
            return None
        if user is None and not self.anonymous:
            return None
        granted = {s for s in scopes if user is not None or s.endswith(":pull")}
        token = secrets.token_hex(16)
        with self.lock:
            self._tokens[token] = _Token(granted, time.monotonic() + self.token_lifetime)
            self.tokens_issued.append((user, tuple(sorted(scopes))))
        return token

    def authorized(self, authorization: str, scope: str | None) -> tuple[bool, str]:
        """Whether a request may go on; else the challenge to answer with."""
        if self.auth == "none":
            return True, ""
        if self.auth == "basic":
            ok = self._basic_user(authorization) is not None
            return ok, 'Basic realm="fake-registry"'
        challenge = f'Bearer realm="{self.url}/token",service="fake-registry"'
        if scope:
            challenge += f',scope="{scope}"'
        if not authorization.startswith("Bearer "):
            return False, challenge
        token = self._tokens.get(authorization[7:])
        if token is None or time.monotonic() >= token.expires:
            return False, challenge + ',error="invalid_token"'
        if scope is not None and not _covers(token.scopes, scope):
            return False, challenge + ',error="insufficient_scope"'
        return True, ""


def _covers(granted: set[str], wanted: str) -> bool:
    kind, _, rest = wanted.rpartition(":")
    actions = set(rest.split(","))
    have: set[str] = set()
    for scope in granted:
        g_kind, _, g_actions = scope.rpartition(":")
        if g_kind == kind:
            have |= set(g_actions.split(","))
    return actions <= have


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    registry: FakeRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- answering ----------------------------------------------------------------------------

    def _answer(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
    ) -> None:
        head = head or self.command == "HEAD"
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = _error_body(code, message)
        if self.registry.misbehave.huge_error:
            body = json.dumps({"errors": [{"code": code, "message": "x" * (2 << 20)}]}).encode()
        self._answer(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _reset(self) -> None:
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    # -- dispatch -----------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        registry = self.registry
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        with registry.lock:
            registry.requests.append(
                RecordedRequest(method, self.path, {k.title(): v for k, v in self.headers.items()})
            )
            drop = registry.misbehave.drop_connections > 0
            if drop:
                registry.misbehave.drop_connections -= 1
        body = self._body() if method in ("PUT", "PATCH", "POST") else b""
        if drop:
            self._reset()
            return
        if split.path == "/token":
            self._token(query)
            return
        authorization = self.headers.get("Authorization", "")
        if split.path in ("/v2/", "/v2"):
            ok, challenge = registry.authorized(authorization, None)
            if ok:
                self._answer(200, b"{}", {"Docker-Distribution-Api-Version": "registry/2.0"})
            else:
                self._error(
                    401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}
                )
            return
        with registry.lock:
            failure = registry.misbehave.failures.pop(0) if registry.misbehave.failures else None
        if failure is not None:
            status, retry_after = failure
            self._error(
                status,
                "UNAVAILABLE",
                "try again",
                {"Retry-After": retry_after} if retry_after else {},
            )
            return
        for kind, pattern in _ROUTES:
            match = pattern.fullmatch(split.path)
            if match is None:
                continue
            name = match.group("name")
            push = method in ("PUT", "PATCH", "POST", "DELETE")
            scope = f"repository:{name}:{'pull,push' if push else 'pull'}"
            ok, challenge = registry.authorized(authorization, scope)
            if ok and kind == "uploads" and "from" in query:
                ok = registry.authorized(authorization, f"repository:{query['from']}:pull")[0]
            if not ok:
                self._error(
                    401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}
                )
                return
            getattr(self, f"_{kind}")(method, match, query, body)
            return
        self._error(404, "NOT_FOUND", "not found")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- the API ------------------------------------------------------------------------------

    def _token(self, query: dict[str, str]) -> None:
        registry = self.registry
        scopes = parse_qs(urlsplit(self.path).query).get("scope", [])
        token = registry.issue_token(self.headers.get("Authorization", ""), scopes)
        if token is None:
            self._error(401, "UNAUTHORIZED", "invalid credentials")
            return
        answer: dict[str, Any] = {"token": token, "expires_in": registry.token_lifetime}
        if registry.misbehave.huge_token:
            answer["padding"] = "x" * (2 << 20)
        self._answer(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    def _manifest(
        self, method: str, match: re.Match[str], query: dict[str, str], body: bytes
    ) -> None:
        registry = self.registry
        name, ref = match.group("name"), match.group("ref")
        if method == "PUT":
            media_type = self.headers.get("Content-Type", OCI_MANIFEST)
            digest = registry.add_manifest(name, body, media_type, None if ":" in ref else ref)
            if ":" in ref and ref != digest:
                self._error(400, "DIGEST_INVALID", "provided digest did not match")
                return
            self._answer(
                201,
                b"",
                {"Docker-Content-Digest": digest, "Location": f"/v2/{name}/manifests/{digest}"},
            )
            return
        found = registry.manifests.get((name, ref))
        if found is None:
            self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return
        data, media_type = found
        digest = digest_of(data)
        data = registry.misbehave.manifest_bytes.get(digest, data)
        if registry.misbehave.huge_manifest:
            data = data + b" " * (5 << 20)
        header = digest_of(b"lie") if registry.misbehave.lying_digest_header else digest
        self._answer(
            200,
            data,
            {"Content-Type": media_type, "Docker-Content-Digest": header},
            head=method == "HEAD",
        )

    def _blob(self, method: str, match: re.Match[str], query: dict[str, str], body: bytes) -> None:
        registry, misbehave = self.registry, self.registry.misbehave
        digest = match.group("ref")
        data = registry.blobs.get(digest)
        held = (match.group("name"), digest) in registry.members
        if data is None or (not held and (method == "HEAD" or registry.repository_scoped_blobs)):
            self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            return
        if method == "HEAD":
            self._answer(200, data, {"Docker-Content-Digest": digest}, head=True)
            return
        if misbehave.redirect_blobs_to is not None:
            self._answer(307, b"", {"Location": misbehave.redirect_blobs_to + self.path})
            return
        if digest in misbehave.endless_blobs:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b"\0" * 65536)
            return
        with registry.lock:
            count = registry._blob_gets[digest] = registry._blob_gets.get(digest, 0) + 1
        range_header = self.headers.get("Range")
        if range_header and count > 1:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if misbehave.resume_answer == "200":
                self._answer(200, data)
            elif misbehave.resume_answer == "wrong-range":
                self._answer(206, data, {"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}"})
            else:
                self._answer(
                    206,
                    data[start:],
                    {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
                )
            return
        if misbehave.reset_blob_after is not None and count == 1:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: misbehave.reset_blob_after])
            self._reset()
            return
        self._answer(200, data, {"Docker-Content-Digest": digest})

    def _uploads(
        self, method: str, match: re.Match[str], query: dict[str, str], body: bytes
    ) -> None:
        registry = self.registry
        name = match.group("name")
        if "mount" in query and registry.misbehave.refuse_mounts is not None:
            self._error(registry.misbehave.refuse_mounts, "DENIED", "requested access denied")
            return
        if "mount" in query:
            digest = query["mount"]
            source = query.get("from", "")
            if (source, digest) in registry.members:
                registry.members.add((name, digest))
                self._answer(
                    201,
                    b"",
                    {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
                )
                return
        uuid = secrets.token_hex(8)
        with registry.lock:
            registry._uploads[uuid] = (name, bytearray())
        if "digest" in query:
            self._finish(name, uuid, query["digest"], body)
            return
        self._answer(202, b"", {"Location": self._location(name, uuid), "Range": "0-0"})

    def _location(self, name: str, uuid: str) -> str:
        path = f"/v2/{name}/blobs/uploads/{uuid}?_state=s{uuid}"
        return self.registry.url + path if self.registry.misbehave.absolute_locations else path

    def _upload(
        self, method: str, match: re.Match[str], query: dict[str, str], body: bytes
    ) -> None:
        registry = self.registry
        name, uuid = match.group("name"), match.group("uuid")
        if uuid not in registry._uploads or query.get("_state") != f"s{uuid}":
            self._error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown")
            return
        if method == "DELETE":
            del registry._uploads[uuid]
            self._answer(204)
            return
        received = registry._uploads[uuid][1]
        if method == "PATCH":
            content_range = self.headers.get("Content-Range")
            if content_range is not None and int(content_range.split("-")[0]) != len(received):
                self._answer(416)
                return
            received += body
            self._answer(
                202,
                b"",
                {"Location": self._location(name, uuid), "Range": f"0-{len(received) - 1}"},
            )
            return
        if method == "PUT":
            self._finish(name, uuid, query.get("digest", ""), body)
            return
        self._error(405, "UNSUPPORTED", "unsupported")

    def _finish(self, name: str, uuid: str, digest: str, body: bytes) -> None:
        registry = self.registry
        with registry.lock:
            _, received = registry._uploads.pop(uuid)
        data = bytes(received) + body
        if digest_of(data) != digest:
            self._error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            return
        registry.blobs[digest] = data
        registry.members.add((name, digest))
        self._answer(
            201, b"", {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        )


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer (as the tests make it) is no news


@contextlib.contextmanager
def serve_registry(host: str = "127.0.0.1", **settings: Any) -> Iterator[FakeRegistry]:
    """Run a fake registry on *host* at a free port while the block runs."""
    registry = FakeRegistry(host, **settings)
    handler = type("Handler", (_Handler,), {"registry": registry})
    server = _Server((host, 0), handler)
    registry.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fake-registry", daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
