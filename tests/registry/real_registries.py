"""Debian's ``docker-registry`` (distribution 2.8) with htpasswd Basic authentication and,
optionally, TLS with a CA of the tests' own.

:func:`secure_registry` starts one on ``127.0.0.1:<free port>`` and yields a
:class:`SecureRegistry`: its address, the user and password, and for TLS the CA
certificate and a ``certs.d`` tree (``certs.d/127.0.0.1:PORT/ca.crt``) to point
``--cert-dir`` or ``HOME/.config/containers/certs.d`` at.  The CA and the server's
certificate are made at test time with the ``openssl`` command; the htpasswd entry is
bcrypt (the only hash the registry accepts), made with the ``bcrypt`` package.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import Service, free_port, require_peer, wait_until

__all__ = ("PASSWORD", "USER", "SecureRegistry", "secure_registry")

USER = "alice"
#: A password with characters a shell or a URL would mangle, to catch any quoting slip.
PASSWORD = "s3cr3t!pw:with colon&amp"


@dataclass(frozen=True)
class SecureRegistry:
    address: str
    user: str
    password: str
    ca: Path | None = None
    certs_d: Path | None = None

    @property
    def host_cert_dir(self) -> Path:
        assert self.certs_d is not None
        return self.certs_d / self.address


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca_and_server_cert(base: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost: (ca.crt,
    server.crt, server.key)."""
    require_peer("openssl")
    ca_key, ca_crt = base / "ca.key", base / "ca.crt"
    key, csr, crt = base / "server.key", base / "server.csr", base / "server.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
             "-days", "2", "-subj", "/CN=aiopod-test-ca")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
             "-subj", "/CN=127.0.0.1")  # fmt: skip
    extensions = base / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
             "-out", crt, "-days", "2", "-extfile", extensions)  # fmt: skip
    return ca_crt, crt, key


def _ready(address: str, ca: Path | None) -> bool:
    scheme = "https" if ca is not None else "http"
    context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
    try:
        with urllib.request.urlopen(f"{scheme}://{address}/v2/", timeout=2, context=context):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False


@contextlib.contextmanager
def secure_registry(*, tls: bool) -> Iterator[SecureRegistry]:
    require_peer("docker-registry")
    bcrypt = pytest.importorskip("bcrypt")
    base = Path(tempfile.mkdtemp(prefix="aiopod-secure-registry-"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    htpasswd = base / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"{USER}:{hashed}\n")
    ca = certs_d = None
    tls_lines = ""
    if tls:
        ca, crt, key = make_ca_and_server_cert(base)
        certs_d = base / "certs.d"
        (certs_d / address).mkdir(parents=True)
        shutil.copy(ca, certs_d / address / "ca.crt")
        tls_lines = f"  tls:\n    certificate: {crt}\n    key: {key}\n"
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
        f"auth:\n  htpasswd:\n    realm: aiopod-test\n    path: {htpasswd}\n"
        f"http:\n  addr: {address}\n  secret: aiopod-test-secret\n{tls_lines}"
    )
    service = Service.start(["docker-registry", "serve", config], base / "registry.log")
    try:
        wait_until(lambda: _ready(address, ca), 30, "docker-registry", service)
        yield SecureRegistry(address, USER, PASSWORD, ca, certs_d)
    finally:
        service.stop(grace=10)
        shutil.rmtree(base, ignore_errors=True)
