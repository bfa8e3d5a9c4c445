"""SMTP protocol glue: aiosmtpd's ``SMTP`` with smtpmock's session state and stage hooks.

This module turns an SMTP conversation into :class:`~smtpmock.Message` objects and hands them to
a ``deliver`` callable; it knows nothing about how they are stored or inspected.

Stage hooks are how features that must act *before* aiosmtpd answers a command (fault
injection, transcripts, limits) plug in without editing aiosmtpd's state machine: each hook is
``async def hook(protocol, stage, arg) -> bool`` and returns ``True`` when it has already answered
(or closed) so the command must not run. Stages are ``"connect"``, each command verb as sent in
upper case (``"EHLO"``, ``"MAIL"``, ``"RCPT"``, ``"DATA"``, ...), and ``"DATA_END"`` (the message
is complete, before it is stored; the hook's argument is the :class:`Message`, and a hook that
refuses it sets ``protocol.data_end_reply`` to the reply to send instead of pushing it).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP

from ._message import Message

if TYPE_CHECKING:
    from ._server import _ServerState

__all__ = ["SMTPProtocol", "StageHook"]

StageHook = Callable[["SMTPProtocol", str, Any], Awaitable[bool]]


class SMTPProtocol(SMTP):
    """One SMTP connection."""

    def __init__(self, state: _ServerState, **kwargs: Any) -> None:
        self.state = state
        self.session_id = uuid.uuid4().hex
        self.data_end_reply: str | None = None
        handler = _Handler(self)
        super().__init__(handler, loop=state.loop, **kwargs)
        if state.hooks:
            # aiosmtpd dispatches commands through this dict, built once per connection: wrap
            # each entry so the stage hooks see the command before aiosmtpd acts on it.
            self._smtp_methods = {
                verb: self._hooked(verb, method) for verb, method in self._smtp_methods.items()
            }

    def _hooked(
        self, verb: str, method: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        async def run(arg: Any) -> None:
            if await self.run_hooks(verb, arg):
                return
            await method(arg)

        return run

    async def run_hooks(self, stage: str, arg: Any = None) -> bool:
        """Run the stage hooks in order; ``True`` if one of them handled the stage."""
        for hook in self.state.hooks:
            if await hook(self, stage, arg):
                return True
        return False

    # -- connection lifecycle ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the first call, not the one after STARTTLS
            self.state.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.state.connections.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self.state.hooks and await self.run_hooks("connect"):
            return
        await super()._handle_client()


class _Handler:
    """aiosmtpd's handler: builds the Message at end of data and delivers it."""

    def __init__(self, protocol: SMTPProtocol) -> None:
        self._protocol = protocol

    async def handle_DATA(self, server: SMTPProtocol, session: Any, envelope: Any) -> str:
        state = server.state
        ssl_object = session.ssl
        message = Message(
            envelope.original_content or b"",
            mail_from=envelope.mail_from or "",
            rcpt_tos=envelope.rcpt_tos,
            peer=_peer(session.peer),
            helo=session.host_name or None,
            received_at=_dt.datetime.now(_dt.timezone.utc),
            tls=ssl_object is not None,
            tls_version=_tls_version(ssl_object),
            auth_user=_auth_user(session),
            mail_options=envelope.mail_options,
            smtputf8=bool(getattr(envelope, "smtp_utf8", False)),
            session_id=server.session_id,
        )
        if state.hooks and await server.run_hooks("DATA_END", message):
            # A hook refused the message; aiosmtpd pushes whatever we return, so the hook
            # leaves its reply here rather than pushing it itself.
            return server.data_end_reply or "451 4.3.0 message refused"
        await state.deliver(message)
        return f"250 2.0.0 OK: queued as {message.id}"

    async def handle_exception(self, error: Exception) -> str:
        self._protocol.state.record_error(error)
        return "451 4.3.0 smtpmock internal error (the test will see it on check()/stop())"


def _peer(peer: Any) -> tuple[str, int] | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    return None


def _tls_version(ssl_info: Any) -> str | None:
    if not ssl_info:
        return None
    ssl_object = ssl_info.get("ssl_object") if isinstance(ssl_info, dict) else None
    if ssl_object is None:
        return None
    version = ssl_object.version()
    return str(version) if version else None


def _auth_user(session: Any) -> str | None:
    if not session.authenticated:
        return None
    login = session.login_data
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    if login is not None:
        return str(login)
    data = session.auth_data
    user = getattr(data, "login", None)
    if isinstance(user, bytes):
        return user.decode("utf-8", "replace")
    return str(user) if user is not None else None
