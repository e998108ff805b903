"""The OCI image layout at the store root: where blobs live and what ``index.json`` says.

The store root is a valid OCI image layout so that ``skopeo inspect oci:ROOT:NAME`` and
``umoci unpack --image ROOT:NAME`` work on a live store.  ``index.json`` is derived from
aiopod's metadata: one manifest descriptor per image name, named by the full reference
in ``org.opencontainers.image.ref.name``.  aiopod never reads it back; it rewrites it
after every change (and when recovering), so it cannot disagree with the metadata for
longer than one commit.
"""

from __future__ import annotations

import os
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Final

from aiopod.storage.digest import split_digest
from aiopod.storage.records import StoreState

__all__ = (
    "INDEX_MEDIA_TYPE",
    "LAYOUT_FILE_CONTENT",
    "REF_NAME_ANNOTATION",
    "StoreLayout",
    "render_index",
)

REF_NAME_ANNOTATION: Final = "org.opencontainers.image.ref.name"
INDEX_MEDIA_TYPE: Final = "application/vnd.oci.image.index.v1+json"
LAYOUT_FILE_CONTENT: Final = b'{"imageLayoutVersion":"1.0.0"}'


class StoreLayout:
    """Paths of one store root."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.meta = self.root / "aiopod"
        self.images_json = self.meta / "images.json"
        self.lock_file = self.meta / "store.lock"
        self.journal = self.meta / "journal"
        self.tmp = self.meta / "tmp"
        self.containers = self.meta / "containers"
        #: Space held back for removals on a full disk (see :mod:`aiopod.storage.store`).
        self.reserve = self.meta / "reserve"
        self.index_json = self.root / "index.json"
        self.oci_layout = self.root / "oci-layout"

    def blob_path(self, digest: str) -> Path:
        """The file of a blob; the digest is validated before any path is formed."""
        algorithm, encoded = split_digest(digest)
        return self.blobs / algorithm / encoded


def render_index(state: StoreState) -> bytes:
    """``index.json`` for *state*: a manifest descriptor per name, in storage order.

    The same bytes as ``json.dumps`` of the document (compact, ASCII), put together from
    strings: at 100,000 images building the dictionaries first costs more than the text.
    """
    quote = encode_basestring_ascii
    manifests = []
    for record in state.images.values():
        if not record.names:
            continue
        head = (
            f'{{"mediaType":{quote(record.manifest_media_type)},'
            f'"digest":{quote(record.manifest_digest)},'
            f'"size":{int(record.manifest_size)},"annotations":{{{_REF_NAME_KEY}:'
        )
        manifests.extend([f"{head}{quote(name)}}}}}" for name in record.names])
    return f"{_INDEX_HEAD}{','.join(manifests)}]}}".encode()


_REF_NAME_KEY: Final = encode_basestring_ascii(REF_NAME_ANNOTATION)
_INDEX_HEAD: Final = (
    f'{{"schemaVersion":2,"mediaType":{encode_basestring_ascii(INDEX_MEDIA_TYPE)},"manifests":['
)
