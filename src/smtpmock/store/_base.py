"""The :class:`Store` interface every backend implements, and what it returns.

A store keeps messages in arrival order and answers the questions the in-process server, the
HTTP API, :class:`~smtpmock.Client` and the pytest plugin ask of it, without any of them knowing
which backend is behind it:

* **writes** (:meth:`Store.add`, :meth:`Store.add_many`, :meth:`Store.delete`,
  :meth:`Store.delete_matching`, :meth:`Store.clear`) are committed before they return (the SMTP
  side answers ``250`` after :meth:`Store.add` returns); the backend assigns ``seq`` and enforces
  :class:`Retention` in the same transaction. A backend that cannot write raises
  :class:`~smtpmock.StorageFull` (no space: SMTP ``452 4.3.1``) or
  :class:`~smtpmock.StorageUnavailable` (unreachable: SMTP ``451 4.3.0``), and then has stored
  nothing of the call.
* **reads** return Python objects: :class:`~smtpmock.Message`, :class:`Summary` (a list entry,
  no body), :class:`Page`. Search takes the one query language (:class:`~smtpmock._search.Search`,
  Mailpit's syntax), compiled by each backend to its own query with the same semantics
  (substring, case-insensitive); counts are exact.
* **the change feed**: :attr:`Store.changed` (a condition variable notified on every change,
  which waits sleep on), :attr:`Store.generation` (bumped when messages go away, so waits
  recount), :attr:`Store.last_seq`, and :meth:`Store.subscribe` (listeners get a
  :class:`StoreEvent` per change). A backend shared by several processes reports the changes made
  elsewhere through :meth:`Store._publish`, so a wait in one process wakes on mail another took.
* **read state and tags** (Mailpit's): :meth:`Store.mark_read`, :meth:`Store.set_tags`,
  :meth:`Store.rename_tag`, :meth:`Store.delete_tag`, :meth:`Store.tags`,
  :meth:`Store.unread_count`. They live beside the message, not in its bytes: a loaded message
  carries them as :attr:`Message.read` and :attr:`Message.tags`, a :class:`Summary` as ``read``
  and ``tags``, and the search language tests them (``is:read``, ``tag:x``). Changes are
  ``updated`` events. Nothing in smtpmock's own reading (waits, :class:`~smtpmock.Client`,
  the in-process mailbox) changes them.

JSON shapes are not the store's business: they live in ``smtpmock._http._wire``.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from .._errors import ConfigurationError
from .._message import Address, Message
from .._search import unread_among

if TYPE_CHECKING:
    from .._search import IndexFields, Search
    from ._mailbox import MailboxStore

__all__ = [
    "MAX_TAG_CHARS",
    "UPDATED_IDS_MAX",
    "GroupCommit",
    "Listener",
    "Listing",
    "Page",
    "Retention",
    "Store",
    "StoreEvent",
    "Summary",
    "clean_tag",
    "clean_tags",
]

Listener = Callable[["StoreEvent"], None]

SNIPPET_CHARS = 250
"""Characters of body text in a :attr:`Summary.snippet`."""


UPDATED_IDS_MAX = 1000
"""Ids an ``updated`` event names at most; a change to more names none (``ids`` empty: any
message may have changed), so that marking a large mailbox read is not a huge event."""

MAX_TAG_CHARS = 100
"""The longest tag name accepted (Mailpit sets no limit; a limit keeps a shared server sane)."""

# Mailpit's tag characters: letters, digits, "-", "_", "." and spaces; any other character
# becomes a space, runs of spaces one space, and the ends are trimmed (as Mailpit's CleanTag).
_TAG_INVALID = re.compile(r"[^A-Za-z0-9\-_. ]")
_SPACES = re.compile(r"\s+")


def clean_tag(name: str) -> str:
    """*name* as Mailpit stores a tag: characters other than ``A-Z a-z 0-9 - _ .`` and space
    replaced by spaces, spaces collapsed, ends trimmed (``""``: nothing usable). A name longer
    than :data:`MAX_TAG_CHARS` is a :class:`~smtpmock.ConfigurationError`."""
    cleaned = _SPACES.sub(" ", _TAG_INVALID.sub(" ", name)).strip()
    if len(cleaned) > MAX_TAG_CHARS:
        raise ConfigurationError(
            f"tag {cleaned[:20]!r}... is longer than {MAX_TAG_CHARS} characters"
        )
    return cleaned


def clean_tags(names: Iterable[str]) -> tuple[str, ...]:
    """The tags to set for *names*: each cleaned (:func:`clean_tag`), empty ones dropped,
    duplicates (ignoring case) kept once as first written, sorted as Mailpit sorts them."""
    out: dict[str, str] = {}
    for name in names:
        tag = clean_tag(name)
        if tag:
            out.setdefault(tag.casefold(), tag)
    return tuple(sorted(out.values()))


@dataclass(frozen=True)
class StoreEvent:
    """A change to a store: messages added, deleted, updated, or everything cleared.

    ``added`` carries the messages (a backend that learns of mail added by another process
    loads them before publishing); ``deleted`` carries the ids (and the messages when the
    backend has them at hand, as for those evicted by retention); ``updated`` carries the ids
    of messages whose read state or tags changed (``ids`` empty: possibly any message, as
    after renaming a tag elsewhere); ``cleared`` carries nothing.
    ``mailbox``: the one mailbox the change concerns, when the store knows it (a delete made
    through :meth:`Store.mailbox`); ``None``: any.
    """

    kind: Literal["added", "deleted", "cleared", "updated"]
    messages: tuple[Message, ...] = ()
    ids: tuple[str, ...] = ()
    mailbox: str | None = None


@dataclass(frozen=True)
class Retention:
    """Limits enforced when a message arrives (never exceeded), oldest messages evicted first.

    ``None`` means no limit on that axis. ``mailbox_max_messages`` limits each mailbox on its
    own (its oldest messages evicted when a new one arrives), beside the global limits.
    """

    max_messages: int | None = None
    max_bytes: int | None = None
    max_age: float | None = None  # seconds
    mailbox_max_messages: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_messages", "max_bytes", "max_age", "mailbox_max_messages"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"retention {name} must be positive, not {value!r}")

    @property
    def unbounded(self) -> bool:
        return self.max_messages is None and self.max_bytes is None and self.max_age is None


def snippet(text: str) -> str:
    """The start of *text* with its whitespace runs made single spaces, at most
    :data:`SNIPPET_CHARS` long."""
    head = text[: SNIPPET_CHARS * 4]
    short = " ".join(head.split())
    if len(short) < SNIPPET_CHARS and len(head) < len(text):
        short = " ".join(text.split())  # mostly whitespace: normalise it all
    return short[:SNIPPET_CHARS]


@dataclass(frozen=True)
class Summary:
    """A message as a list entry: envelope, the main header fields, size, attachment counts
    and the start of its text. Never a body beyond :attr:`snippet`.

    What listing and search pages return (:class:`Page`), read by a backend without parsing the
    message again. Plain Python values; the JSON shapes are the HTTP side's.
    """

    id: str
    seq: int
    received_at: _dt.datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str = ""
    message_id: str = ""  # without its angle brackets
    from_: Address | None = None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[str, ...] = ()  # envelope recipients named in no header
    reply_to: tuple[Address, ...] = ()
    size: int = 0
    attachments: int = 0
    inline: int = 0
    snippet: str = ""
    auth_user: str | None = None
    read: bool = False
    tags: tuple[str, ...] = ()
    mailbox: str = "default"

    @classmethod
    def of(cls, message: Message, fields: IndexFields | None = None) -> Summary:
        """The summary of *message* (*fields*: its :func:`~smtpmock._search.index_fields`,
        when the caller has them already). Never raises: a message whose parsing fails
        anyway is summarised by its envelope (:meth:`of_envelope`)."""
        try:
            if fields is None:
                from .._search import index_fields

                fields = index_fields(message)
            return cls(
                id=message.id,
                seq=message.seq,
                received_at=message.received_at,
                mail_from=message.mail_from,
                rcpt_tos=tuple(message.rcpt_tos),
                subject=message.subject,
                message_id=(message.message_id or "").strip("<>"),
                from_=_address(message.from_) if message.from_ else None,
                to=tuple(_address(a) for a in message.to),
                cc=tuple(_address(a) for a in message.cc),
                bcc=tuple(message.bcc),
                reply_to=tuple(_address(a) for a in message.reply_to),
                size=message.size,
                attachments=fields.attachments,
                inline=fields.inline,
                snippet=snippet(message.text or ""),
                auth_user=message.auth_user,
                read=message.read,
                tags=message.tags,
                mailbox=message.mailbox,
            )
        except Exception:
            # Never expected (parsing records defects instead of raising), but one message
            # must not stop a listing: it is listed by its envelope.
            return cls.of_envelope(message)

    @classmethod
    def of_envelope(cls, message: Message) -> Summary:
        """A summary from the envelope alone (no parsing)."""
        return cls(
            id=message.id,
            seq=message.seq,
            received_at=message.received_at,
            mail_from=message.mail_from,
            rcpt_tos=tuple(message.rcpt_tos),
            size=message.size,
            auth_user=message.auth_user,
            read=message.read,
            tags=message.tags,
            mailbox=message.mailbox,
        )


def _address(value: tuple[str, str]) -> Address:
    return Address(*value)


@dataclass(frozen=True)
class Page:
    """One page of a listing or a search: the exact number of matches, and the summaries of
    the page's messages in the order asked for."""

    total: int
    summaries: list[Summary]


