"""How a registry wants to be authenticated, and the tokens it issues.

A registry says how in the ``WWW-Authenticate`` header of a ``401``: ``Basic
realm="..."`` (every request then carries the user's credentials) or ``Bearer
realm="https://auth.example/token",service="registry.example",scope="..."`` (the token
flow of the distribution spec: a token for a set of scopes such as
``repository:team/app:pull,push`` is fetched from the realm, with the credentials as
Basic authentication or anonymously without them, and sent as ``Bearer TOKEN``).

:func:`parse_challenges` reads the header; :class:`TokenCache` keeps tokens per scope
set until they expire (``expires_in`` seconds after ``issued_at``, 60 when the server does
not say, less a margin so that a token never expires in flight).  Fetching a token is the
registry client's job (it knows the transport); this module only says what to ask and
reads the answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from aiopod.errors import RegistryRequestFailed

__all__ = ("Challenge", "Token", "TokenCache", "parse_challenges", "parse_token")

#: Tokens are renewed this many seconds before they expire.
EXPIRY_MARGIN = 5.0
#: Lifetime of a token whose answer does not give one (the distribution spec's minimum).
DEFAULT_TOKEN_LIFETIME = 60.0

_LEXEME = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,="]+)|(=)|(,))')


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: its scheme (lower case) and
    parameters (names lower case)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def _lex(header: str) -> list[tuple[str, str]]:
    """The header as (kind, text) items: ``"quoted"`` (unescaped), ``"token"``, ``"="``,
    ``","``; characters that fit none are skipped."""
    items: list[tuple[str, str]] = []
    pos = 0
    while pos < len(header):
        match = _LEXEME.match(header, pos)
        if match is None or match.end() == pos:
            pos += 1
            continue
        quoted, token, equals, comma = match.groups()
        if quoted is not None:
            items.append(("quoted", re.sub(r"\\(.)", r"\1", quoted)))
        elif token is not None:
            items.append(("token", token))
        elif equals is not None:
            items.append(("=", "="))
        elif comma is not None:
            items.append((",", ","))
        pos = match.end()
    return items


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """The challenges of the ``WWW-Authenticate`` header values *headers*, in order.

    A token not followed by ``=`` starts a challenge (its scheme); ``name=value`` and
    ``name="value"`` are its parameters.  Malformed parts are skipped: a registry's
    header is not trusted to be well formed.
    """
    challenges: list[Challenge] = []
    for header in headers:
        items = _lex(header)
        i = 0
        while i < len(items):
            kind, text = items[i]
            followed_by_equals = i + 1 < len(items) and items[i + 1][0] == "="
            if kind == "token" and not followed_by_equals:
                challenges.append(Challenge(text.lower(), {}))
                i += 1
            elif kind == "token" and challenges and i + 2 < len(items):
                value_kind, value = items[i + 2]
                if value_kind in ("token", "quoted"):
                    challenges[-1].params[text.lower()] = value
                    i += 3
                else:
                    i += 2
            else:
                i += 1
    return challenges


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and the monotonic time after which it is not used."""

    value: str = field(repr=False)
    expires: float


def parse_token(data: bytes, *, now: float | None = None) -> Token:
    """The token in a token endpoint's JSON answer (``token`` or ``access_token``).

    :raises ~aiopod.errors.RegistryRequestFailed: the answer is not JSON or has no token.
    """
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RegistryRequestFailed("the token server's answer is not JSON") from None
    if not isinstance(document, dict):
        raise RegistryRequestFailed("the token server's answer is not a JSON object")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str) or not value:
        raise RegistryRequestFailed("the token server's answer has no token")
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    lifetime = max(float(lifetime), DEFAULT_TOKEN_LIFETIME)
    age = 0.0
    issued = document.get("issued_at")
    if isinstance(issued, str):
        try:
            issued_at = datetime.fromisoformat(issued.replace("Z", "+00:00"))
            age = max(0.0, time.time() - issued_at.timestamp())
        except ValueError:
            age = 0.0
    start = time.monotonic() if now is None else now
    return Token(value, start + lifetime - min(age, lifetime) - EXPIRY_MARGIN)


def _scope_key(scopes: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(scopes)))


class TokenCache:
    """Bearer tokens by scope set, each until it expires.  Not locked: two tasks that
    miss at once both fetch a token, and the later one is kept (both are valid)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], Token] = {}

    def get(self, scopes: Sequence[str], *, now: float | None = None) -> str | None:
        token = self._tokens.get(_scope_key(scopes))
        if token is None or (time.monotonic() if now is None else now) >= token.expires:
            return None
        return token.value

    def put(self, scopes: Sequence[str], token: Token) -> None:
        self._tokens[_scope_key(scopes)] = token

    def forget(self, scopes: Sequence[str]) -> None:
        self._tokens.pop(_scope_key(scopes), None)
