"""The PostgreSQL store's word postings (``store/_postings.py``) on a real PostgreSQL: blocks of
a few seqs here (8,192 in use), so that a few hundred messages fill many, and every answer is
checked against the memory store holding the same messages, while blocks are written, after
deletes, retention and clears, on two instances, and across a delete that races a block.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable

import pytest

from smtpmock import Message
from smtpmock._search import parse
from smtpmock.store import MemoryStore, Retention, Store
from tests.pg import back_to_schema_5

psycopg = pytest.importorskip("psycopg")  # the fixtures fail in CI before this skips

from smtpmock.store import _postings  # noqa: E402
from smtpmock.store._postgres import _MERGE_KEY as MERGE_KEY  # noqa: E402
from smtpmock.store._postgres import PostgresStore  # noqa: E402

BLOCK = 16
SYLLABLES = ["ka", "lo", "mi", "bra", "cli", "dro", "fen", "jor", "kes"]
QUERIES = [
    "ka",  # inside most words
    "brakes",
    "jorlo",
    "mi fen",  # two needles
    '"lo bra"',  # across words
    "-kaka",
    "-jorlo subject:fen",  # negated needles: the messages' seqs minus theirs
    "ka -mi -subject:kes",
    "kes to:example.org",
    "clidro is:read",
    "clidro is:unread",
    "subject:fen kes",
    "subject:jor",
    "zz",  # in no word
    "n0042",
]


def vocabulary(rng: random.Random) -> list[str]:
    return sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))) for _ in range(60)})


def corpus(n: int, seed: int = 5, first: int = 0) -> list[tuple[str, bytes, str]]:
    """(id, raw, recipient) of *n* messages whose words overlap (every word is a few syllables
    of the same nine)."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    out = []
    for i in range(first, first + n):
        to = f"user{i % 7}@example.{'org' if i % 3 else 'com'}"
        body = " ".join(rng.choices(words, k=rng.randint(3, 12)))
        raw = (
            f"From: a@example.com\r\nTo: {to}\r\nSubject: n{i:04d} {rng.choice(words)}\r\n"
            f"Message-ID: <{i}@example.com>\r\n\r\n{body}\r\n"
        ).encode()
        out.append((f"id{i}", raw, to))
    return out


def add(stores: list[Store], mails: list[tuple[str, bytes, str]], batch: int = 10) -> None:
    for store in stores:
        for k in range(0, len(mails), batch):
            store.add_many(
                [
                    Message(raw, mail_from="a@example.com", rcpt_tos=[to], id=id)
                    for id, raw, to in mails[k : k + batch]
                ]
            )


def frozen(url: str) -> tuple[int, int, int]:
    """(F, the postings rows, the blocks) of the store at *url*."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT frozen, (SELECT count(*) FROM smtpmock_postings), "
            "(SELECT count(*) FROM smtpmock_blocks) FROM smtpmock_state"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def wait_frozen(url: str, at_least: int, timeout: float = 20.0) -> int:
    """Wait for the merge to have written the blocks up to *at_least*; F."""
    deadline = time.monotonic() + timeout
    while True:
        upto = frozen(url)[0]
        if upto >= at_least:
            return upto
        assert time.monotonic() < deadline, f"F is {upto}, not yet {at_least}"
        time.sleep(0.05)


def agree(store: PostgresStore, memory: MemoryStore, queries: list[str] = QUERIES) -> None:
    """Every answer of *store* is the memory store's (searches, counts, pages, listings)."""
    for query in queries:
        search = parse(query)
        expected = [m.id for m in memory.messages() if search.matches(m)]
        assert [m.id for m in store.search(search)] == expected, query
        assert store.count(search) == len(expected), query
        newest = expected[::-1]
        for start, limit in ((0, 5), (3, 4), (max(len(expected) - 2, 0), 10)):
            page = store.page(search, start=start, limit=limit)
            assert page.total == len(expected), query
            assert [s.id for s in page.summaries] == newest[start : start + limit], query
        oldest = store.page(search, start=1, limit=3, newest_first=False)
        assert [s.id for s in oldest.summaries] == expected[1:4], query
        listing = store.listing(search, start=0, limit=4)
        mine = memory.listing(search, start=0, limit=4)
        assert listing.page.total == mine.page.total, query
        assert [s.id for s in listing.page.summaries] == [s.id for s in mine.page.summaries]
        assert (listing.unread_matches, listing.stored, listing.unread) == (
            mine.unread_matches,
            mine.stored,
            mine.unread,
        ), query
        # Within seq bounds (the stores' seqs differ: bounds by position).
        seqs = [m.seq for m in store.messages()]
        if len(seqs) > 40:
            after, before = seqs[10], seqs[40]
            ids = {m.id for m in store.messages() if after < m.seq <= before}
            assert [m.id for m in store.search(search, after=after, before=before)] == [
                i for i in expected if i in ids
            ], query
            assert store.count(search, after=after) == len(
                [m for m in store.messages() if m.seq > after and m.id in set(expected)]
            ), query


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 16 seqs, merged two by two (16, 32, 64...)."""
    monkeypatch.setattr(_postings, "BLOCK", BLOCK)
    monkeypatch.setattr(_postings, "FANOUT", 2)


@pytest.fixture
def open_store(
    open_store: Callable[..., PostgresStore], small_blocks: None
) -> Callable[..., PostgresStore]:
    """tests/pg.py's, with small blocks."""
    return open_store


