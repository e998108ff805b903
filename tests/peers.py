"""Helpers for tests that drive aiopod's command line and compare it with real peers.

Peers are podman, buildah, skopeo, umoci, docker (a private dockerd) and docker-registry.
Every peer runs on its own root, socket and temporary directory: nothing here touches the
machine's default stores.

``require_peer`` skips a test when a peer is missing on a developer's machine, and fails it
in CI (``CI=true``), where every peer is mandatory.

This module also builds archives directly in Python (``SyntheticImage``,
``write_docker_archive``, ``write_oci_layout``) for tests that need no peer and for the store
benchmark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

#: How long a single peer or aiopod command may run before the test fails.
COMMAND_TIMEOUT = 240.0

#: The Debian packages that provide each peer (for skip messages).
PEER_PACKAGES: Mapping[str, str] = {
    "podman": "podman",
    "buildah": "buildah",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "docker": "docker.io",
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "busybox": "busybox-static",
    "openssl": "openssl",
}

#: A fixed mtime (2000-01-01T00:00:00Z) for deterministic tar entries.
FIXED_MTIME = 946684800

Arg = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# Peers: presence, running commands


def in_ci() -> bool:
    """True when running in CI, where a missing peer is a failure, not a skip."""
    return os.environ.get("CI") == "true"


def require_peer(name: str) -> str:
    """Return the path of peer binary ``name``; skip (locally) or fail (CI) when missing."""
    path = shutil.which(name)
    if path is None:
        package = PEER_PACKAGES.get(name, name)
        reason = f"peer {name!r} is not installed (apt-get install -y {package})"
        if in_ci():
            pytest.fail(f"{reason}; every peer is required when CI=true", pytrace=False)
        pytest.skip(reason)
    return path


class CommandFailed(AssertionError):
    """A command that had to succeed exited non-zero."""


def _describe(proc: subprocess.CompletedProcess[str]) -> str:
    args = proc.args if isinstance(proc.args, str) else " ".join(map(str, proc.args))
    return (
        f"command exited {proc.returncode}: {args}\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )


#: Failures of a peer that have nothing to do with what it was asked: runc's copy of its
#: own binary into a sealed memfd (which buildah's chroot isolation uses for RUN) fails
#: now and then with EBUSY while other processes run (seen once in about 30 CI runs).
TRANSIENT_PEER_FAILURES = ("sealing memfd copy: Device or resource busy",)
TRANSIENT_RETRIES = 2


def run(
    cmd: Sequence[Arg],
    *,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Arg | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and capture its output as text; with ``check``, a failure fails the test.

    A peer's failure that is known to be transient (:data:`TRANSIENT_PEER_FAILURES`) is
    retried, at most :data:`TRANSIENT_RETRIES` times."""
    for _ in range(TRANSIENT_RETRIES + 1):
        proc = subprocess.run(
            [os.fspath(c) for c in cmd],
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            stdin=subprocess.DEVNULL if input is None else None,
        )
        if proc.returncode == 0 or not any(t in proc.stderr for t in TRANSIENT_PEER_FAILURES):
            break
    if check and proc.returncode != 0:
        raise CommandFailed(_describe(proc))
    return proc


#: The busybox image tests import from ``busybox_rootfs_tar`` and build on.
BUSYBOX_IMAGE = "localhost/bb:latest"


def aiopod_env() -> dict[str, str]:
    """The environment for an aiopod subprocess: this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env.pop("AIOPOD_ROOT", None)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + old if old else "")
    # Without byte-code caching every CLI call recompiles the package (about 0.2 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def aiopod(
    *args: Arg,
    root: Arg,
    input: str | None = None,
    check: bool = False,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aiopod --root ROOT ARGS...``; by default the caller checks the result."""
    cmd: list[Arg] = [sys.executable, "-m", "aiopod", "--root", root, *args]
    return run(cmd, check=check, input=input, env=aiopod_env(), timeout=timeout)


def aiopod_ok(*args: Arg, root: Arg) -> subprocess.CompletedProcess[str]:
    """Run aiopod and fail the test (showing its output) unless it exits 0."""
    return aiopod(*args, root=root, check=True)


