"""Message stores: where received messages live, behind one interface.

:class:`Store` is the interface (writes committed before they return, search with the one query
language, exact counts, pages of :class:`Summary`, a change feed) and owns change notification
(the condition variable that waits sleep on, and listeners for live events).
:class:`MemoryStore` is the in-process default; :class:`SQLiteStore` (one file, committed before
``250``) is the server's. :func:`open_store` opens the store a ``--db`` value names.
Stores know nothing of SMTP or HTTP.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .._errors import ConfigurationError
from ._base import Listing, Page, Retention, Store, StoreEvent, Summary
from ._mailbox import MailboxStore
from ._memory import MemoryStore

if TYPE_CHECKING:
    from ._postgres import PostgresStore
    from ._sqlite import SQLiteStore

__all__ = [
    "Listing",
    "MailboxStore",
    "MemoryStore",
    "Page",
    "PostgresStore",
    "Retention",
    "SQLiteStore",
    "Store",
    "StoreEvent",
    "Summary",
    "open_store",
    "shown_location",
]


def open_store(
    spec: str | os.PathLike[str] | None,
    retention: Retention | None = None,
    *,
    server: bool = False,
) -> Store:
    """The store a ``--db`` value names: ``None`` or ``":memory:"`` a :class:`MemoryStore`, a
    path a :class:`SQLiteStore` on that file (created if missing; a file that is not
    smtpmock's is refused untouched with :class:`~smtpmock.ConfigurationError`), a
    ``postgresql://`` URL a :class:`~smtpmock.store._postgres.PostgresStore` (shared by every
    instance that opens the same database; needs ``pip install 'smtpmock[postgres]'``).

    *server*: opened for a long-running server (``smtpmock serve``): SQLite parses messages
    for its search index in a worker process.
    """
    if spec is None or str(spec) == ":memory:":
        return MemoryStore(retention)
    text = os.fspath(spec)
    if text.startswith(("postgresql://", "postgres://")):
        from ._postgres import PostgresStore

        return PostgresStore(text, retention)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigurationError(
            f"unknown database URL scheme {scheme!r} in --db {text!r} (expected a file path)"
        )
    from ._sqlite import SQLiteStore

    return SQLiteStore(text, retention, index_worker=server)


def shown_location(spec: str | os.PathLike[str]) -> str:
    """A ``--db`` value fit to print: a database URL without its password."""
    text = os.fspath(spec)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    if parts.password is None:
        return text
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def __getattr__(name: str) -> Any:
    # SQLiteStore is imported when first asked for: it brings sqlite3, the search index and
    # the index worker, which an in-process server on the default memory store (the pytest
    # plugin's, loaded by every pytest run) never uses.
    if name == "SQLiteStore":
        from ._sqlite import SQLiteStore

        globals()[name] = SQLiteStore  # found directly from now on
        return SQLiteStore
    if name == "PostgresStore":  # likewise (psycopg itself only when one is opened)
        from ._postgres import PostgresStore

        globals()[name] = PostgresStore
        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
