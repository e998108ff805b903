"""aiopod: Podman's image runtime as a Python asyncio library."""

from aiopod.errors import (
    AiopodError as AiopodError,
)

__all__ = ("AiopodError",)
