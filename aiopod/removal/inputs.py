"""Resolving what the user asked to remove: every input is looked up first
(``docs/design/removal-rules.md`` A2 and B12), failures are recorded and skipped, and the
images found are grouped by ID in the order their first input appeared, each with the
inputs that led to it.  Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiopod.errors import AiopodError, ImageNotKnown, UsageError
from aiopod.removal.plan import RemovalOptions
from aiopod.storage.lookup import lookup_image
from aiopod.storage.records import StoreState

__all__ = ("Target", "check_usage", "resolve_targets", "targets_for")


@dataclass
class Target:
    """An image to remove and, in argument order, the (typed, resolved) inputs naming it."""

    image_id: str
    inputs: list[tuple[str, str]] = field(default_factory=list)


def check_usage(references: Sequence[str], options: RemovalOptions) -> None:
    """podman's usage errors for ``rmi`` (exit 125)."""
    if options.all and references:
        raise UsageError("when using the --all switch, you may not pass any images names or IDs")
    if not options.all and not references:
        raise UsageError("image name or ID must be specified")


def resolve_targets(
    state: StoreState, references: Sequence[str], options: RemovalOptions
) -> tuple[list[Target], list[AiopodError]]:
    """Look every reference up; return the targets and the lookup errors.

    ``ignore`` skips references that match no image; ``force`` drops "image not known"
    errors (they are neither reported nor counted in the exit code).
    """
    targets: dict[str, Target] = {}
    errors: list[AiopodError] = []
    for reference in references:
        try:
            record, resolved = lookup_image(state, reference)
        except ImageNotKnown as exc:
            if not options.ignore and not options.force:
                errors.append(exc)
            continue
        except AiopodError as exc:
            errors.append(exc)
            continue
        targets.setdefault(record.id, Target(record.id)).inputs.append((reference, resolved))
    return list(targets.values()), errors


def targets_for(
    state: StoreState,
    references: Sequence[str],
    options: RemovalOptions,
    every: Iterable[str],
) -> tuple[list[Target], list[AiopodError]]:
    """The targets of an ``rmi``: with ``-a`` every image in *every*'s order, each with an
    empty reference (remove it whole); else the images *references* name."""
    check_usage(references, options)
    if options.all:
        return [Target(image_id, [("", "")]) for image_id in every], []
    return resolve_targets(state, references, options)
