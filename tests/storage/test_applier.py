"""The layer applier against hostile layers (hostile-input.md, table L) and real ones.

Every hostile case applies its layer into ``<tmp>/jail/cell/root`` and then checks the
whole temporary directory outside that root: the sentinel files under ``<tmp>/host`` keep
their content, mode, mtime and link count, and nothing new appears anywhere outside the
root.  A layer that escaped with ``..`` from the root would land in ``<tmp>`` (three levels
up), and an absolute symlink to ``<tmp>/host`` that were followed on the host would write
beside the sentinels, so both kinds of escape are caught by the same snapshot.

Symlink targets and member names point into that temporary directory, never at real
system paths, and as root every layer is applied in a forked child that sees the rest of
the machine read-only (a private mount namespace): a broken applier can only damage the
test's own temporary directory.
"""

from __future__ import annotations

import bz2
import ctypes
import errno
import gzip
import hashlib
import io
import lzma
import os
import pickle
import shutil
import stat
import tarfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings, strategies as st

from aiopod.errors import LimitExceeded, UnsafeLayer
from aiopod.storage.applier import ApplyResult, LayerLimits, apply_layer
from aiopod.storage.compression import detect_compression, open_decompressed

IS_ROOT = os.geteuid() == 0
T0 = 1_600_000_000  # mtime of every entry unless a test says otherwise

# -- building layers ------------------------------------------------------------------------


Entry = tuple[tarfile.TarInfo, bytes | None]


def reg(
    name: str, data: bytes = b"", *, mode: int = 0o644, mtime: float = T0, **attrs: object
) -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def dir_(name: str, *, mode: int = 0o755, mtime: float = T0, **attrs: object) -> Entry:
    info, _ = reg(name, b"", mode=mode, mtime=mtime, **attrs)
    info.type = tarfile.DIRTYPE
    return info, None


def symlink(name: str, target: str, *, mtime: float = T0) -> Entry:
    info, _ = reg(name, mode=0o777, mtime=mtime)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def hardlink(name: str, target: str, *, mode: int = 0o644, mtime: float = T0) -> Entry:
    info, _ = reg(name, mode=mode, mtime=mtime)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def node(name: str, kind: bytes, major: int = 0, minor: int = 0, *, mode: int = 0o600) -> Entry:
    info, _ = reg(name, mode=mode)
    info.type, info.devmajor, info.devminor = kind, major, minor
    return info, None


def whiteout(name: str) -> Entry:
    return reg(name, mode=0)


def layer(*entries: Entry, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A layer tar in memory, written by tarfile (the write side is trusted)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def header(
    name: str,
    *,
    size: int = 0,
    typeflag: bytes = b"0",
    mode: int = 0o644,
    linkname: str = "",
    size_field: bytes | None = None,
    checksum: int | None = None,
) -> bytes:
    """A hand-made ustar header, for what tarfile refuses to write."""
    block = bytearray(512)
    block[0:100] = name.encode().ljust(100, b"\0")
    block[100:108] = b"%07o\0" % mode
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = size_field if size_field is not None else b"%011o\0" % size
    block[136:148] = b"%011o\0" % T0
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157:257] = linkname.encode().ljust(100, b"\0")
    block[257:265] = b"ustar\x0000"
    if checksum is None:
        checksum = sum(block)
    block[148:156] = b"%06o\0 " % checksum
    return bytes(block)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def pax(records: bytes, typeflag: bytes = b"x") -> bytes:
    return header("PaxHeader", size=len(records), typeflag=typeflag) + pad(records)


