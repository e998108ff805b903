"""Go templates for ``--format``, as podman's commands read them.

The language of Go's ``text/template`` that podman's documentation shows: text and
``{{ }}`` actions (``{{-``/``-}}`` trim the spaces beside them, ``{{/* */}}`` is a
comment); pipelines of fields (``.Name``, ``.Config.Cmd``, ``$``, ``$var.Field``),
literals (strings, numbers, ``true``/``false``/``nil``), parenthesised pipelines and
function calls, chained with ``|``; ``if``/``else if``/``else``, ``range`` (with
``$i, $v :=`` and ``else``), ``with`` and variables (``$x := …``, ``$x = …``).

Functions: Go's (``and``, ``or``, ``not``, ``len``, ``index``, ``print``, ``printf``,
``println``, ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``) and podman's (``json``,
``lower``, ``upper``, ``title``, ``join``, ``split``, ``truncate``, ``pad``).

Values print as Go's ``fmt`` prints them: ``<no value>`` for a missing map key or nil,
``[a b]`` for a list, ``map[k:v]`` for a map.  Data is made of Python values and
:class:`GoStruct` objects: a field a struct does not have is an error in Go's words
(``template: images:1:13: executing "images" at <.Foo>: can't evaluate field Foo in type
images.imageReporter``), a key a mapping does not have is ``<no value>``.

API (for every command with ``--format``)::

    template = parse("{{.Name}}", "events")      # TemplateError: a parse error
    text = template.execute(GoStruct("*events.Event", fields))   # TemplateError too
    text = render_list(format, rows, "images")   # podman's ``{{range .}}…{{end}}``
    text = render_list("table {{.ID}}", rows, "images", headers=IMAGE_HEADERS)

A listing's format is first normalised as podman does: ``\\t`` and ``\\n`` (a backslash
and a letter) are a tab and a line break; a format that starts with ``table `` (with the
space) is a table: every space in it becomes a column break, a header line (the
template applied to the command's field-to-header mapping, ``<no value>`` for a field
that has none) comes first unless the command is told not to print it, and the columns
are aligned as podman's tabwriter does.  ``inspect`` prints no header line.

Errors carry Go's text; the command prints it after ``Error:`` and exits 125.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiopod._text import render_table
from aiopod.errors import TemplateError

__all__ = (
    "FUNCTIONS",
    "GoNilMap",
    "GoString",
    "GoStruct",
    "Template",
    "TemplateError",
    "go_print",
    "is_json_format",
    "normalise_format",
    "parse",
    "render_list",
    "render_listing",
)


@dataclass(frozen=True)
class GoStruct:
    """A Go struct for a template: its type's name (for errors) and its fields."""

    type_name: str
    fields: Mapping[str, Any]
    #: What ``{{json .}}`` prints for it (default: its fields).
    json_value: Any = field(default=None, compare=False)


class GoString(str):
    """A value of a Go string type other than ``string`` (podman's ``events.Status``):
    it prints and compares as a string, but functions that take a ``string`` refuse it,
    as Go's reflection does."""

    go_type: str = "string"

    def __new__(cls, value: str, go_type: str) -> GoString:
        self = super().__new__(cls, value)
        self.go_type = go_type
        return self


class GoNilMap(dict[str, str]):
    """A nil Go map: prints ``map[]``, is ``null`` in JSON."""


# -- printing --------------------------------------------------------------------------------


