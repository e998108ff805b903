"""The exit codes of the command line: which error exits with which status.

The library's errors carry no exit status (:mod:`aiopod.errors`); the command line gives
them podman's, by class: 1 when an image or a container is not known, 2 when a container
uses the image, 125 for anything else, and for a failed ``RUN`` the command's own status
(``podman build`` exits with it).  Some commands exit 125 whatever the error (podman's
``tag``, ``untag`` and ``save`` do so even for "image not known"; see
:func:`aiopod.cli.app.run`).

A removal (``rmi``, ``image prune``, ``rm``) does not raise its errors: its report's
``exit_code`` is the status, a verdict over all of them that the removal policy gives
(:class:`aiopod.RemovalReport`).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiopod.errors import (
    AiopodError,
    BuildError,
    ContainerNotKnown,
    ImageInUse,
    ImageNotKnown,
    ManifestUnknown,
)

__all__ = ("EXIT_CODES", "OTHER_ERROR", "exit_code_of")

#: The exit status of every other error.
OTHER_ERROR = 125

#: The exit status of an error by class: the first class of the error's method resolution
#: order that is listed decides (a subclass of :class:`ImageNotKnown` exits 1 too).
EXIT_CODES: Mapping[type[AiopodError], int] = {
    ManifestUnknown: OTHER_ERROR,  # podman's pull exits 125 for "manifest unknown"
    ImageNotKnown: 1,
    ContainerNotKnown: 1,
    ImageInUse: 2,
}


def exit_code_of(error: AiopodError) -> int:
    """The status the command line exits with when its call raised *error*."""
    if isinstance(error, BuildError) and error.command_status is not None:
        return error.command_status
    for cls in type(error).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return OTHER_ERROR
