"""``.containerignore`` / ``.dockerignore`` rules, as buildah 1.28 applies them.

buildah reads one ignore file (:meth:`IgnoreRules.load` picks it the way buildah does) and
matches every path of the build context against its patterns with containers/storage's
``fileutils.PatternMatcher``, the fork of moby's patternmatcher that buildah vendors.  The
rules, all checked against buildah (``tests/builder/test_ignore.py``):

* The file is split into lines; a line whose *first* character is ``#`` is a comment (an
  indented ``#`` is a pattern), empty lines are skipped.  Leading and trailing ``/`` are
  cut first, then surrounding white space, then the pattern is cleaned like Go's
  ``filepath.Clean`` (``./a`` is ``a``, ``a//b/../c`` is ``a/c``).
* ``!`` makes an exception (re-includes); a lone ``!`` is an error.  Every pattern is
  validated with Go's ``filepath.Match`` rules: a malformed one (``[``, ``[]``, a trailing
  ``\\``) is an error.
* Patterns are anchored at the context root: ``*.log`` matches ``x.log``, never
  ``sub/x.log``.  ``*`` and ``?`` do not cross ``/``; ``**`` matches any number of
  directories (``**/x``, ``a/**``); ``[...]`` is a character class; ``\\`` escapes.
* A pattern also matches every path *below* a path it matches (``sub`` excludes
  ``sub/deep/f``).  Every pattern is tried and the last one that matches decides.
* An excluded directory is still walked when the string of some exception pattern starts
  with the directory's path (:meth:`IgnoreRules.may_contain_included`), so ``sub`` +
  ``!sub/keep`` copies ``sub/keep``; an exception with a wildcard before that point
  (``!*/keep``) does not re-include anything under an excluded directory, in buildah as in
  Docker's classic builder.

This is *not* gitignore: ``pathspec``'s ``gitwildmatch`` matches ``*.log`` at any depth.

Deviations from buildah, on purpose: ASCII regular-expression metacharacters that mean
nothing to ``filepath.Match`` (``+ ( ) { } | ^``) match themselves here (containers/storage
1.43 passes them to Go's regexp, so ``c++`` is an error there and ``a+b`` matches ``aab``);
``\\d`` means the letter ``d`` (Go's regexp read it as a digit class); a ``*`` inside
``[...]`` is part of the class.  Newer moby versions made the same corrections.

The module also holds :func:`go_match`, Go's ``path/filepath.Match`` (used for ``COPY``
source globs) and :func:`go_clean` (``filepath.Clean``).

Everything here is blocking (:meth:`IgnoreRules.load` reads a file); async callers run it
in a worker thread.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiopod.errors import BuildError
from aiopod.storage.rootfs_path import RootDir, open_in_root

__all__ = (
    "IgnorePattern",
    "IgnoreRules",
    "go_clean",
    "go_match",
    "go_pattern_regex",
    "has_glob_meta",
    "read_file_in_root",
)

_MAX_IGNORE_FILE = 16 << 20
# unicode.IsSpace: Latin-1 spaces plus the Unicode White_Space characters.
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` on Linux: the shortest equivalent path, lexically.

    Repeated slashes collapse, ``.`` elements vanish, ``x/..`` cancels out, ``..`` at the
    start of a rooted path is dropped (``/../a`` is ``/a``); an empty result is ``.``.
    """
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def has_glob_meta(text: str) -> bool:
    """Whether ``text`` holds a ``filepath.Match`` metacharacter (``* ? [ \\``)."""
    return any(c in text for c in "*?[\\")


def _go_trim_space(text: str) -> str:
    return text.strip(_GO_SPACE)


class _BadPattern(ValueError):
    pass


def _class_regex(pattern: str, i: int) -> tuple[str, int]:
    """Translate the character class whose ``[`` is at ``pattern[i - 1]``.

    Follows ``filepath.Match``'s grammar and errors: ``[`` [``^``] ranges ``]``, at least
    one range, each ``lo-hi`` or a single (possibly ``\\``-escaped) character; ``-`` and
    ``]`` cannot start a range, and the pattern cannot end inside the class.  A class may
    match ``/``, as in Go.  Returns the Python regex and the index after the ``]``.
    """
    n = len(pattern)
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1

    def esc(i: int) -> tuple[str, int]:
        if i >= n or pattern[i] in "-]":
            raise _BadPattern("syntax error in pattern")
        if pattern[i] == "\\":
            i += 1
            if i >= n:
                raise _BadPattern("syntax error in pattern")
        if i + 1 >= n:  # Go: the class must go on after a range character
            raise _BadPattern("syntax error in pattern")
        return pattern[i], i + 1

    ranges: list[tuple[str, str]] = []
    while True:
        if i < n and pattern[i] == "]" and ranges:
            i += 1
            break
        lo, i = esc(i)
        hi = lo
        if pattern[i] == "-":
            hi, i = esc(i + 1)
        ranges.append((lo, hi))
    body = "".join(
        re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}"
        for lo, hi in ranges
        if lo <= hi  # an inverted range matches nothing, as in Go
    )
    if not body:
        return ("[\\s\\S]" if negated else "(?!)"), i
    return f"[{'^' if negated else ''}{body}]", i