@dataclass(frozen=True)
class Listing:
    """What a view of a mailbox shows: a :class:`Page` of a listing or a search, how many of
    its matches are unread, and the store's own figures beside it (the messages stored, the
    unread among them, every tag in use)."""

    page: Page
    unread_matches: int
    stored: int
    unread: int
    tags: list[str]


def separate_listing(
    store: Store, query: Search | None, *, start: int, limit: int | None
) -> Listing:
    """:meth:`Store.listing` from *store*'s separate reads."""
    page = store.page(query, start=start, limit=limit)
    unread = store.unread_count()
    matches = store.count(unread_among(query)) if query else unread
    return Listing(page, matches, len(store), unread, store.tags())


class Store(ABC):
    """The interface of every message store.

    All methods are thread-safe. Every change notifies :attr:`changed` (a condition variable
    whose lock guards the store) and the listeners registered with :meth:`subscribe`. Listeners
    run in the thread that made the change (or, for changes made by another process sharing
    the store, the backend's listening thread), after the store's lock is released; they must
    be quick and must not raise (an exception from a listener is swallowed and reported through
    ``on_listener_error``).

    A backend implements the storage hooks (:meth:`_insert_many` or :meth:`_insert`,
    :meth:`_remove`, :meth:`_remove_all`) and the reads :meth:`messages`, :meth:`since`,
    :meth:`get` and ``__len__``; the other reads (:meth:`latest`, :meth:`search`,
    :meth:`count`, :meth:`page`, :attr:`total_bytes`) have correct but scanning defaults here,
    which a backend with an index overrides.
    """

    group_commit: ClassVar[bool] = True
    """Whether :meth:`add_many` does I/O: then the SMTP server groups concurrent deliveries
    into one call (:class:`GroupCommit`) and keeps it off its event loop when the store is
    busy. ``False`` for a store in memory, which is stored straight from the loop."""

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.changed = threading.Condition(threading.RLock())
        self._listeners: list[Listener] = []
        self._last_seq = 0
        self.generation = 0
        """Incremented whenever messages are removed, so that waits know to count again."""
        self.on_listener_error: Callable[[BaseException], None] | None = None

    # --- what a backend implements ---------------------------------------------------------

    def _insert_many(self, messages: Sequence[Message]) -> list[Message]:
        """Store *messages* in order as one transaction, assign each its ``seq`` (greater
        than every ``seq`` assigned before, in this process or any other sharing the store),
        enforce :attr:`retention` and return the messages evicted to make room.

        Called with :attr:`changed` held. On failure nothing of the call is stored (and
        :class:`~smtpmock.StorageFull` / :class:`~smtpmock.StorageUnavailable` say why).
        This default gives seqs from this process's counter (:meth:`_assign_seqs`) and stores
        the messages one by one with :meth:`_insert`.
        """
        self._assign_seqs(messages)
        evicted: list[Message] = []
        for message in messages:
            evicted += self._insert(message)
        return evicted

    def _insert(self, message: Message) -> list[Message]:
        """Store one *message* (its seq already set); return the messages evicted to make room
        (for a backend that keeps the default :meth:`_insert_many`)."""
        raise NotImplementedError

    def _assign_seqs(self, messages: Sequence[Message]) -> None:
        """Number *messages* after :attr:`last_seq` (for a store only this process writes)."""
        first = self._last_seq
        for offset, message in enumerate(messages, 1):
            message.seq = first + offset

    @abstractmethod
    def _remove(self, ids: Iterable[str]) -> list[str]:
        """Remove these ids (one transaction); return the ids that were there."""

    @abstractmethod
    def _remove_all(self) -> int:
        """Remove everything; return how many were removed."""

    @abstractmethod
    def messages(self) -> list[Message]:
        """Every stored message, in arrival (``seq``) order."""

    @abstractmethod
    def since(self, seq: int) -> list[Message]:
        """Stored messages with ``seq`` greater than *seq*, in arrival order."""

    @abstractmethod
    def get(self, id: str) -> Message | None:
        """The message with this id, or ``None``."""

    @abstractmethod
    def __len__(self) -> int:
        """How many messages are stored."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to do for most stores
        """Release resources (files, connections, threads)."""

    # --- reads with scanning defaults -------------------------------------------------------

    def latest(self) -> Message | None:
        """The newest message, or ``None``."""
        found = self.messages()
        return found[-1] if found else None

    def search(
        self, query: Search | None, *, after: int = 0, before: int | None = None
    ) -> list[Message]:
        """Whole messages matching *query* (``None``: all) with ``after < seq <= before``,
        oldest first."""
        return [
            m
            for m in self.since(after)
            if (before is None or m.seq <= before) and (query is None or query.matches(m))
        ]

    def count(
        self, query: Search | None = None, *, after: int = 0, before: int | None = None
    ) -> int:
        """How many messages match *query* with ``after < seq <= before`` (exact)."""
        return len(self.search(query, after=after, before=before))

    def page(
        self,
        query: Search | None = None,
        *,
        start: int = 0,
        limit: int | None = 50,
        after: int = 0,
        newest_first: bool = True,
    ) -> Page:
        """The summaries of matches ``start`` to ``start + limit`` (``None``: to the end) of
        *query* among the messages with ``seq > after``, newest first unless
        *newest_first* is false, and the exact number of matches."""
        found = self.search(query, after=after)
        if newest_first:
            found.reverse()
        cut = found[start:] if limit is None else found[start : start + limit]
        return Page(len(found), [Summary.of(m) for m in cut])

    def listing(
        self, query: Search | None = None, *, start: int = 0, limit: int | None = 50
    ) -> Listing:
        """:meth:`page` (newest first) with the figures a view shows beside it (see
        :class:`Listing`). A backend that can answers it from one snapshot, in one round
        trip: here it is the separate reads."""
        return separate_listing(self, query, start=start, limit=limit)

    def _mailbox_listing(
        self, name: str, query: Search | None, *, start: int, limit: int | None
    ) -> Listing:
        """:meth:`listing` of mailbox *name*'s view (its figures its own): the view's
        separate reads here, at once where a backend can."""
        return separate_listing(self.mailbox(name), query, start=start, limit=limit)

    @property
    def total_bytes(self) -> int:
        """The sum of the sizes of the stored messages."""
        return sum(m.size for m in self.messages())

    # --- shared behaviour -----------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest message ever added (0 if none)."""
        return self._last_seq

    def add(self, message: Message) -> Message:
        """Store *message*, assign its ``seq``, enforce retention, and wake waiters; committed
        when this returns."""
        self.add_many((message,))
        return message

    def add_many(self, messages: Sequence[Message]) -> Sequence[Message]:
        """Store *messages* in order as one change (one transaction where the store has them:
        all are stored or, on an error, none), assign their ``seq``, enforce retention, and
        wake waiters once."""
        if not messages:
            return messages
        with self.changed:
            try:
                evicted = self._insert_many(messages)
            except BaseException:
                for message in messages:
                    message.seq = 0
                raise
            self._last_seq = max(self._last_seq, messages[-1].seq)
            if evicted:
                self.generation += 1
            self.changed.notify_all()
        if self._listeners:  # events are built only for someone to hear them
            if evicted:
                self._emit(StoreEvent("deleted", tuple(evicted), tuple(m.id for m in evicted)))
            for message in messages:
                self._emit(StoreEvent("added", (message,)))
        self._enforce_mailbox_retention(messages)
        return messages

    def _enforce_mailbox_retention(self, messages: Sequence[Message]) -> None:
        """Evict the oldest messages of each mailbox *messages* went to beyond
        :attr:`Retention.mailbox_max_messages` (right after the add, before it returns)."""
        limit = self.retention.mailbox_max_messages
        if limit is None:
            return
        for name in sorted({m.mailbox for m in messages}):
            over = self._count_mailbox(name) - limit
            if over > 0:
                self.delete(self._oldest_in_mailbox(name, over), mailbox=name)

    def try_add_many(self, messages: Sequence[Message]) -> bool:
        """:meth:`add_many` if the store is free right now; ``False`` (nothing done) if another
        thread holds it (an indexing pass, a search), so a caller that must not wait (an event
        loop) can hand the write to a thread instead. A backend whose every write waits on
        the network overrides this to return ``False`` always."""
        if not self.changed.acquire(blocking=False):
            return False
        try:
            self.add_many(messages)
        finally:
            self.changed.release()
        return True

    def delete(self, ids: Iterable[str], *, mailbox: str | None = None) -> int:
        """Delete the messages with these ids; return how many existed. *mailbox*: the one
        mailbox they are all in, when the caller knows it (said in the ``deleted`` event)."""
        with self.changed:
            removed = self._remove(list(ids))
            if removed:
                self.generation += 1
            self.changed.notify_all()
        if removed:
            self._emit(StoreEvent("deleted", ids=tuple(removed), mailbox=mailbox))
        return len(removed)

    def delete_matching(self, query: Search) -> int:
        """Delete the messages matching *query*; return how many there were."""
        return self.delete([m.id for m in self.search(query)])

    def clear(self) -> int:
        """Delete every message; return how many there were."""
        with self.changed:
            count = self._remove_all()
            self.generation += 1
            self.changed.notify_all()
        self._emit(StoreEvent("cleared"))
        return count

    # --- read state and tags (Mailpit's) --------------------------------------------------
    #
    # A backend implements _set_read, _tags_of, _write_tags, tags and unread_count; the
    # public methods below validate, find what changes, and publish one ``updated`` event.

    def _set_read(self, ids: list[str] | None, read: bool) -> list[str]:
        """Set the read state of the messages with these ids (``None``: every message);
        return the ids whose state changed. Called by :meth:`_state_change`."""
        raise NotImplementedError(f"{type(self).__name__} keeps no read state")

    def _tags_of(
        self, *, ids: list[str] | None = None, tag: str | None = None
    ) -> dict[str, tuple[str, ...]]:
        """``{id: tags}`` of the stored messages with these *ids*, or of those carrying *tag*
        (compared ignoring case)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no tags")

    def _write_tags(self, changes: dict[str, tuple[str, ...]]) -> None:
        """Replace the tags of each message id in *changes* (one transaction)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no tags")

    def tags(self) -> list[str]:
        """Every tag some stored message carries, sorted."""
        raise NotImplementedError(f"{type(self).__name__} keeps no tags")

    def unread_count(self) -> int:
        """How many stored messages are not marked read."""
        raise NotImplementedError(f"{type(self).__name__} keeps no read state")

    def _state_change(self, change: Callable[[], list[str]]) -> int:
        """Run *change* (which returns the ids it changed) as one change of the store: waits
        are woken and one ``updated`` event names the ids."""
        with self.changed:
            ids = change()
            if ids:
                self.changed.notify_all()
        if ids:
            named = tuple(ids) if len(ids) <= UPDATED_IDS_MAX else ()
            self._emit(StoreEvent("updated", ids=named))
        return len(ids)

    def mark_read(self, target: Iterable[str] | Search | None = None, read: bool = True) -> int:
        """Mark messages read (``read=False``: unread): those with the ids *target* names,
        those matching the search *target*, or every message (``None``). Returns how many
        changed state. Nothing in smtpmock marks a message read except this (and Mailpit's
        ``GET /api/v1/message/{ID}``, which does as Mailpit does)."""
        from .._search import Search

        if isinstance(target, Search):
            ids: list[str] | None = [s.id for s in self.page(target, limit=None).summaries]
        elif target is None:
            ids = None
        else:
            ids = [str(i) for i in target]
        if ids is not None and not ids:
            return 0
        return self._state_change(lambda: self._set_read(ids, read))

    def set_tags(self, ids: Iterable[str], tags: Iterable[str]) -> int:
        """Replace the tags of the messages with these ids by *tags* (cleaned as Mailpit does:
        :func:`clean_tags`; an empty list removes them all). Returns how many changed."""
        wanted = clean_tags(tags)
        chosen = [str(i) for i in ids]
        if not chosen:
            return 0

        def change() -> list[str]:
            current = self._tags_of(ids=chosen)
            changes = {i: wanted for i, had in current.items() if had != wanted}
            if changes:
                self._write_tags(changes)
            return list(changes)

        return self._state_change(change)

    def rename_tag(self, old: str, new: str) -> int:
        """Rename the tag *old* (ignoring case) to *new* on every message carrying it (a
        message that has both keeps one). Returns how many messages changed; a *new* that
        cleans to nothing is a :class:`~smtpmock.ConfigurationError`."""
        name = clean_tag(new)
        if not name:
            raise ConfigurationError(f"{new!r} is not a tag name (letters, digits, - _ . space)")
        wanted = old.casefold()

        def change() -> list[str]:
            current = self._tags_of(tag=old)
            changes: dict[str, tuple[str, ...]] = {}
            for id, had in current.items():
                now = clean_tags([name if t.casefold() == wanted else t for t in had])
                if now != had:
                    changes[id] = now
            if changes:
                self._write_tags(changes)
            return list(changes)

        return self._state_change(change)

    def delete_tag(self, tag: str) -> int:
        """Remove the tag (ignoring case) from every message; the messages stay. Returns how
        many messages changed."""
        wanted = tag.casefold()

        def change() -> list[str]:
            current = self._tags_of(tag=tag)
            changes = {
                id: tuple(t for t in had if t.casefold() != wanted) for id, had in current.items()
            }
            if changes:
                self._write_tags(changes)
            return list(changes)

        return self._state_change(change)

    # --- mailboxes --------------------------------------------------------------------------

    def mailbox(self, name: str) -> MailboxStore:
        """This store seen through one mailbox: a :class:`Store` whose every read, search,
        count, page, delete, clear, wait and event concerns the messages of mailbox *name*
        only (and whose adds deliver to it). *name* is checked
        (:class:`~smtpmock.MailboxNameError`); a mailbox with no message is empty, not an
        error."""
        from ._mailbox import MailboxStore

        return MailboxStore(self, name)

    def mailboxes(self) -> dict[str, int]:
        """The names of the mailboxes that hold messages, with how many each holds (sorted by
        name)."""
        counts: dict[str, int] = {}
        for message in self.messages():
            counts[message.mailbox] = counts.get(message.mailbox, 0) + 1
        return dict(sorted(counts.items()))

    def _oldest_in_mailbox(self, name: str, n: int) -> list[str]:
        """The ids of the *n* oldest messages of mailbox *name* (a backend with a column
        overrides this: no search index needed)."""
        return [s.id for s in self.mailbox(name).page(limit=n, newest_first=False).summaries]

    def _count_mailbox(self, name: str) -> int:
        """How many messages mailbox *name* holds (a backend with a column overrides this)."""
        return self.count(self.mailbox(name).scoped(None))

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call *listener* on every change; returns a function that unsubscribes it."""
        with self.changed:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self.changed:
                self._listeners = [x for x in self._listeners if x is not listener]

        return unsubscribe

    def _publish(self, event: StoreEvent) -> None:
        """Record and broadcast a change made by another process sharing the store (for a
        backend's listening thread): moves :attr:`last_seq`, bumps :attr:`generation` when
        messages went away, wakes waiters and calls the listeners."""
        with self.changed:
            if event.kind == "added":
                newest = max((m.seq for m in event.messages), default=0)
                self._last_seq = max(self._last_seq, newest)
            elif event.kind != "updated":  # read state and tags: nothing went away
                self.generation += 1
            self.changed.notify_all()
        self._emit(event)

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
