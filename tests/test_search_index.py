"""The SQLite store's word index gives exactly the messages Python's substring test gives.

The store answers substring searches through a vocabulary and FTS5 word indexes (see
``smtpmock/store/_sqlite_index.py``), indexing in the background after storing. These tests hold it
to the plain definition -- ``needle in field`` on the fields ``index_fields`` derives -- over a
corpus built so that words contain one another (a small alphabet of syllables), for every path
through the index: exact words, infixes, several words, non-ASCII, punctuation, header fields,
deletions, a vocabulary too big to mirror in memory, a reopened file, and an old file.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import random
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smtpmock import Message, SMTPMock
from smtpmock._search import index_fields, parse
from smtpmock.store import SQLiteStore, _records, _sqlite_index, _worker

SYLLABLES = ["ka", "lo", "mi", "nu", "ré", "sa", "to", "zé", "ab", "ba"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))


def _corpus(n: int, seed: int) -> list[Message]:
    rng = random.Random(seed)
    messages = []
    for i in range(n):
        subject = " ".join(_word(rng) for _ in range(rng.randint(1, 3)))
        body = " ".join(_word(rng) for _ in range(rng.randint(3, 30)))
        if i % 7 == 0:
            body += " 50% off_now, order #100-a."
        sender = f"{_word(rng)}@{_word(rng)}.test"
        to = f"{_word(rng).title()} <{_word(rng)}{i}@example.com>"
        raw = (
            f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{_word(rng)}.{i}x@{_word(rng)}>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n"
        ).encode()
        messages.append(Message(raw, mail_from=sender, rcpt_tos=[f"r{i}@example.com"]))
    return messages


def _queries(messages: list[Message], seed: int) -> list[str]:
    rng = random.Random(seed)
    queries = ["ka", "a", "é", "zé", "%", "#100-a", "off_now", "order 100", "@", "x@", "ab ba"]
    for _ in range(60):
        word = _word(rng)
        cut = rng.randint(0, max(0, len(word) - 2))
        queries += [word, word[cut : cut + rng.randint(1, 4)], f"{word} {_word(rng)}"]
    for field in ("from", "to", "subject", "message-id", "addressed", "cc"):
        queries += [f"{field}:{_word(rng)}", f"{field}:{_word(rng)[1:]}", f"-{field}:{_word(rng)}"]
    message = rng.choice(messages)
    queries += [f"message-id:{message.message_id}", f"to:{message.rcpt_tos[0]}"]
    queries += [f'"{_word(rng)} {_word(rng)}"', f"{_word(rng)} -{_word(rng)}"]
    return queries


def _assert_agrees(store: SQLiteStore, messages: list[Message], queries: list[str]) -> None:
    fields = [(m.id, index_fields(m)) for m in messages]
    wrong = []
    for query in queries:
        search = parse(query)
        want = [id for id, f in fields if search.test_fields(f)]
        got = [m.id for m in store.search(search)]
        if got != want:
            wrong.append(f"{query!r}: store found {len(got)}, Python {len(want)}")
        assert store.count(search) == len(got)
    assert not wrong, "\n".join(wrong)


@pytest.fixture
def corpus() -> list[Message]:
    return _corpus(160, seed=3)


def test_every_kind_of_needle_agrees_with_python(corpus: list[Message]) -> None:
    store = SQLiteStore()
    try:
        store.add_many(corpus)
        queries = _queries(corpus, seed=5)
        _assert_agrees(store, corpus, queries)
        # Deleting takes messages out of the word index; later mail adds to the vocabulary.
        gone = {m.id for m in corpus[::3]}
        assert store.delete(gone) == len(gone)
        kept = [m for m in corpus if m.id not in gone]
        more = _corpus(40, seed=9)
        for message in more:
            store.add(message)
        _assert_agrees(store, kept + more, queries + _queries(more, seed=11))
    finally:
        store.close()


def test_a_vocabulary_too_big_to_mirror_gives_the_same_answers(
    corpus: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_index, "_MAX_KNOWN_TERMS", 20)
    store = SQLiteStore()
    try:
        store.add_many(corpus[:80])
        store.flush_index()
        assert not store._complete  # past the cap: the terms table is asked for the rest
        store.add_many(corpus[80:])
        _assert_agrees(store, corpus, _queries(corpus, seed=5))
    finally:
        store.close()


def test_a_reopened_file_searches_the_same(tmp_path: Path, corpus: list[Message]) -> None:
    path = tmp_path / "mail.db"
    store = SQLiteStore(path)
    store.add_many(corpus[:100])
    store.close()  # the last messages may not be indexed yet: the next open indexes them
    again = SQLiteStore(path)
    try:
        again.add_many(corpus[100:])
        stored = again.messages()
        assert [m.id for m in stored] == [m.id for m in corpus]
        _assert_agrees(again, stored, _queries(corpus, seed=5))
    finally:
        again.close()


def test_a_search_right_after_storing_sees_every_message() -> None:
    """Indexing is deferred, never missing: reads index what is pending first."""
    store = SQLiteStore()
    try:
        for round_ in range(5):
            batch = _corpus(50, seed=round_)
            for n, message in enumerate(batch):
                message.raw = message.raw.replace(b"\r\n\r\n", f"\r\n\r\nround{round_} ".encode())
                if n % 10 == 0:
                    store.add(message)
            store.add_many([m for n, m in enumerate(batch) if n % 10])
            assert store.count(parse(f"round{round_}")) == 50
            assert store.page(parse(f"round{round_}"), limit=1).total == 50
        assert store.count(parse("round")) == len(store) == 250
    finally:
        store.close()


V1_SCHEMA = """
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, received_at REAL NOT NULL,
    size INTEGER NOT NULL, envelope TEXT NOT NULL, summary TEXT NOT NULL,
    from_text TEXT NOT NULL, to_text TEXT NOT NULL, cc_text TEXT NOT NULL,
    bcc_text TEXT NOT NULL, reply_to_text TEXT NOT NULL, subject TEXT NOT NULL,
    message_id TEXT NOT NULL, attachments INTEGER NOT NULL, inline INTEGER NOT NULL
);
CREATE TABLE raw (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE VIRTUAL TABLE search_fts USING fts5(body, tokenize='trigram');
CREATE VIRTUAL TABLE fields_fts USING fts5(
    from_text, to_text, cc_text, bcc_text, reply_to_text, subject, message_id,
    tokenize='trigram'
);
PRAGMA user_version=1;
"""


def test_a_schema_1_file_is_converted_and_keeps_its_messages(
    tmp_path: Path, corpus: list[Message]
) -> None:
    """A database written by the first SQLite store (trigram indexes) opens and searches."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    for seq, message in enumerate(corpus[:30], 1):
        old.execute(
            "INSERT INTO messages VALUES (?,?,?,?,?, '{}', '', '', '', '', '', '', '', 0, 0)",
            (
                seq,
                message.id,
                message.received_at.timestamp(),
                message.size,
                json.dumps(_records.envelope_record(message)),
            ),
        )
        old.execute("INSERT INTO raw VALUES (?, ?)", (seq, message.raw))
    old.commit()
    old.close()

    store = SQLiteStore(path)
    try:
        stored = store.messages()
        assert [(m.id, m.raw, m.rcpt_tos) for m in stored] == [
            (m.id, m.raw, m.rcpt_tos) for m in corpus[:30]
        ]
        assert store.add(corpus[30]).seq == 31
        _assert_agrees(store, store.messages(), _queries(corpus[:31], seed=5))
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "search_fts" not in tables
    assert "messages_v1" not in tables


def test_concurrent_sessions_are_all_stored_through_group_commit(tmp_path: Path) -> None:
    """Every 250 given by a server on SQLite is a stored, searchable message."""
    store = SQLiteStore(tmp_path / "mail.db")
    with contextlib.closing(store), SMTPMock(store=store) as server:

        def session(client: int) -> int:
            sent = 0
            with smtplib.SMTP(server.host, server.port, timeout=30) as smtp:
                for n in range(10):
                    body = f"Subject: c{client} n{n}\r\n\r\nclient{client}x message{n}y\r\n"
                    smtp.sendmail("a@example.com", [f"c{client}@example.com"], body)
                    sent += 1
            return sent

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            sent = sum(pool.map(session, range(8)))
        assert sent == 80
        assert len(server.messages) == 80
        assert store.count(parse("message3y")) == 8
        assert store.count(parse("client5x")) == 10
        assert sorted(m.seq for m in store.messages()) == list(range(1, 81))


def _alive(pid: int) -> bool:
    """Whether process *pid* runs (a zombie, ended but not reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


_PROC = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")


@_PROC
def test_parsing_in_a_worker_process_gives_the_same_answers(
    tmp_path: Path, corpus: list[Message]
) -> None:
    """``index_worker=True`` (what ``smtpmock serve`` uses) parses in a child process."""
    store = SQLiteStore(tmp_path / "mail.db", index_worker=True)
    try:
        store.add_many(corpus[:100])
        store.flush_index()
        assert store._pool is not None  # the worker did the parsing
        for message in corpus[100:]:
            store.add(message)
        _assert_agrees(store, corpus, _queries(corpus, seed=5))
        assert store._index_worker  # it never fell back
        child = store._pool.pid
        assert _alive(child)
    finally:
        store.close()
    assert not _alive(child)  # close() ends the worker


def test_a_worker_that_dies_leaves_parsing_to_the_store(
    tmp_path: Path, corpus: list[Message]
) -> None:
    """Killing the index worker mid-run loses nothing: parsing goes on in this process."""
    errors: list[BaseException] = []
    store = SQLiteStore(tmp_path / "mail.db", index_worker=True)
    store.on_listener_error = errors.append
    try:
        store.add_many(corpus[:50])
        store.flush_index()
        assert store._pool is not None
        os.kill(store._pool.pid, signal.SIGKILL)
        store._pool._proc.wait(10)
        store.add_many(corpus[50:])
        _assert_agrees(store, corpus, _queries(corpus, seed=6))
        assert not store._index_worker  # it fell back
        assert errors
        assert "index worker" in str(errors[0])
    finally:
        store.close()


@_PROC
def test_the_worker_ends_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    """A parent killed with SIGKILL leaves no worker behind: its pipe closes, the child ends."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from smtpmock.store import SQLiteStore\n"
        f"store = SQLiteStore({str(tmp_path / 'mail.db')!r}, index_worker=True)\n"
        "print(store._start_worker().pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # not our child: nothing to wait on but its /proc entry
    assert not _alive(child), "the index worker outlived its parent"


def test_pages_of_a_word_found_inside_many_words(corpus: list[Message]) -> None:
    """A needle inside many words (prefix terms) is counted and paged from one read."""
    store = SQLiteStore()
    try:
        store.add_many(corpus)
        store.flush_index()
        search = parse("ka")
        want = [m.id for m in corpus if search.matches(m)]
        assert len(want) > 60
        assert "*" in getattr(store._word_query(search), "match", "")  # the prefix-term path
        found = store.page(search, limit=None, newest_first=False)
        total, everything = found.total, found.summaries
        assert total == len(want)
        assert [s.id for s in everything] == want
        found = store.page(search, start=10, limit=20)
        total, page = found.total, found.summaries
        assert total == len(want)
        assert [s.id for s in page] == want[::-1][10:30]
        assert store.page(search, after=corpus[-1].seq).total == 0
    finally:
        store.close()


def _rss_kib() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])


