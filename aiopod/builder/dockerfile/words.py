"""Variable expansion and word splitting, as Docker's Dockerfile shell lexer does them.

The rules are those of BuildKit's ``frontend/dockerfile/shell`` lexer (the one ``docker
build`` uses today), written afresh in Python:

* ``$NAME`` and ``${NAME}`` expand to the variable's value, and to ``""`` when it is unset.
  A name is letters, digits and ``_``; a name that starts with a digit takes only the digits
  (``$1x`` is ``$1`` then ``x``); the special parameters ``@ * # ? - $ ! 0`` are one-character
  names (``$$`` looks up a variable called ``$``, which is normally unset, so it is ``""``).
  A ``$`` not followed by a name or ``{`` is kept as is (``$.``, ``$`` at the end).
* Modifiers: ``${X:-word}`` / ``${X-word}`` (default when empty-or-unset / unset),
  ``${X:+word}`` / ``${X+word}`` (alternative), ``${X:?msg}`` / ``${X?msg}`` (error),
  ``${X#pat}`` / ``${X##pat}`` (remove the shortest / longest matching prefix),
  ``${X%pat}`` / ``${X%%pat}`` (suffix), ``${X/pat/repl}`` / ``${X//pat/repl}`` (replace the
  first / every match). Patterns know ``*``, ``?`` and ``\\`` escapes of ``* ? \\ } /``;
  like Go's regexp, neither ``*`` nor ``?`` matches a newline.
* Single quotes keep everything literally (there is no escape inside them); double quotes keep
  everything but ``$`` expansions, and the escape character escapes only ``"``, ``$`` and
  itself there (elsewhere it stays). Outside quotes the escape character makes the next
  character literal and is dropped; a trailing escape character is dropped.
* :func:`expand` returns the whole text with quotes removed, escapes processed and variables
  expanded (Docker's ``ProcessWord``). :func:`expand_words` also splits the result on
  whitespace that was not quoted, escaped or produced inside quotes (``ProcessWords``); the
  value of a variable *is* split. Empty words are dropped (``""`` alone gives no word). As in
  Docker, ``<<`` followed by blanks is glued to the next word (that is how heredoc markers
  such as ``<< EOF`` are recognized).
* :func:`parse_key_values` and :func:`parse_arg_definitions` read ``ENV``/``LABEL``/``ARG``
  text: ``k=v k2="v 2"`` pairs, and for ``ENV``/``LABEL`` the legacy ``KEY some value`` form.
  The text is first cut into words with the quotes kept (:func:`split_raw_words`), each word
  is cut at its first ``=``, and then key and value are expanded with :func:`expand`.

Every error is an :class:`~aiopod.errors.ExpansionError` (a :class:`ValueError`); the
caller adds the file and line (see :class:`aiopod.errors.DockerfileError`).

Differences from BuildKit, all on inputs that are errors or nonsense: ``${X`` reports
``missing '}'`` rather than an unsupported modifier; the replacement of ``${X/p/r}`` is taken
literally (Go would expand ``$1``-style group references in it); and words built around a
nested ``${X:-...}`` keep their leading characters (BuildKit's current ``ProcessWords`` loses
them). buildah 1.28 vendors an older lexer that knows only ``:-`` and ``:+``; the modifiers
here are Docker's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiopod.errors import ExpansionError

__all__ = (
    "expand",
    "expand_words",
    "is_go_space",
    "parse_arg_definitions",
    "parse_key_values",
    "process_word",
    "split_key_values",
    "split_raw_words",
)

# unicode.IsSpace in Go: the Latin-1 blanks plus the White_Space property beyond Latin-1.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_HEREDOC_BLANKS = frozenset("\t\r ")


class _Syntax(Exception):
    """Internal: a lexing error before the word is named in the message."""


def is_go_space(ch: str) -> bool:
    """Whether ``ch`` is white space by Go's ``unicode.IsSpace`` (Python's ``isspace`` also
    counts ``\\x1c``-``\\x1f``, Go does not)."""
    return ch in _GO_SPACES


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def _is_digit(ch: str) -> bool:
    # unicode.IsDigit is the Nd category, which is what str.isdecimal tests.
    return ch.isdecimal()


class _Words:
    """Collects the words of ``expand_words``: text is split on blanks unless added raw."""

    __slots__ = ("buf", "words")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []

    def _flush(self) -> None:
        word = "".join(self.buf)
        if word:
            self.words.append(word)
        self.buf.clear()

    def add_char(self, ch: str) -> None:
        if is_go_space(ch):
            self._flush()
        else:
            self.buf.append(ch)

    def add_text(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)

    def finish(self) -> list[str]:
        self._flush()
        return self.words


class _Lexer:
    """One pass over a word; see the module docstring for the rules."""

    __slots__ = ("env", "escape", "pos", "raw_escapes", "raw_quotes", "skip_unset", "text")

    def __init__(
        self,
        text: str,
        env: Mapping[str, str],
        escape: str,
        *,
        raw_quotes: bool,
        raw_escapes: bool,
        skip_unset: bool,
    ) -> None:
        self.text = text
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset
        self.pos = 0

    # -- scanning -----------------------------------------------------------------------------

    def _peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def _next(self) -> str | None:
        if self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            return ch
        return None

    # -- words --------------------------------------------------------------------------------

    def until(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Read up to ``stop`` (consumed) or the end; return the text and its words."""
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._until(stop)
        finally:
            self.raw_escapes = saved

    def _until(self, stop: str | None) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        while (ch := self._peek()) is not None:
            if stop is not None and ch == stop:
                self.pos += 1
                return "".join(out), words.finish()
            if ch == "$":
                piece = self._dollar()
                out.append(piece)
                words.add_text(piece)
            elif ch == "'":
                piece = self._single_quoted()
                out.append(piece)
                words.add_raw(piece)
            elif ch == '"':
                piece = self._double_quoted()
                out.append(piece)
                words.add_raw(piece)
            elif ch == "<":
                piece = self._maybe_heredoc()
                out.append(piece)
                words.add_raw(piece)
            else:
                self.pos += 1
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        out.append(ch)
                    escaped = self._next()
                    if escaped is None:
                        break
                    words.add_raw(escaped)
                    out.append(escaped)
                else:
                    words.add_char(ch)
                    out.append(ch)
        if stop is not None:
            raise _Syntax(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def _single_quoted(self) -> str:
        out: list[str] = []
        opening = self._next()
        if self.raw_quotes and opening is not None:
            out.append(opening)
        while True:
            ch = self._next()
            if ch is None:
                raise _Syntax("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quoted(self) -> str:
        out: list[str] = []
        opening = self._next()
        if self.raw_quotes and opening is not None:
            out.append(opening)
        while True:
            ch = self._peek()
            if ch is None:
                raise _Syntax("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.pos += 1
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self._peek()
                if following is None:
                    continue  # an escape at the very end is dropped
                if following in ('"', "$", self.escape):
                    self.pos += 1
                    ch = following
            out.append(ch)

    def _maybe_heredoc(self) -> str:
        self.pos += 1
        if self._peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while (ch := self._peek()) is not None and ch in _HEREDOC_BLANKS:
            self.pos += 1
        return "<<" + self.text[start : self.pos]

    # -- variables ----------------------------------------------------------------------------

    def _name(self) -> str:
        first = self._peek()
        if first is None:
            return ""
        if _is_digit(first):
            start = self.pos
            while (ch := self._peek()) is not None and _is_digit(ch):
                self.pos += 1
            return self.text[start : self.pos]
        if first in _SPECIAL_PARAMS:
            self.pos += 1
            return first
        start = self.pos
        while (ch := self._peek()) is not None and (_is_letter(ch) or _is_digit(ch) or ch == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def _lookup(self, name: str) -> str | None:
        return self.env.get(name)

    def _dollar(self) -> str:
        self.pos += 1  # the $
        if self._peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value = self._lookup(name)
            if value is None:
                return "$" + name if self.skip_unset else ""
            return value
        self.pos += 1  # the {
        first = self._peek()
        if first is None:
            raise _Syntax("syntax error: missing '}'")
        if first in "{}:":
            raise _Syntax("syntax error: bad substitution")
        name = self._name()
        op = self._next()
        if op is None:
            raise _Syntax("syntax error: missing '}'")
        if op == "}":
            value = self._lookup(name)
            if value is None:
                return "${" + name + "}" if self.skip_unset else ""
            return value
        if op == "/":
            return self._replace(name)
        modifier = op
        null_is_unset = False
        if op == ":":
            null_is_unset = True
            following = self._next()
            if following is None:
                raise _Syntax("syntax error: missing '}'")
            modifier = following
            op = ":" + following
        if modifier not in "+-?#%" or (null_is_unset and modifier in "#%"):
            raise _Syntax(f"unsupported modifier ({op}) in substitution")
        pattern_mode = modifier in "#%"
        try:
            word, _ = self.until("}", pattern_mode)
        except _Syntax:
            if self._peek() is None:
                raise _Syntax("syntax error: missing '}'") from None
            raise
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + op + word + "}"
        empty = value is None or (null_is_unset and value == "")
        if modifier == "-":
            return word if empty else (value or "")
        if modifier == "+":
            return "" if empty else word
        if modifier == "?":
            if value is None:
                raise _Syntax(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _Syntax(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        longest = word.startswith(modifier)
        if longest:
            word = word[1:]
        return _trim(value or "", word, longest=longest, suffix=modifier == "%")

    def _replace(self, name: str) -> str:
        every = self._peek() == "/"
        if every:
            self.pos += 1
        try:
            pattern, _ = self.until("/", True)
        except _Syntax:
            if self._peek() is None:
                raise _Syntax("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.until("}", True)
        except _Syntax:
            if self._peek() is None:
                raise _Syntax("syntax error: missing '}'") from None
            raise
        value = self._lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = re.compile(_pattern_regex(pattern))
        return _substitute(regex, value or "", replacement, every=every)


# -- patterns ---------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> str:
    """A Python regex for a ``${X#pattern}``-style pattern (``*``, ``?``, ``\\`` escapes)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i + 1] if i + 1 < len(pattern) else ""
            if following in ("}", "/"):
                i += 1  # the escape only protected the delimiter; keep the delimiter
                continue
            if following not in ("*", "?", "\\"):
                raise _Syntax(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{following}'"
                )
            out.append(re.escape(following))
            i += 2
            continue
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _trim(value: str, pattern: str, *, longest: bool, suffix: bool) -> str:
    regex = re.compile(_pattern_regex(pattern))
    n = len(value)
    if suffix:
        starts = range(n + 1) if longest else range(n, -1, -1)
        for start in starts:
            if regex.fullmatch(value, start):
                return value[:start]
        return value
    ends = range(n, -1, -1) if longest else range(n + 1)
    for end in ends:
        if regex.fullmatch(value, 0, end):
            return value[end:]
    return value


def _substitute(regex: re.Pattern[str], value: str, replacement: str, *, every: bool) -> str:
    if not every:
        match = regex.search(value)
        if match is None:
            return value
        return value[: match.start()] + replacement + value[match.end() :]
    # Go's ReplaceAll: an empty match right after the previous match is not replaced.
    out: list[str] = []
    last_end = 0
    previous_end = -1
    for match in regex.finditer(value):
        if match.start() == match.end() == previous_end:
            continue
        out.append(value[last_end : match.start()])
        out.append(replacement)
        last_end = previous_end = match.end()
    out.append(value[last_end:])
    return "".join(out)


# -- public API -------------------------------------------------------------------------------


def _check_escape(escape: str) -> None:
    if len(escape) != 1:
        raise ValueError(f"the escape character must be one character, not {escape!r}")


def process_word(
    text: str,
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    raw_quotes: bool = False,
    raw_escapes: bool = False,
    skip_unset: bool = False,
) -> tuple[str, list[str]]:
    """The lexer with all of BuildKit's knobs: the expanded text and its words.

    ``raw_quotes`` keeps quote characters, ``raw_escapes`` keeps escape characters (and what
    they escape), ``skip_unset`` leaves references to unset variables as written. The parser
    uses the three together to find heredoc markers.
    """
    _check_escape(escape)
    lexer = _Lexer(
        text,
        env,
        escape,
        raw_quotes=raw_quotes,
        raw_escapes=raw_escapes,
        skip_unset=skip_unset,
    )
    try:
        return lexer.until(None, raw_escapes)
    except _Syntax as exc:
        raise ExpansionError(f'failed to process "{text}": {exc}') from None
    except RecursionError:
        reason = "substitutions nested too deeply"
        raise ExpansionError(f'failed to process "{text}": {reason}') from None


def expand(text: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """Expand variables in ``text`` and remove quotes and escapes (Docker's ``ProcessWord``).

    >>> expand('"$A b"/${B:-x}', {"A": "a"})
    'a b/x'
    """
    return process_word(text, env, escape=escape)[0]


def expand_words(text: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Expand like :func:`expand`, then split on unquoted blanks (Docker's ``ProcessWords``).

    >>> expand_words("a 'b c' $V", {"V": "d e"})
    ['a', 'b c', 'd', 'e']
    """
    return process_word(text, env, escape=escape)[1]


def split_raw_words(text: str, *, escape: str = "\\") -> list[str]:
    """Cut ``text`` into words on unquoted blanks, keeping quotes and escapes in the words.

    This is the first step of ``ENV``/``LABEL``/``ARG`` parsing (Docker's ``parseWords``): an
    escape character outside quotes is kept together with the character after it, inside
    double quotes likewise, and inside single quotes it is an ordinary character. An
    unterminated quote runs to the end of the text.
    """
    _check_escape(escape)
    words: list[str] = []
    buf: list[str] = []
    quote = ""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    break  # a trailing escape is dropped
                buf.append(ch)
                i += 1
                ch = text[i]
            buf.append(ch)
            i += 1
            continue
        if is_go_space(ch):
            if buf:
                words.append("".join(buf))
                buf.clear()
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
        elif ch == escape:
            if i + 1 == n:
                break
            buf.append(ch)
            i += 1
            ch = text[i]
        buf.append(ch)
        i += 1
    if buf:
        words.append("".join(buf))
    return words


_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


def split_key_values(
    text: str, *, escape: str = "\\", instruction: str = "ENV"
) -> list[tuple[str, str | None]]:
    """Cut ``ENV``/``LABEL``/``ARG`` text into raw (unexpanded) keys and values.

    ``ENV``/``LABEL``: ``k=v ...``, or the legacy ``KEY rest of the line`` when the first word
    has no ``=`` (then the value is everything after the first blanks). ``ARG``: each word is
    ``name`` (value ``None``) or ``name=default``. Raises :class:`ExpansionError` with
    Docker's messages (``ENV must have two arguments``, ``Syntax error - can't find = in "c".
    Must be of the form: name=value``, ``ENV names can not be blank``).
    """
    instruction = instruction.upper()
    words = split_raw_words(text, escape=escape)
    if not words:
        raise ExpansionError(f"{instruction} requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    if instruction == "ARG":
        for word in words:
            key, sep, value = word.partition("=")
            if sep and not key:
                raise ExpansionError("ARG names can not be blank")
            pairs.append((key, value if sep else None))
        return pairs
    if "=" not in words[0]:
        parts = _RE_WHITESPACE.split(text.strip("".join(_GO_SPACES)), maxsplit=1)
        if len(parts) < 2:
            raise ExpansionError(f"{instruction} must have two arguments")
        return [(parts[0], parts[1])]
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ExpansionError(
                f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value'
            )
        if not key:
            raise ExpansionError(f"{instruction} names can not be blank")
        pairs.append((key, value))
    return pairs


def parse_key_values(
    text: str,
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    instruction: str = "ENV",
) -> list[tuple[str, str]]:
    """The expanded ``(key, value)`` pairs of an ``ENV`` or ``LABEL`` (or ``ARG``) argument.

    Keys and values are expanded with ``env`` and lose their quotes; the pairs come in the
    order written, later duplicates included. For ``ARG``, a name without a default is an
    error here; use :func:`parse_arg_definitions` to keep such names.

    >>> parse_key_values('a=1 b="x y" c=$a', {"a": "0"})
    [('a', '1'), ('b', 'x y'), ('c', '0')]
    >>> parse_key_values("KEY some value", {})
    [('KEY', 'some value')]
    """
    out: list[tuple[str, str]] = []
    for key, value in parse_arg_definitions(text, env, escape=escape, instruction=instruction):
        if value is None:
            raise ExpansionError(f"ARG {key} has no default value")
        out.append((key, value))
    return out


def parse_arg_definitions(
    text: str,
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    instruction: str = "ARG",
) -> list[tuple[str, str | None]]:
    """The expanded ``(name, default)`` pairs of an ``ARG``; ``default`` is ``None`` when
    absent (``ARG NAME``), which is not the same as an empty default (``ARG NAME=``)."""
    out: list[tuple[str, str | None]] = []
    for raw_key, raw_value in split_key_values(text, escape=escape, instruction=instruction):
        key = expand(raw_key, env, escape=escape)
        if not key:
            raise ExpansionError(f"{instruction.upper()} names can not be blank")
        value = None if raw_value is None else expand(raw_value, env, escape=escape)
        out.append((key, value))
    return out
