"""The SQLite store's search engine: the word indexes, the vocabulary and its suffix planner,
the word bitmaps and the indexer that fills them (with its worker process), as one unit behind
:class:`~smtpmock.store.SQLiteStore`'s reads.

Two steps, so that taking mail never waits on parsing it:

* **Storing** (on the SMTP path, :meth:`add` / :meth:`add_many`): the exact bytes (``raw``) and
  the envelope (``messages``), one transaction per call, committed before it returns and so
  before the SMTP handler answers ``250``. Concurrent deliveries are grouped into one call by the
  server (a group commit), so a commit serves many messages.
* **Indexing** (:meth:`_index_pending`): parsing each message once into the fields search needs
  and its list entry (``indexed``), its free text (``texts``), and two FTS5 word indexes
  (``words_fts`` over the free text, ``fieldwords_fts`` over the header fields) plus the
  vocabulary (``terms``, and every suffix of every term in ``suffixes``). A background thread does
  it when the server has been quiet for a moment, or at once when it falls
  :data:`MAX_INDEX_LAG` messages behind; every read that needs the index (search, counts,
  listings) first indexes whatever is still pending, so a search always sees every message that
  was answered ``250``.

Substring search through a word index: a needle made of one word (``invoice``, ``ser12``,
``chloé``) is a substring of a text exactly when it is a substring of one of the text's words;
the ``suffixes`` table (a B-tree range scan) gives every known word containing it, seen where
the search looks (``terms.cols``: free text or which header field), and those words are written
as the fewest FTS5 prefix terms that cover them (``x + needle + y`` is covered by
``"x + needle"*``). The word index then gives the matching messages with no scan of any text;
when one word index answers the whole search, the count and the page are read from it alone.
A needle of several words (``order 100``, ``bob@example.com``) is narrowed the same way by each
of its words and then checked with ``instr`` on the candidates' text. Needles no word index can
narrow (punctuation only, or words inside too many others to list) are checked with ``instr``
on every text. The results are those of Python's ``in`` on
:func:`~smtpmock._search.index_fields`, which ``tests/test_search.py`` and
``tests/test_search_index.py`` check.

Counting and paging such a search (:meth:`SQLiteStore.count`, :meth:`SQLiteStore.page`)
reads per-word bitmaps instead of FTS5 when the search is on the free text (``_bits.py``): the
messages are cut into blocks of 4,096 consecutive ``seq``; each finished block has, per word,
the set of its messages containing it (``wordbits``) and the set of them still stored
(``bitblocks``); the block being filled is kept in memory and written when the next one
starts. A needle standing for a hundred words then costs a hundred small reads per block,
however many messages contain them; one standing for thousands (a short fragment: more words
than one FTS5 query may hold as prefix terms) is answered from the bitmaps alone, read a few
hundred words at a time and leaving out the blocks already full. After a restart the block
being filled is rebuilt from ``texts`` in the background; until then, and for a file written
before bitmaps existed until they are built, the messages past the last finished block are
counted through FTS5.

Cost: a word inside very many others (``the``, ``to``, most two-letter needles) stands for
hundreds of prefix terms; :meth:`SQLiteStore.search` (which returns whole messages) reads them
through FTS5 in time proportional to the messages times the terms (see
``benchmarks/RESULTS.md``).

:class:`SearchIndex` is the part of :class:`~smtpmock.store.SQLiteStore` that owns all of this;
the store (``_sqlite.py``) owns the file, the messages and their transactions, and calls in
here when a message is stored (:meth:`SearchIndex._stored`), deleted
(:meth:`SearchIndex._unindex`) and read (:meth:`SearchIndex._query`,
:meth:`SearchIndex._count_indexed`, :meth:`SearchIndex._page_indexed`).
"""

from __future__ import annotations

import bisect
import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import StorageError
from .._message import Message
from .._search import IndexFields, Search, index_fields, tokens
from ._base import Page, Summary
from ._bits import BlockBits, decode, page, range_mask
from ._records import message_from_record, summary_from_record, summary_record, to_json
from ._worker import ParseWorker, release_free_memory

__all__ = ["MAX_INDEX_LAG", "SearchIndex"]

# The tables of the word bitmaps (see _bits.py and SearchIndex._bits_load).
_BIT_TABLES = ("bitblocks", "wordbits", "openblock", "openbits")

# The header fields that search matches as substrings, as columns of `indexed` and of
# `fieldwords_fts` (in this order).
_FIELDS = ("from_text", "to_text", "cc_text", "bcc_text", "reply_to_text", "subject", "message_id")
_FIELD_COLUMNS = ", ".join(_FIELDS)
_ADDRESSED = ("to_text", "cc_text", "bcc_text")
# `terms.cols`: where a word has been seen, one bit per place (free text, then each field).
_FREE_BIT = 1
_FIELD_BITS = {column: 1 << n for n, column in enumerate(_FIELDS, 1)}

MAX_INDEX_LAG = 1000
"""Messages the background indexer lets wait while mail is still arriving."""
_INDEX_QUIET = 0.05  # seconds without a new message before the background indexer starts
_INDEX_BATCH = 200  # messages parsed and indexed per transaction
_TRIM_EVERY = 1.0  # seconds at least between two release_free_memory() while indexing
# Messages indexed, at least, before an indexing pass checkpoints the WAL itself; fewer are
# left to the background indexer once it has caught up (a search that indexes the one message
# it waits for must not wait for an fsync too).
_CHECKPOINT_AFTER = 100
# Batches this small are parsed in this process even with an index worker: the round trip to
# the worker (~1 ms) costs more than parsing a few messages, and a search that waits for the
# message that just arrived pays it.
_PARSE_HERE = 4
_UPKEEP_DELAY = 1.0  # seconds after opening before the background bitmap upkeep starts