@pytest.mark.skipif(
    _worker._malloc_trim() is None or not Path("/proc/self/status").exists(),
    reason="glibc's malloc_trim and /proc are needed",
)
def test_freed_index_memory_goes_back_to_the_os() -> None:
    """What indexing frees in a thread's malloc arena is handed back, not kept resident."""
    kept: list[bytes] = []

    def churn() -> None:  # like a batch: many mid-sized objects, a few of them kept
        batch = [bytes(2048) + i.to_bytes(4, "little") for i in range(40_000)]
        kept.extend(batch[::200])

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = _rss_kib()
    _worker.release_free_memory()
    after = _rss_kib()
    assert len(kept) == 200
    # 80 MB were allocated and 79.6 MB freed, in pieces glibc would have kept.
    assert before - after > 40_000, f"RSS {before} KiB -> {after} KiB"


def test_the_worker_takes_requests_while_its_replies_fill_the_pipe() -> None:
    """Requests and replies larger than a pipe's buffer, many in flight: nothing blocks.

    (A writer that held a lock the reply reader needs, while the child waited for its reply
    to be read, stopped ``benchmarks/search.py`` dead in its first fill.)
    """
    worker = _worker.ParseWorker()
    futures: list[concurrent.futures.Future[bytes]] = []

    def submit_all() -> None:
        for i in range(8):
            futures.append(worker.submit("echo", bytes([i]) * 2_000_000))

    try:
        submitter = threading.Thread(target=submit_all, daemon=True)
        submitter.start()
        submitter.join(30.0)
        assert not submitter.is_alive(), "submit() blocked"
        results = [f.result(timeout=30.0) for f in futures]
        assert [r[:1] for r in results] == [bytes([i]) for i in range(8)]
        assert all(len(r) == 2_000_000 for r in results)
    finally:
        worker.shutdown()
    with pytest.raises(_worker.WorkerGone):
        worker.submit("echo", b"late")


