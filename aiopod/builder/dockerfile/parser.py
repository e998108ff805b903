"""The Dockerfile parser: text in, stages of instructions out; nothing is expanded here.

The rules are Docker's (BuildKit's ``frontend/dockerfile/parser`` and ``instructions``
packages, the parser ``docker build`` uses today), written afresh:

* **Parser directives** (``# escape=``, ``# syntax=``, ``# check=``; names case-insensitive,
  blanks around ``=`` allowed) count only at the top of the file. The first line that is not
  a directive ends them, a blank line or an ordinary comment included. A directive may not be
  repeated, and the escape character must be ``\\`` or a backtick.
* A line whose first non-blank character is ``#`` is a comment; ``#`` elsewhere is text.
  Keywords are case-insensitive. Leading blanks of an instruction are ignored.
* **Continuation**: a line that ends with the escape character (blanks and tabs after it
  allowed) continues on the next line. The escape character is removed and the lines are
  concatenated as they are, so ``a \\`` + ``  b`` gives ``a   b`` (what buildah shows in
  history). Inside a continuation, comment lines and blank lines are skipped. An escaped
  escape character at the end (``\\\\``) does not continue the line.
* **Flags** (``--name=value``) are taken from the start of the arguments, quotes and escapes
  in them processed; ``--`` ends them. Each instruction accepts Docker's current set, with
  ``--parents``, ``--unpack`` and the labs-only flags left out (see ``FLAGS``). A flag that is
  not ``--mount``/``--exclude`` may be given once.
* **Exec form**: for RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD, VOLUME and HEALTHCHECK CMD,
  arguments that parse as a JSON array are the exec form. An array holding anything but
  strings is an error; text that is not valid JSON is the shell form.
* **Heredocs** (RUN, COPY and ADD, also behind ONBUILD, shell form only): every word of the
  instruction of the form ``<<NAME``, ``<<-NAME`` (leading tabs stripped), ``<<"NAME"`` or
  ``<<'NAME'`` (no expansion; quoting any part of the name counts), optionally ``N<<NAME``,
  opens a heredoc. The bodies follow the instruction line in order, each ended by a line that
  is exactly its name (after leading tabs for ``<<-``); body lines are taken verbatim.
* Docker's argument checks are made here (``FROM`` with one or three arguments and a valid
  stage name, ``COPY`` with a destination, ``ENV k=v`` syntax, ``SHELL`` in JSON form, ...).

Differences from buildah 1.28 (whose parser is an older copy of Docker's):

* buildah 1.28 has **no heredocs**: it parses the body lines as instructions.
* buildah 1.28 continues a line that ends in ``\\\\``; Docker does not, nor does this parser.
* buildah 1.28 knows fewer flags (COPY ``--from --chown --chmod``, ADD ``--chown --chmod``,
  RUN ``--mount``, no HEALTHCHECK ``--start-interval``), silently drops flags given to CMD,
  ENTRYPOINT or LABEL, and takes the first of repeated flags. Docker's flags are used here,
  and flags given to an instruction without flags, or repeated, are errors.
* buildah 1.28 accepts ``FROM x AS 1bad``, ``ARG =x`` and instructions before the first FROM
  (it ignores them); Docker and this parser reject them.

Error messages use buildah's wording where buildah has the error, else Docker's.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from aiopod.builder.dockerfile.words import (
    is_go_space,
    process_word,
    split_key_values,
)
from aiopod.errors import DockerfileError, ExpansionError

__all__ = (
    "FLAGS",
    "KEYWORDS",
    "Dockerfile",
    "FlagKind",
    "Heredoc",
    "Instruction",
    "Stage",
    "parse_dockerfile",
    "parse_heredoc_marker",
)

KEYWORDS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)
"""The instruction keywords, upper case."""


class FlagKind(enum.Enum):
    """How a flag takes its value."""

    STRING = "string"  # --name=value, once
    BOOL = "bool"  # --name, --name=true, --name=false, once; stored as "true"/"false"
    MULTI = "multi"  # --name=value, repeatable


FLAGS: dict[str, dict[str, FlagKind]] = {
    "FROM": {"platform": FlagKind.STRING},
    "RUN": {"mount": FlagKind.MULTI, "network": FlagKind.STRING, "security": FlagKind.STRING},
    "COPY": {
        "from": FlagKind.STRING,
        "chown": FlagKind.STRING,
        "chmod": FlagKind.STRING,
        "link": FlagKind.BOOL,
        "exclude": FlagKind.MULTI,
    },
    "ADD": {
        "chown": FlagKind.STRING,
        "chmod": FlagKind.STRING,
        "checksum": FlagKind.STRING,
        "keep-git-dir": FlagKind.BOOL,
        "link": FlagKind.BOOL,
        "exclude": FlagKind.MULTI,
    },
    "HEALTHCHECK": {
        "interval": FlagKind.STRING,
        "timeout": FlagKind.STRING,
        "start-period": FlagKind.STRING,
        "start-interval": FlagKind.STRING,
        "retries": FlagKind.STRING,
    },
}
"""The flags each instruction accepts; instructions not listed accept none."""

_RUN_NETWORKS = ("default", "none", "host")
_RUN_SECURITY = ("sandbox", "insecure")

_EXEC_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_DIRECTIVES = frozenset({"escape", "syntax", "check"})

_RE_BLANKS = re.compile(r"[\t\v\f\r ]+")
_RE_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)")
_RE_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")
_RE_SURROGATE = re.compile("[\ud800-\udfff]")
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


# -- the parse tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heredoc:
    """One heredoc of a RUN, COPY or ADD."""

    name: str
    """The delimiter, quotes removed (``<<'EOF'`` gives ``EOF``)."""
    body: str
    """The lines between the instruction and the delimiter line, verbatim, each with its
    newline (``""`` for an empty heredoc). Leading tabs are *not* removed here even for
    ``<<-``; :attr:`content` removes them."""
    expand: bool
    """False when any part of the delimiter was quoted; then the body is used as written."""
    strip_tabs: bool
    """``<<-NAME``: leading tabs of body lines (and of the delimiter line) are ignored."""

    @property
    def content(self) -> str:
        """The body with leading tabs removed from every line when :attr:`strip_tabs`."""
        return _RE_LEADING_TABS.sub("", self.body) if self.strip_tabs else self.body


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction, as written (nothing is expanded)."""

    keyword: str
    """Upper case: FROM, RUN, COPY, ..."""
    flags: tuple[tuple[str, str], ...]
    """``(name, value)`` without the dashes, in order, quotes and escapes processed; boolean
    flags have ``"true"`` or ``"false"``."""
    args: str
    """The text after the keyword and the flags, continuation lines joined, trimmed."""
    json_args: tuple[str, ...] | None
    """The exec form's strings (RUN/CMD/ENTRYPOINT/SHELL/COPY/ADD/VOLUME, and the command of
    ``HEALTHCHECK CMD [...]``), else None."""
    heredocs: tuple[Heredoc, ...]
    """The heredocs, in the order their markers appear (RUN, COPY, ADD; ONBUILD of those)."""
    line: int
    """1-based line where the instruction starts."""
    original: str
    """The instruction as written: its first line without leading blanks, continuation lines
    concatenated without their escape characters (the text buildah puts in history after
    ``/bin/sh -c #(nop) ``); heredoc bodies are not included."""
    onbuild: Instruction | None = None
    """For ONBUILD, the trigger instruction (same line)."""
    end_line: int = 0
    """The last line of the instruction, heredoc bodies included."""

    def flag(self, name: str) -> str | None:
        """The last value given for flag ``name`` (``"from"``, not ``"--from"``), or None."""
        found = None
        for key, value in self.flags:
            if key == name:
                found = value
        return found

    def flag_values(self, name: str) -> tuple[str, ...]:
        """Every value given for flag ``name``, in order (``--mount``, ``--exclude``)."""
        return tuple(value for key, value in self.flags if key == name)

    @property
    def exec_form(self) -> bool:
        """Whether the arguments were a JSON array."""
        return self.json_args is not None

    def words(self) -> list[str]:
        """The shell-form arguments cut at blanks, as Docker does for FROM, COPY, ADD,
        VOLUME and EXPOSE before expanding each word (the exec form's strings otherwise)."""
        if self.json_args is not None:
            return list(self.json_args)
        return _blank_split(self.args)


@dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: a FROM and the instructions up to the next FROM."""

    index: int
    name: str | None
    """The ``AS`` name in lower case (Docker matches stage names case-insensitively)."""
    base: str
    """The FROM argument, not expanded (``${BASE}``, ``scratch``, an earlier stage's name)."""
    platform: str | None
    """The ``--platform`` flag, not expanded."""
    instructions: tuple[Instruction, ...]
    """The stage's instructions after its FROM."""
    line: int
    """The line of the FROM."""
    written_name: str | None = None
    """The ``AS`` name as written (podman shows it so)."""


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile."""

    path: str
    escape: str
    """The escape character: ``\\`` or a backtick (``# escape=```)."""
    syntax: str | None
    """The ``# syntax=`` directive, if any (recorded, not acted on)."""
    global_args: tuple[Instruction, ...]
    """The ARG instructions before the first FROM (usable in FROM lines only)."""
    stages: tuple[Stage, ...]

    def find_stage(self, name_or_index: str) -> Stage | None:
        """The stage with this name (case-insensitive) or index (``"0"``), else None."""
        key = name_or_index.lower()
        for stage in self.stages:
            if stage.name is not None and stage.name == key:
                return stage
        if name_or_index.isascii() and name_or_index.isdigit():
            index = int(name_or_index)
            if index < len(self.stages):
                return self.stages[index]
        return None

    def stage(self, name_or_index: str) -> Stage:
        """The stage named or numbered so, for ``--target`` and ``COPY --from``.

        Raises KeyError when there is none (``COPY --from`` then means an image).
        """
        found = self.find_stage(name_or_index)
        if found is None:
            raise KeyError(name_or_index)
        return found

    def instructions(self) -> Iterator[Instruction]:
        """Every instruction in file order: global ARGs, then each stage's (FROMs left out)."""
        yield from self.global_args
        for stage in self.stages:
            yield from stage.instructions


# -- helpers ----------------------------------------------------------------------------------


def _lstrip_blank(text: str) -> str:
    i = 0
    while i < len(text) and is_go_space(text[i]):
        i += 1
    return text[i:]


def _strip_blank(text: str) -> str:
    end = len(text)
    while end and is_go_space(text[end - 1]):
        end -= 1
    return _lstrip_blank(text[:end])


def _blank_split(text: str) -> list[str]:
    return [word for word in _RE_BLANKS.split(_strip_blank(text)) if word]


def _is_comment(text: str) -> bool:
    return _lstrip_blank(text).startswith("#")


def _split_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its ``\\n`` (the last one may have none)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _trim_newline(raw: str) -> str:
    return raw.rstrip("\r\n")


class _JsonRejected(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise _JsonRejected(name)


def _go_number(text: str) -> float:
    """JSON numbers as Go decodes them into ``any``: float64, out of range is an error."""
    value = float(text)
    if math.isinf(value):
        raise _JsonRejected(text)
    return value


def _exec_form(text: str) -> tuple[str, ...] | None:
    """The strings of a JSON array, None if ``text`` is not JSON (shell form).

    Raises ValueError when it is a JSON array holding something other than strings.
    """
    text = _lstrip_blank(text)
    if not text.startswith("["):
        return None
    try:
        value = json.loads(
            text, parse_constant=_reject_constant, parse_float=_go_number, parse_int=_go_number
        )
    except (ValueError, _JsonRejected, RecursionError):
        return None
    if not isinstance(value, list):  # pragma: no cover - a "[" always gives a list
        return None
    if not all(isinstance(item, str) for item in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    # Go's decoder turns lone surrogate escapes into U+FFFD.
    return tuple(_RE_SURROGATE.sub("\ufffd", item) for item in value)


def parse_heredoc_marker(word: str) -> tuple[str, bool, bool] | None:
    """``(name, expand, strip_tabs)`` if ``word`` is a heredoc marker (``<<EOF``,
    ``<<-'EOF'``, ``2<<EOF``), else None.

    Raises :class:`~aiopod.errors.ExpansionError` for a marker with an
    unmatched quote.
    """
    match = _RE_HEREDOC.fullmatch(word)
    if match is None or not match[3]:
        return None
    rest = match[3]
    words = process_word(rest, {}, skip_unset=True)[1]
    if len(words) != 1:
        return None
    raw_words = process_word(rest, {}, raw_quotes=True, skip_unset=True)[1]
    if len(raw_words) != 1:  # pragma: no cover - quotes never change the word count
        raise ExpansionError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name, raw = words[0], raw_words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw.count("'") + raw.count('"')
    return name, quotes == raw_quotes, match[2] == "-"


def _heredoc_markers(line: str) -> list[tuple[str, bool, bool]]:
    """The heredoc markers among the words of an instruction line."""
    try:
        words = process_word(line, {}, raw_quotes=True, raw_escapes=True, skip_unset=True)[1]
    except ExpansionError:
        return []  # Docker: a line the lexer cannot read has no heredocs
    markers = []
    for word in words:
        marker = parse_heredoc_marker(word)
        if marker is not None:
            markers.append(marker)
    return markers


# -- the parser -------------------------------------------------------------------------------


class _Fail(Exception):
    """Internal: an error in the instruction being parsed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = _split_lines(text)
        self.escape = "\\"
        self.syntax: str | None = None
        self.pos = 0  # index of the next line to read

    # -- errors -------------------------------------------------------------------------------

    def error(self, message: str, line: int) -> DockerfileError:
        return DockerfileError(message, path=self.path, line=line)

    # -- lines --------------------------------------------------------------------------------

    def _continues(self, text: str) -> tuple[str, bool]:
        """``text`` without a trailing continuation escape, and whether it had one."""
        trimmed = text.rstrip(" \t")
        esc = self.escape
        if trimmed.endswith(esc) and (len(trimmed) == 1 or trimmed[-2] != esc):
            return trimmed[:-1], True
        return text, False

    def _directive(self, text: str, line: int, seen: set[str]) -> bool:
        """Handle a possible directive; return True when directives are over."""
        if not text.startswith("#"):
            return True
        match = _RE_DIRECTIVE.fullmatch(_lstrip_blank(text[1:]))
        if match is None:
            return True
        key = match[1].lower()
        if key not in _DIRECTIVES:
            return True
        if key in seen:
            raise self.error(f"only one {key} parser directive can be used", line)
        seen.add(key)
        value = match[2]
        if key == "escape":
            if value not in ("\\", "`"):
                raise self.error(f"invalid ESCAPE '{value}'. Must be ` or \\", line)
            self.escape = value
        elif key == "syntax":
            self.syntax = value
        return False

    def _logical_lines(self) -> Iterator[tuple[str, int, int]]:
        """Each instruction's text (continuations joined), first line and last line.

        Heredoc bodies are read by the consumer, which moves ``self.pos`` past them.
        """
        directives_over = False
        seen: set[str] = set()
        while self.pos < len(self.lines):
            number = self.pos + 1
            text = _trim_newline(self.lines[self.pos])
            self.pos += 1
            if number == 1:
                text = text.removeprefix("\ufeff")
            text = _lstrip_blank(text)
            if not directives_over:
                directives_over = self._directive(text, number, seen)
            if text.startswith("#"):
                continue
            body, more = self._continues(text)
            if not more and not body:
                continue
            parts = [body]
            while more and self.pos < len(self.lines):
                text = _trim_newline(self.lines[self.pos])
                self.pos += 1
                if _is_comment(text) or not _lstrip_blank(text):
                    continue
                body, more = self._continues(text)
                parts.append(body)
            yield "".join(parts), number, self.pos

    def _read_heredocs(
        self, keyword: str, markers: list[tuple[str, bool, bool]], start: int
    ) -> tuple[Heredoc, ...]:
        heredocs = []
        for name, expand, strip_tabs in markers:
            body: list[str] = []
            while True:
                if self.pos >= len(self.lines):
                    raise self.error(
                        f'{keyword}: unterminated heredoc "{name}" (started at line {start})',
                        len(self.lines),
                    )
                raw = self.lines[self.pos]
                self.pos += 1
                candidate = _trim_newline(raw)
                if strip_tabs:
                    candidate = candidate.lstrip("\t")
                if candidate == name:
                    break
                body.append(raw)
            heredocs.append(Heredoc(name, "".join(body), expand, strip_tabs))
        return tuple(heredocs)

    # -- instructions -------------------------------------------------------------------------

    def _split_flags(self, text: str) -> tuple[list[str], str]:
        """The ``--flag`` words at the start of ``text`` and the rest of it."""
        esc = self.escape
        flags: list[str] = []
        i, n = 0, len(text)
        while True:
            while i < n and is_go_space(text[i]):
                i += 1
            if not text.startswith("--", i):
                return flags, text[i:]
            buf: list[str] = []
            quote = ""
            while i < n:
                ch = text[i]
                if quote:
                    if ch == quote:
                        quote = ""
                        i += 1
                        continue
                elif is_go_space(ch):
                    break
                elif ch in ("'", '"'):
                    quote = ch
                    i += 1
                    continue
                if ch == esc:
                    i += 1
                    if i == n:
                        break  # a trailing escape is dropped
                    ch = text[i]
                buf.append(ch)
                i += 1
            word = "".join(buf)
            if word == "--":
                return flags, text[i:]
            flags.append(word)
            if i >= n:
                return flags, ""

    def _check_flags(self, keyword: str, words: list[str]) -> tuple[tuple[str, str], ...]:
        spec = FLAGS.get(keyword, {})
        flags: list[tuple[str, str]] = []
        seen: set[str] = set()
        for word in words:
            written, has_value, value = word.partition("=")
            name = written[2:]
            kind = spec.get(name)
            if kind is None:
                if spec:
                    known = ", ".join("--" + flag for flag in spec)
                    raise _Fail(f"unknown flag: {written} ({keyword} supports {known})")
                raise _Fail(f"unknown flag: {written} ({keyword} takes no flags)")
            if name in seen and kind is not FlagKind.MULTI:
                raise _Fail(f"{keyword}: duplicate flag specified: {written}")
            seen.add(name)
            if kind is FlagKind.BOOL:
                if has_value and not value:
                    raise _Fail(f"{keyword}: missing a value on flag: {written}")
                lowered = value.lower()
                if lowered not in ("", "true", "false"):
                    raise _Fail(
                        f"{keyword}: expecting boolean value for flag {written}, not: {value}"
                    )
                value = "false" if lowered == "false" else "true"
            elif not has_value:
                raise _Fail(f"{keyword}: missing a value on flag: {written}")
            flags.append((name, value))
        if keyword == "RUN":
            network = next((v for k, v in reversed(flags) if k == "network"), None)
            if network is not None and network not in _RUN_NETWORKS:
                raise _Fail(f'RUN: invalid network mode "{network}"')
            security = next((v for k, v in reversed(flags) if k == "security"), None)
            if security is not None and security not in _RUN_SECURITY:
                raise _Fail(f'RUN: security "{security}" is not valid')
        return tuple(flags)

    def _exec(self, keyword: str, text: str) -> tuple[str, ...] | None:
        try:
            return _exec_form(text)
        except ValueError as exc:
            raise _Fail(f"{keyword}: {exc}") from None

    def _instruction(self, line: str, number: int) -> Instruction:
        """Parse one instruction's text (no heredoc bodies yet)."""
        stripped = _strip_blank(line)
        keyword_written, *remainder = _RE_BLANKS.split(stripped, maxsplit=1)
        keyword = keyword_written.upper()
        if not keyword_written.isascii() or keyword not in KEYWORDS:
            raise _Fail(f'unknown instruction: "{keyword}"')
        rest = remainder[0] if remainder else ""
        flag_words, args = self._split_flags(rest)
        args = _strip_blank(args)
        flags = self._check_flags(keyword, flag_words)
        json_args: tuple[str, ...] | None = None
        onbuild: Instruction | None = None

        if keyword in _EXEC_FORM and args:
            json_args = self._exec(keyword, args)

        if keyword == "FROM":
            self._check_from(args)
        elif keyword in ("COPY", "ADD"):
            words = list(json_args) if json_args is not None else _blank_split(args)
            if len(words) < 2:
                raise _Fail(
                    f"{keyword} requires at least two arguments, but only one was provided. "
                    "Destination could not be determined"
                )
            if self._is_marker(words[-1]):
                raise _Fail(f"{keyword} cannot accept a heredoc as a destination")
        elif keyword == "VOLUME":
            words = list(json_args) if json_args is not None else _blank_split(args)
            if not words:
                raise _Fail("VOLUME requires at least one argument")
            if any(not _strip_blank(word) for word in words):
                raise _Fail("VOLUME specified can not be an empty string")
        elif keyword == "SHELL":
            if json_args is None:
                if not args:
                    raise _Fail("SHELL requires at least one argument")
                raise _Fail("SHELL requires the arguments to be in JSON form")
            if not json_args:
                raise _Fail("SHELL requires at least one argument")
        elif keyword in ("ENV", "LABEL", "ARG"):
            if not args:
                raise _Fail(f"{keyword} requires at least one argument")
            try:
                split_key_values(args, escape=self.escape, instruction=keyword)
            except ExpansionError as exc:
                message = str(exc)
                raise _Fail(message if keyword in message else f"{keyword}: {message}") from None
        elif keyword in ("WORKDIR", "USER", "MAINTAINER", "STOPSIGNAL"):
            if not args:
                raise _Fail(f"{keyword} requires exactly one argument")
        elif keyword == "EXPOSE":
            if not args:
                raise _Fail("EXPOSE requires at least one argument")
        elif keyword == "HEALTHCHECK":
            json_args = self._check_healthcheck(args)
        elif keyword == "ONBUILD":
            onbuild = self._check_onbuild(args, number)

        return Instruction(
            keyword=keyword,
            flags=flags,
            args=args,
            json_args=json_args,
            heredocs=(),
            line=number,
            original=line,
            onbuild=onbuild,
            end_line=number,
        )

    def _is_marker(self, word: str) -> bool:
        try:
            return parse_heredoc_marker(word) is not None
        except ExpansionError:
            return False

    def _check_from(self, args: str) -> None:
        words = _blank_split(args)
        if len(words) == 3 and words[1].lower() == "as":
            name = words[2].lower()
            if not _RE_STAGE_NAME.fullmatch(name):
                raise _Fail(
                    f'invalid name for build stage: "{words[2]}", '
                    "name can't start with a number or contain symbols"
                )
        elif len(words) != 1:
            raise _Fail("FROM requires either one argument, or three: FROM <source> [as <name>]")

    def _check_healthcheck(self, args: str) -> tuple[str, ...] | None:
        if not args:
            raise _Fail("HEALTHCHECK requires at least one argument")
        end = 0
        while end < len(args) and not is_go_space(args[end]):
            end += 1
        kind = args[:end].upper()
        command = _lstrip_blank(args[end:])
        json_args = self._exec("HEALTHCHECK", command) if command else None
        if kind == "NONE":
            if command:
                raise _Fail("HEALTHCHECK NONE takes no arguments")
            return None
        if kind != "CMD":
            raise _Fail(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        if not command or json_args == ():
            raise _Fail("Missing command after HEALTHCHECK CMD")
        return json_args

    def _check_onbuild(self, args: str, number: int) -> Instruction:
        if not args:
            raise _Fail("ONBUILD requires at least one argument")
        trigger = _RE_BLANKS.split(args, maxsplit=1)[0].upper()
        if trigger == "ONBUILD":
            raise _Fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("FROM", "MAINTAINER"):
            raise _Fail(f"{trigger} isn't allowed as an ONBUILD trigger")
        try:
            return self._instruction(args, number)
        except _Fail as exc:
            raise _Fail(f"ONBUILD {exc.message}") from None

    def _with_heredocs(self, inst: Instruction, line: str) -> Instruction:
        """Read the heredoc bodies that follow ``inst``, if it has markers."""
        target = inst.onbuild if inst.onbuild is not None else inst
        if target.keyword not in _HEREDOC_KEYWORDS or target.json_args is not None:
            return inst
        if "<<" not in line:
            return inst
        try:
            markers = _heredoc_markers(line)
        except ExpansionError as exc:
            raise _Fail(f"{inst.keyword}: {exc}") from None
        if not markers:
            return inst
        heredocs = self._read_heredocs(inst.keyword, markers, inst.line)
        end = self.pos
        if inst.onbuild is not None:
            trigger = dataclasses.replace(inst.onbuild, heredocs=heredocs, end_line=end)
            return dataclasses.replace(inst, heredocs=heredocs, onbuild=trigger, end_line=end)
        return dataclasses.replace(inst, heredocs=heredocs, end_line=end)

    # -- the file -----------------------------------------------------------------------------

    def parse(self) -> Dockerfile:
        global_args: list[Instruction] = []
        stages: list[Stage] = []
        current: list[Instruction] = []
        names: set[str] = set()
        seen_any = False

        def close_stage() -> None:
            if stages:
                stages[-1] = dataclasses.replace(stages[-1], instructions=tuple(current))

        for line, number, last in self._logical_lines():
            seen_any = True
            try:
                inst = self._instruction(line, number)
                inst = dataclasses.replace(inst, end_line=last)
                inst = self._with_heredocs(inst, line)
            except _Fail as exc:
                raise self.error(exc.message, number) from None
            if inst.keyword == "FROM":
                close_stage()
                current = []
                words = _blank_split(inst.args)
                written = words[2] if len(words) == 3 else None
                name = written.lower() if written is not None else None
                if name is not None:
                    if name in names:
                        raise self.error(f'FROM: duplicate stage name "{name}"', number)
                    names.add(name)
                stages.append(
                    Stage(
                        index=len(stages),
                        name=name,
                        base=words[0],
                        platform=inst.flag("platform"),
                        instructions=(),
                        line=number,
                        written_name=written,
                    )
                )
            elif not stages:
                if inst.keyword != "ARG":
                    raise self.error(
                        f"no FROM statement found before {inst.keyword} "
                        "(only ARG may come before the first FROM)",
                        number,
                    )
                global_args.append(inst)
            else:
                current.append(inst)
        close_stage()
        if not seen_any:
            raise self.error("file with no instructions", 0)
        if not stages:
            raise self.error("no FROM statement found", 0)
        return Dockerfile(
            path=self.path,
            escape=self.escape,
            syntax=self.syntax,
            global_args=tuple(global_args),
            stages=tuple(stages),
        )


def parse_dockerfile(text: str, *, path: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile's text. Variables are not expanded; see
    :mod:`aiopod.builder.dockerfile.words`.

    Raises :class:`aiopod.errors.DockerfileError`, whose message starts with ``path:line:``
    and names the instruction, e.g. ``Dockerfile:7: unknown instruction: "ECHO"``.
    """
    return _Parser(text, path).parse()