def test_answers_agree_while_blocks_are_written_and_after(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    store, memory = open_store(), MemoryStore()
    mails = corpus(300)
    add([store, memory], mails[:150])
    agree(store, memory)  # blocks being written meanwhile, or not yet
    add([store, memory], mails[150:])
    upto = wait_frozen(pg_url, 300 - BLOCK + 1)
    assert upto % BLOCK == 0
    agree(store, memory)
    store._merge(wait=True)  # the round that wrote the last block has emptied its rows
    with psycopg.connect(pg_url) as conn:
        # The messages up to F have no word ids left in smtpmock_terms: the postings hold them.
        left = conn.execute(
            "SELECT count(*) FROM smtpmock_terms WHERE seq <= %s AND words <> '{}'", (upto,)
        ).fetchone()
        above = conn.execute(
            "SELECT count(*) FROM smtpmock_terms WHERE seq > %s AND words = '{}'", (upto,)
        ).fetchone()
    assert left == (0,)
    assert above == (0,)
    # The blocks, merged two by two, cover (0, F] once, each at most twice as large as the
    # next newer one: 288 = 256 + 32, one row per word and block.
    with psycopg.connect(pg_url) as conn:
        blocks = conn.execute("SELECT lo, hi FROM smtpmock_blocks ORDER BY hi").fetchall()
        most = conn.execute(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM smtpmock_postings GROUP BY word) c"
        ).fetchone()
    assert blocks[0][0] == 0
    assert blocks[-1][1] == upto
    assert all(b[0] == a[1] for a, b in itertools.pairwise(blocks))
    assert [hi - lo for lo, hi in blocks] == [256, 32]
    assert most == (2,)


