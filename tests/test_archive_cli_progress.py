"""The command line's progress for ``load``, ``save`` and ``import``: podman's plain lines
on a standard error that is not a terminal (compared with podman's own), nothing with
``-q``, and bars on a terminal (:mod:`aiopod.cli.progress_display`, shared with pull and
push)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from imagefactory import child_image, make_image, rootfs_tarball, write_docker_archive
from peers import Podman, aiopod_env
from test_archive_progress import blobs_sorted

BASE = make_image("localhost/base:1", seed="cli-progress-base")
APP = child_image(BASE, "localhost/app:1", files={"app/big": bytes(range(256)) * 4096})


def ours(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "aiopod", "--root", str(root), "--policy", "podman", *args]
    proc = subprocess.run(
        cmd, input=stdin, capture_output=True, env=aiopod_env(), timeout=120, check=False
    )
    return subprocess.CompletedProcess(
        cmd, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode()
    )


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return write_docker_archive(tmp_path / "images.tar", [APP])


@pytest.mark.peer("podman")
def test_load_and_save_print_podmans_lines(tmp_path: Path, archive: Path) -> None:
    podman = Podman.create(tmp_path / "podman")
    try:
        theirs = podman("load", "-i", str(archive))
        mine = ours(tmp_path / "aiopod", "load", "-i", str(archive))
        assert mine.returncode == 0, mine.stderr
        assert blobs_sorted(mine.stderr) == blobs_sorted(theirs.stderr)
        assert "Copying config sha256:" in mine.stderr  # not vacuous
        assert mine.stdout == theirs.stdout

        theirs = podman("save", "-o", str(tmp_path / "theirs.tar"), "app:1")
        mine = ours(tmp_path / "aiopod", "save", "-o", str(tmp_path / "ours.tar"), "app:1")
        assert mine.returncode == 0, mine.stderr
        assert mine.stderr == theirs.stderr
        assert mine.stdout == theirs.stdout == ""
    finally:
        podman.cleanup()


@pytest.mark.peer("podman")
def test_import_prints_podmans_lines(tmp_path: Path) -> None:
    tarball, _ = rootfs_tarball(tmp_path / "rootfs.tar", {"etc/hostname": b"box\n"})
    podman = Podman.create(tmp_path / "podman")
    try:
        theirs = podman("import", str(tarball), "imp:1")
        mine = ours(tmp_path / "aiopod", "import", str(tarball), "imp:1")
        assert mine.returncode == 0, mine.stderr

        def shape(text: str) -> list[str]:
            # The config holds the time of the import: its digest differs.
            return [line.split(" sha256:")[0] for line in text.splitlines()]

        assert shape(mine.stderr) == shape(theirs.stderr)
        blob = [line for line in theirs.stderr.splitlines() if line.startswith("Copying blob")]
        assert blob and blob[0] in mine.stderr.splitlines()
        assert mine.stdout.startswith("sha256:")
    finally:
        podman.cleanup()


def test_quiet_prints_no_progress_and_pipes_carry_the_archive(
    tmp_path: Path, archive: Path
) -> None:
    root = tmp_path / "store"
    loaded = ours(root, "load", "-q", "-i", str(archive))  # podman's -q: no progress
    assert (loaded.returncode, loaded.stdout, loaded.stderr) == (
        0,
        "Loaded image: localhost/app:1\n",
        "",
    )
    for args in (["load"], ["load", "-i", "-"]):
        piped = ours(tmp_path / "other", *args, stdin=archive.read_bytes())
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout == "Loaded image: localhost/app:1\n"
        assert "Writing manifest to image destination" in piped.stderr
    saved = ours(root, "save", "-q", "-o", str(tmp_path / "out.tar"), "app:1")
    assert (saved.returncode, saved.stdout, saved.stderr) == (0, "", "")
    tarball, _ = rootfs_tarball(tmp_path / "rootfs.tar", {"etc/hostname": b"box\n"})
    imported = ours(root, "import", "-q", str(tarball), "imp:1")
    assert imported.returncode == 0 and imported.stderr == ""


def run_on_a_terminal(root: Path, *args: str) -> tuple[int, str]:
    """Run aiopod with its standard error on a pseudo-terminal: exit status and what the
    terminal got."""
    leader, follower = pty.openpty()
    env = {**aiopod_env(), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    cmd = [sys.executable, "-m", "aiopod", "--root", str(root), *args]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's last user has gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_bars(tmp_path: Path, archive: Path) -> None:
    root = tmp_path / "store"
    status, screen = run_on_a_terminal(root, "load", "-i", str(archive))
    assert status == 0, screen
    assert "Reading images.tar" in screen  # the archive's bar
    assert "Copying blob " in screen and "done" in screen  # the layers' bars
    assert "\x1b[" in screen  # drawn, not printed
    assert "Writing manifest to image destination" in screen

    status, screen = run_on_a_terminal(root, "save", "-o", str(tmp_path / "o.tar"), "app:1")
    assert status == 0, screen
    assert "Copying blob " in screen and "\x1b[" in screen


def test_system_check_draws_a_bar_on_a_terminal_and_prints_only_its_result_elsewhere(
    tmp_path: Path, archive: Path
) -> None:
    root = tmp_path / "store"
    assert ours(root, "load", "-q", "-i", str(archive)).returncode == 0
    plain = ours(root, "system", "check")
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, "store is consistent\n", "")
    status, screen = run_on_a_terminal(root, "system", "check")
    assert status == 0, screen
    assert "Verifying blobs" in screen and "\x1b[" in screen


@pytest.mark.peer("podman")
def test_image_subcommands_are_podmans(tmp_path: Path, archive: Path) -> None:
    """``image load/save/import/tag/untag/exists`` as podman's."""
    podman = Podman.create(tmp_path / "podman")
    root = tmp_path / "aiopod"
    tarball, _ = rootfs_tarball(tmp_path / "rootfs.tar", {"etc/hostname": b"box\n"})
    try:
        steps: list[list[str]] = [
            ["image", "load", "-q", "-i", str(archive)],
            ["image", "tag", "app:1", "app:2"],
            ["image", "untag", "app:1", "app:2"],
            ["image", "exists", "app:1"],
            ["image", "exists", "app:2"],
            ["image", "exists"],
            ["image", "exists", "a", "b"],
            ["image", "exists", "In:valid"],
            ["image", "save", "-q", "-o", "{dir}-saved.tar", "app:1"],
            ["image", "import", "-q", str(tarball), "imp:1"],
            ["image", "exists", "imp:1"],
        ]
        for step in steps:
            theirs = podman(*[a.format(dir=tmp_path / "p") for a in step], check=False)
            mine = ours(root, *[a.format(dir=tmp_path / "o") for a in step])
            assert mine.returncode == theirs.returncode, (step, mine.stderr, theirs.stderr)
            assert mine.stderr == theirs.stderr, step
            if "import" not in step:  # the ID of an import holds its time
                assert mine.stdout == theirs.stdout, step
    finally:
        podman.cleanup()
