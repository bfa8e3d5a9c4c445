"""The Store contract, run against every backend (``store_factory`` in ``tests/conftest.py``).

What the in-process server, the HTTP API, ``Client`` and the pytest plugin rely on, whatever
the backend: ``seq`` assigned on add and increasing (also across a clear), reads by id and
newest, deletes that say how many existed, search with exact counts and pages (expected results
computed from how the corpus was built, not from the query engine under test), retention that
is never exceeded (also with several writers), change events, and waits that wake on a change.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest

from smtpmock import ConfigurationError, Mailbox, Message, Retention, WaitTimeout
from smtpmock._search import parse
from smtpmock.store import Page, Store, StoreEvent, Summary
from tests.conftest import StoreFactory

N = 30


def _message(i: int) -> Message:
    """Message *i* of the corpus: every search below is a function of *i*."""
    urgency = "urgent" if i % 4 == 0 else "routine"
    paperwork = "invoice attached" if i % 2 == 0 else "no paperwork"
    raw = (
        f"From: Sender {i % 5} <sender{i % 5}@example.com>\r\n"
        f"To: user{i % 3}@example.org\r\n"
        f"Subject: Order {i:03d} {urgency}\r\n"
        f"Message-ID: <m{i}@example.com>\r\n"
        "\r\n"
        f"Hello,\r\n{paperwork} ref-{i}\r\n"
    ).encode()
    return Message(
        raw,
        mail_from=f"sender{i % 5}@example.com",
        rcpt_tos=[f"user{i % 3}@example.org"],
        peer=("127.0.0.1", 40000 + i),
        helo="client.example",
        received_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i),
    )


# query -> which corpus messages (by i) match it
QUERIES: dict[str, Callable[[int], bool]] = {
    "to:user1@example.org": lambda i: i % 3 == 1,
    "subject:urgent": lambda i: i % 4 == 0,
    "invoice": lambda i: i % 2 == 0,
    "INVOICE subject:Urgent": lambda i: i % 4 == 0,
    "-invoice": lambda i: i % 2 == 1,
    'subject:"order 01"': lambda i: 10 <= i <= 19,
    "from:sender2": lambda i: i % 5 == 2,
    "ef-1": lambda i: i == 1 or 10 <= i <= 19,
    "invoice from:sender3": lambda i: i % 2 == 0 and i % 5 == 3,
    "message-id:m7@": lambda i: i == 7,
    "nosuchword": lambda i: False,
}


@pytest.fixture
def corpus(store_factory: StoreFactory) -> tuple[Store, list[Message]]:
    store = store_factory()
    messages = [_message(i) for i in range(N)]
    store.add_many(messages[:10])  # one transaction
    for message in messages[10:]:
        store.add(message)
    return store, messages


def test_add_assigns_increasing_seqs_and_keeps_everything(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert len(store) == 0
    assert store.last_seq == 0
    assert store.latest() is None
    first = store.add(_message(0))
    assert first.seq == 1
    assert store.last_seq == 1
    batch = store.add_many([_message(1), _message(2), _message(3)])
    assert [m.seq for m in batch] == [2, 3, 4]
    assert store.last_seq == 4
    assert len(store) == 4
    assert store.total_bytes == sum(_message(i).size for i in range(4))
    again = store.get(batch[1].id)
    assert again is not None
    original = _message(2)
    assert again.raw == original.raw  # the exact bytes
    assert (again.id, again.seq, again.mail_from, again.rcpt_tos) == (
        batch[1].id,
        3,
        original.mail_from,
        original.rcpt_tos,
    )
    assert again.peer == ("127.0.0.1", 40002)
    assert again.helo == "client.example"
    assert again.received_at == original.received_at
    assert again.subject == "Order 002 routine"


def test_reads_in_arrival_order(corpus: tuple[Store, list[Message]]) -> None:
    store, messages = corpus
    assert [m.id for m in store.messages()] == [m.id for m in messages]
    assert [m.seq for m in store.since(25)] == [26, 27, 28, 29, 30]
    assert store.since(N) == []
    latest = store.latest()
    assert latest is not None
    assert latest.id == messages[-1].id
    assert store.get("no-such-id") is None


def test_delete_clear_and_generation(corpus: tuple[Store, list[Message]]) -> None:
    store, messages = corpus
    generation = store.generation
    assert store.delete([messages[0].id, messages[1].id, "no-such-id"]) == 2
    assert store.generation > generation
    assert store.get(messages[0].id) is None
    assert len(store) == N - 2
    generation = store.generation
    assert store.delete(["no-such-id"]) == 0
    assert store.generation == generation  # nothing went away: waits need not recount
    assert store.delete_matching(parse("subject:urgent")) == len(
        [i for i in range(2, N) if i % 4 == 0]
    )
    assert store.count(parse("subject:urgent")) == 0
    assert store.count(parse("invoice")) == len([i for i in range(2, N) if i % 4 == 2])
    before = store.last_seq
    remaining = len(store)
    assert store.clear() == remaining
    assert len(store) == 0
    assert store.messages() == []
    assert store.total_bytes == 0
    assert store.count(parse("invoice")) == 0
    assert store.page(None).total == 0
    # seq keeps increasing after a clear: a capture's floor stays meaningful.
    assert store.add(_message(99)).seq == before + 1
    assert store.count(parse("ref-99")) == 1


def test_clear_returns_how_many_there_were(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.add_many([_message(i) for i in range(5)])
    assert store.clear() == 5
    assert store.clear() == 0


@pytest.mark.parametrize("query", list(QUERIES))
def test_search_count_and_page_are_exact(corpus: tuple[Store, list[Message]], query: str) -> None:
    store, messages = corpus
    search = parse(query)
    want = [m for i, m in enumerate(messages) if QUERIES[query](i)]
    ids = [m.id for m in want]
    assert [m.id for m in store.search(search)] == ids
    assert store.count(search) == len(want)
    # Newest first, pages that add up, the exact total on each.
    page = store.page(search, limit=4)
    assert isinstance(page, Page)
    assert page.total == len(want)
    assert [s.id for s in page.summaries] == ids[::-1][:4]
    second = store.page(search, start=4, limit=4)
    assert second.total == len(want)
    assert [s.id for s in second.summaries] == ids[::-1][4:8]
    oldest = store.page(search, limit=None, newest_first=False)
    assert [s.id for s in oldest.summaries] == ids
    oldest_second = store.page(search, start=2, limit=3, newest_first=False)
    assert [s.id for s in oldest_second.summaries] == ids[2:5]
    assert store.page(search, start=len(want) + 5).summaries == []
    # Bounds on seq.
    middle = messages[N // 2].seq
    later = [m.id for m in want if m.seq > middle]
    assert [m.id for m in store.search(search, after=middle)] == later
    assert store.count(search, after=middle) == len(later)
    assert store.page(search, after=middle, limit=None).total == len(later)
    upto = [m.id for m in want if m.seq <= middle]
    assert [m.id for m in store.search(search, before=middle)] == upto
    assert store.count(search, before=middle) == len(upto)
    window = [m.id for m in want if 5 < m.seq <= middle]
    assert store.count(search, after=5, before=middle) == len(window)


def test_no_query_means_everything(corpus: tuple[Store, list[Message]]) -> None:
    store, _messages = corpus
    assert store.count() == N
    assert store.count(None, after=10, before=20) == 10
    assert [m.seq for m in store.search(None, after=27)] == [28, 29, 30]
    page = store.page(None, start=1, limit=2)
    assert page.total == N
    assert [s.seq for s in page.summaries] == [N - 1, N - 2]


def test_summaries_are_plain_values_without_bodies(corpus: tuple[Store, list[Message]]) -> None:
    store, messages = corpus
    (summary,) = store.page(parse("message-id:m4@")).summaries
    assert isinstance(summary, Summary)
    assert summary.id == messages[4].id
    assert summary.seq == 5
    assert summary.subject == "Order 004 urgent"
    assert summary.from_ is not None
    assert (summary.from_.name, summary.from_.address) == ("Sender 4", "sender4@example.com")
    assert [a.address for a in summary.to] == ["user1@example.org"]
    assert summary.mail_from == "sender4@example.com"
    assert summary.rcpt_tos == ("user1@example.org",)
    assert summary.message_id == "m4@example.com"
    assert summary.size == messages[4].size
    assert summary.received_at == messages[4].received_at
    assert summary.snippet == "Hello, invoice attached ref-4"
    assert (summary.attachments, summary.inline) == (0, 0)


def test_retention_by_count_evicts_oldest(store_factory: StoreFactory) -> None:
    store = store_factory(Retention(max_messages=3))
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    for i in range(5):
        store.add(_message(i))
        assert len(store) <= 3
    assert [m.seq for m in store.messages()] == [3, 4, 5]
    assert store.count(parse("invoice")) == 2  # 2 and 4: the evicted are not found
    evicted = [i for e in events if e.kind == "deleted" for i in e.ids]
    assert len(evicted) == 2


def test_retention_by_bytes_is_never_exceeded(store_factory: StoreFactory) -> None:
    size = _message(0).size
    store = store_factory(Retention(max_bytes=size * 2 + size // 2))
    for i in range(6):
        store.add(_message(i))
        assert store.total_bytes <= size * 2 + size // 2
    assert len(store) == 2


def test_retention_holds_with_several_writers(store_factory: StoreFactory) -> None:
    store = store_factory(Retention(max_messages=7))
    seen_over: list[int] = []
    failures: list[BaseException] = []

    def write(base: int) -> None:
        try:
            for i in range(25):
                store.add(_message(base + i))
                count = len(store)
                if count > 7:
                    seen_over.append(count)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert seen_over == []
    assert len(store) == 7
    seqs = [m.seq for m in store.messages()]
    assert seqs == list(range(94, 101))  # the newest 7 of 100, every seq distinct
    assert store.last_seq == 100


def test_events_for_add_delete_evict_and_clear(store_factory: StoreFactory) -> None:
    store = store_factory(Retention(max_messages=2))
    events: list[StoreEvent] = []
    unsubscribe = store.subscribe(events.append)
    a, b = store.add(_message(0)), store.add(_message(1))
    c = store.add(_message(2))  # evicts a
    store.delete([b.id])
    store.clear()
    kinds = [(e.kind, [m.id for m in e.messages], list(e.ids)) for e in events]
    assert kinds == [
        ("added", [a.id], []),
        ("added", [b.id], []),
        ("deleted", [a.id], [a.id]),
        ("added", [c.id], []),
        ("deleted", [], [b.id]),
        ("cleared", [], []),
    ]
    unsubscribe()
    store.add(_message(3))
    assert len(events) == 6


def test_a_wait_wakes_on_arrival(store_factory: StoreFactory) -> None:
    store = store_factory()
    box = Mailbox(store, default_timeout=30)
    store.add(_message(1))
    waiting = threading.Event()
    found: list[Message] = []

    def wait() -> None:
        waiting.set()
        found.extend(box.wait_for(subject="Order 002 routine"))

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait()
    store.add(_message(2))
    thread.join(30)
    assert not thread.is_alive()
    assert [m.subject for m in found] == ["Order 002 routine"]


def test_a_wait_times_out_when_nothing_matches(store_factory: StoreFactory) -> None:
    store = store_factory()
    store.add(_message(1))
    with pytest.raises(WaitTimeout):
        Mailbox(store).wait_for(subject="never", timeout=0.05)


def _change_while_waiting(store: Store, change: Callable[[], object]) -> bool:
    """Make *change* in a thread while this one waits on ``store.changed``; whether the wait
    was woken by a notification (not by its timeout)."""
    with store.changed:
        started = threading.Event()

        def make_change() -> None:
            started.set()
            change()

        thread = threading.Thread(target=make_change)
        thread.start()
        started.wait()
        # The change needs the store's lock, held here: wait() releases it, and the change's
        # notify wakes this thread.
        woken = store.changed.wait(30)
    thread.join()
    return woken


def test_the_condition_is_notified_on_every_change(store_factory: StoreFactory) -> None:
    store = store_factory()
    message = _message(1)
    assert _change_while_waiting(store, lambda: store.add(message))
    assert _change_while_waiting(store, lambda: store.delete([message.id]))
    assert _change_while_waiting(store, store.clear)


# --- read state and tags (Mailpit's) ---------------------------------------------------------


def _read_ids(store: Store) -> set[str]:
    return {m.id for m in store.messages() if m.read}


def test_read_state_by_ids_by_search_and_for_all(corpus: tuple[Store, list[Message]]) -> None:
    store, messages = corpus
    assert store.unread_count() == N
    assert not any(m.read for m in store.messages())  # new mail is unread
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    ids = [messages[1].id, messages[2].id, "no-such-id"]
    assert store.mark_read(ids) == 2
    assert store.mark_read(ids) == 0  # already read: nothing changes, no event
    assert [(e.kind, sorted(e.ids)) for e in events] == [
        ("updated", sorted([messages[1].id, messages[2].id]))
    ]
    assert _read_ids(store) == {messages[1].id, messages[2].id}
    assert store.unread_count() == N - 2
    got = store.get(messages[1].id)
    assert got is not None
    assert got.read
    # By search: the urgent ones (i % 4 == 0), one of which (i=0)... none read yet.
    urgent = {m.id for i, m in enumerate(messages) if i % 4 == 0}
    assert store.mark_read(parse("subject:urgent")) == len(urgent)
    assert _read_ids(store) == urgent | {messages[1].id, messages[2].id}
    assert store.mark_read(parse("subject:urgent"), read=False) == len(urgent)
    assert store.mark_read(None) == N - 2  # all
    assert store.unread_count() == 0
    assert store.mark_read(None, read=False) == N
    assert store.unread_count() == N
    assert store.mark_read([]) == 0


def test_read_state_in_searches_summaries_and_pages(corpus: tuple[Store, list[Message]]) -> None:
    store, messages = corpus
    read = {i for i in range(N) if i % 3 == 0}
    store.mark_read([messages[i].id for i in read])
    expected_read = sorted(messages[i].id for i in read)
    assert sorted(m.id for m in store.search(parse("is:read"))) == expected_read
    assert store.count(parse("is:unread")) == N - len(read)
    assert store.count(parse("-is:read")) == N - len(read)
    # With a text term (the SQLite word index answers "invoice" alone; here it must combine).
    both = {i for i in read if i % 2 == 0}
    assert store.count(parse("invoice is:read")) == len(both)
    page = store.page(parse("is:unread invoice"), limit=5)
    assert page.total == sum(1 for i in range(N) if i % 2 == 0 and i not in read)
    assert all(not s.read for s in page.summaries)
    listed = store.page(None, limit=None)
    assert {s.id for s in listed.summaries if s.read} == set(expected_read)
    # A search with text only still carries the state in its summaries.
    invoices = store.page(parse("invoice"), limit=None)
    assert {s.id for s in invoices.summaries if s.read} == {messages[i].id for i in both}


@pytest.mark.parametrize("query", [None, *QUERIES, "-invoice is:unread", "tag:vip ef-1"])
@pytest.mark.parametrize(("start", "limit"), [(0, 50), (2, 3), (0, None), (40, 5)])
def test_a_listing_is_the_page_and_the_figures_beside_it(
    corpus: tuple[Store, list[Message]], query: str | None, start: int, limit: int | None
) -> None:
    """``listing()`` gives what the separate reads give (a backend may answer it at once)."""
    store, messages = corpus
    read = {i for i in range(N) if i % 3 == 0}
    store.mark_read([messages[i].id for i in read])
    store.set_tags([messages[i].id for i in (1, 4, 12)], ["vip"])
    store.set_tags([messages[5].id], ["later", "vip"])
    search = parse(query) if query is not None else None
    listing = store.listing(search, start=start, limit=limit)
    page = store.page(search, start=start, limit=limit)
    assert listing.page.total == page.total
    assert [s.id for s in listing.page.summaries] == [s.id for s in page.summaries]
    assert [(s.read, s.tags) for s in listing.page.summaries] == [
        (s.read, s.tags) for s in page.summaries
    ]
    found = store.search(search) if search is not None else store.messages()
    assert listing.unread_matches == sum(1 for m in found if not m.read)
    assert (listing.stored, listing.unread) == (N, N - len(read))
    assert listing.tags == ["later", "vip"] == store.tags()


def test_tags_set_renamed_deleted_and_searched(corpus: tuple[Store, list[Message]]) -> None:
    store, messages = corpus
    assert store.tags() == []
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    a, b, c = messages[0].id, messages[1].id, messages[2].id
    # Cleaned as Mailpit: other characters become spaces, duplicates (ignoring case) go.
    assert store.set_tags([a, b], ["Invoices", "to do!", "invoices", "  ", "déjà"]) == 2
    assert store.set_tags([a, b], ["to do", "d j", "Invoices"]) == 0  # the same: no change
    got = store.get(a)
    assert got is not None
    assert got.tags == ("Invoices", "d j", "to do")
    assert store.tags() == ["Invoices", "d j", "to do"]
    assert store.set_tags([c], ["Urgent"]) == 1
    assert [e.kind for e in events] == ["updated", "updated"]
    assert sorted(m.id for m in store.search(parse("tag:invoices"))) == sorted([a, b])
    assert store.count(parse('tag:"TO DO"')) == 2
    assert store.count(parse("tag:to")) == 0  # a tag matches whole, not as a substring
    assert store.count(parse("is:tagged")) == 3
    assert store.count(parse("-is:tagged")) == N - 3
    assert store.count(parse("tag:urgent subject:urgent")) == 0  # message 2 is routine
    summaries = {s.id: s.tags for s in store.page(parse("is:tagged"), limit=None).summaries}
    assert summaries == {
        a: ("Invoices", "d j", "to do"),
        b: ("Invoices", "d j", "to do"),
        c: ("Urgent",),
    }
    # Rename (ignoring case), merging where a message has both.
    assert store.set_tags([c], ["Urgent", "Bills"]) == 1
    assert store.rename_tag("invoices", "Bills") == 2
    assert store.tags() == ["Bills", "Urgent", "d j", "to do"]
    assert store.rename_tag("urgent", "bills") == 1
    got = store.get(c)
    assert got is not None
    assert got.tags == ("Bills",)
    with pytest.raises(ConfigurationError):
        store.rename_tag("Bills", "!!!")
    with pytest.raises(ConfigurationError):
        store.set_tags([a], ["x" * 101])
    assert store.rename_tag("no such tag", "anything") == 0
    # Delete a tag: the messages stay.
    assert store.delete_tag("D J") == 2
    assert store.tags() == ["Bills", "to do"]
    assert len(store) == N
    assert store.set_tags([a, b], []) == 2  # an empty list removes them
    assert store.tags() == ["Bills"]
    # A deleted message takes its tags with it.
    store.delete([c])
    assert store.tags() == []
    assert store.count(parse("is:tagged")) == 0


def test_read_state_and_tags_wake_waiters(store_factory: StoreFactory) -> None:
    store = store_factory()
    message = store.add(_message(1))
    assert _change_while_waiting(store, lambda: store.mark_read([message.id]))
    assert _change_while_waiting(store, lambda: store.set_tags([message.id], ["x"]))
    generation = store.generation
    assert _change_while_waiting(store, lambda: store.delete_tag("x"))
    assert store.generation == generation  # nothing went away: waits need not recount


def test_a_large_update_is_one_event_naming_no_ids(store_factory: StoreFactory) -> None:
    from smtpmock.store._base import UPDATED_IDS_MAX

    store = store_factory()
    store.add_many([_message(i) for i in range(UPDATED_IDS_MAX + 1)])
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    assert store.mark_read(None) == UPDATED_IDS_MAX + 1
    assert [(e.kind, e.ids) for e in events] == [("updated", ())]
    assert store.unread_count() == 0
