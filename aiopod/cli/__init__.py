"""The ``aiopod`` command line (podman's commands, flags, output and exit codes).

Internal: the commands are the interface, not this package's names; programs use what
:mod:`aiopod` exports.
"""

from aiopod.cli.app import main as main

__all__ = ("main",)
