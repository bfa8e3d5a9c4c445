"""smtpmock's SMTP engine: a sans-IO session and a thin asyncio transport.

* :mod:`._session`: :class:`Session`, the state machine (bytes in, events out, replies as
  bytes), with its :class:`Settings` and events; no sockets, no asyncio, no threads.
* :mod:`._paths`: MAIL/RCPT paths and parameters.
* :mod:`._view`: :class:`SessionView` (what hooks and fault rules see of a session),
  :class:`HookAction` (what they answer) and :class:`StageHooks` (a server's hooks).
* :mod:`._transport`: :class:`SMTPConnection` (an ``asyncio.Protocol``) and
  :class:`ServerContext` (what the connections of one server share).

Nothing outside this package touches a session's internals.
"""

from ._session import (
    AuthAttempted,
    Authenticator,
    CloseConnection,
    Command,
    Envelope,
    Event,
    MessageReceived,
    Session,
    Settings,
    StartTLS,
    State,
    with_enhanced_code,
)
from ._transport import ServerContext, SMTPConnection
from ._view import HookAction, SessionView, StageHook, StageHooks

__all__ = [
    "AuthAttempted",
    "Authenticator",
    "CloseConnection",
    "Command",
    "Envelope",
    "Event",
    "HookAction",
    "MessageReceived",
    "SMTPConnection",
    "ServerContext",
    "Session",
    "SessionView",
    "Settings",
    "StageHook",
    "StageHooks",
    "StartTLS",
    "State",
    "with_enhanced_code",
]
