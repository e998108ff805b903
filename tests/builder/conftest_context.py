"""Helpers for the build-context, layer-writer and snapshot tests (import them explicitly).

* :func:`make_tree` lays out files, directories and symlinks under a directory of the test;
  :func:`sample_context` a small build context with the usual glob cases.
* :class:`Buildah` runs ``buildah bud`` on a private vfs store under the test's
  ``tmp_path`` (chroot isolation) and reads back history, diff_ids and layer tars; with
  umoci it unpacks the image to list its files.
* :func:`layer_members` lists a layer tar (name, type, mode, uid, gid, mtime, size, link).
* :func:`tree_state` describes a directory tree for comparisons.

Nothing here touches a path outside the directories the tests pass in.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers import require_peer, run

Spec = Mapping[str, Any]


def make_tree(root: Path, spec: Spec, *, mtime: int | None = 1_600_000_000) -> Path:
    """Create ``spec`` under ``root``: ``"path/": mode`` (a directory), ``"path": bytes |
    str`` (a file, mode 0644) or ``(data, mode)``, ``"path@": "target"`` (a symlink).
    Parents are made as needed; with ``mtime`` every entry gets it (deepest first)."""
    root.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for key, value in spec.items():
        if key.endswith("/"):
            path = root / key.rstrip("/")
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(int(value))
        elif key.endswith("@"):
            path = root / key[:-1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(str(value))
        else:
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            data, mode = value if isinstance(value, tuple) else (value, 0o644)
            path.write_bytes(data.encode() if isinstance(data, str) else data)
            path.chmod(mode)
        made.append(path)
    if mtime is not None:
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            for name in [*filenames, *dirnames]:
                os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    return root


def sample_context(tmp_path: Path, spec: Spec | None = None) -> Path:
    """A build context at ``tmp_path/ctx``: ``spec``, or by default a few files and globs'
    cases (dot file, brackets in a name, a directory with a symlink and a dangling one)."""
    return make_tree(
        tmp_path / "ctx",
        spec
        or {
            "a.txt": "a",
            "b.txt": "b",
            ".hidden.txt": "h",
            "c.md": "c",
            "d/x.txt": "x",
            "d/sub/y.txt": "y",
            "d/link@": "x.txt",
            "d/dangling@": "/nowhere",
            "e/x.txt": "ex",
            "[x].txt": "bracket",
        },
    )


@dataclass(frozen=True)
class Member:
    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int
    link: str
    data: bytes = b""
    pax: Mapping[str, str] = field(default_factory=dict)


def raw_headers(data: bytes) -> list[bytes]:
    """The 512-byte header blocks of a tar, in order (PAX headers included)."""
    out = []
    off = 0
    while off + 512 <= len(data):
        block = data[off : off + 512]
        if block == bytes(512):
            off += 512
            continue
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        out.append(block)
        off += 512 + -(-size // 512) * 512
    return out


def _pax_records(body: bytes) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    while body:
        length = int(body.split(b" ", 1)[0])
        record, body = body[:length], body[length:]
        key, _, value = record.split(b" ", 1)[1][:-1].partition(b"=")
        records[key.decode()] = value
    return records


def layer_members(data: bytes) -> list[Member]:
    """The entries of a tar, parsed from the raw blocks (the mode field as written, type
    bits included; PAX ``path``/``linkpath``/``size``/``mtime`` applied)."""
    out: list[Member] = []
    pax: dict[str, bytes] = {}
    off = 0
    while off + 512 <= len(data):
        block = data[off : off + 512]
        if block == bytes(512):
            off += 512
            continue
        size = int(block[124:136].rstrip(b"\0 ") or b"0", 8)
        kind = block[156:157]
        if "size" in pax:
            size = int(pax["size"])
        body = data[off + 512 : off + 512 + size]
        off += 512 + -(-size // 512) * 512
        if kind == b"x":
            pax = _pax_records(body)
            continue
        name = block[:100].rstrip(b"\0")
        prefix = block[345:500].rstrip(b"\0")
        full = pax.get("path", prefix + b"/" + name if prefix else name)
        link = pax.get("linkpath", block[157:257].rstrip(b"\0"))
        mtime = (
            int(pax["mtime"]) if "mtime" in pax else int(block[136:148].rstrip(b"\0 ") or b"0", 8)
        )
        out.append(
            Member(
                full.decode("utf-8", "surrogateescape"),
                kind,
                int(block[100:108].rstrip(b"\0 ") or b"0", 8),
                int(
                    pax.get("uid", block[108:116].rstrip(b"\0 ") or b"0"),
                    8 if "uid" not in pax else 10,
                ),
                int(
                    pax.get("gid", block[116:124].rstrip(b"\0 ") or b"0"),
                    8 if "gid" not in pax else 10,
                ),
                mtime,
                size,
                link.decode("utf-8", "surrogateescape"),
                body if kind in (b"0", b"\0") else b"",
                {k: v.decode("utf-8", "surrogateescape") for k, v in pax.items()},
            )
        )
        pax = {}
    return out


def tree_state(root: Path, *, with_mtime: bool = False) -> dict[str, tuple[Any, ...]]:
    """Every path below ``root``: (kind, permission bits, content hash / link target)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            perm = stat.S_IMODE(st.st_mode)
            extra: tuple[Any, ...] = (int(st.st_mtime),) if with_mtime else ()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full), *extra)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(perm), *extra)
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(Path(full).read_bytes()).hexdigest()
                out[rel] = ("file", oct(perm), digest, *extra)
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode), oct(perm), *extra)
    return out


