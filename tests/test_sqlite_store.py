"""SQLiteStore: durable, exact bytes, retention on arrival, listing without bodies."""

from __future__ import annotations

import contextlib
import datetime as _dt
import shutil
import smtplib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smtpmock import ConfigurationError, Message, Retention, SMTPMock
from smtpmock._search import parse
from smtpmock.store import SQLiteStore, StoreEvent, _sqlite
from tests.mail import send
from tests.rawsmtp import RawSMTP

RAW = b"From: A <a@x.com>\r\nTo: bob@y.com\r\nSubject: Hi\r\n\r\nbody\xff bytes \r\n.dot\r\n"


@pytest.fixture
def new_store() -> Iterator[Callable[..., SQLiteStore]]:
    """``SQLiteStore(...)``, closed after the test."""
    stores: list[SQLiteStore] = []

    def make(*args: Any, **kwargs: Any) -> SQLiteStore:
        stores.append(SQLiteStore(*args, **kwargs))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def _msg(subject: str = "Hi", *, size: int = 0, age: float = 0.0) -> Message:
    raw = f"From: a@x.com\r\nTo: bob@y.com\r\nSubject: {subject}\r\n\r\n".encode() + b"x" * size
    when = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=age)
    return Message(raw, mail_from="a@x.com", rcpt_tos=["bob@y.com"], received_at=when)


