"""Finding the image a user means, in podman 4.3's order (removal-rules.md B9-B14).

1. ``sha256:<64 hex>`` is that image ID (anything else after ``sha256:`` is an error;
   B11);
2. the name candidates ``localhost/NAME[:latest]`` then ``docker.io/library/NAME[:latest]``
   (a fully qualified name is tried only as itself; B12.2, B12.4);
3. the input as a stored name, a full ID, or a *unique* ID prefix (B12.5);
4. for input with a digest, the first image (in storage order) having that digest, the
   repository part being ignored (B12.6);
5. for a short name, an image with the same tag whose repository ends in ``/NAME``
   (B12.7).

Also returns the *resolved name*: the matching candidate for step 2, the input as typed
for steps 1, 3 and 4, and the matched name for step 5.  Pure; no I/O.
"""

from __future__ import annotations

from aiopod._reference import parse_lookup_input
from aiopod.errors import ImageNotKnown, InvalidReference
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

    For ``containers-storage:NAME`` input the resolved name is empty (B9).

    :raises ~aiopod.errors.ImageNotKnown: nothing matches.
    :raises ~aiopod.errors.InvalidReference: *text* is malformed.
    """
    parsed = parse_lookup_input(text)
    if parsed.transport is not None:
        try:
            record, _ = lookup_image(state, parsed.text)
        except (ImageNotKnown, InvalidReference):
            raise ImageNotKnown(parsed.text, "image not known") from None
        return record, ""
    text = parsed.text
    if parsed.image_id is not None:
        by_id = state.images.get(parsed.image_id)
        if by_id is None:
            raise ImageNotKnown(text)
        return by_id, text
    for candidate in parsed.candidates:
        image_id = state.by_name.get(candidate)
        if image_id is not None:
            return state.images[image_id], candidate
    image_id = state.by_name.get(text)
    if image_id is not None:
        return state.images[image_id], text
    by_prefix = match_id_prefix(state, text)
    if by_prefix is not None:
        return by_prefix, text
    if parsed.digest is not None:
        for record in state.images.values():
            if parsed.digest in record.digests:
                return record, text
        raise ImageNotKnown(text)
    if not parsed.fully_qualified and parsed.reference is not None:
        suffix = "/" + parsed.reference.name + ":" + (parsed.reference.tag or "latest")
        for record in state.images.values():
            for name in record.names:
                if name.endswith(suffix) and "@" not in name:
                    return record, name
    raise ImageNotKnown(text)
