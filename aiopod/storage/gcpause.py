"""Pausing the cyclic garbage collector around work that builds many acyclic objects.

Loading the metadata of a big store builds hundreds of thousands of objects (records,
tuples, strings), none of them in a reference cycle; the collections their allocation
triggers would traverse all of them again and again, at 100,000 images costing more than
the work itself.  Reference counting still frees everything as usual meanwhile.

The pause is process-wide (the collector has one switch): it is kept to blocks that do
not wait, and the collector runs again after the outermost block ends (if it was on).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ("paused_gc",)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block (if it was running)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
