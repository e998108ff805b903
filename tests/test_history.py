"""``history`` and ``Runtime.history``: an image's history entries matched to the images
and layers of the store as podman 4.3 matches them, and its output compared byte for
byte with podman's on the same images (table, ``--no-trunc``, ``-q``, ``-H=false``,
``--format json`` and simple ``{{.Field}}`` templates, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from imagefactory import child_image, make_image, write_oci_archive
from twins import Twins

import aiopod as api
from aiopod.sync import Runtime as SyncRuntime

#: Two layers, an empty ENV and CMD, a comment with characters Go's JSON escapes, a long
#: CREATED BY, a fraction of a second and a time zone.
BASE = make_image(
    "localhost/base:1",
    seed="hist-base",
    layers=[{"a": b"a"}, {"b": b"b" * 5000}],
    history=[
        {
            "created": "2001-02-03T04:05:06.5Z",
            "created_by": "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / ",
            "comment": "from <somewhere> & more",
        },
        {
            "created": "2001-02-03T04:05:07Z",
            "created_by": "/bin/sh -c #(nop)  ENV A=1",
            "empty_layer": True,
        },
        {"created": "2001-02-03T05:05:07+02:00", "created_by": "RUN echo b > /b"},
        {
            "created": "2001-02-03T04:05:09Z",
            "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
            "empty_layer": True,
        },
    ],
)
APP = child_image(BASE, "localhost/app:1", files={"app": b"x\n"})
EMPTY = child_image(APP, "localhost/empty:1")  # no layer of its own: APP's top layer


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[Twins]:
    twins = Twins(tmp_path, [BASE, APP, EMPTY])
    yield twins
    twins.cleanup()


def _cases() -> list[list[str]]:
    cases = [["history"], ["history", "nope"], ["history", "--format", "{{.Nope}}", "base:1"]]
    for ref in ("base:1", "app:1", "empty:1"):
        cases += [
            ["history", ref],
            ["history", "--no-trunc", ref],
            ["history", "--format", "json", ref],
            ["image", "history", "-q", ref],
            ["history", "--format", "{{.ID}} {{.Size}} {{.CreatedBy}} {{.Comment}}", ref],
            ["history", "--format", "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedSince}}", ref],
            ["history", "--format", r"{{.ID}}\t{{.Size}}", ref],
            ["history", "--human=false", ref],
            ["history", "-H=false", "--format", "{{.Created}}", ref],
        ]
    return cases


@pytest.mark.peer("podman")
@pytest.mark.parametrize("args", _cases(), ids=" ".join)
def test_history_is_podmans(twins: Twins, args: list[str]) -> None:
    expected, got = twins.run(*args)
    assert got == expected


def test_history_entries_name_each_image_once_and_size_each_layer(tmp_path: Path) -> None:
    archive = write_oci_archive(tmp_path / "images.tar", [BASE, APP, EMPTY])
    with SyncRuntime(tmp_path / "store") as rt:
        rt.load(archive)
        history = rt.history("empty:1")
    assert all(isinstance(entry, api.ImageHistory) for entry in history)
    assert [(e.id, e.size, e.created_by) for e in history] == [
        # EMPTY's top layer is APP's: the first image on it (APP) names the newest entry.
        (APP.id, 0, "/bin/sh -c #(nop) child"),
        (None, len(APP.layers[-1]), "/bin/sh -c #(nop) child"),
        (BASE.id, 0, '/bin/sh -c #(nop)  CMD ["sh"]'),
        (None, len(BASE.layers[1]), "RUN echo b > /b"),
        (None, 0, "/bin/sh -c #(nop)  ENV A=1"),
        (None, len(BASE.layers[0]), history[-1].created_by),
    ]
    assert history[0].tags == ("localhost/app:1", "localhost/empty:1")
    assert history[-1].comment == "from <somewhere> & more"
    assert history[-1].created == datetime(2001, 2, 3, 4, 5, 6, 500000, tzinfo=UTC)
    assert history[3].created == datetime(2001, 2, 3, 5, 5, 7, tzinfo=timezone(timedelta(hours=2)))
