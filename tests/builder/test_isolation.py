"""RUN commands isolated in a root file system (aiopod.builder.run.isolation).

Every test runs busybox from the ``rootfs`` fixture (``<tmp_path>/rootfs``).  Hostile
cases (hostile-input.md B7-B11) point symlinks only at sentinels and directories
*inside tmp_path*, and check that everything in tmp_path outside the root file system is
exactly as before.  The mounts the runner makes exist only in its private mount namespace;
no test mounts anything itself, and the only chroot (the B10 control) is into the
fixture's root file system.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest
from conftest_busybox import busybox_rootfs
from rootless import give_to_nobody, run_as_nobody

from aiopod.builder.run.isolation import DEFAULT_PATH, OUTPUT_TAIL_BYTES, RunResult, run_isolated
from aiopod.errors import AccountFileError, BuildError, UsageError, UserLookupError

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, chroot, devices)"),
]


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    """A fresh busybox root file system directory, ``<tmp_path>/rootfs``."""
    return busybox_rootfs(tmp_path)


async def run(rootfs: Path, *argv: str, **options: object) -> RunResult:
    options.setdefault("env", {})
    with anyio.fail_after(60):
        return await run_isolated(rootfs, argv, **options)  # type: ignore[arg-type]


def processes_rooted_at(rootfs: Path) -> list[int]:
    """Host PIDs of processes whose root or working directory is ``rootfs``
    (``/proc/PID/root``, ``/proc/PID/cwd``): the command's tree and the runner."""
    target = os.stat(rootfs)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for link in ("root", "cwd"):
            try:
                st = os.stat(f"/proc/{entry}/{link}")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                found.append(int(entry))
                break
    return found


def snapshot(top: Path, skip: Path | None = None) -> dict[str, tuple[object, ...]]:
    """Type, mode, size, mtime, inode and content (or link target) of everything under
    ``top`` except ``skip``."""
    result: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content: object = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            else:
                content = None
            result[str(path.relative_to(top))] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
                st.st_ino,
                content,
            )
    return result


# -- output, exit codes, environment ---------------------------------------------------------


async def test_echo_output_is_streamed_as_it_arrives(rootfs: Path) -> None:
    chunks: list[tuple[float, bytes]] = []
    result = await run(
        rootfs,
        "sh",
        "-c",
        "echo one; sleep 0.6; echo two",
        on_output=lambda data: chunks.append((time.monotonic(), data)),
    )
    returned = time.monotonic()
    assert result == RunResult(0, "one\ntwo\n")
    assert chunks[0][1] == b"one\n"
    assert returned - chunks[0][0] >= 0.4  # seen long before the command ended


async def test_stdout_and_stderr_are_merged_and_stdin_is_empty(rootfs: Path) -> None:
    result = await run(rootfs, "sh", "-c", "echo out; echo err >&2; cat; echo end")
    assert result.output_tail == "out\nerr\nend\n"


async def test_stderr_has_a_pipe_of_its_own_when_asked(rootfs: Path) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    result = await run(
        rootfs,
        "sh",
        "-c",
        "echo out; echo err >&2; echo more; echo again >&2",
        on_output=out.append,
        on_stderr=err.append,
    )
    assert (b"".join(out), b"".join(err)) == (b"out\nmore\n", b"err\nagain\n")
    assert sorted(result.output_tail.splitlines()) == ["again", "err", "more", "out"]


async def test_output_is_bounded_and_only_the_tail_is_kept(rootfs: Path) -> None:
    sizes: list[int] = []
    result = await run(
        rootfs,
        "sh",
        "-c",
        "head -c 5000000 /dev/zero; echo; echo last line",
        on_output=lambda data: sizes.append(len(data)),
    )
    assert result.exit_code == 0
    assert sum(sizes) == 5000000 + len("\nlast line\n")
    assert max(sizes) <= 65536
    assert len(result.output_tail.encode()) <= OUTPUT_TAIL_BYTES
    assert result.output_tail.endswith("\nlast line\n")


@pytest.mark.parametrize(
    ("script", "code"),
    [("true", 0), ("exit 3", 3), ("exit 255", 255), ("kill -9 $$", 137), ("kill -15 $$", 143)],
)
async def test_exit_codes_propagate(rootfs: Path, script: str, code: int) -> None:
    assert (await run(rootfs, "sh", "-c", script)).exit_code == code


