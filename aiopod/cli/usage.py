"""Usage errors as podman's command line (cobra and pflag) reports them.

aiopod parses its command line with click, but first reads it as podman's parser would:
pflag's syntax (``--flag=value`` or ``--flag value``, clusters such as ``-qa``, ``-ovalue``
and ``-o=value``, ``--`` ends the flags, a boolean flag takes a value only after ``=``),
then the command's argument count (cobra's ``Args`` rule, or podman's own check where
podman makes one).  The first error is reported in podman's words, with exit code 125:

* ``unknown flag: --x``, ``unknown shorthand flag: 'z' in -zf``, ``flag needs an
  argument: --format`` or ``'o' in -o``, ``invalid argument "x" for "-a, --all" flag:
  strconv.ParseBool: parsing "x": invalid syntax``, each followed by the line
  ``See 'PROG COMMAND --help'``;
* ``requires at least N arg(s), only received M``, ``accepts at most N arg(s), received
  M``, ``accepts between A and B arg(s), received M``, ```PROG COMMAND` takes no
  arguments``, or the command's own words (``need at least 1 argument``);
* ``unrecognized command `PROG x``` and ``Try 'PROG --help' for more information``; a
  group named without a command prints its help, then ``missing command 'PROG image
  COMMAND'``.

PROG is the name the program was started by, as podman prints its own: a link named
``podman`` to aiopod's command makes these messages podman's, byte for byte.  They are
the same under every ``--policy`` (the policies are about removal; the command line is
podman's everywhere).  Click then parses the arguments rewritten in a form it reads as
pflag did (the booleans resolved, the positional arguments after ``--``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

__all__ = (
    "ArgsRule",
    "CommandLineError",
    "PodmanCommand",
    "at_least",
    "at_least_or",
    "at_most",
    "between",
    "exactly",
    "no_args",
    "scan",
)

#: A command's argument rule: (number of arguments, command path) -> podman's error or None.
ArgsRule = Callable[[int, str], str | None]


class CommandLineError(click.ClickException):
    """A usage error in podman's words (printed after ``Error:``; exit code 125)."""

    exit_code = 125


def at_least(n: int) -> ArgsRule:
    """cobra's ``MinimumNArgs(n)``."""
    return lambda got, _: None if got >= n else f"requires at least {n} arg(s), only received {got}"


def exactly(n: int) -> ArgsRule:
    """cobra's ``ExactArgs(n)``."""
    return lambda got, _: None if got == n else f"accepts {n} arg(s), received {got}"


def at_most(n: int) -> ArgsRule:
    """cobra's ``MaximumNArgs(n)``."""
    return lambda got, _: None if got <= n else f"accepts at most {n} arg(s), received {got}"


def between(low: int, high: int) -> ArgsRule:
    """cobra's ``RangeArgs(low, high)``."""
    return lambda got, _: (
        None if low <= got <= high else f"accepts between {low} and {high} arg(s), received {got}"
    )


def no_args(got: int, path: str) -> str | None:
    """podman's ``validate.NoArgs``."""
    return None if got == 0 else f"`{path}` takes no arguments"


def at_least_or(n: int, message: str) -> ArgsRule:
    """A command's own check: fewer than *n* arguments is *message*."""
    return lambda got, _: None if got >= n else message


# -- pflag's syntax ---------------------------------------------------------------------------


def _go_quote(text: str) -> str:
    """Go's ``%q`` (for the printable text command lines hold)."""
    return json.dumps(text, ensure_ascii=False)


def _parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``; ``ValueError`` holds Go's message."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {_go_quote(text)}: invalid syntax")


def _underscores_ok(text: str) -> bool:
    """Go's rule: an underscore only between digits, or after a base prefix and before a
    digit (``1_000``, ``0x_ff``; not ``_1``, ``1__0`` or ``1_``)."""
    body = text[1:] if text[:1] in "+-" else text
    hexadecimal = body[:2].lower() == "0x"
    last = "0" if body[:2].lower() in ("0b", "0o", "0x") else "^"
    for char in body[2:] if last == "0" else body:
        if char in "0123456789" or (hexadecimal and char.lower() in "abcdef"):
            last = "0"
        elif char == "_":
            if last != "0":
                return False
            last = "_"
        elif last == "_":
            return False
        else:
            last = "!"
    return last != "_"


def _parse_int(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 0, 64)``; ``ValueError`` holds Go's message."""
    syntax = ValueError(f"strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax")
    body = text[1:] if text[:1] in "+-" else text
    base = 10
    if body[:2].lower() in ("0b", "0o", "0x"):
        base, body = {"b": 2, "o": 8, "x": 16}[body[1].lower()], body[2:]
    elif body[:1] == "0" and len(body) > 1:
        base, body = 8, body[1:]
    digits = body.replace("_", "")
    if not digits or not _underscores_ok(text):
        raise syntax
    if any(c not in "0123456789abcdef"[:base] for c in digits.lower()):
        raise syntax
    value = int(digits, base) * (-1 if text.startswith("-") else 1)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"strconv.ParseInt: parsing {_go_quote(text)}: value out of range")
    return value


