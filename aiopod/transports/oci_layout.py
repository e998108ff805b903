"""OCI image layouts: as a directory (oci-dir) or as a tar of one (oci-archive).

Reading follows ``index.json`` (at most 4 MiB) to manifests (nested indexes are followed
to the local platform, at most 8 levels deep), checks every blob against its descriptor's
digest and size, refuses documents that are both index and manifest (CVE-2021-41190)
and names images by their ``org.opencontainers.image.ref.name`` (a short name becomes
``localhost/NAME:latest``, as podman does) or, for Docker 25+ archives that only put the
tag there, by ``io.containerd.image.name``.

Writing produces ``oci-layout``, ``index.json`` with one descriptor per name (the full
reference in ``ref.name``) and ``blobs/sha256/…``: exactly the blobs the store holds or,
when compression is asked for, with the uncompressed layers compressed and the manifests
that name them rewritten (see :func:`write_oci_layout`).

Blocking; callers run it in a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiopod._platforms import local_architecture
from aiopod._reference import normalize_local
from aiopod.errors import InvalidArchive, InvalidReference
from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.layout import INDEX_MEDIA_TYPE, LAYOUT_FILE_CONTENT, REF_NAME_ANNOTATION
from aiopod.storage.records import ImageRecord, LayerRecord
from aiopod.transports import mediatypes as mt
from aiopod.transports.archive_progress import ArchiveReport, BlobWriting, report_saved
from aiopod.transports.candidate import ImageCandidate, LayerBlob
from aiopod.transports.documents import check_descriptor, check_document, image_descriptors
from aiopod.transports.layer_compression import (
    LayerCompression,
    compress_blob,
    layer_media_type,
    manifest_type_for,
    rewrite_manifest,
)
from aiopod.transports.output import output_file
from aiopod.transports.source import ArchiveSource
from aiopod.transports.tarwriter import TarWriter

__all__ = ("read_oci_layout", "write_oci_layout")

_CONTAINERD_NAME = "io.containerd.image.name"
_MAX_DEPTH = 8


def _name_for(annotations: Any) -> str | None:
    if not isinstance(annotations, dict):
        return None
    for key in (_CONTAINERD_NAME, REF_NAME_ANNOTATION):
        value = annotations.get(key)
        if isinstance(value, str) and value:
            try:
                return str(normalize_local(value))
            except InvalidReference:
                continue
    return None


def _pick_platform(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with_platform = [m for m in manifests if isinstance(m.get("platform"), dict)]
    if not with_platform:
        return manifests
    local = [
        m
        for m in with_platform
        if m["platform"].get("os") == "linux"
        and m["platform"].get("architecture") == local_architecture()
    ]
    return local[:1]


class _Reader:
    def __init__(self, source: ArchiveSource) -> None:
        self.source = source
        self.by_manifest: dict[str, ImageCandidate] = {}

    def index(
        self, doc: dict[str, Any], media_type: str, name: str | None, depth: int, what: str
    ) -> None:
        if depth > _MAX_DEPTH:
            raise InvalidArchive(f"{what}: indexes nest more than {_MAX_DEPTH} levels deep")
        check_document(doc, media_type, what)
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise InvalidArchive(f"{what} has no manifests list")
        descriptors = [
            check_descriptor(m, f"{what} manifests[{i}]") for i, m in enumerate(manifests)
        ]
        if depth > 0:
            descriptors = _pick_platform(descriptors)
        for i, desc in enumerate(descriptors):
            desc_name = _name_for(desc.get("annotations")) if depth == 0 else name
            self.descriptor(desc, desc_name, depth, f"{what} manifests[{i}]")

    def descriptor(self, desc: dict[str, Any], name: str | None, depth: int, what: str) -> None:
        media_type = desc["mediaType"]
        if media_type in mt.INDEX_TYPES:
            blob = self.source.get_blob(desc["digest"], desc["size"])
            doc = self.source.json_object(
                blob, what=f"index {blob.digest}", max_size=self.source.limits.max_manifest
            )
            self.index(doc, media_type, name, depth + 1, f"index {blob.digest}")
        elif media_type in mt.MANIFEST_TYPES:
            self.manifest(desc, name)

    def manifest(self, desc: dict[str, Any], name: str | None) -> None:
        digest = desc["digest"]
        existing = self.by_manifest.get(digest)
        if existing is not None:
            if name is not None and name not in existing.names:
                existing.names.append(name)
            return
        limits = self.source.limits
        blob = self.source.get_blob(digest, desc["size"])
        what = f"manifest {digest}"
        doc = self.source.json_object(blob, what=what, max_size=limits.max_manifest)
        check_document(doc, desc["mediaType"], what)
        config_desc, layer_descs = image_descriptors(doc, what)
        config = self.source.get_blob(config_desc["digest"], config_desc["size"])
        layer_blobs = [
            LayerBlob(self.source.get_blob(d["digest"], d["size"]), d["mediaType"])
            for d in layer_descs
        ]
        self.by_manifest[digest] = ImageCandidate(
            config=config,
            config_doc=self.source.json_object(
                config, what=f"config {config.digest}", max_size=limits.max_config
            ),
            layers=layer_blobs,
            names=[name] if name else [],
            manifest=blob,
            manifest_media_type=desc["mediaType"],
            what=f"image {config.digest.removeprefix('sha256:')[:12]}",
        )


def read_oci_layout(source: ArchiveSource) -> list[ImageCandidate]:
    """The images an OCI layout (staged from a directory or an oci-archive) holds."""
    index_blob = source.get("index.json")
    doc = source.json_object(index_blob, what="index.json", max_size=source.limits.max_index_json)
    reader = _Reader(source)
    reader.index(doc, doc.get("mediaType", INDEX_MEDIA_TYPE), None, 0, "index.json")
    if not reader.by_manifest:
        raise InvalidArchive("index.json refers to no image manifest")
    return list(reader.by_manifest.values())


def _index_document(manifests: Sequence[tuple[_Blob, Sequence[str]]]) -> bytes:
    descriptors = []
    for manifest, names in manifests:
        base = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size}
        if not names:
            descriptors.append(base)
        for name in names:
            descriptors.append({**base, "annotations": {REF_NAME_ANNOTATION: name}})
    return json.dumps(
        {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": descriptors}
    ).encode()


@dataclass(frozen=True, slots=True)
class _Blob:
    """A blob as it is written to the layout."""

    media_type: str
    digest: str
    size: int


class _Layout:
    """Writes the blobs of an OCI layout to a tar (*tar*) or a directory (*directory*),
    each once, compressing the uncompressed layers when asked to."""

    def __init__(
        self,
        blob_path: Callable[[str], Path],
        report: ArchiveReport | None,
        compression: LayerCompression | None,
        staging: Path,
        tar: TarWriter | None,
        directory: Path | None,
    ) -> None:
        self.blob_path = blob_path
        self.report = report
        self.compression = compression
        self.staging = staging
        self.tar = tar
        self.directory = directory
        self.written: set[str] = set()
        #: stored digest -> (digest, size) of each layer written compressed
        self.compressed: dict[str, tuple[str, int]] = {}
        self.threads = len(os.sched_getaffinity(0)) or 1

    def _put(
        self, digest: str, path: Path, size: int, *, progress: BlobWriting | None, move: bool
    ) -> None:
        """Put the file *path* in the layout as blob *digest* (moved there if *move*)."""
        self.written.add(digest)
        name = digest.removeprefix("sha256:")
        if self.tar is not None:
            written = progress.written if progress is not None else None
            self.tar.add_path("blobs/sha256/" + name, path, size, progress=written)
            return
        assert self.directory is not None
        dest = self.directory / "blobs" / "sha256" / name
        if dest.exists():
            return
        if move:
            os.replace(path, dest)
        else:
            shutil.copyfile(path, dest)

    def stored(self, digest: str, size: int, kind: Literal["blob", "config"] | None) -> None:
        """Write the stored blob *digest* as it is (with the records of a *kind*)."""
        if digest in self.written:
            return
        raise_if_cancelled()
        blob = BlobWriting(self.report if kind else None, digest, size, kind or "blob")
        self._put(digest, self.blob_path(digest), size, progress=blob, move=False)
        blob.done()

    def layer(self, layer: LayerRecord) -> tuple[str, str, int]:
        """Write *layer*: compressed if it is stored uncompressed and compression is asked
        for (its records name the stored digest, as a push's do), else as it is; return
        its compression, digest and size as written."""
        kind = mt.LAYER_COMPRESSION.get(layer.media_type, "none")
        if self.compression is None or kind != "none":
            self.stored(layer.digest, layer.size, "blob")
            return kind, layer.digest, layer.size
        if layer.digest not in self.compressed:
            blob = BlobWriting(self.report, layer.digest, layer.size)
            staged = self.staging / f".aiopod-{secrets.token_hex(8)}.layer"
            try:
                digest, size = compress_blob(
                    self.blob_path(layer.digest),
                    self.compression,
                    staged,
                    threads=self.threads,
                    progress=blob.written,
                )
                if digest not in self.written:
                    self._put(digest, staged, size, progress=None, move=True)
            finally:
                staged.unlink(missing_ok=True)
            blob.done()
            self.compressed[layer.digest] = (digest, size)
        return (self.compression, *self.compressed[layer.digest])

    def image(self, record: ImageRecord) -> _Blob:
        """Write *record*'s config, layers and manifest (the stored one, or one that
        describes the layers as they were written); return the manifest's descriptor."""
        self.stored(record.config_digest, record.config_size, "config")
        layers = [self.layer(layer) for layer in record.layers]
        if all(d == layer.digest for (_, d, _), layer in zip(layers, record.layers, strict=True)):
            self.stored(record.manifest_digest, record.manifest_size, None)
            return _Blob(record.manifest_media_type, record.manifest_digest, record.manifest_size)
        manifest_type = manifest_type_for(record, [kind for kind, _, _ in layers])
        described = [
            (
                layer.media_type
                if digest == layer.digest and manifest_type == record.manifest_media_type
                else layer_media_type(manifest_type, kind),
                digest,
                size,
            )
            for (kind, digest, size), layer in zip(layers, record.layers, strict=True)
        ]
        stored = self.blob_path(record.manifest_digest).read_bytes()
        data, media_type = rewrite_manifest(record, stored, described, manifest_type)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest not in self.written:
            self.written.add(digest)
            name = digest.removeprefix("sha256:")
            if self.tar is not None:
                self.tar.add_bytes("blobs/sha256/" + name, data)
            else:
                assert self.directory is not None
                (self.directory / "blobs" / "sha256" / name).write_bytes(data)
        return _Blob(media_type, digest, len(data))


