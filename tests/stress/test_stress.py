"""Four processes write one store at once; the event log still tells its state exactly.

Each writer (``stress_worker.py``) runs random loads, tags, untags, ``rmi``, ``rmi -f``,
container creations and removals, builds and prunes for ``AIOPOD_STRESS_SECONDS``
(default 15) through its own runtime, on images whose names collide.  At the end no
writer failed with anything but an ``AiopodError``, ``system check`` finds nothing,
the log's hash chain verifies, and replaying the log gives exactly the store's images,
names and containers (``store_model``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from peers import aiopod_env
from store_model import verify_store
from stress_ops import prepare

WORKER = Path(__file__).with_name("stress_worker.py")
WRITERS = 4


def test_four_writers_leave_a_store_the_log_replays(tmp_path: Path) -> None:
    seconds = float(os.environ.get("AIOPOD_STRESS_SECONDS", "15"))
    seed = int(os.environ.get("AIOPOD_STRESS_SEED", "1"))
    root = tmp_path / "store"
    workdir = tmp_path / "work"
    prepare(workdir)
    started = time.monotonic()
    writers = [
        subprocess.Popen(
            [sys.executable, WORKER, root, workdir, str(seed * 100 + i), str(seconds)],
            env=aiopod_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WRITERS)
    ]
    totals: Counter[str] = Counter()
    try:
        for writer in writers:
            out, err = writer.communicate(timeout=seconds + 120)
            assert writer.returncode == 0, err
            totals.update(json.loads(out))
    finally:
        # A writer that failed must not leave the others running past the test.
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
            writer.communicate()
    elapsed = time.monotonic() - started

    verified = verify_store(root)

    done = sum(n for key, n in totals.items() if key.endswith("/ok"))
    sys.stdout.write(  # the figures, for ``pytest -s``
        f"\n{WRITERS} writers, {elapsed:.1f} s: {sum(totals.values())} operations, {done} ok\n"
        f"{json.dumps(dict(sorted(totals.items())))}\n"
        f"{verified.events} events; final store:\n{verified.view.describe()}\n"
    )
    # The run exercised what it is about: every kind of operation succeeded at least once.
    for operation in ("load", "tag", "untag", "rmi", "rmi-f", "create", "rm"):
        assert totals[f"{operation}/ok"] > 0, totals