@dataclass(frozen=True)
class _Flag:
    """A click option as pflag sees it."""

    option: click.Option
    boolean: bool  # pflag's bool flag: "=value" or nothing ("true")
    stops: bool  # --help, --version: parsing ends here
    bare: str | None = None  # pflag's NoOptDefVal: the value of the flag given alone

    @property
    def long(self) -> str | None:
        return next((o for o in self.option.opts if o.startswith("--")), None)

    @property
    def short(self) -> str | None:
        return next((o for o in self.option.opts if len(o) == 2), None)

    @property
    def shown(self) -> str:
        """The name pflag's messages give: ``-a, --all`` or ``--timestamp``."""
        return ", ".join(o for o in (self.short, self.long) if o)

    def parse(self, value: str) -> str | bool:
        """The value as the command gets it; ``ValueError`` with pflag's message."""
        try:
            if self.boolean:
                return _parse_bool(value)
            if isinstance(self.option.type, click.types.IntParamType):
                return str(_parse_int(value))
        except ValueError as exc:
            raise ValueError(
                f"invalid argument {_go_quote(value)} for {_go_quote(self.shown)} flag: {exc}"
            ) from None
        return value

    def tokens(self, value: str | bool) -> list[str]:
        """The value given to click (which reads ``--flag=value``, but not for flags)."""
        name = self.long or self.opt
        if self.option.is_flag and isinstance(value, bool):
            if value:
                return [name]
            return [self.option.secondary_opts[0]] if self.option.secondary_opts else []
        text = ("true" if value else "false") if isinstance(value, bool) else value
        return [f"{name}={text}"] if name.startswith("--") else [name, text]

    @property
    def opt(self) -> str:
        return self.option.opts[0]


def _flags(command: click.Command, ctx: click.Context) -> dict[str, _Flag]:
    table: dict[str, _Flag] = {}
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        boolean = bool(param.is_bool_flag) or (not param.is_flag and param.type is click.BOOL)
        # An option that may be given without its value (``--pull`` alone is ``--pull=true``).
        bare = param.flag_value if param._flag_needs_value and not param.is_flag else None
        flag = _Flag(param, boolean, param.is_eager and param.is_flag, bare)  # help, version
        for name in (*param.opts, *param.secondary_opts):
            table[name] = flag
    return table


@dataclass
class Scanned:
    """A command line read as pflag reads it."""

    argv: list[str]  # what click is given
    positional: list[str] = field(default_factory=list)
    stopped: bool = False  # --help or --version: no argument rule applies


def scan(
    command: click.Command, ctx: click.Context, args: Sequence[str], *, interspersed: bool
) -> Scanned:
    """Read *args* as pflag would, for *command*; raise :class:`CommandLineError` with
    pflag's message (and the ``See … --help`` line) at the first flag error.

    With *interspersed* false (groups, and commands that pass the rest on, as
    ``create``) the flags end at the first positional argument.
    """
    table = _flags(command, ctx)
    rest = list(args)
    flags: list[tuple[_Flag, str | bool]] = []
    positional: list[str] = []

    def fail(message: str) -> CommandLineError:
        return CommandLineError(f"{message}\nSee '{ctx.command_path} --help'")

    def take(flag: _Flag, value: str) -> None:
        try:
            flags.append((flag, flag.parse(value)))
        except ValueError as exc:
            raise fail(str(exc)) from None

    stopped = False
    while rest and not stopped:
        arg = rest.pop(0)
        if len(arg) < 2 or arg[0] != "-":
            positional.append(arg)
            if not interspersed:
                positional.extend(rest)
                rest = []
            continue
        if arg == "--":
            positional.extend(rest)
            rest = []
        elif arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not name or name[0] in "-=":
                raise fail(f"bad flag syntax: {arg}")
            flag = table.get("--" + name)
            if flag is None:
                raise fail(f"unknown flag: --{name}")
            if flag.stops:
                stopped = True
            elif eq:
                take(flag, value)
            elif flag.boolean:
                take(flag, "true")
            elif flag.bare is not None:
                take(flag, flag.bare)
            elif rest:
                take(flag, rest.pop(0))
            else:
                raise fail(f"flag needs an argument: {arg}")
        else:
            shorthands = arg[1:]
            while shorthands and not stopped:
                char = shorthands[0]
                flag = table.get("-" + char)
                if flag is None:
                    raise fail(f"unknown shorthand flag: '{char}' in -{shorthands}")
                if flag.stops:
                    stopped = True
                elif len(shorthands) > 2 and shorthands[1] == "=":
                    take(flag, shorthands[2:])
                    shorthands = ""
                elif flag.boolean:
                    take(flag, "true")
                    shorthands = shorthands[1:]
                elif len(shorthands) > 1:
                    take(flag, shorthands[1:])
                    shorthands = ""
                elif rest:
                    take(flag, rest.pop(0))
                    shorthands = ""
                else:
                    raise fail(f"flag needs an argument: '{char}' in -{shorthands}")
    if stopped:  # click shows the help or the version; what follows does not matter
        return Scanned([arg], positional, stopped=True)
    # pflag keeps the last value of a flag (every value of a repeatable one).
    values: dict[str, list[str | bool]] = {}
    given: dict[str, _Flag] = {}
    for flag, parsed in flags:
        key = flag.option.name or flag.opt
        values[key] = [*values.get(key, []), parsed] if flag.option.multiple else [parsed]
        given[key] = flag
    argv = [token for key, vs in values.items() for v in vs for token in given[key].tokens(v)]
    if interspersed or not isinstance(command, click.Group):
        argv.append("--")
    return Scanned([*argv, *positional], positional)


class PodmanCommand(click.Command):
    """A command whose command line is judged as podman's (see the module docstring).

    :param args_rule: how many arguments it takes, in podman's words (:data:`ArgsRule`).
    :param interspersed: whether flags may follow its arguments (pflag's default); the
        commands that hand their trailing arguments on (``create``) say False.
    """

    def __init__(
        self,
        *args: Any,
        args_rule: ArgsRule | None = None,
        interspersed: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.args_rule = args_rule
        self.interspersed = interspersed

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        scanned = scan(self, ctx, args, interspersed=self.interspersed)
        if not scanned.stopped and self.args_rule is not None:
            problem = self.args_rule(len(scanned.positional), ctx.command_path)
            if problem is not None:
                raise CommandLineError(problem)
        return super().parse_args(ctx, scanned.argv)
