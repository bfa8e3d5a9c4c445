"""Message stores: where received messages live, behind one interface.

:class:`Store` is the interface and owns change notification (the condition variable that waits
sleep on, and listeners for live events). :class:`MemoryStore` is the in-process default;
:class:`SQLiteStore` (one file, committed before ``250``) is the server's.
Stores know nothing of SMTP or HTTP.
"""

from ._base import Retention, Store, StoreEvent
from ._memory import MemoryStore
from ._sqlite import SQLiteStore

__all__ = ["MemoryStore", "Retention", "SQLiteStore", "Store", "StoreEvent"]
