"""``--format`` Go templates of ``events``, ``images``, ``ps`` and ``inspect``, against podman.

The same images are loaded into podman 4.3 (``file`` events backend, a private store) and
into aiopod (``--policy podman``); the same commands change both; then each template is
run by both and the outputs (stdout, stderr, exit status) must be equal, apart from what
cannot be (times, container IDs), which the templates leave out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from imagefactory import make_image, write_docker_archive
from peers import Podman, aiopod_env

pytestmark = pytest.mark.peer("podman")


@dataclass
class Pair:
    podman: Podman
    store: Path
    since: str

    def both(self, *args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
        cmd = [sys.executable, "-m", "aiopod", "--root", str(self.store), "--policy", "podman"]
        ours = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, env=aiopod_env(), timeout=60
        )
        return self.podman(*args, check=False), ours


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    base = tmp_path_factory.mktemp("templates")
    archive = write_docker_archive(
        base / "images.tar",
        [make_image("localhost/app:1", seed="tpl-app"), make_image("localhost/base:1", seed="tpl")],
    )
    podman = Podman.create(base / "podman", events_backend="file")
    pair = Pair(podman, base / "aiopod", "")
    try:
        for setup in (("load", "-i", str(archive)), ("create", "--name", "c1", "app:1", "true")):
            for proc in pair.both(*setup):
                assert proc.returncode == 0, (setup, proc.stderr)
        time.sleep(1.1)  # podman's create logs a pull: the events compared come after it
        pair.since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        time.sleep(1.1)
        for change in (("tag", "app:1", "app:2", "quay.io/x/app:3"), ("rmi", "app:2")):
            for proc in pair.both(*change):
                assert proc.returncode == 0, (change, proc.stderr)
        yield pair
    finally:
        podman.cleanup()


def same(pair: Pair, *args: str) -> None:
    theirs, ours = pair.both(*args)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )


EVENT_TEMPLATES = [
    "{{.Status}} {{.Name}} {{.Type}} {{.ID}}",
    '{{if eq .Status "tag"}}T {{.Name}}{{else}}other {{.Status}}{{end}}',
    '{{printf "%s/%v|%-6s|" .Status .Type .Status}} {{len .Name}} {{.Attributes}}',
    "{{json .Attributes}} {{json .Name}}",
    '{{range $i, $p := split .Name "/"}}{{$i}}={{$p}};{{end}}',
    "{{upper .Name}} {{truncate .ID 5}} {{title .Name}} {{lower .Name}}",
    "{{- .Name -}}  {{/* a comment */}} {{with .Name}}[{{.}}]{{else}}none{{end}}",
    '{{$n := .Name}}{{$n}} {{index (split $n ":") 0}} {{not .Name}} {{or .Image "-"}}',
    "{{.Foo}}",
    "{{.Name.Foo}}",
    "{{lower .Type}}",
    "{{range .}}",
    "{{.Status",
    "{{nope 1}}",
]


@pytest.mark.parametrize("template", EVENT_TEMPLATES)
def test_events_templates_print_what_podman_prints(pair: Pair, template: str) -> None:
    same(pair, "events", "--stream=false", "--since", pair.since, "--format", template)


def test_events_json_template_is_podmans_shape(pair: Pair) -> None:
    args = ("events", "--stream=false", "--since", pair.since, "--format", "{{json .}}")
    theirs, ours = pair.both(*args)
    assert ours.returncode == theirs.returncode == 0, ours.stderr

    def shape(text: str) -> list[list[tuple[str, object]]]:
        docs = [json.loads(line) for line in text.splitlines()]
        keep = [d for d in docs if d["Type"] == "image"]  # container IDs differ
        return [[(k, v) for k, v in d.items() if k != "Time"] for d in keep]

    assert shape(ours.stdout) == shape(theirs.stdout)
    assert shape(ours.stdout)  # not vacuous


IMAGE_TEMPLATES = [
    "{{.Repository}}:{{.Tag}} {{.ID}} {{json .Names}}",
    '{{range .Names}}[{{.}}]{{end}} {{len .Names}} {{.ReadOnly}} {{if eq .Tag "1"}}one{{end}}',
    '{{printf "%-12s|" .Tag}} {{upper .Repository}} {{.Containers | printf "%v"}}',
    "{{.Labels}} {{json .Labels}}",
    "{{.Foo}}",
    "{{range .}}",
]


@pytest.mark.parametrize("template", IMAGE_TEMPLATES)
def test_images_templates_print_what_podman_prints(pair: Pair, template: str) -> None:
    theirs, ours = pair.both("images", "--format", template)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
    assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines())


PS_TEMPLATES = [
    "{{.Names}} {{.Image}} {{.Status}} {{.State}} {{.Command}}",
    "{{.Labels}} {{json .Labels}} {{.Mounts}} {{.Pod}}|{{.Ports}}|",
    "{{.Foo}}",
]


@pytest.mark.parametrize("template", PS_TEMPLATES)
def test_ps_templates_print_what_podman_prints(pair: Pair, template: str) -> None:
    same(pair, "ps", "-a", "--format", template)


INSPECT_TEMPLATES = [
    "{{.Id}} {{json .RepoTags}} {{range .RepoTags}}[{{.}}]{{end}} {{len .RepoTags}}",
    "{{.Foo}}",
]


@pytest.mark.parametrize("command", ["image inspect", "inspect"])
@pytest.mark.parametrize("template", INSPECT_TEMPLATES)
def test_inspect_templates_print_what_podman_prints(
    pair: Pair, command: str, template: str
) -> None:
    same(pair, *command.split(), "--format", template, "app:1")


TABLE_TEMPLATES = [
    ("images", "table {{.ID}}\\t{{.Repository}}"),
    ("images", 'table {{.ID}} {{printf "%s x" .Tag}} {{.Size}}'),
    ("images", "table  {{.Repository}}:{{.Tag}}\\t\\t{{.Dangling}}"),
    ("images", "table {{.Containers}} {{.ReadOnly}} {{.CreatedAt}} {{.SharedSize}}"),
    ("images", "table {{if .ReadOnly}}{{.ID}}{{end}}"),
    ("images", "table {{.Foo}}"),
    ("images", "table {{range .Names}}{{.}}{{end}}"),
    ("images", "TABLE {{.ID}}"),
    ("images", "table {{.ID}}\\n{{.Tag}}"),
    ("images", "{{.ID}}\\t{{.Tag}} x\\n"),
    ("images -n", "table {{.ID}} {{.Tag}}"),
    ("ps -a", "table {{.Image}} {{.Names}} {{.Status}} {{.Ports}} {{.Cgroup}}|{{.User}}"),
    ("ps -a", "table {{.Foo}}"),
    ("ps -a --noheading", "table {{.Image}}\\t{{.Names}}"),
    ("history", "table {{.ID}} {{.Created}} {{.CreatedBy}} {{.Size}} {{.Comment}}"),
    ("history", "table {{.ID}} {{.CreatedAt}} {{.CreatedSince}}"),
    ("history", '{{.ID}}\\t{{if .Comment}}c{{else}}{{.Size}}{{end}} {{printf "%.4s" .ID}}'),
    ("history", "{{.Foo}}"),
    ("history", "{{json .}}"),
    ("history", "{{json .}} x"),
    ("history --no-trunc -q", "{{.Size}}"),
    ("history", "{{range .}}"),
    ("inspect", "table {{.Id}}\\t{{.Os}}"),
    ("system df", "table {{.Type}} {{.Total}} {{.Active}}"),
    ("system df", '{{if eq .Type "Images"}}I{{end}}|{{.Total}}|{{printf "%d" .Active}}'),
    ("system df", "{{.Foo}}"),
    ("images", "{{.Foo.Bar}}"),
    ("image inspect", "{{.Id}}\\t{{.Architecture}}"),
]


@pytest.mark.parametrize(("command", "template"), TABLE_TEMPLATES)
def test_table_templates_print_what_podman_prints(pair: Pair, command: str, template: str) -> None:
    """podman's normalised formats: ``table`` (a header line, spaces as column breaks,
    aligned), ``\\t`` and ``\\n``, ``--noheading``."""
    # Left out: what differs for other reasons (sizes and digests of the loaded images,
    # container IDs).
    image = ["app:1"] if command.split()[-1] in ("history", "inspect") else []
    theirs, ours = pair.both(*command.split(), "--format", template, *image)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
    if command == "images":  # podman's order of images created at the same time varies
        head = 0 if "-n" in command or not template.startswith("table ") else 1
        ours_lines, theirs_lines = ours.stdout.splitlines(), theirs.stdout.splitlines()
        assert ours_lines[:head] == theirs_lines[:head]
        assert sorted(ours_lines[head:]) == sorted(theirs_lines[head:])
    else:
        assert ours.stdout == theirs.stdout


def test_events_table_template_fails_as_podmans(pair: Pair) -> None:
    """podman runs a ``table`` format of ``events`` as a list's and fails on the first
    event; aiopod says the same (the event's Go value differs in what it holds)."""
    args = ("events", "--stream=false", "--since", pair.since, "--format", "table {{.Status}}")
    theirs, ours = pair.both(*args)
    prefix = 'Error: template: events:1:8: executing "events" at <.>: range can\'t iterate over {'
    assert ours.returncode == theirs.returncode == 125
    assert ours.stdout == theirs.stdout == ""
    assert ours.stderr.startswith(prefix) and theirs.stderr.startswith(prefix)


@pytest.mark.parametrize("template", ["{{.Status}}\\t{{.Type}}", "{{.Status}}\\n"])
def test_events_escapes_are_podmans(pair: Pair, template: str) -> None:
    same(pair, "events", "--stream=false", "--since", pair.since, "--format", template)


@pytest.mark.parametrize("template", ["{{json .}} row", "table {{json .}}"])
def test_an_images_rows_json_is_podmans_shape(pair: Pair, template: str) -> None:
    theirs, ours = pair.both("images", "--format", template)
    assert ours.returncode == theirs.returncode == 0, ours.stderr

    def rows(text: str) -> list[list[tuple[str, object]]]:
        docs = [json.loads(line.removesuffix(" row")) for line in text.splitlines()]
        # The loaded images' sizes and digests differ for other reasons, and so does the
        # order of names in History after a tag of several names (the store's order).
        differ = {"Size", "VirtualSize", "RepoDigests", "Digest", "History"}
        kept = [[(k, v) for k, v in d.items() if k not in differ] for d in docs]
        return sorted(kept, key=str)

    assert rows(ours.stdout) == rows(theirs.stdout)
    assert len(rows(ours.stdout)) >= 2  # not vacuous


INFO_TEMPLATES = [
    "{{.Store.GraphDriverName}}\\t{{.Host.Arch}} {{.Store.ContainerStore.Number}}",
    "{{if .Store.ContainerStore.Number}}yes{{end}} {{.Host.OS}} {{len .Host.Arch}}",
    "{{.Foo}}",
    "{{.Host.Foo}}",
    "{{.Store.ImageStore.Foo}}",
    "{{.Version.Foo}}",
    "{{$x := .Store}}{{$x.ContainerStore.Foo}}",
    "{{$.Store.ImageStore.Foo}}",
]


@pytest.mark.parametrize("template", INFO_TEMPLATES)
def test_info_templates_print_what_podman_prints(pair: Pair, template: str) -> None:
    same(pair, "info", "--format", template)
