"""A podman store and an aiopod store holding the same images, for differential tests of
commands that report on a store (``image tree``, ``history``, ``system df``, ...).

Each image is loaded into both from its own oci-archive, in order: podman keeps an
oci-archive's manifest as it is, as aiopod does, so sizes compare too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagefactory import FakeImage, write_oci_archive
from peers import Podman, aiopod, aiopod_ok

__all__ = ("Twins", "outputs")


class Twins:
    """podman (on a private store) and aiopod's store *root*, loaded with the same images.

    ``both(*args)`` runs a command in each (``tag``, ``create``, ...) and returns the two
    results, podman's first.  Call ``cleanup`` at the end.
    """

    def __init__(self, tmp_path: Path, images: Sequence[FakeImage]) -> None:
        self.podman = Podman.create(tmp_path / "podman")
        self.root = tmp_path / "aiopod"
        for index, image in enumerate(images):
            archive = write_oci_archive(tmp_path / f"twins-{index}.tar", [image])
            self.podman("load", "-i", archive)
            aiopod_ok("load", "-i", archive, root=self.root)

    def both(
        self, *args: str
    ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        return self.podman(*args), aiopod_ok(*args, root=self.root)

    def run(
        self, *args: str, input: str | None = None, replacements: Mapping[str, str] | None = None
    ) -> tuple[tuple[str, str, int], tuple[str, str, int]]:
        """:func:`outputs` of the command in podman, then in aiopod."""
        expected = self.podman(*args, check=False, input=input)
        got = aiopod(*args, root=self.root, input=input)
        return outputs(expected, replacements), outputs(got, replacements)

    def cleanup(self) -> None:
        self.podman.cleanup()


def outputs(
    result: subprocess.CompletedProcess[str], replacements: Mapping[str, str] | None = None
) -> tuple[str, str, int]:
    """``(stdout, stderr, exit status)``, with each key of *replacements* (an ID that
    differs between the two, say) replaced, and podman's name in usage errors as
    aiopod's."""

    def same(text: str) -> str:
        for old, new in (replacements or {}).items():
            text = text.replace(old, new)
        return text.replace("`podman ", "`aiopod ")

    return same(result.stdout), same(result.stderr), result.returncode
