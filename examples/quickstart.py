"""aiopod's main job in a few awaits: import, tag, list, save and reload an image.

Run it with ``python examples/quickstart.py``.  It works on a fresh store in a
temporary directory (pass a directory to keep the store), so it never touches your
default store.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path

import anyio

import aiopod

HERE = Path(__file__).parent


def make_rootfs_tarball(target: Path) -> Path:
    """Pack ``examples/rootfs`` as a root file system tarball (reproducibly)."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(target, "w") as tar:
        for path in sorted((HERE / "rootfs").rglob("*")):
            tar.add(
                path,
                arcname=str(path.relative_to(HERE / "rootfs")),
                recursive=False,
                filter=normalise,
            )
    return target


async def main(workdir: Path) -> None:
    tarball = make_rootfs_tarball(workdir / "rootfs.tar")
    async with aiopod.Runtime(root=workdir / "store") as rt:
        image = await rt.import_image(tarball, "quickstart:1")
        print(f"imported {tarball.name} as {image.names[0]} (ID {image.short_id})")

        image = await rt.tag("quickstart:1", "quickstart:latest", "example.com/team/quick:v1")
        print(f"tagged: {', '.join(image.names)}")

        print("images in the store:")
        for listed in await rt.images():
            print(f"  {listed.short_id}  {', '.join(listed.names)}  {listed.size} bytes")

        archive = workdir / "quickstart.tar"
        await rt.save(archive, [image.id], format="docker-archive")
        print(f"saved {archive.name} ({archive.stat().st_size} bytes, docker-archive)")

    async with aiopod.Runtime(root=workdir / "second-store") as rt:
        [loaded] = await rt.load(archive)
        same = "the same" if loaded.id == image.id else "a DIFFERENT"
        print(f"loaded it into a second store: {', '.join(loaded.names)}, {same} ID")
        report = await rt.check()
        print(f"store check: {'consistent' if report.ok else report.problems}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        anyio.run(main, Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="aiopod-quickstart-") as tmp:
            anyio.run(main, Path(tmp))
