"""One writer of the multi-process stress test: random operations on a shared store.

``python stress_worker.py ROOT WORKDIR SEED SECONDS`` runs operations drawn from
``random.Random(SEED)`` for SECONDS through one :class:`aiopod.Runtime`.  An
:class:`aiopod.errors.AiopodError` is an outcome (a name another writer took, an image
in use); anything else is a bug: the traceback goes to stderr and the exit status is 1.
Prints a JSON object of counts ``{"operation/outcome": n}`` on success.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import anyio

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parent.parent)]

from stress_ops import random_operation  # noqa: E402

from aiopod import Runtime  # noqa: E402
from aiopod.errors import AiopodError  # noqa: E402


async def main(root: Path, workdir: Path, seed: int, seconds: float) -> Counter[str]:
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    step = 0
    async with Runtime(root) as rt:
        while time.monotonic() < deadline:
            step += 1
            try:
                operation = await random_operation(rt, rng, workdir, f"{seed}-{step}")
                counts[f"{operation}/ok"] += 1
            except AiopodError as exc:
                counts[f"{type(exc).__name__}"] += 1
    return counts


if __name__ == "__main__":
    root, workdir, seed, seconds = sys.argv[1:5]
    result = anyio.run(main, Path(root), Path(workdir), int(seed), float(seconds))
    sys.stdout.write(json.dumps(dict(result), sort_keys=True) + "\n")
