"""Image references, parsed and normalised exactly as podman 4.3 does.

The grammar is distribution/reference's (the copy vendored by containers/image 5.23, which
podman 4.3.1 uses), and the normalisations are libimage's (containers/common 0.50.1):

* :func:`parse_reference` - the strict grammar, no normalisation (``reference.Parse``);
* :func:`normalize_docker` - Docker's ``docker.io/library/...:latest`` normalisation;
* :func:`normalize_local` - podman's ``localhost/...:latest`` normalisation (tag, untag, load);
* :func:`parse_lookup_input`, :func:`lookup_candidates` - how an ``rmi``/``inspect``/``tag``
  source argument is classified before the store is searched (B9-B13 of
  ``docs/design/removal-rules.md``);
* :func:`check_tag_name`, :func:`check_untag_name` - the NAME checks of ``tag`` and ``untag``;
* :func:`is_fully_qualified`, :func:`is_id_prefix`, :func:`parse_sha256_id`,
  :func:`split_transport`, :func:`go_quote`, :func:`command_error_message` - helpers.

Every error is an :class:`aiopod.errors.InvalidReference`, whose ``str()`` is exactly the
text podman prints after ``Error: `` for the function's role.

Measured messages
-----------------
Measured on Debian's podman 4.3.1 as root with the vfs driver and an isolated store holding
one image, ``localhost/img:1`` (``podman import`` of a one-file tar), with
``podman rmi X``, ``podman image inspect X``, ``podman tag localhost/img:1 X``,
``podman untag localhost/img:1 X``, and for some inputs ``podman tag X x`` and
``podman untag X``. stderr is ``Error: <message>``; the table gives the exit code and the
message. Three rules held for every input measured, so the table leaves those columns out:

* ``image inspect X`` prints ``inspecting object: `` followed by rmi's message and exits 125,
  even for ``image not known`` (stdout then holds ``[]``);
* ``tag X x`` and ``untag X`` (X as the *image*) print rmi's message and exit 125, even for
  ``image not known``;
* ``untag IMG X`` fails exactly as ``tag IMG X`` does ("= tag"), except for the digest checks.

Legend: inputs are Python literals; ``a{n}`` is ``n`` times ``a``; ``H`` is
``0123456789abcdef`` four times and ``HU`` the same in upper case. ``INV`` invalid reference
format; ``LOW`` repository name must be lowercase; ``EMPTY`` repository name must have at
least one component; ``LONG`` repository name must not be more than 255 characters;
``DFMT`` invalid checksum digest format; ``DLEN`` invalid checksum digest length; ``DUNS``
unsupported digest algorithm; ``N`` ``normalizing name "<X quoted with Go's %q>": ``;
``NK`` ``<X>: image not known`` and ``NK(y)`` ``y: image not known`` (the tag of a digested
input is dropped first); ``NO64`` ``<X>: invalid format: no 64-byte hexadecimal value``;
``UT(t)`` ``unsupported transport "t" for looking up local images``; ``BYDIG``
``<X>: tag by digest not supported``; ``UNDIG`` ``<X>: untag by digest not supported``;
``TNK`` ``<normalised X>: tag not known`` (the name tag added, or for a digested X
``normalize_local(X)``); ``0 → n``: exit 0, the image gained the name ``n``. ``-a`` is
missing: podman takes it as a flag (``rmi -a`` removed every image; ``rmi -- -a`` gives
``INV``). Rows after ``docker:a`` were measured for ``rmi`` and ``tag`` only. ::

    input                    rmi                    tag IMG X                        untag IMG X
    'Foo'                    125 LOW                125 N N LOW                      = tag
    ''                       125 EMPTY              125 N N EMPTY                    = tag
    'a:b:c'                  125 INV                125 N N INV                      = tag
    'x:a{129}'               125 INV                125 N N INV                      = tag
    'x:a{128}'               1 NK                   0 → localhost/x:a{128}           125 TNK
    'x:a{127}'               1 NK                   0 → localhost/x:a{127}           125 TNK
    'a{256}'                 125 LONG               125 N N LONG                     = tag
    'a{255}'                 1 NK                   125 N LONG                       = tag
    'a{246}'                 1 NK                   125 N LONG                       = tag
    'a{245}'                 1 NK                   0 → localhost/a{245}:latest      125 TNK
    'a{244}'                 1 NK                   0 → localhost/a{244}:latest      125 TNK
    'docker.io/a{245}'       1 NK                   125 N LONG                       = tag
    'sha256:abc'             125 NO64               125 BYDIG                        125 UNDIG
    'sha256:H'               1 NK                   125 BYDIG                        125 UNDIG
    'sha256:HU'              125 NO64               125 BYDIG                        125 UNDIG
    'sha256:H0'              125 NO64               125 BYDIG                        125 UNDIG
    'sha256:'                125 INV                125 BYDIG                        125 UNDIG
    'UPPER'                  125 LOW                125 N N LOW                      = tag
    '_a'                     125 INV                125 N N INV                      = tag
    'a_b'                    1 NK                   0 → localhost/a_b:latest         125 TNK
    'a__b'                   1 NK                   0 → localhost/a__b:latest        125 TNK
    'a___b'                  125 INV                125 N N INV                      = tag
    'a-'                     125 INV                125 N N INV                      = tag
    'a--b'                   1 NK                   0 → localhost/a--b:latest        125 TNK
    'a/'                     125 INV                125 N N INV                      = tag
    'a//b'                   125 INV                125 N N INV                      = tag
    '/a'                     125 INV                125 N N INV                      = tag
    'localhost:5000/a:b'     1 NK                   0 → localhost:5000/a:b           125 TNK
    '@'                      125 INV                125 N N INV                      = tag
    'a@'                     125 INV                125 N N INV                      = tag
    'a@sha256:abc'           125 INV                125 N N INV                      = tag
    'a@sha256:H'             1 NK                   125 BYDIG                        125 TNK
    'a:b@sha256:H'           1 NK(a@sha256:H)       125 BYDIG                        125 TNK
    'a:'                     125 INV                125 N N INV                      = tag
    ':a'                     125 INV                125 N N INV                      = tag
    'a:-b'                   125 INV                125 N N INV                      = tag
    'a:.b'                   125 INV                125 N N INV                      = tag
    'a:_b'                   1 NK                   0 → localhost/a:_b               125 TNK
    'Docker.io/a'            1 NK                   0 → Docker.io/a:latest           125 TNK
    'docker.io/a'            1 NK                   0 → docker.io/library/a:latest   125 TNK
    'docker.io/library/a'    1 NK                   0 → docker.io/library/a:latest   125 TNK
    'index.docker.io/a'      1 NK                   0 → docker.io/library/a:latest   125 TNK
    'a.b/c'                  1 NK                   0 → a.b/c:latest                 125 TNK
    'a:5000/b'               1 NK                   0 → a:5000/b:latest              125 TNK
    'localhost/a'            1 NK                   0 → localhost/a:latest           125 TNK
    '[::1]:5000/a'           125 INV                125 N N INV                      = tag
    'a b'                    125 INV                125 N N INV                      = tag
    'a\tb'                   125 INV                125 N N INV                      = tag
    '\xe4'                   125 INV                125 N N INV                      = tag
    'a:\xe4'                 125 INV                125 N N INV                      = tag
    'a@sha256:'              125 INV                125 N N INV                      = tag
    'a@md5:0{32}'            125 DUNS               125 N N DUNS                     = tag
    'a@sha512:0{128}'        1 NK                   125 BYDIG                        125 TNK
    'a@sha256:0{63}'         125 DLEN               125 N N DLEN                     = tag
    'a@SHA256:H'             125 DFMT               125 N N DFMT                     = tag
    'a@sha256:HU'            125 DFMT               125 N N DFMT                     = tag
    'a..b'                   125 INV                125 N N INV                      = tag
    'a.b'                    1 NK                   0 → localhost/a.b:latest         125 TNK
    'a._b'                   125 INV                125 N N INV                      = tag
    'a-_b'                   125 INV                125 N N INV                      = tag
    'localhost'              1 NK                   0 → localhost/localhost:latest   125 TNK
    'localhost:5000'         1 NK                   0 → localhost/localhost:5000     125 TNK
    'example.com'            1 NK                   0 → localhost/example.com:latest 125 TNK
    'example.com:5000'       1 NK                   0 → localhost/example.com:5000   125 TNK
    'a/b/c/d'                1 NK                   0 → localhost/a/b/c/d:latest     125 TNK
    'docker.io/a/b'          1 NK                   0 → docker.io/a/b:latest         125 TNK
    'H'                      1 NK                   0 → localhost/H:latest           125 TNK
    '0123456789ab'           1 NK                   0 → localhost/0123456789ab:latest
                                                                                     125 TNK
    'Example.com/a'          1 NK                   0 → Example.com/a:latest         125 TNK
    'Foo/bar'                1 NK                   125 N invalid reference format: LOW
                                                                                     = tag
    'a:b/c'                  125 INV                125 N N INV                      = tag
    'docker://a'             125 UT(docker)         125 N N INV                      = tag
    'containers-storage:a'   1 image not known      0 → localhost/containers-storage:a
                                                                                     125 TNK
    'oci:x'                  125 UT(oci)            0 → localhost/oci:x              125 TNK
    'a/B'                    125 LOW                125 N N LOW                      = tag
    'a:B'                    1 NK                   0 → localhost/a:B                125 TNK
    'a@sha256:g{64}'         125 INV                125 N N INV                      = tag
    'a@foo'                  125 INV                125 N N INV                      = tag
    'x@'                     125 INV                125 N N INV                      = tag
    'a:b@'                   125 INV                125 N N INV                      = tag
    'a@@sha256:H'            125 INV                125 N N INV                      = tag
    'a.b_c/d'                1 NK                   0 → localhost/a.b_c/d:latest     125 TNK
    'a_b.c/d'                1 NK                   0 → localhost/a_b.c/d:latest     125 TNK
    'localhost_/a'           125 INV                125 N N INV                      = tag
    'Localhost/a'            1 NK                   125 N invalid reference format: LOW
                                                                                     = tag
    'localhost/Foo'          125 LOW                125 N N LOW                      = tag
    'LOCALHOST:5000/a'       1 NK                   0 → LOCALHOST:5000/a:latest      125 TNK
    'docker.io/Foo'          125 LOW                125 N N LOW                      = tag
    'docker.io'              1 NK                   0 → localhost/docker.io:latest   125 TNK
    'docker.io/library'      1 NK                   0 → docker.io/library/library:latest
                                                                                     125 TNK
    'library/a'              1 NK                   0 → localhost/library/a:latest   125 TNK
    'a::b'                   125 INV                125 N N INV                      = tag
    'a\x7fb'                 125 INV                125 N N INV                      = tag
    'a\nb'                   125 INV                125 N N INV                      = tag
    'A{256}'                 125 LOW                125 N N LOW                      = tag
    'a{256}:a{129}'          125 INV                125 N N INV                      = tag
    'FOO:BAR'                125 LOW                125 N N LOW                      = tag
    'FOO:a{129}'             125 INV                125 N N INV                      = tag
    '\u0130'                 125 LOW                125 N N LOW                      = tag
    '\u212a'                 125 LOW                125 N N LOW                      = tag
    'a{10000}'               125 LONG               125 N N LONG                     = tag
    'a@sha384:0{96}'         1 NK                   125 BYDIG                        125 TNK
    'a@sha512:H'             125 DLEN               125 N N DLEN                     = tag
    'a@sha256+b64:0{64}'     125 DUNS               125 N N DUNS                     = tag
    'a@Sha256:H'             125 DFMT               125 N N DFMT                     = tag
    'a@sha256:0{32}'         125 DLEN               125 N N DLEN                     = tag
    'a@sha256:0{31}'         125 INV                125 N N INV                      = tag
    'a@x:0{32}'              125 DUNS               125 N N DUNS                     = tag
    'a@sha256:H0'            125 DLEN               125 N N DLEN                     = tag
    'SHA256:abc'             125 LOW                125 N N LOW                      = tag
    'sha256:0{129}'          125 INV                125 BYDIG                        125 UNDIG
    'sha256:H@sha256:H'      1 NK(sha256@sha256:H)  125 BYDIG                        125 UNDIG
    'localhost:abc/a'        125 INV                125 N N INV                      = tag
    'a:/b'                   125 INV                125 N N INV                      = tag
    'a/b:c/d'                125 INV                125 N N INV                      = tag
    'x:a{127}@sha256:H'      1 NK(x@sha256:H)       125 BYDIG                        125 TNK
    'example.com/a{243}'     1 NK                   0 → example.com/a{243}:latest    125 TNK
    'example.com/a{244}'     125 LONG               125 N N LONG                     = tag
    'a.b/c:D'                1 NK                   0 → a.b/c:D                      125 TNK
    'a:b@c'                  125 INV                125 N N INV                      = tag
    'docker.io/library/a:b@sha256:H'
                             1 NK(docker.io/library/a@sha256:H) 125 BYDIG
                                                                                     125 TNK
    'localhost/a:b@sha256:H' 1 NK(localhost/a@sha256:H) 125 BYDIG
                                                                                     125 TNK
    'a/b@sha256:H'           1 NK                   125 BYDIG                        125 TNK
    'docker.io/library/Foo'  125 LOW                125 N N LOW                      = tag
    'a:\xe9'                 125 INV                125 N N INV                      = tag
    '"q"'                    125 INV                125 N N INV                      = tag
    'a\\b'                   125 INV                125 N N INV                      = tag
    'a\u200bb'               125 INV                125 N N INV                      = tag
    'a\udcff'                125 INV                125 N N INV                      = tag
    'docker:a'               1 NK                   0 → localhost/docker:a
    'docker://'              125 INV                125 N N INV
    'docker://A'             125 INV                125 N N INV
    'dir:x'                  125 UT(dir)            0 → localhost/dir:x
    'dir:'                   125 UT(dir)            125 N N INV
    'oci:'                   125 UT(oci)            125 N N INV
    'oci:x:y'                125 UT(oci)            125 N N INV
    'tarball:x'              1 NK                   0 → localhost/tarball:x
    'sif:x'                  125 UT(sif)            0 → localhost/sif:x
    'ostree:x'               1 NK                   0 → localhost/ostree:x
    'atomic:x'               1 NK                   0 → localhost/atomic:x
    'docker-daemon:x'        1 NK                   0 → localhost/docker-daemon:x
    'docker-daemon:X'        1 NK                   0 → localhost/docker-daemon:X
    'docker-archive:x'       125 UT(docker-archive) 0 → localhost/docker-archive:x
    'oci-archive:x'          125 UT(oci-archive)    0 → localhost/oci-archive:x
    'containers-storage:'    125 INV                125 N N INV
    'containers-storage:Foo' 1 NK                   0 → localhost/containers-storage:Foo
    'containers-storage:localhost/img:1'
                             0 (found it: deleted)  125 N N INV
    'containers-storage:94a642ad5a46'
                             0 (found it: deleted)  0 → localhost/containers-storage:94a642ad5a46
    'foo:bar'                1 NK                   0 → localhost/foo:bar
    'localhost:x'            1 NK                   0 → localhost/localhost:x
    'docker-daemon:x:1'      125 UT(docker-daemon)
    'tarball:/etc/hostname'  125 UT(tarball)
    'containers-storage:@94a642ad5a46649eb7de6948c432b820d77a4a7a7c039d1fe059b086c7712a94'
                             0 (found it: deleted)
    'containers-storage:a@sha256:H'
                             1 image not known
    'docker://a:b'           125 UT(docker)
    'containers-storage:x.io/a'
                             1 image not known

How to produce each text (``tests/test_reference.py`` replays every row this way)
--------------------------------------------------------------------------------
* ``rmi X``, ``tag X x``, ``untag X``: ``str(exc)`` of :func:`parse_lookup_input` (INV, LOW,
  EMPTY, LONG, DFMT, DLEN, DUNS, NO64, UT). A miss is ``ImageNotKnown(lookup.text)`` (NK,
  NK(y)), or just ``image not known`` when ``lookup.transport`` is ``containers-storage``.
  rmi exits 1 for a miss; tag and untag exit 125.
* ``image inspect X``: the same, through ``command_error_message("inspect", message)``; 125.
* ``tag IMG X``: ``str(exc)`` of :func:`check_tag_name` (N N ..., N ..., BYDIG); on success
  the name to add is ``str(check_tag_name(X))``.
* ``untag IMG X``: ``str(exc)`` of :func:`check_untag_name` (as tag, and UNDIG); otherwise
  ``TagNotKnown(str(check_untag_name(X)))`` unless that string is one of the image's names.

Measured versus inferred
------------------------
Measured: every row above, and ``tag``/``untag`` exiting 125 for "image not known". Inferred
from the grammar and from reading containers/image, containers/common and go-digest at the
versions podman 4.3.1 vendors (and consistent with every row): the check order inside
:func:`parse_reference`; the texts of :func:`normalize_docker` for input podman never hands it
directly (``invalid repository name (<64 hex>), cannot specify 64-byte hexadecimal strings``;
``""`` giving ``invalid reference format``); that a lookup candidate failing to normalise is
skipped (only its outcome, NK, is visible); :func:`split_transport` for ``docker-daemon:``
digests, ``tarball:-`` and ``containers-storage:`` ID forms (whose truncated IDs only the
store can confirm); Go's ``%q`` for characters not in the table (printability from Python's
Unicode tables, which may differ from Go 1.19's for characters newer than Unicode 13).

Speed: :func:`parse_reference` is one precompiled, backtracking-free ``fullmatch`` (about
1-2 µs for a typical name, linear in the input's length); it, :func:`normalize_docker` and
:func:`normalize_local` also memoise their successful results.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Final, Literal

from aiopod.errors import InvalidReference

__all__ = (
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "ERR_DIGEST_INVALID_FORMAT",
    "ERR_DIGEST_INVALID_LENGTH",
    "ERR_DIGEST_UNSUPPORTED",
    "ERR_NAME_CONTAINS_UPPERCASE",
    "ERR_NAME_EMPTY",
    "ERR_NAME_TOO_LONG",
    "ERR_REFERENCE_INVALID_FORMAT",
    "INSPECT_ERROR_PREFIX",
    "LOCAL_DOMAIN",
    "NAME_TOTAL_LENGTH_MAX",
    "Command",
    "LookupInput",
    "Reference",
    "check_tag_name",
    "check_untag_name",
    "command_error_message",
    "docker_familiar",
    "go_quote",
    "is_fully_qualified",
    "is_id_prefix",
    "lookup_candidates",
    "normalize_docker",
    "normalize_local",
    "parse_lookup_input",
    "parse_reference",
    "parse_sha256_id",
    "split_transport",
    "validate_tag_name",
    "validate_untag_name",
)

# --------------------------------------------------------------------------- constants

#: Longest repository name (domain and path, without tag or digest) the grammar accepts.
NAME_TOTAL_LENGTH_MAX: Final = 255
#: Domain that Docker-style normalisation adds to names without one.
DEFAULT_DOMAIN: Final = "docker.io"
_LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
_OFFICIAL_REPO_NAME: Final = "library"
#: Tag added to a name that has neither a tag nor a digest.
DEFAULT_TAG: Final = "latest"
#: Domain that podman's local normalisation adds to names that are not fully qualified.
LOCAL_DOMAIN: Final = "localhost"
#: What ``podman image inspect`` puts in front of every lookup error.
INSPECT_ERROR_PREFIX: Final = "inspecting object: "

# The core messages of distribution/reference and go-digest, as podman prints them.
ERR_REFERENCE_INVALID_FORMAT: Final = "invalid reference format"
ERR_NAME_CONTAINS_UPPERCASE: Final = "repository name must be lowercase"
ERR_NAME_EMPTY: Final = "repository name must have at least one component"
ERR_NAME_TOO_LONG: Final = (
    f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
)
ERR_DIGEST_INVALID_FORMAT: Final = "invalid checksum digest format"
ERR_DIGEST_INVALID_LENGTH: Final = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED: Final = "unsupported digest algorithm"
_ERR_NORMALIZED_UPPERCASE: Final = "invalid reference format: repository name must be lowercase"
_ERR_NO_64_BYTE_HEX: Final = "invalid format: no 64-byte hexadecimal value"

# --------------------------------------------------------------------------- grammar
#
# The grammar of distribution/reference (the copy vendored by containers/image), written
# without ambiguity so that Python's backtracking engine stays linear: possessive
# quantifiers are used only where giving characters back can never lead to a match.
# ``[._]|__|[-]*`` between alphanumerics becomes ``[._]|__|-+`` (an empty separator
# merely joins two alphanumeric runs, which ``[a-z0-9]+`` already covers), and a domain
# component ``[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?`` becomes
# ``[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*``: the same languages.

_ALNUM: Final = r"[a-z0-9]++"
_COMPONENT: Final = rf"{_ALNUM}(?:(?:[._]|__|-++){_ALNUM})*+"
_DOMAIN_COMPONENT: Final = r"[a-zA-Z0-9]++(?:-++[a-zA-Z0-9]++)*+"
_DOMAIN: Final = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*+(?::[0-9]++)?+"
_PATH: Final = rf"{_COMPONENT}(?:/{_COMPONENT})*+"
_TAG: Final = r"[\w][\w.-]{0,127}+"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*+(?:[-_+.][A-Za-z][A-Za-z0-9]*+)*+:[0-9A-Fa-f]{32,}+"

_REFERENCE_RE: Final = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH}))"
    rf"(?::(?P<tag>{_TAG}))?+(?:@(?P<digest>{_DIGEST}))?+",
    re.ASCII,
)
_ANCHORED_ID_RE: Final = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX_RE: Final = re.compile(r"[a-f0-9]{1,64}")
# go-digest's DigestRegexp, consulted for algorithms it does not implement.
_GO_DIGEST_RE: Final = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_LOWER_HEX_RE: Final = re.compile(r"[a-f0-9]+")
# The algorithms go-digest has available in podman 4.3, and their hex lengths.
_DIGEST_HEX_LENGTH: Final = {"sha256": 64, "sha384": 96, "sha512": 128}
# Successful parses are memoised (the values are immutable): listings parse the same names
# again and again. Errors are not cached.
_CACHE_SIZE: Final = 4096


# --------------------------------------------------------------------------- errors


def _fail(text: str, reason: str) -> InvalidReference:
    return InvalidReference(reason, text=text, reason=reason)


# --------------------------------------------------------------------------- Go helpers


def go_lower(text: str) -> str:
    """``strings.ToLower`` of Go: simple (one rune to one rune) lower-case mapping.

    It differs from :meth:`str.lower` for U+0130 (``İ``), which Go maps to ``i``.
    """
    if text.isascii():
        return text.lower()
    return "".join("i" if c == "\u0130" else c.lower() for c in text)


def _go_is_print(char: str) -> bool:
    return char == " " or unicodedata.category(char)[0] in "LMNPS"


_GO_SHORT_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _to_go_bytes(text: str) -> bytes:
    # A lone surrogate U+DC80..U+DCFF stands for the raw byte that os.fsdecode could not
    # decode; any other lone surrogate becomes its (invalid in UTF-8) 3-byte encoding.
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        out = bytearray()
        for char in text:
            code = ord(char)
            if 0xDC80 <= code <= 0xDCFF:
                out.append(code - 0xDC00)
            else:
                out += char.encode("utf-8", "surrogatepass")
        return bytes(out)


def go_quote(text: str) -> str:
    """Go's ``%q`` (``strconv.Quote``) of *text*, as podman formats names in errors."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    decoded = _to_go_bytes(text).decode("utf-8", "surrogateescape")
    parts = ['"']
    for char in decoded:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not valid UTF-8
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif char in _GO_SHORT_ESCAPES:
            parts.append(_GO_SHORT_ESCAPES[char])
        elif _go_is_print(char):
            parts.append(char)
        elif code < 0x20 or code == 0x7F:
            parts.append(f"\\x{code:02x}")
        elif code < 0x10000:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    parts.append('"')
    return "".join(parts)


