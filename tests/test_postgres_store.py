"""``PostgresStore`` on a real PostgreSQL (the tests' own throwaway cluster, tests/pg.py): what
only a shared database has to get right. The behaviour every backend shares is checked by the
contract suite (tests/test_store_contract.py), PostgreSQL included.

Several stores opened on one database stand for several ``smtpmock serve`` instances (each has
its own pool and its own LISTEN connection, exactly as separate processes would); the
two-process tests are in tests/test_postgres_serve.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from smtpmock import Message, StorageUnavailable
from smtpmock._inspect import Mailbox
from smtpmock._search import parse
from smtpmock.store import MemoryStore, Retention, StoreEvent
from tests.pg import PostgresServer, back_to_schema_1, back_to_schema_4

psycopg = pytest.importorskip("psycopg")  # the fixtures fail in CI before this skips

from smtpmock.store._postgres import SCHEMA_VERSION, PostgresStore  # noqa: E402


def mail(
    n: int,
    *,
    subject: str = "hello",
    to: str = "bob@example.com",
    body: str = "body",
    sender: str = "alice@example.com",
) -> Message:
    raw = (
        f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: {subject} {n}\r\n"
        f"Message-ID: <m{n}@example.com>\r\n\r\n{body}\r\n"
    ).encode()
    return Message(raw, mail_from=sender, rcpt_tos=[to])


class Recorder:
    """A store listener that lets a test wait for the n-th event (no sleeping)."""

    def __init__(self) -> None:
        self.events: list[StoreEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: StoreEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_until(
        self, last: Callable[[StoreEvent], bool], timeout: float = 10
    ) -> list[StoreEvent]:
        """Wait for an event for which *last* is true; return the events up to it."""
        with self._cond:
            assert self._cond.wait_for(lambda: any(map(last, self.events)), timeout)
            end = next(i for i, e in enumerate(self.events) if last(e))
            return self.events[: end + 1]

    def wait(self, count: int, timeout: float = 10) -> list[StoreEvent]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.events) >= count, timeout), self.events
            return list(self.events)


# ----------------------------------------------------------------------------- schema


def _open_at_once(url: str, n: int) -> tuple[list[PostgresStore], list[BaseException]]:
    """*n* stores opened on *url* by *n* threads released together (instances starting at
    once): the stores that opened, and what the others raised."""
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def open_one() -> None:
        start.wait()
        try:
            stores.append(PostgresStore(url))
        except BaseException as exc:  # pragma: no cover - the failure is asserted by callers
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stores, errors


def test_instances_starting_together_create_the_schema_once(pg_server: PostgresServer) -> None:
    pg_url = pg_server.create_database()  # a new database: pg_trgm is created here too
    stores, errors = _open_at_once(pg_url, 6)
    try:
        assert errors == []
        assert len(stores) == 6
        stores[0].add(mail(1))
        assert [len(s) for s in stores] == [1] * 6
        with psycopg.connect(pg_url) as conn:
            versions = conn.execute(
                "SELECT version FROM smtpmock_schema ORDER BY version"
            ).fetchall()
        assert versions == [(n,) for n in range(1, SCHEMA_VERSION + 1)]  # each migration once
    finally:
        for store in stores:
            store.close()


def test_a_database_of_a_newer_smtpmock_is_refused_untouched(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO smtpmock_schema VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(Exception, match="newer than this smtpmock"):
        PostgresStore(pg_url)


def _back_to_schema_3(url: str, *, mailbox: bool) -> None:
    """The database as smtpmock's schema 3 left it (with or without the mailbox column, which
    that version added outside the numbered migrations)."""
    back_to_schema_4(url)
    with psycopg.connect(url) as conn:
        conn.execute("DROP INDEX smtpmock_messages_read, smtpmock_messages_tagged")
        if not mailbox:
            conn.execute("ALTER TABLE smtpmock_messages DROP COLUMN mailbox")
        conn.execute("DELETE FROM smtpmock_schema WHERE version > 3")


@pytest.mark.parametrize("mailbox", [True, False], ids=["with-mailbox", "without-mailbox"])
def test_schema_3_is_migrated_by_instances_starting_together(pg_url: str, mailbox: bool) -> None:
    store = PostgresStore(pg_url)
    try:
        ids = [store.add(mail(n, subject=f"s{n}")).id for n in range(4)]
        store.mark_read([ids[0]])
        store.set_tags([ids[1]], ["urgent"])
    finally:
        store.close()
    _back_to_schema_3(pg_url, mailbox=mailbox)
    stores, errors = _open_at_once(pg_url, 3)
    try:
        assert errors == []
        with psycopg.connect(pg_url) as conn:
            versions = conn.execute("SELECT version FROM smtpmock_schema ORDER BY version")
            assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))
            found = conn.execute(
                "SELECT to_regclass('smtpmock_messages_read') IS NOT NULL, "
                "to_regclass('smtpmock_messages_tagged') IS NOT NULL"
            ).fetchone()
        assert found == (True, True)
        a, b = stores[0], stores[1]
        assert a.unread_count() == 3
        assert a.tags() == ["urgent"]
        assert [m.mailbox for m in a.messages()] == ["default"] * 4
        b.mark_read([ids[2]])
        b.delete([ids[0]])  # a read message goes: the unread count stays
        assert a.unread_count() == 2 == a.count(parse("is:unread"))
        b.mark_read([ids[2]], read=False)
        assert a.unread_count() == 3
    finally:
        for store in stores:
            store.close()


def test_opening_an_up_to_date_database_takes_no_lock_that_waits_for_writers(
    pg_url: str,
) -> None:
    """Starting an instance beside one that is writing must not wait for (or deadlock) its
    transactions: the schema is read from the catalog and no DDL runs."""
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url) as writer:
        # A writer's locks, held: what an add_many of another instance holds while it runs.
        writer.execute("LOCK TABLE smtpmock_messages, smtpmock_words IN ROW EXCLUSIVE MODE")
        opened: list[PostgresStore] = []
        thread = threading.Thread(target=lambda: opened.append(PostgresStore(pg_url)))
        thread.start()
        thread.join(20)
        alive = thread.is_alive()
        writer.rollback()  # lets a store that did wait finish opening
        thread.join(20)
    for store in opened:
        store.close()
    assert not alive, "opening the store waited for another instance's write"
    assert len(opened) == 1


def test_an_unreachable_database_is_a_clear_error_at_start(pg_server: PostgresServer) -> None:
    url = pg_server.url("no_such_database_here")
    with pytest.raises(StorageUnavailable, match="no_such_database_here"):
        PostgresStore(url, timeout=2)


def test_without_pg_trgm_search_still_works_and_a_log_line_says_so(
    pg_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A role that may create tables in its own schema but not extensions in the database
    # (creating even a trusted extension needs CREATE on the database).
    url = pg_server.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS smtpmock_plain")
        conn.execute("CREATE ROLE smtpmock_plain LOGIN")
        conn.execute("CREATE SCHEMA plain AUTHORIZATION smtpmock_plain")
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        database = psycopg.sql.Identifier(row[0])
        conn.execute(psycopg.sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(database))
    plain = psycopg.conninfo.make_conninfo(
        url, user="smtpmock_plain", options="-csearch_path=plain"
    )
    with caplog.at_level(logging.WARNING, logger="smtpmock.store.postgres"):
        store = PostgresStore(plain)
    try:
        assert store.trigram is False
        assert "pg_trgm unavailable" in caplog.text
        assert "LIKE" in caplog.text
        store.add_many([mail(1, subject="Invoice"), mail(2, subject="receipt")])
        assert [m.subject for m in store.search(parse("subject:INVOICE"))] == ["Invoice 1"]
        assert store.count(parse("voic")) == 1
    finally:
        store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA plain CASCADE")
            conn.execute("DROP ROLE smtpmock_plain")


def test_a_role_that_does_not_own_the_word_index_still_stores_and_finds_everything(
    pg_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The tables made by the database's owner, used by a role granted their rows only: it
    may not merge the word index's pending list (gin_clean_pending_list is the owner's), so
    it leaves that to autovacuum and says so once; every add still commits, every search
    is still exact."""
    url = pg_server.create_database()
    PostgresStore(url).close()  # the schema, owned by the admin role
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS smtpmock_writer")
        conn.execute("CREATE ROLE smtpmock_writer LOGIN")
        conn.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO smtpmock_writer"
        )
        conn.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO smtpmock_writer")
    writer_url = psycopg.conninfo.make_conninfo(url, user="smtpmock_writer")
    with caplog.at_level(logging.WARNING, logger="smtpmock.store.postgres"):
        store = PostgresStore(writer_url)
    try:
        assert "not the owner of smtpmock_terms_words" in caplog.text
        for n in range(3):
            store.add(mail(n, subject=f"order{n}", body=f"lorem ipsum{n}"))
        assert store.count(parse("psum")) == 3
        assert store.count(parse("subject:order1")) == 1
        assert caplog.text.count("not the owner") == 1
    finally:
        store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY smtpmock_writer")
            conn.execute("DROP ROLE smtpmock_writer")