def write_oci_layout(
    target: Path,
    images: Sequence[tuple[ImageRecord, Sequence[str]]],
    blob_path: Callable[[str], Path],
    *,
    archive: bool,
    report: ArchiveReport | None = None,
    compression: LayerCompression | None = None,
) -> None:
    """Write *images* as an OCI layout: a tar file (``archive``) or a directory; *report*
    receives the progress records (blobs as they are written).

    With *compression* every layer stored uncompressed is written compressed (several
    threads per layer), compressed ones as they are; the manifests of images with a
    compressed layer are rewritten to describe it (their configs, hence the image IDs,
    are unchanged).  Each image's config and layers are written before its manifest.
    An archive's compressed layers are staged one at a time in a temporary directory
    beside it, removed however the save ends."""
    if archive:
        staging = target.parent  # unused without compression
        if compression is not None:
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.aiopod-", dir=target.parent))
        try:
            with output_file(target) as fd:
                tar = TarWriter(fd)
                tar.add_bytes("oci-layout", LAYOUT_FILE_CONTENT)
                tar.add_dir("blobs")
                tar.add_dir("blobs/sha256")
                layout = _Layout(blob_path, report, compression, staging, tar, None)
                manifests = [(layout.image(record), names) for record, names in images]
                tar.add_bytes("index.json", _index_document(manifests))
                tar.close()
        finally:
            if compression is not None:
                shutil.rmtree(staging, ignore_errors=True)
        report_saved(report)
        return
    if target.exists() and any(target.iterdir()) and not (target / "oci-layout").exists():
        raise InvalidArchive(f"{target} exists and is not an OCI layout")
    blobs_dir = target / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    layout = _Layout(blob_path, report, compression, blobs_dir, None, target)
    manifests = [(layout.image(record), names) for record, names in images]
    (target / "oci-layout").write_bytes(LAYOUT_FILE_CONTENT)
    (target / "index.json").write_bytes(_index_document(manifests))
    report_saved(report)
