"""A loopback HTTP server for tests of remote sources (``ADD <url>``).

:func:`serve_files` serves a directory on ``127.0.0.1`` at a free port, in a thread, the
way a plain web server does (``Last-Modified`` from the file's mtime), plus three kinds of
path for the cases a real server produces:

* ``/redirect/<path>`` answers ``302 Found`` with ``Location: /<path>``;
* ``/status/<code>`` answers that status with an empty body;
* ``/undated/<path>`` serves the file without a ``Last-Modified`` header.

Every request path is recorded in :attr:`HttpFiles.requests`.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ("HttpFiles", "serve_files")


@dataclass
class HttpFiles:
    """A running server: files under :attr:`root` are at ``url + "/" + relative path``."""

    root: Path
    url: str
    requests: list[str] = field(default_factory=list)


def _handler(files: HttpFiles) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(files.root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            files.requests.append(self.path)
            if self.path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/redirect"))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.startswith("/status/"):
                self.send_response(int(self.path.removeprefix("/status/")))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path.startswith("/undated/"):
                body = (files.root / self.path.removeprefix("/undated/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                super().do_GET()

    return Handler


@contextlib.contextmanager
def serve_files(root: Path) -> Iterator[HttpFiles]:
    """Serve ``root`` until the block ends (see the module docstring)."""
    files = HttpFiles(root, "")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    files.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield files
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
