"""Reading a registry's answers: bodies under a size limit, and errors as podman words them.

A registry's error body is JSON (``{"errors": [{"code": "MANIFEST_UNKNOWN", "message":
"manifest unknown"}]}``); podman prints each error as its code in lower case with spaces,
a colon and the message (``manifest unknown: manifest unknown``), and an answer without
such a body as ``received unexpected HTTP status: 500 Internal Server Error``.  No body is
read whole without a limit: 4 MiB for manifests and configs, 1 MiB for error and token
bodies (a larger one is an error, found without reading past the limit).

Bodies are read as sent (``Content-Encoding`` is not undone: the client asks for
``identity``), so that what is hashed is what the registry stored.
"""

from __future__ import annotations

import json

import httpx

from aiopod.errors import LimitExceeded

__all__ = (
    "MAX_MANIFEST_SIZE",
    "MAX_SMALL_BODY",
    "RegistryErrorBody",
    "error_body",
    "read_limited",
)

#: The largest manifest or config read.
MAX_MANIFEST_SIZE = 4 << 20
#: The largest token answer or error body read.
MAX_SMALL_BODY = 1 << 20


async def read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
    """The body of the streamed *response*, which must not exceed *limit* bytes.

    A ``Content-Length`` over the limit fails before anything is read; otherwise the
    read stops at ``limit + 1`` bytes.  The response is closed either way.

    :raises ~aiopod.errors.LimitExceeded: the body is larger than *limit*.
    """
    try:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise LimitExceeded(f"{what} is larger than the limit of {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_raw():
            total += len(chunk)
            if total > limit:
                raise LimitExceeded(f"{what} is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await response.aclose()


class RegistryErrorBody:
    """An error answer: its status, the error codes of its JSON body (upper case, as
    sent) and podman's text for it."""

    def __init__(self, status: int, reason: str, codes: tuple[str, ...], text: str) -> None:
        self.status = status
        self.reason = reason
        self.codes = codes
        self.text = text

    def __repr__(self) -> str:
        return f"RegistryErrorBody({self.status}, {self.codes!r})"


def _describe(errors: list[object]) -> tuple[tuple[str, ...], list[str]]:
    codes: list[str] = []
    texts: list[str] = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        code = error.get("code")
        message = error.get("message")
        code_text = code.lower().replace("_", " ") if isinstance(code, str) else "unknown"
        if isinstance(code, str):
            codes.append(code.upper())
        if isinstance(message, str) and message:
            texts.append(f"{code_text}: {message}")
        else:
            texts.append(code_text)
    return tuple(codes), texts


async def error_body(response: httpx.Response) -> RegistryErrorBody:
    """Read (at most 1 MiB of) an error answer and describe it; closes the response.

    A body that is too large, not JSON, or has no errors is described by the status."""
    status = response.status_code
    reason = response.reason_phrase or httpx.codes.get_reason_phrase(status)
    fallback = f"received unexpected HTTP status: {status} {reason}".rstrip()
    if status == 401:  # a 401 that says nothing else (to a HEAD) is podman's UNAUTHORIZED
        fallback = "unauthorized: authentication required"
    try:
        data = await read_limited(response, MAX_SMALL_BODY, "the registry's error body")
    except (LimitExceeded, httpx.HTTPError, httpx.StreamError):
        # StreamError: an answer without a body to read (to a HEAD, already closed).
        return RegistryErrorBody(status, reason, (), fallback)
    try:
        document = json.loads(data) if data.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        document = None
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors:
        return RegistryErrorBody(status, reason, (), fallback)
    codes, texts = _describe(errors)
    if not texts:
        return RegistryErrorBody(status, reason, codes, fallback)
    text = texts[0] if len(texts) == 1 else "errors:\n" + "".join(t + "\n" for t in texts)
    return RegistryErrorBody(status, reason, codes, text)
