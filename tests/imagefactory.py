"""Deterministic image archives for tests, built in pure Python (no peer needed).

An image is described by :class:`FakeImage`: its uncompressed layer tars, its history and
its config bytes (so its ID, the config digest, is known before anything is loaded).
From images, this module writes docker-archives (``docker save`` layout), OCI layouts
(as a directory or an oci-archive, with gzip or uncompressed layers) and root file system
tarballs.  Everything is byte-for-byte reproducible: fixed mtimes, numeric owners, sorted
JSON keys, gzip without a timestamp.

Archives are first produced as *members* (an ordered ``{name: bytes | Link}`` mapping) so
that a test can break one member before writing the archive; the ``*_hook`` parameters
change a document just before it is serialised.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = (
    "CREATED",
    "DOCKER_CONFIG",
    "FIXED_MTIME",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_TAR",
    "OCI_MANIFEST",
    "REF_NAME",
    "Compression",
    "FakeImage",
    "Link",
    "Members",
    "canonical_json",
    "child_image",
    "compress",
    "docker_archive_members",
    "index_refs",
    "layer_tar",
    "load_images",
    "make_image",
    "oci_layout_members",
    "oci_manifest",
    "rootfs_tarball",
    "sha256_digest",
    "store_files",
    "write_dir",
    "write_docker_archive",
    "write_oci_archive",
    "write_oci_dir",
    "write_tar",
)

#: 2000-01-01T00:00:00Z, the mtime of every tar entry written here.
FIXED_MTIME = 946684800
CREATED = "2000-01-01T00:00:00Z"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

Compression = Literal["gzip", "none"]
Json = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Link:
    """A symbolic link member of an archive (its target is used verbatim)."""

    target: str


Members = dict[str, "bytes | Link"]


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of *data*."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys (the bytes a digest is computed over)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def compress(data: bytes, compression: Compression) -> bytes:
    """*data* gzip-compressed without a timestamp, or unchanged for ``"none"``."""
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    return data


def _tarinfo(
    name: str, kind: bytes, *, size: int = 0, mode: int = 0o644, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = size
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed layer holding regular *files* (parent directories added first)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        made: set[str] = set()
        for name, data in files.items():
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    tar.addfile(_tarinfo(directory + "/", tarfile.DIRTYPE, mode=0o755))
            tar.addfile(_tarinfo(name, tarfile.REGTYPE, size=len(data)), io.BytesIO(data))
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class FakeImage:
    """An image built in memory: uncompressed layers, config bytes, and the names it ships."""

    names: tuple[str, ...]
    layers: tuple[bytes, ...]
    config: bytes

    @property
    def id(self) -> str:
        """The image ID: hex sha256 of the config."""
        return hashlib.sha256(self.config).hexdigest()

    @property
    def config_digest(self) -> str:
        return "sha256:" + self.id

    @property
    def diff_ids(self) -> tuple[str, ...]:
        """The digests of the uncompressed layers, base first."""
        return tuple(sha256_digest(layer) for layer in self.layers)

    @property
    def config_doc(self) -> Json:
        return json.loads(self.config)  # type: ignore[no-any-return]

    @property
    def history(self) -> list[Json]:
        return list(self.config_doc.get("history", []))

    def named(self, *names: str) -> FakeImage:
        """The same image (same ID) shipped under other names."""
        return dataclasses.replace(self, names=names)


def make_image(
    *names: str,
    seed: str = "base",
    layers: Sequence[bytes | Mapping[str, bytes]] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    created: str = CREATED,
    labels: Mapping[str, str] | None = None,
    diff_ids: Sequence[str] | None = None,
    config_extra: Mapping[str, Any] | None = None,
) -> FakeImage:
    """An image whose content depends only on the arguments.

    By default it has one layer holding ``/etc/seed`` (= *seed*) and one history entry per
    layer.  *diff_ids* overrides the config's ``rootfs.diff_ids`` (to build bad images).
    """
    if layers is None:
        layers = [{"etc/seed": seed.encode()}]
    blobs = tuple(layer if isinstance(layer, bytes) else layer_tar(layer) for layer in layers)
    if history is None:
        history = [
            {"created": created, "created_by": f"/bin/sh -c #(nop) ADD layer {seed}-{i}"}
            for i in range(len(blobs))
        ]
    config: Json = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["sh"], "Labels": dict(labels or {})},
        "rootfs": {
            "type": "layers",
            "diff_ids": list(diff_ids)
            if diff_ids is not None
            else [sha256_digest(b) for b in blobs],
        },
        "history": [dict(h) for h in history],
    }
    config.update(config_extra or {})
    return FakeImage(tuple(names), blobs, canonical_json(config))


def child_image(
    parent: FakeImage,
    *names: str,
    files: Mapping[str, bytes] | None = None,
    created_by: str = "/bin/sh -c #(nop) child",
) -> FakeImage:
    """An image built on *parent*: its layers (plus one holding *files*, if given) and its
    history plus exactly one entry, so podman's layer tree makes *parent* its parent."""
    doc = parent.config_doc
    extra_layers: list[bytes] = [layer_tar(files)] if files is not None else []
    entry: Json = {"created": doc["created"], "created_by": created_by}
    if files is None:
        entry["empty_layer"] = True
    layers = [*parent.layers, *extra_layers]
    doc["rootfs"]["diff_ids"] = [sha256_digest(layer) for layer in layers]
    doc["history"] = [*doc.get("history", []), entry]
    return FakeImage(tuple(names), tuple(layers), canonical_json(doc))


