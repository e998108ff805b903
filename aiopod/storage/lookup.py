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
    found = state.with_id_prefix(prefix, limit=2)
    return found[0] if len(found) == 1 else None  # ambiguous counts as not found


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
        with_digest = state.with_digest(parsed.digest)
        if with_digest:
            return with_digest[0], text
        raise ImageNotKnown(text)
    if not parsed.fully_qualified and parsed.reference is not None:
        suffix = "/" + parsed.reference.name + ":" + (parsed.reference.tag or "latest")
        # The names first (an index of them), the images only when some name matches.
        if any(n.endswith(suffix) and "@" not in n for n in state.by_name):
            for record in state.images.values():
                for name in record.names:
                    if name.endswith(suffix) and "@" not in name:
                        return record, name
    raise ImageNotKnown(text)
