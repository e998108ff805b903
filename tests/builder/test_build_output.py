"""``aiopod build`` prints what ``podman build`` (4.3) prints: a differential test.

Each case is a Dockerfile and a sequence of builds (flags, tags, ``--layers`` or not) run
by ``podman build`` and by ``aiopod build`` on private stores that both start from the
busybox root file system imported as ``localhost/bb:latest``, with the same context.  The
standard output, the standard error and the exit status of every build are compared line
by line after image IDs are replaced by placeholders: ``<ID1>`` for an 11-digit ID (``-->
546cf125bdf``), ``<ID1 full>`` for a full one, numbered by first appearance across the
case's builds on each side, so a cache hit must name the image an earlier build made (the
two sides' IDs differ: the base images' creation times do).

podman runs RUN with its default OCI isolation (``--runtime runc``: crun cannot create
containers on this machine's hybrid cgroup set-up) and ``--pull=never``; ``--layers`` is
spelled ``--layers=true|false`` for podman, whose default is true, and ``--layers`` or
nothing for aiopod, whose default is false.

Known differences, left out of the comparison on purpose:

* without ``--layers`` podman's commit prints containers/image's copy progress on
  standard error (``Getting image source signatures``, ``Copying blob sha256:…``,
  ``Copying config sha256:…``, ``Writing manifest to image destination``, ``Storing
  signatures``); aiopod copies nothing and prints none of it (the lines are filtered from
  podman's standard error);
* messages of errors that podman words after its own machinery (a malformed Dockerfile,
  a base image that is not there) are not compared; a failed RUN, a missing Dockerfile
  and a context that is not a directory are.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest_context import make_tree
from peers import BUSYBOX_IMAGE, Podman, aiopod, aiopod_ok

pytestmark = [
    pytest.mark.peer("podman", "runc", "busybox"),
    pytest.mark.skipif(os.geteuid() != 0, reason="podman's RUN needs root here"),
]

BASE = BUSYBOX_IMAGE

#: containers/image's copy progress, which podman prints on stderr when it commits
#: without --layers (aiopod has no such copy).
COPY_PROGRESS = re.compile(
    r"^(Getting image source signatures|Copying blob sha256:[0-9a-f]{64}|"
    r"Copying config sha256:[0-9a-f]{64}|Writing manifest to image destination|"
    r"Storing signatures)$"
)
FULL_ID = re.compile(r"\b[0-9a-f]{64}\b")
SHORT_ID = re.compile(r"^--> ([0-9a-f]{11})$")


@dataclasses.dataclass(frozen=True)
class Build:
    """One build of a case: its flags (both tools), ``--layers`` or not, and another
    Dockerfile (relative to the context) or context when given."""

    args: tuple[str, ...] = ()
    layers: bool = False
    file: str | None = None
    context: str = "ctx"


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    dockerfile: str
    builds: tuple[Build, ...]
    files: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


SINGLE = """\
FROM scratch
COPY a.txt /a.txt
ENV X=1
CMD ["/a"]
"""

RUN_OUTPUT = """\
FROM localhost/bb:latest
RUN echo to stdout; echo to stderr >&2; echo more
ENV Y=2
RUN ["/bin/sh", "-c", "echo exec form"]
"""

MULTI_STAGE = """\
ARG BASE=localhost/bb:latest
FROM ${BASE} AS Builder
RUN echo built > /artifact
ENV STAGE=1
FROM localhost/bb:latest AS unused
RUN echo never
FROM $BASE
COPY --from=Builder /artifact /copied
ENV Z=1
"""

STAGE_AS_BASE = """\
FROM localhost/bb:latest AS base
RUN echo base > /base
ENV S=1
FROM base
RUN cat /base
"""

FAILING = """\
FROM localhost/bb:latest
RUN echo fine
RUN echo about to fail; echo oops >&2; exit 3
RUN echo never
"""

CASES = (
    Case(
        "single-stage",
        SINGLE,
        (Build(("-t", "t1")), Build(("-t", "t2", "-t", "localhost/t3:x"))),
        {"a.txt": "a\n"},
    ),
    Case(
        "layers-first-build-and-cache-hits",
        SINGLE,
        (
            Build(("-t", "t1"), layers=True),
            Build(("-t", "t2", "-t", "t3"), layers=True),  # names: t2, then t1, then t3
            Build((), layers=True),  # untagged, last step cached: no COMMIT
            Build(("-t", "t4"), layers=False),
        ),
        {"a.txt": "a\n"},
    ),
    Case(
        "run-output",
        RUN_OUTPUT,
        (Build(("-t", "run")), Build(("-t", "run"), layers=True), Build(("-t", "run"), True)),
    ),
    Case("untagged", RUN_OUTPUT, (Build(()), Build((), layers=True))),
    Case(
        "quiet",
        RUN_OUTPUT,
        (Build(("-q", "-t", "quiet")), Build(("-q",), layers=True), Build(("-q",), True)),
    ),
    Case(
        "multi-stage",
        MULTI_STAGE,
        (
            Build(("-t", "multi")),
            Build(("-t", "multi"), layers=True),
            Build(("-t", "multi"), layers=True),
            Build(("--target", "Builder", "-t", "just-builder")),
            Build(("--target", "Builder"), layers=True),
        ),
    ),
    Case(
        "stage-as-base",
        STAGE_AS_BASE,
        (Build(("-t", "derived")), Build((), layers=True), Build(("-t", "again"), True)),
    ),
    Case(
        "failing-run",
        FAILING,
        (
            Build(("-t", "never")),
            Build(("-t", "never"), layers=True),
            Build(("-q", "-t", "never"), layers=True),
        ),
    ),
    Case(
        "missing-dockerfile-and-context",
        SINGLE,
        (
            Build(("-t", "x"), file="nope"),
            Build(("-t", "x"), file="sub/Dockerfile"),
            Build(("-t", "x"), context="ctx/sub"),
            Build(("-t", "x"), context="no-such-context"),
        ),
        {"a.txt": "a\n", "sub/": 0o755},
    ),
)


class Placeholders:
    """Image IDs to ``<IDn>`` / ``<IDn full>``, numbered by first appearance."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}
        self.full_ids: list[str] = []

    def _number(self, image_id: str) -> int:
        key = next((f for f in self.full_ids if f.startswith(image_id)), image_id)
        return self.numbers.setdefault(key, len(self.numbers) + 1)

    def replace(self, text: str) -> list[str]:
        # Full IDs first, so that a short ID printed before its full one gets its number.
        for image_id in FULL_ID.findall(text):
            if image_id not in self.full_ids:
                self.full_ids.append(image_id)
                short = image_id[:11]
                if short in self.numbers:  # seen short before: the same image
                    self.numbers[image_id] = self.numbers.pop(short)
        lines = []
        for line in text.splitlines():
            line = FULL_ID.sub(lambda m: f"<ID{self._number(m.group())} full>", line)
            short = SHORT_ID.match(line)
            if short:
                line = f"--> <ID{self._number(short.group(1))}>"
            lines.append(line)
        return lines