async def test_env_is_exactly_as_given_plus_home_and_path(rootfs: Path) -> None:
    result = await run(rootfs, "env", env={"FOO": "bar baz", "EMPTY": ""})
    assert sorted(result.output_tail.splitlines()) == sorted(
        ["FOO=bar baz", "EMPTY=", "HOME=/root", f"PATH={DEFAULT_PATH}"]
    )
    result = await run(rootfs, "/bin/env", env={"HOME": "/h", "PATH": "/bin"})
    assert sorted(result.output_tail.splitlines()) == ["HOME=/h", "PATH=/bin"]


async def test_argv0_is_looked_up_in_the_given_path(rootfs: Path) -> None:
    (rootfs / "opt" / "tools").mkdir(parents=True)
    (rootfs / "opt" / "tools" / "hello").write_text("#!/bin/sh\necho hello from $0\n")
    (rootfs / "opt" / "tools" / "hello").chmod(0o755)
    result = await run(rootfs, "hello", env={"PATH": "/nowhere:/opt/tools:/bin"})
    assert result == RunResult(0, "hello from /opt/tools/hello\n")


async def test_workdir_is_applied_and_created_when_missing(rootfs: Path) -> None:
    result = await run(rootfs, "sh", "-c", "pwd; touch here", workdir="/work/sub")
    assert result == RunResult(0, "/work/sub\n")
    for path in (rootfs / "work", rootfs / "work" / "sub"):
        st = path.lstat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert (rootfs / "work" / "sub" / "here").is_file()


async def test_workdir_symlinks_resolve_inside_the_root(rootfs: Path) -> None:
    (rootfs / "lnk").symlink_to("/tmp")
    assert (await run(rootfs, "pwd", workdir="/lnk")).output_tail == "/tmp\n"
    assert (await run(rootfs, "pwd", workdir="relative/../../x")).output_tail == "/x\n"


async def test_workdir_that_is_a_file_is_a_clear_error(rootfs: Path) -> None:
    with pytest.raises(BuildError, match="working directory to /etc/passwd"):
        await run(rootfs, "true", workdir="/etc/passwd")


# -- USER -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", "uid=0(root) gid=0(root) groups=0(root),10(wheel)"),
        ("app", "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"),
        ("1000", "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"),
        ("app:staff", "uid=1000(app) gid=50(staff) groups=50(staff)"),
        ("1000:50", "uid=1000(app) gid=50(staff) groups=50(staff)"),
        ("0:app", "uid=0(root) gid=1000(app) groups=1000(app)"),
        ("1234", "uid=1234 gid=0(root) groups=0(root)"),
        ("1234:77", "uid=1234 gid=77 groups=77"),
    ],
)
async def test_user_by_name_uid_and_group_gives_buildahs_id_output(
    rootfs: Path, user: str, expected: str
) -> None:
    result = await run(rootfs, "id", user=user)
    assert result == RunResult(0, expected + "\n")


async def test_home_comes_from_passwd_unless_env_has_one(rootfs: Path) -> None:
    script = 'echo "$HOME"'
    assert (await run(rootfs, "sh", "-c", script, user="app")).output_tail == "/home/app\n"
    assert (await run(rootfs, "sh", "-c", script, user="1234")).output_tail == "/\n"
    result = await run(rootfs, "sh", "-c", script, user="app", env={"HOME": "/given"})
    assert result.output_tail == "/given\n"


async def test_non_root_user_has_no_capabilities(rootfs: Path) -> None:
    result = await run(rootfs, "grep", "-E", "^Cap(Prm|Eff|Bnd)", "/proc/self/status", user="app")
    assert result.output_tail.split() == [
        "CapPrm:",
        "0000000000000000",
        "CapEff:",
        "0000000000000000",
        "CapBnd:",
        "00000000800405fb",
    ]


async def test_root_has_buildahs_default_capabilities(rootfs: Path) -> None:
    result = await run(rootfs, "grep", "-E", "^Cap(Prm|Eff|Bnd|Amb)", "/proc/self/status")
    assert result.output_tail.split() == [
        "CapPrm:",
        "00000000800405fb",
        "CapEff:",
        "00000000800405fb",
        "CapBnd:",
        "00000000800405fb",
        "CapAmb:",
        "0000000000000000",
    ]


