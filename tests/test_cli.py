"""The command line as podman 4.3 prints it: tables, JSON shapes, errors and exit codes.

Every test runs the real entry point (``python -m aiopod --root ROOT ...``) on a store
filled in-process with images built by ``imagefactory``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from imagefactory import child_image, make_image, write_docker_archive
from peers import aiopod, aiopod_env

from aiopod import Runtime

OLD = make_image("localhost/old:1", seed="old", created="2001-01-01T00:00:00Z")
NEW = make_image("localhost/new:1", "quay.io/x/new:2", seed="new", created="2003-01-01T00:00:00Z")
MIDDLE = make_image(seed="middle", created="2002-01-01T00:00:00Z")
LEAF = child_image(MIDDLE, "localhost/leaf:1", files={"leaf": b"leaf"})
LABELLED = make_image("localhost/lab:1", seed="lab", labels={"a": "b"})

#: ``podman images --format json`` fields, in podman 4.3's order (an image with names).
IMAGES_JSON_FIELDS = [
    "Id",
    "ParentId",
    "RepoTags",
    "RepoDigests",
    "Size",
    "SharedSize",
    "VirtualSize",
    "Labels",
    "Containers",
    "Names",
    "Digest",
    "History",
    "Created",
    "CreatedAt",
]

#: ``podman image inspect`` fields.
INSPECT_FIELDS = {
    "Id",
    "Digest",
    "RepoTags",
    "RepoDigests",
    "Parent",
    "Comment",
    "Created",
    "Config",
    "Version",
    "Author",
    "Architecture",
    "Os",
    "Size",
    "VirtualSize",
    "GraphDriver",
    "RootFS",
    "Labels",
    "Annotations",
    "ManifestType",
    "User",
    "History",
    "NamesHistory",
}


def load(root: Path, tmp_path: Path, *images: Any) -> None:
    archive = write_docker_archive(tmp_path / "images.tar", images)

    async def body() -> None:
        async with Runtime(root) as rt:
            await rt.load(archive)

    anyio.run(body)


@pytest.fixture
def filled(store: Path, tmp_path: Path) -> Path:
    """OLD, NEW (two names), an intermediate MIDDLE and its child LEAF."""
    load(store, tmp_path, OLD, MIDDLE, NEW, LEAF)
    return store


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def ok(*args: Any, root: Path) -> str:
    result = aiopod(*args, root=root)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def fails(*args: Any, root: Path, code: int = 125) -> subprocess.CompletedProcess[str]:
    result = aiopod(*args, root=root)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr
    return result


# ------------------------------------------------------------------------------ images


def test_images_prints_podmans_table_one_row_per_name_newest_first(filled: Path) -> None:
    lines = ok("images", root=filled).splitlines()
    header = lines[0]
    assert cells(header) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    rows = [cells(line) for line in lines[1:]]
    assert (
        [row[:3] for row in rows]
        == [
            ["localhost/new", "1", NEW.id[:12]],  # 2003
            ["quay.io/x/new", "2", NEW.id[:12]],
            ["localhost/leaf", "1", LEAF.id[:12]],  # 2002, its parent's date
            ["localhost/old", "1", OLD.id[:12]],  # 2001
        ]
    )
    for row in rows:
        assert re.fullmatch(r"\d+ years ago", row[3]), row
        assert re.fullmatch(r"\d+(\.\d+)? kB", row[4]), row
    # Columns are aligned under their headers.
    for line in lines[1:]:
        for column in ("TAG", "IMAGE ID", "CREATED", "SIZE"):
            start = header.index(column)
            assert line[start - 2 : start] == "  " and line[start] != " ", (line, column)


def test_images_on_an_empty_store_prints_only_the_header(store: Path) -> None:
    assert ok("images", root=store) == "REPOSITORY  TAG         IMAGE ID    CREATED     SIZE\n"


def test_images_hides_intermediate_images_unless_all(filled: Path) -> None:
    assert MIDDLE.id[:12] not in ok("images", root=filled)
    rows = [cells(line) for line in ok("images", "-a", root=filled).splitlines()[1:]]
    assert ["<none>", "<none>", MIDDLE.id[:12]] in [row[:3] for row in rows]


def test_images_quiet_prints_one_id_per_image(filled: Path) -> None:
    quiet = ok("images", "-q", root=filled).splitlines()
    assert sorted(quiet) == sorted(i.id[:12] for i in (OLD, NEW, LEAF))
    assert len(ok("images", "-q", "-a", root=filled).splitlines()) == 4


def test_images_no_trunc_shows_full_ids_with_sha256(filled: Path) -> None:
    quiet = ok("images", "-q", "--no-trunc", root=filled).splitlines()
    assert sorted(quiet) == sorted(f"sha256:{i.id}" for i in (OLD, NEW, LEAF))
    rows = [cells(line) for line in ok("images", "--no-trunc", root=filled).splitlines()[1:]]
    assert {row[2] for row in rows} == {f"sha256:{i.id}" for i in (OLD, NEW, LEAF)}


def test_images_format_json_has_podmans_fields_and_one_object_per_name(filled: Path) -> None:
    rows = json.loads(ok("images", "--format", "json", root=filled))
    assert sorted(row["Id"] for row in rows) == sorted([OLD.id, NEW.id, NEW.id, LEAF.id])
    for row in rows:
        assert list(row) == IMAGES_JSON_FIELDS
        assert row["RepoTags"] is None
        assert row["Containers"] == 0
        assert isinstance(row["Size"], int) and row["Size"] == row["VirtualSize"]
        assert row["Digest"].startswith("sha256:")
    [new, _] = [row for row in rows if row["Id"] == NEW.id]
    assert new["Names"] == ["localhost/new:1", "quay.io/x/new:2"]
    assert new["History"] == ["quay.io/x/new:2", "localhost/new:1"]
    assert new["RepoDigests"] == [
        f"localhost/new@{new['Digest']}",
        f"quay.io/x/new@{new['Digest']}",
    ]
    assert new["Created"] == 1041379200  # 2003-01-01T00:00:00Z
    assert new["CreatedAt"] == "2003-01-01T00:00:00Z"
    assert new["ParentId"] == ""
    [leaf] = [row for row in rows if row["Id"] == LEAF.id]
    assert leaf["ParentId"] == MIDDLE.id


def test_images_format_json_of_an_unnamed_image_has_no_names(store: Path, tmp_path: Path) -> None:
    load(store, tmp_path, make_image(seed="anonymous"))
    [row] = json.loads(ok("images", "--format", "json", root=store))
    assert "Names" not in row and "History" not in row
    assert row["RepoDigests"] == []


def test_images_format_json_shows_the_image_labels(store: Path, tmp_path: Path) -> None:
    load(store, tmp_path, LABELLED)
    [row] = json.loads(ok("images", "--format", "json", root=store))
    assert row["Labels"] == {"a": "b"}


# ------------------------------------------------------------------------------ inspect


@pytest.mark.parametrize("command", [["image", "inspect"], ["inspect"]])
def test_inspect_prints_podmans_document(store: Path, tmp_path: Path, command: list[str]) -> None:
    load(store, tmp_path, LABELLED)
    out = ok(*command, "lab:1", root=store)
    assert out.startswith("[\n     {\n          ")  # podman indents inspect by five
    [doc] = json.loads(out)
    assert set(doc) == INSPECT_FIELDS
    assert doc["Id"] == LABELLED.id
    assert doc["RepoTags"] == ["localhost/lab:1"]
    assert doc["Labels"] == {"a": "b"}
    assert doc["RootFS"]["Layers"] == list(LABELLED.diff_ids)
    assert doc["ManifestType"] == "application/vnd.oci.image.manifest.v1+json"


def test_image_inspect_of_an_unknown_image(store: Path) -> None:
    result = fails("image", "inspect", "nosuch", root=store)
    assert result.stdout == "[]\n"
    assert result.stderr == "Error: inspecting object: nosuch: image not known\n"


def test_inspect_of_unknown_objects_says_no_such_object_as_podman(filled: Path) -> None:
    """Measured with podman 4.3.1 (``inspect`` looks for any kind of object)."""
    result = fails("inspect", "nosuch", root=filled)
    assert result.stdout == "[]\n"
    assert result.stderr == 'Error: inspecting object: no such object: "nosuch"\n'
    result = aiopod("inspect", "nosuch", "old:1", "BAD:::x", "other", root=filled)
    assert result.returncode == 125
    assert [doc["Id"] for doc in json.loads(result.stdout)] == [OLD.id]
    assert result.stderr == (
        'error inspecting object: no such object: "BAD:::x"\n'
        'error inspecting object: no such object: "other"\n'
        'Error: inspecting object: no such object: "nosuch"\n'
    )


def test_inspect_of_a_known_and_an_unknown_image(filled: Path) -> None:
    result = fails("image", "inspect", "old:1", "nosuch", root=filled)
    assert [doc["Id"] for doc in json.loads(result.stdout)] == [OLD.id]
    assert result.stderr == "Error: inspecting object: nosuch: image not known\n"


def test_inspect_of_two_unknown_images_lists_both_errors(store: Path) -> None:
    result = fails("image", "inspect", "a", "b", root=store)
    assert result.stderr == (
        "Error: 2 errors occurred:\n"
        "\t* inspecting object: a: image not known\n"
        "\t* inspecting object: b: image not known\n"
    )


# ------------------------------------------------------------------------------ tag / untag


def test_tag_and_untag_print_nothing_and_change_the_names(filled: Path) -> None:
    assert ok("tag", "old:1", "renamed", "quay.io/a/b:c", root=filled) == ""
    assert ok("untag", "old:1", "old:1", root=filled) == ""
    [doc] = json.loads(ok("image", "inspect", OLD.id, root=filled))
    assert doc["RepoTags"] == ["localhost/renamed:latest", "quay.io/a/b:c"]


def test_untag_of_an_unknown_image_exits_125(store: Path) -> None:
    result = fails("untag", "nosuch", root=store)
    assert result.stderr == "Error: nosuch: image not known\n"


def test_untag_of_a_name_the_image_does_not_have(filled: Path) -> None:
    result = fails("untag", "old:1", "nope", root=filled)
    assert result.stderr == "Error: localhost/nope:latest: tag not known\n"


def test_tag_of_an_unknown_image_exits_125_as_podman(store: Path) -> None:
    result = fails("tag", "nosuch", "x", root=store)
    assert result.stderr == "Error: nosuch: image not known\n"


def test_tag_by_digest_is_refused(filled: Path) -> None:
    digest = "sha256:" + "a" * 64
    result = fails("tag", "old:1", f"app@{digest}", root=filled)
    assert result.stderr == f"Error: app@{digest}: tag by digest not supported\n"


def test_save_of_an_unknown_image_exits_125_as_podman(store: Path, tmp_path: Path) -> None:
    result = fails("save", "-o", tmp_path / "out.tar", "nosuch", root=store)
    assert result.stderr == "Error: nosuch: image not known\n"
    assert not (tmp_path / "out.tar").exists()


# ------------------------------------------------------------------------------ usage


def test_an_unknown_flag_is_an_error_without_a_traceback(store: Path) -> None:
    result = fails("images", "--bogus", root=store)
    assert "--bogus" in result.stderr
    assert result.stdout == ""


def test_an_unknown_command_is_an_error(store: Path) -> None:
    result = fails("frobnicate", root=store)
    assert "frobnicate" in result.stderr


def test_load_reads_standard_input_and_save_writes_standard_output(
    filled: Path, tmp_path: Path
) -> None:
    """As podman: ``load`` without ``-i`` reads the archive from standard input, ``save``
    without ``-o`` writes it to standard output (a terminal is refused: see
    ``test_cli_usage_errors.py``); nothing is left in the temporary directory."""
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {**aiopod_env(), "TMPDIR": str(spool)}
    cli = [sys.executable, "-m", "aiopod", "--root"]
    with (tmp_path / "out.tar").open("wb") as out:
        subprocess.run([*cli, filled, "save", "localhost/new:1"], stdout=out, env=env, check=True)
    other = tmp_path / "other"
    with (tmp_path / "out.tar").open("rb") as archive:
        loaded = subprocess.run(
            [*cli, other, "load"], stdin=archive, env=env, capture_output=True, text=True
        )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr.endswith("Writing manifest to image destination\nStoring signatures\n")
    assert loaded.stdout == "Loaded image: localhost/new:1\n"
    assert list(spool.iterdir()) == []
    empty = subprocess.run(
        [*cli, other, "load"], stdin=subprocess.DEVNULL, env=env, capture_output=True, text=True
    )
    assert empty.returncode == 125
    assert "is not a readable tar archive" in empty.stderr
    assert list(spool.iterdir()) == []


def test_python_m_aiopod_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aiopod", "--help"],
        env=aiopod_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: aiopod")
    for command in ("images", "image", "inspect", "tag", "untag", "load", "save", "import"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


def test_a_command_help_shows_its_flags(store: Path) -> None:
    out = ok("images", "--help", root=store)
    for flag in ("--all", "--quiet", "--no-trunc", "--format"):
        assert flag in out


def test_the_store_can_be_chosen_with_aiopod_root(filled: Path) -> None:
    env = {**aiopod_env(), "AIOPOD_ROOT": str(filled)}
    result = subprocess.run(
        [sys.executable, "-m", "aiopod", "images", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3


def test_system_check_reports_a_consistent_store(filled: Path) -> None:
    assert ok("system", "check", root=filled) == "store is consistent\n"


def test_inspect_labels_are_the_configs_empty_or_absent(store: Path, tmp_path: Path) -> None:
    """podman prints the config's Labels as they are: ``{}`` when empty, null when absent."""
    empty = make_image("localhost/empty:1", seed="empty")
    absent = make_image(
        "localhost/absent:1", seed="absent", config_extra={"config": {"Cmd": ["sh"]}}
    )
    load(store, tmp_path, empty, absent)
    docs = json.loads(ok("image", "inspect", "empty:1", "absent:1", root=store))
    assert [doc["Labels"] for doc in docs] == [{}, None]
