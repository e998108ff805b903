"""Finding the image a user means, in podman 4.3's order (podman-rules.md rule 12).

1. ``sha256:<64 hex>`` is that image ID (anything else after ``sha256:`` is an error);
2. the name candidates ``localhost/NAME[:latest]`` then ``docker.io/library/NAME[:latest]``
   (a fully qualified name is tried only as itself);
3. the input as a stored name, a full ID, or a *unique* ID prefix;
4. for input with a digest, the first image (in storage order) having that digest, the
   repository part being ignored;
5. for a short name, an image with the same tag whose repository ends in ``/NAME``.

Also returns the *resolved name*: the matching candidate for step 2, the input as typed
for steps 1, 3 and 4, and the matched name for step 5.  Pure; no I/O.
"""

from __future__ import annotations

from aiopod.errors import ImageNotKnown
from aiopod.reference import (
    is_fully_qualified,
    lookup_candidates,
    parse_reference,
    parse_sha256_id,
)
from aiopod.storage.records import ImageRecord, StoreState

__all__ = ("lookup_image", "match_id_prefix")


def match_id_prefix(state: StoreState, prefix: str) -> ImageRecord | None:
    """The image whose ID is *prefix* or starts with it, if exactly one does."""
    if not prefix or len(prefix) > 64 or not all(c in "0123456789abcdef" for c in prefix):
        return None
    exact = state.images.get(prefix)
    if exact is not None:
        return exact
    found = None
    for image_id, record in state.images.items():
        if image_id.startswith(prefix):
            if found is not None:
                return None  # ambiguous counts as not found
            found = record
    return found


def lookup_image(state: StoreState, text: str) -> tuple[ImageRecord, str]:
    """The image *text* refers to and the resolved name.

    :raises ~aiopod.errors.ImageNotKnown: nothing matches.
    :raises ~aiopod.errors.InvalidReference: *text* is malformed.
    """
    if text.startswith("sha256:"):
        image_id = parse_sha256_id(text)
        assert image_id is not None
        record = state.images.get(image_id)
        if record is None:
            raise ImageNotKnown(text)
        return record, text
    for candidate in lookup_candidates(text):
        image_id = state.by_name.get(candidate)
        if image_id is not None:
            return state.images[image_id], candidate
    image_id = state.by_name.get(text)
    if image_id is not None:
        return state.images[image_id], text
    record = match_id_prefix(state, text)
    if record is not None:
        return record, text
    ref = parse_reference(text)
    if ref.digest is not None:
        for record in state.images.values():
            if ref.digest in record.digests:
                return record, text
        raise ImageNotKnown(text)
    if not is_fully_qualified(text):
        tag = ref.tag or "latest"
        suffix = "/" + ref.path + ":" + tag
        for record in state.images.values():
            for name in record.names:
                if name.endswith(suffix) and "@" not in name:
                    return record, name
    raise ImageNotKnown(text)