# ------------------------------------------------------------------------------ archives


def docker_archive_members(
    images: Sequence[FakeImage],
    *,
    compression: Compression = "none",
    manifest_hook: Callable[[list[Json]], Any] | None = None,
) -> Members:
    """The members of a ``docker save`` archive: ``<hex>.tar`` layers, ``<id>.json``
    configs and ``manifest.json``; *manifest_hook* may change or replace the manifest list.
    """
    members: Members = {}
    manifest: list[Json] = []
    for image in images:
        layer_names = []
        for layer in image.layers:
            blob = compress(layer, compression)
            name = hashlib.sha256(blob).hexdigest() + ".tar"
            members[name] = blob
            layer_names.append(name)
        members[f"{image.id}.json"] = image.config
        manifest.append(
            {"Config": f"{image.id}.json", "RepoTags": list(image.names), "Layers": layer_names}
        )
    if manifest_hook is not None:
        replaced = manifest_hook(manifest)
        manifest = manifest if replaced is None else replaced
    members["manifest.json"] = json.dumps(manifest).encode()
    return members


def oci_manifest(
    image: FakeImage,
    compression: Compression = "gzip",
    *,
    hook: Callable[[Json], None] | None = None,
) -> bytes:
    """The OCI manifest of *image* (*hook* may change the document before serialising)."""
    layer_type = OCI_LAYER_GZIP if compression == "gzip" else OCI_LAYER_TAR
    doc: Json = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": image.config_digest,
            "size": len(image.config),
        },
        "layers": [
            {
                "mediaType": layer_type,
                "digest": sha256_digest(compress(layer, compression)),
                "size": len(compress(layer, compression)),
            }
            for layer in image.layers
        ],
    }
    if hook is not None:
        hook(doc)
    return canonical_json(doc)


