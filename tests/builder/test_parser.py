"""The Dockerfile parser (aiopod.builder.dockerfile.parser): Docker's rules, heredocs included."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from aiopod.builder.dockerfile.parser import (
    Dockerfile,
    Heredoc,
    Instruction,
    parse_dockerfile,
    parse_heredoc_marker,
)
from aiopod.builder.dockerfile.words import expand_words
from aiopod.builder.stages import plan_stages
from aiopod.cli.exit_codes import exit_code_of
from aiopod.errors import AiopodError, DockerfileError


def parse(text: str) -> Dockerfile:
    return parse_dockerfile(text)


def only(text: str) -> Instruction:
    """The single instruction after ``FROM scratch``."""
    df = parse("FROM scratch\n" + text)
    [instruction] = df.stages[0].instructions
    return instruction


def error(text: str, path: str = "Dockerfile") -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text, path=path)
    return info.value


# -- stages, names and lines ------------------------------------------------------------------

MULTI_STAGE = """\
# syntax=docker/dockerfile:1
ARG GO=1.22
ARG BASE

FROM --platform=$BUILDPLATFORM golang:${GO} AS Build
WORKDIR /src
RUN go build -o /out/app .

from alpine as test
COPY --from=build /out/app /bin/app

FROM ${BASE:-alpine}
COPY --from=0 /out/app /bin/app
CMD ["/bin/app"]
"""


def test_stages_names_and_indexes() -> None:
    df = parse(MULTI_STAGE)
    assert df.path == "Dockerfile"
    assert df.escape == "\\"
    assert df.syntax == "docker/dockerfile:1"
    assert [(i.keyword, i.args, i.line) for i in df.global_args] == [
        ("ARG", "GO=1.22", 2),
        ("ARG", "BASE", 3),
    ]
    assert [(s.index, s.name, s.base, s.platform, s.line) for s in df.stages] == [
        (0, "build", "golang:${GO}", "$BUILDPLATFORM", 5),
        (1, "test", "alpine", None, 9),
        (2, None, "${BASE:-alpine}", None, 12),
    ]
    assert [s.written_name for s in df.stages] == ["Build", "test", None]
    assert [i.keyword for i in df.stages[0].instructions] == ["WORKDIR", "RUN"]
    assert [i.line for i in df.stages[0].instructions] == [6, 7]
    assert [i.keyword for i in df.stages[2].instructions] == ["COPY", "CMD"]
    assert [i.keyword for i in df.instructions()] == [
        "ARG",
        "ARG",
        "WORKDIR",
        "RUN",
        "COPY",
        "COPY",
        "CMD",
    ]


def test_stage_lookup_is_case_insensitive_and_takes_indexes() -> None:
    df = parse(MULTI_STAGE)
    assert df.stage("build") is df.stages[0]
    assert df.stage("BUILD") is df.stages[0]
    assert df.stage("Test") is df.stages[1]
    assert df.stage("0") is df.stages[0]
    assert df.stage("2") is df.stages[2]
    assert df.find_stage("3") is None
    assert df.find_stage("alpine") is None
    with pytest.raises(KeyError):
        df.stage("localhost/app:1")


def test_keywords_are_case_insensitive() -> None:
    df = parse('from scratch\nRun a\nrUN b\ncopy x y\nEnTrYpOiNt ["e"]\n')
    assert [i.keyword for i in df.stages[0].instructions] == ["RUN", "RUN", "COPY", "ENTRYPOINT"]
    assert df.stages[0].instructions[0].original == "Run a"


def test_original_is_what_buildah_records_in_history() -> None:
    # buildah 1.28 history: "/bin/sh -c #(nop) LABEL a=b       c=d" and "ENV  z    3"
    df = parse("FROM scratch\nLABEL a=b \\\n      c=d\n   ENV  z    3\nLABEL e=f   \n")
    originals = [i.original for i in df.stages[0].instructions]
    assert originals == ["LABEL a=b       c=d", "ENV  z    3", "LABEL e=f   "]
    assert [i.args for i in df.stages[0].instructions] == ["a=b       c=d", "z    3", "e=f"]


def test_global_args_only_before_first_from() -> None:
    df = parse("ARG A\nARG B=1\nFROM scratch\nARG A\n")
    assert [i.args for i in df.global_args] == ["A", "B=1"]
    assert [i.args for i in df.stages[0].instructions] == ["A"]


def test_bom_and_crlf() -> None:
    df = parse("\ufeffFROM scratch\r\nRUN a \\\r\n  b\r\nCMD c\r\n")
    assert [(i.keyword, i.args) for i in df.stages[0].instructions] == [
        ("RUN", "a   b"),
        ("CMD", "c"),
    ]


# -- comments and continuations ---------------------------------------------------------------


def test_comments_only_at_line_start() -> None:
    df = parse("# a comment\n   # indented comment\nFROM scratch\nRUN echo # hi\n")
    [stage] = df.stages
    assert stage.base == "scratch"
    assert stage.line == 3
    assert stage.instructions[0].args == "echo # hi"
    # "FROM scratch # c" has three words, and "#" is not "AS"
    assert "FROM requires" in str(error("FROM scratch # c\n"))


def test_continuation_lines() -> None:
    text = (
        "FROM scratch\n"
        "RUN apt-get update && \\\n"
        "    apt-get install -y \\\n"
        "# a comment inside the continuation is dropped\n"
        "      # and so is an indented one\n"
        "\n"
        "        curl \\   \n"  # blanks after the escape are allowed
        "        git\n"
        'CMD ["sh"]\n'
    )
    run, cmd = parse(text).stages[0].instructions
    assert run.args == "apt-get update &&     apt-get install -y         curl         git"
    assert (run.line, run.end_line) == (2, 8)
    assert (cmd.line, cmd.json_args) == (9, ("sh",))


def test_escaped_escape_does_not_continue() -> None:
    first, second = parse("FROM scratch\nRUN echo a\\\\\nRUN echo b\n").stages[0].instructions
    assert first.args == "echo a\\\\"
    assert second.args == "echo b"


def test_continuation_at_end_of_file() -> None:
    [run] = parse("FROM scratch\nRUN echo \\").stages[0].instructions
    assert run.args == "echo"


def test_lone_escape_line_and_leading_blanks_kept_in_continuations() -> None:
    [run] = parse("FROM scratch\nRUN a\\\n\\\n  b\n").stages[0].instructions
    assert run.args == "a  b"


def test_line_numbers_count_every_line() -> None:
    text = "\n\n# c\nFROM scratch\n\nRUN a \\\n b\n\n\nRUN c\n"
    first, second = parse(text).stages[0].instructions
    assert (first.line, first.end_line, second.line) == (6, 7, 10)


# -- parser directives ------------------------------------------------------------------------

WINDOWS = """\
# escape=`