_INDEX_RETRY = 0.5  # seconds before a read tries again to index after running out of space
_SUFFIX_CHARS = 64  # suffixes are kept to this many characters (longer needles: instr)
_MAX_CONTAINING = 5000  # known words containing a needle word, beyond which it filters nothing
_MAX_PREFIXES = 300  # FTS5 prefix terms one needle word may become
_WORDS_PER_READ = 500  # words per read of `wordbits` (after each, full blocks are left out)
_MAX_KNOWN_TERMS = 100_000  # vocabulary mirrored in memory (beyond it, the table is asked)


def _summary(seq: int, record: str) -> Summary:
    return summary_from_record(json.loads(record), seq=seq)


def _fts_word(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


_Prepared = tuple[int, IndexFields, str, str]
"""What indexing needs of one message: seq, search fields, list entry (JSON), distinct words
(space-separated: one string, not a list of thousands, to cross from the worker process)."""


def _prepare_rows(rows: list[tuple[int, str, bytes]]) -> list[_Prepared]:
    """Parse stored rows into what the index needs (in an index worker process, or not)."""
    prepared = []
    for message in _rows_to_messages(rows, transcripts=False):
        seq, fields, summary = _prepare(message)
        prepared.append((seq, fields, summary, _distinct_words(fields.free_text)))
    return prepared


@dataclass(frozen=True)
class _TextPlan:
    """How one substring term is answered: candidates from a word index and/or a check."""

    nothing: bool = False  # no stored message can match
    fts: str | None = None  # the word index whose MATCH gives the candidates
    match: str | None = None
    check: str | None = None  # SQL that tests each candidate with `needle` (instr)
    needle: str = ""
    # When the words alone answer it: every word that matches. Also set, with no FTS5
    # expression (fts None, check set), for a free-text needle inside too many words to write
    # as FTS5 terms: the word bitmaps count and page it, other reads check every text.
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class _WordQuery:
    """A search that one word index answers alone: a MATCH expression on *table*."""

    table: str
    match: str | None  # None: a term has no FTS5 expression (words_fts only; see _TextPlan)
    groups: tuple[tuple[str, ...], ...]  # per term of the search, the words that match it
    needles: tuple[str, ...] = ()  # per term, its substring (for what no bitmap holds yet)


def _distinct_words(text: str) -> str:
    """The words of *text*, each once, in order of first appearance, space-separated: what
    `words_fts` holds for it."""
    return " ".join(dict.fromkeys(tokens(text)))


def _rows_to_messages(
    rows: list[tuple[int, str, bytes]], *, transcripts: bool = True
) -> list[Message]:
    messages = []
    for seq, envelope, raw in rows:
        message = message_from_record(bytes(raw), json.loads(envelope), transcript=transcripts)
        message.seq = seq  # the column is the truth (a converted file's JSON may lack it)
        messages.append(message)
    return messages


def _prepare(message: Message) -> tuple[int, IndexFields, str]:
    try:
        fields = index_fields(message)
    except Exception:
        # Never expected (parsing records defects instead of raising), but one message
        # must not stop every later one from being indexed: it stays listed and readable,
        # found by its envelope only.
        fields = IndexFields(
            from_text=message.mail_from.lower(),
            to_text="\n".join(message.rcpt_tos).lower(),
            cc_text="",
            bcc_text="",
            reply_to_text="",
            subject="",
            message_id="",
            text="",
            attachments=0,
            inline=0,
            size=message.size,
            received_at=message.received_at.timestamp(),
        )
        summary = Summary.of_envelope(message)
    else:
        summary = Summary.of(message, fields)
    return message.seq, fields, to_json(summary_record(summary))


class SearchIndex:
    """The search index of a :class:`~smtpmock.store.SQLiteStore` (a base class of it: the
    index shares the store's connection, lock and transactions)."""

    _BITS_BLOCK = 4096  # messages per block of the word bitmaps (see _bits.py)

    # What the store provides.
    path: str
    changed: threading.Condition
    _db: sqlite3.Connection
    _last_seq: int
    _count: int
    _closed: bool
    _wal: bool

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _report(self, exc: BaseException) -> None: ...
        def _checkpoint(self, *, force: bool = False) -> None: ...
        def _wal_over_limit(self) -> bool: ...
        def _state_sql(self, kind: str, value: str) -> tuple[str, list[object]]: ...
        def _stamp(self, messages: list[Message]) -> list[Message]: ...
        def _stamp_summaries(self, summaries: list[Summary]) -> list[Summary]: ...

    def _init_index(self, index_worker: bool) -> None:
        """The index's state, before the file is opened (nothing started yet)."""
        # Parse messages for the index in a worker process: the parsing is pure Python and
        # would otherwise hold the GIL that an SMTP server in this process needs.
        self._index_worker = index_worker
        self._pool: ParseWorker | None = None
        self._pool_lock = threading.Lock()
        self._bits_size = self._BITS_BLOCK
        self._bits_gen = 0  # bumped when every bitmap is dropped (a rebuild in flight is void)
        self._indexed_seq = 0
        self._known: dict[str, int] | None = None  # the vocabulary ({term: cols}), when mirrored
        self._complete = False  # whether _known holds the whole vocabulary
        self._last_insert = 0.0
        self._trimmed = 0.0  # time.monotonic() of the last release_free_memory()
        self._untrimmed = False  # whether indexing has freed memory since
        self._unsaved = 0  # messages indexed since the last WAL checkpoint
        # Indexing failed for lack of space until then (time.monotonic()): reads do not try
        # again before it, and read the messages not indexed without the index (_tail).
        self._index_blocked_until = 0.0
        self._wake = threading.Event()
        self._indexer_idle = True  # the indexer waits for mail (a new message must wake it)
        self._stopping = threading.Event()  # set by close()
        # Rebuilding the word bitmaps waits this long after opening: a server being started
        # on the file has its GIL to itself until it is up.
        self._upkeep_from = time.monotonic() + _UPKEEP_DELAY
        self._indexer: threading.Thread | None = None

    def _load_index(self) -> None:
        """Read where the index stands from the open file (on open)."""
        indexed = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM indexed").fetchone()
        # Every message with seq <= _indexed_seq is in the index (or was deleted).
        self._indexed_seq = int(indexed[0])
        self._bits_load()

    def _start_index(self) -> None:
        """Start the worker process (if asked for) and, when the bitmaps need it, the
        background indexer (once the store is open)."""
        if self._index_worker:
            try:
                self._start_worker()
            except Exception:  # no worker processes here: parse in this process
                self._index_worker = False
        if self._acc is None or self._purge:
            self._start_indexer()  # the word bitmaps to rebuild or clean up

    def _stored(self) -> None:
        """Messages were just committed: wake the background indexer when it should run."""
        self._index_blocked_until = 0.0  # there is room again (if there was not)
        self._last_insert = time.monotonic()
        if self._wal and self._wal_over_limit():
            self._start_indexer()  # which checkpoints it without waiting for mail to stop
            return
        if self._indexer_idle or self._last_seq - self._indexed_seq >= MAX_INDEX_LAG:
            self._start_indexer()
        # else the indexer is waiting for mail to stop: it looks at _last_insert when its
        # wait ends, and waking it for every message would cost a thread switch each

    def _unindex(self, seq: int) -> None:
        # The word indexes keep no text of their own (contentless): taking a message out of
        # them means telling them the text it was indexed with.
        db = self._db
        fields = db.execute(
            f"SELECT {_FIELD_COLUMNS} FROM indexed WHERE seq = ?", (seq,)
        ).fetchone()
        if fields is None:
            return  # not indexed yet
        free = db.execute("SELECT free FROM texts WHERE seq = ?", (seq,)).fetchone()
        db.execute(
            f"INSERT INTO fieldwords_fts (fieldwords_fts, rowid, {_FIELD_COLUMNS}) "
            "VALUES ('delete', ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, *fields),
        )
        if free is not None:
            db.execute(
                "INSERT INTO words_fts (words_fts, rowid, free) VALUES ('delete', ?, ?)",
                (seq, _distinct_words(free[0])),
            )
        db.execute("DELETE FROM indexed WHERE seq = ?", (seq,))
        db.execute("DELETE FROM texts WHERE seq = ?", (seq,))
        self._bits_forget(seq)

    def _start_indexer(self) -> None:
        if self._indexer is None and not self._closed:
            self._indexer = threading.Thread(
                target=self._index_in_background, name=f"smtpmock-indexer {self.path}", daemon=True
            )
            self._indexer.start()
        self._wake.set()

    def _index_in_background(self) -> None:
        while not self._closed:
            # Idle: the next message wakes this thread (_indexer_idle is set before the
            # check, so a message stored in between is seen by one or the other), and so does
            # a search that indexed a few messages and left their checkpoint to this thread.
            self._indexer_idle = True
            if self._indexed_seq >= self._last_seq and not self._unsaved:
                self._wake.wait()
            self._indexer_idle = False
            self._wake.clear()
            while not self._closed and self._indexed_seq < self._last_seq:
                quiet_for = time.monotonic() - self._last_insert
                if quiet_for < _INDEX_QUIET and self._last_seq - self._indexed_seq < MAX_INDEX_LAG:
                    # Mail is arriving: let it in first. Only the lag limit, a WAL past its
                    # limit (or close) wakes this wait early; otherwise it looks at the newest
                    # arrival when it ends.
                    if self._wal_over_limit():  # big messages: do not wait for a pass
                        self._checkpoint(force=True)
                    self._wake.wait(_INDEX_QUIET - quiet_for)
                    self._wake.clear()
                    continue
                try:
                    self._index_pending(limit=_INDEX_BATCH)
                    if time.monotonic() >= self._upkeep_from:
                        self._bits_upkeep()
                except Exception as exc:  # reported, and retried by the next read
                    self._report(exc)
                    break
            # What searches indexed in small passes since the last one, or what storing wrote.
            self._checkpoint(force=self._wal_over_limit())
            self._trim(force=True)  # caught up: mail has stopped for now
            self._stopping.wait(self._upkeep_from - time.monotonic())
            try:
                self._bits_upkeep()
            except Exception as exc:  # reported; retried when the next message is indexed
                self._report(exc)

    def _index_pending(self, limit: int | None = None) -> None:
        """Index the messages not indexed yet (at most about *limit* of them, oldest first).

        Safe from any thread, with or without the store's lock held: two indexers racing for
        the same messages both parse them, and the second one's write is skipped. With an
        index worker, the next batch is being parsed there while this one is written.
        """
        after = self._indexed_seq  # the last message handed to parsing
        parsing: tuple[Callable[[], list[_Prepared]], int] | None = None
        wrote = False
        indexed = 0
        while not self._closed:
            following = None
            if after < self._last_seq and (limit is None or limit > 0):
                batch = _INDEX_BATCH if limit is None else max(1, min(limit, _INDEX_BATCH))
                with self.changed:
                    target = self._last_seq
                    rows = self._db.execute(
                        "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                        "WHERE m.seq > ? ORDER BY m.seq LIMIT ?",
                        (after, batch),
                    ).fetchall()
                # Up to the newest message at the time, unless the batch was cut short.
                after = rows[-1][0] if len(rows) == batch else target
                if limit is not None:
                    limit -= len(rows)
                # Parsing, the slow part, holds no lock that storing needs.
                following = (self._parse_later(rows), after)
            if parsing is not None:
                parsed, reached = parsing
                prepared = parsed()
                with self.changed:
                    self._write_index(prepared)
                    self._indexed_seq = max(self._indexed_seq, reached)
                indexed += len(prepared)
                del prepared
                wrote = True
            if following is None:
                break
            parsing = following
        if wrote:
            if self._wal:
                self._unsaved += indexed  # approximate across threads: it times checkpoints
                if self._unsaved >= _CHECKPOINT_AFTER:
                    self._checkpoint()
                else:
                    with self.changed:
                        self._start_indexer()  # the background indexer checkpoints them
            self._untrimmed = True
            self._trim(force=False)

    def _trim(self, *, force: bool) -> None:
        """Hand what indexing freed back to the OS (see :func:`release_free_memory`): after
        an indexing pass at most every :data:`_TRIM_EVERY` seconds, and whenever the
        background indexer has caught up (*force*), so an idle server is trimmed."""
        now = time.monotonic()
        if self._untrimmed and (force or now - self._trimmed >= _TRIM_EVERY):
            self._untrimmed = False
            self._trimmed = now
            release_free_memory()

    def _parse_later(self, rows: list[tuple[int, str, bytes]]) -> Callable[[], list[_Prepared]]:
        """Start parsing *rows* in the index worker (or not: then when called)."""
        if self._index_worker and not self._closed and len(rows) > _PARSE_HERE:
            try:
                future = self._start_worker().submit("prepare_rows", rows)
            except Exception as exc:
                self._worker_failed(exc)
            else:

                def result() -> list[_Prepared]:
                    try:
                        prepared: list[_Prepared] = future.result()
                    except Exception as exc:  # a dead worker: parse here from now on
                        self._worker_failed(exc)
                        return _prepare_rows(rows)
                    return prepared

                return result
        return lambda: _prepare_rows(rows)

    def _start_worker(self) -> ParseWorker:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ParseWorker()
            return self._pool

    def _worker_failed(self, exc: BaseException) -> None:
        self._index_worker = False
        self._report(exc)

    def _write_index(self, prepared: list[_Prepared]) -> None:
        db = self._db
        if not prepared:
            return
        # A message deleted while it was being parsed is not indexed, nor one that another
        # indexer got to first.
        prepared = [p for p in prepared if p[0] > self._indexed_seq]
        if not prepared:
            return
        seqs = [p[0] for p in prepared]
        present = {
            r[0]
            for r in db.execute(
                f"SELECT seq FROM messages WHERE seq IN ({','.join('?' * len(seqs))})", seqs
            )
        }
        prepared = [p for p in prepared if p[0] in present]
        with self._write():
            db.executemany(
                f"INSERT INTO indexed (seq, summary, {_FIELD_COLUMNS}, attachments, inline) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (seq, summary, *(getattr(f, c) for c in _FIELDS), f.attachments, f.inline)
                    for seq, f, summary, _ in prepared
                ],
            )
            db.executemany(
                "INSERT INTO texts (seq, free) VALUES (?, ?)",
                [(seq, f.free_text) for seq, f, _, _ in prepared],
            )
            # Each word once: with detail=none the index keeps no positions or counts, so
            # repeats would only cost tokenizing.
            db.executemany(
                "INSERT INTO words_fts (rowid, free) VALUES (?, ?)",
                [(p[0], p[3]) for p in prepared],
            )
            db.executemany(
                f"INSERT INTO fieldwords_fts (rowid, {_FIELD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                [(seq, *(getattr(f, c) for c in _FIELDS)) for seq, f, _, _ in prepared],
            )
            self._add_vocabulary(prepared)
            self._bits_add(prepared)

    def _add_vocabulary(self, prepared: list[_Prepared]) -> None:
        """Record every word of *prepared* in `terms` (with where it was seen) and `suffixes`."""
        db = self._db
        distinct: set[str] = set()
        for p in prepared:  # one message's words at a time (not the batch's as objects)
            distinct.update(p[3].split())
        seen = dict.fromkeys(distinct, _FREE_BIT)
        for _, fields, _, _ in prepared:
            for column, bit in _FIELD_BITS.items():
                for word in tokens(getattr(fields, column)):
                    seen[word] = seen.get(word, 0) | bit
        known = self._vocabulary(seen)
        new = sorted(w for w in seen if w not in known)
        wider = [(known[w] | c, w) for w, c in seen.items() if w in known and c & ~known[w]]
        if wider:
            db.executemany("UPDATE terms SET cols = ? WHERE term = ?", wider)
        if new:
            first = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM terms").fetchone()[0]
            db.executemany(
                "INSERT INTO terms (id, term, cols) VALUES (?, ?, ?)",
                [(i, w, seen[w]) for i, w in enumerate(new, first)],
            )
            # In key order: appending to the suffix B-tree costs half of random inserts.
            db.executemany(
                "INSERT OR IGNORE INTO suffixes (suffix, term) VALUES (?, ?)",
                sorted(
                    (term[i : i + _SUFFIX_CHARS], term_id)
                    for term_id, term in enumerate(new, first)
                    for i in range(len(term))
                ),
            )
        mirror = self._known
        if mirror is None:
            return
        for cols, word in wider:
            if word in mirror:
                mirror[word] = cols
        room = _MAX_KNOWN_TERMS - len(mirror)
        mirror.update((word, seen[word]) for word in new[: max(0, room)])
        if len(new) > room:
            self._complete = False

    def _vocabulary(self, words: dict[str, int]) -> dict[str, int]:
        """``{word: cols}`` for those of *words* already known (a transaction is open).

        The first :data:`_MAX_KNOWN_TERMS` words (the oldest, so the common ones) are kept in
        memory; past that, the words not among them are looked up in `terms`.
        """
        db = self._db
        if self._known is None:
            self._known = dict(
                db.execute(f"SELECT term, cols FROM terms ORDER BY id LIMIT {_MAX_KNOWN_TERMS}")
            )
            self._complete = len(self._known) < _MAX_KNOWN_TERMS
        mirror = self._known
        if self._complete:
            return mirror
        known = {w: mirror[w] for w in words if w in mirror}
        misses = [w for w in words if w not in mirror]
        for i in range(0, len(misses), 500):
            chunk = misses[i : i + 500]
            marks = ",".join("?" * len(chunk))
            known.update(db.execute(f"SELECT term, cols FROM terms WHERE term IN ({marks})", chunk))
        return known

    # ------------------------------------------------------------------ word bitmaps

    def _bits_load(self) -> None:
        """The in-memory side of the bitmaps, from the tables (on open, and after a rollback).

        ``_built``: every block below it is in `bitblocks` or has no indexed message.
        ``_acc``: block ``_built`` being filled, or ``None`` while it has indexed messages
        that are not in it (after a restart, say): then :meth:`_bits_upkeep` rebuilds it.
        ``_purge``: blocks whose messages are all gone, their `wordbits` still to delete.
        """
        db, size = self._db, self._bits_size
        self._alive: dict[int, int] = {}
        self._purge: set[int] = set()
        for block, alive in db.execute("SELECT block, alive FROM bitblocks"):
            self._alive[block] = int.from_bytes(alive, "little")
            if not alive:
                self._purge.add(block)
        if self._alive:
            built = max(self._alive) + 1
        else:
            first = db.execute("SELECT MIN(seq) FROM messages").fetchone()[0]
            built = (self._last_seq + 1 if first is None else int(first)) // size
        self._built = built
        self._acc: BlockBits | None = None
        if self._indexed_seq < max(built * size, 1):  # (no seq 0)
            self._acc = BlockBits(built, size)
        # Otherwise messages up to _bits_floor are rebuilt from `texts`, and those indexed
        # later are collected per block in _bits_later as they are indexed.
        self._bits_floor = self._indexed_seq
        self._bits_later: dict[int, BlockBits] = {}

    def _bits_add(self, prepared: list[_Prepared]) -> None:
        """Add indexed messages (in seq order) to the block being filled; a message of a later
        block writes that one out first. In the indexing transaction."""
        size = self._bits_size
        for block, group in itertools.groupby(prepared, key=lambda p: p[0] // size):
            messages = [(seq, words) for seq, _, _, words in group]
            acc = self._acc
            if acc is None:
                # Being rebuilt from `texts` (up to _bits_floor) by _bits_upkeep: keep these
                # for it.
                later = [m for m in messages if m[0] > self._bits_floor]
                self._bits_later.setdefault(block, BlockBits(block, size)).add_many(later)
                continue
            if block < acc.block:  # not expected (indexing goes in seq order): rebuild
                self._acc = None
                return
            if block > acc.block:
                self._bits_write(acc)
                acc = self._acc = BlockBits(block, size)
                self._built = block
            acc.add_many(messages)

    def _bits_write(self, bits: BlockBits) -> None:
        if not bits.alive:
            return
        self._db.executemany(
            "INSERT OR REPLACE INTO wordbits (term, block, bits) VALUES (?, ?, ?)", bits.rows()
        )
        self._db.execute(
            "INSERT OR REPLACE INTO bitblocks (block, alive) VALUES (?, ?)",
            (bits.block, bits.alive.to_bytes(self._bits_size // 8, "little")),
        )
        self._alive[bits.block] = bits.alive

    def _bits_forget(self, seq: int) -> None:
        """An indexed message is deleted (in the deleting transaction)."""
        block = seq // self._bits_size
        bit = 1 << (seq - block * self._bits_size)
        acc = self._acc
        if acc is not None and block == acc.block:
            acc.alive &= ~bit
            return
        if acc is None and block in self._bits_later:
            self._bits_later[block].alive &= ~bit
        alive = self._alive.get(block)
        if alive is None or not alive & bit:
            return
        alive &= ~bit
        self._alive[block] = alive
        blob = alive.to_bytes(self._bits_size // 8, "little") if alive else b""
        self._db.execute("UPDATE bitblocks SET alive = ? WHERE block = ?", (blob, block))
        if not alive:
            self._purge.add(block)

    def _bits_upkeep(self) -> None:
        """Background work of the bitmaps: delete the words of blocks whose messages are all
        gone, and rebuild the block being filled (and any before it) from `texts` when the
        one in memory is missing."""
        while self._purge and not self._closed:
            with self.changed:
                if not self._purge:
                    break
                block = min(self._purge)
                with self._write() as db:
                    db.execute(
                        "DELETE FROM wordbits WHERE block = ? AND term IN (SELECT term FROM terms)",
                        (block,),
                    )
                    db.execute("DELETE FROM bitblocks WHERE block = ?", (block,))
                self._purge.discard(block)
                self._alive.pop(block, None)
        size = self._bits_size
        while self._acc is None and not self._closed:
            with self.changed:
                gen, block, floor = self._bits_gen, self._built, self._bits_floor
            lo, hi = block * size, (block + 1) * size - 1
            # Messages up to the floor from `texts`; those indexed since were collected then.
            bits = self._bits_read(block, lo, min(hi, floor))
            if bits is None:
                return  # closing: half a block must not be kept (or written out by close)
            with self.changed:
                if gen != self._bits_gen or self._acc is not None or self._built != block:
                    continue  # cleared or rebuilt meanwhile
                later = self._bits_later.pop(block, None)
                if later is not None:
                    bits.merge(later)
                now = self._indexed_seq
                present = 0
                for (seq,) in self._db.execute(
                    "SELECT seq FROM indexed WHERE seq BETWEEN ? AND ?", (lo, hi)
                ):
                    present |= 1 << (seq - lo)
                bits.alive &= present  # not indexed, or deleted while this was being read
                if now <= hi:
                    self._acc = bits  # the block being filled
                    continue
                with self._write():
                    self._bits_write(bits)
                following = self._db.execute(
                    "SELECT MIN(seq) FROM indexed WHERE seq > ?", (hi,)
                ).fetchone()[0]
                self._built = block + 1 if following is None else int(following) // size

    def _bits_read(self, block: int, lo: int, hi: int) -> BlockBits | None:
        """The bitmaps of messages ``lo..hi`` of *block*, from `texts` (read 32 at a time with
        the store held, tokenized without it: a few MB of words at once, not a block's);
        ``None`` when the store is closed before the end."""
        bits = BlockBits(block, self._bits_size)
        at = lo - 1
        with self.changed:
            # The same block as written out by close(): exact up to its `upto`.
            saved = self._db.execute("SELECT block, upto FROM openblock").fetchone()
            if saved is not None and saved[0] == block and lo <= saved[1] <= hi:
                bits.words = {
                    term: decode(blob, self._bits_size)
                    for term, blob in self._db.execute("SELECT term, bits FROM openbits")
                }
                # Every seq up to `upto`: the caller keeps only those still indexed.
                bits.alive = (1 << (saved[1] - lo + 1)) - 1
                at = saved[1]
        while at < hi:
            if self._closed:
                return None
            with self.changed:
                rows = self._db.execute(
                    "SELECT seq, free FROM texts WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 32",
                    (at, hi),
                ).fetchall()
            if not rows:
                break
            bits.add_texts(rows)
            at = rows[-1][0]
        return bits

    def _bits_save_open(self) -> None:
        """Write the block being filled to `openblock`/`openbits` (on close), so that the next
        open reads it back instead of rebuilding it from every message of the block."""
        acc, db = self._acc, self._db
        if acc is None or not acc.alive:
            return
        with self._write():
            db.execute("DELETE FROM openblock")
            db.execute("DELETE FROM openbits")
            db.executemany(
                "INSERT INTO openbits (term, bits) VALUES (?, ?)",
                [(term, blob) for term, _, blob in acc.rows()],
            )
            db.execute(
                "INSERT INTO openblock (block, upto) VALUES (?, ?)",
                (acc.block, self._indexed_seq),
            )

    def _bits_matches(
        self, query: _WordQuery, after: int, until: int | None
    ) -> tuple[dict[int, int], list[int]]:
        """The matches of a free-text word query with ``after < seq <= until``: ``({block:
        bits}, seqs past the blocks)``. The blocks' from the bitmaps, the rest (messages that
        no bitmap holds yet) from FTS5, or with ``instr`` on their texts when the query has no
        FTS5 expression. Called with the store held, after indexing."""
        size, acc, db = self._bits_size, self._acc, self._db
        covered = (self._built + (acc is not None)) * size  # seqs below it are in bitmaps
        low = (after + 1) // size
        high = covered // size if until is None else min(covered // size, until // size)
        finished = min(high, self._built - 1)  # the blocks in `wordbits`
        result: dict[int, int] | None = None
        # Per finished block, the messages in range still stored: what a match can fill.
        wanted = {
            block: want
            for block in range(low, finished + 1)
            if (want := self._alive.get(block, 0) & range_mask(block, size, after, until))
        }
        for words in query.groups:
            found: dict[int, int] = {}
            if self._alive:
                blocks_sql, blocks_args = "block >= ? AND block <= ?", [low, finished]
                step = _WORDS_PER_READ
                for i in range(0, len(words), step):
                    chunk = words[i : i + step]
                    for block, blob in db.execute(
                        f"SELECT block, bits FROM wordbits WHERE term IN "
                        f"({','.join('?' * len(chunk))}) AND {blocks_sql}",
                        [*chunk, *blocks_args],
                    ):
                        found[block] = found.get(block, 0) | decode(blob, size)
                    if i + step >= len(words):
                        break
                    # A block where every message in range already matches needs no more of
                    # the words (a short needle's first few hundred words fill most blocks).
                    open_blocks = [
                        b for b, want in wanted.items() if found.get(b, 0) & want != want
                    ]
                    if not open_blocks:
                        break
                    blocks_sql = f"block IN ({','.join('?' * len(open_blocks))})"
                    blocks_args = open_blocks
            if acc is not None and low <= acc.block <= high:
                held = acc.words
                bits = 0
                for word in words:
                    bits |= held.get(word, 0)
                if bits:
                    found[acc.block] = bits
            if result is None:
                result = found
            else:
                result = {b: v & found[b] for b, v in result.items() if b in found}
        blocks: dict[int, int] = {}
        for block, found_bits in (result or {}).items():
            alive = acc.alive if acc is not None and block == acc.block else self._alive.get(block)
            bits = found_bits & (alive or 0) & range_mask(block, size, after, until)
            if bits:
                blocks[block] = bits
        rest: list[int] = []
        if self._indexed_seq >= covered and (until is None or until >= covered):
            table, last = query.table, self._last_seq if until is None else until
            if query.match is not None:
                found_sql = (
                    f"SELECT rowid FROM {table} WHERE {table} MATCH ? AND rowid >= ? "
                    "AND rowid > ? AND rowid <= ? ORDER BY rowid"
                )
                found_args: list[object] = [query.match, covered, after, last]
            else:  # a needle with no FTS5 expression: the definition itself, on those texts
                checks = " AND ".join("instr(free, ?) > 0" for _ in query.needles)
                found_sql = (
                    f"SELECT seq FROM texts WHERE seq >= ? AND seq > ? AND seq <= ? AND {checks} "
                    "ORDER BY seq"
                )
                found_args = [covered, after, last, *query.needles]
            rest = [r[0] for r in db.execute(found_sql, found_args)]
        return blocks, rest

    def _summaries_of(self, seqs: list[int]) -> list[Summary]:
        """The list entries of *seqs*, in that order (those still stored)."""
        found: dict[int, str] = {}
        for i in range(0, len(seqs), 500):
            chunk = seqs[i : i + 500]
            found.update(
                self._db.execute(
                    f"SELECT seq, summary FROM indexed WHERE seq IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            )
        return [_summary(seq, found[seq]) for seq in seqs if seq in found]

    # ------------------------------------------------------------------ substring SQL

    def _containing(self, word: str, cols: int) -> list[str] | None:
        """Every known word seen in one of the places *cols* that contains *word*, sorted (a
        range scan of `suffixes`); ``None`` when it is in too many words to narrow a search."""
        head = word[:_SUFFIX_CHARS]
        query = (
            "SELECT DISTINCT t.term FROM suffixes s JOIN terms t ON t.id = s.term "
            "WHERE s.suffix >= ? AND s.suffix < ? AND t.cols & ?"
        )
        params: list[object] = [head, head + "\U0010ffff", cols]
        if len(word) > _SUFFIX_CHARS:
            query += " AND instr(t.term, ?) > 0"
            params.append(word)
        found = self._db.execute(f"{query} LIMIT {_MAX_CONTAINING + 1}", params).fetchall()
        if len(found) > _MAX_CONTAINING:
            return None
        return sorted(r[0] for r in found)

    @staticmethod
    def _prefix_terms(word: str, terms: list[str]) -> str | None:
        """An FTS5 query matching exactly *terms*, the words of :meth:`_containing` for *word*.

        Written as few terms as possible: a word ``x + word + y`` is covered by the prefix term
        ``"x + word"*``, which matches only words containing *word*, so one prefix stands for
        every word it begins. ``""`` when no word contains it; ``None`` when that takes more
        than :data:`_MAX_PREFIXES` terms.
        """
        prefixes = sorted({t[: t.index(word) + len(word)] for t in terms})
        fts_terms: list[str] = []
        last = ""
        for prefix in prefixes:
            if last and prefix.startswith(last):
                continue  # covered by the shorter prefix
            last = prefix
            # A prefix that is a known word and begins no other is an exact term (cheaper).
            at = bisect.bisect_left(terms, prefix)
            alone = terms[at] == prefix and (
                at + 1 == len(terms) or not terms[at + 1].startswith(prefix)
            )
            fts_terms.append(_fts_word(prefix) + ("" if alone else "*"))
            if len(fts_terms) > _MAX_PREFIXES:
                return None
        return " OR ".join(fts_terms)

    def _text_plan(self, field: str, needle: str) -> _TextPlan:
        """How to find the messages whose *field* contains *needle* (see the module docstring)."""
        if field == "free":
            fts, column_filter, cols = "words_fts", "", _FREE_BIT
            check = "seq IN (SELECT seq FROM texts WHERE instr(free, ?) > 0)"
        else:
            columns = _ADDRESSED if field == "addressed" else (field,)
            fts, column_filter = "fieldwords_fts", "{" + " ".join(columns) + "} : "
            check = "instr(" + " || char(10) || ".join(columns) + ", ?) > 0"
            cols = sum(_FIELD_BITS[c] for c in columns)
        words = tokens(needle)
        groups: list[str] = []
        containing: list[str] = []
        alone = len(words) == 1 and words[0] == needle  # the words found are the answer
        for word in dict.fromkeys(words):
            terms = self._containing(word, cols)
            expansion = None if terms is None else self._prefix_terms(word, terms)
            if terms and expansion is None and alone and field == "free":
                # Too many FTS5 prefix terms, but the words are known: counts and pages read
                # their bitmaps (_bits_matches); anything else checks every text.
                return _TextPlan(check=check, needle=needle, words=tuple(terms))
            if terms is None or expansion is None:
                continue  # in too many words to narrow anything down
            if not expansion:
                return _TextPlan(nothing=True)  # no stored message has this word there
            groups.append(expansion)
            containing = terms
        if not groups:
            return _TextPlan(check=check, needle=needle)
        match = column_filter + "(" + " AND ".join(f"({g})" for g in groups) + ")"
        if alone:
            return _TextPlan(fts=fts, match=match, words=tuple(containing))
        return _TextPlan(fts=fts, match=match, check=check, needle=needle)

    @staticmethod
    def _plan_sql(plan: _TextPlan) -> tuple[str, list[object]]:
        """SQL for one substring term, from its plan."""
        if plan.nothing:
            return "0", []
        clauses: list[str] = []
        params: list[object] = []
        if plan.fts is not None:
            clauses.append(f"seq IN (SELECT rowid FROM {plan.fts} WHERE {plan.fts} MATCH ?)")
            params.append(plan.match)
        if plan.check is not None:
            clauses.append(plan.check)
            params.append(plan.needle)
        return " AND ".join(clauses), params

    def _word_query(
        self, search: Search | None, plan_for: Callable[[str, str], _TextPlan] | None = None
    ) -> _WordQuery | None:
        """The word index query, when one word index alone answers *search*.

        That is when every term is a substring test answered exactly by its words, all in the
        same index: then counting and paging read only that index, not a row per match.
        *plan_for*: where the terms' plans come from (default :meth:`_text_plan`).
        """
        plan_for = plan_for or self._text_plan
        if search is None or not search.terms:
            return None
        table: str | None = None
        matches: list[str | None] = []
        groups, needles = [], []
        for term, compiled in search._compiled():
            if term.negated or compiled.text is None:
                return None
            field, needle = compiled.text
            plan = plan_for(field, needle)
            if plan.fts is None and plan.words and field == "free":
                fts, match = "words_fts", None  # the bitmaps' words, no FTS5 expression
            elif plan.fts is None or plan.check is not None:
                return None
            else:
                fts, match = plan.fts, f"({plan.match})"
            if table not in (None, fts):
                return None
            table = fts
            matches.append(match)
            groups.append(plan.words)
            needles.append(needle)
        assert table is not None
        expression = None if None in matches else " AND ".join(m or "" for m in matches)
        return _WordQuery(table, expression, tuple(groups), tuple(needles))

    def _query(
        self, search: Search | None, *, bitmaps: bool = True
    ) -> tuple[_WordQuery | None, str, list[object]]:
        """``(word query or None, SQL condition, its parameters)`` for *search*.

        Called with the store held and after :meth:`_index_pending`. The condition is only
        built when no single word index answers the search. *bitmaps*: whether the caller
        reads a free-text word query from the word bitmaps (counts and pages); if not, a word
        query without an FTS5 expression (:class:`_TextPlan`) gives the condition instead.
        """
        plans: dict[tuple[str, str], _TextPlan] = {}

        def plan_for(field: str, needle: str) -> _TextPlan:
            # Each term is planned once (a plan costs a vocabulary range scan) whether the word
            # query or the general condition ends up using it.
            if (field, needle) not in plans:
                plans[field, needle] = self._text_plan(field, needle)
            return plans[field, needle]

        words = self._word_query(search, plan_for)
        if words is not None and (bitmaps or words.match is not None):
            return words, "", []
        if search is None:
            return None, "1", []
        where, params = search.sql(
            lambda field, needle: self._plan_sql(plan_for(field, needle)), self._state_sql
        )
        return None, where, params

    def _index_for_read(self) -> None:
        """Index what is pending before a read that needs the index. When that fails for
        lack of space (or the file cannot be written), the read goes on: the messages not
        indexed are read without the index (:meth:`_tail`), and reads try again at most
        every :data:`_INDEX_RETRY` seconds (a stored message says there is room sooner)."""
        if time.monotonic() < self._index_blocked_until:
            return
        try:
            self._index_pending()
        except StorageError as exc:
            self._index_blocked_until = time.monotonic() + _INDEX_RETRY
            self._report(exc)

    def _tail(self, query: Search | None, after: int, before: int | None) -> list[Message]:
        """The stored messages past the index (``seq > _indexed_seq``) that match *query*, in
        seq order, with ``after < seq <= before``: none once indexing has caught up. Called
        with the store held, which the indexer's writes need too, so the index holds exactly
        the messages up to ``_indexed_seq`` meanwhile."""
        if self._indexed_seq >= self._last_seq:
            return []
        rows = self._db.execute(
            "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
            "WHERE m.seq > ? AND (? < 0 OR m.seq <= ?) ORDER BY m.seq",
            (max(after, self._indexed_seq), -1 if before is None else before, before or 0),
        ).fetchall()
        # With their read state and tags: the query may test them, and they are returned.
        messages = self._stamp(_rows_to_messages(rows))
        return [m for m in messages if query is None or query.matches(m)]

    def _count_indexed(self, query: Search, after: int, before: int | None) -> int:
        """:meth:`count` of the indexed messages (with the store held)."""
        until = self._last_seq if before is None else before
        words, where, params = self._query(query)
        if words is not None and words.table == "words_fts":
            blocks, rest = self._bits_matches(words, after, until)
            return sum(bits.bit_count() for bits in blocks.values()) + len(rest)
        if words is not None:
            table, match = words.table, words.match
            assert match is not None  # (only words_fts has terms without one)
            row = self._db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {table} MATCH ? AND rowid > ? AND rowid <= ?",
                [match, after, until],
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT COUNT(*) FROM messages JOIN indexed USING (seq) "
                f"WHERE seq > ? AND seq <= ? AND {where}",
                [after, until, *params],
            ).fetchone()
        return int(row[0])

    def _page_indexed(
        self,
        search: Search | None,
        start: int,
        limit: int | None,
        after: int,
        newest_first: bool,
    ) -> Page:
        """:meth:`page` of the indexed messages (with the store held)."""
        order = "DESC" if newest_first else "ASC"
        with self.changed:
            words, where, params = self._query(search)
            if words is not None and words.table == "words_fts":
                # Count and page from the word bitmaps (and FTS5 for what they do not hold).
                blocks, rest = self._bits_matches(words, after, None)
                in_blocks = sum(bits.bit_count() for bits in blocks.values())
                end = None if limit is None else start + limit
                if newest_first:
                    seqs = rest[::-1][start:end]
                    more = None if end is None else end - start - len(seqs)
                    if more is None or more > 0:
                        seqs += page(blocks, self._bits_size, max(0, start - len(rest)), more, True)
                else:
                    seqs = page(blocks, self._bits_size, start, limit, False)
                    more = None if end is None else end - start - len(seqs)
                    if more is None or more > 0:
                        first = max(0, start - in_blocks)
                        seqs += rest[first:] if more is None else rest[first : first + more]
                return Page(in_blocks + len(rest), self._stamp_summaries(self._summaries_of(seqs)))
            if words is not None:
                # Count and page from the word index alone (no row read per match).
                table, match = words.table, words.match
                assert match is not None  # (only words_fts has terms without one)
                if "*" in match:
                    # Prefix terms: FTS5 merges their doclists for each statement, so read the
                    # matches once and count and cut the page here.
                    seqs = [
                        r[0]
                        for r in self._db.execute(
                            f"SELECT rowid FROM {table} WHERE {table} MATCH ? AND rowid > ? "
                            f"ORDER BY rowid {order}",
                            [match, after],
                        )
                    ]
                    page_seqs = seqs[start:] if limit is None else seqs[start : start + limit]
                    return Page(len(seqs), self._stamp_summaries(self._summaries_of(page_seqs)))
                total = self._db.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE {table} MATCH ? AND rowid > ?",
                    [match, after],
                ).fetchone()[0]
                rows = self._db.execute(
                    f"SELECT seq, summary FROM indexed WHERE seq IN (SELECT rowid FROM {table} "
                    f"WHERE {table} MATCH ? AND rowid > ? ORDER BY rowid {order} "
                    f"LIMIT ? OFFSET ?) ORDER BY seq {order}",
                    [match, after, -1 if limit is None else limit, start],
                ).fetchall()
                return Page(int(total), self._stamp_summaries([_summary(*r) for r in rows]))
            if search is None and not after and self._indexed_seq >= self._last_seq:
                total = self._count
            else:
                total = self._db.execute(
                    "SELECT COUNT(*) FROM messages JOIN indexed USING (seq) "
                    f"WHERE seq > ? AND {where}",
                    [after, *params],
                ).fetchone()[0]
            rows = self._db.execute(
                "SELECT seq, summary FROM messages JOIN indexed USING (seq) "
                f"WHERE seq > ? AND {where} ORDER BY seq {order} LIMIT ? OFFSET ?",
                [after, *params, -1 if limit is None else limit, start],
            ).fetchall()
        return Page(int(total), self._stamp_summaries([_summary(*r) for r in rows]))