def go_print(value: Any) -> str:
    """*value* as Go's ``fmt.Sprint`` prints it in a template."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, GoStruct):
        return "{" + " ".join(_inner(v) for v in value.fields.values()) + "}"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_inner(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, Sequence):
        return "[" + " ".join(_inner(v) for v in value) + "]"
    return str(value)


def _inner(value: Any) -> str:
    return "<nil>" if value is None else go_print(value)


def _go_float(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent):+03d}"
    return text


def _go_json(value: Any) -> str:
    if isinstance(value, GoNilMap) and not value:
        return "null"
    if isinstance(value, GoStruct):
        value = value.json_value if value.json_value is not None else dict(value.fields)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_default(value: Any) -> Any:
    if isinstance(value, GoStruct):
        return value.json_value if value.json_value is not None else dict(value.fields)
    raise TypeError(f"cannot marshal {type(value).__name__}")


# -- functions -------------------------------------------------------------------------------


def _truth(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | Sequence | Mapping):
        return bool(value)
    return True


_PRINTF_RE: Final = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*))?([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    values = list(args)

    def verb(match: re.Match[str]) -> str:
        flags, width, precision, kind = match.groups()
        if kind == "%":
            return "%"
        if not values:
            return f"%!{kind}(MISSING)"
        value = values.pop(0)
        if kind == "v":
            text = go_print(value)
        elif kind == "s":
            text = value if isinstance(value, str) else go_print(value)
        elif kind == "q":
            text = json.dumps(str(value), ensure_ascii=False)
        elif kind == "d" and isinstance(value, int):
            text = str(value)
        elif kind in "feg" and isinstance(value, int | float):
            text = format(float(value), f".{precision or 6}{kind}")
            precision = None
        elif kind in "xX" and isinstance(value, int | str):
            text = value.encode().hex() if isinstance(value, str) else format(value, "x")
            text = text.upper() if kind == "X" else text
        elif kind == "t" and isinstance(value, bool):
            text = "true" if value else "false"
        else:
            return f"%!{kind}({type(value).__name__}={go_print(value)})"
        if precision is not None and kind in "sqv":
            text = text[: int(precision)]
        if width is not None and width != "*":
            if "-" in flags:
                text = text.ljust(int(width))
            elif "0" in flags and kind in "dfeg":
                sign = text[:1] if text[:1] in "+-" else ""
                text = sign + text[len(sign) :].rjust(int(width) - len(sign), "0")
            else:
                text = text.rjust(int(width))
        return text

    return _PRINTF_RE.sub(verb, fmt)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, Sequence) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"error calling index: cannot index slice/array with {key!r}")
    return value


def _length(value: Any) -> int:
    if isinstance(value, GoStruct):
        raise TemplateError(f"error calling len: len of type {value.type_name}")
    try:
        return len(value)
    except TypeError:
        raise TemplateError(f"error calling len: len of type {type(value).__name__}") from None


def _compare(name: str, test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, b: Any) -> bool:
        if isinstance(a, bool) != isinstance(b, bool) or (isinstance(a, str) != isinstance(b, str)):
            raise TemplateError(f"error calling {name}: incompatible types for comparison")
        return test(a, b)

    return compare


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("error calling eq: missing argument for comparison")
    return any(_compare("eq", lambda x, y: bool(x == y))(a, b) for b in others)


def _pad(text: str, before: int, after: int) -> str:
    return " " * before + text + " " * after


def _truncate(text: str, length: int) -> str:
    return text[:length]


def _title(text: str) -> str:
    return re.sub(r"(?<![^\W_])(\w)", lambda m: m.group(1).upper(), text)


def _and(*values: Any) -> Any:
    for value in values:
        if not _truth(value):
            return value
    return values[-1]


def _or(*values: Any) -> Any:
    for value in values:
        if _truth(value):
            return value
    return values[-1]


#: Functions whose parameters are Go ``string`` s (by position; -1: every one).
_STRING_PARAMETERS: Final[Mapping[str, tuple[int, ...]]] = {
    "lower": (0,),
    "upper": (0,),
    "title": (0,),
    "split": (0, 1),
    "truncate": (0,),
    "pad": (0,),
    "join": (1,),
    "printf": (0,),
}

#: The functions a template may call.
FUNCTIONS: Final[Mapping[str, Callable[..., Any]]] = {
    "and": _and,
    "or": _or,
    "not": lambda value: not _truth(value),
    "len": _length,
    "index": _index,
    "print": lambda *values: "".join(go_print(v) for v in values),
    "println": lambda *values: " ".join(go_print(v) for v in values) + "\n",
    "printf": _printf,
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _compare("lt", lambda a, b: bool(a < b)),
    "le": _compare("le", lambda a, b: bool(a <= b)),
    "gt": _compare("gt", lambda a, b: bool(a > b)),
    "ge": _compare("ge", lambda a, b: bool(a >= b)),
    "json": _go_json,
    "lower": lambda text: str(text).lower(),
    "upper": lambda text: str(text).upper(),
    "title": lambda text: _title(str(text)),
    "join": lambda items, sep: sep.join(str(i) for i in items or ()),
    "split": lambda text, sep: str(text).split(sep),
    "truncate": _truncate,
    "pad": _pad,
}


# -- parsing ---------------------------------------------------------------------------------


@dataclass
class _Pos:
    line: int
    col: int


@dataclass
class _Field:
    pos: _Pos
    base: str | None  # None: dot; "$" or "$name": a variable
    names: tuple[str, ...]
    text: str


@dataclass
class _Literal:
    pos: _Pos
    value: Any
    text: str


@dataclass
class _Call:
    pos: _Pos
    name: str
    args: list[Any]
    text: str


@dataclass
class _Pipeline:
    pos: _Pos
    commands: list[Any]  # each: _Call, _Field, _Literal or _Pipeline
    declare: tuple[str, ...] = ()
    assign: bool = False


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipeline: _Pipeline


@dataclass
class _Branch:
    kind: str  # if, range, with
    pipeline: _Pipeline
    body: list[Any]
    otherwise: list[Any]


_ACTION_RE: Final = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN_RE: Final = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      | (?P<var>\$[A-Za-z0-9_]*)(?P<varfields>(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<declare>:=|=)
      | (?P<punct>[|(),])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


class _Parser:
    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name

    def error(self, pos: _Pos, message: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{pos.line}: {message}")

    def position(self, offset: int) -> _Pos:
        line = self.text.count("\n", 0, offset) + 1
        start = self.text.rfind("\n", 0, offset) + 1
        return _Pos(line, offset - start)

    def parse(self) -> list[Any]:
        items: list[Any] = []
        stack: list[tuple[_Branch, list[Any], bool]] = []
        current = items
        offset = 0
        trim_next = False
        for match in _ACTION_RE.finditer(self.text):
            text = self.text[offset : match.start()]
            if trim_next:
                text = text.lstrip()
            if match.group(1):
                text = text.rstrip()
            if text:
                current.append(_Text(text))
            offset = match.end()
            trim_next = bool(match.group(3))
            body = match.group(2)
            start = match.start(2)
            stripped = body.strip()
            pos = self.position(start + len(body) - len(body.lstrip()))
            if stripped.startswith("/*"):
                if not stripped.endswith("*/"):
                    raise self.error(pos, "unclosed comment")
                continue
            keyword = stripped.split(None, 1)[0] if stripped else ""
            rest_offset = start + body.find(keyword) + len(keyword) if keyword else start
            if keyword in ("if", "range", "with"):
                pipeline = self.pipeline(self.text[rest_offset : match.end(2)], rest_offset)
                branch = _Branch(keyword, pipeline, [], [])
                current.append(branch)
                stack.append((branch, current, False))
                current = branch.body
            elif keyword == "else":
                if not stack:
                    raise self.error(pos, "unexpected {{else}}")
                branch, parent, _ = stack[-1]
                tail = stripped[4:].strip()
                if tail.startswith("if ") or tail == "if":
                    inner_offset = start + body.find("if", body.find("else") + 4) + 2
                    pipeline = self.pipeline(self.text[inner_offset : match.end(2)], inner_offset)
                    nested = _Branch("if", pipeline, [], [])
                    branch.otherwise.append(nested)
                    stack[-1] = (nested, parent, True)
                    current = nested.body
                else:
                    current = branch.otherwise
            elif keyword == "end":
                if not stack:
                    raise self.error(pos, "unexpected {{end}}")
                _, current, _ = stack.pop()
            elif keyword in ("define", "template", "block", "break", "continue"):
                raise self.error(pos, f"{{{{{keyword}}}}} is not supported by aiopod's templates")
            else:
                if not stripped:
                    raise self.error(pos, "missing value for command")
                current.append(_Action(self.pipeline(body, start)))
        text = self.text[offset:]
        if trim_next:
            text = text.lstrip()
        if text:
            current.append(_Text(text))
        if stack:
            raise self.error(stack[0][0].pipeline.pos, "unexpected EOF")
        if "{{" in text:
            raise self.error(self.position(offset + text.find("{{")), "unclosed action")
        return items

    def pipeline(self, text: str, base: int) -> _Pipeline:
        tokens = self.tokens(text, base)
        declare: tuple[str, ...] = ()
        assign = False
        names = []
        i = 0
        while i < len(tokens) and tokens[i][0] == "var" and not tokens[i][3]:
            names.append(tokens[i][1])
            if i + 1 < len(tokens) and tokens[i + 1][1] == ",":
                i += 2
                continue
            if i + 1 < len(tokens) and tokens[i + 1][0] == "declare":
                declare = tuple(names)
                assign = tokens[i + 1][1] == "="
                tokens = tokens[i + 2 :]
            break
        pipeline, rest = self.parse_pipeline(tokens, base)
        if rest:
            raise self.error(rest[0][2], f"unexpected {rest[0][1]!r} in command")
        pipeline.declare = declare
        pipeline.assign = assign
        return pipeline

    def tokens(self, text: str, base: int) -> list[tuple[str, str, _Pos, str]]:
        out: list[tuple[str, str, _Pos, str]] = []
        offset = 0
        while offset < len(text):
            if not text[offset:].strip():
                break
            match = _TOKEN_RE.match(text, offset)
            if match is None or match.end() == offset:
                pos = self.position(base + offset)
                bad = text[offset:].strip()[:1]
                raise self.error(pos, f"unexpected {bad!r} in command")
            kind = match.lastgroup or ""
            if kind == "varfields":
                kind = "var"
            value = match.group(kind) if kind != "var" else match.group("var")
            start = match.start(kind if kind != "var" else "var")
            extra = match.group("varfields") or "" if kind == "var" else ""
            out.append((kind, value, self.position(base + start), extra))
            offset = match.end()
        return out

    def parse_pipeline(
        self, tokens: list[tuple[str, str, _Pos, str]], base: int
    ) -> tuple[_Pipeline, list[tuple[str, str, _Pos, str]]]:
        if not tokens:
            raise self.error(self.position(base), "missing value for command")
        pipeline = _Pipeline(tokens[0][2], [])
        while True:
            command, tokens = self.parse_command(tokens)
            pipeline.commands.append(command)
            if tokens and tokens[0][1] == "|":
                tokens = tokens[1:]
                continue
            return pipeline, tokens

    def parse_command(
        self, tokens: list[tuple[str, str, _Pos, str]]
    ) -> tuple[Any, list[tuple[str, str, _Pos, str]]]:
        operands: list[Any] = []
        while tokens and tokens[0][1] not in ("|", ")"):
            operand, tokens = self.operand(tokens)
            operands.append(operand)
        if not operands:
            pos = tokens[0][2] if tokens else _Pos(1, 0)
            raise self.error(pos, "missing value for command")
        head = operands[0]
        if isinstance(head, _Call):
            head.args.extend(operands[1:])
            return head, tokens
        if len(operands) > 1:
            raise self.error(operands[1].pos, f"can't give argument to non-function {head.text}")
        return head, tokens

    def operand(
        self, tokens: list[tuple[str, str, _Pos, str]]
    ) -> tuple[Any, list[tuple[str, str, _Pos, str]]]:
        kind, value, pos, extra = tokens[0]
        rest = tokens[1:]
        if kind == "string":
            text = value[1:-1] if value.startswith("`") else json.loads(value, strict=False)
            return _Literal(pos, text, value), rest
        if kind == "number":
            number: Any = float(value) if any(c in value for c in ".eE") else int(value)
            return _Literal(pos, number, value), rest
        if kind == "field":
            names = tuple(n for n in value.split(".") if n)
            return _Field(pos, None, names, value), rest
        if kind == "var":
            names = tuple(n for n in extra.split(".") if n)
            return _Field(pos, value, names, value + extra), rest
        if kind == "ident":
            if value in ("true", "false"):
                return _Literal(pos, value == "true", value), rest
            if value == "nil":
                return _Literal(pos, None, value), rest
            if value not in FUNCTIONS:
                raise self.error(pos, f'function "{value}" not defined')
            return _Call(pos, value, [], value), rest
        if value == "(":
            inner, rest = self.parse_pipeline(rest, 0)
            if not rest or rest[0][1] != ")":
                raise self.error(pos, "unclosed left paren")
            return inner, rest[1:]
        raise self.error(pos, f"unexpected {value!r} in operand")


# -- execution -------------------------------------------------------------------------------


_Scope = dict[str, Any]


class Template:
    """A parsed template (:func:`parse`)."""

    def __init__(self, name: str, items: list[Any]) -> None:
        self.name = name
        self._items = items

    def execute(self, data: Any) -> str:
        """The template's text for *data*.

        :raises TemplateError: a field the data does not have, a function failing.
        """
        out: list[str] = []
        self._run(self._items, data, [{"$": data}], out)
        return "".join(out)

    def _error(self, node: Any, message: str) -> TemplateError:
        pos = node.pos
        return TemplateError(
            f'template: {self.name}:{pos.line}:{pos.col}: executing "{self.name}" at '
            f"<{node.text}>: {message}"
        )

    def _run(
        self, items: list[Any], dot: Any, scopes: list[dict[str, Any]], out: list[str]
    ) -> None:
        for item in items:
            if isinstance(item, _Text):
                out.append(item.text)
            elif isinstance(item, _Action):
                value = self._pipeline(item.pipeline, dot, scopes)
                if not item.pipeline.declare:
                    out.append(go_print(value))
            else:
                self._branch(item, dot, scopes, out)

    def _branch(
        self, branch: _Branch, dot: Any, scopes: list[dict[str, Any]], out: list[str]
    ) -> None:
        scopes = [*scopes, {}]
        if branch.kind == "range":
            value = self._pipeline(branch.pipeline, dot, scopes, bind=False)
            pairs: list[tuple[Any, Any]]
            if value is None:
                pairs = []
            elif isinstance(value, Mapping):
                pairs = [(k, value[k]) for k in sorted(value)]
            elif isinstance(value, Sequence) and not isinstance(value, str):
                pairs = list(enumerate(value))
            elif isinstance(value, int) and not isinstance(value, bool):
                pairs = [(i, i) for i in range(value)]
            else:
                raise self._error(
                    branch.pipeline.commands[0], f"range can't iterate over {go_print(value)}"
                )
            if not pairs:
                self._run(branch.otherwise, dot, scopes, out)
                return
            names = branch.pipeline.declare
            for key, element in pairs:
                if len(names) == 1:
                    scopes[-1][names[0]] = element
                elif len(names) == 2:
                    scopes[-1][names[0]], scopes[-1][names[1]] = key, element
                self._run(branch.body, element, scopes, out)
            return
        value = self._pipeline(branch.pipeline, dot, scopes)
        if _truth(value):
            self._run(branch.body, value if branch.kind == "with" else dot, scopes, out)
        else:
            self._run(branch.otherwise, dot, scopes, out)

    def _pipeline(
        self, pipeline: _Pipeline, dot: Any, scopes: list[dict[str, Any]], *, bind: bool = True
    ) -> Any:
        value: Any = _MISSING
        for command in pipeline.commands:
            value = self._command(command, dot, scopes, value)
        if bind and pipeline.declare:
            name = pipeline.declare[-1]
            if pipeline.assign:
                for scope in reversed(scopes):
                    if name in scope:
                        scope[name] = value
                        break
                else:
                    raise self._error(pipeline.commands[0], f"undefined variable: {name}")
            else:
                scopes[-1][name] = value
        return value

    def _command(self, node: Any, dot: Any, scopes: list[dict[str, Any]], piped: Any) -> Any:
        if isinstance(node, _Call):
            args = [self._operand(a, dot, scopes) for a in node.args]
            if piped is not _MISSING:
                args.append(piped)
            for index in _STRING_PARAMETERS.get(node.name, ()):
                if index < len(args) and isinstance(args[index], GoString):
                    culprit = node.args[index] if index < len(node.args) else node
                    raise self._error(
                        culprit,
                        f"wrong type for value; expected string; got {args[index].go_type}",
                    )
            try:
                return FUNCTIONS[node.name](*args)
            except TemplateError as exc:
                raise self._error(node, str(exc)) from None
            except (TypeError, ValueError, AttributeError) as exc:
                raise self._error(node, f"error calling {node.name}: {exc}") from None
        if piped is not _MISSING:
            raise self._error(node, f"can't give argument to non-function {node.text}")
        return self._operand(node, dot, scopes)

    def _operand(self, node: Any, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Pipeline):
            return self._pipeline(node, dot, scopes)
        if isinstance(node, _Call):
            return self._command(node, dot, scopes, _MISSING)
        value = dot
        if node.base is not None:
            for scope in reversed(scopes):
                if node.base in scope:
                    value = scope[node.base]
                    break
            else:
                raise self._error(node, f"undefined variable: {node.base}")
        for name in node.names:
            if isinstance(value, GoStruct):
                if name not in value.fields:
                    raise self._field_error(
                        node, f"can't evaluate field {name} in type {value.type_name}"
                    )
                value = value.fields[name]
            elif isinstance(value, Mapping):
                value = value.get(name)
            elif value is None:
                raise self._error(node, f"nil pointer evaluating interface {{}}.{name}")
            else:
                raise self._field_error(
                    node, f"can't evaluate field {name} in type {_go_type(value)}"
                )
        return value

    def _field_error(self, node: _Field, message: str) -> TemplateError:
        # Go reports a chain of fields at the chain's position, whichever field failed:
        # the first field after a variable ($x.A.B: .A), the second field of a chain that
        # starts with one (.A.B.C: .B); a lone field at its own.
        if node.base is not None:
            skipped = len(node.base) if node.names else 0
        else:
            skipped = len(node.names[0]) + 1 if len(node.names) > 1 else 0
        moved = _Field(
            _Pos(node.pos.line, node.pos.col + skipped), node.base, node.names, node.text
        )
        return self._error(moved, message)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Sequence):
        return "[]interface {}"
    return type(value).__name__


_MISSING: Final = object()


def parse(text: str, name: str) -> Template:
    """Parse *text* as the template *name* (the name Go's messages show).

    :raises TemplateError: the template is malformed.
    """
    return Template(name, _Parser(text, name).parse())


def is_json_format(text: str) -> bool:
    """Whether *text* asks for JSON as a whole (``json`` or ``{{json .}}``), as podman's
    ``report.IsJSON`` decides."""
    return bool(re.fullmatch(r"\s*(json|\{\{\s*json\s*\.\s*\}\})\s*", text))


_RANGE_RE: Final = re.compile(r"(?s)\{\{\s*range\s*\.\s*\}\}.*\{\{\s*end\s*-?\s*\}\}")


def normalise_format(text: str) -> tuple[str, bool]:
    """podman's normalisation of a listing's format: the text and whether it is a table."""
    table = text.startswith("table ")
    if table:
        text = text.removeprefix("table ").replace(" ", "\t")
    text = text.replace(r"\t", "\t").replace(r"\n", "\n")
    return (text if text.endswith("\n") else text + "\n"), table


def _execute_list(text: str, rows: Sequence[Any], name: str) -> str:
    if _RANGE_RE.search(text):
        return parse(text, name).execute(list(rows))
    return parse("{{range .}}" + text + "{{end -}}", name).execute(list(rows))


def render_listing(
    text: str,
    rows: Sequence[Any],
    name: str,
    *,
    headers: Mapping[str, str] | None = None,
    heading: bool = True,
) -> tuple[str, TemplateError | None]:
    """``--format`` of a listing command (``images``, ``ps``, ``history``) or ``inspect``:
    the template applied to each row, one line each, as podman's ``{{range .}}…{{end}}``
    wrapper does (a line break is added unless the template ends with one); a template
    that is such a range already is applied to the list.  A ``table`` format (see the
    module) gets a header line from *headers* (unless not *heading*) and aligned columns.

    Returns what to print and the error that stopped the rows, if one did: podman prints
    the header line before a row's error (it is written first).

    :raises TemplateError: the template is malformed, or fails on the header line.
    """
    body, table = normalise_format(text)
    if not table or headers is None:
        try:
            return _execute_list(body, rows, name), None
        except TemplateError as exc:
            if not table:
                raise
            return "", exc
    head = _execute_list(body, [dict(headers)], name) if heading else ""
    error = None
    try:
        lines = _execute_list(body, rows, name)
    except TemplateError as exc:
        lines, error = "", exc
    text = head + lines
    if not text:
        return "", error
    text = text.removesuffix("\n")
    return render_table([line.split("\t") for line in text.split("\n")]), error


def render_list(
    text: str, rows: Sequence[Any], name: str, *, headers: Mapping[str, str] | None = None
) -> str:
    """:func:`render_listing`'s output, or its error raised.

    :raises TemplateError: in Go's words, with positions as podman reports them.
    """
    output, error = render_listing(text, rows, name, headers=headers)
    if error is not None:
        raise error
    return output