FROM mcr.microsoft.com/windows/servercore
COPY testfile.txt c:\\
RUN dir c:\\
RUN powershell -Command `
    Write-Host `"hi`"
"""


def test_escape_directive_with_windows_paths() -> None:
    df = parse(WINDOWS)
    assert df.escape == "`"
    copy, run, ps = df.stages[0].instructions
    assert copy.args == "testfile.txt c:\\"
    assert run.args == "dir c:\\"
    assert ps.args == 'powershell -Command     Write-Host `"hi`"'
    assert (ps.line, ps.end_line) == (6, 7)


def test_default_escape_would_continue_windows_paths() -> None:
    # Without the directive "c:\" continues: COPY swallows the next two lines, and the
    # PowerShell continuation line becomes an instruction of its own.
    text = WINDOWS.replace("# escape=`\n", "# comment\n")
    assert str(error(text)) == 'Dockerfile:7: unknown instruction: "WRITE-HOST"'
    text = text.replace("    Write-Host", "RUN Write-Host")
    copy, _ = parse(text).stages[0].instructions
    assert copy.args == "testfile.txt c:RUN dir c:RUN powershell -Command `"
    assert (copy.line, copy.end_line) == (4, 6)


@pytest.mark.parametrize(
    "directive",
    ["# escape=`", "#escape=`", "# ESCAPE = `", "  # escape=`  ", "# Escape=`"],
)
def test_escape_directive_spellings(directive: str) -> None:
    assert parse(directive + "\nFROM scratch\n").escape == "`"


@pytest.mark.parametrize(
    "text",
    [
        "\n# escape=`\nFROM scratch\n",  # a blank line ends the directives
        "# a comment\n# escape=`\nFROM scratch\n",  # so does a comment
        "FROM scratch\n# escape=`\n",  # and an instruction
        "# unknown=x\n# escape=`\nFROM scratch\n",  # and an unknown directive
    ],
)
def test_late_directives_are_comments(text: str) -> None:
    assert parse(text).escape == "\\"


def test_syntax_and_check_directives() -> None:
    df = parse("# syntax = docker/dockerfile:1.7 \n# check=skip=all\n# escape=`\nFROM scratch\n")
    assert (df.syntax, df.escape) == ("docker/dockerfile:1.7", "`")
    assert parse("FROM scratch\n").syntax is None


def test_directive_errors() -> None:
    assert str(error("# escape=`\n# escape=\\\nFROM scratch\n")) == (
        "Dockerfile:2: only one escape parser directive can be used"
    )
    assert str(error("# syntax=a\n# SYNTAX=b\nFROM scratch\n")) == (
        "Dockerfile:2: only one syntax parser directive can be used"
    )
    assert str(error("# escape=x\nFROM scratch\n")) == (
        "Dockerfile:1: invalid ESCAPE 'x'. Must be ` or \\"
    )


# -- exec form and shell form -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "json_args"),
    [
        ('RUN ["/bin/echo", "$HOME"]', ("/bin/echo", "$HOME")),
        ('CMD ["a b", "c"]', ("a b", "c")),
        ("CMD []", ()),
        ('ENTRYPOINT   [ "x" ]  ', ("x",)),
        ('SHELL ["/bin/bash", "-c"]', ("/bin/bash", "-c")),
        ('COPY ["a b", "/dst/"]', ("a b", "/dst/")),
        ('ADD ["http://x/y", "/y"]', ("http://x/y", "/y")),
        ('VOLUME ["/data", "/logs"]', ("/data", "/logs")),
        ('RUN ["caf\\u00e9", "\\"q\\""]', ("café", '"q"')),
        ('RUN ["\\ud800"]', ("\ufffd",)),  # Go turns a lone surrogate into U+FFFD
        ("RUN echo [a]", None),
        ("RUN [ -f x ] && echo", None),  # not JSON: shell form
        ("RUN ['single', 'quotes']", None),
        ('RUN ["unterminated"', None),
        ('RUN ["a"] trailing', None),
        ('RUN ["a",]', None),
        ("RUN [NaN]", None),  # not JSON for Go either
        ("RUN [1e999]", None),  # out of float64 range: Go's decoder fails, so shell form
        ("VOLUME /data /logs", None),
        ("COPY a b /dst/", None),
    ],
)
def test_exec_and_shell_form(line: str, json_args: tuple[str, ...] | None) -> None:
    instruction = only(line + "\n")
    assert instruction.json_args == json_args
    assert instruction.exec_form is (json_args is not None)
    assert instruction.args == line.split(None, 1)[1].strip()


def test_words_of_shell_and_exec_form() -> None:
    assert only("COPY  a\tb   /dst/\n").words() == ["a", "b", "/dst/"]
    assert only('COPY ["a b", "/d"]\n').words() == ["a b", "/d"]


@pytest.mark.parametrize(
    "line",
    ['RUN ["a", 1]', 'CMD ["a", null]', "ENTRYPOINT [[]]", 'COPY ["a", {}]', "VOLUME [true]"],
)
def test_json_array_of_non_strings_is_an_error(line: str) -> None:
    keyword = line.split()[0]
    assert str(error(f"FROM scratch\n{line}\n")) == (
        f"Dockerfile:2: {keyword}: when using JSON array syntax, arrays must be comprised "
        "of strings only"
    )


def test_healthcheck_forms() -> None:
    check = only('HEALTHCHECK --interval=5s --retries=3 CMD ["curl", "-f", "x"]\n')
    assert check.flags == (("interval", "5s"), ("retries", "3"))
    assert check.args == 'CMD ["curl", "-f", "x"]'
    assert check.json_args == ("curl", "-f", "x")
    shell = only("HEALTHCHECK cmd curl -f x || exit 1\n")
    assert (shell.args, shell.json_args) == ("cmd curl -f x || exit 1", None)
    none = only("HEALTHCHECK NONE\n")
    assert (none.args, none.json_args) == ("NONE", None)


def test_json_is_not_taken_for_other_instructions() -> None:
    assert only('LABEL x=["a"]\n').json_args is None
    assert only('USER ["root"]\n').json_args is None


# -- flags ------------------------------------------------------------------------------------


def test_flags_in_order_with_repeats() -> None:
    run = only(
        "RUN --mount=type=cache,target=/root/.cache --network=none "
        "--mount=type=secret,id=tok --security=insecure pip install x\n"
    )
    assert run.flags == (
        ("mount", "type=cache,target=/root/.cache"),
        ("network", "none"),
        ("mount", "type=secret,id=tok"),
        ("security", "insecure"),
    )
    assert run.flag_values("mount") == ("type=cache,target=/root/.cache", "type=secret,id=tok")
    assert run.flag("mount") == "type=secret,id=tok"
    assert run.flag("network") == "none"
    assert run.flag("chown") is None
    assert run.args == "pip install x"


def test_copy_and_add_flags() -> None:
    copy = only(
        "COPY --from=builder --chown=1000:1000 --chmod=0755 --link --exclude=*.md . /app/\n"
    )
    assert copy.flags == (
        ("from", "builder"),
        ("chown", "1000:1000"),
        ("chmod", "0755"),
        ("link", "true"),
        ("exclude", "*.md"),
    )
    add = only(
        "ADD --checksum=sha256:abc --keep-git-dir=FALSE --link=true --chown=a:b "
        "--chmod=600 --exclude=x --exclude=y https://e/x.git /src\n"
    )
    assert add.flag("keep-git-dir") == "false"
    assert add.flag("link") == "true"
    assert add.flag_values("exclude") == ("x", "y")
    assert add.args == "https://e/x.git /src"


def test_flag_values_keep_quotes_processed_and_variables() -> None:
    copy = only("COPY --chown=\"app user\":'grp' --from=$STAGE a b\n")
    assert copy.flags == (("chown", "app user:grp"), ("from", "$STAGE"))


def test_double_dash_ends_flags() -> None:
    copy = only("COPY --chmod=644 -- --weird-name /dst/\n")
    assert copy.flags == (("chmod", "644"),)
    assert copy.args == "--weird-name /dst/"


def test_from_platform_flag() -> None:
    df = parse("FROM --platform=linux/arm64 alpine AS a\n")
    assert df.stages[0].platform == "linux/arm64"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "COPY --parents a b",
            "unknown flag: --parents (COPY supports --from, --chown, --chmod, --link, --exclude)",
        ),
        ("COPY --user=1 a b", "unknown flag: --user (COPY supports"),
        (
            "ADD --from=x a b",
            "unknown flag: --from (ADD supports --chown, --chmod, --checksum, "
            "--keep-git-dir, --link, --exclude)",
        ),
        ("ADD --unpack a b", "unknown flag: --unpack (ADD supports"),
        (
            "RUN --device=x true",
            "unknown flag: --device (RUN supports --mount, --network, --security)",
        ),
        ("CMD --version", "unknown flag: --version (CMD takes no flags)"),
        ("ENTRYPOINT --x=1 foo", "unknown flag: --x (ENTRYPOINT takes no flags)"),
        ("LABEL --x=1 a=b", "unknown flag: --x (LABEL takes no flags)"),
        ("HEALTHCHECK --foo=1 CMD x", "unknown flag: --foo (HEALTHCHECK supports --interval"),
        ("COPY --from=a --from=b x y", "COPY: duplicate flag specified: --from"),
        ("RUN --network=none --network=host x", "RUN: duplicate flag specified: --network"),
        ("COPY --chown a b", "COPY: missing a value on flag: --chown"),
        ("COPY --link= a b", "COPY: missing a value on flag: --link"),
        ("COPY --link=yes a b", "COPY: expecting boolean value for flag --link, not: yes"),
        ("RUN --network=bridge x", 'RUN: invalid network mode "bridge"'),
        ("RUN --security=root x", 'RUN: security "root" is not valid'),
    ],
)
def test_flag_errors(line: str, message: str) -> None:
    text = str(error(f"FROM scratch\n{line}\n"))
    assert text.startswith("Dockerfile:2: " + message)


def test_from_flag_errors() -> None:
    assert str(error("FROM --plat=x scratch\n")) == (
        "Dockerfile:1: unknown flag: --plat (FROM supports --platform)"
    )


# -- heredocs ---------------------------------------------------------------------------------


def test_run_heredoc() -> None:
    df = parse(
        "FROM alpine\n"
        "RUN <<EOF\n"
        "echo $HOME \\\n"
        "# not a comment, not a continuation\n"
        "FROM is not an instruction here\n"
        "EOF\n"
        "CMD x\n"
    )
    run, cmd = df.stages[0].instructions
    assert run.args == "<<EOF"
    body = "echo $HOME \\\n# not a comment, not a continuation\nFROM is not an instruction here\n"
    assert run.heredocs == (Heredoc(name="EOF", body=body, expand=True, strip_tabs=False),)
    assert (run.line, run.end_line) == (2, 6)
    assert (cmd.line, cmd.args) == (7, "x")


def test_heredoc_with_command_flags_and_redirect() -> None:
    run = only("RUN --mount=type=cache,target=/c python3 <<EOF > /out\nprint(1)\nEOF\n")
    assert run.flag("mount") == "type=cache,target=/c"
    assert run.args == "python3 <<EOF > /out"
    assert [(h.name, h.body) for h in run.heredocs] == [("EOF", "print(1)\n")]


def test_heredoc_strip_tabs() -> None:
    run = only("RUN <<-EOT\n\techo a\n\t\techo b\n  echo c\n\tEOT\n")
    [heredoc] = run.heredocs
    assert heredoc.strip_tabs
    assert heredoc.body == "\techo a\n\t\techo b\n  echo c\n"
    assert heredoc.content == "echo a\necho b\n  echo c\n"


def test_tabs_before_the_delimiter_only_count_with_dash() -> None:
    error_text = str(error("FROM scratch\nRUN <<EOT\necho\n\tEOT\n"))
    assert error_text == 'Dockerfile:4: RUN: unterminated heredoc "EOT" (started at line 2)'


@pytest.mark.parametrize(
    ("marker", "name", "expand", "strip_tabs"),
    [
        ("<<EOF", "EOF", True, False),
        ("<<'EOF'", "EOF", False, False),
        ('<<"EOF"', "EOF", False, False),
        ("<<-'EOF'", "EOF", False, True),
        ('<<-"EOF"', "EOF", False, True),
        ("<<EO'F'", "EOF", False, False),  # quoting any part disables expansion
        ("<<eo\\'f", "eo'f", True, False),  # an escaped quote is not quoting
        ("<<'e'o\\'f", "eo'f", False, False),
        ("<<'one two'", "one two", False, False),
        ("<<file.txt", "file.txt", True, False),
        ("3<<EOF", "EOF", True, False),
        ("<<$EOF", "$EOF", True, False),
        ("<<  EOF", "EOF", True, False),
        ("<< -EOF", "-EOF", True, False),
    ],
)
def test_heredoc_markers(marker: str, name: str, expand: bool, strip_tabs: bool) -> None:
    run = only(f"RUN {marker}\nbody $X\n{name}\n")
    assert run.heredocs == (Heredoc(name, "body $X\n", expand, strip_tabs),)


def test_dash_then_blank_is_not_a_marker_in_a_line() -> None:
    # Docker's lexer glues blanks to "<<" but not to "<<-", so "<<- EOF" is two words.
    assert parse_heredoc_marker("<<- EOF") == ("EOF", True, True)
    assert str(error("FROM scratch\nRUN cat <<- EOF\nbody\nEOF\n")) == (
        'Dockerfile:3: unknown instruction: "BODY"'
    )


@pytest.mark.parametrize(
    "word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh", "x<<EOF", '"<<EOF"']
)
def test_words_that_are_not_heredoc_markers(word: str) -> None:
    assert parse_heredoc_marker(word) is None


def test_several_heredocs_on_one_line() -> None:
    copy = only("COPY <<FILE1 <<FILE2 /dest/\ncontent 1\nFILE1\ncontent 2\nFILE2\n")
    assert [(h.name, h.body) for h in copy.heredocs] == [
        ("FILE1", "content 1\n"),
        ("FILE2", "content 2\n"),
    ]
    assert copy.end_line == 6


def test_heredoc_delimiters_are_matched_in_order() -> None:
    copy = only("COPY <<X <<Y /dest/\nY\nX\nX\nY\n")
    assert [(h.name, h.body) for h in copy.heredocs] == [("X", "Y\n"), ("Y", "X\n")]


def test_empty_heredoc_and_crlf_body() -> None:
    run = only("RUN <<EMPTY\nEMPTY\n")
    assert run.heredocs == (Heredoc("EMPTY", "", True, False),)
    copy = only("COPY <<EOF /x\r\nline\r\nEOF\r\n")
    assert copy.heredocs == (Heredoc("EOF", "line\r\n", True, False),)


def test_add_heredoc_and_text_after_heredoc() -> None:
    df = parse(
        "FROM scratch\nADD <<EOF /a.txt\nhello\nEOF\nRUN <<COMPLEX python3\nprint(1)\nCOMPLEX\n"
    )
    add, run = df.stages[0].instructions
    assert [h.name for h in add.heredocs] == ["EOF"]
    assert (run.line, run.heredocs[0].body) == (5, "print(1)\n")


@pytest.mark.parametrize(
    "line",
    ['RUN "<<NOHEREDOC"', "RUN '<<EOF'", "RUN echo \\<<EOF", 'RUN ["<<EOF"]', "RUN cat<<EOF"],
)
def test_no_heredoc(line: str) -> None:
    assert only(line + "\n").heredocs == ()


def test_heredoc_only_for_run_copy_add() -> None:
    # Docker: a marker elsewhere is plain text, so the body lines are instructions.
    text = "FROM scratch\nUSER <<INVALID\nINVALID\n"
    assert str(error(text)) == 'Dockerfile:3: unknown instruction: "INVALID"'


def test_heredoc_in_continued_line() -> None:
    run = only("RUN --network=none \\\n  cat <<EOF\nx\nEOF\n")
    assert run.args == "cat <<EOF"
    assert run.heredocs[0].body == "x\n"


def test_heredoc_errors() -> None:
    assert str(error("FROM scratch\n\nRUN <<EOF\necho\n")) == (
        'Dockerfile:4: RUN: unterminated heredoc "EOF" (started at line 3)'
    )
    assert str(error("FROM scratch\nCOPY <<A <<B /x\na\nA\n")) == (
        'Dockerfile:4: COPY: unterminated heredoc "B" (started at line 2)'
    )
    assert str(error("FROM scratch\nCOPY a <<EOF\nx\nEOF\n")) == (
        "Dockerfile:2: COPY cannot accept a heredoc as a destination"
    )
    assert str(error("FROM scratch\nADD <<EOF\nx\nEOF\n")).startswith(
        "Dockerfile:2: ADD requires at least two arguments"
    )


def test_unbalanced_quote_means_no_heredoc() -> None:
    # Docker cannot lex the line, so it has no heredocs; the shell will complain later.
    run = only("RUN cat <<'EOF\n")
    assert run.heredocs == ()


# -- ONBUILD ----------------------------------------------------------------------------------


def test_onbuild_trigger_is_parsed() -> None:
    onbuild = only('ONBUILD COPY --chown=1:1 ["a", "/b"]\n')
    assert onbuild.keyword == "ONBUILD"
    assert onbuild.args == 'COPY --chown=1:1 ["a", "/b"]'
    trigger = onbuild.onbuild
    assert trigger is not None
    assert trigger.keyword == "COPY"
    assert trigger.flags == (("chown", "1:1"),)
    assert trigger.json_args == ("a", "/b")
    assert trigger.original == 'COPY --chown=1:1 ["a", "/b"]'
    assert trigger.line == 2


def test_onbuild_with_heredoc() -> None:
    onbuild = only("onbuild run <<EOF\necho hi\nEOF\n")
    assert onbuild.onbuild is not None
    assert (
        onbuild.heredocs == onbuild.onbuild.heredocs == (Heredoc("EOF", "echo hi\n", True, False),)
    )
    assert onbuild.end_line == 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD onbuild RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ECHO x", 'ONBUILD unknown instruction: "ECHO"'),
        ("ONBUILD COPY --link=x a b", "ONBUILD COPY: expecting boolean value"),
        ("ONBUILD WORKDIR", "ONBUILD WORKDIR requires exactly one argument"),
    ],
)
def test_onbuild_errors(line: str, message: str) -> None:
    assert str(error(f"FROM scratch\n{line}\n")).startswith("Dockerfile:2: " + message)


# -- argument checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("FROM", "FROM requires either one argument, or three: FROM <source> [as <name>]"),
        ("FROM a b", "FROM requires either one argument, or three: FROM <source> [as <name>]"),
        ("FROM a AS", "FROM requires either one argument, or three: FROM <source> [as <name>]"),
        ("FROM a TO b", "FROM requires either one argument, or three: FROM <source> [as <name>]"),
        (
            "FROM a AS 1bad",
            'invalid name for build stage: "1bad", name can\'t start with a '
            "number or contain symbols",
        ),
        ("FROM a AS b/c", 'invalid name for build stage: "b/c"'),
        (
            "COPY a",
            "COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
        ),
        ('COPY ["a"]', "COPY requires at least two arguments"),
        ("ADD", "ADD requires at least two arguments"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV x", "ENV must have two arguments"),
        ("ENV a=b c", 'ENV: Syntax error - can\'t find = in "c". Must be of the form: name=value'),
        ("ENV =x", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
        ("LABEL x", "LABEL must have two arguments"),
        ("ARG", "ARG requires at least one argument"),
        ("ARG =x", "ARG names can not be blank"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("USER", "USER requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("VOLUME []", "VOLUME requires at least one argument"),
        ('VOLUME ["/a", " "]', "VOLUME specified can not be an empty string"),
        ("SHELL", "SHELL requires at least one argument"),
        ("SHELL []", "SHELL requires at least one argument"),
        ("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("ECHO hi", 'unknown instruction: "ECHO"'),
        ("echo hi", 'unknown instruction: "ECHO"'),
        ("RUN\u00a0x", 'unknown instruction: "RUN\u00a0X"'),
    ],
)
def test_argument_errors(line: str, message: str) -> None:
    text = str(error(f"FROM scratch\n\n{line}\n", path="ctx/Containerfile"))
    assert text.startswith(f"ctx/Containerfile:3: {message}"), text


def test_allowed_empty_commands() -> None:
    # Docker accepts these at parse time; what they do is the builder's business.
    assert only("RUN\n").args == ""
    assert only("CMD\n").json_args is None
    assert only("ENTRYPOINT []\n").json_args == ()


def test_stage_names_must_be_unique() -> None:
    assert (
        str(error("FROM a AS x\nFROM b AS X\n")) == 'Dockerfile:2: FROM: duplicate stage name "x"'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Dockerfile: file with no instructions"),
        ("# only\n\n  # comments\n", "Dockerfile: file with no instructions"),
        ("ARG A\nARG B\n", "Dockerfile: no FROM statement found"),
        (
            "ARG A\nRUN true\nFROM scratch\n",
            "Dockerfile:2: no FROM statement found before RUN (only ARG may come before the "
            "first FROM)",
        ),
        ("FROM scratch\nECHO hi\n", 'Dockerfile:2: unknown instruction: "ECHO"'),
    ],
)
def test_file_errors(text: str, message: str) -> None:
    assert str(error(text)) == message


def test_error_attributes() -> None:
    err = error("FROM scratch\nRUN ok\n\nECHO x\n", path="/ctx/Dockerfile.dev")
    assert (err.path, err.line) == ("/ctx/Dockerfile.dev", 4)
    assert err.message == '/ctx/Dockerfile.dev:4: unknown instruction: "ECHO"'
    assert exit_code_of(err) == 125


# -- properties -------------------------------------------------------------------------------

_FRAGMENTS = [
    "FROM scratch",
    "FROM a AS b",
    "from x as y",
    "ARG A=1",
    "RUN echo hi",
    "RUN <<EOF",
    "RUN <<-'E'",
    "COPY <<A <<B /d/",
    "EOF",
    "\tE",
    "A",
    "B",
    "ONBUILD RUN <<EOF",
    "ONBUILD ONBUILD x",
    'CMD ["a", 1]',
    'CMD ["a"',
    "ENV a=b c",
    "ENV k v",
    "LABEL",
    "COPY --from=a --from=b x y",
    "RUN --mount=x \\",
    "\\",
    "# escape=`",
    "# syntax=x",
    "#",
    "",
    "   ",
    "HEALTHCHECK CMD",
    "SHELL ['x']",
    "EXPOSE 80",
    'VOLUME [""]',
    "RUN a`",
    "\ufeffFROM x",
    "RUN ${X",
    "COPY a <<EOF",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=15), max_size=12))
def test_parser_raises_only_dockerfile_error_on_dockerfileish_text(lines: list[str]) -> None:
    try:
        df = parse_dockerfile("\n".join(lines))
    except DockerfileError as exc:
        assert re.match(r"Dockerfile(:\d+)?: ", str(exc))
        return
    assert df.stages
    for stage in df.stages:
        for instruction in stage.instructions:
            assert instruction.keyword.isupper()
            assert 1 <= instruction.line <= instruction.end_line


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_raises_only_dockerfile_error_on_any_text(text: str) -> None:
    with contextlib.suppress(DockerfileError):
        parse_dockerfile(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("ab $'\"-\t\\#")), max_size=12),
        max_size=6,
    )
)
def test_heredoc_bodies_round_trip(body_lines: list[str]) -> None:
    text = "FROM scratch\nRUN <<EOF\n" + "".join(line + "\n" for line in body_lines) + "EOF\n"
    [run] = parse_dockerfile(text).stages[0].instructions
    assert run.heredocs[0].body == "".join(line + "\n" for line in body_lines)
    assert run.end_line == 3 + len(body_lines)


_STAGE_FRAGMENTS = [
    "FROM a AS b",
    "FROM $X",
    "FROM ${Y:-b}",
    "ARG X=a",
    "ARG Y",
    "COPY --from=b x y",
    "COPY --from=0 x y",
    "RUN --mount=type=bind,from=b,target=/m x",
    "ONBUILD RUN x",
    "HEALTHCHECK --interval=5s CMD x",
]


@given(
    st.lists(st.sampled_from(_FRAGMENTS + _STAGE_FRAGMENTS) | st.text(max_size=15), max_size=12),
    st.none() | st.sampled_from(["b", "0", "1", "x"]),
    st.dictionaries(st.sampled_from(["X", "Y"]), st.text(max_size=4)),
)
def test_planning_and_expanding_a_parsed_dockerfile_raise_only_aiopod_errors(
    lines: list[str], target: str | None, build_args: dict[str, str]
) -> None:
    """What a build does with a parsed Dockerfile before any step runs (choosing the
    stages, expanding global ARGs and each instruction's words) fails only as documented."""
    with contextlib.suppress(AiopodError):
        dockerfile = parse_dockerfile("\n".join(lines))
        plan_stages(dockerfile, target=target, build_args=build_args)
        for instruction in dockerfile.instructions():
            instruction.words()
            expand_words(instruction.args, build_args)


@given(
    st.sampled_from(["RUN", "CMD", "ENTRYPOINT", "SHELL"]),
    st.lists(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=10), min_size=1, max_size=4
    ),
)
def test_exec_form_arguments_round_trip(keyword: str, argv: list[str]) -> None:
    """The exec form's strings are what ``json.dumps`` wrote, whatever they hold."""
    text = f"FROM scratch\n{keyword} {json.dumps(argv)}\n"
    [instruction] = parse_dockerfile(text).stages[0].instructions
    assert instruction.json_args == tuple(argv)


