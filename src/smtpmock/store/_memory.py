from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import ClassVar

from .._message import Message
from ._base import Retention, Store


class MemoryStore(Store):
    """Messages kept in memory, in arrival order. The in-process default.

    With no :class:`Retention` limits it keeps everything until :meth:`clear`. Search, counts
    and pages test each message with the query's Python predicate (the interface's defaults).
    """

    group_commit: ClassVar[bool] = False  # no I/O: stored straight from the event loop

    def __init__(self, retention: Retention | None = None) -> None:
        super().__init__(retention)
        self._by_id: OrderedDict[str, Message] = OrderedDict()
        self._bytes = 0

    def _insert(self, message: Message) -> list[Message]:
        self._by_id[message.id] = message
        self._bytes += message.size
        if self.retention.unbounded:
            return []
        return self._evict()

    def _evict(self) -> list[Message]:
        r = self.retention
        evicted: list[Message] = []
        cutoff = self._expired_before()
        while self._by_id:
            oldest = next(iter(self._by_id.values()))
            over = (
                (r.max_messages is not None and len(self._by_id) > r.max_messages)
                or (r.max_bytes is not None and self._bytes > r.max_bytes)
                or (cutoff is not None and oldest.received_at.timestamp() < cutoff)
            )
            if not over:
                break
            self._by_id.popitem(last=False)
            self._bytes -= oldest.size
            evicted.append(oldest)
        return evicted

    def messages(self) -> list[Message]:
        with self.changed:
            return list(self._by_id.values())

    def since(self, seq: int) -> list[Message]:
        with self.changed:
            out: list[Message] = []
            for message in reversed(self._by_id.values()):
                if message.seq <= seq:
                    break
                out.append(message)
        out.reverse()
        return out

    def get(self, id: str) -> Message | None:
        with self.changed:
            return self._by_id.get(id)

    def latest(self) -> Message | None:
        with self.changed:
            if not self._by_id:
                return None
            return next(reversed(self._by_id.values()))

    def _remove(self, ids: Iterable[str]) -> list[str]:
        removed = []
        for id in ids:
            message = self._by_id.pop(id, None)
            if message is not None:
                self._bytes -= message.size
                removed.append(id)
        return removed

    def _remove_all(self) -> int:
        count = len(self._by_id)
        self._by_id.clear()
        self._bytes = 0
        return count

    def __len__(self) -> int:
        return len(self._by_id)

    # Read state and tags live on the Message objects themselves.

    def _set_read(self, ids: list[str] | None, read: bool) -> list[str]:
        chosen = self._by_id.values() if ids is None else [self._by_id.get(i) for i in ids]
        changed = []
        for message in chosen:
            if message is not None and message.read != read:
                message.read = read
                changed.append(message.id)
        return changed

    def _tags_of(
        self, *, ids: list[str] | None = None, tag: str | None = None
    ) -> dict[str, tuple[str, ...]]:
        with self.changed:
            if ids is not None:
                return {i: self._by_id[i].tags for i in ids if i in self._by_id}
            wanted = (tag or "").casefold()
            return {
                m.id: m.tags
                for m in self._by_id.values()
                if any(t.casefold() == wanted for t in m.tags)
            }

    def _write_tags(self, changes: dict[str, tuple[str, ...]]) -> None:
        for id, tags in changes.items():
            message = self._by_id.get(id)
            if message is not None:
                message.tags = tags

    def tags(self) -> list[str]:
        with self.changed:
            return sorted({t for m in self._by_id.values() for t in m.tags})

    def unread_count(self) -> int:
        with self.changed:
            return sum(1 for m in self._by_id.values() if not m.read)

    @property
    def total_bytes(self) -> int:
        return self._bytes