@dataclass
class BuildResult:
    image_id: str
    created_by: list[str]
    diff_ids: list[str]
    layers: list[bytes]


class Buildah:
    """``buildah`` on a private vfs store under ``base`` (a directory of the test)."""

    def __init__(self, base: Path) -> None:
        require_peer("buildah")
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.root = base / "r"
        self.runroot = base / "rr"
        self.counter = 0

    def run(
        self, *args: str | os.PathLike[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env["TMPDIR"] = str(self.base)
        env["BUILDAH_ISOLATION"] = "chroot"
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.base / "registries.conf")
        (self.base / "registries.conf").write_text("")
        cmd = [
            "buildah",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
            *map(str, args),
        ]
        return run(cmd, check=check, env=env, timeout=300)

    def bud(
        self,
        context: Path,
        dockerfile: str,
        *args: str,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Build ``dockerfile`` (text) with ``context``; the Dockerfile is written outside
        the context.  Returns the process (``check=False`` for expected failures)."""
        self.counter += 1
        df = self.base / f"Dockerfile.{self.counter}"
        df.write_text(dockerfile)
        tag = f"localhost/t{self.counter}"
        return self.run(
            "bud",
            "--isolation",
            "chroot",
            "--pull=never",
            "-q",
            "-f",
            df,
            "-t",
            tag,
            *args,
            context,
            check=check,
        )

    def build(self, context: Path, dockerfile: str, *args: str) -> BuildResult:
        """Build and read back the image: history, diff_ids and uncompressed layers."""
        self.bud(context, dockerfile, *args)
        tag = f"localhost/t{self.counter}"
        inspect = json.loads(self.run("inspect", "--type", "image", tag).stdout)
        oci = inspect["OCIv1"]
        layout = self.base / f"oci{self.counter}"
        self.run("push", "-q", tag, f"oci:{layout}:latest")
        layers = read_layout_layers(layout)
        return BuildResult(
            image_id=inspect["FromImageID"],
            created_by=[h.get("created_by", "") for h in oci.get("history", [])],
            diff_ids=list(oci["rootfs"]["diff_ids"]),
            layers=layers,
        )

    def unpacked_files(self, context: Path, dockerfile: str, *args: str) -> set[str]:
        """Build, push to an OCI layout and ``umoci unpack`` it: the rootfs paths."""
        require_peer("umoci")
        self.bud(context, dockerfile, *args)
        tag = f"localhost/t{self.counter}"
        layout = self.base / f"oci{self.counter}"
        self.run("push", "-q", tag, f"oci:{layout}:latest")
        bundle = self.base / f"bundle{self.counter}"
        subprocess.run(
            ["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(bundle)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        rootfs = bundle / "rootfs"
        files = set()
        for dirpath, dirnames, filenames in os.walk(rootfs):
            for name in [*dirnames, *filenames]:
                files.add(os.path.relpath(os.path.join(dirpath, name), rootfs))
        shutil.rmtree(bundle)
        return files


def read_layout_layers(layout: Path) -> list[bytes]:
    """The uncompressed layers of the single image in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    out = []
    for layer in manifest["layers"]:
        data = (blobs / layer["digest"].split(":")[1]).read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out.append(data)
    return out


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def names(members: Sequence[Member]) -> list[str]:
    return [m.name for m in members]
