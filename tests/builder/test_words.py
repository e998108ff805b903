"""Variable expansion and word splitting (aiopod.builder.dockerfile.words), Docker's
shell-lexer rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from aiopod.builder.dockerfile.words import (
    expand,
    expand_words,
    parse_arg_definitions,
    parse_key_values,
    process_word,
    split_key_values,
    split_raw_words,
)
from aiopod.errors import ExpansionError

ENV = {"PWD": "/home", "EMPTY": "", "SPACED": "  a  b ", "PATH": "/usr/bin:/bin"}


# -- plain variables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$PWD", "/home"),
        ("${PWD}", "/home"),
        ("he$PWD", "he/home"),
        ("he${PWD}xx", "he/homexx"),
        ("$PWD/sub", "/home/sub"),
        ("$PWDx", ""),  # the name runs on: PWDx is unset
        ("${PWD}x", "/homex"),
        ("$UNSET", ""),
        ("a${UNSET}b", "ab"),
        ("$EMPTY", ""),
        ("$", "$"),  # a lone dollar stays
        ("a$", "a$"),
        ("$.", "$."),
        ("he$.x", "he$.x"),
        ("cost: 5$ ", "cost: 5$ "),
        ("he$1x", "hex"),  # a name starting with a digit is only the digits
        ("$12ab", "ab"),
        ("$$", ""),  # $$ looks up a variable named "$", normally unset
        ("$@$*$#$?$-$!$0", ""),  # special parameters are one-character names
        ("$_x", ""),
        ("${PATH}:/sbin", "/usr/bin:/bin:/sbin"),
    ],
)
def test_plain_variables(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_special_parameter_and_digit_names_can_be_set() -> None:
    assert expand("$$-$1-${10}", {"$": "pid", "1": "one", "10": "ten"}) == "pid-one-ten"


def test_unicode_names_and_values() -> None:
    assert expand("${NAMÉ}-$KOREAN", {"NAMÉ": "x", "KOREAN": "한국어"}) == "x-한국어"


def test_names_are_case_sensitive() -> None:
    assert expand("$pwd$PWD", ENV) == "/home"


# -- modifiers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${PWD:-x}", "/home"),
        ("${EMPTY:-x}", "x"),
        ("${UNSET:-x}", "x"),
        ("${PWD-x}", "/home"),
        ("${EMPTY-x}", ""),  # without the colon an empty value counts as set
        ("${UNSET-x}", "x"),
        ("${PWD:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:+alt}", ""),
        ("${PWD+alt}", "alt"),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${PWD:?msg}", "/home"),
        ("${EMPTY?msg}", ""),
        ("${UNSET:-}", ""),
        ("${UNSET:-a b}", "a b"),
        ("${UNSET:-$PWD}", "/home"),
        ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
        ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
        ("${UNSET:-'quoted $PWD'}", "quoted $PWD"),
        ('${UNSET:-"dq $PWD"}', "dq /home"),
        ("${UNSET:-\\}}", "}"),
        ("${VARIANT:+-${VARIANT}}", ""),
    ],
)
def test_modifiers(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_alternative_used_for_platform_suffixes() -> None:
    template = "app-${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tar.gz"
    assert expand(template, {"OS": "linux", "ARCH": "arm", "VARIANT": "v7"}) == (
        "app-linux-arm-v7.tar.gz"
    )
    assert expand(template, {"OS": "linux", "ARCH": "amd64"}) == "app-linux-amd64.tar.gz"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${UNSET:?must be set}", "UNSET: must be set"),
        ("${EMPTY:?must not be empty}", "EMPTY: must not be empty"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET:?need $PWD}", "UNSET: need /home"),
    ],
)
def test_required_variables(text: str, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        expand(text, ENV)
    assert str(info.value) == f'failed to process "{text}": {message}'


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("${V#*/}", "a/b/c", "b/c"),
        ("${V##*/}", "a/b/c", "c"),
        ("${V%/*}", "a/b/c", "a/b"),
        ("${V%%/*}", "a/b/c", "a"),
        ("${V#x}", "abc", "abc"),
        ("${V#}", "abc", "abc"),
        ("${V%}", "abc", "abc"),
        ("${V#*}", "abc", "abc"),  # the shortest match of * is empty
        ("${V##*}", "abc", ""),
        ("${V#?}", "abc", "bc"),
        ("${V%?}", "abc", "ab"),
        ("${V#*x*y}", "xxyy", "y"),
        ("${V##*x}", "xxyy", "yy"),
        ("${V%%\\**}", "xx**", "xx"),
        ("${V%%\\**\\*}", "a***yy*", "a"),
        ("${V#?\\?}", "???y", "?y"),
        ("${V#()[]{\\}^$.\\*\\?|\\\\}", "()[]{}^$.*?|\\x", "x"),
        ("${V%.tar.gz}", "app.tar.gz", "app"),
        ("${V#v}", "v1.2.3", "1.2.3"),
        ("${UNSETV#a}", "ignored", ""),
        ("${V/o/0}", "foo boo", "f0o boo"),
        ("${V//o/0}", "foo boo", "f00 b00"),
        ("${V/#/x}", "ab", "ab"),  # '#' has no anchoring meaning here
        ("${V/?/}", "/a/b", "a/b"),
        ("${V//\\//-}", "/tmp/f", "-tmp-f"),
        ("${V//\\//\\/}", "/tmp/f", "\\/tmp\\/f"),  # the replacement keeps its escapes
        ("${V/http:\\/\\//https://}", "http://x", "https://x"),
        ("${V///}", "xy", "xy"),
        ("${V//*/x}", "abc", "x"),
        ("${V///x}", "ab", "xaxbx"),  # an empty pattern matches between characters
        ("${V/*/}", "a\nb", "\nb"),  # like Go's regexp, * does not cross a newline
    ],
)
def test_patterns(text: str, value: str, expected: str) -> None:
    assert expand(text, {"V": value}) == expected


def test_pattern_comes_from_variables() -> None:
    env = {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"}
    assert expand("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", env) == "/foo.*/*.txt - /foo..*.txt"
    env = {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "R": "/"}
    assert expand("${FOO/$NEEDLE/$R} - ${FOO//$NEEDLE/$R}", env) == "/foo/b/c.txt - /foo/c.txt"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("${X", "syntax error: missing '}'"),
        ("${", "syntax error: missing '}'"),
        ("${X:-abc", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("he${}xx", "syntax error: bad substitution"),
        ("${:x}", "syntax error: bad substitution"),
        ("${{X}}", "syntax error: bad substitution"),
        ("${.}", "unsupported modifier (.) in substitution"),
        ("${X!}", "unsupported modifier (!) in substitution"),
        ("${X=d}", "unsupported modifier (=) in substitution"),
        ("${X:=d}", "unsupported modifier (:=) in substitution"),
        ("${X:#a}", "unsupported modifier (:#) in substitution"),
        ("${X:%a}", "unsupported modifier (:%) in substitution"),
        ("${X:YYY}", "unsupported modifier (:Y) in substitution"),
        ("${X//}", "syntax error: missing '/' in ${}"),
        ("${X/a}", "syntax error: missing '/' in ${}"),
        ("${X/a/b", "syntax error: missing '}'"),
        ("${X#\\x}", "invalid pattern (\\x) in substitution: invalid escape '\\x'"),
        ("${X%$P}", "invalid pattern (\\) in substitution: invalid escape '\\'"),
        ("${X%\\}", "syntax error: missing '}'"),
        ("'abc", "unexpected end of statement while looking for matching single-quote"),
        ('"abc', "unexpected end of statement while looking for matching double-quote"),
        ('"abc\\"', "unexpected end of statement while looking for matching double-quote"),
        ('"abc\\', "unexpected end of statement while looking for matching double-quote"),
        ("${X:-'a}", "syntax error: missing '}'"),  # the quote ran to the end
    ],
)
def test_errors(text: str, reason: str) -> None:
    with pytest.raises(ExpansionError) as info:
        expand(text, {"X": "x", "P": "\\"})
    assert str(info.value) == f'failed to process "{text}": {reason}'
    assert isinstance(info.value, ValueError)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    text = "${A:-" * 5000 + "x" + "}" * 5000
    with pytest.raises(ExpansionError, match="nested too deeply"):
        expand(text, {})


# -- quotes and escapes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("he'll'o", "hello"),
        ("'$PWD'", "$PWD"),  # single quotes: no expansion
        ('"$PWD"', "/home"),  # double quotes: expansion
        ("\"'$PWD'\"", "'/home'"),
        ("'\"$PWD\"'", '"$PWD"'),
        ("he\\'llo", "he'llo"),
        ("\\$PWD", "$PWD"),
        ("\\\\$PWD", "\\/home"),
        ("abc\\tdef", "abctdef"),  # outside quotes the escape makes the next char literal
        ('"abc\\tdef"', "abc\\tdef"),  # inside double quotes it stays before other chars
        ('"abc\\\\tdef"', "abc\\tdef"),
        ('"he\\$PWD"', "he$PWD"),
        ('"a\\"b"', 'a"b'),
        ("'abc\\tdef'", "abc\\tdef"),  # nothing is special in single quotes
        ("'hello\\'", "hello\\"),
        ("hello\\", "hello"),  # a trailing escape is dropped
        ("hello\\\\", "hello\\"),
        ("\\${}", "${}"),
        ("\"''\"", "''"),
        ("a b  c", "a b  c"),  # expand keeps blanks
        ("", ""),
    ],
)
def test_quotes_and_escapes(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_backtick_escape_keeps_windows_paths() -> None:
    assert expand("c:\\windows\\$X", {"X": "sys"}, escape="`") == "c:\\windows\\sys"
    assert expand('`$X `"q`"', {"X": "no"}, escape="`") == '$X "q"'
    assert expand('"c:\\dir `"x`" ``"', {}, escape="`") == 'c:\\dir "x" `'
    assert expand_words("a` b c:\\d", {}, escape="`") == ["a b", "c:\\d"]


def test_escape_character_must_be_one_character() -> None:
    with pytest.raises(ValueError, match="one character"):
        expand("x", {}, escape="")


# -- words ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("hello", {}, ["hello"]),
        ("hello there   ", {}, ["hello", "there"]),
        ("  a\tb\nc ", {}, ["a", "b", "c"]),
        ("hello${hi}bye", {"hi": "hi"}, ["hellohibye"]),
        ("hello${space}bye", {"space": "abc  def"}, ["helloabc", "defbye"]),
        ('hello"${space}"bye', {"space": "abc  def"}, ["helloabc  defbye"]),
        ("hello${lead}def", {"lead": "  ab c"}, ["hello", "ab", "cdef"]),
        ("hello${trail}d", {"trail": "ab c   "}, ["helloab", "c", "d"]),
        ("hello\\ there", {}, ["hello there"]),
        ('hello\\" there', {}, ['hello"', "there"]),
        ("a 'b c' d", {}, ["a", "b c", "d"]),
        ("\"\" a ''", {}, ["a"]),  # empty quotes alone make no word
        ('x"" y', {}, ["x", "y"]),
        ("$UNSET a", {}, ["a"]),
        ("80/tcp  ${PORT}/udp", {"PORT": "53"}, ["80/tcp", "53/udp"]),
        ("a << b", {}, ["a", "<< b"]),  # Docker glues blanks after << to the next word
        ("a<b", {}, ["a<b"]),
        ("", {}, []),
    ],
)
def test_expand_words(text: str, env: dict[str, str], expected: list[str]) -> None:
    assert expand_words(text, env) == expected


def test_expand_words_keeps_prefix_around_nested_default() -> None:
    # BuildKit's current ProcessWords loses "a" here; aiopod keeps it.
    assert expand_words("a${X:-b}c d", {}) == ["abc", "d"]


def test_process_word_raw_modes() -> None:
    text, words = process_word(
        "RUN <<'EOF' $X ${Y:-z} \\n", {}, raw_quotes=True, raw_escapes=True, skip_unset=True
    )
    assert text == "RUN <<'EOF' $X ${Y:-z} \\n"
    assert words == ["RUN", "<<'EOF'", "$X", "${Y:-z}", "\\n"]
    assert process_word("${Y/a/b} ${Y}", {}, skip_unset=True)[0] == "${Y/a/b} ${Y}"
    assert process_word("${Y/a/b}", {"Y": "abc"}, skip_unset=True)[0] == "bbc"


# -- ENV, LABEL and ARG -----------------------------------------------------------------------


def test_key_values() -> None:
    text = 'a=1 b="x y" c=$a d=\'$a\' e=${b:-no} f= g=a\\ b "h i"=j'
    assert parse_key_values(text, {"a": "0", "b": "B"}) == [
        ("a", "1"),
        ("b", "x y"),
        ("c", "0"),
        ("d", "$a"),
        ("e", "B"),
        ("f", ""),
        ("g", "a b"),
        ("h i", "j"),
    ]


def test_key_values_do_not_see_each_other() -> None:
    # Docker expands every pair with the environment from before the instruction.
    assert parse_key_values("A=1 B=$A", {}) == [("A", "1"), ("B", "")]


def test_key_values_keep_order_and_duplicates() -> None:
    assert parse_key_values("k=1 k=2", {}) == [("k", "1"), ("k", "2")]


def test_legacy_form() -> None:
    assert parse_key_values("KEY some value", {}) == [("KEY", "some value")]
    assert parse_key_values("KEY   a  b  ", {}) == [("KEY", "a  b")]
    assert parse_key_values('KEY "quoted  value" $X', {"X": "x"}) == [("KEY", "quoted  value x")]
    assert parse_key_values("KEY a=b", {}) == [("KEY", "a=b")]


def test_label_with_dots_and_quotes() -> None:
    text = 'org.opencontainers.image.title="My app" "com.example.x"="1"'
    assert parse_key_values(text, {}, instruction="LABEL") == [
        ("org.opencontainers.image.title", "My app"),
        ("com.example.x", "1"),
    ]


def test_backtick_escape_in_key_values() -> None:
    assert parse_key_values("P=c:\\dir Q=a` b", {}, escape="`") == [("P", "c:\\dir"), ("Q", "a b")]


@pytest.mark.parametrize(
    ("text", "instruction", "message"),
    [
        ("KEY", "ENV", "ENV must have two arguments"),
        ("KEY", "LABEL", "LABEL must have two arguments"),
        ("a=b c", "ENV", 'Syntax error - can\'t find = in "c". Must be of the form: name=value'),
        ("=b", "ENV", "ENV names can not be blank"),
        ("a=1 =b", "LABEL", "LABEL names can not be blank"),
        ("=x", "ARG", "ARG names can not be blank"),
        ("", "ENV", "ENV requires at least one argument"),
    ],
)
def test_key_value_errors(text: str, instruction: str, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        split_key_values(text, instruction=instruction)
    assert str(info.value) == message


def test_blank_key_after_expansion() -> None:
    with pytest.raises(ExpansionError, match="ENV names can not be blank"):
        parse_key_values("$UNSET=x", {})


def test_arg_definitions() -> None:
    assert parse_arg_definitions("A B= C=c D=$C E=${X:-x}", {"C": "env"}) == [
        ("A", None),
        ("B", ""),
        ("C", "c"),
        ("D", "env"),
        ("E", "x"),
    ]
    with pytest.raises(ExpansionError, match="ARG A has no default value"):
        parse_key_values("A", {}, instruction="ARG")
    assert parse_key_values("A=1", {}, instruction="ARG") == [("A", "1")]


def test_split_raw_words_keeps_quotes_and_escapes() -> None:
    assert split_raw_words('a="b c" d=\'e f\' g\\ h "i\\"j"') == [
        'a="b c"',
        "d='e f'",
        "g\\ h",
        '"i\\"j"',
    ]
    assert split_raw_words("'a\\' b") == ["'a\\'", "b"]  # no escapes in single quotes
    assert split_raw_words('"unterminated x') == ['"unterminated x']
    assert split_raw_words("x\\") == ["x"]
    assert split_raw_words("\\") == []
    assert split_raw_words("   ") == []


# -- properties -------------------------------------------------------------------------------

_LEXER_TEXT = st.text(alphabet=st.sampled_from(list("ab_1 $\\`'\"{}:-+?#%/*<\t\n")), max_size=40)
_ENVS = st.dictionaries(
    st.sampled_from(["a", "b", "ab", "_", "1", "$"]),
    st.text(alphabet=st.sampled_from(list("ab */?\\\n")), max_size=8),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(text=_LEXER_TEXT, env=_ENVS, escape=st.sampled_from(["\\", "`"]))
def test_expand_never_crashes(text: str, env: dict[str, str], escape: str) -> None:
    try:
        result = expand(text, env, escape=escape)
        words = expand_words(text, env, escape=escape)
    except ValueError:
        return
    assert isinstance(result, str)
    assert all(word for word in words)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60), env=st.dictionaries(st.text(max_size=3), st.text(max_size=5)))
def test_expand_never_crashes_on_any_text(text: str, env: dict[str, str]) -> None:
    try:
        expand(text, env)
        expand_words(text, env)
        parse_key_values(text, env)
    except ValueError:
        pass


@given(st.text(alphabet=st.sampled_from(list("abcXYZ019_./-: \t")), max_size=40))
def test_plain_text_is_unchanged(text: str) -> None:
    assert expand(text, {"a": "never"}) == text
    assert expand_words(text, {}) == text.split()


@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("ab $'\"\\ {}")), min_size=1, max_size=8),
        max_size=5,
    )
)
def test_single_quoted_words_come_back(parts: list[str]) -> None:
    parts = [p.replace("'", "") for p in parts]
    parts = [p for p in parts if p]
    text = " ".join("'" + p + "'" for p in parts)
    assert expand_words(text, {"a": "x"}) == parts
