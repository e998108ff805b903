"""Reading the small configuration files of registries (``registries.conf``, auth files):
whole, under a size limit, a missing file being no file at all.

Blocking file I/O: the callers run in worker threads.
"""

from __future__ import annotations

from pathlib import Path

from aiopod.errors import ConfigurationError

__all__ = ("read_config_file",)


def read_config_file(path: Path, limit: int, context: str) -> bytes | None:
    """The bytes of *path*, or ``None`` when it does not exist.

    :raises ~aiopod.errors.ConfigurationError: it cannot be read, or is larger than
        *limit* bytes; the message starts with *context* (``reading auth file X``).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigurationError(f"{context}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigurationError(f"{context}: larger than {limit} bytes")
    return data
