"""MemoryStore: order, sequence numbers, deletion, retention and change notification."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from smtpmock import ConfigurationError, MemoryStore, Message, Retention, SMTPMock
from smtpmock.store import StoreEvent
from tests.mail import send


def msg(subject: str, *, size: int = 0, age: float = 0.0) -> Message:
    raw = f"Subject: {subject}\r\n\r\n".encode() + b"x" * size
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age)
    return Message(raw, received_at=when)


def subjects(messages: list[Message]) -> list[str]:
    return [m.subject for m in messages]


def test_add_assigns_increasing_seq_and_keeps_order() -> None:
    store = MemoryStore()
    a, b, c = (store.add(msg(s)) for s in "abc")
    assert [a.seq, b.seq, c.seq] == [1, 2, 3]
    assert store.last_seq == 3
    assert subjects(store.messages()) == ["a", "b", "c"]
    assert subjects(store.since(1)) == ["b", "c"]
    assert store.since(3) == []
    assert store.get(b.id) is b
    assert store.get("nope") is None
    assert len(store) == 3


def test_delete_and_clear_bump_the_generation() -> None:
    store = MemoryStore()
    a, b = store.add(msg("a")), store.add(msg("b"))
    generation = store.generation
    assert store.delete([a.id, "missing"]) == 1
    assert store.generation == generation + 1
    assert subjects(store.messages()) == ["b"]
    assert store.delete(["missing"]) == 0
    assert store.generation == generation + 1
    assert store.clear() == 1
    assert store.generation == generation + 2
    assert store.messages() == []
    assert store.total_bytes == 0
    # Sequence numbers keep increasing after a clear: a capture floor stays meaningful.
    assert store.add(msg("c")).seq == b.seq + 1


def test_retention_max_messages_evicts_oldest() -> None:
    store = MemoryStore(Retention(max_messages=2))
    for s in "abcd":
        store.add(msg(s))
    assert subjects(store.messages()) == ["c", "d"]


def test_retention_max_bytes() -> None:
    store = MemoryStore(Retention(max_bytes=250))
    for s in "abc":
        store.add(msg(s, size=100))
    assert subjects(store.messages()) == ["b", "c"]
    assert store.total_bytes <= 250


def test_retention_max_age() -> None:
    store = MemoryStore(Retention(max_age=60))
    store.add(msg("old", age=3600))
    store.add(msg("new"))
    assert subjects(store.messages()) == ["new"]


@pytest.mark.parametrize("field", ["max_messages", "max_bytes", "max_age"])
def test_retention_refuses_non_positive_limits(field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Retention(**{field: 0})


def test_listeners_see_every_change() -> None:
    store = MemoryStore(Retention(max_messages=1))
    events: list[StoreEvent] = []
    unsubscribe = store.subscribe(events.append)
    first = store.add(msg("a"))
    second = store.add(msg("b"))  # evicts "a"
    store.delete([second.id])
    store.clear()
    unsubscribe()
    store.add(msg("c"))
    assert [e.kind for e in events] == ["added", "deleted", "added", "deleted", "cleared"]
    assert events[0].messages == (first,)
    assert events[1].ids == (first.id,)
    assert events[3].ids == (second.id,)


def test_a_failing_listener_is_reported_not_raised() -> None:
    store = MemoryStore()
    reported: list[BaseException] = []
    store.on_listener_error = reported.append

    def broken(event: StoreEvent) -> None:
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.add(msg("a"))
    assert len(store) == 1
    assert [str(e) for e in reported] == ["listener bug"]


def test_changed_condition_wakes_a_waiter() -> None:
    store = MemoryStore()
    woke = threading.Event()
    ready = threading.Event()

    def waiter() -> None:
        with store.changed:
            ready.set()
            store.changed.wait_for(lambda: len(store) == 1, timeout=30)
            if len(store) == 1:
                woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert ready.wait(30)
    store.add(msg("a"))
    thread.join(30)
    assert woke.is_set()


def test_server_with_a_bounded_store() -> None:
    with SMTPMock(store=MemoryStore(Retention(max_messages=2))) as mock:
        for s in "abc":
            send(mock.host, mock.port, subject=s)
        mock.wait_for(1, subject="c")
        assert subjects(mock.messages) == ["b", "c"]