async def test_unknown_user_fails_before_anything_runs(rootfs: Path) -> None:
    with pytest.raises(
        UserLookupError,
        match='determining run uid: user: unknown user error looking up user "nosuch"',
    ):
        await run(rootfs, "touch", "/ran", user="nosuch")
    with pytest.raises(UserLookupError, match="determining run gid"):
        await run(rootfs, "touch", "/ran", user="app:nogrp")
    assert not (rootfs / "ran").exists()


# -- namespaces -----------------------------------------------------------------------------


async def test_hostname_is_isolated(rootfs: Path) -> None:
    host = socket.gethostname()
    result = await run(
        rootfs,
        "sh",
        "-c",
        "hostname; cat /etc/hostname; grep buildbox /etc/hosts; hostname changed",
        hostname="buildbox",
    )
    assert result.output_tail == (
        "buildbox\nbuildbox\n127.0.1.1\tbuildbox\n"
        "hostname: sethostname: Operation not permitted\n"  # no CAP_SYS_ADMIN
    )
    assert socket.gethostname() == host
    default = (await run(rootfs, "hostname")).output_tail.strip()
    assert len(default) == 12 and int(default, 16) >= 0


async def test_proc_shows_only_the_namespace_processes(rootfs: Path) -> None:
    result = await run(rootfs, "sh", "-c", "echo /proc/[0-9]*; echo $$; cat /proc/1/cmdline")
    listed, shell, cmdline = result.output_tail.split("\n", 2)
    assert listed.split() == ["/proc/1", f"/proc/{shell}"]  # init (the runner) and sh
    assert "aiopod.builder.run._runner" in cmdline


async def test_ipc_namespace_is_private(rootfs: Path) -> None:
    result = await run(rootfs, "sh", "-c", "cat /proc/sysvipc/shm | wc -l")
    assert result.output_tail == "1\n"  # the header only


async def test_dev_has_only_the_minimal_devices(rootfs: Path) -> None:
    result = await run(
        rootfs,
        "sh",
        "-c",
        "ls /dev; echo x > /dev/null; head -c 4 /dev/zero | wc -c; head -c 4 /dev/urandom | wc -c",
    )
    assert result.output_tail.split() == [
        "fd",
        "full",
        "null",
        "ptmx",
        "pts",
        "random",
        "shm",
        "stderr",
        "stdin",
        "stdout",
        "tty",
        "urandom",
        "zero",
        "4",
        "4",
    ]
    assert list((rootfs / "dev").iterdir()) == []  # nothing was written into the image


async def test_proc_sys_is_read_only(rootfs: Path) -> None:
    result = await run(rootfs, "sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid || echo ro")
    assert result.output_tail.endswith("ro\n")


async def test_mount_point_stubs_are_left_like_buildahs(rootfs: Path) -> None:
    await run(rootfs, "true")
    for name in ("hosts", "hostname", "resolv.conf"):
        st = (rootfs / "etc" / name).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    assert (rootfs / "proc").is_dir() and list((rootfs / "proc").iterdir()) == []
    assert (rootfs / "dev").is_dir() and list((rootfs / "dev").iterdir()) == []


# -- hostile images (hostile-input.md B7-B11) -----------------------------------------------


async def test_b7_the_command_has_only_descriptors_0_to_2(rootfs: Path, tmp_path: Path) -> None:
    leak = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(leak, True)  # a descriptor the library's caller leaked
    try:
        result = await run(rootfs, "sh", "-c", "ls /proc/$$/fd; true")  # the shell's
    finally:
        os.close(leak)
    assert result.output_tail.split() == ["0", "1", "2"]


async def test_b7_workdir_through_proc_self_fd_cannot_reach_the_host(
    rootfs: Path, tmp_path: Path
) -> None:
    outside = snapshot(tmp_path, skip=rootfs)
    leak = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(leak, True)
    try:
        for fd in sorted({7, leak}):
            with pytest.raises(BuildError, match=f"working directory to /proc/self/fd/{fd}"):
                await run(rootfs, "ls", "../../../", workdir=f"/proc/self/fd/{fd}")
        # Magic links are read as plain symlinks inside the root: /proc/self/cwd is "/".
        result = await run(rootfs, "ls", "../../../", workdir="/proc/self/cwd/../..")
    finally:
        os.close(leak)
    assert result.output_tail.split() == sorted(os.listdir(rootfs))
    assert snapshot(tmp_path, skip=rootfs) == outside


