"""Message stores: where received messages live, behind one interface.

:class:`Store` is the interface and owns change notification (the condition variable that waits
sleep on, and listeners for live events). :class:`MemoryStore` is the in-process default.
Stores know nothing of SMTP or HTTP.
"""

from ._base import Retention, Store, StoreEvent
from ._memory import MemoryStore

__all__ = ["MemoryStore", "Retention", "Store", "StoreEvent"]
