"""Mailboxes in the Store contract, on every backend (``store_factory``: memory, SQLite,
PostgreSQL): a mailbox view sees, counts, pages, deletes, clears, waits on and hears about its
own messages only; ``mailboxes()`` lists names with counts; per-mailbox retention; names are
checked, never SQL.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest

from smtpmock import Mailbox, MailboxNameError, Message, Retention
from smtpmock._search import parse
from smtpmock.store import MailboxStore, Store, StoreEvent
from tests.conftest import StoreFactory
from tests.pg import back_to_schema_4
from tests.test_store_contract import _message

BOXES = ("ci-1", "ci-2", "default")


def _fill(store: Store, n: int = 12) -> dict[str, list[Message]]:
    """Message i goes to BOXES[i % 3]; every third through a view, the rest by attribute."""
    by_box: dict[str, list[Message]] = {b: [] for b in BOXES}
    for i in range(n):
        message = _message(i)
        box = BOXES[i % 3]
        if i % 2:
            store.mailbox(box).add(message)
        else:
            message.mailbox = box
            store.add(message)
        by_box[box].append(message)
    return by_box


def test_every_read_is_scoped(store_factory: StoreFactory) -> None:
    store = store_factory()
    by_box = _fill(store)
    assert store.mailboxes() == {"ci-1": 4, "ci-2": 4, "default": 4}
    assert len(store) == 12
    for name, expected in by_box.items():
        view = store.mailbox(name)
        ids = [m.id for m in expected]
        assert isinstance(view, MailboxStore)
        assert len(view) == view.count() == 4
        assert [m.id for m in view.messages()] == ids
        assert all(m.mailbox == name for m in view.messages())
        assert [m.id for m in view.since(expected[1].seq)] == ids[2:]
        assert view.latest() is not None
        assert view.latest().id == ids[-1]
        page = view.page(limit=2)
        assert page.total == 4
        assert [s.id for s in page.summaries] == ids[::-1][:2]
        assert all(s.mailbox == name for s in page.summaries)
        assert view.mailboxes() == {name: 4}
        # search and count narrow an ordinary query to the mailbox
        urgent = [m.id for m in expected if "urgent" in m.subject]
        assert [m.id for m in view.search(parse("subject:urgent"))] == urgent
        assert view.count(parse("subject:urgent")) == len(urgent)
        assert view.page(parse("subject:urgent")).total == len(urgent)
        # another mailbox's message is invisible
        other = next(m for b, ms in by_box.items() if b != name for m in ms)
        assert view.get(other.id) is None
        assert view.get(ids[0]) is not None
        assert view.total_bytes == sum(m.size for m in expected)
    # mailbox: is also a search term on the whole store
    assert store.count(parse("mailbox:ci-2")) == 4
    assert store.mailbox("never-used").messages() == []
    assert len(store.mailbox("never-used")) == 0


def test_delete_and_clear_touch_one_mailbox(store_factory: StoreFactory) -> None:
    store = store_factory()
    by_box = _fill(store)
    one, two = store.mailbox("ci-1"), store.mailbox("ci-2")
    # deleting another mailbox's id through a view deletes nothing
    assert one.delete([by_box["ci-2"][0].id]) == 0
    assert len(two) == 4
    assert one.delete([by_box["ci-1"][0].id, by_box["ci-2"][1].id]) == 1
    assert one.delete_matching(parse("subject:order")) == 3
    assert len(one) == 0
    assert len(two) == 4
    assert two.clear() == 4
    assert store.mailboxes() == {"default": 4}
    assert len(store) == 4


def test_a_wait_on_a_mailbox_ignores_other_mailboxes(store_factory: StoreFactory) -> None:
    store = store_factory()
    box = Mailbox(store.mailbox("ci-1"), default_timeout=30)
    waiting = threading.Event()
    found: list[Message] = []

    def wait() -> None:
        waiting.set()
        found.extend(box.wait_for(count=1))

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait()
    store.mailbox("ci-2").add(_message(1))  # wakes the wait, which recounts: not its mail
    store.mailbox("ci-1").add(_message(2))
    thread.join(30)
    assert not thread.is_alive()
    assert [m.subject for m in found] == ["Order 002 routine"]
    assert [m.mailbox for m in found] == ["ci-1"]
    with pytest.raises(box.WaitTimeout):
        Mailbox(store.mailbox("ci-3")).wait_for(count=1, timeout=0.05)


def test_events_of_a_mailbox_only(store_factory: StoreFactory) -> None:
    store = store_factory()
    mine: list[StoreEvent] = []
    unsubscribe = store.mailbox("ci-1").subscribe(mine.append)
    a = store.mailbox("ci-1").add(_message(0))
    b = store.mailbox("ci-2").add(_message(1))
    store.mailbox("ci-2").delete([b.id])
    store.mailbox("ci-2").clear()
    store.mailbox("ci-1").delete([a.id])
    store.clear()  # the whole store: every mailbox hears it
    unsubscribe()
    assert [(e.kind, [m.id for m in e.messages], list(e.ids)) for e in mine] == [
        ("added", [a.id], []),
        ("deleted", [], [a.id]),
        ("cleared", [], []),
    ]


def test_retention_per_mailbox_beside_the_global_limit(store_factory: StoreFactory) -> None:
    store = store_factory(Retention(max_messages=10, mailbox_max_messages=2))
    added = [store.mailbox("ci-1").add(_message(i)) for i in range(4)]
    other = store.mailbox("ci-2").add(_message(9))
    assert [m.id for m in store.mailbox("ci-1").messages()] == [m.id for m in added[2:]]
    assert [m.id for m in store.mailbox("ci-2").messages()] == [other.id]
    for i in range(10, 20):
        store.mailbox(f"m{i}").add(_message(i))
    assert len(store) == 10  # the global limit still holds


@pytest.mark.parametrize(
    "name",
    ["", "-x", ".hidden", "a/b", "../etc", "a b", "x' OR '1'='1", "a" * 65, "é", "a\n", "a;b"],
)
def test_invalid_names_are_refused_never_used(store_factory: StoreFactory, name: str) -> None:
    store = store_factory()
    store.add(_message(0))
    with pytest.raises(MailboxNameError):
        store.mailbox(name)
    with pytest.raises(MailboxNameError):
        parse(f'mailbox:"{name}"')
    assert len(store) == 1
    assert issubclass(MailboxNameError, ValueError)


def test_sqlite_file_without_the_column_is_migrated(tmp_path: object) -> None:
    """A file written before mailboxes keeps its messages, in the default mailbox."""
    from pathlib import Path

    from smtpmock.store import SQLiteStore

    path = Path(str(tmp_path)) / "old.db"
    store = SQLiteStore(path)
    kept = store.add(_message(1))
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX messages_mailbox")
    db.execute("ALTER TABLE messages DROP COLUMN mailbox")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    try:
        assert [m.id for m in store.mailbox("default").messages()] == [kept.id]
        assert store.mailboxes() == {"default": 1}
        store.mailbox("ci-1").add(_message(2))
        assert store.mailboxes() == {"ci-1": 1, "default": 1}
    finally:
        store.close()


def test_postgres_database_without_the_column_is_migrated(pg_url: str) -> None:
    """A database written before mailboxes keeps its messages, in the default mailbox."""
    psycopg = pytest.importorskip("psycopg")
    from smtpmock.store._postgres import PostgresStore

    store = PostgresStore(pg_url)
    kept = store.add(_message(1))
    store.close()
    back_to_schema_4(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP INDEX smtpmock_messages_mailbox")
        conn.execute("ALTER TABLE smtpmock_messages DROP COLUMN mailbox")
        # Mailboxes came with schema 4 (PostgresStore's migrations): such a database is of 3.
        conn.execute("DELETE FROM smtpmock_schema WHERE version > 3")
    store = PostgresStore(pg_url)
    try:
        assert [m.id for m in store.mailbox("default").messages()] == [kept.id]
        assert store.mailboxes() == {"default": 1}
        store.mailbox("ci-1").add(_message(2))
        assert store.mailboxes() == {"ci-1": 1, "default": 1}
        assert [m.mailbox for m in store.messages()] == ["default", "ci-1"]
    finally:
        store.close()


@pytest.mark.parametrize("query", [None, "invoice", "-invoice", "subject:urgent is:unread"])
def test_a_view_lists_its_own_messages_with_its_own_figures(
    store_factory: StoreFactory, query: str | None
) -> None:
    """``listing()`` of a view: its page, its unread matches, the number of its messages, its
    unread ones and its tags, as the view's separate reads give them (a backend may answer it
    at once)."""
    store = store_factory()
    by_box = _fill(store, 30)
    store.mark_read([m.id for m in by_box["ci-1"][::3]] + [m.id for m in by_box["ci-2"][:2]])
    store.set_tags([by_box["ci-1"][1].id], ["mine"])
    store.set_tags([by_box["ci-2"][0].id], ["theirs"])
    search = parse(query) if query is not None else None
    view = store.mailbox("ci-1")
    for start, limit in ((0, 50), (1, 3), (0, None)):
        listing = view.listing(search, start=start, limit=limit)
        page = view.page(search, start=start, limit=limit)
        assert [s.id for s in listing.page.summaries] == [s.id for s in page.summaries]
        assert listing.page.total == page.total
        assert {s.mailbox for s in listing.page.summaries} <= {"ci-1"}
        found = view.search(search) if search is not None else view.messages()
        assert listing.unread_matches == sum(1 for m in found if not m.read)
        assert (listing.stored, listing.unread) == (len(view), view.unread_count()) == (10, 6)
        assert listing.tags == view.tags() == ["mine"]


def test_read_state_and_tags_are_scoped(store_factory: StoreFactory) -> None:
    """A view marks, tags, renames and deletes tags of its own messages only; its tag list and
    unread count are its mailbox's; a search of the view for state terms stays in it."""
    store = store_factory()
    by_box = _fill(store, 6)
    a, b = store.mailbox("ci-1"), store.mailbox("ci-2")
    a_ids = [m.id for m in by_box["ci-1"]]
    b_ids = [m.id for m in by_box["ci-2"]]
    assert store.set_tags(b_ids, ["Shared", "b-only"]) == 2
    heard_a: list[StoreEvent] = []
    heard_b: list[StoreEvent] = []
    a.subscribe(heard_a.append)
    b.subscribe(heard_b.append)
    # A names B's ids: nothing changes
    assert a.mark_read(b_ids) == 0
    assert a.set_tags(b_ids, ["stolen"]) == 0
    assert store.unread_count() == 6
    # A's own, by id and by "every message"
    assert a.mark_read(a_ids[:1]) == 1
    assert a.mark_read() == 1
    assert a.unread_count() == 0
    assert b.unread_count() == 2
    assert store.unread_count() == 4
    assert a.set_tags(a_ids + b_ids, ["Shared"]) == 2
    assert a.tags() == ["Shared"]
    assert b.tags() == ["Shared", "b-only"]
    # B's subscribers do not hear of A's changes
    assert [(e.kind, e.mailbox) for e in heard_a] == [("updated", "ci-1")] * 3
    assert heard_a[0].ids == tuple(a_ids[:1])
    assert heard_b == []
    # renaming and deleting through A leave B's tags alone
    assert a.rename_tag("shared", "Renamed") == 2
    assert a.tags() == ["Renamed"]
    assert b.tags() == ["Shared", "b-only"]
    assert b.delete_tag("b-only") == 2
    assert a.delete_tag("shared") == 0
    assert b.tags() == ["Shared"]
    assert [m.id for m in a.search(parse("tag:Renamed is:read"))] == a_ids
    assert a.count(parse("is:unread")) == 0
    assert b.count(parse("tag:shared is:unread")) == 2
    assert all(not m.read and m.tags == ("Shared",) for m in b.messages())
    assert store.tags() == ["Renamed", "Shared"]
    # A's "mark every message unread" reaches A's only
    store.mark_read(b_ids)
    assert a.mark_read(read=False) == 2
    assert b.unread_count() == 0