def oci_layout_members(
    images: Sequence[FakeImage],
    *,
    compression: Compression = "gzip",
    manifest_hook: Callable[[Json], None] | None = None,
    manifest_bytes_hook: Callable[[bytes], bytes] | None = None,
    index_hook: Callable[[Json], None] | None = None,
    index_bytes_hook: Callable[[bytes], bytes] | None = None,
) -> Members:
    """The files of an OCI image layout holding *images*, one index descriptor per name
    (one without a name for an image that has none)."""
    blobs: dict[str, bytes] = {}
    descriptors: list[Json] = []
    for image in images:
        for layer in image.layers:
            blob = compress(layer, compression)
            blobs[sha256_digest(blob)] = blob
        blobs[image.config_digest] = image.config
        manifest = oci_manifest(image, compression, hook=manifest_hook)
        if manifest_bytes_hook is not None:
            manifest = manifest_bytes_hook(manifest)
        blobs[sha256_digest(manifest)] = manifest
        base = {"mediaType": OCI_MANIFEST, "digest": sha256_digest(manifest), "size": len(manifest)}
        descriptors.extend({**base, "annotations": {REF_NAME: name}} for name in image.names)
        if not image.names:
            descriptors.append(base)
    index: Json = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    if index_hook is not None:
        index_hook(index)
    index_bytes = canonical_json(index)
    if index_bytes_hook is not None:
        index_bytes = index_bytes_hook(index_bytes)
    members: Members = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index_bytes}
    for digest, data in blobs.items():
        members["blobs/sha256/" + digest.removeprefix("sha256:")] = data
    return members


def write_tar(path: Path, members: Mapping[str, bytes | Link]) -> Path:
    """Write *members* as a deterministic tar, in order."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members.items():
            if isinstance(content, Link):
                tar.addfile(_tarinfo(name, tarfile.SYMTYPE, mode=0o777, linkname=content.target))
                continue
            tar.addfile(
                _tarinfo(name, tarfile.REGTYPE, size=len(content), mode=0o444),
                io.BytesIO(content),
            )
    return path


def write_dir(path: Path, members: Mapping[str, bytes | Link]) -> Path:
    """Write *members* as files (and symlinks) below the directory *path*."""
    for name, content in members.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            target.symlink_to(content.target)
        else:
            target.write_bytes(content)
    return path


def write_docker_archive(path: Path, images: Sequence[FakeImage], **options: Any) -> Path:
    return write_tar(path, docker_archive_members(images, **options))


def write_oci_archive(path: Path, images: Sequence[FakeImage], **options: Any) -> Path:
    return write_tar(path, oci_layout_members(images, **options))


def write_oci_dir(path: Path, images: Sequence[FakeImage], **options: Any) -> Path:
    return write_dir(path, oci_layout_members(images, **options))


def rootfs_tarball(
    path: Path, files: Mapping[str, bytes], compression: Compression = "none"
) -> tuple[Path, str]:
    """Write a root file system tarball; return it and its diff_id (uncompressed digest)."""
    tar = layer_tar(files)
    path.write_bytes(compress(tar, compression))
    return path, sha256_digest(tar)


# ------------------------------------------------------------------------------ the store


def store_files(root: Path) -> dict[str, str]:
    """Every entry under a store root with its kind and content hash.

    The store lock's content (a change token every open rewrites) is left out; its
    presence is not.  So are SQLite's files that come and go with its connections: the
    shared-memory index (``metadata.db-shm``) and an empty WAL (one that holds no
    commit); a WAL with content is listed (it holds metadata).
    """
    listing: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                listing[rel] = "symlink " + os.readlink(full)
            elif full.is_dir():
                listing[rel] = "dir"
            elif rel == "aiopod/store.lock":
                listing[rel] = "lock"
            elif rel == "aiopod/metadata.db-shm" or (
                rel == "aiopod/metadata.db-wal" and not full.stat().st_size
            ):
                continue
            else:
                listing[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return listing


# ------------------------------------------------------------------------------ aiopod


_archive_counter = 0


async def load_images(rt: Any, directory: Path, *images: FakeImage) -> list[Any]:
    """Load *images* into the runtime *rt* through a fresh docker-archive in *directory*."""
    global _archive_counter
    _archive_counter += 1
    path = write_docker_archive(directory / f"load-{_archive_counter}.tar", images)
    return await rt.load(path)  # type: ignore[no-any-return]


def index_refs(root: Path) -> list[tuple[str, str]]:
    """``(ref.name, manifest digest)`` of every descriptor in a store's ``index.json``."""
    index = json.loads((root / "index.json").read_bytes())
    return [
        ((d.get("annotations") or {}).get(REF_NAME, ""), d["digest"]) for d in index["manifests"]
    ]
