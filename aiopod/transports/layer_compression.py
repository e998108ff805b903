"""Compressing a layer blob into a file, for a push or a save.

:func:`compress_blob` reads a stored layer (whatever its compression, through
:func:`~aiopod.storage.compression.open_decompressed`), compresses its uncompressed bytes
with gzip (ISA-L, :mod:`isal.igzip_threaded`) or zstd (``zstandard``) and writes them to
a new file, returning the digest and the size of what it wrote.  Given ``threads`` above
one, a layer is compressed by that many threads (gzip in independent 1 MiB blocks, as
pigz does, each primed with the previous block's last 32 KiB; zstd with its own worker
threads): the output is the same whatever the number of threads, and the same every
time (a gzip header with no time stamp), so saving or pushing an image twice gives the
same digests.  (zstd always runs in its multi-threaded mode, with one worker thread
at least: its output differs from the single-threaded mode's, but not with the number of
workers.)

:func:`layer_media_type` and :func:`rewrite_manifest` describe the compressed layers in a
manifest of the right type (a Docker manifest becomes an OCI one only when a layer is
zstd, which Docker manifests cannot describe).

Blocking; callers run it in a worker thread, which stops at its next chunk when the
caller is cancelled (:func:`~aiopod.storage.cancellation.raise_if_cancelled`), removing
the unfinished file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, Literal, cast

from aiopod.storage.cancellation import raise_if_cancelled
from aiopod.storage.compression import open_decompressed
from aiopod.storage.records import ImageRecord
from aiopod.transports import mediatypes as mt
from aiopod.transports.jsonutil import parse_json_object

__all__ = (
    "GZIP_LEVEL",
    "ZSTD_LEVEL",
    "LayerCompression",
    "compress_blob",
    "layer_media_type",
    "manifest_type_for",
    "rewrite_manifest",
)

#: The compressions a layer can be written in.
LayerCompression = Literal["gzip", "zstd"]

#: ISA-L's default level: its deflate, at this level 10-15 times as fast as zlib's default
#: (level 6, the level of Go's gzip.DefaultCompression, which podman uses) for output
#: about 10% larger; podman compresses with several threads per layer instead.
GZIP_LEVEL = 2
ZSTD_LEVEL = 3  # zstd's default, which podman uses

_CHUNK = 1 << 20
_BLOCK = 1 << 20  # the blocks of threaded gzip

_DOCKER_LAYER_TYPES = {"gzip": mt.DOCKER_LAYER_GZIP, "none": mt.DOCKER_LAYER_TAR}


class _HashingFile(io.RawIOBase):
    """A file written through: its digest and size are counted as it is written."""

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._out.write(view)
        self.digest.update(view)
        self.size += len(view)
        return len(view)


@contextlib.contextmanager
def _compressing(out: _HashingFile, kind: LayerCompression, threads: int) -> Iterator[IO[bytes]]:
    """A writer that compresses into *out*; its end is written when the block ends
    without an error."""
    if kind == "gzip":
        from isal import igzip_threaded

        gz: IO[bytes] = igzip_threaded.open(  # type: ignore[no-untyped-call]
            out, "wb", compresslevel=GZIP_LEVEL, threads=max(threads, 1)
        )
        try:
            yield gz
        except BaseException:
            with contextlib.suppress(Exception):  # its threads stop; the output is dropped
                gz.close()
            raise
        gz.close()
        return
    import zstandard  # here: loading its C library costs start-up time

    compressor = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, threads=max(threads, 1), write_checksum=False
    )
    writer = compressor.stream_writer(cast("IO[bytes]", out), closefd=False, write_return_read=True)
    with writer as zst:
        yield zst


def compress_blob(
    source: Path,
    kind: LayerCompression,
    target: Path,
    *,
    threads: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Write *source*'s uncompressed content, compressed with *kind* by *threads*
    threads, to the new file *target*; return its digest and size.  *progress* is called
    with the bytes of *source* read so far after each chunk.  On any error (a
    cancellation included) *target* is removed.  Blocking."""
    try:
        with source.open("rb") as raw, target.open("xb") as out:
            hashing = _HashingFile(out)
            with open_decompressed(raw) as plain, _compressing(hashing, kind, threads) as writer:
                while chunk := plain.read(_CHUNK):
                    raise_if_cancelled()
                    writer.write(chunk)
                    if progress is not None:
                        progress(raw.tell())
            return "sha256:" + hashing.digest.hexdigest(), hashing.size
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def layer_media_type(manifest_type: str, kind: str) -> str:
    """The media type of a layer compressed with *kind* in a manifest of *manifest_type*
    (which is OCI whenever a layer is zstd: see :func:`rewrite_manifest`)."""
    if manifest_type == mt.DOCKER_MANIFEST and kind in _DOCKER_LAYER_TYPES:
        return _DOCKER_LAYER_TYPES[kind]
    oci = mt.oci_layer_type(kind)
    if oci is None:
        raise ValueError(f"no layer media type for compression {kind!r}")
    return oci


def manifest_type_for(record: ImageRecord, kinds: Sequence[str]) -> str:
    """The manifest type for *record*'s layers in compressions *kinds*: its own, or OCI
    for a Docker manifest with a zstd layer."""
    if record.manifest_media_type == mt.DOCKER_MANIFEST and "zstd" in kinds:
        return mt.OCI_MANIFEST
    return record.manifest_media_type


def rewrite_manifest(
    record: ImageRecord,
    stored: bytes,
    layers: Sequence[tuple[str, str, int]] | None,
    manifest_type: str,
) -> tuple[bytes, str]:
    """The manifest of *record* (whose stored bytes are *stored*) with *layers*
    (``(media type, digest, size)`` each), of *manifest_type*; the stored one, byte for
    byte, when *layers* is None (no layer changed)."""
    if layers is None:
        return stored, record.manifest_media_type
    doc = parse_json_object(stored, what=f"manifest {record.manifest_digest}", max_size=len(stored))
    doc["layers"] = [
        {"mediaType": media_type, "digest": digest, "size": size}
        for media_type, digest, size in layers
    ]
    if manifest_type != record.manifest_media_type:
        doc["mediaType"] = manifest_type
        doc["config"] = {**doc["config"], "mediaType": mt.OCI_CONFIG}
    return json.dumps(doc, separators=(",", ":")).encode(), manifest_type
