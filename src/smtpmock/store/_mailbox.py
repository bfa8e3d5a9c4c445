"""One mailbox of a store, seen as a store of its own (:meth:`Store.mailbox`).

Every message carries the name of its mailbox (:attr:`~smtpmock.Message.mailbox`, a column of
the SQLite and PostgreSQL stores). :class:`MailboxStore` implements the whole :class:`Store`
interface over its parent with every query narrowed by a ``mailbox:`` search term, which each
backend compiles like any other term (a Python comparison for memory, ``mailbox = ?`` for SQL,
the name always a parameter). So the callers of a store (the inspection API, the HTTP API, the
web UI, waits) are scoped by handing them a view instead of the store, unchanged.

The view shares its parent's lock, condition variable, generation and seq counter, so a wait
on a view wakes on every arrival and recounts in its own mailbox.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from .._search import Search, Term, check_mailbox_name, in_mailbox
from ._base import UPDATED_IDS_MAX, Listener, Listing, Page, Store, StoreEvent

if TYPE_CHECKING:
    from .._message import Message

__all__ = ["MailboxStore"]


class MailboxStore(Store):
    """The messages of mailbox :attr:`name` in :attr:`parent`, as a :class:`Store`.

    Reads, searches, counts, pages, deletes, :meth:`clear` and events concern that mailbox
    only; :meth:`add` delivers to it. Messages of other mailboxes are invisible: :meth:`get`
    of another mailbox's id is ``None`` and :meth:`delete` of it deletes nothing.
    """

    def __init__(self, parent: Store, name: str) -> None:
        # The state lives in the parent: no Store.__init__ here.
        self.parent = parent
        self.name = check_mailbox_name(name)
        self.retention = parent.retention
        self.changed: threading.Condition = parent.changed
        self.on_listener_error = parent.on_listener_error

    def __repr__(self) -> str:
        return f"<MailboxStore {self.name!r} of {self.parent!r}>"

    @property
    def generation(self) -> int:
        return self.parent.generation

    @generation.setter
    def generation(self, value: int) -> None:
        self.parent.generation = value

    @property
    def last_seq(self) -> int:
        return self.parent.last_seq

    def scoped(self, query: Search | None) -> Search:
        """*query* (``None``: everything) narrowed to this mailbox."""
        return in_mailbox(query, self.name)

    # --- writes ---------------------------------------------------------------------------

    def add_many(self, messages: Sequence[Message]) -> Sequence[Message]:
        for message in messages:
            message.mailbox = self.name
        return self.parent.add_many(messages)

    def try_add_many(self, messages: Sequence[Message]) -> bool:
        for message in messages:
            message.mailbox = self.name
        return self.parent.try_add_many(messages)

    def delete(self, ids: Iterable[str], *, mailbox: str | None = None) -> int:
        mine = [id for id in dict.fromkeys(ids) if self.get(id) is not None]
        return self.parent.delete(mine, mailbox=self.name) if mine else 0

    def delete_matching(self, query: Search) -> int:
        found = self.parent.page(self.scoped(query), limit=None, newest_first=False)
        ids = [s.id for s in found.summaries]
        return self.parent.delete(ids, mailbox=self.name) if ids else 0

    def clear(self) -> int:
        """Delete every message of this mailbox (and no other)."""
        return self.delete_matching(Search("", ()))

    def _remove(self, ids: Iterable[str]) -> list[str]:
        return self.parent._remove([id for id in ids if self.get(id) is not None])

    def _remove_all(self) -> int:
        return self.clear()

    # --- reads ----------------------------------------------------------------------------

    def messages(self) -> list[Message]:
        return self.parent.search(self.scoped(None))

    def since(self, seq: int) -> list[Message]:
        return self.parent.search(self.scoped(None), after=seq)

    def get(self, id: str) -> Message | None:
        message = self.parent.get(id)
        return message if message is not None and message.mailbox == self.name else None

    def latest(self) -> Message | None:
        newest = self.parent.page(self.scoped(None), limit=1).summaries
        return self.get(newest[0].id) if newest else None

    def __len__(self) -> int:
        return self.parent._count_mailbox(self.name)

    def search(
        self, query: Search | None, *, after: int = 0, before: int | None = None
    ) -> list[Message]:
        return self.parent.search(self.scoped(query), after=after, before=before)

    def count(
        self, query: Search | None = None, *, after: int = 0, before: int | None = None
    ) -> int:
        if (query is None or not query.terms) and not after and before is None:
            return len(self)
        return self.parent.count(self.scoped(query), after=after, before=before)

    def page(
        self,
        query: Search | None = None,
        *,
        start: int = 0,
        limit: int | None = 50,
        after: int = 0,
        newest_first: bool = True,
    ) -> Page:
        return self.parent.page(
            self.scoped(query), start=start, limit=limit, after=after, newest_first=newest_first
        )

    def listing(
        self, query: Search | None = None, *, start: int = 0, limit: int | None = 50
    ) -> Listing:
        return self.parent._mailbox_listing(self.name, query, start=start, limit=limit)

    def _mailbox_listing(
        self, name: str, query: Search | None, *, start: int, limit: int | None
    ) -> Listing:
        return self.mailbox(name).listing(query, start=start, limit=limit)

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.page(limit=None).summaries)

    def mailbox(self, name: str) -> MailboxStore:
        return self if name == self.name else self.parent.mailbox(name)

    def mailboxes(self) -> dict[str, int]:
        count = len(self)
        return {self.name: count} if count else {}

    def _count_mailbox(self, name: str) -> int:
        return self.parent._count_mailbox(name) if name == self.name else 0

    # --- events ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call *listener* on the changes of this mailbox: its messages added, its messages
        deleted, the whole store cleared. A deletion the store cannot place in a mailbox (by
        id, from the unscoped store or another process) is passed on as ids only."""
        name = self.name

        def scoped(event: StoreEvent) -> None:
            if event.kind == "cleared":
                listener(event)
                return
            if event.mailbox is not None:
                if event.mailbox == name:
                    listener(event)
                return
            if event.kind == "added" or event.messages:
                mine = tuple(m for m in event.messages if m.mailbox == name)
                if mine:
                    ids = tuple(m.id for m in mine) if event.kind == "deleted" else ()
                    listener(StoreEvent(event.kind, mine, ids, name))
                return
            listener(event)  # ids only, place unknown: opaque ids, no content

        return self.parent.subscribe(scoped)

    def _publish(self, event: StoreEvent) -> None:
        self.parent._publish(event)

    def close(self) -> None:
        """Nothing: the parent store owns the resources."""

    # --- read state and tags --------------------------------------------------------------
    #
    # The public methods of Store (mark_read, set_tags, rename_tag, delete_tag) run here
    # unchanged: their hooks below see only this mailbox's messages, so a view can neither
    # read nor change the state of another mailbox's message.

    def _mine(self, ids: Iterable[str]) -> list[str]:
        """The ids among *ids* of messages in this mailbox."""
        wanted = list(dict.fromkeys(ids))
        if len(wanted) <= 64:
            return [id for id in wanted if self.get(id) is not None]
        held = {s.id for s in self.page(limit=None).summaries}
        return [id for id in wanted if id in held]

    def _state_change(self, change: Callable[[], list[str]]) -> int:
        # As the parent does (under the lock unless the parent holds none over a change, as
        # PostgreSQL), but the ``updated`` event names this mailbox: other views ignore it.
        locked = type(self.parent)._state_change is Store._state_change
        with self.changed if locked else contextlib.nullcontext():
            ids = change()
        if ids:
            with self.changed:
                self.changed.notify_all()
            named = tuple(ids) if len(ids) <= UPDATED_IDS_MAX else ()
            self.parent._emit(StoreEvent("updated", ids=named, mailbox=self.name))
        return len(ids)

    def _set_read(self, ids: list[str] | None, read: bool) -> list[str]:
        if ids is None:  # those of this mailbox whose state would change
            other = _state_search("unread" if read else "read")
            mine = [s.id for s in self.page(other, limit=None).summaries]
        else:
            mine = self._mine(ids)
        return self.parent._set_read(mine, read) if mine else []

    def _tags_of(
        self, *, ids: list[str] | None = None, tag: str | None = None
    ) -> dict[str, tuple[str, ...]]:
        if ids is not None:
            mine = self._mine(ids)
            return self.parent._tags_of(ids=mine) if mine else {}
        found = self.parent._tags_of(tag=tag)
        held = set(self._mine(found))
        return {id: tags for id, tags in found.items() if id in held}

    def _write_tags(self, changes: dict[str, tuple[str, ...]]) -> None:
        self.parent._write_tags(changes)  # ids from _tags_of: this mailbox's

    def tags(self) -> list[str]:
        """Every tag some message of this mailbox carries, sorted."""
        tagged = self.page(_state_search("tagged"), limit=None).summaries
        return sorted({tag for summary in tagged for tag in summary.tags})

    def unread_count(self) -> int:
        """How many messages of this mailbox are not marked read."""
        return self.count(_state_search("unread"))


def _state_search(kind: str) -> Search:
    """The search ``is:<kind>`` (read, unread, tagged)."""
    return Search(f"is:{kind}", (Term("is", kind, False),))