async def test_b8_background_processes_are_dead_before_run_returns(rootfs: Path) -> None:
    script = (
        "(while true; do ln -sfn / /dst; ln -sfn /tmp /dst; sleep 0.1; done) & "
        "(exec sleep 1000) & "
        "(trap '' TERM HUP; exec sleep 1001 </dev/null >/dev/null 2>&1) & "
        "sleep 0.3; echo started"
    )
    started = time.monotonic()
    result = await run(rootfs, "sh", "-c", script)
    assert result == RunResult(0, "started\n")
    assert processes_rooted_at(rootfs) == []
    assert time.monotonic() - started < 10
    link = os.readlink(rootfs / "dst")
    await anyio.sleep(0.4)
    assert os.readlink(rootfs / "dst") == link  # nothing swaps it any more


@pytest.mark.timeout(60)
async def test_b9_passwd_symlink_to_host_file_or_fifo_is_a_clear_error(
    rootfs: Path, tmp_path: Path
) -> None:
    sentinel = tmp_path / "host-passwd"
    sentinel.write_text("app:x:4242:4242::/sentinel:/bin/sh\n")
    fifo = tmp_path / "host-fifo"
    os.mkfifo(fifo)
    passwd = rootfs / "etc" / "passwd"
    for target in (sentinel, fifo):
        passwd.unlink()
        passwd.symlink_to(target)
        with pytest.raises(UserLookupError, match='looking up user "app"'):
            await run(rootfs, "id", user="app")
    passwd.unlink()
    os.mkfifo(passwd)
    with pytest.raises(AccountFileError, match="/etc/passwd in the image is not a regular"):
        await run(rootfs, "id", user="app")


B10_MODULE = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void aiopod_test_marker(void) {
    char comm[64];
    ssize_t n = 0;
    int c = open("/proc/self/comm", O_RDONLY);
    if (c >= 0) { n = read(c, comm, sizeof comm); close(c); }
    int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        if (n > 0) write(fd, comm, n);
        write(fd, "loaded\n", 7);
        close(fd);
    }
}
"""


def hostile_nss_rootfs(rootfs: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Put a libnss module that appends the loading process's name to a marker into every
    library directory of ``rootfs``, and select it in nsswitch.conf.  The marker's path is
    absolute inside tmp_path; loaded by a process chrooted into ``rootfs`` it lands at
    ``rootfs/<that path>``.  Returns (host marker, in-root marker)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the hostile NSS module")
    marker = tmp_path / "nss-marker"
    source = tmp_path / "nss.c"
    source.write_text(B10_MODULE)
    module = tmp_path / "libnss_evil.so.2"
    subprocess.run(
        [compiler, "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(module), str(source)],
        check=True,
    )
    for libdir in (
        "lib",
        "lib64",
        "usr/lib",
        "lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu",
        "lib/aarch64-linux-gnu",
        "usr/lib/aarch64-linux-gnu",
    ):
        (rootfs / libdir).mkdir(parents=True, exist_ok=True)
        for name in ("libnss_evil.so.2", "libnss_files.so.2", "libnss_compat.so.2"):
            shutil.copy(module, rootfs / libdir / name)
    (rootfs / "etc" / "nsswitch.conf").write_text(
        "passwd: evil files\ngroup: evil files\nhosts: evil files\n"
    )
    inner = rootfs / marker.relative_to("/")
    inner.parent.mkdir(parents=True)
    return marker, inner


def test_b10_control_the_hostile_module_fires_when_nss_runs_after_chroot(
    rootfs: Path, tmp_path: Path
) -> None:
    """Shows that the B10 test below can fail: a process that chroots into the image
    and calls getpwnam loads the image's module."""
    marker, inner = hostile_nss_rootfs(rootfs, tmp_path)
    code = "import os, pwd, sys; os.chroot(sys.argv[1]); os.chdir('/'); pwd.getpwnam('app')"
    subprocess.run([sys.executable, "-I", "-S", "-c", code, str(rootfs)], check=False)
    assert "loaded" in inner.read_text()
    assert not marker.exists()


async def test_b10_hostile_nss_module_is_never_loaded_by_aiopod(
    rootfs: Path, tmp_path: Path
) -> None:
    marker, inner = hostile_nss_rootfs(rootfs, tmp_path)
    result = await run(rootfs, "true", user="app")
    assert result.exit_code == 0
    result = await run(rootfs, "true", user="app:staff", workdir="/home/app")
    assert result.exit_code == 0
    assert not marker.exists()  # never loaded outside the root (aiopod's own process)
    assert not inner.exists()  # nor by the runner inside it


