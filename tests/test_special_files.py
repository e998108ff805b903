"""Device nodes and FIFOs of a layer stay in the layer, and out of root file systems.

``docs/design/hostile-input.md`` L12: the layer blob keeps them (``save`` gives them
back), a container's or working container's root file system does not have them unless
the runtime allows special files; then real root makes them.  Run as root, where podman
would make the devices.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from conftest import store_of
from imagefactory import FIXED_MTIME
from peers import Podman

from aiopod import Runtime
from aiopod.storage.compression import open_decompressed

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(os.geteuid() != 0, reason="device nodes in layers are a root concern"),
]

SPECIAL = {"dev/null": (tarfile.CHRTYPE, 1, 3), "dev/sda": (tarfile.BLKTYPE, 8, 0)}


def special_layer(path: Path) -> Path:
    """A root file system tarball: a character device, a block device, a FIFO, a file."""
    with tarfile.open(path, "w") as tar:
        for name in ("dev", "run"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
            tar.addfile(info)
        for name, (kind, major, minor) in SPECIAL.items():
            info = tarfile.TarInfo(name)
            info.type, info.devmajor, info.devminor = kind, major, minor
            info.mode, info.mtime = 0o666, FIXED_MTIME
            tar.addfile(info)
        fifo = tarfile.TarInfo("run/initctl")
        fifo.type, fifo.mode, fifo.mtime = tarfile.FIFOTYPE, 0o600, FIXED_MTIME
        tar.addfile(fifo)
        data = b"kept\n"
        regular = tarfile.TarInfo("etc/motd")
        regular.size, regular.mtime = len(data), FIXED_MTIME
        tar.addfile(regular, io.BytesIO(data))
    return path


def special_members(blob: Path) -> dict[str, tuple[bytes, int, int]]:
    """The special entries of a (possibly compressed) layer: name -> (type, major, minor)."""
    with (
        blob.open("rb") as raw,
        open_decompressed(raw) as data,
        tarfile.open(fileobj=data, mode="r|") as tar,
    ):
        return {
            m.name: (m.type, m.devmajor, m.devminor)
            for m in tar
            if m.ischr() or m.isblk() or m.isfifo()
        }


EXPECTED = {
    "dev/null": (tarfile.CHRTYPE, 1, 3),
    "dev/sda": (tarfile.BLKTYPE, 8, 0),
    "run/initctl": (tarfile.FIFOTYPE, 0, 0),
}


async def test_special_files_stay_in_the_layer_but_not_in_a_working_container(
    tmp_path: Path,
) -> None:
    tarball = special_layer(tmp_path / "special.tar")
    async with Runtime(tmp_path / "store") as rt:
        image = await rt.import_image(tarball, "special")
        container = await rt.create_working_container("special")
        rootfs = store_of(rt).container_dir(container.id) / "rootfs"
        assert (rootfs / "etc" / "motd").read_bytes() == b"kept\n"
        for name in EXPECTED:
            path = rootfs / name  # no node, and no placeholder either
            assert not path.exists() and not path.is_symlink(), name
        assert (rootfs / "dev").is_dir() and (rootfs / "run").is_dir()
        record = (await store_of(rt).snapshot()).images[image.id]
        assert special_members(store_of(rt).blob_path(record.layers[0].digest)) == EXPECTED
        # save gives the layer back as it came, devices and FIFO included
        await rt.save(tmp_path / "saved.tar", ["special"])
    async with Runtime(tmp_path / "other") as rt:
        [loaded] = await rt.load(tmp_path / "saved.tar")
        assert loaded.id == image.id and loaded.layers == image.layers
        record = (await store_of(rt).snapshot()).images[loaded.id]
        assert special_members(store_of(rt).blob_path(record.layers[0].digest)) == EXPECTED


async def test_a_runtime_that_allows_special_files_makes_them(tmp_path: Path) -> None:
    tarball = special_layer(tmp_path / "special.tar")
    async with Runtime(tmp_path / "store", allow_special_files=True) as rt:
        await rt.import_image(tarball, "special")
        container = await rt.create_container("special", ["sh"])
        rootfs = store_of(rt).container_dir(container.id) / "rootfs"
        assert stat.S_ISFIFO(os.lstat(rootfs / "run" / "initctl").st_mode)
        st = os.lstat(rootfs / "dev" / "null")
        if not stat.S_ISCHR(st.st_mode):
            pytest.skip("mknod is not permitted here (a user namespace)")
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
        assert stat.S_ISBLK(os.lstat(rootfs / "dev" / "sda").st_mode)


async def test_a_build_on_an_image_with_devices_keeps_them_and_adds_no_whiteout(
    tmp_path: Path,
) -> None:
    tarball = special_layer(tmp_path / "special.tar")
    context = tmp_path / "context"
    context.mkdir()
    (context / "hello").write_text("hello\n")
    (context / "Dockerfile").write_text("FROM localhost/special\nCOPY hello /etc/hello\n")
    async with Runtime(tmp_path / "store") as rt:
        base = await rt.import_image(tarball, "special")
        built = await rt.build(context, tags=["localhost/built"])
        assert built.layers[0] == base.layers[0]
        record = (await store_of(rt).snapshot()).images[built.id]
        top = store_of(rt).blob_path(record.layers[-1].digest)
        with (
            top.open("rb") as raw,
            open_decompressed(raw) as data,
            tarfile.open(fileobj=data, mode="r|") as tar,
        ):
            names = [m.name for m in tar]
        assert not any(".wh." in name for name in names), names
        assert await rt.containers(external=True) == []


def _special_files_under(rootfs: Path) -> dict[str, tuple[str, int, int]]:
    found = {}
    for name in ("dev/null", "dev/sda", "run/initctl"):
        try:
            st = os.lstat(rootfs / name)
        except FileNotFoundError:
            continue
        kind = "chr" if stat.S_ISCHR(st.st_mode) else "blk" if stat.S_ISBLK(st.st_mode) else "fifo"
        found[name] = (kind, os.major(st.st_rdev), os.minor(st.st_rdev))
    return found


@pytest.mark.peer("podman")
async def test_podman_makes_them_as_aiopod_does_when_allowed(
    tmp_path: Path, podman: Podman
) -> None:
    """The documented difference, measured: podman as root makes every special file of the
    layer in a container's root file system; aiopod makes the same only when allowed."""
    tarball = special_layer(tmp_path / "special.tar")
    podman("import", tarball, "localhost/special")
    created = podman("create", "localhost/special", "sh").stdout.strip()
    mounted = Path(podman("mount", created).stdout.strip())
    theirs = _special_files_under(mounted)
    assert set(theirs) == set(EXPECTED)  # what podman 4.3 does as root
    ours = {}
    for allowed in (False, True):
        async with Runtime(tmp_path / f"store-{allowed}", allow_special_files=allowed) as rt:
            await rt.import_image(tarball, "special")
            container = await rt.create_container("special", ["sh"])
            rootfs = store_of(rt).container_dir(container.id) / "rootfs"
            ours[allowed] = _special_files_under(rootfs)
    assert ours == {False: {}, True: theirs}