def test_reopen_keeps_ids_order_bytes_and_envelope(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    store = SQLiteStore(path)
    first = store.add(
        Message(
            RAW,
            mail_from="a@x.com",
            rcpt_tos=["bob@y.com", "c@z.com"],
            helo="client.example",
            mail_options=["BODY=8BITMIME"],
        )
    )
    second = store.add(_msg("two"))
    store.close()

    again = SQLiteStore(path)
    try:
        got = again.messages()
        assert [m.id for m in got] == [first.id, second.id]
        assert [m.seq for m in got] == [1, 2]
        assert got[0].raw == RAW
        assert got[0].rcpt_tos == ("bob@y.com", "c@z.com")
        assert got[0].helo == "client.example"
        assert got[0].mail_options == ("BODY=8BITMIME",)
        assert got[0].received_at == first.received_at
        assert got[1].subject == "two"
        assert again.last_seq == 2
        assert again.add(_msg("three")).seq == 3  # numbering continues after a restart
    finally:
        again.close()


def test_retention_by_count_evicts_oldest_first_and_notifies(
    new_store: Callable[..., SQLiteStore],
) -> None:
    store = new_store(retention=Retention(max_messages=2))
    events: list[StoreEvent] = []
    store.subscribe(events.append)
    ids = [store.add(_msg(str(i))).id for i in range(4)]
    assert [m.id for m in store.messages()] == ids[2:]
    assert len(store) == 2
    deleted = [i for e in events if e.kind == "deleted" for i in e.ids]
    assert deleted == ids[:2]


def test_retention_by_bytes_is_never_exceeded(new_store: Callable[..., SQLiteStore]) -> None:
    store = new_store(retention=Retention(max_bytes=500))
    for i in range(10):
        store.add(_msg(str(i), size=150))
        assert store.total_bytes <= 500
    assert [m.subject for m in store.messages()] == ["8", "9"]  # 3 x 195 B would be 585


def test_retention_by_age_on_arrival(new_store: Callable[..., SQLiteStore]) -> None:
    store = new_store(retention=Retention(max_age=60))
    store.add(_msg("old", age=3600))
    store.add(_msg("new"))
    assert [m.subject for m in store.messages()] == ["new"]


def test_delete_and_clear(new_store: Callable[..., SQLiteStore]) -> None:
    store = new_store()
    a, b, c = (store.add(_msg(s)) for s in "abc")
    assert store.delete([b.id, "missing"]) == 1
    assert [m.id for m in store.messages()] == [a.id, c.id]
    assert store.get(b.id) is None
    assert store.page(parse("subject:b")).total == 0  # the search index forgot it too
    assert store.clear() == 2
    assert store.messages() == []
    assert store.total_bytes == 0


def test_pages_newest_first_paginated_without_bodies(
    new_store: Callable[..., SQLiteStore],
) -> None:
    store = new_store()
    for i in range(5):
        store.add(_msg(f"s{i}", size=10))
    found = store.page(start=1, limit=2)
    assert found.total == 5
    assert [s.subject for s in found.summaries] == ["s3", "s2"]
    head = b"From: a@x.com\r\nTo: bob@y.com\r\nSubject: s3\r\n\r\n"
    assert found.summaries[0].size == 10 + len(head)


def test_smtp_round_trip_commits_before_250(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    with SMTPMock(store=SQLiteStore(path)) as mock:
        send(mock.host, mock.port, subject="durable")
        # sendmail returned, so the server answered 250: another connection must see it.
        other = SQLiteStore(path)
        try:
            assert [m.subject for m in other.messages()] == ["durable"]
        finally:
            other.close()
        [message] = mock.wait_for(1, subject="durable")
        assert message.rcpt_tos == ("bob@example.com",)
    mock.store.close()


def test_transcript_is_kept_with_the_message_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    with SMTPMock(store=SQLiteStore(path)) as mock:
        send(mock.host, mock.port, subject="with its session")
        [live] = mock.wait_for(1)
    mock.store.close()
    reopened = SQLiteStore(path)
    try:
        [stored] = reopened.messages()
    finally:
        reopened.close()
    assert live.transcript is not None
    assert stored.transcript is not None
    assert stored.transcript.session_id == live.session_id
    assert stored.transcript.commands[:4] == ["EHLO", "MAIL", "RCPT", "DATA"]
    # every line as it was, to the microsecond (the store keeps a compact form of them)
    kept = [(e.time, e.kind, e.text) for e in stored.transcript.entries]
    assert len(kept) >= 10
    assert kept == [(e.time, e.kind, e.text) for e in live.transcript.entries[: len(kept)]]


def test_long_session_stores_one_transaction_per_message(tmp_path: Path) -> None:
    # One connection, many messages: each stored transcript holds the session's opening and
    # that message's own transaction, never the whole session again (which grows as n^2).
    path = tmp_path / "mail.db"
    with SMTPMock(store=SQLiteStore(path)) as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
            for n in range(30):
                client.sendmail("a@example.com", [f"r{n}@example.com"], f"Subject: {n}\r\n\r\nx")
        mock.wait_for(30)
    mock.store.close()
    reopened = SQLiteStore(path)
    try:
        stored = reopened.messages()
    finally:
        reopened.close()
    for message in (stored[1], stored[-1]):
        transcript = message.transcript
        assert transcript is not None
        assert transcript.commands == ["EHLO", "MAIL", "RCPT", "DATA"]
        assert transcript.message_ids == [message.id]
        client_lines = [e.text for e in transcript.entries if e.kind == "client"]
        assert any(message.rcpt_tos[0] in line for line in client_lines)
    assert len(stored[-1].transcript.entries) == len(stored[1].transcript.entries)


@pytest.mark.parametrize("bad", [b"", b"no headers at all", b"Subject: =?x-unknown?q?a?=\r\n\r\n"])
def test_malformed_messages_are_stored(bad: bytes, new_store: Callable[..., SQLiteStore]) -> None:
    store = new_store()
    store.add(Message(bad))
    assert store.messages()[0].raw == bad


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigurationError, match=r"cannot use .* as a smtpmock database"):
        SQLiteStore(path)
    assert path.read_bytes() == b"this is not sqlite" * 100  # nothing overwritten


@contextlib.contextmanager
def _held_elsewhere(store: SQLiteStore) -> Iterator[threading.Event]:
    """The store held by another thread (as an indexing pass or a search holds it) until the
    event given is set, or the block ends."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.changed:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        yield release
    finally:
        release.set()
        holder.join()


def test_try_add_many_stores_only_when_the_store_is_free(
    new_store: Callable[..., SQLiteStore],
) -> None:
    store = new_store()
    with _held_elsewhere(store):
        assert store.try_add_many([_msg("busy")]) is False
        assert len(store) == 0  # nothing half done
    assert store.try_add_many([_msg("free")]) is True
    assert [m.subject for m in store.messages()] == ["free"]


def test_a_busy_store_does_not_hold_the_server_and_the_250_still_follows_the_commit(
    tmp_path: Path,
) -> None:
    # Commits run on the event loop only when the store is free; while another thread holds
    # it (an indexing pass, a search), the commit waits in a thread and other sessions go on.
    store = SQLiteStore(tmp_path / "mail.db")
    with (
        contextlib.closing(store),
        SMTPMock(store=store) as mock,
        _held_elsewhere(store) as release,
        RawSMTP(mock.host, mock.port) as sender,
    ):
        assert sender.reply()[0] == 220
        for command in ("EHLO a", "MAIL FROM:<a@example.com>", "RCPT TO:<b@x.com>"):
            assert sender.command(command)[0] == 250
        assert sender.command("DATA")[0] == 354
        sender.send(b"Subject: held\r\n\r\nbody\r\n.\r\n")
        # the loop still serves another session while that commit waits
        with RawSMTP(mock.host, mock.port) as other:
            assert other.reply()[0] == 220
            assert other.command("NOOP")[0] == 250
        assert len(store) == 0  # not committed: no 250 yet
        release.set()
        assert sender.reply()[0] == 250
        assert [m.subject for m in store.messages()] == ["held"]


def _wait_for_database_file(path: Path, count: int) -> None:
    """Until the database file alone (without its WAL) holds *count* messages: checkpointed."""
    deadline = time.monotonic() + 10
    while True:
        copy = path.with_name("copy.db")
        shutil.copyfile(path, copy)  # the database file alone, without its WAL
        with contextlib.closing(sqlite3.connect(copy)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            stored = (
                db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
                if ("messages" in tables)
                else 0
            )
        if stored == count:
            return
        assert time.monotonic() < deadline, f"{stored} of {count} messages in the database file"
        time.sleep(0.05)


def test_the_wal_is_checkpointed_off_the_storing_path(tmp_path: Path) -> None:
    # Automatic checkpoints are only a safety net far above what indexing checkpoints (they
    # would run inside a commit on the event loop); the indexer copies the WAL into the
    # database file once it has caught up.
    path = tmp_path / "mail.db"
    store = SQLiteStore(path)
    try:
        pages = store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert pages * 4096 >= 4 * _sqlite._WAL_LIMIT
        store.add_many([_msg(f"m{n}") for n in range(30)])
        _wait_for_database_file(path, 30)
    finally:
        store.close()


def test_a_search_for_a_new_message_neither_waits_for_the_worker_nor_checkpoints(
    tmp_path: Path,
) -> None:
    # What Client.wait_for waits on: a search right after one arrival indexes that message
    # first. It parses it here (the worker's round trip costs more than a few messages) and
    # leaves the WAL checkpoint (an fsync) to the background indexer, which still does it.
    path = tmp_path / "mail.db"
    store = SQLiteStore(path, index_worker=True)
    try:
        store.add_many([_msg(f"m{n}") for n in range(20)])
        store.flush_index()
        assert store._pool is not None
        submitted: list[object] = []
        checkpoints: list[threading.Thread] = []
        submit, checkpoint = store._pool.submit, store._checkpoint
        store._pool.submit = lambda *a, **k: submitted.append(a) or submit(*a, **k)  # type: ignore[method-assign]

        def recording_checkpoint(*, force: bool = False) -> None:
            checkpoints.append(threading.current_thread())
            checkpoint(force=force)

        store._checkpoint = recording_checkpoint  # type: ignore[method-assign]
        store.add(_msg("the new one"))
        assert store.count(parse("subject:new")) == 1
        assert submitted == []
        assert threading.current_thread() not in checkpoints
        _wait_for_database_file(path, 21)  # the background indexer checkpointed it
        assert checkpoints
    finally:
        store.close()


def test_a_checkpoint_leaves_the_store_free(tmp_path: Path) -> None:
    # Checkpoints sync files; they run on a connection of their own, so storing and searching
    # (under the store's lock) need not wait for them.
    store = SQLiteStore(tmp_path / "mail.db")
    try:
        store.add_many([_msg(f"a{n}") for n in range(5)])
        store.flush_index()  # checkpoints: the checkpointing connection now exists
        real = store._checkpointer
        assert real is not None
        free: list[bool] = []

        class Probe:
            def execute(self, sql: str) -> Any:
                def try_the_store() -> None:
                    got = store.changed.acquire(timeout=2)
                    if got:
                        store.changed.release()
                    free.append(got)

                other = threading.Thread(target=try_the_store)
                other.start()
                other.join()
                return real.execute(sql)

        store._checkpointer = Probe()  # type: ignore[assignment]
        store.add_many([_msg(f"b{n}") for n in range(5)])
        store.flush_index()
        assert free, "no checkpoint ran"
        assert all(free), "a checkpoint held the store"
        store._checkpointer = real
        _wait_for_database_file(tmp_path / "mail.db", 10)
    finally:
        store.close()


def test_the_wal_stays_about_one_indexing_pass_long(tmp_path: Path) -> None:
    # A bulk load (add_many, then flush_index, in rounds) must not grow the WAL with the whole
    # load: each indexing pass checkpoints, so the next round's writes reuse the WAL's start.
    path = tmp_path / "mail.db"
    store = SQLiteStore(path)
    try:
        for round_ in range(8):
            store.add_many([_msg(f"r{round_} n{n}", size=2000) for n in range(150)])
            store.flush_index()
        wal = Path(f"{path}-wal").stat().st_size
        database = path.stat().st_size
    finally:
        store.close()
    assert wal < database / 2, f"WAL {wal} bytes beside a database file of {database}"


def test_open_store_names_the_backend(tmp_path: Path) -> None:
    from smtpmock import MemoryStore
    from smtpmock.store import open_store

    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store(":memory:"), MemoryStore)
    store = open_store(tmp_path / "mail.db", Retention(max_messages=3))
    try:
        assert isinstance(store, SQLiteStore)
        assert store.retention.max_messages == 3
    finally:
        store.close()
    with pytest.raises(ConfigurationError, match="unknown database URL scheme 'mysql'"):
        open_store("mysql://localhost/mail")


def test_read_state_and_tags_of_far_apart_matches(tmp_path: Path) -> None:
    # A page whose matches lie far apart reads their state by seq, not over the range between
    # them; both ways give the same answer.
    store = SQLiteStore(tmp_path / "mail.db")
    try:
        ids = [
            store.add(
                Message(
                    f"Subject: {'rare' if i in (0, 99) else 'common'} {i}\r\n\r\nx\r\n".encode()
                )
            ).id
            for i in range(100)
        ]
        assert store.mark_read([ids[0], ids[50]]) == 2
        assert store.set_tags([ids[99], ids[98]], ["Far"]) == 2
        rare = store.page(parse("subject:rare"), limit=None).summaries
        assert [(s.id, s.read, s.tags) for s in rare] == [
            (ids[99], False, ("Far",)),
            (ids[0], True, ()),
        ]
        listing = store.page(None, start=48, limit=4).summaries  # contiguous: the range read
        assert [(s.id, s.read) for s in listing] == [
            (ids[51], False),
            (ids[50], True),
            (ids[49], False),
            (ids[48], False),
        ]
        found = store.search(parse("subject:rare"))
        assert [(m.id, m.read, m.tags) for m in found] == [
            (ids[0], True, ()),
            (ids[99], False, ("Far",)),
        ]
    finally:
        store.close()
