"""Run by ``test_account_names.py`` inside a private mount namespace, never imported.

``python account_names_probe.py SPEC.json`` bind-mounts the host files the spec names over
``/etc/...`` (only this namespace sees them), builds each context with buildah, computes
aiopod's digest of the same sources, and prints one JSON object:
``{context: {"buildah": [created_by...], "aiopod": [summary...]}}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    for target, source in spec["binds"].items():
        subprocess.run(["mount", "--bind", source, target], check=True)
    # Imported after the binds: nothing may have asked the name service before.
    from aiopod.builder.sources.content_digest import sources_digest
    from aiopod.builder.sources.context import resolve_sources
    from aiopod.builder.sources.ignore import IgnoreRules

    base = Path(spec["work"])
    out: dict[str, dict[str, list[str]]] = {}
    for index, (ctx, sources) in enumerate(spec["contexts"].items()):
        dockerfile = base / f"Dockerfile.{index}"
        dockerfile.write_text(
            "FROM scratch\n" + "".join(f"COPY {src} /dest{i}/\n" for i, src in enumerate(sources))
        )
        store = [
            "--root",
            str(base / "r"),
            "--runroot",
            str(base / "rr"),
            "--storage-driver",
            "vfs",
        ]
        env = {**os.environ, "TMPDIR": str(base), "BUILDAH_ISOLATION": "chroot"}
        tag = f"localhost/probe{index}"
        subprocess.run(
            ["buildah", *store, "bud", "--isolation", "chroot", "--pull=never", "-q",
             "--timestamp", "0", "-f", str(dockerfile), "-t", tag, ctx],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        inspected = subprocess.run(
            ["buildah", *store, "inspect", tag], check=True, env=env, capture_output=True
        )
        history = json.loads(inspected.stdout)["OCIv1"]["history"]
        rules = IgnoreRules.load(Path(ctx))
        out[ctx] = {
            "buildah": [h["created_by"] for h in history],
            "aiopod": [
                sources_digest(resolve_sources(Path(ctx), [src], rules), cache=None)
                for src in sources
            ],
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