@dataclasses.dataclass
class Outcome:
    code: int
    stdout: list[str]
    stderr: list[str]


def run_podman(podman: Podman, build: Build, ctx: Path) -> subprocess.CompletedProcess[str]:
    args = ["build", "--runtime", "runc", "--pull=never", f"--layers={str(build.layers).lower()}"]
    if build.file is not None:
        args += ["-f", str(ctx / build.file)]
    return podman(*args, *build.args, ctx.parent / build.context, check=False)


def run_aiopod(store: Path, build: Build, ctx: Path) -> subprocess.CompletedProcess[str]:
    args = ["build", *(["--layers"] if build.layers else [])]
    if build.file is not None:
        args += ["-f", str(ctx / build.file)]
    return aiopod(*args, *build.args, ctx.parent / build.context, root=store)


def outcome(proc: subprocess.CompletedProcess[str], ids: Placeholders) -> Outcome:
    stderr = [line for line in proc.stderr.splitlines() if not COPY_PROGRESS.match(line)]
    return Outcome(proc.returncode, ids.replace(proc.stdout), ids.replace("\n".join(stderr)))


@pytest.fixture
def stores(podman: Podman, busybox_rootfs_tar: Path, store: Path) -> tuple[Podman, Path]:
    podman("import", busybox_rootfs_tar, BASE)
    aiopod_ok("import", busybox_rootfs_tar, BASE, root=store)
    return podman, store


@pytest.mark.parametrize("case", CASES, ids=str)
def test_aiopod_build_prints_what_podman_build_prints(
    case: Case, stores: tuple[Podman, Path], tmp_path: Path
) -> None:
    podman, store = stores
    ctx = make_tree(tmp_path / "ctx", dict(case.files))
    (ctx / "Dockerfile").write_text(case.dockerfile)
    podman_ids, aiopod_ids = Placeholders(), Placeholders()
    for number, build in enumerate(case.builds, start=1):
        theirs = run_podman(podman, build, ctx)
        ours = run_aiopod(store, build, ctx)
        expected, got = outcome(theirs, podman_ids), outcome(ours, aiopod_ids)
        where = f"build {number} of {case.name} ({build})"
        shown = (
            f"{where}\n--- podman (exit {theirs.returncode})\n{theirs.stdout}{theirs.stderr}"
            f"--- aiopod (exit {ours.returncode})\n{ours.stdout}{ours.stderr}"
        )
        assert got.stdout == expected.stdout, shown
        assert got.stderr == expected.stderr, shown
        assert got.code == expected.code, shown


def test_the_placeholders_follow_an_image_across_builds() -> None:
    ids = Placeholders()
    a, b = "a" * 64, "b" * 64
    assert ids.replace(f"--> {a[:11]}\n--> {b[:11]}\n") == ["--> <ID1>", "--> <ID2>"]
    assert ids.replace(f"--> Using cache {b}\n--> {b[:11]}\n{a}\n") == [
        "--> Using cache <ID2 full>",
        "--> <ID2>",
        "<ID1 full>",
    ]
