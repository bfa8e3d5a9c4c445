"""smtpmock: a real SMTP server for tests.

Start one in a line, point the application at ``mock.host``/``mock.port``, wait for mail without
sleeping, and assert on fully parsed messages::

    from smtpmock import SMTPMock

    with SMTPMock() as mock:
        send_welcome_mail(host=mock.host, port=mock.port)
        [message] = mock.wait_for(1, to="bob@example.com")
        assert message.subject == "Welcome, Bob"
"""

from typing import TYPE_CHECKING, Any

from ._errors import (
    ConfigurationError,
    LateMail,
    LateMailWarning,
    MailAssertionError,
    MailboxNameError,
    MessageNotSent,
    PortInUseError,
    SearchError,
    ServerError,
    ServerStartError,
    SMTPMockError,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UnexpectedMessage,
    WaitTimeout,
)

if TYPE_CHECKING:
    from ._auth import AuthAttempt
    from ._client import Client
    from ._compat import MockSMTPServer
    from ._extract import VerificationCode
    from ._faults import FaultContext, FaultEvent, FaultRule, FaultSet
    from ._inspect import Mailbox
    from ._mcp import create_mcp_server
    from ._message import Address, Attachment, Headers, Message
    from ._query import Criteria
    from ._server import SMTPMock
    from ._transcript import Transcript, TranscriptEntry
    from ._unittest import ScopedMailbox, SMTPMockMixin, SMTPMockTestCase
    from .smtp import HookAction, SessionView
    from .store import MemoryStore, PostgresStore, Retention, SQLiteStore, Store

__version__ = "0.1.0"

__all__ = [
    "Address",
    "Attachment",
    "AuthAttempt",
    "Client",
    "ConfigurationError",
    "Criteria",
    "FaultContext",
    "FaultEvent",
    "FaultRule",
    "FaultSet",
    "Headers",
    "HookAction",
    "LateMail",
    "LateMailWarning",
    "MailAssertionError",
    "Mailbox",
    "MailboxNameError",
    "MemoryStore",
    "Message",
    "MessageNotSent",
    "MockSMTPServer",
    "PortInUseError",
    "PostgresStore",
    "Retention",
    "SMTPMock",
    "SMTPMockError",
    "SMTPMockMixin",
    "SMTPMockTestCase",
    "SQLiteStore",
    "ScopedMailbox",
    "SearchError",
    "ServerError",
    "ServerStartError",
    "SessionView",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "Store",
    "Transcript",
    "TranscriptEntry",
    "UnexpectedMessage",
    "VerificationCode",
    "WaitTimeout",
    "__version__",
    "create_mcp_server",
]

# Everything but the exceptions is imported when first asked for (PEP 562): the pytest plugin,
# which every pytest run of an environment with smtpmock loads, imports this package, and a run
# that uses no smtpmock fixture must not pay for asyncio, aiosmtpd and the email parser. Nor does
# a test that runs an in-process server on the memory store pay for sqlite3, the search index and
# the HTTP client's module.
_LAZY = {
    "Address": "._message",
    "Attachment": "._message",
    "AuthAttempt": "._auth",
    "Client": "._client",
    "Criteria": "._query",
    "FaultContext": "._faults",
    "FaultEvent": "._faults",
    "FaultRule": "._faults",
    "FaultSet": "._faults",
    "Headers": "._message",
    "HookAction": ".smtp",
    "Mailbox": "._inspect",
    "MemoryStore": ".store",
    "Message": "._message",
    "MockSMTPServer": "._compat",
    "Retention": ".store",
    "SMTPMock": "._server",
    "SMTPMockMixin": "._unittest",
    "SMTPMockTestCase": "._unittest",
    "SQLiteStore": ".store",  # .store imports it when asked, too
    "PostgresStore": ".store",
    "ScopedMailbox": "._unittest",
    "SessionView": ".smtp",
    "Store": ".store",
    "Transcript": "._transcript",
    "TranscriptEntry": "._transcript",
    "create_mcp_server": "._mcp",
    "VerificationCode": "._extract",  # its patterns take a while to compile
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
