"""The Go template engine of ``--format`` (``aiopod/cli/templates.py``), without peers.

Its agreement with podman is proved in ``test_templates_differential.py``; these are the
language's corners podman's commands rarely reach."""

from __future__ import annotations

import pytest

from aiopod.cli.templates import GoNilMap, GoString, GoStruct, parse, render_list
from aiopod.errors import TemplateError

ROW = GoStruct(
    "images.imageReporter",
    {
        "Repository": "localhost/app",
        "Tag": "1",
        "Names": ["a", "b"],
        "Labels": {"z": "1", "a": "2"},
        "Nil": GoNilMap(),
        "Count": 3,
        "Status": GoString("tag", "events.Status"),
    },
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.Repository}}:{{.Tag}}", "localhost/app:1"),
        (
            "{{.Names}} {{.Labels}} {{.Nil}} {{json .Nil}} {{json .Labels}}",
            '[a b] map[a:2 z:1] map[] null {"z":"1","a":"2"}',
        ),
        ('{{if eq .Tag "2"}}two{{else if eq .Tag "1"}}one{{else}}other{{end}}', "one"),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}", "a=2,z=1,"),
        ("{{range .Labels.none}}x{{else}}empty{{end}}", "empty"),
        ("{{with .Names}}{{index . 1}}{{end}}{{with .Labels.none}}no{{end}}", "b"),
        ('{{$x := "a"}}{{if true}}{{$x = "b"}}{{end}}{{$x}}', "b"),
        ("a  {{- /* gone */ -}}  b", "ab"),
        ('{{.Count | printf "%03d"}} {{gt .Count 2}} {{le .Count 2}}', "003 true false"),
        ('{{join .Names "+"}} {{pad .Tag 2 1}}| {{len .Labels}}', "a+b   1 | 2"),
        ('{{printf "%s|%v" .Status .Status}} {{eq .Status "tag"}}', "tag|tag true"),
        ("{{.Labels.a}} {{.Labels.nope}} {{$.Tag}}", "2 <no value> 1"),
        ('{{and 1 0}} {{or 0 "" "x"}} {{not 0}}', "0 x true"),
    ],
)
def test_the_language(template: str, expected: str) -> None:
    assert parse(template, "t").execute(ROW) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{.Nope}}",
            'template: t:1:2: executing "t" at <.Nope>: '
            "can't evaluate field Nope in type images.imageReporter",
        ),
        (
            "x\n {{.Tag.Nope}}",
            'template: t:2:7: executing "t" at <.Tag.Nope>: '
            "can't evaluate field Nope in type string",
        ),
        (
            "{{upper .Status}}",
            'template: t:1:8: executing "t" at <.Status>: '
            "wrong type for value; expected string; got events.Status",
        ),
        ("{{if .Tag}}", "template: t:1: unexpected EOF"),
        ("{{end}}", "template: t:1: unexpected {{end}}"),
        ("{{nope}}", 'template: t:1: function "nope" not defined'),
        ("{{.Tag", "template: t:1: unclosed action"),
        ("{{$y}}", 'template: t:1:2: executing "t" at <$y>: undefined variable: $y'),
        (
            "{{index .Names 5}}",
            'template: t:1:2: executing "t" at <index>: error calling index: index out of range: 5',
        ),
    ],
)
def test_errors_are_in_go_s_words(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse(template, "t").execute(ROW)
    assert str(caught.value) == message


def test_a_listing_is_one_line_per_row_unless_the_template_ranges_itself() -> None:
    rows = [ROW, ROW]
    assert render_list("{{.Tag}}", rows, "images") == "1\n1\n"
    assert render_list("{{range .}}{{.Tag}},{{end}}", rows, "images") == "1,1,\n"
    assert render_list("{{range .Names}}{{.}}{{end}}", rows, "images") == "ab\nab\n"