def _count_plan(pg_url: str, table: str, where: str, params: Sequence[object] | None = None) -> str:
    """The plan PostgreSQL makes for counting the rows of *table* (as ``m``) matching *where*,
    with scans steered off as the store steers them."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET enable_seqscan = off")
        rows = conn.execute(
            f"EXPLAIN SELECT count(*) FROM {table} m WHERE {where}", params
        ).fetchall()
    return "\n".join(str(row[0]) for row in rows)


def test_substring_search_uses_the_trigram_indexes(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    store = open_store()
    assert store.trigram is True
    store.add_many([mail(i, subject=f"order {i}") for i in range(50)])
    plan = _count_plan(pg_url, "smtpmock_messages", "subject LIKE '%order 4%'")
    assert "smtpmock_messages_subject_trgm" in plan


def test_an_address_is_looked_up_by_its_rarest_trigrams(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    """``to:user17@example.com``: the trigrams every message holds (``exa``, ``com``, ``use``)
    are not looked up, the rare ones are, and the needle itself is checked on what they
    find; the count is exact."""
    store = open_store()
    store.add_many([mail(i, to=f"user{i}@example.com") for i in range(60)])
    where, params = store._where(parse("to:user17@example.com"))
    looked_up = {p for p in params if isinstance(p, str) and p.startswith("%")}
    assert looked_up == {"%r17%", "%er1%"}  # 1 and 11 of the 60 recipients
    assert "user17@example.com" in params  # the check
    assert "smtpmock_messages_to_text_trgm" in _count_plan(
        pg_url, "smtpmock_messages", where, params
    )
    assert store.count(parse("to:user17@example.com")) == 1
    assert store.count(parse("to:r1")) == 11  # two characters: no trigram, LIKE whole
    assert store.count(parse("to:user1")) == 11
    assert store.count(parse("-to:user17@")) == 59


def test_a_subject_word_is_counted_through_the_subject_word_index(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    """``subject:braka``: the subject words' ids (exact, no recheck of each subject); a
    needle across words still goes through the trigrams of the subject column."""
    store = open_store()
    subjects = ["brakaze order", "abrakadabra", "order braka", "nothing here"]
    store.add_many(
        [mail(i, subject=subjects[i % 4], body="braka xbrakax in the body") for i in range(40)]
    )
    query = parse("subject:braka")
    # The subject's needle looks up the words seen in a subject only (not xbrakax).
    looked_up = store._lookup(query)[("subject", "braka")]
    assert looked_up is not None
    assert sorted(looked_up) == sorted(store._words_containing("braka", subject=True))
    assert len(looked_up) == 3 < len(store._words_containing("braka"))
    where, params = store._where(query, terms=True)
    plan = _count_plan(pg_url, "smtpmock_terms", where, params)
    assert "smtpmock_terms_subject_words" in plan
    assert store.count(query) == 30  # not the 4th subject (its body holds braka: not counted)
    assert store.listing(query, limit=5).page.total == 30
    assert store.count(parse('subject:"order braka"')) == 10
    assert store.count(parse("subject:braka -subject:order")) == 10
    assert store.count(parse("subject:braka is:unread")) == 30


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def test_the_messages_holding_a_word_are_found_once_per_statement(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    """With other terms beside a word, the word's matches are found once and joined: never
    again for each row of the other side (the planner chose that with a stale estimate of the
    read messages: 50 lookups of a common word's 125 words at 100k messages, 2 s)."""
    store = open_store()
    store.add_many([mail(i, body=f"word{i % 7} common") for i in range(2000)])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE smtpmock_messages, smtpmock_terms")  # no message read yet
    store.mark_read([m.id for m in store.search(parse("word3"))][:20])  # no ANALYZE since
    for text in ("common is:read", "-common is:unread", "word3 is:read", "to:bob common"):
        query = parse(text)
        where, params = store._where(query)
        with store._connection() as conn, conn.transaction():
            store._plan(conn, query)
            row = conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM smtpmock_messages m "
                f"WHERE {where}",
                params,
            ).fetchone()
        assert row is not None
        scans = [
            node
            for node in _plan_nodes(row[0][0]["Plan"])
            if node.get("Relation Name") == "smtpmock_terms"
        ]
        assert scans, text
        assert [node["Actual Loops"] for node in scans] == [1] * len(scans), text
    assert store.count(parse("common is:read")) == 20
    assert store.count(parse("-common is:unread")) == 0
    assert store.listing(parse("word3 is:read")).page.total == 20
    assert len(store.search(parse("common is:read"))) == 20


