"""What ``system prune`` did: :class:`SystemPruneReport`."""

from __future__ import annotations

from dataclasses import dataclass

from aiopod._display import Displayable, html_table
from aiopod._text import human_size
from aiopod.errors import AiopodError
from aiopod.removal.plan import RemovalReport

__all__ = ("SystemPruneReport",)


@dataclass(frozen=True, slots=True)
class SystemPruneReport(Displayable):
    """The two removals of a system prune, in the order they ran: ``containers`` (every
    runtime container: none runs) and ``images`` (the image prune after it), and
    ``reclaimed``, the bytes the deleted images took (as podman counts an image's size).
    """

    containers: RemovalReport
    images: RemovalReport
    reclaimed: int

    @property
    def errors(self) -> list[AiopodError]:
        """Every error of both removals."""
        return [*self.containers.errors, *self.images.errors]

    @property
    def exit_code(self) -> int:
        """The first failing removal's exit status (0 when both succeeded)."""
        return self.containers.exit_code or self.images.exit_code

    def lines(self) -> list[str]:
        """podman's output: ``Deleted Containers`` and ``Deleted Images`` with their IDs
        (each heading only when something was deleted), then the space reclaimed."""
        lines: list[str] = []
        if self.containers.removed_containers:
            lines += ["Deleted Containers", *self.containers.removed_containers]
        if self.images.deleted:
            lines += ["Deleted Images", *self.images.deleted]
        size = human_size(self.reclaimed, precision=4, separator="")
        return [*lines, f"Total reclaimed space: {size}"]

    def display_text(self) -> str:
        return "\n".join(self.lines())

    def display_html(self) -> str:
        rows = [("container", c) for c in self.containers.removed_containers]
        rows += [("image", i) for i in self.images.deleted]
        rows += [("error", e.message) for e in self.errors]
        size = human_size(self.reclaimed, precision=4, separator="")
        return html_table(["Deleted", "ID"], rows, caption=f"Total reclaimed space: {size}")