def pax_record(key: str, value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    body = b" " + key.encode() + b"=" + raw + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


END = b"\0" * 1024


# -- the sandbox ------------------------------------------------------------------------------

_T = TypeVar("_T")
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def _read_only_world(writable: Path) -> None:
    """In this (forked) process only: everything but ``writable`` becomes read-only."""
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")

    check(libc.unshare(_CLONE_NEWNS), "unshare")
    check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
    path = os.fsencode(writable)
    check(libc.mount(path, path, None, _MS_BIND | _MS_REC, None), "bind the sandbox")
    check(libc.mount(None, b"/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None), "remount /")


def confined(writable: Path, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` in a child process that can only write below ``writable`` (as root).

    Its result or exception comes back pickled.  Without root nothing system-wide is
    writable anyway, so ``fn`` runs here.
    """
    if not IS_ROOT:
        return fn()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        os.close(read_end)
        try:
            try:
                _read_only_world(writable)
            except OSError as exc:
                payload: tuple[str, object] = ("no-jail", str(exc))
            else:
                try:
                    payload = ("ok", fn())
                except BaseException as exc:
                    payload = ("raised", exc)
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(payload, pipe)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "no-jail":
        pytest.skip(f"cannot confine a hostile layer test here: {value}")
    if kind == "raised":
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[no-any-return]


Snap = tuple[int, int, int, int, str, str]


@dataclass
class Sandbox:
    tmp: Path
    root: Path
    host: Path
    before: dict[str, Snap]

    def apply(self, data: bytes, **kwargs: Any) -> ApplyResult:
        return confined(self.tmp, lambda: apply_layer(self.root, io.BytesIO(data), **kwargs))

    def reject(self, data: bytes, error: type[Exception] = UnsafeLayer, **kwargs: Any) -> str:
        with pytest.raises(error) as caught:
            self.apply(data, **kwargs)
        return str(caught.value)

    def assert_host_unchanged(self) -> None:
        after = snapshot(self.tmp, skip=self.root)
        assert after == self.before
        assert self.root.is_dir() and not self.root.is_symlink()

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")


def snapshot(top: Path, skip: Path) -> dict[str, Snap]:
    """Type, mode, mtime, link count, content hash and link target of everything."""
    out: dict[str, Snap] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path == skip:
                continue
            st = path.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            target = os.readlink(path) if path.is_symlink() else ""
            out[str(path.relative_to(top))] = (
                st.st_mode,
                st.st_mtime_ns,
                st.st_nlink,
                st.st_ino,
                digest,
                target,
            )
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
    return out


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    sentinel = host / "sentinel"
    sentinel.write_bytes(b"host secret\n")
    (host / "dir" / "passwd").write_bytes(b"root:x:0:0:host\n")
    (host / "link").symlink_to("sentinel")
    for path, mode in ((sentinel, 0o640), (host / "dir" / "passwd", 0o600), (host / "dir", 0o750)):
        os.chmod(path, mode)
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    root = tmp_path / "jail" / "cell" / "root"
    root.mkdir(parents=True)
    sandbox = Sandbox(tmp_path, root, host, {})
    sandbox.before = snapshot(tmp_path, skip=root)
    yield sandbox
    # Let pytest clean up even when a test left 0000 directories behind.
    for dirpath, dirnames, _ in os.walk(tmp_path):
        for d in dirnames:
            p = Path(dirpath, d)
            if not p.is_symlink():
                p.chmod(0o700)


# -- table L ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../evil", "a/../../evil", "./../../../evil", "/../evil"])
def test_L1_member_climbing_out_with_dotdot_rejects_the_layer(box: Sandbox, name: str) -> None:
    message = box.reject(layer(reg("ok", b"1"), reg(name, b"pwned")))
    assert repr(name) in message
    box.assert_host_unchanged()
    assert not (box.tmp / "evil").exists()
    assert not (box.tmp / "jail" / "evil").exists()


def test_L1_dotdot_that_stays_inside_the_root_is_normalised(box: Sandbox) -> None:
    box.apply(layer(reg("a/../b", b"1")))
    assert box.path("b").read_bytes() == b"1"
    box.assert_host_unchanged()


def test_L2_absolute_member_name_lands_under_the_root(box: Sandbox) -> None:
    host_sentinel = str(box.host / "sentinel")  # stands for /etc/...: an absolute host path
    box.apply(layer(reg(host_sentinel, b"overwritten?"), reg(f"{box.host}/evil", b"x")))
    assert box.path(host_sentinel).read_bytes() == b"overwritten?"
    assert box.path(f"{box.host}/evil").read_bytes() == b"x"
    box.assert_host_unchanged()


def test_L3_symlink_then_member_through_it_stays_in_root(box: Sandbox) -> None:
    box.apply(
        layer(
            symlink("x", str(box.host)),  # stands for x -> /etc
            reg("x/sentinel", b"pwned"),
            symlink("d", f"{box.host}/dir"),
            reg("d/passwd", b"pwned"),
        )
    )
    assert box.path(f"{box.host}/sentinel").read_bytes() == b"pwned"
    assert box.path(f"{box.host}/dir/passwd").read_bytes() == b"pwned"
    assert os.readlink(box.path("x")) == str(box.host)  # the link itself is kept as is
    box.assert_host_unchanged()


@pytest.mark.parametrize("target", ["../../../host", "../../..", "a/../../../../host"])
def test_L4_relative_symlink_climbing_out_is_clamped_at_the_root(box: Sandbox, target: str) -> None:
    box.apply(layer(symlink("x", target), reg("x/pwned", b"p")))
    clamped = "host" if target.endswith("host") else ""
    assert box.path(f"{clamped}/pwned").read_bytes() == b"p"
    assert os.readlink(box.path("x")) == target
    box.assert_host_unchanged()


def test_L5_symlink_from_a_lower_layer_is_resolved_in_the_root(box: Sandbox) -> None:
    box.apply(layer(symlink("d", str(box.host))))
    box.apply(layer(reg("d/sentinel", b"pwned"), reg("d/dir/passwd", b"pwned")))
    assert box.path(f"{box.host}/sentinel").read_bytes() == b"pwned"
    assert box.path(f"{box.host}/dir/passwd").read_bytes() == b"pwned"
    box.assert_host_unchanged()


@pytest.mark.parametrize("name", [".", "./", "/", ""])
def test_L6_root_entry_as_a_symlink_is_rejected_and_root_stays_a_directory(
    box: Sandbox, name: str
) -> None:
    info, _ = symlink("placeholder", str(box.host))
    info.name = name
    box.reject(layer((info, None)))
    box.reject(layer(reg(name, b"file replacing the root")))
    box.reject(layer(reg("f", b""), hardlink(name or ".", "f")))
    box.apply(layer(reg("later", b"layer")))
    assert box.path("later").read_bytes() == b"layer"
    box.assert_host_unchanged()


def test_L6_root_entry_as_a_directory_only_changes_its_attributes(box: Sandbox) -> None:
    box.apply(layer(reg("keep", b"1")))
    box.apply(layer(dir_("./", mode=0o711, mtime=T0 + 5)))
    st = box.root.stat()
    assert stat.S_IMODE(st.st_mode) == 0o711
    assert st.st_mtime == T0 + 5
    assert box.path("keep").exists()
    box.assert_host_unchanged()


@pytest.mark.parametrize("target", ["../../../etc/shadow", "../../host/sentinel", "../x"])
def test_L7_hardlink_target_climbing_out_is_rejected(box: Sandbox, target: str) -> None:
    message = box.reject(layer(hardlink("h", target)))
    assert "'h'" in message
    assert not box.path("h").exists()
    box.assert_host_unchanged()


def test_L7_hardlink_to_a_target_missing_in_the_root_is_rejected(box: Sandbox) -> None:
    box.reject(layer(hardlink("h", str(box.host / "sentinel"))))
    box.assert_host_unchanged()


def test_L8_absolute_hardlink_name_is_linked_inside_the_root(box: Sandbox) -> None:
    box.apply(layer(reg("usr/bin/perl", b"#!perl")))
    box.apply(layer(hardlink("usr/bin/perl5.36", "/usr/bin/perl")))
    a, b = box.path("usr/bin/perl").stat(), box.path("usr/bin/perl5.36").stat()
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    box.assert_host_unchanged()


def test_L9_hardlink_through_a_symlinked_directory_resolves_in_the_root(box: Sandbox) -> None:
    image_passwd = f"{box.host}/dir/passwd"  # the host path, made inside the root too
    box.apply(layer(reg(image_passwd, b"root:x:0:0:image\n"), symlink("s", f"{box.host}/dir")))
    box.apply(layer(hardlink("h", "s/passwd")))
    assert box.path("h").stat().st_ino == box.path(image_passwd).stat().st_ino
    # A target that exists on the host but not in the root is an error, never a host link.
    box.apply(layer(symlink("hostdir", str(box.host))))
    message = box.reject(layer(hardlink("h2", "hostdir/sentinel")))
    assert "does not exist in the root" in message
    box.assert_host_unchanged()


def test_L10_metadata_of_a_hardlink_to_a_symlink_never_reaches_the_host(box: Sandbox) -> None:
    sentinel = str(box.host / "sentinel")
    box.apply(
        layer(
            symlink("s", sentinel),
            hardlink("h", "s", mode=0o777, mtime=T0 + 99),
            hardlink("h", "s", mode=0o777, mtime=T0 + 99),
        )
    )
    assert os.readlink(box.path("h")) == sentinel  # a second name of the symlink inode
    assert box.path("h").lstat().st_ino == box.path("s").lstat().st_ino
    box.apply(layer(dir_("h", mode=0o777, mtime=T0 + 99)))
    assert box.path("h").is_dir() and not box.path("h").is_symlink()
    box.assert_host_unchanged()


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_L11_symlink_replaced_by_a_file_or_directory_is_a_new_inode(
    box: Sandbox, kind: str
) -> None:
    sentinel = str(box.host / "sentinel")
    box.apply(layer(symlink("p", sentinel)))
    entry = reg("p", b"new", mode=0o777) if kind == "file" else dir_("p", mode=0o777)
    box.apply(layer(entry))
    st = box.path("p").lstat()
    assert stat.S_IMODE(st.st_mode) == 0o777
    assert stat.S_ISREG(st.st_mode) if kind == "file" else stat.S_ISDIR(st.st_mode)
    box.assert_host_unchanged()


def test_L12_devices_are_skipped_with_a_warning_when_not_allowed(box: Sandbox) -> None:
    result = box.apply(
        layer(
            node("dev/sda", tarfile.BLKTYPE, 8, 0),
            node("dev/mem", tarfile.CHRTYPE, 1, 1),
            reg("dev/ok", b"1"),
        ),
        allow_special_files=False,
    )
    assert not box.path("dev/sda").exists() and not box.path("dev/mem").exists()
    assert box.path("dev/ok").exists()
    assert any("dev/sda" in w for w in result.warnings)
    assert any("dev/mem" in w for w in result.warnings)
    box.assert_host_unchanged()


@pytest.mark.skipif(not IS_ROOT, reason="making device nodes needs root")
def test_L12_devices_are_made_when_allowed(box: Sandbox) -> None:
    try:
        box.apply(
            layer(node("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666)), allow_special_files=True
        )
    except UnsafeLayer:
        pytest.skip("mknod is not permitted here")
    st = box.path("dev/null").lstat()
    if not stat.S_ISCHR(st.st_mode):
        pytest.skip("mknod is not permitted here")
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    box.assert_host_unchanged()


def test_L13_setuid_root_binary_keeps_its_bits(box: Sandbox) -> None:
    box.apply(layer(reg("bin/sh", b"\x7fELF", mode=0o4755, uid=0, gid=0)))
    st = box.path("bin/sh").stat()
    assert stat.S_IMODE(st.st_mode) == 0o4755
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (0, 0)
    box.assert_host_unchanged()


@pytest.mark.parametrize("name", ["a/.wh...", "a/.wh..", "a/.wh.", ".wh..", ".wh..."])
def test_L14_whiteouts_of_dot_dotdot_or_nothing_are_rejected(box: Sandbox, name: str) -> None:
    box.apply(layer(reg("a/file", b"lower")))
    message = box.reject(layer(whiteout(name)))
    assert repr(name) in message
    assert box.path("a/file").read_bytes() == b"lower"
    box.assert_host_unchanged()


@pytest.mark.parametrize("target", ["../../..", "HOST"])
def test_L15_whiteouts_through_a_lower_symlink_stay_in_the_root(box: Sandbox, target: str) -> None:
    target = str(box.host) if target == "HOST" else target
    box.apply(layer(reg("sentinel", b"in root"), reg("dir/passwd", b"x"), symlink("x", target)))
    box.apply(layer(whiteout("x/.wh.sentinel"), whiteout("x/.wh.dir"), whiteout("x/.wh..wh..opq")))
    box.assert_host_unchanged()
    if target == "../../..":  # the root itself, once clamped
        assert not box.path("sentinel").exists()
        assert not box.path("dir").exists()
    assert not any(p.name.startswith(".wh.") for p in box.root.rglob("*"))


def _gzip_stream(chunks: Iterator[bytes]) -> bytes:
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    return b"".join(comp.compress(c) for c in chunks) + comp.flush()


def _zero_file_tar(size: int) -> Iterator[bytes]:
    yield header("zeros", size=size)
    block = b"\0" * (1 << 20)
    for _ in range(size // len(block)):
        yield block
    yield END


@pytest.mark.timeout(30)
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_L16_decompression_bomb_stops_at_the_size_limit(box: Sandbox, compression: str) -> None:
    size = 256 << 20  # 256 MiB of zeros; the limit below is 8 MiB
    if compression == "gzip":
        blob = _gzip_stream(_zero_file_tar(size))
    else:
        blob = zstandard.ZstdCompressor(level=1).compress(b"".join(_zero_file_tar(size)))
    assert len(blob) < size // 200
    message = box.reject(blob, LimitExceeded, limits=LayerLimits(max_bytes=8 << 20))
    assert "limit" in message
    assert sum(p.stat().st_size for p in box.root.rglob("*") if p.is_file()) <= 8 << 20
    box.assert_host_unchanged()


@pytest.mark.timeout(30)
def test_L16_gigabytes_of_trailing_padding_stop_at_the_size_limit(box: Sandbox) -> None:
    blob = _gzip_stream(iter([layer(reg("f", b"1")), *([b"\0" * (1 << 20)] * 64)]))
    box.reject(blob, LimitExceeded, limits=LayerLimits(max_bytes=8 << 20))
    box.assert_host_unchanged()


def test_L16_compression_ratio_limit(box: Sandbox) -> None:
    blob = _gzip_stream(_zero_file_tar(64 << 20))
    box.reject(
        blob,
        LimitExceeded,
        limits=LayerLimits(max_compression_ratio=100, ratio_after_bytes=16 << 20),
    )
    box.assert_host_unchanged()


def test_L17_too_many_entries_is_rejected_at_the_entry_limit(box: Sandbox) -> None:
    data = layer(*(reg(f"f{i}") for i in range(101)))
    message = box.reject(data, LimitExceeded, limits=LayerLimits(max_entries=100))
    assert "'f100'" in message
    box.apply(data, limits=LayerLimits(max_entries=101))
    box.assert_host_unchanged()


def test_L17_path_longer_than_4096_bytes_through_pax_is_rejected(box: Sandbox) -> None:
    deep = "/".join(["d" * 200] * 21)  # 4220 bytes
    box.reject(layer(reg(deep, b"x")), LimitExceeded)
    box.reject(layer(symlink("l", deep)), LimitExceeded)
    box.assert_host_unchanged()


def test_L17_path_deeper_than_the_depth_limit_is_rejected(box: Sandbox) -> None:
    limits = LayerLimits(max_path_depth=10)
    box.reject(layer(reg("/".join("a" * 11), b"x")), LimitExceeded, limits=limits)
    box.apply(layer(reg("/".join("a" * 10), b"x")), limits=limits)
    box.assert_host_unchanged()


def test_L17_symlink_loops_and_long_chains_stop_at_40_hops(box: Sandbox) -> None:
    box.reject(layer(symlink("a", "b"), symlink("b", "a"), reg("a/x")), LimitExceeded)
    chain = [symlink(f"l{i}", f"l{i + 1}") for i in range(41)]
    box.reject(layer(dir_("l41"), *chain, reg("l0/x")), LimitExceeded)
    box.apply(layer(reg("l1/x", b"40 hops")))  # l1 -> ... -> l41: exactly 40 links
    assert box.path("l41/x").read_bytes() == b"40 hops"
    box.assert_host_unchanged()


def test_L17_oversized_pax_header_is_rejected(box: Sandbox) -> None:
    data = layer(reg("f", b"x", pax_headers={"comment": "c" * 5000}))
    box.reject(data, LimitExceeded, limits=LayerLimits(max_pax_header_bytes=4096))
    box.apply(data)
    box.assert_host_unchanged()


MALFORMED = {
    "zero-length PAX record": pax(b"0 path=x\n") + header("f") + END,
    "PAX record longer than its header": pax(b"99 path=x\n") + header("f") + END,
    "PAX record without newline": pax(b"11 path=xyz") + header("f") + END,
    "PAX length with leading zero": pax(b"010 path=x\n") + header("f") + END,
    "PAX header followed by the end": pax(pax_record("path", "x")) + END,
    "negative size": header("f", size_field=b"\xff" * 12) + END,
    "negative PAX size": pax(pax_record("size", "-5")) + header("f") + END,
    "bad checksum first": header("f", checksum=1) + END,
    "bad checksum later": header("a") + header("b", checksum=1) + END,
    "truncated data": header("f", size=1000) + b"x" * 700,
    "truncated header": header("a") + header("b")[:300],
    "empty stream": b"",
    "garbage": b"this is not a tar archive at all" * 40,
    "truncated gzip": gzip.compress(layer(reg("f", os.urandom(5000))))[:-100],
    "corrupt zstd": zstandard.ZstdCompressor().compress(layer(reg("f", b"1" * 9000)))[:-20]
    + b"\x00" * 20,
    "unknown entry type": header("f", typeflag=b"Z") + END,
    "quadratic PAX hdrcharset": pax(b"1" * (256 << 10)) + header("f") + END,
    "quadratic PAX records": pax(b"2 " * (128 << 10) + b"=\n") + header("f") + END,
    "too many extended headers": pax(pax_record("a", "b")) * 20 + header("f") + END,
    "NUL in PAX path": pax(pax_record("path", b"a\0b")) + header("f") + END,
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", list(MALFORMED))
def test_L18_malformed_tar_fails_cleanly_and_quickly(box: Sandbox, case: str) -> None:
    start = time.monotonic()
    with pytest.raises(UnsafeLayer):
        box.apply(MALFORMED[case], limits=LayerLimits(max_pax_header_bytes=1 << 20))
    assert time.monotonic() - start < 5
    box.assert_host_unchanged()


@pytest.mark.timeout(20)
def test_L18_large_valid_pax_header_is_parsed_in_linear_time(box: Sandbox) -> None:
    digits = "1" * (512 << 10)  # what makes CPython 3.11's own PAX parser take minutes
    data = pax(pax_record("comment", digits) + pax_record("path", "p")) + header("f") + END
    start = time.monotonic()
    box.apply(data)
    assert time.monotonic() - start < 5
    assert box.path("p").exists()


def test_L18_tar_ending_without_end_marker_is_applied_with_a_warning(box: Sandbox) -> None:
    result = box.apply(header("a") + header("b"))
    assert box.path("a").exists() and box.path("b").exists()
    assert any("end-of-archive" in w for w in result.warnings)


@pytest.mark.parametrize("field", ["path", "linkpath"])
def test_L19_pax_path_wins_over_the_ustar_name_and_is_validated(box: Sandbox, field: str) -> None:
    typeflag = b"0" if field == "path" else b"1"
    data = pax(pax_record(field, "../../x")) + header("benign", typeflag=typeflag) + END
    box.reject(data)
    assert not box.path("benign").exists()
    good = pax(pax_record("path", "from/pax")) + header("benign") + END
    box.apply(good)
    assert box.path("from/pax").exists() and not box.path("benign").exists()
    box.assert_host_unchanged()


def test_L20_last_writer_wins_and_parents_are_rebuilt_as_directories(box: Sandbox) -> None:
    box.apply(
        layer(
            reg("f", b"file"),
            reg("f/child", b"child"),
            reg("x", b"file"),
            dir_("x"),
            symlink("x", str(box.host)),
        )
    )
    assert box.path("f").is_dir()
    assert box.path("f/child").read_bytes() == b"child"
    assert os.readlink(box.path("x")) == str(box.host)
    box.apply(layer(reg("x", b"file again"), dir_("x/y")))  # a file in the way, once more
    assert box.path("x/y").is_dir()
    box.assert_host_unchanged()


def test_L20_file_reached_through_a_symlink_is_not_turned_into_a_directory(
    box: Sandbox,
) -> None:
    sentinel = f"{box.host}/sentinel"
    box.apply(layer(reg(sentinel, b"x"), symlink("p", sentinel)))
    box.reject(layer(reg("p/child")))
    assert box.path(sentinel).read_bytes() == b"x"
    box.assert_host_unchanged()


def test_L21_sparse_files_are_rejected(box: Sandbox) -> None:
    gnu_sparse = header("sparse", typeflag=b"S") + END
    pax_sparse = (
        pax(
            pax_record("GNU.sparse.major", "1")
            + pax_record("GNU.sparse.minor", "0")
            + pax_record("GNU.sparse.realsize", str(1 << 40))
        )
        + header("sparse", size=512)
        + b"1\n0\n"
        + b"\0" * 508
        + END
    )
    old_pax_sparse = pax(pax_record("GNU.sparse.size", str(1 << 40))) + header("s") + END
    for data in (gnu_sparse, pax_sparse, old_pax_sparse):
        assert "sparse" in box.reject(data)
    box.assert_host_unchanged()


def test_L22_mode_0000_and_07777_directories_with_children_apply_and_remove(
    box: Sandbox,
) -> None:
    box.apply(
        layer(
            dir_("locked", mode=0o000),
            reg("locked/a", b"1"),
            dir_("locked/sub", mode=0o000),
            reg("locked/sub/b", b"2"),
            dir_("sticky", mode=0o7777),
            reg("sticky/c", b"3"),
        )
    )
    assert stat.S_IMODE(box.path("locked").stat().st_mode) == 0
    assert stat.S_IMODE(box.path("locked/sub").lstat().st_mode) == 0
    assert stat.S_IMODE(box.path("sticky").stat().st_mode) == 0o7777
    box.apply(layer(reg("locked/a", b"again"), whiteout("locked/.wh.sub")))  # lower 0000 dirs
    if IS_ROOT:
        assert box.path("locked/a").read_bytes() == b"again"
        assert not box.path("locked/sub").exists()
        for child in box.root.iterdir():  # rm/rmi still work
            shutil.rmtree(child)
    box.assert_host_unchanged()


def test_L23_only_user_xattrs_are_applied(box: Sandbox) -> None:
    xattrs = {
        "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.user.comment": "kept",
    }
    result = box.apply(layer(reg("bin/ping", b"x", pax_headers=xattrs)))
    names = os.listxattr(box.path("bin/ping"))
    assert "security.capability" not in names
    assert "trusted.overlay.opaque" not in names
    if "user.comment" in names:
        assert os.getxattr(box.path("bin/ping"), "user.comment") == b"kept"
    assert any("security.capability" in w for w in result.warnings)
    box.assert_host_unchanged()


# -- functional --------------------------------------------------------------------------------


def test_whiteout_removes_lower_files_and_directories(box: Sandbox) -> None:
    box.apply(layer(reg("a/f", b"1"), reg("a/g", b"2"), reg("d/deep/x", b"3")))
    result = box.apply(layer(whiteout("a/.wh.f"), whiteout(".wh.d"), whiteout("a/.wh.absent")))
    assert not box.path("a/f").exists()
    assert box.path("a/g").exists()
    assert not box.path("d").exists()
    assert result.entries == 3
    assert not any(p.name.startswith(".wh.") for p in box.root.rglob("*"))


@pytest.mark.parametrize("order", ["whiteout-first", "whiteout-last"])
def test_whiteout_never_removes_an_entry_of_the_same_layer(box: Sandbox, order: str) -> None:
    box.apply(layer(reg("f", b"lower"), reg("d/lower", b"lower")))
    entries = [reg("f", b"upper"), reg("d/upper", b"upper")]
    wh = [whiteout(".wh.f"), whiteout(".wh.d")]
    box.apply(layer(*(wh + entries if order == "whiteout-first" else entries + wh)))
    assert box.path("f").read_bytes() == b"upper"
    assert box.path("d/upper").exists()
    assert not box.path("d/lower").exists()


@pytest.mark.parametrize("order", ["marker-first", "marker-last"])
def test_opaque_directory_hides_lower_entries_whatever_its_place(box: Sandbox, order: str) -> None:
    box.apply(layer(reg("d/old", b"1"), reg("d/sub/old", b"2"), reg("d/sub/keep", b"3")))
    entries = [dir_("d", mode=0o750), reg("d/new", b"n"), reg("d/sub/keep", b"new")]
    marker = [whiteout("d/.wh..wh..opq")]
    box.apply(layer(*(marker + entries if order == "marker-first" else entries + marker)))
    found = sorted(str(p.relative_to(box.root)) for p in box.root.rglob("*"))
    assert found == ["d", "d/new", "d/sub", "d/sub/keep"]
    assert box.path("d/sub/keep").read_bytes() == b"new"
    assert stat.S_IMODE(box.path("d").stat().st_mode) == 0o750


def test_replacement_semantics(box: Sandbox) -> None:
    box.apply(layer(reg("f2d", b"1"), reg("d2f/x", b"2"), reg("d2d/x", b"3"), dir_("d2d")))
    box.apply(layer(dir_("f2d"), reg("d2f", b"file"), dir_("d2d", mode=0o700), reg("d2d/y")))
    assert box.path("f2d").is_dir()
    assert box.path("d2f").read_bytes() == b"file"
    assert sorted(os.listdir(box.path("d2d"))) == ["x", "y"]  # both directories: merged
    assert stat.S_IMODE(box.path("d2d").stat().st_mode) == 0o700


def test_hardlinks_to_the_same_and_lower_layers(box: Sandbox) -> None:
    box.apply(layer(reg("lower", b"L")))
    box.apply(layer(reg("upper", b"U"), hardlink("u2", "upper"), hardlink("l2", "lower")))
    assert box.path("u2").stat().st_ino == box.path("upper").stat().st_ino
    assert box.path("l2").stat().st_ino == box.path("lower").stat().st_ino
    assert box.path("upper").stat().st_nlink == 2
    assert box.reject(layer(dir_("dir"), hardlink("h", "dir")))


def test_symlinks_keep_their_targets_and_times(box: Sandbox) -> None:
    box.apply(layer(symlink("lib", "usr/lib", mtime=T0 + 7), symlink("abs", "/etc/localtime")))
    assert os.readlink(box.path("lib")) == "usr/lib"
    assert os.readlink(box.path("abs")) == "/etc/localtime"
    assert box.path("lib").lstat().st_mtime == T0 + 7


def test_directory_modes_and_mtimes_are_applied_last(box: Sandbox) -> None:
    box.apply(
        layer(
            dir_("ro", mode=0o555, mtime=T0 + 1),
            reg("ro/f", b"x", mtime=T0 + 2),
            dir_("ro/sub", mode=0o500, mtime=T0 + 3),
            reg("ro/sub/g", b"y"),
            reg("implicit/parent/h", b"z"),
        )
    )
    assert stat.S_IMODE(box.path("ro").stat().st_mode) == 0o555
    assert box.path("ro").stat().st_mtime == T0 + 1
    assert box.path("ro/sub").stat().st_mtime == T0 + 3
    assert box.path("ro/f").stat().st_mtime == T0 + 2
    assert stat.S_IMODE(box.path("implicit/parent").stat().st_mode) == 0o755


def test_file_attributes(box: Sandbox) -> None:
    box.apply(layer(reg("f", b"data", mode=0o2751, uid=1234, gid=5678, mtime=T0 + 0.5)))
    st = box.path("f").stat()
    assert stat.S_IMODE(st.st_mode) == 0o2751
    assert st.st_mtime_ns == (T0 * 10**9) + 500_000_000
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_uname_and_gname_are_never_mapped(box: Sandbox) -> None:
    box.apply(layer(reg("f", b"", uid=4321, gid=4321, uname="root", gname="root")))
    if IS_ROOT:
        assert box.path("f").stat().st_uid == 4321


def test_L12_a_fifo_is_skipped_with_a_warning_unless_special_files_are_allowed(
    box: Sandbox,
) -> None:
    result = box.apply(layer(node("run/fifo", tarfile.FIFOTYPE, mode=0o620), reg("run/ok")))
    assert not box.path("run/fifo").exists() and box.path("run/ok").exists()
    assert any("run/fifo" in w for w in result.warnings)


def test_L12_a_fifo_is_created_when_special_files_are_allowed(box: Sandbox) -> None:
    box.apply(layer(node("run/fifo", tarfile.FIFOTYPE, mode=0o620)), allow_special_files=True)
    st = box.path("run/fifo").lstat()
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_in_every_tar_format(box: Sandbox, fmt: int) -> None:
    name = "/".join(["n" * 60] * 3) + "/file"
    entries = [reg(name, b"x")]
    if fmt != tarfile.USTAR_FORMAT:
        entries.append(symlink("l", "t" * 150))
    box.apply(layer(*entries, fmt=fmt))
    assert box.path(name).read_bytes() == b"x"


def _compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if kind == "bzip2":
        return bz2.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    return data


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd", "bzip2", "xz"])
def test_compressed_and_plain_layers_give_the_same_tree(box: Sandbox, kind: str) -> None:
    payload = os.urandom(3 << 20)
    data = layer(dir_("etc"), reg("etc/hostname", b"box\n"), reg("big", payload))
    blob = _compress(data, kind)
    assert detect_compression(blob[:6]) == kind
    result = box.apply(blob)
    assert box.path("big").read_bytes() == payload
    assert result.bytes_written == len(payload) + 4
    assert open_decompressed(io.BytesIO(blob)).read() == data


def test_multi_layer_rootfs(box: Sandbox) -> None:
    base = layer(
        dir_("bin"),
        reg("bin/busybox", b"BB", mode=0o755),
        hardlink("bin/sh", "bin/busybox"),
        dir_("etc"),
        reg("etc/passwd", b"root:x:0:0\n"),
        reg("etc/motd", b"hi"),
        dir_("lib"),
        reg("lib/libc.so", b"libc"),
        symlink("lib64", "lib"),
        dir_("tmp", mode=0o1777),
        dir_("var/cache"),
        reg("var/cache/a", b"a"),
    )
    update = layer(
        reg("etc/passwd", b"root:x:0:0\napp:x:1000:1000\n"),
        whiteout("etc/.wh.motd"),
        reg("lib64/libapp.so", b"app"),
        whiteout("var/cache/.wh..wh..opq"),
        reg("var/cache/b", b"b"),
    )
    remove = layer(whiteout("bin/.wh.sh"), whiteout(".wh.tmp"), dir_("tmp", mode=0o1777))
    for blob in (gzip.compress(base), zstandard.ZstdCompressor().compress(update), remove):
        box.apply(blob)
    tree = {
        str(p.relative_to(box.root)): (
            p.read_bytes() if p.is_file() and not p.is_symlink() else None
        )
        for p in box.root.rglob("*")
    }
    assert tree == {
        "bin": None,
        "bin/busybox": b"BB",
        "etc": None,
        "etc/passwd": b"root:x:0:0\napp:x:1000:1000\n",
        "lib": None,
        "lib/libc.so": b"libc",
        "lib/libapp.so": b"app",
        "lib64": None,
        "tmp": None,
        "var": None,
        "var/cache": None,
        "var/cache/b": b"b",
    }
    assert stat.S_IMODE(box.path("tmp").stat().st_mode) == 0o1777
    box.assert_host_unchanged()


@pytest.mark.asyncio
async def test_apply_layer_runs_in_a_worker_thread(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    data = layer(reg("f", b"async"))
    result = await anyio.to_thread.run_sync(lambda: apply_layer(root, io.BytesIO(data)))
    assert result.entries == 1
    assert (root / "f").read_bytes() == b"async"


def test_errors_name_the_member_and_report_the_cause(box: Sandbox) -> None:
    message = box.reject(layer(reg("x" * 300, b"")))
    assert "x" * 300 in message
    assert os.strerror(errno.ENAMETOOLONG) in message


class _StrictReader(io.RawIOBase):
    """A blob that refuses to be read whole: every read must be bounded."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.largest = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert 0 <= size <= 1 << 20, f"unbounded read({size})"
        self.largest = max(self.largest, size)
        return self._data.read(size)


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd", "bzip2", "xz"])
def test_decompression_streams_in_bounded_reads(kind: str) -> None:
    data = layer(reg("big", os.urandom(4 << 20)))
    source = _StrictReader(_compress(data, kind))
    reader = open_decompressed(source)  # type: ignore[arg-type]
    total = 0
    while chunk := reader.read(1 << 16):
        total += len(chunk)
    assert total == len(data)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x1f\x8b\x08\x00\x00\x00", "gzip"),
        (b"\x28\xb5\x2f\xfd\x00\x00", "zstd"),
        (b"\x50\x2a\x4d\x18\x00\x00", "zstd"),  # a skippable frame first
        (b"BZh91AY", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"ustar\x00", "none"),
        (b"BZhx", "none"),
        (b"", "none"),
    ],
)
def test_detect_compression(head: bytes, kind: str) -> None:
    assert detect_compression(head) == kind


# -- property: whatever the layers, nothing outside the root changes ----------------------

_COMPONENTS = ["a", "b", "..", ".", ".wh.a", ".wh..wh..opq", ".wh..."]
_names = st.lists(st.sampled_from(_COMPONENTS), min_size=1, max_size=4).map("/".join)
_targets = st.one_of(
    _names,
    _names.map(lambda n: "HOST/" + n),
    st.sampled_from(["HOST", "HOST/sentinel", "HOST/dir", "../../..", "../../../host"]),
)
_entry_names = st.one_of(_names, _names.map(lambda n: "/" + n), st.sampled_from([".", "/"]))
_entries = st.one_of(
    st.tuples(st.just("file"), _entry_names, st.sampled_from([0o644, 0o4755, 0o000])),
    st.tuples(st.just("dir"), _entry_names, st.sampled_from([0o755, 0o000, 0o7777])),
    st.tuples(st.just("symlink"), _entry_names, _targets),
    st.tuples(st.just("hardlink"), _entry_names, _targets),
    st.tuples(st.just("fifo"), _entry_names, st.just(0o600)),
)


def _build(entries: list[tuple[str, str, Any]], host: Path) -> bytes:
    built: list[Entry] = []
    for kind, name, extra in entries:
        if kind == "file":
            built.append(reg(name, b"layer data", mode=extra, mtime=T0 + 1))
        elif kind == "dir":
            built.append(dir_(name, mode=extra, mtime=T0 + 1))
        elif kind == "fifo":
            built.append(node(name, tarfile.FIFOTYPE, mode=extra))
        else:
            target = str(extra).replace("HOST", str(host))
            make = symlink if kind == "symlink" else hardlink
            built.append(make(name, target, mtime=T0 + 1))
    return layer(*built)


@pytest.mark.timeout(300)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(st.lists(_entries, min_size=1, max_size=6), min_size=1, max_size=3))
def test_no_sequence_of_layers_changes_anything_outside_the_root(
    tmp_path_factory: pytest.TempPathFactory, layers: list[list[tuple[str, str, Any]]]
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    host = tmp / "host"
    (host / "dir").mkdir(parents=True)
    (host / "sentinel").write_bytes(b"host secret\n")
    root = tmp / "jail" / "cell" / "root"
    root.mkdir(parents=True)
    before = snapshot(tmp, skip=root)
    for entries in layers:
        data = _build(entries, host)
        try:
            confined(
                tmp,
                lambda: apply_layer(root, io.BytesIO(data), allow_special_files=True),  # noqa: B023
            )
        except (UnsafeLayer, LimitExceeded):
            continue
        assert not [p for p in root.rglob(".wh.*")]
    assert snapshot(tmp, skip=root) == before
    assert root.is_dir() and not root.is_symlink()
    for dirpath, dirnames, _ in os.walk(tmp):
        for d in dirnames:
            if not Path(dirpath, d).is_symlink():
                Path(dirpath, d).chmod(0o700)
    shutil.rmtree(tmp)


@pytest.mark.skipif(not IS_ROOT, reason="the confinement is only needed (and possible) as root")
def test_hostile_layers_are_applied_where_the_host_is_read_only(box: Sandbox) -> None:
    def probe() -> int:
        try:
            os.mkdir("/aiopod-confinement-probe")
        except OSError as exc:
            return exc.errno or 0
        os.rmdir("/aiopod-confinement-probe")
        return 0

    assert confined(box.tmp, probe) == errno.EROFS
    assert confined(box.tmp, lambda: (box.tmp / "w").write_bytes(b"ok")) == 2


def test_a_layer_that_ends_right_after_its_last_data_is_accepted_as_umoci_writes_it() -> None:
    """umoci writes layers with no padding and no end-of-archive blocks; Go's reader, and
    so skopeo and podman, accept them.  Data cut short is still refused."""
    from aiopod.storage.layer_check import scan_layer

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("etc/motd")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    whole = raw.getvalue()
    assert scan_layer(io.BytesIO(whole[: 512 + 5])) == 1
    with pytest.raises(UnsafeLayer, match="unexpected end of data"):
        scan_layer(io.BytesIO(whole[: 512 + 3]))
