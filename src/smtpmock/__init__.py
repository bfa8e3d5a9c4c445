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

from ._auth import AuthAttempt
from ._compat import MockSMTPServer
from ._errors import (
    ConfigurationError,
    LateMail,
    LateMailWarning,
    MailAssertionError,
    MessageNotSent,
    PortInUseError,
    ServerError,
    ServerStartError,
    SMTPMockError,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UnexpectedMessage,
    WaitTimeout,
)
from ._faults import FaultContext, FaultEvent, FaultRule, FaultSet
from ._inspect import Mailbox
from ._message import Address, Attachment, Headers, Message
from ._query import Criteria
from ._server import SMTPMock
from ._transcript import Transcript, TranscriptEntry
from ._unittest import (
    ScopedMailbox,
    SMTPMockMixin,
    SMTPMockTestCase,
)
from .store import MemoryStore, Retention, Store

if TYPE_CHECKING:
    from ._client import Client
    from .store import PostgresStore, SQLiteStore

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
    "LateMail",
    "LateMailWarning",
    "MailAssertionError",
    "Mailbox",
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
    "ServerError",
    "ServerStartError",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "Store",
    "Transcript",
    "TranscriptEntry",
    "UnexpectedMessage",
    "WaitTimeout",
    "__version__",
]

# Imported when first asked for, so that ``import smtpmock`` (and the pytest plugin, which every
# pytest run loads) does not pay for sqlite3, the search index and the HTTP client's module when
# a test only runs an in-process server on the memory store.
# .store imports the stores when asked, too
_LAZY = {"Client": "._client", "SQLiteStore": ".store", "PostgresStore": ".store"}


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
