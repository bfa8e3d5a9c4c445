"""Message stores: where received messages live, behind one interface.

:class:`Store` is the interface and owns change notification (the condition variable that waits
sleep on, and listeners for live events). :class:`MemoryStore` is the in-process default;
:class:`SQLiteStore` (one file, committed before ``250``) is the server's.
Stores know nothing of SMTP or HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Retention, Store, StoreEvent
from ._memory import MemoryStore

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

__all__ = ["MemoryStore", "Retention", "SQLiteStore", "Store", "StoreEvent"]


def __getattr__(name: str) -> Any:
    # SQLiteStore is imported when first asked for: it brings sqlite3, the search index and
    # the index worker, which an in-process server on the default memory store (the pytest
    # plugin's, loaded by every pytest run) never uses.
    if name == "SQLiteStore":
        from ._sqlite import SQLiteStore

        globals()[name] = SQLiteStore  # found directly from now on
        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