def aiopod_images(root: Arg) -> dict[str, list[str]]:
    """``aiopod images -a --format json`` as {image ID: sorted names}."""
    out = aiopod_ok("images", "-a", "--format", "json", root=root).stdout
    return images_json_by_id(json.loads(out))


def aiopod_inspect(root: Arg, *refs: str) -> list[dict[str, Any]]:
    out = aiopod_ok("image", "inspect", *refs, root=root).stdout
    data = json.loads(out)
    assert isinstance(data, list), data
    return data


def images_json_by_id(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Fold podman-style ``images --format json`` rows into {ID: sorted unique names}."""
    result: dict[str, set[str]] = {}
    for row in rows:
        names = result.setdefault(strip_sha256(row["Id"]), set())
        names.update(row.get("Names") or [])
    return {image_id: sorted(names) for image_id, names in result.items()}


def strip_sha256(value: str) -> str:
    return value.removeprefix("sha256:")


def loaded_names(stdout: str) -> list[str]:
    """The names from ``Loaded image: NAME`` lines (podman's load output), in order."""
    prefix = "Loaded image: "
    return [line[len(prefix) :].strip() for line in stdout.splitlines() if line.startswith(prefix)]


def processes_mentioning(*markers: str) -> list[int]:
    """PIDs (other than this one) whose command line (NUL-separated arguments) contains
    one of *markers*."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if any(marker.encode() in cmdline for marker in markers):
            found.append(int(entry))
    return found


# --------------------------------------------------------------------------------------------
# podman / buildah / skopeo / umoci on isolated roots


@dataclasses.dataclass
class Podman:
    """podman (and buildah, skopeo) on one private vfs store under ``base``.

    podman limits the run root to 50 characters, so it lives in a short directory of its own
    under /tmp; ``cleanup`` removes it.
    """

    base: Path
    runroot: Path
    events_backend: str = "none"
    """podman's ``--events-backend``: ``file`` keeps its event log under the private tmpdir."""

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def tmpdir(self) -> Path:
        return self.base / "tmp"

    @classmethod
    def create(
        cls, base: Path, template: Path | None = None, *, events_backend: str = "none"
    ) -> Podman:
        """A store at *base*: empty, or a copy of the c/storage root *template*."""
        require_peer("podman")
        runroot = Path(tempfile.mkdtemp(prefix="aiopod-rr-", dir="/tmp"))
        self = cls(base, runroot, events_backend)
        if template is not None:
            base.mkdir(parents=True, exist_ok=True)
            run(["cp", "-a", "--reflink=auto", template, self.root])
        for d in (self.root, self.tmpdir):
            d.mkdir(parents=True, exist_ok=True)
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.root}"\nrunroot = "{self.runroot}"\n'
        )
        return self

    def cleanup(self) -> None:
        unmount_under(self.runroot)
        shutil.rmtree(self.runroot, ignore_errors=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CONTAINERS_STORAGE_CONF"] = str(self.base / "storage.conf")
        env["TMPDIR"] = str(self.tmpdir)
        return env

    def storage_args(self) -> list[str]:
        return ["--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs"]

    def __call__(
        self, *args: Arg, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd: list[Arg] = [
            "podman",
            *self.storage_args(),
            "--tmpdir",
            str(self.tmpdir),
            "--events-backend",
            self.events_backend,
            "--cgroup-manager",
            "cgroupfs",
            *args,
        ]
        return run(cmd, check=check, input=input, env=self.env())

    def buildah(self, *args: Arg, check: bool = True) -> subprocess.CompletedProcess[str]:
        require_peer("buildah")
        cmd: list[Arg] = ["buildah", *self.storage_args(), *args]
        return run(cmd, check=check, env=self.env())

    def build(self, context: Path, dockerfile: Path, tag: str) -> str:
        """``buildah bud`` reproducibly (chroot isolation, ``--timestamp 0``); return the ID."""
        self.buildah(
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--timestamp",
            "0",
            "--pull=never",
            "-q",
            "-f",
            dockerfile,
            "-t",
            tag,
            context,
        )
        return self.image_id(tag)

    def skopeo(self, *args: Arg) -> subprocess.CompletedProcess[str]:
        """skopeo with this store's environment (``--insecure-policy``)."""
        require_peer("skopeo")
        return run(["skopeo", "--insecure-policy", *args], env=self.env())

    def containers(self) -> dict[str, str]:
        """{container ID: name} of every container, libpod's and external ones."""
        out = self("ps", "-a", "--external", "--format", "json").stdout
        return {row["Id"]: row["Names"][0] for row in json.loads(out)}

    def storage_ref(self, name: str) -> str:
        """A ``containers-storage:`` reference to ``name`` in this store, for skopeo."""
        return f"containers-storage:[vfs@{self.root}+{self.runroot}]{name}"

    def images(self) -> dict[str, list[str]]:
        """``podman images -a --format json`` as {image ID: sorted names}."""
        return images_json_by_id(json.loads(self("images", "-a", "--format", "json").stdout))

    def inspect(self, ref: str) -> dict[str, Any]:
        data = json.loads(self("image", "inspect", ref).stdout)
        assert isinstance(data, list) and len(data) == 1, data
        result: dict[str, Any] = data[0]
        return result

    def image_id(self, ref: str) -> str:
        return strip_sha256(self("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip())


@dataclasses.dataclass
class Tool:
    """A peer CLI (skopeo, umoci) run with a private ``TMPDIR`` and storage configuration."""

    name: str
    base: Path

    def __call__(
        self, *args: Arg, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        require_peer(self.name)
        self.base.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["TMPDIR"] = str(self.base)
        # Any containers-storage: reference must name its store explicitly ([vfs@R+RR]).
        env["CONTAINERS_STORAGE_CONF"] = str(self.base / "no-default-storage.conf")
        (self.base / "no-default-storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.base / "unused-root"}"\n'
            f'runroot = "{self.base / "unused-run"}"\n'
        )
        return run([self.name, *args], check=check, input=input, env=env)


DOCKERFILE_APP = """\
FROM localhost/bb:latest
ENV APP_MODE=test PATH=/bin
LABEL org.example.role=app
RUN mkdir -p /app/empty /victim/dir /victim/gone \\
 && echo hello > /app/hello.txt && ln -s hello.txt /app/link && ln /app/hello.txt /app/hard \\
 && echo old > /victim/dir/old.txt && echo keep > /victim/dir/keep.txt \\
 && echo gone > /victim/gone/file && chown -R 1000:1000 /app/empty && chmod 700 /app/empty
RUN rm -rf /victim/dir/old.txt /victim/gone && echo two > /app/two.txt && chmod 600 /app/two.txt \\
 && echo 'echo suid' > /app/suid.sh && chmod 4755 /app/suid.sh
WORKDIR /app
USER app
EXPOSE 8080/tcp
CMD ["sh", "-c", "cat /app/hello.txt"]
"""

DOCKERFILE_OTHER = """\
FROM localhost/bb:latest
COPY data.txt /data/data.txt
LABEL org.example.role=other
"""


@dataclasses.dataclass
class PeerImages:
    """Images made by podman/buildah in a session store, and their podman image IDs.

    Names: ``localhost/bb:latest`` (``podman import`` of the busybox rootfs),
    ``localhost/app:1`` and ``localhost/app:2`` (one image, built with RUN/ENV/LABEL/USER...),
    ``localhost/other:latest`` (COPY on the same base).
    """

    podman: Podman
    ids: dict[str, str]
    workdir: Path
    _archives: dict[tuple[str, tuple[str, ...]], Path] = dataclasses.field(default_factory=dict)

    def archive(self, fmt: str, *names: str) -> Path:
        """``podman save`` of ``names`` in ``fmt`` (cached; ``-m`` for several names)."""
        key = (fmt, names)
        if key not in self._archives:
            suffix = "" if fmt == "oci-dir" else ".tar"
            dest = self.workdir / f"podman-{fmt}-{len(self._archives)}{suffix}"
            multi = ["-m"] if len(names) > 1 else []
            self.podman("save", *multi, "--format", fmt, "-o", dest, *names)
            self._archives[key] = dest
        return self._archives[key]

    def storage_ref(self, name: str) -> str:
        return self.podman.storage_ref(name)


# --------------------------------------------------------------------------------------------
# Long-running services: dockerd and docker-registry


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _mount_points_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                points.append(mnt)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(path: Path) -> None:
    """Unmount everything mounted at or below ``path`` (deepest first)."""
    for mnt in _mount_points_under(path):
        if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True)


@dataclasses.dataclass
class Service:
    """A background process in its own process group, stopped by ``stop``."""

    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, cmd: Sequence[Arg], log: Path, env: Mapping[str, str] | None = None) -> Service:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [os.fspath(c) for c in cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
            )
        return cls(proc, log)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the leader, give it ``grace`` seconds, then SIGKILL the whole group."""
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def wait_until(predicate: Any, timeout: float, what: str, service: Service | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if service is not None and service.proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = service.log_tail() if service is not None else ""
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s\n{tail}")


@dataclasses.dataclass
class Docker:
    """The docker client bound to one engine (``host`` is ``unix:///path``)."""

    host: str

    def __call__(self, *args: Arg, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("DOCKER_CONTEXT", None)
        env["DOCKER_CONFIG"] = str(Path(tempfile.gettempdir()) / "aiopod-test-docker-config")
        return run(["docker", "-H", self.host, *args], check=check, env=env)

    def ready(self) -> bool:
        return self("info", "--format", "{{.ID}}", check=False).returncode == 0

    def image_id(self, ref: str) -> str:
        return strip_sha256(self("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip())

    def repo_tags(self, ref: str) -> list[str]:
        out = self("image", "inspect", "--format", "{{json .RepoTags}}", ref).stdout
        return sorted(json.loads(out) or [])

    def forget(self, *image_ids: str) -> None:
        """Remove these images (by ID, with all their tags) if the engine has them."""
        for image_id in image_ids:
            self("image", "rm", "-f", image_id, check=False)


@contextlib.contextmanager
def private_dockerd() -> Iterator[Docker]:
    """Start dockerd on a private socket, data root and exec root; stop and clean up after."""
    require_peer("dockerd")
    require_peer("docker")
    base = Path(tempfile.mkdtemp(prefix="aiopod-dockerd-"))
    sock = base / "docker.sock"
    cmd: list[Arg] = [
        "dockerd",
        "--data-root",
        base / "data",
        "--exec-root",
        base / "exec",
        "-H",
        f"unix://{sock}",
        "--pidfile",
        base / "docker.pid",
        "--storage-driver",
        "vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ]
    service = Service.start(cmd, base / "dockerd.log")
    docker = Docker(f"unix://{sock}")
    try:
        wait_until(docker.ready, 90, "dockerd", service)
        yield docker
    finally:
        service.stop()
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def registry_ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def private_registry(log: Path | None = None) -> Iterator[str]:
    """Start ``docker-registry serve`` on 127.0.0.1:<free port>; yield ``127.0.0.1:<port>``.

    Its output, one access log line per request, goes to *log* (default: a file in its
    own directory, removed with it)."""
    require_peer("docker-registry")
    base = Path(tempfile.mkdtemp(prefix="aiopod-registry-"))
    port = free_port()
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {base / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: aiopod-test-secret\n"
    )
    service = Service.start(["docker-registry", "serve", config], log or base / "registry.log")
    address = f"127.0.0.1:{port}"
    try:
        wait_until(lambda: registry_ready(address), 30, "docker-registry", service)
        yield address
    finally:
        service.stop(grace=10)
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Deterministic tar building


def _tarinfo(name: str, type_: bytes, mode: int, *, size: int = 0, linkname: str = "") -> Any:
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.size = size
    ti.linkname = linkname
    ti.mtime = FIXED_MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


@dataclasses.dataclass(frozen=True)
class Entry:
    """One entry of a synthetic layer: a file (``data``), directory, or symlink (``link``)."""

    path: str
    data: bytes | None = None
    mode: int = 0o644
    kind: str = "file"  # "file" | "dir" | "symlink" | "hardlink"
    link: str = ""
    uid: int = 0
    gid: int = 0


def file(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, data, mode, "file", uid=uid, gid=gid)


def directory(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return Entry(path, None, mode, "dir", uid=uid, gid=gid)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, None, 0o777, "symlink", link=target)


def hardlink(path: str, target: str) -> Entry:
    return Entry(path, None, 0o644, "hardlink", link=target)


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """A deterministic tar (PAX format, fixed mtimes, numeric ids) of ``entries`` in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            content = None
            if e.kind == "dir":
                ti = _tarinfo(e.path.rstrip("/") + "/", tarfile.DIRTYPE, e.mode)
            elif e.kind == "symlink":
                ti = _tarinfo(e.path, tarfile.SYMTYPE, e.mode, linkname=e.link)
            elif e.kind == "hardlink":
                ti = _tarinfo(e.path, tarfile.LNKTYPE, e.mode, linkname=e.link)
            else:
                data = e.data or b""
                ti = _tarinfo(e.path, tarfile.REGTYPE, e.mode, size=len(data))
                content = io.BytesIO(data)
            ti.uid, ti.gid = e.uid, e.gid
            tf.addfile(ti, content)
    return buf.getvalue()


BUSYBOX_APPLETS = (
    "cat", "chmod", "chown", "cp", "echo", "env", "false", "find", "grep", "head", "id",
    "ln", "ls", "mkdir", "mv", "printf", "rm", "sed", "sh", "sha256sum", "sleep", "stat",
    "tail", "tar", "test", "touch", "true", "wc",
)  # fmt: skip

PASSWD = (
    b"root:x:0:0:root:/root:/bin/sh\n"
    b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    b"app:x:1000:1000:app:/app:/bin/sh\n"
)
GROUP = b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"


def busybox_rootfs_entries(busybox: Path) -> list[Entry]:
    entries = [
        directory("bin"),
        file("bin/busybox", busybox.read_bytes(), 0o755),
        *(symlink(f"bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS),
        directory("etc"),
        file("etc/group", GROUP),
        file("etc/passwd", PASSWD),
        directory("root", 0o700),
        directory("tmp", 0o1777),
    ]
    return entries


def write_busybox_rootfs(dest: Path, busybox: Path = Path("/bin/busybox")) -> Path:
    """A deterministic rootfs tar: busybox, applet symlinks, /etc/passwd, /etc/group."""
    dest.write_bytes(tar_bytes(busybox_rootfs_entries(busybox)))
    return dest


# --------------------------------------------------------------------------------------------
# Synthetic images and archives (no peer needed)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclasses.dataclass
class SyntheticImage:
    """An image built in memory: uncompressed layer tars plus a config blob."""

    names: list[str]
    layers: list[bytes]
    config: bytes

    @property
    def id(self) -> str:
        return sha256_hex(self.config)

    @property
    def diff_ids(self) -> list[str]:
        return [sha256_hex(layer) for layer in self.layers]


def synthetic_image(
    names: Sequence[str],
    layers: Sequence[Sequence[Entry] | bytes],
    *,
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    labels: Mapping[str, str] | None = None,
    cmd: Sequence[str] = ("sh",),
    created: str = "2000-01-01T00:00:00Z",
    diff_ids: Sequence[str] | None = None,
) -> SyntheticImage:
    """Build an image from entry lists (or ready tar bytes); ``diff_ids`` may be forced."""
    blobs = [layer if isinstance(layer, bytes) else tar_bytes(layer) for layer in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Env": list(env), "Cmd": list(cmd), "Labels": dict(labels or {})},
        "rootfs": {
            "type": "layers",
            "diff_ids": list(diff_ids)
            if diff_ids is not None
            else [f"sha256:{sha256_hex(b)}" for b in blobs],
        },
        "history": [
            {"created": created, "created_by": f"aiopod-test layer {i}"} for i in range(len(blobs))
        ],
    }
    return SyntheticImage(list(names), blobs, canonical_json(config))


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o444) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = 0
    tf.addfile(ti, io.BytesIO(data))


def docker_archive_members(images: Sequence[SyntheticImage]) -> dict[str, bytes]:
    """The members of a docker-archive (``docker save`` layout, without the v1 tree)."""
    members: dict[str, bytes] = {}
    manifest = []
    for image in images:
        layer_names = []
        for layer in image.layers:
            name = f"{sha256_hex(layer)}.tar"
            members[name] = layer
            layer_names.append(name)
        members[f"{image.id}.json"] = image.config
        manifest.append(
            {"Config": f"{image.id}.json", "RepoTags": image.names, "Layers": layer_names}
        )
    members["manifest.json"] = json.dumps(manifest).encode()
    return members


def write_tar(path: Path, members: Mapping[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            _add_bytes(tf, name, data)
    return path


def write_docker_archive(path: Path, images: Sequence[SyntheticImage]) -> Path:
    return write_tar(path, docker_archive_members(images))


def oci_layout_members(
    images: Sequence[SyntheticImage], *, compress: bool = True
) -> dict[str, bytes]:
    """The files of an OCI image layout holding ``images`` (one descriptor per name)."""
    blobs: dict[str, bytes] = {}
    descriptors = []
    layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    for image in images:
        layer_descs = []
        for layer in image.layers:
            blob = gzip.compress(layer, compresslevel=1, mtime=0) if compress else layer
            digest = sha256_hex(blob)
            blobs[digest] = blob
            layer_descs.append(
                {"mediaType": layer_type, "digest": f"sha256:{digest}", "size": len(blob)}
            )
        blobs[image.id] = image.config
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": f"sha256:{image.id}",
                    "size": len(image.config),
                },
                "layers": layer_descs,
            }
        )
        blobs[sha256_hex(manifest)] = manifest
        for name in image.names:
            descriptors.append(
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{sha256_hex(manifest)}",
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": name},
                }
            )
    members = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": canonical_json({"schemaVersion": 2, "manifests": descriptors}),
    }
    members.update({f"blobs/sha256/{digest}": data for digest, data in blobs.items()})
    return members


def write_oci_layout(
    path: Path, images: Sequence[SyntheticImage], *, compress: bool = True
) -> Path:
    for name, data in oci_layout_members(images, compress=compress).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path


def write_oci_archive(
    path: Path, images: Sequence[SyntheticImage], *, compress: bool = True
) -> Path:
    return write_tar(path, oci_layout_members(images, compress=compress))


# --------------------------------------------------------------------------------------------
# Reading what tools wrote


def read_oci_layout(path: Path) -> dict[str, dict[str, Any]]:
    """{ref.name: {"manifest": ..., "config_digest": hex, "manifest_digest": hex}}."""
    index = json.loads((path / "index.json").read_text())
    result = {}
    for desc in index["manifests"]:
        name = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if name is None:
            continue
        digest = strip_sha256(desc["digest"])
        manifest = json.loads((path / "blobs" / "sha256" / digest).read_bytes())
        result[name] = {
            "manifest": manifest,
            "manifest_digest": digest,
            "config_digest": strip_sha256(manifest["config"]["digest"]),
        }
    return result


def tree_snapshot(root: Path, *, with_mtime: bool = True) -> dict[str, tuple[Any, ...]]:
    """Every path below ``root``: (type, permission bits, uid, gid, size/target/sha256, mtime).

    Used to compare root file systems unpacked by different tools.
    """
    paths = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root):
        paths.extend(os.path.join(dirpath, name) for name in [*dirnames, *filenames])
    result: dict[str, tuple[Any, ...]] = {}
    for full in paths:
        rel = os.path.relpath(full, root)
        st = os.lstat(full)
        mode = st.st_mode
        if os.path.islink(full):
            detail: Any = ("symlink", os.readlink(full))
        elif os.path.isdir(full):
            detail = ("dir",)
        elif os.path.isfile(full):
            with open(full, "rb") as f:
                detail = ("file", st.st_size, hashlib.file_digest(f, "sha256").hexdigest())
        else:
            detail = ("other", mode >> 12, st.st_rdev)
        mtime = int(st.st_mtime) if with_mtime else None
        result[rel] = (*detail, oct(mode & 0o7777), st.st_uid, st.st_gid, mtime)
    return result


def diff_trees(a: Mapping[str, Any], b: Mapping[str, Any], limit: int = 40) -> str:
    lines = []
    for path in sorted(set(a) | set(b)):
        if a.get(path) != b.get(path):
            lines.append(f"{path}: {a.get(path)} != {b.get(path)}")
    return "\n".join(lines[:limit]) + ("\n…" if len(lines) > limit else "")


def store_snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every file and link under an aiopod root with its content hash (for "unchanged").

    Lock files (``*.lock``) are coordination state, not content, and are left out.
    """
    result: dict[str, tuple[str, str]] = {}
    if not root.exists():
        return result
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            if name.endswith(".lock"):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                result[rel] = ("symlink", os.readlink(full))
            elif os.path.isdir(full):
                result[rel] = ("dir", "")
            else:
                with open(full, "rb") as f:
                    result[rel] = ("file", hashlib.file_digest(f, "sha256").hexdigest())
    return result
