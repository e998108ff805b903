"""USER resolution against the image's /etc/passwd and /etc/group (aiopod.builder.run.users).

The expected values are buildah 1.28's (``bud --isolation chroot``, ``RUN id; echo $HOME``
after each ``USER``), observed with the same passwd and group files as the ``rootfs``
fixture.  Hostile account files (hostile-input.md B9) are symlinks to sentinels *inside
tmp_path*, FIFOs and oversized files: the resolver must neither read outside the root
nor hang.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from conftest_busybox import busybox_rootfs

from aiopod.builder.run.users import MAX_ACCOUNT_FILE, ResolvedUser, resolve_user
from aiopod.errors import AccountFileError, InvalidInputError, UserLookupError

SENTINEL_PASSWD = "app:x:4242:4242:sentinel:/sentinel-home:/bin/sh\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A fresh busybox root file system directory, ``<tmp_path>/rootfs``."""
    return busybox_rootfs(tmp_path)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", ResolvedUser(0, 0, (0, 10), "/root", "root")),
        ("root", ResolvedUser(0, 0, (0, 10), "/root", "root")),
        ("0", ResolvedUser(0, 0, (0, 10), "/root", "root")),
        ("app", ResolvedUser(1000, 1000, (50, 1000), "/home/app", "app")),
        ("1000", ResolvedUser(1000, 1000, (50, 1000), "/home/app", "app")),
        ("app:", ResolvedUser(1000, 1000, (50, 1000), "/home/app", "app")),
        ("app:staff", ResolvedUser(1000, 50, (50,), "/home/app", "app")),
        ("app:app", ResolvedUser(1000, 1000, (1000,), "/home/app", "app")),
        ("1000:50", ResolvedUser(1000, 50, (50,), "/home/app", "app")),
        ("app:0", ResolvedUser(1000, 0, (0,), "/home/app", "app")),
        ("0:app", ResolvedUser(0, 1000, (1000,), "/root", "root")),
        (":1000", ResolvedUser(0, 1000, (1000,), "/root", "root")),
        ("1234", ResolvedUser(1234, 0, (0,), "/", None)),
        ("1234:77", ResolvedUser(1234, 77, (77,), "/", None)),
        ("nobody", ResolvedUser(65534, 65534, (65534,), "/nonexistent", "nobody")),
    ],
)
def test_user_forms_resolve_as_buildah_does(
    rootfs: Path, spec: str, expected: ResolvedUser
) -> None:
    assert resolve_user(rootfs, spec) == expected


def test_unknown_user_is_an_input_error_naming_it(rootfs: Path) -> None:
    with pytest.raises(UserLookupError) as caught:
        resolve_user(rootfs, "nosuch")
    assert caught.value.which == "uid"
    assert str(caught.value) == 'user: unknown user error looking up user "nosuch"'
    assert isinstance(caught.value, InvalidInputError)  # a build reports it as a BuildError


def test_unknown_group_is_a_build_error_naming_it(rootfs: Path) -> None:
    with pytest.raises(UserLookupError) as caught:
        resolve_user(rootfs, "app:nogrp")
    assert caught.value.which == "gid"
    assert str(caught.value) == 'group: unknown group error looking up group "nogrp"'


def test_malformed_lines_comments_and_crlf_are_tolerated(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").write_bytes(
        b"# comment\r\n"
        b"\n"
        b"broken\n"
        b"bad:x:notanumber:1:\n"
        b"short:x:5\n"
        b"root:x:0:0:root:/root:/bin/sh\r\n"
        b"app:x:1000:1000::/home/app:/bin/sh\r\n"
        b"app:x:2000:2000::/second:/bin/sh\n"
    )
    (rootfs / "etc" / "group").write_bytes(b"staff:x:50: app , other\r\ngarbage\n")
    assert resolve_user(rootfs, "app") == ResolvedUser(1000, 1000, (50, 1000), "/home/app", "app")
    with pytest.raises(UserLookupError):
        resolve_user(rootfs, "bad")