def test_a_body_word_is_found_through_the_word_index(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    """The condition the store writes for a free-text word (the ids of the vocabulary's words
    containing it) reads the word index, never the bodies."""
    store = open_store()
    store.add_many([mail(i, body=f"lorem ipsum{i} dolor") for i in range(50)])
    where, params = store._where(parse("psum4"), terms=True)
    plan = _count_plan(pg_url, "smtpmock_terms", where, params)
    assert "smtpmock_terms_words" in plan
    assert "smtpmock_messages" not in plan  # a count of words reads the narrow table only
    assert "free_text" not in plan
    assert store.count(parse("psum4")) == 11  # ipsum4, ipsum40..49


# ----------------------------------------------------------------------------- writes


def test_seqs_come_from_the_database_and_never_collide_between_instances(
    open_store: Callable[..., PostgresStore],
) -> None:
    a, b = open_store(), open_store()
    added: dict[str, list[int]] = {"a": [], "b": []}

    def writer(name: str, store: PostgresStore) -> None:
        for n in range(40):
            batch = store.add_many([mail(n), mail(n + 1000)])
            added[name] += [m.seq for m in batch]

    threads = [threading.Thread(target=writer, args=item) for item in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = added["a"] + added["b"]
    assert len(set(every)) == len(every) == 160
    assert [m.seq for m in a.messages()] == sorted(every)
    assert len(a) == len(b) == 160


def test_a_reader_following_seqs_never_misses_a_message_of_another_writer(
    open_store: Callable[..., PostgresStore],
) -> None:
    # Seqs are visible in order (the writers commit one at a time), so a reader that moves its
    # floor to the last seq it saw cannot step over a message still being committed.
    writers = [open_store(), open_store(), open_store()]
    reader = open_store()
    total = 90
    seen: list[int] = []
    done = threading.Event()

    def follow() -> None:
        floor = 0
        while len(seen) < total:
            with reader.changed:
                new = reader.since(floor)
                if not new:
                    reader.changed.wait(5)
                    continue
            seen.extend(m.seq for m in new)
            floor = new[-1].seq
        done.set()

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [
        threading.Thread(target=lambda s=s: [s.add(mail(n)) for n in range(total // 3)])
        for s in writers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert done.wait(20)
    follower.join()
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == total


def test_retention_is_never_exceeded_by_several_writers(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    limit = 7
    stores = [open_store(retention=Retention(max_messages=limit)) for _ in range(3)]
    high = [0]
    stop = threading.Event()

    def watch() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute("SELECT count(*) FROM smtpmock_messages").fetchone()
                assert row is not None
                high[0] = max(high[0], row[0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [
        threading.Thread(target=lambda s=s: [s.add_many([mail(n), mail(n)]) for n in range(25)])
        for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert len(stores[0]) == limit
    assert high[0] <= limit
    kept = [m.seq for m in stores[1].messages()]
    assert kept == sorted(kept)[-limit:]
    assert kept[-1] == max(s.last_seq for s in stores)


def test_retention_by_bytes_and_age(open_store: Callable[..., PostgresStore]) -> None:
    sized = open_store(retention=Retention(max_bytes=500))
    for n in range(10):
        sized.add(mail(n, body="x" * 100))
    assert 0 < sized.total_bytes <= 500
    assert sum(m.size for m in sized.messages()) == sized.total_bytes
    assert sized.messages()[-1].subject == "hello 9"


# ----------------------------------------------------------------------------- search


_TRICKY = [
    ("Invoice #100% paid", "accounts@example.com", "Total: 100% of 5_000 EUR"),
    ("r\u00e9sum\u00e9 CHLO\u00c9", "chloe@example.fr", "Caf\u00e9 cr\u00e8me, na\u00efve"),
    ("back\\slash and under_score", "x_y@example.com", "C:\\path\\to\\file"),
    ("nul inside", "nul@example.com", "before\x00after"),
    ("ORDER 42", "Bob.Smith@Example.COM", "Your order 42 has shipped"),
    # A word longer than a btree entry may be (the vocabulary keys words by md5).
    ("long word", "long@example.com", "start " + "z" * 3000 + "end finish"),
]

_QUERIES = [
    "100%",
    "5_000",
    "x_y",
    "_",
    "%",
    "\\path",
    "back\\slash",
    "subject:r\u00e9sum\u00e9",
    "subject:CHLO\u00c9",
    "subject:rder",
    "subject:sum\u00e9",
    "-subject:rder",
    "subject:rder rder",
    "caf\u00e9",
    "to:bob.smith@example.com",
    "to:smith@exam",
    "-to:bob.smith@example.com",
    "rder is:unread",
    "-rder is:unread",
    "to:EXAMPLE",
    "from:alice",
    "-subject:order",
    "order 42",
    '"order 42"',
    "addressed:chloe",
    "message-id:m3@",
    "larger:150",
    "smaller:150",
    "has:attachment",
    "before\x00after",
    "",
    # Free text through the word vocabulary: inside one word, across words, no word at all.
    "rder",
    "ipped",
    "-shipped",
    "-rder",
    "\u00e8me",
    "a\u00efv",
    "4",
    '"der 42 ha"',
    '"r 42"',
    "e.com",
    "@",
    ":\\",
    '"% o"',
    "zzzend",
    "z" * 2990,
    '"zzzend fin"',
    "nowhere",
]


@pytest.fixture(scope="module")
def tricky(pg_server: PostgresServer) -> Iterator[tuple[PostgresStore, MemoryStore]]:
    """The same awkward messages in PostgreSQL and in memory (one database for the module)."""
    store, memory = PostgresStore(pg_server.create_database()), MemoryStore()
    for n, (subject, to, body) in enumerate(_TRICKY):
        raw = (
            f"From: Alice <alice@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{n}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n"
        ).encode()
        for target in (store, memory):
            target.add(Message(raw, mail_from="alice@example.com", rcpt_tos=[to], id=f"id{n}"))
    yield store, memory
    store.close()


@pytest.mark.parametrize("query", _QUERIES)
def test_search_agrees_with_the_memory_store(
    tricky: tuple[PostgresStore, MemoryStore], query: str
) -> None:
    store, memory = tricky
    search = parse(query)
    expected = [m.id for m in memory.messages() if search.matches(m)]
    assert [m.id for m in store.search(search)] == expected
    assert store.count(search) == len(expected)
    page = store.page(search, start=0, limit=2)
    assert page.total == len(expected)
    assert [s.id for s in page.summaries] == expected[::-1][:2]
    assert [m.id for m in store.search(search, after=1, before=3)] == [
        i for i in expected if i in ("id1", "id2")
    ]


def test_schema_4_is_migrated_with_its_words_by_instances_starting_together(
    pg_url: str,
) -> None:
    """Migration 5 moves the word ids of the stored messages to smtpmock_terms: word search
    answers the same after it, on every instance, and for mail added later."""
    store = PostgresStore(pg_url)
    try:
        for n, body in enumerate(["alpha bravo", "charlie alphabet", "delta"]):
            store.add(mail(n, body=body))
    finally:
        store.close()
    back_to_schema_4(pg_url)
    stores, errors = _open_at_once(pg_url, 2)
    try:
        assert errors == []
        a, b = stores
        with psycopg.connect(pg_url) as conn:
            column = conn.execute(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'smtpmock_messages' AND column_name = 'words'"
            ).fetchone()
        assert column == (0,)
        assert a.count(parse("alpha")) == 2
        assert a.count(parse("subject:hello")) == 3  # the migrated subjects' words
        assert [s.subject for s in b.page(parse("lphab")).summaries] == ["hello 1"]
        assert b.count(parse("-alpha is:unread")) == 1
        b.add(mail(3, body="alpha again"))
        assert a.count(parse("alpha")) == 3
        b.delete([m.id for m in b.search(parse("alpha"))])
        assert a.count(parse("alpha")) == 0
        assert len(a) == 1
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("query", _QUERIES)
def test_search_agrees_when_needles_are_in_many_words(
    tricky: tuple[PostgresStore, MemoryStore], query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same answers when a needle's words are looked up in several index scans, and when
    a needle in too many words is matched on the texts instead (PostgresStore._lookup)."""
    from smtpmock.store import _postgres

    store, memory = tricky
    search = parse(query)
    expected = [m.id for m in memory.messages() if search.matches(m)]
    for many, scans in ((1, 128), (1000, 2)):
        monkeypatch.setattr(_postgres, "_MANY_WORDS", many)
        monkeypatch.setattr(_postgres, "_OVERLAP_SCANS", scans)
        assert [m.id for m in store.search(search)] == expected
        assert store.count(search) == len(expected)
        assert store.page(search, start=0, limit=2).total == len(expected)


def test_messages_stored_before_the_word_index_are_indexed_by_the_migration(
    pg_url: str,
) -> None:
    """Schema 1 had no word index: opening such a database indexes what it holds."""
    store = PostgresStore(pg_url)
    try:
        store.add(mail(1, subject="first", body="alpha bravo"))
        store.add(mail(2, subject="second", body="charlie delta"))
    finally:
        store.close()
    back_to_schema_1(pg_url)  # as an older smtpmock left it
    store = PostgresStore(pg_url)
    try:
        assert [m.subject for m in store.search(parse("rav"))] == ["first 1"]
        assert store.count(parse("delta")) == 1
        assert store.count(parse('"bravo charlie"')) == 0
        assert store.count(parse("-alpha")) == 1
        store.add(mail(3, subject="third", body="alphabet"))
        assert store.count(parse("alpha")) == 2
    finally:
        store.close()


def test_counts_follow_every_change_made_by_any_instance(
    open_store: Callable[..., PostgresStore],
) -> None:
    """A count of substring terms is kept for as long as the set of messages is the same
    (PostgresStore._count): each change, made here or by another instance, is seen."""
    a, b = open_store(), open_store()
    first = a.add(mail(1, body="needle"))
    second = a.add(mail(2, body="needle"))
    assert b.count(parse("needle")) == 2
    assert b.page(parse("needle")).total == 2
    assert b.count(parse("needle is:unread")) == 2
    a.mark_read([first.id])  # read state: the same messages, another unread count
    assert b.count(parse("needle is:unread")) == 1
    assert b.count(parse("needle")) == 2
    # A removal and an addition leave as many messages as before: another set all the same.
    a.delete([second.id])
    a.add(mail(3, body="haystack"))
    assert len(b) == 2
    assert b.count(parse("needle")) == 1
    assert b.count(parse("needle is:unread")) == 0
    a.add(mail(4, body="needle"))
    assert b.page(parse("needle")).total == 2
    assert b.count(parse("needle is:unread")) == 1
    assert b.count(parse("-needle")) == 1
    assert b.count(parse("needle"), after=first.seq) == 1


# ----------------------------------------------------------------------------- change feed


def test_changes_made_by_one_instance_reach_the_listeners_of_another(
    open_store: Callable[..., PostgresStore],
) -> None:
    a, b = open_store(), open_store()
    heard = Recorder()
    b.subscribe(heard)
    generation = b.generation
    first = a.add(mail(1, subject="remote"))
    events = heard.wait(1)
    assert events[0].kind == "added"
    assert [m.id for m in events[0].messages] == [first.id]
    assert events[0].messages[0].subject == "remote 1"
    assert b.last_seq == first.seq

    a.delete([first.id])
    events = heard.wait(2)
    assert (events[1].kind, events[1].ids) == ("deleted", (first.id,))
    assert b.generation > generation

    a.add(mail(2))
    heard.wait(3)
    a.clear()
    events = heard.wait(4)
    assert [e.kind for e in events[2:]] == ["added", "cleared"]
    assert b.generation == a.generation
    assert len(b) == 0


def test_mail_deleted_before_another_instance_loads_it_is_not_announced(
    open_store: Callable[..., PostgresStore],
) -> None:
    # The feed carries seqs, not messages: what is gone when the other instance reads it
    # cannot be shown, and is not announced; the removal is.
    a, b = open_store(), open_store()
    heard = Recorder()
    b.subscribe(heard)
    a.add(mail(1))
    a.clear()
    events = heard.wait_until(lambda e: e.kind == "cleared")
    assert [e.kind for e in events] in (["cleared"], ["added", "cleared"])
    assert all(m.subject == "hello 1" for e in events for m in e.messages)


def test_own_changes_are_published_once(open_store: Callable[..., PostgresStore]) -> None:
    a, b = open_store(), open_store()
    mine, theirs = Recorder(), Recorder()
    a.subscribe(mine)
    b.subscribe(theirs)
    a.add(mail(1))
    b.add(mail(2))  # the feed delivers in commit order: when b's own note is seen, a's was too
    theirs.wait(2)
    mine.wait(2)
    a.add(mail(3))
    theirs.wait(3)
    events = mine.wait(3)
    assert [e.messages[0].subject for e in events] == ["hello 1", "hello 2", "hello 3"]
    assert len(mine.events) == 3


def test_a_wait_on_one_instance_wakes_when_another_stores_mail(
    open_store: Callable[..., PostgresStore],
) -> None:
    a, b = open_store(), open_store()
    box = Mailbox(b, floor=b.last_seq)
    result: list[list[Message]] = []
    waiter = threading.Thread(
        target=lambda: result.append(box.wait_for(2, timeout=20, to="z@x.org"))
    )
    waiter.start()
    a.add(mail(1, to="z@x.org"))
    a.add(mail(2, to="other@x.org"))
    a.add(mail(3, to="z@x.org"))
    waiter.join()
    assert [m.subject for m in result[0]] == ["hello 1", "hello 3"]


def test_the_feed_reconnects_and_catches_up_on_what_it_missed(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    a, b = open_store(), open_store()
    heard = Recorder()
    b.subscribe(heard)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # Cut b's LISTEN connection (the backend that is listening) and write at once.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
        )
    sent = [a.add(mail(n)) for n in range(3)]
    events = heard.wait(3)
    assert [e.messages[0].id for e in events if e.kind == "added"] == [m.id for m in sent]
    assert b.wait_listening(10)
    a.add(mail(9))
    assert heard.wait(4)[3].messages[0].subject == "hello 9"


def test_a_lost_database_refuses_writes_then_recovers(
    pg_server: PostgresServer, open_store: Callable[..., PostgresStore]
) -> None:
    if not pg_server.local:
        pytest.skip("needs the tests' own cluster to stop it")
    assert pg_server.cluster is not None
    a = open_store(timeout=2.0)
    b = open_store(timeout=2.0)
    a.add(mail(1))
    pg_server.cluster.stop_server()
    try:
        with pytest.raises(StorageUnavailable):
            a.add(mail(2))
        with pytest.raises(StorageUnavailable):
            b.count(parse("hello"))
    finally:
        pg_server.cluster.start_server()
    heard = Recorder()
    b.subscribe(heard)
    stored = None
    for _ in range(10):  # the pool reconnects in the background within its backoff round
        try:
            stored = a.add(mail(3))
            break
        except StorageUnavailable:
            continue
    assert stored is not None
    assert [m.subject for m in b.messages()] == ["hello 1", "hello 3"]
    assert heard.wait(1)[0].kind == "added"


def test_stores_in_two_schemas_of_one_database_are_apart(pg_server: PostgresServer) -> None:
    # Each schema has its own tables and its own NOTIFY channel.
    first = PostgresStore(pg_server.create_schema())
    second = PostgresStore(pg_server.create_schema())
    try:
        assert first.wait_listening(10)
        assert second.wait_listening(10)
        heard = Recorder()
        second.subscribe(heard)
        first.add(mail(1))
        second.add(mail(2))
        events = heard.wait(1)
        assert [m.subject for e in events for m in e.messages] == ["hello 2"]
        assert [m.subject for m in first.messages()] == ["hello 1"]
        assert [m.subject for m in second.messages()] == ["hello 2"]
    finally:
        first.close()
        second.close()