def test_the_worker_runs_only_its_own_operations() -> None:
    """A request names an operation of a fixed table; nothing is imported or called by a
    name sent down the pipe."""
    worker = _worker.ParseWorker()
    try:
        with pytest.raises(ValueError, match=r"no operation 'os\.system'"):
            worker.submit("os.system", "true")
        # Even written to the pipe directly, a name outside the table is refused there.
        assert worker._proc.stdin is not None
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        with worker._write_lock:
            worker._pending.append(future)
            _worker._write(worker._proc.stdin, ("system", "touch /nonexistent/x"))
        with pytest.raises(ValueError, match="no operation 'system'"):
            future.result(timeout=30.0)
        assert worker.submit("echo", b"still here").result(timeout=30.0) == b"still here"
    finally:
        worker.shutdown()


def _wait_indexed(store: SQLiteStore, seq: int, timeout: float = 10.0) -> None:
    # The background indexer has no event to wait on; this test watches it from outside.
    deadline = time.monotonic() + timeout
    while store._indexed_seq < seq:
        assert time.monotonic() < deadline, f"indexed up to {store._indexed_seq}, not {seq}"
        time.sleep(0.01)


def test_the_background_indexer_wakes_for_new_mail_and_for_the_lag_limit(
    tmp_path: Path, corpus: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "mail.db")
    try:
        # idle: the first message wakes it, and so does one after it has caught up
        store.add(Message(corpus[0].raw))
        _wait_indexed(store, 1)
        store.add(Message(corpus[1].raw))
        _wait_indexed(store, 2)
        # mail that never stops (no quiet period): the lag limit alone makes it index
        monkeypatch.setattr(_sqlite_index, "_INDEX_QUIET", 3600.0)
        monkeypatch.setattr(_sqlite_index, "MAX_INDEX_LAG", 5)
        for message in corpus[2:30]:
            store.add(Message(message.raw))
        _wait_indexed(store, 30 - 5)
    finally:
        store.close()
