"""The pytest plugin against a shared ``smtpmock serve``: a mailbox of its own per test session
and per xdist worker.

When ``smtpmock_url`` (ini) or ``SMTPMOCK_URL`` is set, the ``smtpmock`` fixture is a
:class:`~smtpmock.Client` of the server at that URL, scoped to the mailbox
``<session>-<worker>`` (``<session>``: ``smtpmock_mailbox_prefix``/``SMTPMOCK_MAILBOX_PREFIX``
if given, else
``SMTPMOCK_SESSION_ID`` if set, else a random id the xdist controller makes once and hands
to its workers; ``<worker>``: ``gw0``, ``gw1`` ... or ``main`` without xdist), with the
bearer token of ``smtpmock_token``/``SMTPMOCK_TOKEN``. Each test sees the mail that arrived in
that mailbox since it started.

The application under test learns where to send, and how its mail reaches the mailbox, from
the variables published when the first test asks for the fixture: ``SMTPMOCK_HOST``,
``SMTPMOCK_PORT`` (the shared server's SMTP address) and ``SMTPMOCK_MAILBOX`` (the name); the
server's ``--mailbox-rule`` decides which of a header (``X-Smtpmock-Mailbox: $SMTPMOCK_MAILBOX``
with ``header:X-Smtpmock-Mailbox``), a recipient tag (``user+$SMTPMOCK_MAILBOX@...`` with
``plus-tag``) or the SMTP AUTH user (with ``auth-user``) the application uses.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "ENV_MAILBOX",
    "ENV_PREFIX",
    "ENV_SESSION",
    "ENV_TOKEN",
    "ENV_URL",
    "RemoteRun",
    "mailbox_name",
    "remote_settings",
]

ENV_URL = "SMTPMOCK_URL"
ENV_TOKEN = "SMTPMOCK_TOKEN"
ENV_MAILBOX = "SMTPMOCK_MAILBOX"  # published: the mailbox of this process
ENV_PREFIX = "SMTPMOCK_MAILBOX_PREFIX"  # asked for: the first part of its name
ENV_SESSION = "SMTPMOCK_SESSION_ID"
MAILBOX_HEADER = "X-Smtpmock-Mailbox"


def mailbox_name(environ: Mapping[str, str], base: str | None = None) -> str:
    """``<base or session id>-<xdist worker or "main">``."""
    session = base or environ.get(ENV_SESSION) or uuid.uuid4().hex[:12]
    worker = environ.get("PYTEST_XDIST_WORKER") or "main"
    return f"{session}-{worker}"


def remote_settings(
    ini: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[str, str | None, str] | None:
    """``(url, token, mailbox)`` when a shared server is configured (the environment wins over
    the ini file), else ``None``."""
    url = environ.get(ENV_URL) or ini.get("smtpmock_url") or ""
    if not url.strip():
        return None
    token = environ.get(ENV_TOKEN) or ini.get("smtpmock_token") or None
    prefix = environ.get(ENV_PREFIX) or ini.get("smtpmock_mailbox_prefix") or None
    return url.strip(), token, mailbox_name(environ, prefix)


class RemoteRun:
    """The session's mailbox on a shared server: a scoped :class:`~smtpmock.Client`, and the
    variables that tell the application under test where its mail goes."""

    def __init__(
        self, url: str, *, mailbox: str, token: str | None = None, timeout: float = 5.0
    ) -> None:
        from ._client import Client

        self.url = url
        self.mailbox = mailbox
        self.client: Client = Client(url, mailbox=mailbox, token=token, default_timeout=timeout)
        self._saved: dict[str, str | None] = {}
        self._publish()

    def _smtp_host(self) -> str:
        host = self.client.host
        try:
            unspecified = ipaddress.ip_address(host).is_unspecified
        except ValueError:
            unspecified = False
        # A server listening on every address (0.0.0.0) is reached by the URL's host name.
        return (urlsplit(self.url).hostname or host) if unspecified else host

    def _publish(self) -> None:
        values = {
            "SMTPMOCK_HOST": self._smtp_host(),
            "SMTPMOCK_PORT": str(self.client.port),
            ENV_MAILBOX: self.mailbox,
        }
        for name, value in values.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def for_test(self) -> Client:
        """The mailbox as one test sees it: the mail that arrives from now on."""
        from ._client import Client

        return Client._view(self.client, self.client._store.last_seq)

    def close(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}
        self.client.close()