def _validate(pattern: str) -> None:
    _glob_body(pattern)


@functools.lru_cache(maxsize=4096)
def _glob_body(pattern: str, double_star: bool = False) -> str:
    """The regex body of a glob: Go's ``filepath.Match`` syntax, plus (``double_star``,
    for ignore files) ``**`` matching any number of directories."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if double_star and i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(?:.*/)?")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            regex, i = _class_regex(pattern, i)
            out.append(regex)
        elif c == "\\":
            if i >= n:
                raise _BadPattern("syntax error in pattern")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(c))
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def go_pattern_regex(pattern: str) -> re.Pattern[str]:
    """The compiled regex for a ``filepath.Match`` pattern (raises ``ValueError`` if bad)."""
    return re.compile(_glob_body(pattern) + r"\Z", re.DOTALL)


def go_match(pattern: str, name: str) -> bool:
    """Go's ``path/filepath.Match`` on Linux.

    ``*`` is any run of characters but ``/``, ``?`` one character but ``/``, ``[...]``
    a class (``^`` negates, ``a-z`` ranges), ``\\`` escapes the next character.  The whole
    name must match.  A malformed pattern raises ``ValueError`` ("syntax error in
    pattern"), whatever the name.
    """
    return go_pattern_regex(pattern).match(name) is not None


@functools.lru_cache(maxsize=4096)
def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """containers/storage's translation of one cleaned ignore pattern into a regex."""
    # Go's "." does not match a newline, and neither does Python's without DOTALL.
    return re.compile(r"\A" + _glob_body(pattern, double_star=True) + r"(?:/.*)?\Z")


@dataclass(frozen=True)
class IgnorePattern:
    """One compiled ignore line: the cleaned pattern and whether it is an exception."""

    pattern: str
    exception: bool

    def matches(self, relpath: str) -> bool:
        """Whether the pattern matches ``relpath`` or one of its parent directories."""
        return _ignore_regex(self.pattern).match(relpath) is not None

    def __str__(self) -> str:
        return ("!" if self.exception else "") + self.pattern


def _compile_pattern(line: str) -> IgnorePattern | None:
    """containers/storage ``NewPatternMatcher`` on one pattern string (after the file's
    own processing): trim white space, clean, ``!``; ``None`` for an empty pattern."""
    text = _go_trim_space(line)
    if not text:
        return None
    text = go_clean(text)
    exception = False
    if text[0] == "!":
        if len(text) == 1:
            raise BuildError('illegal exclusion pattern: "!"')
        exception = True
        text = go_clean(text[1:]).removeprefix("/")
    try:
        _validate(text)
        _ignore_regex(text)
    except (ValueError, re.error) as exc:
        raise BuildError(f"invalid ignore pattern {line!r}: syntax error in pattern") from exc
    return IgnorePattern(text, exception)


def _split_ignore_text(text: str) -> list[str]:
    """imagebuilder ``ParseIgnore``: lines; ``#`` in the first column is a comment; leading
    and trailing slashes cut (before white space is trimmed)."""
    lines = []
    for line in text.split("\n"):
        if not line or line[0] == "#":
            continue
        line = line.strip("/")
        if line:
            lines.append(line)
    return lines


def read_file_in_root(root: Path, relpath: str, *, limit: int = _MAX_IGNORE_FILE) -> bytes | None:
    """Read the regular file ``relpath`` of ``root`` with ``root`` as ``/``: symlinks
    (absolute ones too) resolve inside ``root``, so nothing outside it is ever read.

    Returns ``None`` when nothing is there (a dangling symlink included).  A directory,
    FIFO or other non-regular file raises :class:`BuildError`, so does a file larger than
    ``limit``.  Blocking.
    """

    with RootDir(root) as rootdir:
        try:
            fd = open_in_root(rootdir, relpath)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise BuildError(f"reading {relpath!r} in {str(root)!r}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BuildError(
                f"reading {relpath!r} in {str(root)!r}: "
                f"{os.strerror(errno.EISDIR) if stat.S_ISDIR(st.st_mode) else 'not a regular file'}"
            )
        if st.st_size > limit:
            raise BuildError(f"{relpath!r} in {str(root)!r} is larger than {limit} bytes")
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:
                raise BuildError(f"{relpath!r} in {str(root)!r} is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class IgnoreRules:
    """The exclusion rules of a build context (an empty set excludes nothing).

    Build with :meth:`load` (finds and reads the ignore file as buildah does),
    :meth:`parse` (the text of an ignore file) or :meth:`from_patterns` (a list of
    patterns, like ``--exclude`` values or buildah's ``Excludes``).
    """

    __slots__ = ("_exception_specs", "patterns", "source")

    def __init__(self, patterns: Iterable[IgnorePattern] = (), source: Path | None = None):
        self.patterns: tuple[IgnorePattern, ...] = tuple(patterns)
        #: The ignore file the rules came from, if any (for messages).
        self.source = source
        self._exception_specs = tuple(p.pattern.strip("/") for p in self.patterns if p.exception)

    def __repr__(self) -> str:
        return f"IgnoreRules({[str(p) for p in self.patterns]!r}, source={self.source!r})"

    def __bool__(self) -> bool:
        return bool(self.patterns)

    @property
    def has_exceptions(self) -> bool:
        """Whether some pattern is an exception (``!``)."""
        return bool(self._exception_specs)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_patterns(cls, patterns: Iterable[str], source: Path | None = None) -> IgnoreRules:
        """Rules from pattern strings, processed like containers/storage's
        ``NewPatternMatcher`` (white space trimmed, cleaned, ``!``, validated).

        Raises :class:`BuildError` for a malformed pattern or a lone ``!``.
        """
        compiled = [_compile_pattern(p) for p in patterns]
        return cls([p for p in compiled if p is not None], source)

    @classmethod
    def parse(cls, text: str | bytes, source: Path | None = None) -> IgnoreRules:
        """Rules from the text of an ignore file (see the module documentation)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        return cls.from_patterns(_split_ignore_text(text), source)

    @classmethod
    def load(
        cls,
        context: Path,
        ignorefile: Path | None = None,
        *,
        containerfiles: Sequence[Path] = (),
    ) -> IgnoreRules:
        """The rules buildah would use for a build of ``context``.

        ``ignorefile`` (``--ignorefile``) is read as given and must exist.  Otherwise, for
        each Containerfile in ``containerfiles`` (relative ones are taken inside the
        context), ``<file>.containerignore`` or ``<file>.dockerignore`` next to it is used
        (``.dockerignore`` wins when both exist, as in buildah 1.28); otherwise
        ``.containerignore`` in the context root, and only when it is missing
        ``.dockerignore``.  Files inside the context are read with the context as the root
        (a symlink there cannot make us read a host file).  No file: no rules.

        Blocking.  Raises :class:`BuildError` for an unreadable file or a bad pattern.
        """
        context = Path(context)
        if ignorefile is not None:
            try:
                data = Path(ignorefile).read_bytes()
            except OSError as exc:
                raise BuildError(
                    f"reading ignore file {str(ignorefile)!r}: {exc.strerror}"
                ) from exc
            return cls.parse(data, Path(ignorefile))
        for containerfile in containerfiles:
            found: tuple[bytes, Path] | None = None
            for suffix in (".containerignore", ".dockerignore"):
                candidate = _next_to(context, Path(str(containerfile) + suffix))
                if candidate is not None:
                    found = candidate
            if found is not None:
                return cls.parse(found[0], found[1])
        for name in (".containerignore", ".dockerignore"):
            content = read_file_in_root(context, name)
            if content is not None:
                return cls.parse(content, context / name)
        return cls()

    # -- matching ------------------------------------------------------------------------

    def excluded(self, relpath: str) -> bool:
        """Whether ``relpath`` (relative to the context root, ``/``-separated) is excluded.

        The path is cleaned first (``./a/`` is ``a``; a leading ``/`` is dropped); the
        context root itself (``.``) is never excluded.
        """
        if not self.patterns:
            return False
        path = go_clean(relpath).lstrip("/")
        if path in ("", "."):
            return False
        matched = False
        for pattern in self.patterns:
            if pattern.matches(path):
                matched = not pattern.exception
        return matched

    def may_contain_included(self, dirpath: str, *, top_level: bool = False) -> bool:
        """Whether a walk must still enter the *excluded* directory ``dirpath``.

        True when some exception pattern's text starts with the directory's path, buildah's
        test (copier: ``strings.HasPrefix(spec + "/", dir)``; for a directory named
        directly as a ``COPY`` source, ``top_level=True``:
        ``strings.HasPrefix(spec, dir + "/")``).  Entries inside are then checked one by
        one with :meth:`excluded`; the directory entry itself stays excluded.
        """
        if not self._exception_specs:
            return False
        path = go_clean(dirpath).strip("/")
        if top_level:
            prefix = path + "/"
            return any(spec.startswith(prefix) for spec in self._exception_specs)
        return any((spec + "/").startswith(path) for spec in self._exception_specs)


def _next_to(context: Path, path: Path) -> tuple[bytes, Path] | None:
    """Read an ignore file named after a Containerfile: inside the context when the
    Containerfile is (read in-root), else as a plain host path (the user named it)."""
    full = path if path.is_absolute() else context / path
    try:
        rel = full.relative_to(context)
    except ValueError:
        rel = None
    if rel is not None:
        data = read_file_in_root(context, str(rel))
        return None if data is None else (data, full)
    try:
        return full.read_bytes(), full
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BuildError(f"reading ignore file {str(full)!r}: {exc.strerror}") from exc
