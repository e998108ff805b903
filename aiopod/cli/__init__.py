"""The ``aiopod`` command line (podman's commands, flags, output and exit codes)."""

from aiopod.cli.app import main as main

__all__ = ("main",)