# -- cross-check with dockerfile-parse --------------------------------------------------------

CORPUS = [
    # 1. a Go service, multi-stage
    """\
# syntax=docker/dockerfile:1
ARG GO_VERSION=1.22
FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -ldflags="-s -w" -o /out/server ./cmd/server

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/server /server
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/server"]
""",
    # 2. Debian with a long continued RUN and comments inside it
    """\
FROM debian:bookworm-slim
RUN set -eux; \\
    apt-get update; \\
# pin the versions we test against
    apt-get install -y --no-install-recommends \\
        ca-certificates \\
        curl \\
        git \\
    ; \\
    rm -rf /var/lib/apt/lists/*
CMD ["bash"]
""",
    # 3. Python app with ENV forms
    """\
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
ENV PIP_NO_CACHE_DIR off
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
CMD python -m app
""",
    # 4. Node with labels
    """\
FROM node:20-alpine
LABEL org.opencontainers.image.title="web" \\
      org.opencontainers.image.source="https://example.com/web"
WORKDIR /usr/src/app
COPY package*.json ./
RUN npm ci --omit=dev
COPY . .
EXPOSE 3000
CMD [ "node", "server.js" ]
""",
    # 5. lower-case keywords and tabs
    """\
from alpine:3.19
run\tapk add --no-cache bash
workdir\t/work
cmd ["bash"]
""",
    # 6. healthcheck and stopsignal
    """\
FROM nginx:1.25
COPY nginx.conf /etc/nginx/nginx.conf
HEALTHCHECK --interval=30s --timeout=3s CMD curl -f http://localhost/ || exit 1
STOPSIGNAL SIGQUIT
""",
    # 7. ONBUILD triggers
    """\
FROM ruby:3.3
ONBUILD COPY Gemfile Gemfile.lock /app/
ONBUILD RUN bundle install
ONBUILD COPY . /app
""",
    # 8. volumes and users
    """\
FROM postgres:16
VOLUME ["/var/lib/postgresql/data"]
VOLUME /backup /logs
USER postgres
""",
    # 9. SHELL and MAINTAINER
    """\
FROM ubuntu:22.04
MAINTAINER Jane Doe <jane@example.com>
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN curl -s https://example.com | grep -q Example
""",
    # 10. three stages with COPY --from by index
    """\
FROM alpine AS one
RUN echo 1 > /one
FROM alpine AS two
RUN echo 2 > /two
FROM scratch
COPY --from=0 /one /
COPY --from=two /two /
""",
    # 11. exec form split over lines (dockerfile-parse ends a continuation at an empty line,
    # Docker does not, so the corpus has none)
    """\
FROM alpine
ENTRYPOINT ["/bin/sh", \\
            "-c"]
CMD ["echo", \\
     "hi"]
""",
    # 12. ADD with URLs and archives
    """\
FROM alpine
ADD https://example.com/file.tar.gz /tmp/
ADD rootfs.tar.xz /
ADD --chown=1:1 ["a b.txt", "/dst/"]
""",
    # 13. ARG defaults, used in stages
    """\
ARG BASE=alpine
ARG VERSION
FROM ${BASE}
ARG VERSION
ARG BUILD_DATE=unknown
LABEL version=$VERSION build-date=${BUILD_DATE}
""",
    # 14. Java two-stage with cache mount
    """\
FROM maven:3.9-eclipse-temurin-21 AS build
WORKDIR /build
COPY pom.xml .
RUN --mount=type=cache,target=/root/.m2 mvn -q dependency:go-offline
COPY src ./src
RUN --mount=type=cache,target=/root/.m2 mvn -q package -DskipTests

FROM eclipse-temurin:21-jre
COPY --from=build /build/target/app.jar /app.jar
ENTRYPOINT ["java", "-jar", "/app.jar"]
""",
    # 15. comments everywhere
    """\
# A comment at the top
# another

FROM busybox
# comment between instructions
RUN true
  # indented comment
RUN false || true
""",
    # 16. EXPOSE and ENV legacy with spaces
    """\
FROM redis:7
ENV REDIS_CONF /usr/local/etc/redis/redis.conf
EXPOSE 6379 16379/tcp
CMD redis-server $REDIS_CONF
""",
    # 17. Rust with a long RUN
    """\
FROM rust:1.77 AS builder
WORKDIR /usr/src/app
COPY . .
RUN cargo install --path . && \\
    strip /usr/local/cargo/bin/app
FROM debian:bookworm-slim
COPY --from=builder /usr/local/cargo/bin/app /usr/local/bin/app
CMD ["app"]
""",
    # 18. PHP with many ENV keys
    """\
FROM php:8.3-apache
ENV APACHE_DOCUMENT_ROOT=/var/www/html/public \\
    COMPOSER_ALLOW_SUPERUSER=1 \\
    PHP_MEMORY_LIMIT=512M
RUN a2enmod rewrite
COPY --chown=www-data:www-data . /var/www/html
""",
    # 19. Windows with the backtick escape
    """\
# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
WORKDIR C:\\app
COPY . C:\\app\\
RUN powershell -Command `
    $ErrorActionPreference = 'Stop'; `
    Write-Host hello
""",
    # 20. platform flag and stage used as base
    """\
FROM --platform=$BUILDPLATFORM alpine AS base
RUN apk add --no-cache make
FROM base AS test
RUN make test
FROM base
RUN make
""",
]


@pytest.mark.parametrize("text", CORPUS, ids=[f"corpus{i + 1}" for i in range(len(CORPUS))])
def test_cross_check_with_dockerfile_parse(text: str) -> None:
    dockerfile_parse = pytest.importorskip("dockerfile_parse")
    oracle = dockerfile_parse.DockerfileParser(fileobj=io.BytesIO(text.encode()))
    expected = [
        (item["instruction"], item["startline"] + 1, item["endline"] + 1, item["value"].strip())
        for item in oracle.structure
        if item["instruction"] != "COMMENT"
    ]
    df = parse(text)
    lines = text.split("\n")
    mine = [_summary(i) for i in df.global_args]
    for stage in df.stages:
        # A stage keeps the FROM's parts; its text is the FROM line.
        from_text = lines[stage.line - 1].split(None, 1)[1].strip()
        assert stage.base in from_text
        mine.append(("FROM", stage.line, stage.line, from_text))
        mine.extend(_summary(i) for i in stage.instructions)
    assert mine == expected


def _summary(instruction: Instruction) -> tuple[str, int, int, str]:
    value = re.split(r"[\t ]+", instruction.original.strip(), maxsplit=1)[1].strip()
    return (instruction.keyword, instruction.line, instruction.end_line, value)