async def test_b11_symlinks_at_mount_points_are_replaced_never_followed(
    rootfs: Path, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    (host / "dev").mkdir(parents=True)
    (host / "dev" / "null").write_text("sentinel null\n")
    (host / "proc").mkdir()
    (host / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    (host / "hosts").write_text("192.0.2.1 sentinel\n")
    (host / "hostname").write_text("sentinel\n")
    for name in ("resolv.conf", "hosts", "hostname"):
        (rootfs / "etc" / name).symlink_to(host / name)
    (rootfs / "dev").symlink_to(host / "dev")
    (rootfs / "proc").symlink_to(host / "proc")
    outside = snapshot(tmp_path, skip=rootfs)

    result = await run(
        rootfs,
        "sh",
        "-c",
        (
            "echo pwned > /etc/resolv.conf; echo pwned > /etc/hosts; echo pwned > /etc/hostname;"
            " echo pwned > /dev/null; cat /dev/null; cat /etc/resolv.conf; ls /proc/1/fd"
        ),
    )
    assert result.exit_code == 0
    assert result.output_tail.startswith("pwned\n")  # the namespace's own resolv.conf
    assert snapshot(tmp_path, skip=rootfs) == outside
    for name in ("resolv.conf", "hosts", "hostname"):
        st = (rootfs / "etc" / name).lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_size == 0  # the stub, not the host file
    for name in ("dev", "proc"):
        assert not (rootfs / name).is_symlink() and (rootfs / name).is_dir()


async def test_b11_dev_symlink_into_the_image_is_replaced(rootfs: Path) -> None:
    (rootfs / "tmp" / "keep").write_text("keep\n")
    (rootfs / "dev").symlink_to("/tmp")
    before = snapshot(rootfs / "tmp")
    result = await run(rootfs, "sh", "-c", "echo x > /dev/null; ls /dev/null /tmp")
    assert result.exit_code == 0
    assert snapshot(rootfs / "tmp") == before
    assert (rootfs / "dev").is_dir() and not (rootfs / "dev").is_symlink()


async def test_b11_etc_symlink_to_a_host_directory_stays_inside_the_root(
    rootfs: Path, tmp_path: Path
) -> None:
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    (host_etc / "hosts").write_text("192.0.2.1 sentinel\n")
    os.replace(rootfs / "etc", rootfs / "image-etc")
    (rootfs / "etc").symlink_to(host_etc)
    outside = snapshot(tmp_path, skip=rootfs)
    result = await run(
        rootfs, "sh", "-c", "echo pwned > /etc/hosts; cat /etc/hostname", hostname="inside"
    )
    assert result == RunResult(0, "inside\n")
    assert snapshot(tmp_path, skip=rootfs) == outside
    assert (rootfs / host_etc.relative_to("/") / "hosts").stat().st_size == 0


# -- the chroot fallback (kernels without open_tree) ----------------------------------------


async def test_chroot_fallback_isolates_the_same_way_without_chroot_capability(
    rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiopod.builder.run import isolation

    monkeypatch.setattr(isolation, "_USE_PIVOT_ROOT", False)
    host = tmp_path / "host"
    host.mkdir()
    (host / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    (rootfs / "etc" / "resolv.conf").symlink_to(host / "resolv.conf")
    (rootfs / "dev").symlink_to(host)
    outside = snapshot(tmp_path, skip=rootfs)
    script = (
        "echo /proc/[0-9]*; ls /proc/$$/fd; true; echo x > /etc/resolv.conf; echo > /dev/null;"
        " grep CapBnd /proc/self/status; mkdir /jail; chroot /jail /bin/true || echo refused"
    )
    result = await run(rootfs, "sh", "-c", script, user="")
    assert result.output_tail.splitlines() == [
        "/proc/1 /proc/2",
        "0",
        "1",
        "2",
        "CapBnd:\t00000000800005fb",
        "chroot: can't change root directory to '/jail': Operation not permitted",
        "refused",
    ]
    assert snapshot(tmp_path, skip=rootfs) == outside
    assert (await run(rootfs, "id", user="app:staff")).output_tail == (
        "uid=1000(app) gid=50(staff) groups=50(staff)\n"
    )


# -- failures, cancellation -----------------------------------------------------------------


async def test_missing_command_fails_like_buildah(rootfs: Path) -> None:
    assert await run(rootfs, "nonexistent-cmd", "a") == RunResult(
        1,
        'process failed to start with error: exec: "nonexistent-cmd": executable file not '
        "found in $PATH\n",
    )
    assert await run(rootfs, "/bin/nonexistent") == RunResult(
        1,
        "process failed to start with error: fork/exec /bin/nonexistent: no such file or "
        "directory\n",
    )
    assert await run(rootfs, "/etc/passwd") == RunResult(
        1, "process failed to start with error: fork/exec /etc/passwd: permission denied\n"
    )
    result = await run(rootfs, "sh", "-c", "nonexistent-cmd a")
    assert result == RunResult(127, "sh: nonexistent-cmd: not found\n")


async def test_malformed_arguments_are_usage_errors(rootfs: Path) -> None:
    for argv, options in (
        ((), {}),
        (("",), {}),
        (("echo", "a\0b"), {}),
        (("true",), {"env": {"A=B": "c"}}),
        (("true",), {"hostname": "bad name"}),
    ):
        with pytest.raises(UsageError):
            await run(rootfs, *argv, **options)


async def test_cancellation_kills_the_whole_tree(rootfs: Path) -> None:
    seen = bytearray()
    ready = anyio.Event()

    def output(data: bytes) -> None:
        seen.extend(data)
        if b"ready" in seen:
            ready.set()

    script = "sleep 1000 & (trap '' TERM INT HUP; sleep 1001) & echo ready; wait"
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_isolated(rootfs, ["sh", "-c", script], env={}, on_output=output))
        with anyio.fail_after(30):
            await ready.wait()
        assert len(processes_rooted_at(rootfs)) >= 3  # the check sees them while they run
        tg.cancel_scope.cancel()
    assert processes_rooted_at(rootfs) == []


async def test_timeout_kills_the_whole_tree_and_raises(rootfs: Path) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await run_isolated(rootfs, ["sh", "-c", "sleep 1000 & sleep 1000"], env={}, timeout=1)
    assert time.monotonic() - started < 10
    assert processes_rooted_at(rootfs) == []


async def test_cancellation_at_any_moment_leaves_nothing_behind(rootfs: Path) -> None:
    for delay in (0, 0.001, 0.003, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.3):
        with anyio.move_on_after(delay):
            await run_isolated(rootfs, ["sleep", "1000"], env={})
        assert processes_rooted_at(rootfs) == [], delay


async def test_an_output_callback_error_kills_the_tree_and_propagates(rootfs: Path) -> None:
    def output(data: bytes) -> None:
        raise ValueError("callback failed")

    with pytest.raises(ValueError, match="callback failed"):
        await run(rootfs, "sh", "-c", "echo hi; sleep 1000", on_output=output)
    assert processes_rooted_at(rootfs) == []


# -- rootless -------------------------------------------------------------------------------


ROOTLESS_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    import anyio
    from aiopod.builder.run.isolation import run_isolated

    async def main() -> None:
        root = Path(sys.argv[1])
        result = await run_isolated(
            root, ["sh", "-c", "id; cat /proc/self/uid_map; echo /proc/[0-9]*; "
                   "touch /tmp/made; hostname"], env={}, hostname="rootless")
        print(result.exit_code)
        print(result.output_tail, end="")
        try:
            await run_isolated(root, ["true"], env={}, user="app")
        except Exception as exc:
            print("refused:", type(exc).__name__)

    anyio.run(main)
""")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_rootless_runs_as_root_of_a_user_namespace(rootfs: Path) -> None:
    """Runs a Python process as uid/gid 65534 (nobody) without any capability but
    CAP_DAC_READ_SEARCH, which only lets it read this machine's interpreter and source
    tree (under /root); aiopod then takes the user-namespace path."""
    give_to_nobody(rootfs)
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        done = run_as_nobody(ROOTLESS_SCRIPT, f"/proc/self/fd/{fd}", pass_fds=(fd,))
    finally:
        os.close(fd)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "0", done.stdout
    assert lines[1].startswith("uid=0(root) gid=0(root)")
    assert lines[2].split() == ["0", "65534", "1"]
    assert lines[3] == "/proc/1 /proc/2"
    assert lines[4] == "rootless"
    assert lines[5] == "refused: BuildError"
    made = (rootfs / "tmp" / "made").stat()
    assert (made.st_uid, made.st_gid) == (65534, 65534)