def test_empty_home_field_means_root_directory(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").write_text("app:x:1000:1000:::/bin/sh\n")
    assert resolve_user(rootfs, "app").home == "/"


def test_missing_account_files_allow_numbers_only(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "group").unlink()
    assert resolve_user(rootfs, "") == ResolvedUser(0, 0, (0,), "/", None)
    assert resolve_user(rootfs, "1000:1000") == ResolvedUser(1000, 1000, (1000,), "/", None)
    with pytest.raises(UserLookupError):
        resolve_user(rootfs, "app")


def test_symlinks_are_followed_inside_the_root(rootfs: Path) -> None:
    (rootfs / "usr" / "lib").mkdir(parents=True)
    os.replace(rootfs / "etc" / "passwd", rootfs / "usr" / "lib" / "passwd")
    (rootfs / "etc" / "passwd").symlink_to("/usr/lib/passwd")
    os.replace(rootfs / "etc" / "group", rootfs / "usr" / "lib" / "group")
    (rootfs / "etc" / "group").symlink_to("../usr/lib/group")
    assert resolve_user(rootfs, "app").groups == (50, 1000)


def test_b9_passwd_symlink_to_a_host_file_is_not_read(rootfs: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "host-passwd"
    sentinel.write_text(SENTINEL_PASSWD)
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to(sentinel)  # absolute: resolved in the root
    with pytest.raises(UserLookupError, match='looking up user "app"'):
        resolve_user(rootfs, "app")
    assert resolve_user(rootfs, "4242").home == "/"  # the sentinel's entry was not seen
    assert sentinel.read_text() == SENTINEL_PASSWD


def test_b9_passwd_symlink_climbing_out_is_clamped_at_the_root(
    rootfs: Path, tmp_path: Path
) -> None:
    sentinel = tmp_path / "host-passwd"
    sentinel.write_text(SENTINEL_PASSWD)
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("../" * 12 + "host-passwd")
    with pytest.raises(UserLookupError):
        resolve_user(rootfs, "app")
    (rootfs / "host-passwd").write_text("app:x:7:7::/inside:/bin/sh\n")  # where it lands
    assert resolve_user(rootfs, "app").uid == 7


def test_b9_etc_symlink_to_a_host_directory_is_not_read(rootfs: Path, tmp_path: Path) -> None:
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    (host_etc / "passwd").write_text(SENTINEL_PASSWD)
    os.replace(rootfs / "etc", rootfs / "image-etc")
    (rootfs / "etc").symlink_to(host_etc)
    with pytest.raises(UserLookupError):
        resolve_user(rootfs, "app")


@pytest.mark.timeout(20)
def test_b9_passwd_fifo_in_the_image_is_refused_without_hanging(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    os.mkfifo(rootfs / "etc" / "passwd")
    with pytest.raises(AccountFileError, match="not a regular file"):
        resolve_user(rootfs, "app")


@pytest.mark.timeout(20)
def test_b9_passwd_symlink_to_a_fifo_is_refused_or_unseen(rootfs: Path, tmp_path: Path) -> None:
    host_fifo = tmp_path / "host-fifo"
    os.mkfifo(host_fifo)
    os.mkfifo(rootfs / "fifo")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to(host_fifo)  # lands on <root>/<tmp_path>/...
    with pytest.raises(UserLookupError):
        resolve_user(rootfs, "app")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("/fifo")
    with pytest.raises(AccountFileError, match="not a regular file"):
        resolve_user(rootfs, "app")


@pytest.mark.timeout(20)
def test_b9_a_fifo_swapped_in_after_the_check_is_refused_without_hanging(rootfs: Path) -> None:
    from aiopod.builder.run import users

    os.mkfifo(rootfs / "fifo")
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(AccountFileError, match="not a regular file"):
            users._read_regular(fd, "fifo", "/fifo", MAX_ACCOUNT_FILE)
    finally:
        os.close(fd)


def test_b9_directories_and_symlink_loops_are_refused(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").mkdir()
    with pytest.raises(AccountFileError, match="not a regular file"):
        resolve_user(rootfs, "app")
    (rootfs / "etc" / "passwd").rmdir()
    (rootfs / "etc" / "passwd").symlink_to("passwd")
    with pytest.raises(AccountFileError, match="symbolic links"):
        resolve_user(rootfs, "app")


def test_account_files_over_1_mib_are_refused(rootfs: Path) -> None:
    line = b"app:x:1000:1000::/home/app:/bin/sh\n"
    filler = b"#" * (MAX_ACCOUNT_FILE - len(line) - 1) + b"\n"
    (rootfs / "etc" / "passwd").write_bytes(filler + line)
    assert resolve_user(rootfs, "app").uid == 1000  # exactly the limit
    (rootfs / "etc" / "passwd").write_bytes(filler + line + b"x")
    with pytest.raises(AccountFileError, match="larger than"):
        resolve_user(rootfs, "app")


def test_b10_name_services_are_never_called(rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a name service was called")

    for module, names in (
        (pwd, ("getpwnam", "getpwuid", "getpwall")),
        (grp, ("getgrnam", "getgrgid", "getgrall")),
    ):
        for name in names:
            monkeypatch.setattr(module, name, refuse)
    assert resolve_user(rootfs, "app:staff").gid == 50
    assert resolve_user(rootfs, "app").groups == (50, 1000)
