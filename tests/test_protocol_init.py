"""SMTPProtocol builds aiosmtpd's per-connection state itself (introspection once per class);
it must end up with exactly what aiosmtpd's own constructor would have built, so an aiosmtpd
release that adds or renames an attribute fails here rather than in a session."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator
from typing import Any

import pytest

from smtpmock import SMTPMock
from smtpmock._auth import Accounts
from smtpmock._config import ServerConfig
from smtpmock._protocol import SessionSupport, SMTPProtocol
from smtpmock._server import _ServerState
from smtpmock._tls import tls_material
from smtpmock.store import MemoryStore

# Attributes whose values are per-object by nature (a new StreamReader, future, weakref each
# time); their presence and type are compared, not their values.
_PER_OBJECT = {
    "_stream_reader_wr",
    "_closed",
    "_strong_reader",
    "_drain_waiters",
    "_source_traceback",
}
_METHOD_TABLES = {"_auth_methods", "_handle_hooks", "_smtp_methods"}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _build_both(
    loop: asyncio.AbstractEventLoop, options: dict[str, Any], auth: Any
) -> tuple[SMTPProtocol, SMTPProtocol]:
    """(aiosmtpd's constructor, the fast one), for the same server state and options."""
    config = ServerConfig.from_options({**options, "auth": auth} if auth else options)
    state = _ServerState(config, MemoryStore(), loop)
    tls_context = None
    if config.tls is not None:
        tls_context = tls_material(config, "127.0.0.1").server_context()
    support = SessionSupport(
        tls_context=tls_context,
        implicit_tls=config.tls == "implicit",
        accounts=Accounts(auth) if auth else None,
    )
    built = []
    original = SMTPProtocol._fast_init
    try:
        for fast in (False, True):
            SMTPProtocol._fast_init = fast
            built.append(SMTPProtocol(state, support=support, **config.smtp_kwargs()))
    finally:
        SMTPProtocol._fast_init = original
    return built[0], built[1]


def _bound_names(table: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    """Each entry as (function, what it is bound to if anything, whether it is built in)."""
    out = {}
    for key, value in table.items():
        method = getattr(value, "method", value)  # _AuthMechAttr wraps the method
        function = getattr(method, "__func__", method)
        owner = type(getattr(method, "__self__", None)).__name__
        out[key] = (function.__qualname__, owner, getattr(value, "is_builtin", None))
    return out


@pytest.mark.parametrize(
    ("options", "auth"),
    [
        ({}, None),
        ({"hostname": "mx.test", "max_message_size": None, "idle_timeout": 7}, None),
        ({"tls": "starttls", "smtputf8": True}, {"app": "pw"}),
        ({"tls": "implicit", "auth_allow_plaintext": True}, {"app": "pw"}),
    ],
)
def test_fast_constructor_builds_what_aiosmtpd_builds(
    loop: asyncio.AbstractEventLoop, options: dict[str, Any], auth: Any
) -> None:
    slow, fast = _build_both(loop, options, auth)
    slow_vars, fast_vars = vars(slow), vars(fast)
    assert sorted(fast_vars) == sorted(slow_vars)
    for name, expected in slow_vars.items():
        got = fast_vars[name]
        if name in _METHOD_TABLES:
            assert list(got) == list(expected), name
            assert _bound_names(got) == _bound_names(expected), name
        elif name in _PER_OBJECT:
            assert type(got) is type(expected), name
        elif callable(expected):
            assert getattr(got, "__func__", got) == getattr(expected, "__func__", expected), name
        elif name not in ("session_id", "event_handler"):
            assert got == expected, name
    # No table refers to a connection (which would make each one a reference cycle): the
    # commands and built-in AUTH mechanisms are functions, the hooks belong to the handler.
    assert fast._smtp_methods["EHLO"] is SMTPProtocol.smtp_EHLO
    assert fast._handle_hooks["DATA"].__self__ is fast.event_handler is slow.event_handler
    for table in (fast._smtp_methods, fast._handle_hooks, fast._auth_methods):
        for value in table.values():
            assert not isinstance(
                getattr(getattr(value, "method", value), "__self__", None), SMTPProtocol
            )
    assert type(SMTPProtocol.command_size_limits) is type(slow.command_size_limits)


def test_slow_constructor_still_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback (aiosmtpd's own constructor) is a working server too."""
    monkeypatch.setattr(SMTPProtocol, "_fast_init", False)
    with SMTPMock() as mock:
        with smtplib.SMTP(mock.host, mock.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], b"Subject: slow\r\n\r\nx\r\n")
        [message] = mock.wait_for(1)
    assert message.subject == "slow"


def test_help_describes_commands(mock: SMTPMock) -> None:
    """aiosmtpd's HELP reads the command table; hooks must not hide the methods in it."""
    with smtplib.SMTP(mock.host, mock.port) as client:
        client.ehlo()
        code, text = client.docmd("HELP", "MAIL")
    assert code == 250
    assert b"MAIL FROM" in text