# --------------------------------------------------------------------------- the value


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed image reference: ``[domain/]path[:tag][@digest]``.

    ``domain`` is what distribution/reference's grammar calls the domain: the first
    ``/``-separated component when a ``/`` follows it and it matches the host-name grammar
    (so ``a/b`` has domain ``a``, as in Go; whether a domain names a *registry* is
    :attr:`fully_qualified`). It is ``""`` when there is no such component (``busybox``,
    ``a_b/c``). ``Reference(...)`` does not validate; use the parsing functions.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository name: ``domain/path``, or ``path`` without a domain."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def fully_qualified(self) -> bool:
        """Whether the domain names a registry: it has ``.`` or ``:``, or is ``localhost``."""
        return _is_registry(self.domain)

    def with_tag(self, tag: str | None) -> Reference:
        """A copy with *tag* (``None`` drops the tag)."""
        return replace(self, tag=tag)

    def with_digest(self, digest: str | None) -> Reference:
        """A copy with *digest* (``None`` drops the digest)."""
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = f"{self.domain}/{self.path}" if self.domain else self.path
        if self.tag is not None:
            text = f"{text}:{self.tag}"
        if self.digest is not None:
            text = f"{text}@{self.digest}"
        return text


def _is_registry(domain: str) -> bool:
    return "." in domain or ":" in domain or domain == LOCAL_DOMAIN


