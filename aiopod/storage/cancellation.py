"""Cancelling blocking work that runs in a worker thread.

``anyio.to_thread.run_sync`` cannot interrupt the function it runs: a caller cancelled
meanwhile (Ctrl-C, SIGTERM, a timeout) would wait until the whole copy, archive or
unpack is done, and a save would even finish its output first.  The long loops (one
step per chunk of data or per archive entry) therefore call :func:`raise_if_cancelled`,
which raises the caller's cancellation in the worker thread: the loop's own clean-up
(``finally`` blocks, the output file's removal) runs, and the caller regains control
within one step.  Work under a shielded cancel scope (a commit) is never interrupted.
"""

from __future__ import annotations

import anyio.from_thread

__all__ = ("raise_if_cancelled",)


def raise_if_cancelled() -> None:
    """Raise the cancellation of the task waiting for this worker thread, if it was
    cancelled; do nothing outside a worker thread of ``anyio.to_thread.run_sync``."""
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # not a worker thread: plain synchronous use
        return
