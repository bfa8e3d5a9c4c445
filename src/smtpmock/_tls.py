"""TLS material: a run-time certificate authority and the server and client SSL contexts.

The CA and the server certificates it issues are generated with ``trustme`` once per process and
cached (generating an RSA key is what makes a naive per-test set-up cost a second; a handshake
with a cached certificate costs milliseconds). Nothing here is written under a name a client
chose: the PEM files live in one private temporary directory made by :func:`tempfile.mkdtemp`,
removed at exit.

The server context does not ask for client certificates (``CERT_NONE``) and does not check host
names: that is what a server does, and it keeps aiosmtpd from logging that the context "might
cause client connection problems".
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from ._config import ServerConfig
from ._errors import ServerStartError

__all__ = ["TLSMaterial", "tls_material"]

_lock = threading.Lock()
_issued: dict[tuple[str, ...], TLSMaterial] = {}


class _Cache:
    ca: Any = None  # trustme.CA, created on first use
    directory: str | None = None


@dataclass(frozen=True)
class TLSMaterial:
    """Where the server's certificate, key and the CA that verifies it are on disk."""

    cert_path: str
    key_path: str
    ca_path: str

    def server_context(self) -> ssl.SSLContext:
        """An SSLContext for the server side (no client certificates asked for)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_path, self.key_path)
        except (OSError, ssl.SSLError) as exc:
            raise ServerStartError(
                f"cannot load the TLS certificate {self.cert_path!r} / key {self.key_path!r}: {exc}"
            ) from exc
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSLContext for clients that verifies the server against :attr:`ca_path`."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_path)
        return context


def _private_dir() -> str:
    if _Cache.directory is None:
        _Cache.directory = tempfile.mkdtemp(prefix="smtpmock-tls-")
        atexit.register(shutil.rmtree, _Cache.directory, True)
    return _Cache.directory


def _generated(names: tuple[str, ...]) -> TLSMaterial:
    with _lock:
        found = _issued.get(names)
        if found is not None:
            return found
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - trustme is a core dependency
            raise ServerStartError(
                "tls= without tls_cert needs trustme: pip install trustme"
            ) from exc
        directory = _private_dir()
        if _Cache.ca is None:
            _Cache.ca = trustme.CA(organization_name="smtpmock test CA")
            _Cache.ca.cert_pem.write_to_path(os.path.join(directory, "ca.pem"))
        index = len(_issued)
        cert = _Cache.ca.issue_cert(*names)
        cert_path = os.path.join(directory, f"server-{index}.pem")
        key_path = os.path.join(directory, f"server-{index}.key")
        cert.cert_chain_pems[0].write_to_path(cert_path)
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(cert_path, append=True)
        cert.private_key_pem.write_to_path(key_path)
        material = TLSMaterial(cert_path, key_path, os.path.join(directory, "ca.pem"))
        _issued[names] = material
        return material


def tls_material(config: ServerConfig, host: str) -> TLSMaterial:
    """The certificate files for *config*: the user's, or generated ones (cached per process)
    valid for ``config.hostname``, the listening *host*, ``localhost``, 127.0.0.1 and ::1."""
    if config.tls_cert is not None:
        key = config.tls_key or config.tls_cert
        return TLSMaterial(config.tls_cert, key, config.tls_ca or config.tls_cert)
    names: list[str] = []
    for name in (config.hostname, host, "localhost", "127.0.0.1", "::1"):
        if name and name not in names and name not in ("0.0.0.0", "::"):
            names.append(name)
    return _generated(tuple(names))
