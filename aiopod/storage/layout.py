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
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Final

from aiopod.storage.digest import split_digest
from aiopod.storage.records import ImageRecord, StoreState

__all__ = (
    "INDEX_MEDIA_TYPE",
    "LAYOUT_FILE_CONTENT",
    "REF_NAME_ANNOTATION",
    "StoreLayout",
    "edit_index",
    "index_entries",
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
        #: The metadata (store format 2, :mod:`aiopod.storage.metadata_db`).
        self.metadata_db = self.meta / "metadata.db"
        #: The metadata of store format 1 (migrated to :attr:`metadata_db` when opened).
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
    strings: the metadata database keeps each image's descriptors as text
    (:func:`index_entries`), so a state read from it as it is renders without reading
    its images.
    """
    view = state.images.view
    if view is not None and state.images.unchanged:
        entries = view.index_entries()
    else:
        entries = [text for text in map(index_entries, state.images.values()) if text]
    return f"{_INDEX_HEAD}{','.join(entries)}]}}".encode()


def edit_index(
    current: bytes, edits: Sequence[tuple[str, str]], appended: Sequence[str]
) -> bytes | None:
    """*current* ``index.json`` (as :func:`render_index` makes it) with each image's old
    descriptors replaced by its new ones (``""`` removes them: the image lost its names
    or was removed) and the descriptors of images added last appended: the same bytes
    as rendering the new state, at the cost of a few string copies rather than of every
    image.  None when an old text is not found as a whole entry (then render instead).
    """
    text, head = current, _INDEX_HEAD.encode()  # ASCII: edited as bytes, not decoded
    if not text.startswith(head) or not text.endswith(b"]}"):
        return None
    for old_text, new_text in edits:
        old, new = old_text.encode(), new_text.encode()
        at = text.find(old, len(head) - 1)
        end = at + len(old)
        if at < 0 or text[at - 1] not in b"[," or text[end] not in b",]":
            return None
        if not new:  # the entry goes, with one of the commas around it
            if text[end] == ord(","):
                end += 1
            elif text[at - 1] == ord(","):
                at -= 1
        text = b"".join((text[:at], new, text[end:]))
    if appended:
        body_end = len(text) - 2
        comma = b"" if text[body_end - 1] == ord("[") else b","
        added = ",".join(appended).encode()
        text = b"".join((text[:body_end], comma, added, text[body_end:]))
    return text


def index_entries(record: ImageRecord) -> str:
    """The ``index.json`` descriptors of *record*, one per name, comma-separated ("" for
    an image without names)."""
    if not record.names:
        return ""
    quote = encode_basestring_ascii
    head = (
        f'{{"mediaType":{quote(record.manifest_media_type)},'
        f'"digest":{quote(record.manifest_digest)},'
        f'"size":{int(record.manifest_size)},"annotations":{{{_REF_NAME_KEY}:'
    )
    return ",".join([f"{head}{quote(name)}}}}}" for name in record.names])


_REF_NAME_KEY: Final = encode_basestring_ascii(REF_NAME_ANNOTATION)
_INDEX_HEAD: Final = (
    f'{{"schemaVersion":2,"mediaType":{encode_basestring_ascii(INDEX_MEDIA_TYPE)},"manifests":['
)
