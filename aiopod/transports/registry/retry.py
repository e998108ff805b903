"""When a registry request is tried again, and how long to wait first.

podman retries a pull or push three times by default (``--retry 3``) on network errors
and server errors; aiopod retries each request instead, so that a failed request does
not repeat the transfers that already succeeded:

* retried: a connection that could not be made or broke before the answer (refused,
  reset, timed out), and the answers ``408``, ``429``, ``500``, ``502``, ``503``,
  ``504``;
* never retried: anything else (``401``/``403`` after authenticating, ``404``, other
  ``4xx``), nor a verification failure (a digest, a size, a limit), which is no
  accident of the network;
* the wait before retry *n* (1, 2, ...) is ``delay`` when one is set (podman's
  ``--retry-delay``), else 1 s doubled each time (1, 2, 4 s ...); a ``Retry-After``
  answer (seconds or an HTTP date) is honoured instead, up to ``max_delay``.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

__all__ = ("RETRYABLE_STATUS", "RetryPolicy", "parse_retry_after")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait that a ``Retry-After`` header asks for, or ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` after the first attempt (podman's ``--retry``, default 3); ``delay``
    a fixed wait between them (``--retry-delay``; ``None`` doubles from ``base``);
    ``max_delay`` the longest wait, whatever a server asks."""

    retries: int = 3
    delay: float | None = None
    base: float = 1.0
    max_delay: float = 60.0

    def wait(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before retry number *attempt* (1 for the first retry)."""
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(asked, self.max_delay)
        if self.delay is not None:
            return min(self.delay, self.max_delay)
        return min(self.base * float(2 ** (attempt - 1)), self.max_delay)
