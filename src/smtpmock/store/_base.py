from __future__ import annotations

import asyncio
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from .._errors import ConfigurationError
from .._message import Message

Listener = Callable[["StoreEvent"], None]


@dataclass(frozen=True)
class StoreEvent:
    """A change to a store: messages added, messages deleted, or everything cleared."""

    kind: Literal["added", "deleted", "cleared"]
    messages: tuple[Message, ...] = ()
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retention:
    """Limits enforced when a message arrives (never exceeded), oldest messages evicted first.

    ``None`` means no limit on that axis.
    """

    max_messages: int | None = None
    max_bytes: int | None = None
    max_age: float | None = None  # seconds

    def __post_init__(self) -> None:
        for name in ("max_messages", "max_bytes", "max_age"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"retention {name} must be positive, not {value!r}")

    @property
    def unbounded(self) -> bool:
        return self.max_messages is None and self.max_bytes is None and self.max_age is None


class Store(ABC):
    """The interface of every message store.

    All methods are thread-safe. Every change notifies :attr:`changed` (a condition variable
    whose lock guards the store) and the listeners registered with :meth:`subscribe`. Listeners
    run in the thread that made the change, after the store's lock is released; they must be
    quick and must not raise (an exception from a listener is swallowed and reported through
    ``on_listener_error``).
    """

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.changed = threading.Condition(threading.RLock())
        self._listeners: list[Listener] = []
        self._last_seq = 0
        self.generation = 0
        """Incremented whenever messages are removed, so that waits know to count again."""
        self.on_listener_error: Callable[[BaseException], None] | None = None

    # --- the interface ------------------------------------------------------------------

    @abstractmethod
    def _insert(self, message: Message) -> list[Message]:
        """Store *message* (its seq already set); return the messages evicted to make room."""

    def _insert_many(self, messages: Sequence[Message]) -> list[Message]:
        """Store several messages (seqs already set) as one change; stores with transactions
        make it one transaction."""
        evicted: list[Message] = []
        for message in messages:
            evicted += self._insert(message)
        return evicted

    @abstractmethod
    def messages(self) -> list[Message]:
        """Every stored message, in arrival order."""

    @abstractmethod
    def since(self, seq: int) -> list[Message]:
        """Stored messages with ``seq`` greater than *seq*, in arrival order."""

    @abstractmethod
    def get(self, id: str) -> Message | None:
        """The message with this id, or ``None``."""

    @abstractmethod
    def _remove(self, ids: Iterable[str]) -> list[str]:
        """Remove these ids; return the ids that were there."""

    @abstractmethod
    def _remove_all(self) -> int:
        """Remove everything; return how many were removed."""

    @abstractmethod
    def __len__(self) -> int: ...

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to do for most stores
        """Release resources (files, connections)."""

    # --- shared behaviour -----------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest message ever added (0 if none)."""
        return self._last_seq

    def add(self, message: Message) -> Message:
        """Store *message*, assign its ``seq``, enforce retention, and wake waiters."""
        self.add_many((message,))
        return message

    def add_many(self, messages: Sequence[Message]) -> Sequence[Message]:
        """Store *messages* in order as one change (one transaction where the store has them:
        all are stored or, on an error, none), assign their ``seq``, enforce retention, and
        wake waiters once."""
        if not messages:
            return messages
        with self.changed:
            first = self._last_seq
            for offset, message in enumerate(messages, 1):
                message.seq = first + offset
            try:
                evicted = self._insert_many(messages)
            except BaseException:
                for message in messages:
                    message.seq = 0
                raise
            self._last_seq = first + len(messages)
            if evicted:
                self.generation += 1
            self.changed.notify_all()
        if self._listeners:  # events are built only for someone to hear them
            if evicted:
                self._emit(StoreEvent("deleted", tuple(evicted), tuple(m.id for m in evicted)))
            for message in messages:
                self._emit(StoreEvent("added", (message,)))
        return messages

    def try_add_many(self, messages: Sequence[Message]) -> bool:
        """:meth:`add_many` if the store is free right now; ``False`` (nothing done) if another
        thread holds it (an indexing pass, a search), so a caller that must not wait (an event
        loop) can hand the write to a thread instead."""
        if not self.changed.acquire(blocking=False):
            return False
        try:
            self.add_many(messages)
        finally:
            self.changed.release()
        return True

    def delete(self, ids: Iterable[str]) -> int:
        """Delete the messages with these ids; return how many existed."""
        with self.changed:
            removed = self._remove(list(ids))
            if removed:
                self.generation += 1
            self.changed.notify_all()
        if removed:
            self._emit(StoreEvent("deleted", ids=tuple(removed)))
        return len(removed)

    def clear(self) -> int:
        """Delete every message; return how many there were."""
        with self.changed:
            count = self._remove_all()
            self.generation += 1
            self.changed.notify_all()
        self._emit(StoreEvent("cleared"))
        return count

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call *listener* on every change; returns a function that unsubscribes it."""
        with self.changed:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self.changed:
                self._listeners = [x for x in self._listeners if x is not listener]

        return unsubscribe

    def _emit(self, event: StoreEvent) -> None:
        for listener in self._listeners:  # a snapshot: subscribe() replaces the list
            try:
                listener(event)
            except Exception as exc:
                if self.on_listener_error is not None:
                    self.on_listener_error(exc)

    def _expired_before(self) -> float | None:
        if self.retention.max_age is None:
            return None
        return time.time() - self.retention.max_age


class GroupCommit:
    """Deliveries from many SMTP sessions, stored by one :meth:`Store.add_many` per round.

    For a store that does I/O (SQLite): a round is written on the event loop when the store is
    free (:meth:`Store.try_add_many`: a commit of a few messages costs less than the two thread
    switches of handing it over), and in a worker thread when another thread holds the store
    (an indexing pass, a search), so the loop never waits for one. The messages that arrive
    while a round is being written go together in the next one, so under load one commit
    serves many messages. :meth:`add` returns once its message is committed (so ``250`` still
    follows the commit) and raises what storing it raised. When a round fails, its messages are
    retried one by one, so one bad message fails alone.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[Message, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((message, done))
        if self._writer is None:
            # A task of its own: a session that goes away must not cancel the others' commit.
            self._writer = loop.create_task(self._write())
        await done

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._store([m for m, _ in batch])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                        continue
                    for message, done in batch:
                        try:
                            await self._store([message])
                        except Exception as one:
                            _settle(done, one)
                        else:
                            _settle(done, None)
                    continue
                for _, done in batch:
                    _settle(done, None)
        finally:
            self._writer = None

    async def _store(self, messages: list[Message]) -> None:
        if not self.store.try_add_many(messages):
            await asyncio.to_thread(self.store.add_many, messages)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its session was cancelled (the client went away)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
