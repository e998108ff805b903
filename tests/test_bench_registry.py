"""The registry benchmark (``benchmarks/bench_registry.py``) still runs end to end: its
``--quick`` mode (a 4 MiB image, one run of each cell) against its own docker-registry.

Only that every cell ran and was judged is checked: timings on a shared machine say
nothing about correctness, so no time is asserted."""

from __future__ import annotations

import re
import sys

import pytest
from peers import REPO_ROOT, aiopod_env, run


@pytest.mark.peer("podman")
@pytest.mark.peer("skopeo")
@pytest.mark.peer("docker-registry")
def test_the_registry_benchmark_runs_in_quick_mode() -> None:
    script = REPO_ROOT / "benchmarks" / "bench_registry.py"
    out = run([sys.executable, script, "--quick"], env=aiopod_env(), timeout=180).stdout
    table = out[out.rindex("| operation") :]
    rows = [line for line in table.splitlines() if re.match(r"\| \([a-e]\) ", line)]
    operations = [line.split("|")[2].strip() for line in rows]
    assert [op.split(",")[0].split(" vs")[0] for op in operations] == [
        "pull 3 MiB",
        "pull 3 MiB",
        "pull",
        "re-pull of a present image",
        "re-pull of a present image",
        "push of a pulled image to a new repository",
        "push of uncompressed layers (as built) to a new repository",
        "2 pulls at once into 2 fresh stores (info)",
    ]
    judged = [line for line in rows if "≤" in line.split("|")[6]]
    assert len(judged) == 6
    assert all(line.split("|")[7].strip() in ("PASS", "MISS") for line in judged)
    assert re.search(r"registry requests: aiopod \[\d+\] \(\d+ for one pull\)", out)
