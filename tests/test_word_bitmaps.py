"""The word bitmaps behind free-text counts and pages give exactly Python's answers.

``SQLiteStore.count`` and ``SQLiteStore.page`` answer a free-text search from per-word
bitmaps over blocks of messages (``smtpmock/store/_bits.py``), FTS5 covering what no bitmap
holds yet. The block size is cut to 16 here so that a corpus of a few hundred messages spans
many blocks: finished ones in the tables, the one being filled in memory, blocks emptied by
deletion, a block rebuilt after a reopen, and a file from before the bitmaps existed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from smtpmock import Message
from smtpmock._search import index_fields, parse
from smtpmock.store import Retention, SQLiteStore, _sqlite_index
from smtpmock.store._bits import BlockBits, decode, encode, page, range_mask

from .indexer import stop_indexer
from .test_search_index import _corpus

BLOCK = 16
QUERIES = ["ka", "a", "é", "zé", "lo", "mika", "sa", "nure", "toab", "kaka", "ba", "ré"]
QUERIES += ["subject:ka", "ka lo", "ka -lo", "order", "50%", "nothingthere"]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SQLiteStore, "_BITS_BLOCK", BLOCK)


def _assert_pages(store: SQLiteStore, messages: list[Message], queries: list[str]) -> None:
    """count and pages (both orders, a middle page, ``after``) against Python's ``in``."""
    fields = [(m.id, m.seq, index_fields(m)) for m in messages]
    wrong = []
    for query in queries:
        search = parse(query)
        want = [(id, seq) for id, seq, f in fields if search.test_fields(f)]
        ids = [id for id, _ in want]
        checks = {
            "count": (store.count(search), len(want)),
            "all, oldest first": (
                [s.id for s in store.page(search, limit=None, newest_first=False).summaries],
                ids,
            ),
            "page 2 of 7, newest first": (
                [s.id for s in store.page(search, start=7, limit=7).summaries],
                ids[::-1][7:14],
            ),
            "page 3 of 5, oldest first": (
                [s.id for s in store.page(search, start=10, limit=5, newest_first=False).summaries],
                ids[10:15],
            ),
            "total": (store.page(search, limit=1).total, len(want)),
        }
        if want:
            middle = want[len(want) // 2][1]
            later = [id for id, seq in want if seq > middle]
            checks["after"] = (store.count(search, after=middle), len(later))
            checks["after, page"] = (
                [s.id for s in store.page(search, after=middle, limit=None).summaries],
                later[::-1],
            )
            checks["after..before"] = (
                store.count(search, after=want[0][1], before=middle),
                len([1 for _, seq in want if want[0][1] < seq <= middle]),
            )
        for name, (got, expected) in checks.items():
            if got != expected:
                wrong.append(f"{query!r} {name}: store {got!r}, Python {expected!r}")
    assert not wrong, "\n".join(wrong)


def _filled(path: Path, messages: list[Message], *, killed: bool = False) -> None:
    """Store and index *messages* in the file *path*, then close the store, or (*killed*)
    end it as SIGKILL would: without writing out the block being filled."""
    store = SQLiteStore(path)
    store.add_many(messages)
    store.flush_index()
    if killed:
        stop_indexer(store)
        store._db.close()
    else:
        store.close()


def _blocks_in_tables(store: SQLiteStore) -> set[int]:
    return {r[0] for r in store._db.execute("SELECT DISTINCT block FROM wordbits")}


def test_encoding_round_trips_sparse_and_dense_sets() -> None:
    for bits in (0, 1, 1 << 4095, (1 << 63) - 1, (1 << 64) - 1, (1 << 4096) - 1, 0b1011 << 700):
        blob = encode(bits, 4096)
        assert decode(blob, 4096) == bits
        assert len(blob) == (512 if bits.bit_count() >= 64 else 2 * bits.bit_count())
    assert range_mask(2, 16, after=33, until=40) == 0b1111111 << 2  # seqs 34..40 of 32..47
    assert range_mask(2, 16, after=60, until=None) == 0
    blocks = {0: 0b1010, 1: 0b11}  # seqs 1, 3, 16, 17
    assert page(blocks, 16, 0, None, False) == [1, 3, 16, 17]
    assert page(blocks, 16, 1, 2, True) == [16, 3]
    held = BlockBits(1, 16)
    held.add_texts([(17, "ka lo ka")])
    assert held.words == {"ka": 2, "lo": 2}
    assert held.alive == 2
    held.add_many([(20, ["lo", "mi"]), (31, ["mi"])])
    assert held.words == {"ka": 2, "lo": 0b10010, "mi": 1 << 15 | 1 << 4}
    assert held.alive == 1 << 15 | 0b10010


def test_counts_and_pages_agree_with_python_across_blocks() -> None:
    corpus = _corpus(300, seed=21)
    store = SQLiteStore()
    try:
        store.add_many(corpus[:200])
        _assert_pages(store, corpus[:200], QUERIES)
        assert len(_blocks_in_tables(store)) >= 11  # 200 messages: 12 blocks, the last in memory
        assert store._acc is not None
        assert store._acc.block == 200 // BLOCK
        for message in corpus[200:]:  # one at a time, as over SMTP
            store.add(message)
        _assert_pages(store, corpus, QUERIES)
    finally:
        store.close()


def test_deletions_and_emptied_blocks(tmp_path: Path) -> None:
    corpus = _corpus(200, seed=22)
    store = SQLiteStore(tmp_path / "mail.db")
    try:
        store.add_many(corpus)
        store.flush_index()
        # A scattering, the block being filled, and the whole of block 2 (seqs 32..47).
        gone = {m.id for m in corpus[::5]} | {m.id for m in corpus[-3:]}
        gone |= {m.id for m in corpus if 32 <= m.seq < 48}
        store.delete(gone)
        kept = [m for m in corpus if m.id not in gone]
        _assert_pages(store, kept, QUERIES)
        store._bits_upkeep()  # (or the background indexer did it first)
        assert 2 not in _blocks_in_tables(store)
        assert 2 not in store._alive
        _assert_pages(store, kept, QUERIES)
    finally:
        store.close()


def test_retention_evicts_whole_blocks_and_their_bitmaps() -> None:
    corpus = _corpus(150, seed=23)
    store = SQLiteStore(retention=Retention(max_messages=40))
    try:
        for message in corpus:
            store.add(message)
        store.flush_index()
        kept = corpus[-40:]
        _assert_pages(store, kept, QUERIES)
        store._bits_upkeep()
        first = kept[0].seq // BLOCK
        assert min(_blocks_in_tables(store)) >= first
    finally:
        store.close()


def test_a_reopened_file_rebuilds_the_block_being_filled(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    corpus = _corpus(250, seed=24)
    _filled(path, corpus[:170])  # close() writes block 10 as far as it got (seq 170)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT block, upto FROM openblock").fetchall() == [(10, 170)]
    again = SQLiteStore(path)
    try:
        stop_indexer(again)  # hold the background rebuild back, to see the FTS5 fallback
        assert again._acc is None  # block 10 (seqs 160..175) has messages: rebuilt later
        _assert_pages(again, corpus[:170], QUERIES)
        again.add_many(corpus[170:210])  # past the block: still answered through FTS5
        _assert_pages(again, corpus[:210], QUERIES)
        again._bits_upkeep()
        assert again._acc is not None
        assert again._acc.block == 209 // BLOCK
        assert {10, 11, 12} <= _blocks_in_tables(again)
        again.add_many(corpus[210:])
        _assert_pages(again, corpus, QUERIES)
    finally:
        again.close()


def test_a_store_that_was_not_closed_rebuilds_its_bitmaps(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    corpus = _corpus(100, seed=29)
    _filled(path, corpus, killed=True)
    again = SQLiteStore(path)
    try:
        _assert_pages(again, corpus, QUERIES)
        again._bits_upkeep()
        assert again._acc is not None
        assert again._acc.alive.bit_count() == 100 - 6 * BLOCK + 1  # seqs 96..100
        _assert_pages(again, corpus, QUERIES)
    finally:
        again.close()


def test_a_schema_2_file_gets_its_bitmaps_built(tmp_path: Path) -> None:
    path = tmp_path / "mail.db"
    corpus = _corpus(120, seed=25)
    _filled(path, corpus)
    with sqlite3.connect(path) as db:  # as smtpmock 0.x before the bitmaps left it
        for table in ("bitmeta", "bitblocks", "wordbits"):
            db.execute(f"DROP TABLE {table}")
        db.execute("PRAGMA user_version=2")
    again = SQLiteStore(path)
    try:
        _assert_pages(again, corpus, QUERIES)  # answered through FTS5 until the bitmaps exist
        again._bits_upkeep()
        assert _blocks_in_tables(again) == set(range(120 // BLOCK))
        assert again._db.execute("PRAGMA user_version").fetchone()[0] == 4  # 4: read, tags
        _assert_pages(again, corpus, QUERIES)
    finally:
        again.close()


def test_a_different_block_size_drops_and_rebuilds_the_bitmaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mail.db"
    corpus = _corpus(100, seed=26)
    _filled(path, corpus)
    monkeypatch.setattr(SQLiteStore, "_BITS_BLOCK", 32)
    again = SQLiteStore(path)
    try:
        again._bits_upkeep()
        assert _blocks_in_tables(again) == {0, 1, 2}  # seqs 1..95 in blocks of 32
        _assert_pages(again, corpus, QUERIES)
    finally:
        again.close()


def test_clear_drops_every_bitmap() -> None:
    corpus = _corpus(80, seed=27)
    store = SQLiteStore()
    try:
        store.add_many(corpus[:50])
        store.flush_index()
        assert _blocks_in_tables(store)
        store.clear()
        assert not _blocks_in_tables(store)
        store.add_many(corpus[50:])
        store._bits_upkeep()
        _assert_pages(store, corpus[50:], QUERIES)
    finally:
        store.close()


def test_rare_words_are_kept_as_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SQLiteStore, "_BITS_BLOCK", 256)  # fewer than 4 messages: offsets
    corpus = _corpus(700, seed=28)
    store = SQLiteStore()
    try:
        store.add_many(corpus)
        store.flush_index()
        sizes = {len(r[0]) for r in store._db.execute("SELECT bits FROM wordbits")}
        assert 32 in sizes
        assert sizes & {2, 4, 6}
        _assert_pages(store, corpus, QUERIES)
    finally:
        store.close()


def test_a_rebuild_cut_short_by_close_keeps_nothing_half_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SQLiteStore, "_BITS_BLOCK", 64)  # block 1 (seqs 64..127): 2 slices
    path = tmp_path / "mail.db"
    corpus = _corpus(110, seed=30)
    _filled(path, corpus, killed=True)  # block 1 is rebuilt from `texts` on the next open
    again = SQLiteStore(path)
    stop_indexer(again)
    read = BlockBits.add_texts

    def then_close(self: BlockBits, messages: list[tuple[int, str]]) -> None:
        read(self, messages)
        again._closed = True  # close() arrives after the first slice

    monkeypatch.setattr(BlockBits, "add_texts", then_close)
    again._bits_upkeep()
    assert again._acc is None
    monkeypatch.setattr(BlockBits, "add_texts", read)
    again.close()
    third = SQLiteStore(path)
    try:
        third._bits_upkeep()
        _assert_pages(third, corpus, QUERIES)
    finally:
        third.close()


def test_needles_inside_too_many_words_for_fts5_are_counted_from_the_bitmaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A needle whose words take more FTS5 prefix terms than a query may hold has no FTS5
    expression; its count and pages come from the bitmaps of its words (read a few words at a
    time, full blocks left out of the next read), past them from ``instr`` on the texts, and
    whole messages (``search``) from ``instr`` on every text, all as Python answers them."""
    monkeypatch.setattr(_sqlite_index, "_MAX_PREFIXES", 1)
    monkeypatch.setattr(_sqlite_index, "_WORDS_PER_READ", 7)
    path = tmp_path / "mail.db"
    corpus = _corpus(260, seed=31)
    _filled(path, corpus[:170])  # block 10 is saved up to seq 170, and rebuilt on open
    store = SQLiteStore(path)
    try:
        stop_indexer(store)
        plans = {q: store._text_plan("free", q) for q in ("ka", "a", "lo", "mi")}
        assert all(p.fts is None and p.check for p in plans.values())  # no FTS5 expression
        assert all(len(p.words) > 7 for p in plans.values())  # several reads of `wordbits`
        queries = [*QUERIES, "a ka", "ka lo mi"]
        _assert_pages(store, corpus[:170], queries)  # block 10 and later: instr on texts
        store.add_many(corpus[170:210])
        _assert_pages(store, corpus[:210], queries)
        store._bits_upkeep()
        assert store._acc is not None
        store.delete({m.id for m in corpus[:210:4]})
        store.add_many(corpus[210:])
        kept = [m for i, m in enumerate(corpus) if i >= 210 or i % 4]
        _assert_pages(store, kept, queries)
        fields = [(m.id, index_fields(m)) for m in kept]
        for query in ("ka", "a", "a ka"):
            search = parse(query)
            want = [id for id, f in fields if search.test_fields(f)]
            assert [m.id for m in store.search(search)] == want, query
    finally:
        store.close()