def test_deletes_read_state_and_retention_are_seen_through_the_postings(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    store, memory = open_store(), MemoryStore()
    add([store, memory], corpus(200))
    wait_frozen(pg_url, 200 - BLOCK + 1)
    doomed = [f"id{i}" for i in range(0, 200, 3)]
    assert store.delete(doomed) == memory.delete(doomed)
    readers = [f"id{i}" for i in range(1, 200, 5)]
    store.mark_read(readers)
    memory.mark_read(readers)
    agree(store, memory)
    # A delete by search, its needle's words in the postings.
    assert store.delete_matching(parse("jorlo")) == memory.delete_matching(parse("jorlo"))
    agree(store, memory)
    # The gone seqs folded into their blocks at the next round, with the same answers.
    store._merge(wait=True)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM smtpmock_gone").fetchone() == (0,)
    agree(store, memory)


def test_retention_drops_the_postings_of_blocks_whose_messages_are_gone(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    retention = Retention(max_messages=50)
    store, memory = open_store(retention=retention), MemoryStore(retention)
    add([store, memory], corpus(400), batch=7)
    wait_frozen(pg_url, 400 - BLOCK + 1)
    store._merge(wait=True)
    # Every block left holds one of the last 50 messages (the older ones were dropped, with
    # their postings).
    with psycopg.connect(pg_url) as conn:
        blocks = conn.execute(
            "SELECT b.lo, b.hi, (SELECT count(*) FROM smtpmock_messages m "
            "WHERE m.seq > b.lo AND m.seq <= b.hi) FROM smtpmock_blocks b ORDER BY b.hi"
        ).fetchall()
        orphans = conn.execute(
            "SELECT count(*) FROM smtpmock_postings p WHERE NOT EXISTS "
            "(SELECT 1 FROM smtpmock_blocks b WHERE b.hi = p.block)"
        ).fetchone()
    assert blocks
    assert all(live > 0 for _, _, live in blocks), blocks
    assert orphans == (0,)
    assert len(store) == len(memory) == 50
    agree(store, memory)


def test_a_clear_empties_the_postings_and_later_blocks_are_right(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    store, memory = open_store(), MemoryStore()
    add([store, memory], corpus(100))
    wait_frozen(pg_url, 100 - BLOCK + 1)
    store.clear()
    memory.clear()
    agree(store, memory)  # at once, whatever a merge round was doing meanwhile
    # A round merging blocks as the clear ran may leave its merged block's row (not its
    # postings): the next round drops it, its messages being gone.
    store._merge(wait=True)
    upto, rows, blocks = frozen(pg_url)
    assert (rows, blocks) == (0, 0)
    add([store, memory], corpus(100, seed=9, first=100))
    wait_frozen(pg_url, upto + 100 - BLOCK + 1)
    agree(store, memory)


def test_two_instances_share_the_postings(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    """Both merge (one at a time: the advisory lock); each answers from the same postings."""
    a, b, memory = open_store(), open_store(), MemoryStore()
    mails = corpus(240)
    # Alternate batches: each instance fills blocks, and each one's adds wake its merger.
    for k in range(0, len(mails), 12):
        target = a if k % 24 else b
        target.add_many(
            [
                Message(raw, mail_from="a@example.com", rcpt_tos=[to], id=id)
                for id, raw, to in mails[k : k + 12]
            ]
        )
    add([memory], mails)
    wait_frozen(pg_url, 240 - BLOCK + 1)
    agree(a, memory)
    agree(b, memory)


def test_a_block_read_before_a_delete_and_written_after_it(
    open_store: Callable[..., PostgresStore], pg_url: str
) -> None:
    """The race the gone seqs are for: a merge reads a block, a message of it is deleted,
    then the merge writes the block (with the deleted message in it)."""
    store, memory = open_store(), MemoryStore()
    add([store, memory], corpus(40))
    lo = wait_frozen(pg_url, 40 - BLOCK + 1)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # Stand in for the instance's merge: hold its lock (once its round is over), so that
        # it cannot run meanwhile.
        conn.execute("SELECT pg_advisory_lock(%s)", (MERGE_KEY,))
        try:
            add([store, memory], corpus(BLOCK, seed=7, first=40))
            assert frozen(pg_url)[0] == lo
            block = _postings.build(conn, lo, lo + BLOCK)
            words = list(block)  # (freeze empties the dict as it writes)
            inside = [m for m in store.messages() if lo < m.seq <= lo + BLOCK]
            victims = [m.id for m in inside[:3]]
            assert store.delete(victims) == memory.delete(victims) == 3
            assert _postings.freeze(conn, lo, lo + BLOCK, block)
            # The block holds the deleted messages (the gone seqs take them out).
            held = _postings.held(conn, words)
            assert {m.seq for m in inside[:3]} <= set(held)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MERGE_KEY,))
    agree(store, memory)
    store._merge(wait=True)  # empties the block's terms rows, folds the gone seqs
    agree(store, memory)


def test_a_store_of_schema_5_gets_its_postings_after_the_migration(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryStore()
    store = PostgresStore(pg_url)  # blocks of 8,192: nothing written yet
    try:
        add([store, memory], corpus(120))
    finally:
        store.close()
    back_to_schema_5(pg_url)
    monkeypatch.setattr(_postings, "BLOCK", BLOCK)
    store = PostgresStore(pg_url)
    try:
        wait_frozen(pg_url, 120 - BLOCK + 1)  # the merge at start: the messages stored before
        agree(store, memory)
    finally:
        store.close()