# --------------------------------------------------------------------------- parsing


def _validate_digest(text: str, digest: str) -> None:
    """go-digest's ``Parse``: the algorithm must be available and the hex well formed."""
    algorithm, _, encoded = digest.partition(":")
    size = _DIGEST_HEX_LENGTH.get(algorithm)
    if size is None:
        if _GO_DIGEST_RE.fullmatch(digest) is None:
            raise _fail(text, ERR_DIGEST_INVALID_FORMAT)
        raise _fail(text, ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != size:
        raise _fail(text, ERR_DIGEST_INVALID_LENGTH)
    if _LOWER_HEX_RE.fullmatch(encoded) is None:
        raise _fail(text, ERR_DIGEST_INVALID_FORMAT)


@lru_cache(maxsize=_CACHE_SIZE)
def parse_reference(text: str) -> Reference:
    """Parse *text* with the strict grammar of distribution/reference; no normalisation.

    This is ``reference.Parse`` as vendored in podman 4.3. The errors, in the order they
    are checked: ``repository name must have at least one component`` (empty input),
    ``repository name must be lowercase`` (the input would match if lower-cased, tag and
    digest included), ``invalid reference format``, ``repository name must not be more
    than 255 characters`` (domain and path), then the digest's ``unsupported digest
    algorithm``, ``invalid checksum digest length`` or ``invalid checksum digest format``.
    Every error is an :class:`InvalidReference` whose
    message is just that text.
    """
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        if not text:
            raise _fail(text, ERR_NAME_EMPTY)
        if _REFERENCE_RE.fullmatch(go_lower(text)) is not None:
            raise _fail(text, ERR_NAME_CONTAINS_UPPERCASE)
        raise _fail(text, ERR_REFERENCE_INVALID_FORMAT)
    domain, path, tag, digest = match.group("domain", "path", "tag", "digest")
    if len(path) + (len(domain) + 1 if domain else 0) > NAME_TOTAL_LENGTH_MAX:
        raise _fail(text, ERR_NAME_TOO_LONG)
    if digest is not None:
        _validate_digest(text, digest)
    return Reference(domain or "", path, tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    slash = name.find("/")
    if slash == -1 or (not _is_registry(name[:slash])):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:slash], name[slash + 1 :]
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = f"{_OFFICIAL_REPO_NAME}/{remainder}"
    return domain, remainder


def _parse_normalized_named(text: str) -> Reference:
    """``reference.ParseNormalizedNamed`` of containers/image (no ``:latest`` added)."""
    if _ANCHORED_ID_RE.fullmatch(text) is not None:
        raise _fail(
            text,
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings",
        )
    domain, remainder = _split_docker_domain(text)
    remote_name = remainder.partition(":")[0]
    if go_lower(remote_name) != remote_name:
        raise _fail(text, _ERR_NORMALIZED_UPPERCASE)
    return parse_reference(f"{domain}/{remainder}")


def _tag_name_only(ref: Reference) -> Reference:
    if ref.tag is None and ref.digest is None:
        return replace(ref, tag=DEFAULT_TAG)
    return ref


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_docker(text: str) -> Reference:
    """Docker's normalisation: ``ParseNormalizedNamed`` then ``TagNameOnly``.

    No registry → ``docker.io``; ``index.docker.io`` → ``docker.io``; ``docker.io`` with a
    one-component path gets ``library/``; ``:latest`` is added only when there is neither a
    tag nor a digest (a reference with both keeps both). A 64-hex input is refused with
    ``invalid repository name (<x>), cannot specify 64-byte hexadecimal strings`` and an
    upper-case repository with ``invalid reference format: repository name must be
    lowercase``; other errors are those of :func:`parse_reference` on the normalised text.
    As in Go, a first component with a ``.`` that is not a host name (``a.b_c/d``) is not
    taken as the domain, and the result then has ``domain == ""`` (``a.b_c/d:latest``).
    """
    return _tag_name_only(_parse_normalized_named(text))


@lru_cache(maxsize=_CACHE_SIZE)
def normalize_local(text: str) -> Reference:
    """libimage's ``NormalizeName`` (used by tag, untag and load).

    A name that is not fully qualified gets ``localhost/``; ``docker.io`` names are then
    Docker-normalised (``docker.io/library/x``); a reference with a tag and a digest loses
    the tag; ``:latest`` is added when there is neither.

    Errors carry the exact text ``NormalizeName`` returns: a malformed input gives
    ``normalizing name "<input>": <reason>`` (input quoted with Go's ``%q``), while a
    failure of the second, normalised parse (``Foo/bar``: ``localhost/Foo/bar``; a name
    that becomes longer than 255 characters) gives only the reason. The ``tag`` and
    ``untag`` commands wrap either once more; see :func:`check_tag_name`.
    """
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        raise InvalidReference(
            f"normalizing name {go_quote(text)}: {exc}", text=text, reason=exc.reason
        ) from None
    name = text if ref.fully_qualified else f"{LOCAL_DOMAIN}/{ref}"
    normalized = _parse_normalized_named(name)
    if normalized.tag is not None and normalized.digest is not None:
        return replace(normalized, tag=None)
    return _tag_name_only(normalized)


def is_fully_qualified(text: str) -> bool:
    """Whether *text* names its registry: a ``/`` follows a first component that has a
    ``.`` or ``:`` or is ``localhost``, and *text* parses. ``example.com`` alone and
    ``a.b_c/d`` (not a host) are short names, as in podman."""
    try:
        return parse_reference(text).fully_qualified
    except InvalidReference:
        return False


# --------------------------------------------------------------------------- IDs


def is_id_prefix(text: str) -> bool:
    """Whether *text* could be an image ID or ID prefix: 1 to 64 lower-case hex digits."""
    return _ID_PREFIX_RE.fullmatch(text) is not None


def parse_sha256_id(text: str) -> str | None:
    """The 64-hex image ID of a ``sha256:<64 hex>`` input, or ``None`` for other input.

    Input that starts with ``sha256:`` but does not continue with exactly 64 lower-case hex
    digits raises ``<input>: invalid format: no 64-byte hexadecimal value``. Podman parses
    the reference *before* this check (so ``sha256:`` alone is ``invalid reference format``):
    use :func:`parse_lookup_input` for podman's order.
    """
    if not text.startswith("sha256:"):
        return None
    hex_id = text[7:]
    if _ANCHORED_ID_RE.fullmatch(hex_id) is None:
        raise InvalidReference(
            f"{text}: {_ERR_NO_64_BYTE_HEX}", text=text, reason=_ERR_NO_64_BYTE_HEX
        )
    return hex_id


# --------------------------------------------------------------------------- transports

_PATH_TRANSPORTS: Final = frozenset({"dir", "oci", "oci-archive", "docker-archive", "sif"})


def _storage_reference_ok(rest: str) -> bool:
    # containers-storage's ParseStoreReference, without the store: an optional
    # "[store-spec]", then "@<id>", "<name>[@<id or digest>]" or an ID prefix.
    if rest.startswith("["):
        close = rest.find("]")
        if close < 1:
            return False
        rest = rest[close + 1 :]
    if not rest:
        return False
    name, at, possible_id = rest.rpartition("@")
    if at:
        if not possible_id:
            return False
        if _ANCHORED_ID_RE.fullmatch(possible_id) is None:
            try:
                _validate_digest(rest, possible_id)
            except InvalidReference:
                # Possibly a truncated ID: only the store can tell (inferred: accepted).
                if len(possible_id) < 3 or not is_id_prefix(possible_id):
                    return False
            else:
                name = rest  # a digest stays part of the name
        if not name:
            return True
        rest = name
    elif is_id_prefix(rest) and len(rest) >= 3:
        return True  # maybe a truncated ID of a stored image; the store decides
    try:
        _parse_normalized_named(rest)
    except InvalidReference:
        return False
    return True


def split_transport(text: str) -> tuple[str, str] | None:
    """``(transport, rest)`` when podman's lookup would see *text* as ``transport:rest``.

    This mirrors ``alltransports.ParseImageName`` of podman 4.3: the text before the first
    ``:`` must be a registered transport *and* the rest must parse for it; otherwise the
    text is an ordinary reference (``docker:a`` is the name ``docker`` with tag ``a``).
    Measured: ``docker://a``, ``docker://a:b``, ``dir:x``, ``dir:``, ``oci:``,
    ``oci:x:y``, ``oci-archive:x``, ``docker-archive:x``, ``sif:x``, ``docker-daemon:x:1``,
    ``tarball:/etc/hostname`` are transports; ``docker:a``, ``docker://``, ``docker://A``,
    ``docker-daemon:x`` (no tag), ``tarball:x`` (no such file), ``ostree:x``,
    ``atomic:x``, ``containers-storage:`` and ``containers-storage:Foo`` are not.
    ``tarball`` is decided by whether the files exist (podman opens them).
    """
    transport, colon, rest = text.partition(":")
    if not colon:
        return None
    if transport in _PATH_TRANSPORTS:
        return transport, rest
    if transport == "docker":
        if not rest.startswith("//"):
            return None
        try:
            ref = _parse_normalized_named(rest[2:])
        except InvalidReference:
            return None
        return None if ref.tag is not None and ref.digest is not None else (transport, rest)
    if transport == "docker-daemon":
        if rest.startswith("sha256:") and _ANCHORED_ID_RE.fullmatch(rest[7:]):
            return transport, rest
        try:
            ref = _parse_normalized_named(rest)
        except InvalidReference:
            return None
        if (ref.tag is None) == (ref.digest is None) or ref.path == "library/sha256":
            return None
        return transport, rest
    if transport == "tarball":
        files = rest.split(":")
        if all(f == "-" or os.path.exists(f) for f in files):
            return transport, rest
        return None
    if transport == "containers-storage":
        return (transport, rest) if _storage_reference_ok(rest) else None
    return None


# --------------------------------------------------------------------------- lookups


@dataclass(frozen=True, slots=True)
class LookupInput:
    """What podman's ``LookupImage`` makes of a user's input, before it looks anything up.

    ``text`` is the input with the tag dropped when it also has a digest (``a:1@sha256:…``
    → ``a@sha256:…``); it is the ``<text>`` of ``<text>: image not known`` and the name
    of B12.5–B12.6. ``image_id`` is set for ``sha256:<64 hex>`` input.
    ``candidates`` are the names to try, in order (B12.2 and B12.4; empty for an ID
    or a transport). ``transport`` is ``"containers-storage"`` for that transport (the rest
    is in ``text``; podman reports a miss there as just ``image not known``).
    """

    text: str
    reference: Reference | None
    image_id: str | None
    candidates: tuple[str, ...]
    transport: str | None = None

    @property
    def fully_qualified(self) -> bool:
        """Whether the input named its registry (B12 then skips B12.1–B12.3 and B12.7)."""
        return self.reference is not None and self.reference.fully_qualified

    @property
    def digest(self) -> str | None:
        """The input's digest, for the digest scan of B12.6."""
        return None if self.reference is None else self.reference.digest


def parse_lookup_input(text: str) -> LookupInput:
    """Classify a user's image input the way libimage's ``LookupImage`` does (B12).

    Order: a transport (``containers-storage:`` is returned, any other raises
    ``unsupported transport "<name>" for looking up local images``); the strict parse
    (raising :func:`parse_reference`'s errors); the tag dropped if there is a digest;
    ``sha256:`` input must be a full ID (else ``<input>: invalid format: no 64-byte
    hexadecimal value``); then the name candidates. Candidates that fail to normalise are
    skipped (measured: such input ends as ``image not known``).

    The errors are the messages ``rmi``, ``tag SRC``, ``untag IMAGE`` print after
    ``Error: ``; ``image inspect`` prefixes them (see :func:`command_error_message`).
    """
    split = split_transport(text)
    if split is not None:
        transport, rest = split
        if transport != "containers-storage":
            message = f'unsupported transport "{transport}" for looking up local images'
            raise InvalidReference(message, text=text)
        return LookupInput(rest, None, None, (), transport)
    ref = parse_reference(text)
    if ref.tag is not None and ref.digest is not None:
        ref = replace(ref, tag=None)
        text = str(ref)
    image_id = parse_sha256_id(text)
    if image_id is not None:
        return LookupInput(text, ref, image_id, ())
    names: list[str] = []
    attempts = [text] if ref.fully_qualified else [f"{LOCAL_DOMAIN}/{text}", text]
    for attempt in attempts:
        try:
            candidate = str(normalize_docker(attempt))
        except InvalidReference:
            continue
        if candidate not in names:
            names.append(candidate)
    return LookupInput(text, ref, None, tuple(names))


def lookup_candidates(text: str) -> list[str]:
    """The names podman tries first for *text* (B12.2 and B12.4, no aliases and no
    search registries): ``app`` → ``[localhost/app:latest, docker.io/library/app:latest]``;
    a fully qualified name → just that name, normalised, with ``:latest`` when it has no
    tag and no digest; a tag is dropped when a digest is present. ``sha256:<id>`` input
    and ``containers-storage:`` references give ``[]``. Raises like
    :func:`parse_lookup_input`.
    """
    return list(parse_lookup_input(text).candidates)


# --------------------------------------------------------------------------- commands


def check_tag_name(text: str) -> Reference:
    """The new name of ``podman tag IMAGE NAME``, normalised (libimage ``Image.Tag``).

    Errors, exactly as podman prints them after ``Error: `` (all exit 125):
    ``<text>: tag by digest not supported`` for input starting with ``sha256:`` (checked
    first, so even ``sha256:`` alone) or normalising to a reference with a digest;
    ``normalizing name "<text>": `` followed by :func:`normalize_local`'s message.
    """
    if text.startswith("sha256:"):
        raise InvalidReference(f"{text}: tag by digest not supported", text=text)
    ref = _normalize_for_command(text)
    if ref.digest is not None:
        raise InvalidReference(f"{text}: tag by digest not supported", text=text)
    return ref


def check_untag_name(text: str) -> Reference:
    """The name of ``podman untag IMAGE NAME``, normalised (libimage ``Image.Untag``).

    ``<text>: untag by digest not supported`` for input starting with ``sha256:``; the same
    ``normalizing name`` errors as :func:`check_tag_name`. A digested name is accepted
    (``a@sha256:…`` → ``localhost/a@sha256:…``). The caller then requires ``str(result)``
    to be one of the image's names, else ``TagNotKnown(str(result))`` (exit 125).
    """
    if text.startswith("sha256:"):
        raise InvalidReference(f"{text}: untag by digest not supported", text=text)
    return _normalize_for_command(text)


def _normalize_for_command(text: str) -> Reference:
    try:
        return normalize_local(text)
    except InvalidReference as exc:
        raise InvalidReference(
            f"normalizing name {go_quote(text)}: {exc}", text=text, reason=exc.reason
        ) from None


#: The names the brief gave these checks.
validate_tag_name = check_tag_name
validate_untag_name = check_untag_name

Command = Literal["rmi", "tag", "untag", "inspect"]


def command_error_message(command: Command, message: str) -> str:
    """The text after ``Error: `` for a lookup error *message* in *command*.

    ``image inspect`` adds ``inspecting object: `` (and exits 125 even for ``image not
    known``); ``rmi``, ``tag SRC`` and ``untag IMAGE`` print the message unchanged.
    """
    return INSPECT_ERROR_PREFIX + message if command == "inspect" else message


def docker_familiar(name: str) -> str:
    """Docker's short form of a full name: ``docker.io/library/x:1`` is ``x:1``,
    ``docker.io/team/x`` is ``team/x``; other registries' names are unchanged."""
    rest = name.removeprefix("docker.io/library/")
    if rest != name and "/" not in rest.split("@", 1)[0]:
        return rest
    return name.removeprefix("docker.io/")
