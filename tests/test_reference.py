"""Tests of aiopod._reference: podman 4.3's reference grammar, normalisation and messages.

``MEASURED`` is what podman 4.3.1 printed (isolated vfs store holding one image,
``localhost/img:1``) for ``podman tag localhost/img:1 X`` (``tag``), ``podman untag
localhost/img:1 X`` (``untag``), ``podman rmi X`` (``rmi``), ``podman image inspect X``
(``inspect``), ``podman tag X x`` (``tagsrc``) and ``podman untag X`` (``untagimg``):
exit code and stderr, or for a successful ``tag`` the name it added. Messages are written
with tokens (``{N}``, ``{INV}``, ...) that ``_expand`` turns back into the literal text.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from aiopod._reference import (
    Command,
    LookupInput,
    Reference,
    check_tag_name,
    check_untag_name,
    command_error_message,
    go_lower,
    go_quote,
    is_fully_qualified,
    is_id_prefix,
    lookup_candidates,
    normalize_docker,
    normalize_local,
    parse_lookup_input,
    parse_reference,
    parse_sha256_id,
    split_transport,
    validate_tag_name,
    validate_untag_name,
)
from aiopod.cli.exit_codes import exit_code_of
from aiopod.errors import ImageNotKnown, InvalidReference, TagNotKnown

H = "0123456789abcdef" * 4
HU = H.upper()

# --------------------------------------------------------------------------------------------
# Measured with podman 4.3.1

_TOKENS = {
    "{IO}": "inspecting object: ",
    "{INV}": "invalid reference format",
    "{LOW}": "repository name must be lowercase",
    "{EMPTY}": "repository name must have at least one component",
    "{LONG}": "repository name must not be more than 255 characters",
    "{DLEN}": "invalid checksum digest length",
    "{DFMT}": "invalid checksum digest format",
    "{DUNS}": "unsupported digest algorithm",
    "{NK}": ": image not known",
    "{TNK}": ": tag not known",
    "{UT}": "unsupported transport ",
    "{H}": H,
    "{HU}": HU,
}


def _expand(text: str, template: str) -> str:
    for token, value in _TOKENS.items():
        template = template.replace(token, value)
    template = template.replace("{N}", 'normalizing name "{i}": ')
    return template.replace("{i}", text)


# (input, command, exit code, stderr or the added name)
MEASURED: list[tuple[str, str, int, str]] = [
    ("Foo", "tag", 125, "Error: {N}{N}{LOW}"),
    ("Foo", "untag", 125, "Error: {N}{N}{LOW}"),
    ("Foo", "rmi", 125, "Error: {LOW}"),
    ("Foo", "inspect", 125, "Error: {IO}{LOW}"),
    ("", "tag", 125, 'Error: normalizing name "": normalizing name "": {EMPTY}'),
    ("", "untag", 125, 'Error: normalizing name "": normalizing name "": {EMPTY}'),
    ("", "rmi", 125, "Error: {EMPTY}"),
    ("", "inspect", 125, "Error: {IO}{EMPTY}"),
    ("a:b:c", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:b:c", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:b:c", "rmi", 125, "Error: {INV}"),
    ("a:b:c", "inspect", 125, "Error: {IO}{INV}"),
    ("x:" + "a" * 129, "tag", 125, "Error: {N}{N}{INV}"),
    ("x:" + "a" * 129, "untag", 125, "Error: {N}{N}{INV}"),
    ("x:" + "a" * 129, "rmi", 125, "Error: {INV}"),
    ("x:" + "a" * 129, "inspect", 125, "Error: {IO}{INV}"),
    ("x:" + "a" * 128, "tag", 0, "localhost/{i}"),
    ("x:" + "a" * 128, "untag", 125, "Error: localhost/{i}{TNK}"),
    ("x:" + "a" * 128, "rmi", 1, "Error: {i}{NK}"),
    ("x:" + "a" * 128, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("x:" + "a" * 127, "tag", 0, "localhost/{i}"),
    ("x:" + "a" * 127, "untag", 125, "Error: localhost/{i}{TNK}"),
    ("x:" + "a" * 127, "rmi", 1, "Error: {i}{NK}"),
    ("x:" + "a" * 127, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a" * 256, "tag", 125, "Error: {N}{N}{LONG}"),
    ("a" * 256, "untag", 125, "Error: {N}{N}{LONG}"),
    ("a" * 256, "rmi", 125, "Error: {LONG}"),
    ("a" * 256, "inspect", 125, "Error: {IO}{LONG}"),
    ("a" * 255, "tag", 125, "Error: {N}{LONG}"),
    ("a" * 255, "untag", 125, "Error: {N}{LONG}"),
    ("a" * 255, "rmi", 1, "Error: {i}{NK}"),
    ("a" * 255, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a" * 246, "tag", 125, "Error: {N}{LONG}"),
    ("a" * 246, "untag", 125, "Error: {N}{LONG}"),
    ("a" * 246, "rmi", 1, "Error: {i}{NK}"),
    ("a" * 246, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a" * 245, "tag", 0, "localhost/{i}:latest"),
    ("a" * 245, "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a" * 245, "rmi", 1, "Error: {i}{NK}"),
    ("a" * 245, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a" * 244, "tag", 0, "localhost/{i}:latest"),
    ("a" * 244, "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a" * 244, "rmi", 1, "Error: {i}{NK}"),
    ("a" * 244, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("docker.io/" + "a" * 245, "tag", 125, "Error: {N}{LONG}"),
    ("docker.io/" + "a" * 245, "untag", 125, "Error: {N}{LONG}"),
    ("docker.io/" + "a" * 245, "rmi", 1, "Error: {i}{NK}"),
    ("docker.io/" + "a" * 245, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("sha256:abc", "tag", 125, "Error: {i}: tag by digest not supported"),
    ("sha256:abc", "untag", 125, "Error: {i}: untag by digest not supported"),
    ("sha256:abc", "rmi", 125, "Error: {i}: invalid format: no 64-byte hexadecimal value"),
    ("sha256:abc", "inspect", 125, "Error: {IO}{i}: invalid format: no 64-byte hexadecimal value"),
    ("sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("sha256:" + H, "untag", 125, "Error: {i}: untag by digest not supported"),
    ("sha256:" + H, "rmi", 1, "Error: {i}{NK}"),
    ("sha256:" + H, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("sha256:" + HU, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("sha256:" + HU, "untag", 125, "Error: {i}: untag by digest not supported"),
    ("sha256:" + HU, "rmi", 125, "Error: {i}: invalid format: no 64-byte hexadecimal value"),
    (
        "sha256:" + HU,
        "inspect",
        125,
        "Error: {IO}{i}: invalid format: no 64-byte hexadecimal value",
    ),
    ("sha256:" + H + "0", "tag", 125, "Error: {i}: tag by digest not supported"),
    ("sha256:" + H + "0", "untag", 125, "Error: {i}: untag by digest not supported"),
    ("sha256:" + H + "0", "rmi", 125, "Error: {i}: invalid format: no 64-byte hexadecimal value"),
    (
        "sha256:" + H + "0",
        "inspect",
        125,
        "Error: {IO}{i}: invalid format: no 64-byte hexadecimal value",
    ),
    ("sha256:", "tag", 125, "Error: {i}: tag by digest not supported"),
    ("sha256:", "untag", 125, "Error: {i}: untag by digest not supported"),
    ("sha256:", "rmi", 125, "Error: {INV}"),
    ("sha256:", "inspect", 125, "Error: {IO}{INV}"),
    ("UPPER", "tag", 125, "Error: {N}{N}{LOW}"),
    ("UPPER", "untag", 125, "Error: {N}{N}{LOW}"),
    ("UPPER", "rmi", 125, "Error: {LOW}"),
    ("UPPER", "inspect", 125, "Error: {IO}{LOW}"),
    ("_a", "tag", 125, "Error: {N}{N}{INV}"),
    ("_a", "untag", 125, "Error: {N}{N}{INV}"),
    ("_a", "rmi", 125, "Error: {INV}"),
    ("_a", "inspect", 125, "Error: {IO}{INV}"),
    ("a_b", "tag", 0, "localhost/{i}:latest"),
    ("a_b", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a_b", "rmi", 1, "Error: {i}{NK}"),
    ("a_b", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a__b", "tag", 0, "localhost/{i}:latest"),
    ("a__b", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a__b", "rmi", 1, "Error: {i}{NK}"),
    ("a__b", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a___b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a___b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a___b", "rmi", 125, "Error: {INV}"),
    ("a___b", "inspect", 125, "Error: {IO}{INV}"),
    ("a-", "tag", 125, "Error: {N}{N}{INV}"),
    ("a-", "untag", 125, "Error: {N}{N}{INV}"),
    ("a-", "rmi", 125, "Error: {INV}"),
    ("a-", "inspect", 125, "Error: {IO}{INV}"),
    ("a--b", "tag", 0, "localhost/{i}:latest"),
    ("a--b", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a--b", "rmi", 1, "Error: {i}{NK}"),
    ("a--b", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a/", "tag", 125, "Error: {N}{N}{INV}"),
    ("a/", "untag", 125, "Error: {N}{N}{INV}"),
    ("a/", "rmi", 125, "Error: {INV}"),
    ("a/", "inspect", 125, "Error: {IO}{INV}"),
    ("a//b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a//b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a//b", "rmi", 125, "Error: {INV}"),
    ("a//b", "inspect", 125, "Error: {IO}{INV}"),
    ("/a", "tag", 125, "Error: {N}{N}{INV}"),
    ("/a", "untag", 125, "Error: {N}{N}{INV}"),
    ("/a", "rmi", 125, "Error: {INV}"),
    ("/a", "inspect", 125, "Error: {IO}{INV}"),
    ("localhost:5000/a:b", "tag", 0, "{i}"),
    ("localhost:5000/a:b", "untag", 125, "Error: {i}{TNK}"),
    ("localhost:5000/a:b", "rmi", 1, "Error: {i}{NK}"),
    ("localhost:5000/a:b", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("@", "tag", 125, "Error: {N}{N}{INV}"),
    ("@", "untag", 125, "Error: {N}{N}{INV}"),
    ("@", "rmi", 125, "Error: {INV}"),
    ("@", "inspect", 125, "Error: {IO}{INV}"),
    ("a@", "tag", 125, "Error: {N}{N}{INV}"),
    ("a@", "untag", 125, "Error: {N}{N}{INV}"),
    ("a@", "rmi", 125, "Error: {INV}"),
    ("a@", "inspect", 125, "Error: {IO}{INV}"),
    ("a@sha256:abc", "tag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:abc", "untag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:abc", "rmi", 125, "Error: {INV}"),
    ("a@sha256:abc", "inspect", 125, "Error: {IO}{INV}"),
    ("a@sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("a@sha256:" + H, "untag", 125, "Error: localhost/{i}{TNK}"),
    ("a@sha256:" + H, "rmi", 1, "Error: {i}{NK}"),
    ("a@sha256:" + H, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a:b@sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("a:b@sha256:" + H, "untag", 125, "Error: localhost/a@sha256:{H}{TNK}"),
    ("a:b@sha256:" + H, "rmi", 1, "Error: a@sha256:{H}{NK}"),
    ("a:b@sha256:" + H, "inspect", 125, "Error: {IO}a@sha256:{H}{NK}"),
    ("a:", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:", "rmi", 125, "Error: {INV}"),
    ("a:", "inspect", 125, "Error: {IO}{INV}"),
    (":a", "tag", 125, "Error: {N}{N}{INV}"),
    (":a", "untag", 125, "Error: {N}{N}{INV}"),
    (":a", "rmi", 125, "Error: {INV}"),
    (":a", "inspect", 125, "Error: {IO}{INV}"),
    ("a:-b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:-b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:-b", "rmi", 125, "Error: {INV}"),
    ("a:-b", "inspect", 125, "Error: {IO}{INV}"),
    ("a:.b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:.b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:.b", "rmi", 125, "Error: {INV}"),
    ("a:.b", "inspect", 125, "Error: {IO}{INV}"),
    ("a:_b", "tag", 0, "localhost/{i}"),
    ("a:_b", "untag", 125, "Error: localhost/{i}{TNK}"),
    ("a:_b", "rmi", 1, "Error: {i}{NK}"),
    ("a:_b", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("Docker.io/a", "tag", 0, "{i}:latest"),
    ("Docker.io/a", "untag", 125, "Error: {i}:latest{TNK}"),
    ("Docker.io/a", "rmi", 1, "Error: {i}{NK}"),
    ("Docker.io/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("docker.io/a", "tag", 0, "docker.io/library/a:latest"),
    ("docker.io/a", "untag", 125, "Error: docker.io/library/a:latest{TNK}"),
    ("docker.io/a", "rmi", 1, "Error: {i}{NK}"),
    ("docker.io/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("docker.io/library/a", "tag", 0, "{i}:latest"),
    ("docker.io/library/a", "untag", 125, "Error: {i}:latest{TNK}"),
    ("docker.io/library/a", "rmi", 1, "Error: {i}{NK}"),
    ("docker.io/library/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("index.docker.io/a", "tag", 0, "docker.io/library/a:latest"),
    ("index.docker.io/a", "untag", 125, "Error: docker.io/library/a:latest{TNK}"),
    ("index.docker.io/a", "rmi", 1, "Error: {i}{NK}"),
    ("index.docker.io/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a.b/c", "tag", 0, "{i}:latest"),
    ("a.b/c", "untag", 125, "Error: {i}:latest{TNK}"),
    ("a.b/c", "rmi", 1, "Error: {i}{NK}"),
    ("a.b/c", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a:5000/b", "tag", 0, "{i}:latest"),
    ("a:5000/b", "untag", 125, "Error: {i}:latest{TNK}"),
    ("a:5000/b", "rmi", 1, "Error: {i}{NK}"),
    ("a:5000/b", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("localhost/a", "tag", 0, "{i}:latest"),
    ("localhost/a", "untag", 125, "Error: {i}:latest{TNK}"),
    ("localhost/a", "rmi", 1, "Error: {i}{NK}"),
    ("localhost/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("[::1]:5000/a", "tag", 125, "Error: {N}{N}{INV}"),
    ("[::1]:5000/a", "untag", 125, "Error: {N}{N}{INV}"),
    ("[::1]:5000/a", "rmi", 125, "Error: {INV}"),
    ("[::1]:5000/a", "inspect", 125, "Error: {IO}{INV}"),
    ("a b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a b", "rmi", 125, "Error: {INV}"),
    ("a b", "inspect", 125, "Error: {IO}{INV}"),
    ("a\tb", "tag", 125, 'Error: normalizing name "a\\tb": normalizing name "a\\tb": {INV}'),
    ("a\tb", "untag", 125, 'Error: normalizing name "a\\tb": normalizing name "a\\tb": {INV}'),
    ("a\tb", "rmi", 125, "Error: {INV}"),
    ("a\tb", "inspect", 125, "Error: {IO}{INV}"),
    ("\xe4", "tag", 125, "Error: {N}{N}{INV}"),
    ("\xe4", "untag", 125, "Error: {N}{N}{INV}"),
    ("\xe4", "rmi", 125, "Error: {INV}"),
    ("\xe4", "inspect", 125, "Error: {IO}{INV}"),
    ("a:\xe4", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:\xe4", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:\xe4", "rmi", 125, "Error: {INV}"),
    ("a:\xe4", "inspect", 125, "Error: {IO}{INV}"),
    ("a@sha256:", "tag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:", "untag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:", "rmi", 125, "Error: {INV}"),
    ("a@sha256:", "inspect", 125, "Error: {IO}{INV}"),
    ("a@md5:" + "0" * 32, "tag", 125, "Error: {N}{N}{DUNS}"),
    ("a@md5:" + "0" * 32, "untag", 125, "Error: {N}{N}{DUNS}"),
    ("a@md5:" + "0" * 32, "rmi", 125, "Error: {DUNS}"),
    ("a@md5:" + "0" * 32, "inspect", 125, "Error: {IO}{DUNS}"),
    ("a@sha512:" + "0" * 128, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("a@sha512:" + "0" * 128, "untag", 125, "Error: localhost/{i}{TNK}"),
    ("a@sha512:" + "0" * 128, "rmi", 1, "Error: {i}{NK}"),
    ("a@sha512:" + "0" * 128, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a@sha256:" + "0" * 63, "tag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha256:" + "0" * 63, "untag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha256:" + "0" * 63, "rmi", 125, "Error: {DLEN}"),
    ("a@sha256:" + "0" * 63, "inspect", 125, "Error: {IO}{DLEN}"),
    ("a@SHA256:" + H, "tag", 125, "Error: {N}{N}{DFMT}"),
    ("a@SHA256:" + H, "untag", 125, "Error: {N}{N}{DFMT}"),
    ("a@SHA256:" + H, "rmi", 125, "Error: {DFMT}"),
    ("a@SHA256:" + H, "inspect", 125, "Error: {IO}{DFMT}"),
    ("a@sha256:" + HU, "tag", 125, "Error: {N}{N}{DFMT}"),
    ("a@sha256:" + HU, "untag", 125, "Error: {N}{N}{DFMT}"),
    ("a@sha256:" + HU, "rmi", 125, "Error: {DFMT}"),
    ("a@sha256:" + HU, "inspect", 125, "Error: {IO}{DFMT}"),
    ("a..b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a..b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a..b", "rmi", 125, "Error: {INV}"),
    ("a..b", "inspect", 125, "Error: {IO}{INV}"),
    ("a.b", "tag", 0, "localhost/{i}:latest"),
    ("a.b", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a.b", "rmi", 1, "Error: {i}{NK}"),
    ("a.b", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a._b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a._b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a._b", "rmi", 125, "Error: {INV}"),
    ("a._b", "inspect", 125, "Error: {IO}{INV}"),
    ("a-_b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a-_b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a-_b", "rmi", 125, "Error: {INV}"),
    ("a-_b", "inspect", 125, "Error: {IO}{INV}"),
    ("localhost", "tag", 0, "{i}/{i}:latest"),
    ("localhost", "untag", 125, "Error: {i}/{i}:latest{TNK}"),
    ("localhost", "rmi", 1, "Error: {i}{NK}"),
    ("localhost", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("localhost:5000", "tag", 0, "localhost/{i}"),
    ("localhost:5000", "untag", 125, "Error: localhost/{i}{TNK}"),
    ("localhost:5000", "rmi", 1, "Error: {i}{NK}"),
    ("localhost:5000", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("example.com", "tag", 0, "localhost/{i}:latest"),
    ("example.com", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("example.com", "rmi", 1, "Error: {i}{NK}"),
    ("example.com", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("example.com:5000", "tag", 0, "localhost/{i}"),
    ("example.com:5000", "untag", 125, "Error: localhost/{i}{TNK}"),
    ("example.com:5000", "rmi", 1, "Error: {i}{NK}"),
    ("example.com:5000", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a/b/c/d", "tag", 0, "localhost/{i}:latest"),
    ("a/b/c/d", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a/b/c/d", "rmi", 1, "Error: {i}{NK}"),
    ("a/b/c/d", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("docker.io/a/b", "tag", 0, "{i}:latest"),
    ("docker.io/a/b", "untag", 125, "Error: {i}:latest{TNK}"),
    ("docker.io/a/b", "rmi", 1, "Error: {i}{NK}"),
    ("docker.io/a/b", "inspect", 125, "Error: {IO}{i}{NK}"),
    (H, "tag", 0, "localhost/{i}:latest"),
    (H, "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    (H, "rmi", 1, "Error: {i}{NK}"),
    (H, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("0123456789ab", "tag", 0, "localhost/{i}:latest"),
    ("0123456789ab", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("0123456789ab", "rmi", 1, "Error: {i}{NK}"),
    ("0123456789ab", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("Example.com/a", "tag", 0, "{i}:latest"),
    ("Example.com/a", "untag", 125, "Error: {i}:latest{TNK}"),
    ("Example.com/a", "rmi", 1, "Error: {i}{NK}"),
    ("Example.com/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("Foo/bar", "tag", 125, "Error: {N}{INV}: {LOW}"),
    ("Foo/bar", "untag", 125, "Error: {N}{INV}: {LOW}"),
    ("Foo/bar", "rmi", 1, "Error: {i}{NK}"),
    ("Foo/bar", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a:b/c", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:b/c", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:b/c", "rmi", 125, "Error: {INV}"),
    ("a:b/c", "inspect", 125, "Error: {IO}{INV}"),
    ("docker://a", "tag", 125, "Error: {N}{N}{INV}"),
    ("docker://a", "untag", 125, "Error: {N}{N}{INV}"),
    ("docker://a", "rmi", 125, 'Error: {UT}"docker" for looking up local images'),
    ("docker://a", "inspect", 125, 'Error: {IO}{UT}"docker" for looking up local images'),
    ("containers-storage:a", "tag", 0, "localhost/{i}"),
    ("containers-storage:a", "untag", 125, "Error: localhost/{i}{TNK}"),
    ("containers-storage:a", "rmi", 1, "Error{NK}"),
    ("containers-storage:a", "inspect", 125, "Error: {IO}image not known"),
    ("oci:x", "tag", 0, "localhost/{i}"),
    ("oci:x", "untag", 125, "Error: localhost/{i}{TNK}"),
    ("oci:x", "rmi", 125, 'Error: {UT}"oci" for looking up local images'),
    ("oci:x", "inspect", 125, 'Error: {IO}{UT}"oci" for looking up local images'),
    ("a/B", "tag", 125, "Error: {N}{N}{LOW}"),
    ("a/B", "untag", 125, "Error: {N}{N}{LOW}"),
    ("a/B", "rmi", 125, "Error: {LOW}"),
    ("a/B", "inspect", 125, "Error: {IO}{LOW}"),
    ("a:B", "tag", 0, "localhost/{i}"),
    ("a:B", "untag", 125, "Error: localhost/{i}{TNK}"),
    ("a:B", "rmi", 1, "Error: {i}{NK}"),
    ("a:B", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a@sha256:" + "g" * 64, "tag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:" + "g" * 64, "untag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:" + "g" * 64, "rmi", 125, "Error: {INV}"),
    ("a@sha256:" + "g" * 64, "inspect", 125, "Error: {IO}{INV}"),
    ("a@foo", "tag", 125, "Error: {N}{N}{INV}"),
    ("a@foo", "untag", 125, "Error: {N}{N}{INV}"),
    ("a@foo", "rmi", 125, "Error: {INV}"),
    ("a@foo", "inspect", 125, "Error: {IO}{INV}"),
    ("x@", "tag", 125, "Error: {N}{N}{INV}"),
    ("x@", "untag", 125, "Error: {N}{N}{INV}"),
    ("x@", "rmi", 125, "Error: {INV}"),
    ("x@", "inspect", 125, "Error: {IO}{INV}"),
    ("a:b@", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:b@", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:b@", "rmi", 125, "Error: {INV}"),
    ("a:b@", "inspect", 125, "Error: {IO}{INV}"),
    ("a@@sha256:" + H, "tag", 125, "Error: {N}{N}{INV}"),
    ("a@@sha256:" + H, "untag", 125, "Error: {N}{N}{INV}"),
    ("a@@sha256:" + H, "rmi", 125, "Error: {INV}"),
    ("a@@sha256:" + H, "inspect", 125, "Error: {IO}{INV}"),
    ("a.b_c/d", "tag", 0, "localhost/{i}:latest"),
    ("a.b_c/d", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a.b_c/d", "rmi", 1, "Error: {i}{NK}"),
    ("a.b_c/d", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a_b.c/d", "tag", 0, "localhost/{i}:latest"),
    ("a_b.c/d", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("a_b.c/d", "rmi", 1, "Error: {i}{NK}"),
    ("a_b.c/d", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("localhost_/a", "tag", 125, "Error: {N}{N}{INV}"),
    ("localhost_/a", "untag", 125, "Error: {N}{N}{INV}"),
    ("localhost_/a", "rmi", 125, "Error: {INV}"),
    ("localhost_/a", "inspect", 125, "Error: {IO}{INV}"),
    ("Localhost/a", "tag", 125, "Error: {N}{INV}: {LOW}"),
    ("Localhost/a", "untag", 125, "Error: {N}{INV}: {LOW}"),
    ("Localhost/a", "rmi", 1, "Error: {i}{NK}"),
    ("Localhost/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("localhost/Foo", "tag", 125, "Error: {N}{N}{LOW}"),
    ("localhost/Foo", "untag", 125, "Error: {N}{N}{LOW}"),
    ("localhost/Foo", "rmi", 125, "Error: {LOW}"),
    ("localhost/Foo", "inspect", 125, "Error: {IO}{LOW}"),
    ("LOCALHOST:5000/a", "tag", 0, "{i}:latest"),
    ("LOCALHOST:5000/a", "untag", 125, "Error: {i}:latest{TNK}"),
    ("LOCALHOST:5000/a", "rmi", 1, "Error: {i}{NK}"),
    ("LOCALHOST:5000/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("docker.io/Foo", "tag", 125, "Error: {N}{N}{LOW}"),
    ("docker.io/Foo", "untag", 125, "Error: {N}{N}{LOW}"),
    ("docker.io/Foo", "rmi", 125, "Error: {LOW}"),
    ("docker.io/Foo", "inspect", 125, "Error: {IO}{LOW}"),
    ("docker.io", "tag", 0, "localhost/{i}:latest"),
    ("docker.io", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("docker.io", "rmi", 1, "Error: {i}{NK}"),
    ("docker.io", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("docker.io/library", "tag", 0, "{i}/library:latest"),
    ("docker.io/library", "untag", 125, "Error: {i}/library:latest{TNK}"),
    ("docker.io/library", "rmi", 1, "Error: {i}{NK}"),
    ("docker.io/library", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("library/a", "tag", 0, "localhost/{i}:latest"),
    ("library/a", "untag", 125, "Error: localhost/{i}:latest{TNK}"),
    ("library/a", "rmi", 1, "Error: {i}{NK}"),
    ("library/a", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a::b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a::b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a::b", "rmi", 125, "Error: {INV}"),
    ("a::b", "inspect", 125, "Error: {IO}{INV}"),
    ("a\x7fb", "tag", 125, 'Error: normalizing name "a\\x7fb": normalizing name "a\\x7fb": {INV}'),
    (
        "a\x7fb",
        "untag",
        125,
        'Error: normalizing name "a\\x7fb": normalizing name "a\\x7fb": {INV}',
    ),
    ("a\x7fb", "rmi", 125, "Error: {INV}"),
    ("a\x7fb", "inspect", 125, "Error: {IO}{INV}"),
    ("a\nb", "tag", 125, 'Error: normalizing name "a\\nb": normalizing name "a\\nb": {INV}'),
    ("a\nb", "untag", 125, 'Error: normalizing name "a\\nb": normalizing name "a\\nb": {INV}'),
    ("a\nb", "rmi", 125, "Error: {INV}"),
    ("a\nb", "inspect", 125, "Error: {IO}{INV}"),
    ("A" * 256, "tag", 125, "Error: {N}{N}{LOW}"),
    ("A" * 256, "untag", 125, "Error: {N}{N}{LOW}"),
    ("A" * 256, "rmi", 125, "Error: {LOW}"),
    ("A" * 256, "inspect", 125, "Error: {IO}{LOW}"),
    ("a" * 256 + ":" + "a" * 129, "tag", 125, "Error: {N}{N}{INV}"),
    ("a" * 256 + ":" + "a" * 129, "untag", 125, "Error: {N}{N}{INV}"),
    ("a" * 256 + ":" + "a" * 129, "rmi", 125, "Error: {INV}"),
    ("a" * 256 + ":" + "a" * 129, "inspect", 125, "Error: {IO}{INV}"),
    ("FOO:BAR", "tag", 125, "Error: {N}{N}{LOW}"),
    ("FOO:BAR", "untag", 125, "Error: {N}{N}{LOW}"),
    ("FOO:BAR", "rmi", 125, "Error: {LOW}"),
    ("FOO:BAR", "inspect", 125, "Error: {IO}{LOW}"),
    ("FOO:" + "a" * 129, "tag", 125, "Error: {N}{N}{INV}"),
    ("FOO:" + "a" * 129, "untag", 125, "Error: {N}{N}{INV}"),
    ("FOO:" + "a" * 129, "rmi", 125, "Error: {INV}"),
    ("FOO:" + "a" * 129, "inspect", 125, "Error: {IO}{INV}"),
    ("\u0130", "tag", 125, "Error: {N}{N}{LOW}"),
    ("\u0130", "untag", 125, "Error: {N}{N}{LOW}"),
    ("\u0130", "rmi", 125, "Error: {LOW}"),
    ("\u0130", "inspect", 125, "Error: {IO}{LOW}"),
    ("\u212a", "tag", 125, "Error: {N}{N}{LOW}"),
    ("\u212a", "untag", 125, "Error: {N}{N}{LOW}"),
    ("\u212a", "rmi", 125, "Error: {LOW}"),
    ("\u212a", "inspect", 125, "Error: {IO}{LOW}"),
    ("a" * 10000, "tag", 125, "Error: {N}{N}{LONG}"),
    ("a" * 10000, "untag", 125, "Error: {N}{N}{LONG}"),
    ("a" * 10000, "rmi", 125, "Error: {LONG}"),
    ("a" * 10000, "inspect", 125, "Error: {IO}{LONG}"),
    ("a@sha384:" + "0" * 96, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("a@sha384:" + "0" * 96, "untag", 125, "Error: localhost/{i}{TNK}"),
    ("a@sha384:" + "0" * 96, "rmi", 1, "Error: {i}{NK}"),
    ("a@sha384:" + "0" * 96, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a@sha512:" + H, "tag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha512:" + H, "untag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha512:" + H, "rmi", 125, "Error: {DLEN}"),
    ("a@sha512:" + H, "inspect", 125, "Error: {IO}{DLEN}"),
    ("a@sha256+b64:" + "0" * 64, "tag", 125, "Error: {N}{N}{DUNS}"),
    ("a@sha256+b64:" + "0" * 64, "untag", 125, "Error: {N}{N}{DUNS}"),
    ("a@sha256+b64:" + "0" * 64, "rmi", 125, "Error: {DUNS}"),
    ("a@sha256+b64:" + "0" * 64, "inspect", 125, "Error: {IO}{DUNS}"),
    ("a@Sha256:" + H, "tag", 125, "Error: {N}{N}{DFMT}"),
    ("a@Sha256:" + H, "untag", 125, "Error: {N}{N}{DFMT}"),
    ("a@Sha256:" + H, "rmi", 125, "Error: {DFMT}"),
    ("a@Sha256:" + H, "inspect", 125, "Error: {IO}{DFMT}"),
    ("a@sha256:" + "0" * 32, "tag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha256:" + "0" * 32, "untag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha256:" + "0" * 32, "rmi", 125, "Error: {DLEN}"),
    ("a@sha256:" + "0" * 32, "inspect", 125, "Error: {IO}{DLEN}"),
    ("a@sha256:" + "0" * 31, "tag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:" + "0" * 31, "untag", 125, "Error: {N}{N}{INV}"),
    ("a@sha256:" + "0" * 31, "rmi", 125, "Error: {INV}"),
    ("a@sha256:" + "0" * 31, "inspect", 125, "Error: {IO}{INV}"),
    ("a@x:" + "0" * 32, "tag", 125, "Error: {N}{N}{DUNS}"),
    ("a@x:" + "0" * 32, "untag", 125, "Error: {N}{N}{DUNS}"),
    ("a@x:" + "0" * 32, "rmi", 125, "Error: {DUNS}"),
    ("a@x:" + "0" * 32, "inspect", 125, "Error: {IO}{DUNS}"),
    ("a@sha256:" + H + "0", "tag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha256:" + H + "0", "untag", 125, "Error: {N}{N}{DLEN}"),
    ("a@sha256:" + H + "0", "rmi", 125, "Error: {DLEN}"),
    ("a@sha256:" + H + "0", "inspect", 125, "Error: {IO}{DLEN}"),
    ("SHA256:abc", "tag", 125, "Error: {N}{N}{LOW}"),
    ("SHA256:abc", "untag", 125, "Error: {N}{N}{LOW}"),
    ("SHA256:abc", "rmi", 125, "Error: {LOW}"),
    ("SHA256:abc", "inspect", 125, "Error: {IO}{LOW}"),
    ("sha256:" + "0" * 129, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("sha256:" + "0" * 129, "untag", 125, "Error: {i}: untag by digest not supported"),
    ("sha256:" + "0" * 129, "rmi", 125, "Error: {INV}"),
    ("sha256:" + "0" * 129, "inspect", 125, "Error: {IO}{INV}"),
    ("sha256:" + H + "@sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("sha256:" + H + "@sha256:" + H, "untag", 125, "Error: {i}: untag by digest not supported"),
    ("sha256:" + H + "@sha256:" + H, "rmi", 1, "Error: sha256@sha256:{H}{NK}"),
    ("sha256:" + H + "@sha256:" + H, "inspect", 125, "Error: {IO}sha256@sha256:{H}{NK}"),
    ("localhost:abc/a", "tag", 125, "Error: {N}{N}{INV}"),
    ("localhost:abc/a", "untag", 125, "Error: {N}{N}{INV}"),
    ("localhost:abc/a", "rmi", 125, "Error: {INV}"),
    ("localhost:abc/a", "inspect", 125, "Error: {IO}{INV}"),
    ("a:/b", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:/b", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:/b", "rmi", 125, "Error: {INV}"),
    ("a:/b", "inspect", 125, "Error: {IO}{INV}"),
    ("a/b:c/d", "tag", 125, "Error: {N}{N}{INV}"),
    ("a/b:c/d", "untag", 125, "Error: {N}{N}{INV}"),
    ("a/b:c/d", "rmi", 125, "Error: {INV}"),
    ("a/b:c/d", "inspect", 125, "Error: {IO}{INV}"),
    ("x:" + "a" * 127 + "@sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("x:" + "a" * 127 + "@sha256:" + H, "untag", 125, "Error: localhost/x@sha256:{H}{TNK}"),
    ("x:" + "a" * 127 + "@sha256:" + H, "rmi", 1, "Error: x@sha256:{H}{NK}"),
    ("x:" + "a" * 127 + "@sha256:" + H, "inspect", 125, "Error: {IO}x@sha256:{H}{NK}"),
    ("example.com/" + "a" * 243, "tag", 0, "{i}:latest"),
    ("example.com/" + "a" * 243, "untag", 125, "Error: {i}:latest{TNK}"),
    ("example.com/" + "a" * 243, "rmi", 1, "Error: {i}{NK}"),
    ("example.com/" + "a" * 243, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("example.com/" + "a" * 244, "tag", 125, "Error: {N}{N}{LONG}"),
    ("example.com/" + "a" * 244, "untag", 125, "Error: {N}{N}{LONG}"),
    ("example.com/" + "a" * 244, "rmi", 125, "Error: {LONG}"),
    ("example.com/" + "a" * 244, "inspect", 125, "Error: {IO}{LONG}"),
    ("a.b/c:D", "tag", 0, "{i}"),
    ("a.b/c:D", "untag", 125, "Error: {i}{TNK}"),
    ("a.b/c:D", "rmi", 1, "Error: {i}{NK}"),
    ("a.b/c:D", "inspect", 125, "Error: {IO}{i}{NK}"),
    ("a@", "tag", 125, "Error: {N}{N}{INV}"),
    ("a@", "untag", 125, "Error: {N}{N}{INV}"),
    ("a@", "rmi", 125, "Error: {INV}"),
    ("a@", "inspect", 125, "Error: {IO}{INV}"),
    ("a:b@c", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:b@c", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:b@c", "rmi", 125, "Error: {INV}"),
    ("a:b@c", "inspect", 125, "Error: {IO}{INV}"),
    ("docker.io/library/a:b@sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    (
        "docker.io/library/a:b@sha256:" + H,
        "untag",
        125,
        "Error: docker.io/library/a@sha256:{H}{TNK}",
    ),
    ("docker.io/library/a:b@sha256:" + H, "rmi", 1, "Error: docker.io/library/a@sha256:{H}{NK}"),
    (
        "docker.io/library/a:b@sha256:" + H,
        "inspect",
        125,
        "Error: {IO}docker.io/library/a@sha256:{H}{NK}",
    ),
    ("localhost/a:b@sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("localhost/a:b@sha256:" + H, "untag", 125, "Error: localhost/a@sha256:{H}{TNK}"),
    ("localhost/a:b@sha256:" + H, "rmi", 1, "Error: localhost/a@sha256:{H}{NK}"),
    ("localhost/a:b@sha256:" + H, "inspect", 125, "Error: {IO}localhost/a@sha256:{H}{NK}"),
    ("a/b@sha256:" + H, "tag", 125, "Error: {i}: tag by digest not supported"),
    ("a/b@sha256:" + H, "untag", 125, "Error: localhost/{i}{TNK}"),
    ("a/b@sha256:" + H, "rmi", 1, "Error: {i}{NK}"),
    ("a/b@sha256:" + H, "inspect", 125, "Error: {IO}{i}{NK}"),
    ("docker.io/library/Foo", "tag", 125, "Error: {N}{N}{LOW}"),
    ("docker.io/library/Foo", "untag", 125, "Error: {N}{N}{LOW}"),
    ("docker.io/library/Foo", "rmi", 125, "Error: {LOW}"),
    ("docker.io/library/Foo", "inspect", 125, "Error: {IO}{LOW}"),
    ("a:\xe9", "tag", 125, "Error: {N}{N}{INV}"),
    ("a:\xe9", "untag", 125, "Error: {N}{N}{INV}"),
    ("a:\xe9", "rmi", 125, "Error: {INV}"),
    ("a:\xe9", "inspect", 125, "Error: {IO}{INV}"),
    ('"q"', "tag", 125, 'Error: normalizing name "\\"q\\"": normalizing name "\\"q\\"": {INV}'),
    ('"q"', "untag", 125, 'Error: normalizing name "\\"q\\"": normalizing name "\\"q\\"": {INV}'),
    ('"q"', "rmi", 125, "Error: {INV}"),
    ('"q"', "inspect", 125, "Error: {IO}{INV}"),
    ("a\\b", "tag", 125, 'Error: normalizing name "a\\\\b": normalizing name "a\\\\b": {INV}'),
    ("a\\b", "untag", 125, 'Error: normalizing name "a\\\\b": normalizing name "a\\\\b": {INV}'),
    ("a\\b", "rmi", 125, "Error: {INV}"),
    ("a\\b", "inspect", 125, "Error: {IO}{INV}"),
    (
        "a\u200bb",
        "tag",
        125,
        'Error: normalizing name "a\\u200bb": normalizing name "a\\u200bb": {INV}',
    ),
    (
        "a\u200bb",
        "untag",
        125,
        'Error: normalizing name "a\\u200bb": normalizing name "a\\u200bb": {INV}',
    ),
    ("a\u200bb", "rmi", 125, "Error: {INV}"),
    ("a\u200bb", "inspect", 125, "Error: {IO}{INV}"),
    ("a\udcff", "tag", 125, 'Error: normalizing name "a\\xff": normalizing name "a\\xff": {INV}'),
    ("a\udcff", "untag", 125, 'Error: normalizing name "a\\xff": normalizing name "a\\xff": {INV}'),
    ("a\udcff", "rmi", 125, "Error: {INV}"),
    ("a\udcff", "inspect", 125, "Error: {IO}{INV}"),
    ("Foo", "tagsrc", 125, "Error: {LOW}"),
    ("Foo", "untagimg", 125, "Error: {LOW}"),
    ("", "tagsrc", 125, "Error: {EMPTY}"),
    ("", "untagimg", 125, "Error: {EMPTY}"),
    ("a", "tagsrc", 125, "Error: a{NK}"),
    ("a", "untagimg", 125, "Error: a{NK}"),
    ("sha256:abc", "tagsrc", 125, "Error: {i}: invalid format: no 64-byte hexadecimal value"),
    ("sha256:abc", "untagimg", 125, "Error: {i}: invalid format: no 64-byte hexadecimal value"),
    ("a:b@sha256:" + H, "tagsrc", 125, "Error: a@sha256:{H}{NK}"),
    ("a:b@sha256:" + H, "untagimg", 125, "Error: a@sha256:{H}{NK}"),
    ("docker://a", "tagsrc", 125, 'Error: {UT}"docker" for looking up local images'),
    ("docker://a", "untagimg", 125, 'Error: {UT}"docker" for looking up local images'),
    ("a" * 256, "tagsrc", 125, "Error: {LONG}"),
    ("a" * 256, "untagimg", 125, "Error: {LONG}"),
    ("sha256:" + H, "tagsrc", 125, "Error: {i}{NK}"),
    ("sha256:" + H, "untagimg", 125, "Error: {i}{NK}"),
    ("img", "tagsrc", 125, "Error: {i}{NK}"),
    ("img", "untagimg", 125, "Error: {i}{NK}"),
    ("Foo/bar", "tagsrc", 125, "Error: {i}{NK}"),
    ("Foo/bar", "untagimg", 125, "Error: {i}{NK}"),
    ("docker:a", "rmi", 1, "Error: {i}{NK}"),
    ("docker:a", "tag", 0, "localhost/{i}"),
    ("docker://", "rmi", 125, "Error: {INV}"),
    ("docker://", "tag", 125, "Error: {N}{N}{INV}"),
    ("docker://A", "rmi", 125, "Error: {INV}"),
    ("docker://A", "tag", 125, "Error: {N}{N}{INV}"),
    ("dir:x", "rmi", 125, 'Error: {UT}"dir" for looking up local images'),
    ("dir:x", "tag", 0, "localhost/{i}"),
    ("dir:", "rmi", 125, 'Error: {UT}"dir" for looking up local images'),
    ("dir:", "tag", 125, "Error: {N}{N}{INV}"),
    ("oci:", "rmi", 125, 'Error: {UT}"oci" for looking up local images'),
    ("oci:", "tag", 125, "Error: {N}{N}{INV}"),
    ("oci:x:y", "rmi", 125, 'Error: {UT}"oci" for looking up local images'),
    ("oci:x:y", "tag", 125, "Error: {N}{N}{INV}"),
    ("tarball:x", "rmi", 1, "Error: {i}{NK}"),
    ("tarball:x", "tag", 0, "localhost/{i}"),
    ("sif:x", "rmi", 125, 'Error: {UT}"sif" for looking up local images'),
    ("sif:x", "tag", 0, "localhost/{i}"),
    ("ostree:x", "rmi", 1, "Error: {i}{NK}"),
    ("ostree:x", "tag", 0, "localhost/{i}"),
    ("atomic:x", "rmi", 1, "Error: {i}{NK}"),
    ("atomic:x", "tag", 0, "localhost/{i}"),
    ("docker-daemon:x", "rmi", 1, "Error: {i}{NK}"),
    ("docker-daemon:x", "tag", 0, "localhost/{i}"),
    ("docker-daemon:X", "rmi", 1, "Error: {i}{NK}"),
    ("docker-daemon:X", "tag", 0, "localhost/{i}"),
    ("docker-archive:x", "rmi", 125, 'Error: {UT}"docker-archive" for looking up local images'),
    ("docker-archive:x", "tag", 0, "localhost/{i}"),
    ("oci-archive:x", "rmi", 125, 'Error: {UT}"oci-archive" for looking up local images'),
    ("oci-archive:x", "tag", 0, "localhost/{i}"),
    ("containers-storage:", "rmi", 125, "Error: {INV}"),
    ("containers-storage:", "tag", 125, "Error: {N}{N}{INV}"),
    ("containers-storage:Foo", "rmi", 1, "Error: {i}{NK}"),
    ("containers-storage:Foo", "tag", 0, "localhost/{i}"),
    ("foo:bar", "rmi", 1, "Error: {i}{NK}"),
    ("foo:bar", "tag", 0, "localhost/{i}"),
    ("localhost:x", "rmi", 1, "Error: {i}{NK}"),
    ("localhost:x", "tag", 0, "localhost/{i}"),
    ("docker-daemon:x:1", "rmi", 125, 'Error: {UT}"docker-daemon" for looking up local images'),
    ("containers-storage:a@sha256:" + H, "rmi", 1, "Error{NK}"),
    ("docker://a:b", "rmi", 125, 'Error: {UT}"docker" for looking up local images'),
    ("containers-storage:x.io/a", "rmi", 1, "Error{NK}"),
]


def simulate(command: str, text: str) -> tuple[int, str]:
    """What aiopod's reference layer makes of *text* for *command*, against a store whose
    only image is ``localhost/img:1`` (so every name lookup misses)."""
    if command == "tag":
        try:
            return 0, str(check_tag_name(text))
        except InvalidReference as exc:
            return exit_code_of(exc), f"Error: {exc}"
    if command == "untag":
        try:
            name = str(check_untag_name(text))
        except InvalidReference as exc:
            return exit_code_of(exc), f"Error: {exc}"
        return 125, f"Error: {TagNotKnown(name)}"
    where: Command = "inspect" if command == "inspect" else "rmi"
    try:
        lookup = parse_lookup_input(text)
    except InvalidReference as exc:
        return exit_code_of(exc), "Error: " + command_error_message(where, str(exc))
    missing = "image not known" if lookup.transport else str(ImageNotKnown(lookup.text))
    # rmi exits 1 for "image not known"; tag, untag and image inspect exit 125.
    return (1 if command == "rmi" else 125), "Error: " + command_error_message(where, missing)


@pytest.mark.parametrize(
    ("text", "command", "code", "expected"),
    MEASURED,
    ids=[f"{i}-{c}" for i, (_, c, _, _) in enumerate(MEASURED)],
)
def test_matches_measured_podman(text: str, command: str, code: int, expected: str) -> None:
    assert simulate(command, text) == (code, _expand(text, expected))


def test_measured_table_is_complete() -> None:
    commands = {c for _, c, _, _ in MEASURED}
    assert commands == {"tag", "untag", "rmi", "inspect", "tagsrc", "untagimg"}
    assert len({t for t, _, _, _ in MEASURED}) > 150


# --------------------------------------------------------------------------------------------
# Concrete normalisation (grammar and rules; the podman-visible cases are in MEASURED)


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "", "busybox", None, None),
        ("a/b", "a", "b", None, None),
        ("a_b/c", "", "a_b/c", None, None),
        ("a.b_c/d", "", "a.b_c/d", None, None),
        ("localhost:5000/a:b", "localhost:5000", "a", "b", None),
        ("localhost:5000", "", "localhost", "5000", None),
        ("Example.com/a", "Example.com", "a", None, None),
        ("x.io/a/b/c:T_1.-", "x.io", "a/b/c", "T_1.-", None),
        (f"a:b@sha256:{H}", "", "a", "b", f"sha256:{H}"),
        (f"a@sha512:{'0' * 128}", "", "a", None, f"sha512:{'0' * 128}"),
        ("a--b__c.d_e", "", "a--b__c.d_e", None, None),
        ("sha256:abc", "", "sha256", "abc", None),
    ],
)
def test_parse_reference_fields(
    text: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref == Reference(domain, path, tag, digest)
    assert str(ref) == text
    assert ref.name == (f"{domain}/{path}" if domain else path)


@pytest.mark.parametrize(
    ("text", "docker", "local", "candidates"),
    [
        (
            "app",
            "docker.io/library/app:latest",
            "localhost/app:latest",
            ["localhost/app:latest", "docker.io/library/app:latest"],
        ),
        (
            "app:1",
            "docker.io/library/app:1",
            "localhost/app:1",
            ["localhost/app:1", "docker.io/library/app:1"],
        ),
        (
            "x/y",
            "docker.io/x/y:latest",
            "localhost/x/y:latest",
            ["localhost/x/y:latest", "docker.io/x/y:latest"],
        ),
        ("docker.io/x", "docker.io/library/x:latest", "docker.io/library/x:latest", None),
        ("index.docker.io/x", "docker.io/library/x:latest", "docker.io/library/x:latest", None),
        ("docker.io/library/x:2", "docker.io/library/x:2", "docker.io/library/x:2", None),
        ("quay.io/x/y", "quay.io/x/y:latest", "quay.io/x/y:latest", None),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest", None),
        ("localhost:5000/a", "localhost:5000/a:latest", "localhost:5000/a:latest", None),
        ("Docker.io/a", "Docker.io/a:latest", "Docker.io/a:latest", None),
        (
            f"a@sha256:{H}",
            f"docker.io/library/a@sha256:{H}",
            f"localhost/a@sha256:{H}",
            [f"localhost/a@sha256:{H}", f"docker.io/library/a@sha256:{H}"],
        ),
        (
            f"a:1@sha256:{H}",
            f"docker.io/library/a:1@sha256:{H}",
            f"localhost/a@sha256:{H}",
            [f"localhost/a@sha256:{H}", f"docker.io/library/a@sha256:{H}"],
        ),
        (
            f"quay.io/a:1@sha256:{H}",
            f"quay.io/a:1@sha256:{H}",
            f"quay.io/a@sha256:{H}",
            [f"quay.io/a@sha256:{H}"],
        ),
        (
            "example.com",
            "docker.io/library/example.com:latest",
            "localhost/example.com:latest",
            ["localhost/example.com:latest", "docker.io/library/example.com:latest"],
        ),
    ],
)
def test_normalisation_table(
    text: str, docker: str, local: str, candidates: list[str] | None
) -> None:
    assert str(normalize_docker(text)) == docker
    assert str(normalize_local(text)) == local
    if candidates is None:  # fully qualified: just the name, normalised as for tag
        candidates = [local]
    assert lookup_candidates(text) == candidates


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (H, f"invalid repository name ({H}), cannot specify 64-byte hexadecimal strings"),
        ("Foo/bar", "invalid reference format: repository name must be lowercase"),
        ("", "invalid reference format"),  # docker.io/library/ does not parse
        ("docker.io/" + "a" * 245, "repository name must not be more than 255 characters"),
        (f"a@md5:{'0' * 32}", "unsupported digest algorithm"),
    ],
)
def test_normalize_docker_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        normalize_docker(text)
    assert str(info.value) == message


def test_normalize_docker_keeps_a_non_host_first() -> None:
    # "a.b_c" has a "." so SplitDockerDomain takes it as the domain, but it is not a host
    # name, so the final parse files it under the path: docker's result has no domain.
    assert normalize_docker("a.b_c/d") == Reference("", "a.b_c/d", "latest")
    assert normalize_local("a.b_c/d") == Reference("localhost", "a.b_c/d", "latest")


def test_normalize_local_error_layers() -> None:
    # A malformed input: NormalizeName wraps once (tag/untag wrap a second time).
    with pytest.raises(InvalidReference) as info:
        normalize_local("a//b")
    assert str(info.value) == 'normalizing name "a//b": invalid reference format'
    assert info.value.reason == "invalid reference format"
    assert info.value.text == "a//b"
    # A failure of the normalised parse is not wrapped by NormalizeName.
    with pytest.raises(InvalidReference) as info:
        normalize_local("a" * 246)
    assert str(info.value) == "repository name must not be more than 255 characters"


def test_lookup_candidates_skip_names_that_do_not_normalise() -> None:
    assert lookup_candidates(H) == [f"localhost/{H}:latest"]  # docker.io refuses 64 hex
    assert lookup_candidates("a" * 250) == []
    assert lookup_candidates("Foo/bar") == []
    assert lookup_candidates(f"sha256:{H}") == []


def test_parse_lookup_input() -> None:
    li = parse_lookup_input(f"quay.io/a:1@sha256:{H}")
    assert li == LookupInput(
        f"quay.io/a@sha256:{H}",
        Reference("quay.io", "a", None, f"sha256:{H}"),
        None,
        (f"quay.io/a@sha256:{H}",),
    )
    assert li.fully_qualified
    assert li.digest == f"sha256:{H}"
    by_id = parse_lookup_input(f"sha256:{H}")
    assert by_id.image_id == H
    assert by_id.text == f"sha256:{H}"
    assert by_id.candidates == ()
    short = parse_lookup_input("abc123")
    assert not short.fully_qualified
    assert short.image_id is None
    assert short.candidates == ("localhost/abc123:latest", "docker.io/library/abc123:latest")
    storage = parse_lookup_input("containers-storage:localhost/img:1")
    assert (storage.transport, storage.text, storage.candidates) == (
        "containers-storage",
        "localhost/img:1",
        (),
    )
    with pytest.raises(InvalidReference, match=r'^unsupported transport "oci" for looking up'):
        parse_lookup_input("oci:/some/dir")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", False),
        ("a/b", False),
        ("example.com", False),
        ("localhost", False),
        ("localhost:5000", False),
        ("a.b_c/d", False),
        ("Localhost/a", False),
        ("", False),
        ("a//b", False),
        ("localhost/a", True),
        ("a.b/c", True),
        ("a:5000/b", True),
        ("LOCALHOST:5000/a", True),
        ("Docker.io/a", True),
    ],
)
def test_is_fully_qualified(text: str, expected: bool) -> None:
    assert is_fully_qualified(text) is expected


def test_ids() -> None:
    assert is_id_prefix("a")
    assert is_id_prefix(H)
    assert not is_id_prefix("")
    assert not is_id_prefix(H + "0")
    assert not is_id_prefix("ABC")
    assert not is_id_prefix("abg")
    assert parse_sha256_id("abc") is None
    assert parse_sha256_id(H) is None
    assert parse_sha256_id(f"sha256:{H}") == H
    for bad in ("sha256:", "sha256:abc", f"sha256:{HU}", f"sha256:{H}0"):
        with pytest.raises(InvalidReference) as info:
            parse_sha256_id(bad)
        assert str(info.value) == f"{bad}: invalid format: no 64-byte hexadecimal value"


def test_command_checks() -> None:
    assert validate_tag_name is check_tag_name
    assert validate_untag_name is check_untag_name
    assert str(check_tag_name("app")) == "localhost/app:latest"
    assert str(check_untag_name(f"a:1@sha256:{H}")) == f"localhost/a@sha256:{H}"
    for text in (f"a@sha256:{H}", "sha256:", f"sha256:{H}"):
        with pytest.raises(InvalidReference, match=r"tag by digest not supported$"):
            check_tag_name(text)
    with pytest.raises(InvalidReference, match=r"^sha256:x: untag by digest not supported$"):
        check_untag_name("sha256:x")
    assert command_error_message("inspect", "x: image not known") == (
        "inspecting object: x: image not known"
    )
    assert command_error_message("rmi", "x: image not known") == "x: image not known"
    assert exit_code_of(InvalidReference("m", text="t")) == 125


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("abc", '"abc"'),
        ("", '""'),
        ('"q"', r'"\"q\""'),
        ("a\\b", r'"a\\b"'),
        ("a\tb\n\r\a\b\f\v", r'"a\tb\n\r\a\b\f\v"'),
        ("a\x00\x1f\x7f", r'"a\x00\x1f\x7f"'),
        ("\u00e9\u0130\u212a", '"\u00e9\u0130\u212a"'),
        ("a\u200bb", r'"a\u200bb"'),
        ("\u00a0", r'"\u00a0"'),
        ("\U000e0001", r'"\U000e0001"'),
        ("\U0001f600", '"\U0001f600"'),
        ("a\udcff", r'"a\xff"'),
        ("\udcc3\udca9", '"\u00e9"'),  # two undecodable bytes that are UTF-8 for Go
        ("\ud800", r'"\xed\xa0\x80"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_go_lower() -> None:
    assert go_lower("ABC") == "abc"
    assert go_lower("\u0130") == "i"  # Go's simple mapping; Python's lower() gives "i\u0307"
    assert go_lower("\u212a") == "k"
    assert go_lower("\u00c4") == "\u00e4"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docker://a", ("docker", "//a")),
        ("docker://a:b", ("docker", "//a:b")),
        ("dir:x", ("dir", "x")),
        ("dir:", ("dir", "")),
        ("oci:", ("oci", "")),
        ("oci:x:y", ("oci", "x:y")),
        ("oci-archive:x", ("oci-archive", "x")),
        ("docker-archive:x", ("docker-archive", "x")),
        ("sif:x", ("sif", "x")),
        ("docker-daemon:x:1", ("docker-daemon", "x:1")),
        ("containers-storage:a", ("containers-storage", "a")),
        ("containers-storage:x.io/a", ("containers-storage", "x.io/a")),
        (f"containers-storage:@{H}", ("containers-storage", f"@{H}")),
        (f"containers-storage:a@sha256:{H}", ("containers-storage", f"a@sha256:{H}")),
        ("containers-storage:94a642ad5a46", ("containers-storage", "94a642ad5a46")),
        ("docker:a", None),
        ("docker://", None),
        ("docker://A", None),
        (f"docker://a:b@sha256:{H}", None),
        ("docker-daemon:x", None),
        ("tarball:/nonexistent/file", None),
        ("ostree:x", None),
        ("atomic:x", None),
        ("containers-storage:", None),
        ("containers-storage:Foo", None),
        ("containers-storage:a@", None),
        ("localhost:5000/a", None),
        ("a", None),
    ],
)
def test_split_transport(text: str, expected: tuple[str, str] | None) -> None:
    assert split_transport(text) == expected


def test_split_transport_tarball(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    layer.write_bytes(b"")
    assert split_transport(f"tarball:{layer}") == ("tarball", str(layer))
    assert split_transport(f"tarball:{layer}:{tmp_path}/missing") is None


# --------------------------------------------------------------------------------------------
# Properties

_BRIEF_GRAMMAR = re.compile(  # the grammar as distribution/reference writes it (ambiguous)
    r"(?P<name>(?:(?P<domain>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r"(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*))"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}))?",
    re.ASCII,
)

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_FUNCTIONS = (
    parse_reference,
    normalize_docker,
    normalize_local,
    lookup_candidates,
    check_tag_name,
    check_untag_name,
    parse_lookup_input,
    parse_sha256_id,
)
_PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _component(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.text(_ALNUM, min_size=1, max_size=5), min_size=1, max_size=3))
    seps = draw(
        st.lists(
            st.sampled_from([".", "_", "__", "-", "--", "---"]),
            min_size=len(parts) - 1,
            max_size=len(parts) - 1,
        )
    )
    return parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))


@st.composite
def references(draw: st.DrawFn) -> str:
    """Valid references of the grammar, with every optional part sometimes present."""
    host_label = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
    text = ""
    if draw(st.booleans()):
        labels = draw(st.lists(host_label, min_size=1, max_size=3))
        text = ".".join(labels)
        if draw(st.booleans()):
            text += f":{draw(st.integers(0, 65535))}"
        text += "/"
    text += "/".join(draw(st.lists(_component(), min_size=1, max_size=4)))
    if len(text) > 255:
        text = text[:10]  # keep the name legal; a cut never ends on a separator issue below
        text = text.rstrip("._-/") or "a"
        if ":" in text or "/" in text:
            text = "a"
    if draw(st.booleans()):
        text += ":" + draw(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True))
    if draw(st.booleans()):
        algorithm, size = draw(st.sampled_from([("sha256", 64), ("sha384", 96), ("sha512", 128)]))
        text += f"@{algorithm}:" + draw(st.text("0123456789abcdef", min_size=size, max_size=size))
    return text


def _mutate(text: str, data: st.DataObject) -> str:
    position = data.draw(st.integers(0, len(text)))
    change = data.draw(st.sampled_from(["insert", "delete", "upper"]))
    if change == "insert":
        char = data.draw(st.sampled_from(list("A_-.:/@+ \t\x00\u0130\u212a\u00e9\udcff")))
        return text[:position] + char + text[position:]
    if change == "delete":
        return text[:position] + text[position + 1 :]
    return text[:position] + text[position:].upper()


_ANY_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=80),
    st.text("aAzZ09._-/:@+[]sha256 \t\n\x00\u0130\u212a\u00e9", max_size=60),
    st.text(_ALNUM + "-./:@", min_size=200, max_size=3000),
)


def _check_total(text: str) -> None:
    for function in _FUNCTIONS:
        with contextlib.suppress(InvalidReference):
            function(text)
    assert isinstance(is_fully_qualified(text), bool)
    assert isinstance(is_id_prefix(text), bool)
    result = split_transport(text)
    assert result is None or (isinstance(result, tuple) and len(result) == 2)
    quoted = go_quote(text)
    assert quoted.startswith('"')
    assert quoted.endswith('"')


@_PROPERTY
@given(_ANY_TEXT)
@example("")
@example("a" * 100_000)
@example("a" * 100_000 + "!")
@example("a-" * 50_000 + "!")
@example("a." * 50_000)
@example("a:" + "b" * 100_000)
@example("a@sha256:" + "0" * 100_000)
@example("[" * 1000)
@example("containers-storage:[" + "x" * 100)
@example("tarball:\x00")
@example("tarball:\ud800")
def test_no_input_crashes(text: str) -> None:
    _check_total(text)


@_PROPERTY
@given(references(), st.data())
def test_mutated_references_never_crash(text: str, data: st.DataObject) -> None:
    _check_total(_mutate(text, data))


@_PROPERTY
@given(references())
def test_round_trip(text: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == text
    assert parse_reference(str(ref)) == ref
    assert ref.name == text.split("@")[0].rsplit(":", 1)[0] or ":" in ref.name


@_PROPERTY
@given(st.one_of(references(), st.builds(_mutate, references(), st.data()), _ANY_TEXT))
def test_normalisation_is_idempotent(text: str) -> None:
    try:
        docker = normalize_docker(text)
    except InvalidReference:
        pass
    else:
        # (The domain may still be empty: see test_normalize_docker_keeps_a_non_host_first.)
        assert docker.tag is not None or docker.digest is not None
        assert normalize_docker(str(docker)) == docker
    try:
        local = normalize_local(text)
    except InvalidReference:
        pass
    else:
        assert local.fully_qualified
        assert (local.tag is None) != (local.digest is None)
        assert normalize_local(str(local)) == local
        assert check_untag_name(str(local)) == local


@_PROPERTY
@given(
    st.one_of(
        st.text("aA0._-/:@+" + "sha256", max_size=14),
        references().filter(lambda t: len(t) <= 14),
    )
)
def test_grammar_matches_distribution_regex(text: str) -> None:
    from aiopod import _reference as reference

    mine = reference._REFERENCE_RE.fullmatch(text)
    theirs = _BRIEF_GRAMMAR.fullmatch(text)
    if theirs is None:
        assert mine is None
    else:
        assert mine is not None
        assert mine.group("domain", "path", "tag", "digest") == theirs.group(
            "domain", "path", "tag", "digest"
        )


def test_parse_time_is_linear() -> None:
    def cost(n: int) -> float:
        texts = ["a" * n + "!", "a-" * (n // 2) + "!", "a." * (n // 2) + "/", "A" * n]
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for text in texts:
                with contextlib.suppress(InvalidReference):
                    parse_reference(text)
            best = min(best, time.perf_counter() - start)
        return best

    small, large = cost(2_000), cost(40_000)
    assert large / small < 100  # linear is about 20; backtracking would be astronomically more


# --------------------------------------------------------------------------------------------
# Live comparison with podman (when it is installed)

PEER_INPUTS = [
    "Foo",
    "",
    "a:b:c",
    "x:" + "a" * 129,
    "a" * 246,
    "sha256:abc",
    f"sha256:{H}",
    f"a:b@sha256:{H}",
    "a__b",
    "a___b",
    "a/",
    "localhost:5000/a:b",
    "@",
    "Foo/bar",
    "docker.io/a",
    "a@sha256:" + "0" * 63,
    f"a@SHA256:{H}",
    "a\u200bb",
    "\u0130",
    "docker://a",
    "containers-storage:a",
]


@pytest.mark.peer("podman")
def test_live_podman_agrees(podman, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tarfile

    content = tmp_path / "f"
    content.write_text("hi\n")
    archive = tmp_path / "img.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(content, arcname="f")
    podman("import", str(archive), "localhost/img:1")
    argv = {
        "rmi": ["rmi", "--"],
        "inspect": ["image", "inspect", "--"],
        "untag": ["untag", "localhost/img:1", "--"],
        "tag": ["tag", "localhost/img:1", "--"],
    }
    for command in ("rmi", "inspect", "untag", "tag"):  # tag last: it adds names
        for text in PEER_INPUTS:
            proc = podman(*argv[command], text, check=False)
            got = (proc.returncode, proc.stderr.strip())
            if command == "tag" and proc.returncode == 0:
                names = podman(
                    "image", "inspect", "--format", "{{json .RepoTags}}", "localhost/img:1"
                ).stdout
                expected_code, expected_name = simulate(command, text)
                assert expected_code == 0, text
                assert f'"{expected_name}"' in names, text
                continue
            assert got == simulate(command, text), (command, text)
