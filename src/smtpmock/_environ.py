"""The pytest plugin's and the unittest mixin's light half: the environment variables and the
late-mail policies, importable without the server (the plugin is loaded by every pytest run)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ._unittest import SharedServer

from ._errors import ConfigurationError

LateMailPolicy = Literal["warn", "fail", "ignore"]
LATE_MAIL_POLICIES: tuple[LateMailPolicy, ...] = ("warn", "fail", "ignore")


ENV_HOST = "SMTPMOCK_HOST"
ENV_PORT = "SMTPMOCK_PORT"
# Set next to SMTPMOCK_HOST/PORT when smtpmock itself published them (``host:port``), so that a
# nested or child test run does not take its parent's address as a request for a fixed port.
ENV_PUBLISHED = "SMTPMOCK_PUBLISHED"


def env_address(environ: Mapping[str, str] | None = None) -> tuple[str | None, int | None]:
    """The host and port asked for in ``SMTPMOCK_HOST``/``SMTPMOCK_PORT`` (``None``: not set).

    Values that smtpmock published itself for a parent run are not a request.
    """
    env = os.environ if environ is None else environ
    host, port = env.get(ENV_HOST) or None, env.get(ENV_PORT) or None
    if host is not None and port is not None and env.get(ENV_PUBLISHED) == f"{host}:{port}":
        return None, None
    if port is None:
        return host, None
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigurationError(f"{ENV_PORT} must be a port number (0-65535), not {port!r}")
    return host, number


def late_mail_report(name: str, open_transactions: list[str]) -> str:
    """The message of a :class:`LateMail` error or warning."""
    return (
        f"{len(open_transactions)} mail transaction(s) begun during {name} were still open "
        "when it ended; their mail is kept out of later tests. Wait for it (wait_for) or join "
        "the thread that sends it before the test ends:\n  " + "\n  ".join(open_transactions)
    )


# The servers of SMTPMockMixin tests, a stack: a pytest run started inside another one
# (pytester) pushes its server, or the callable that starts it at first use, and pops it, and
# the outer run's server is back in use. smtpmock._unittest reads it.
_process_servers: list[SharedServer | Callable[[], SharedServer]] = []
_process_lock = threading.RLock()  # a provider, called under it, pushes its server


def use_for_unittest(shared: SharedServer, active: bool = True) -> None:
    """Make *shared* the server of ``SMTPMockMixin`` tests while *active* (the pytest plugin's,
    under pytest, so that both see the address published in ``SMTPMOCK_HOST``/
    ``SMTPMOCK_PORT``); ``active=False`` puts back the one used before."""
    with _process_lock:
        if active:
            _process_servers.append(shared)
        elif shared in _process_servers:
            _process_servers.remove(shared)


def provide_for_unittest(start: Callable[[], SharedServer], active: bool = True) -> None:
    """Like :func:`use_for_unittest` for a server not started yet: *start* is called when an
    ``SMTPMockMixin`` test first needs it (the pytest plugin's session server, which starts at
    first use)."""
    with _process_lock:
        if active:
            _process_servers.append(start)
        elif start in _process_servers:
            _process_servers.remove(start)
