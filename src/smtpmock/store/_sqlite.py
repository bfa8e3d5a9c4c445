"""``SQLiteStore``: messages in one SQLite file, committed before the client is told ``250``.

The search index (the word indexes, the vocabulary, the word bitmaps, the indexer and its
worker process) is ``_sqlite_index.py``: :class:`~smtpmock.store._sqlite_index.SearchIndex`, a
base class of the store that shares its connection and lock.

Durability: WAL journal with ``synchronous=NORMAL``. That survives the server process being
killed (SIGKILL); surviving a power cut would need ``synchronous=FULL``.

Storage honesty: every write is one transaction that is rolled back for certain when it fails
(:meth:`SQLiteStore._write`); no space left is :class:`~smtpmock.StorageFull` (SMTP ``452``),
a file that cannot be written :class:`~smtpmock.StorageUnavailable`, and nothing of the
refused write is ever listed. Reads go on meanwhile: the messages the index could not take are
read without it (``SearchIndex._tail``), and storing and indexing resume by themselves once
there is room. The WAL is checkpointed by indexing and truncated once past ``_WAL_LIMIT``
(SQLite's own checkpoint is a safety net above it), so disk use follows retention. Opening
refuses, untouched, a file that is not smtpmock's (its header's ``application_id``, or the
schema of a file from before it was set) or is newer; what opening writes is one transaction,
so a start that fails changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from .._errors import ConfigurationError, StorageError, StorageFull, StorageUnavailable
from .._message import Message
from .._search import Search
from ._base import Page, Retention, Store, Summary
from ._records import envelope_record, to_json
from ._sqlite_index import _BIT_TABLES, MAX_INDEX_LAG, SearchIndex, _rows_to_messages

__all__ = ["MAX_INDEX_LAG", "SQLiteStore"]

SCHEMA_VERSION = 4
APPLICATION_ID = 0x534D5450  # "SMTP": PRAGMA application_id of smtpmock's files
# Schema 4 adds Mailpit's read state (`messages.read`) and tags (`msgtags`) to schema 3; the
# other tables are those of schema 3 (_SCHEMA), the additions are made by _migrate_state.
_STATE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS msgtags ("
    " seq INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (seq, tag)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS msgtags_by_tag ON msgtags (tag COLLATE NOCASE)",
    # A message's tags go with it, whichever way it is deleted (delete, eviction, clear).
    "CREATE TRIGGER IF NOT EXISTS msgtags_gone AFTER DELETE ON messages BEGIN"
    " DELETE FROM msgtags WHERE seq = old.seq; END",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    size INTEGER NOT NULL,
    envelope TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS raw (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS indexed (
    seq INTEGER PRIMARY KEY,
    summary TEXT NOT NULL,
    from_text TEXT NOT NULL,
    to_text TEXT NOT NULL,
    cc_text TEXT NOT NULL,
    bcc_text TEXT NOT NULL,
    reply_to_text TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL,
    attachments INTEGER NOT NULL,
    inline INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS texts (seq INTEGER PRIMARY KEY, free TEXT NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS words_fts USING fts5(
    free, content='', detail=none, tokenize='ascii'
);
CREATE VIRTUAL TABLE IF NOT EXISTS fieldwords_fts USING fts5(
    from_text, to_text, cc_text, bcc_text, reply_to_text, subject, message_id,
    content='', detail=column, tokenize='ascii'
);
CREATE TABLE IF NOT EXISTS terms (
    id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE, cols INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS suffixes (
    suffix TEXT NOT NULL, term INTEGER NOT NULL, PRIMARY KEY (suffix, term)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bitmeta (block_size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bitblocks (block INTEGER PRIMARY KEY, alive BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS wordbits (
    term TEXT NOT NULL, block INTEGER NOT NULL, bits BLOB NOT NULL, PRIMARY KEY (term, block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS openblock (block INTEGER NOT NULL, upto INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS openbits (term TEXT PRIMARY KEY, bits BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seqmark (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
"""


# SQLite's primary result codes that mean the storage, not the request, failed.
_SQLITE_FULL = 13
_SQLITE_UNAVAILABLE = {5: "busy", 6: "locked", 8: "read-only", 10: "I/O error", 14: "cannot open"}
_UNAVAILABLE_TEXTS = (
    "disk i/o error",
    "database is locked",
    "readonly database",
    "unable to open database",
)


def _storage_error(exc: BaseException, path: str) -> BaseException:
    """*exc* as :class:`~smtpmock.StorageFull` / :class:`~smtpmock.StorageUnavailable` when
    it is a SQLite error that says the storage failed; else *exc* itself."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    primary = None if code is None else code & 0xFF
    text = str(exc).lower()
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return StorageFull(f"no space left for the database {path!r}: {exc}")
    if primary in _SQLITE_UNAVAILABLE or any(t in text for t in _UNAVAILABLE_TEXTS):
        return StorageUnavailable(f"cannot write the database {path!r}: {exc}")
    return exc


def _create_schema(db: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would commit the opening transaction first.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


_FTS_HASH = 16 * 1024 * 1024  # bytes of pending word index FTS5 keeps in memory
# The WAL: a checkpoint after indexing truncates it once it is larger than _WAL_LIMIT (and the
# file is cut back to that when it starts over); SQLite's own checkpoint is a safety net at
# 4x that, for when indexing stops checkpointing (no space left, say).
_WAL_LIMIT = 4 * 1024 * 1024


def _autocheckpoint_pages() -> int:
    return max(100, 4 * _WAL_LIMIT // 4096)


class SQLiteStore(SearchIndex, Store):
    """Messages in a SQLite database file (``":memory:"`` for a private in-memory one).

    Reopening an existing file keeps its messages (ids, order and bytes); a file written by an
    older smtpmock is converted on open. Listing and search (:meth:`page`) read only the
    index tables, never the raw bytes.

    *index_worker*: parse messages for the index in one worker process (a ``python`` child
    started with the store, ended by :meth:`close` or when this process ends), so that
    indexing does not take the GIL from an SMTP server running in this process; ``smtpmock
    serve`` turns it on. If the worker cannot start or dies, parsing goes on in this process.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        retention: Retention | None = None,
        *,
        index_worker: bool = False,
    ) -> None:
        super().__init__(retention)
        self.path = str(path)
        self._closed = False
        self._init_index(index_worker)
        self._db = self._open()
        try:
            row = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0), COUNT(*), COALESCE(SUM(size), 0) FROM messages"
            ).fetchone()
            self._last_seq, self._count, self._bytes = int(row[0]), int(row[1]), int(row[2])
            # seq never goes back, also after the newest messages were deleted and the file
            # reopened: the highest seq ever given (`seqmark`, written by every delete; for a
            # file from before it, the block of word bitmaps saved on close, which may be past
            # every stored message).
            for (mark,) in self._db.execute(
                "SELECT last FROM seqmark UNION ALL SELECT upto FROM openblock"
            ):
                self._last_seq = max(self._last_seq, int(mark))
            self._load_index()
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigurationError(
                f"cannot use {self.path!r} as a smtpmock database: {exc}"
            ) from exc
        # Checkpoints go through a connection of their own (opened at the first one), so that
        # their fsyncs never hold the store's lock (:meth:`_checkpoint`); none in memory.
        journal = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        self._wal = str(journal).lower() == "wal"
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        self._start_index()

    # ------------------------------------------------------------------ opening

    def _open(self) -> sqlite3.Connection:
        """The store's connection to its file, after checking that the file is smtpmock's.

        Nothing is written to a file that is not smtpmock's (:meth:`_check_file` looks at it
        through a read-only connection first), and what opening writes (the schema, a
        migration, settings) is one transaction: a start that fails leaves the file as it
        was, and a file this call created is removed again.
        """
        in_memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        created = not in_memory and not os.path.exists(self.path)
        if not in_memory and not created:
            self._check_file()
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            self._migrate(db)
            # Indexing writes a batch of messages per transaction; a 16 MiB in-memory word
            # index per transaction (the default is 1 MiB) halves what FTS5 spends on it.
            # (A setting FTS5 keeps in the file: written only when it differs.)
            for fts in ("words_fts", "fieldwords_fts"):
                found = db.execute(f"SELECT v FROM {fts}_config WHERE k = 'hashsize'").fetchone()
                if found is None or found[0] != _FTS_HASH:
                    db.execute(
                        f"INSERT INTO {fts} ({fts}, rank) VALUES ('hashsize', ?)", (_FTS_HASH,)
                    )
            # The word bitmaps were built with this block size, or are dropped.
            row = db.execute("SELECT block_size FROM bitmeta").fetchone()
            if row is None or row[0] != self._bits_size:
                for table in ("bitmeta", *_BIT_TABLES):
                    db.execute(f"DELETE FROM {table}")
                db.execute("INSERT INTO bitmeta (block_size) VALUES (?)", (self._bits_size,))
            db.execute("COMMIT")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints are made by indexing (_checkpoint), off the commits of new mail:
            # an automatic one would run inside whichever commit crossed the threshold (an
            # fsync included), and commits run on the SMTP server's event loop when the store
            # is free (GroupCommit). The automatic one is a safety net only, far above where
            # _checkpoint truncates the WAL; journal_size_limit cuts the file back when the WAL
            # starts over.
            db.execute(f"PRAGMA wal_autocheckpoint={_autocheckpoint_pages()}")
            db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        except sqlite3.Error as exc:
            if db is not None:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                db.close()
            if created:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        os.remove(self.path + suffix)
            raise ConfigurationError(
                f"cannot use {self.path!r} as a smtpmock database: {exc}"
            ) from exc
        return db

    def _check_file(self) -> None:
        """Refuse, before anything writes to it, a file that is not a smtpmock database (or
        is one from a newer smtpmock, or cannot be read), creating nothing beside it.

        smtpmock's files carry :data:`APPLICATION_ID` in their header; files written before
        it did are known by their schema (``user_version`` 1 to 3 and the ``messages`` and
        ``raw`` tables), read through an immutable read-only connection (no lock, no ``-shm``
        file: nothing another program using the file could notice). An empty database is
        taken.
        """
        path = self.path
        fail = f"cannot use {path!r} as a smtpmock database:"
        if os.path.isdir(path):
            raise ConfigurationError(f"{fail} a directory")
        try:
            with open(path, "rb") as file:
                header = file.read(100)
        except OSError as exc:
            raise ConfigurationError(f"{fail} {exc}") from exc
        if not header:
            return  # an empty file: a new database
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise ConfigurationError(f"{fail} not a SQLite database (left unchanged)")
        application = int.from_bytes(header[68:72], "big")
        version = int.from_bytes(header[60:64], "big")
        if application not in (0, APPLICATION_ID):
            raise ConfigurationError(
                f"{fail} it belongs to another application (application_id {application}; "
                "left unchanged)"
            )
        if application == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{fail} written by a newer smtpmock (schema {version}; this one reads "
                    f"{SCHEMA_VERSION}; left unchanged)"
                )
            return
        tables, columns = self._schema_of(immutable=True)
        wal = path + "-wal"
        if not tables and os.path.exists(wal) and os.path.getsize(wal) > 0:
            # Its schema may still be in the WAL only: read it with the WAL.
            tables, columns = self._schema_of(immutable=False)
        legacy = (
            1 <= version <= SCHEMA_VERSION
            and {"messages", "raw"} <= tables
            and {"seq", "id", "envelope"} <= columns
        )
        if tables and not legacy:
            listed = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
            raise ConfigurationError(
                f"{fail} it belongs to another application (no smtpmock application_id, "
                f"tables: {listed}; left unchanged)"
            )

    def _schema_of(self, *, immutable: bool) -> tuple[set[str], set[str]]:
        """The tables of the file, and the columns of its ``messages`` table, read-only."""
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        if immutable:
            uri += "&immutable=1"
        try:
            ro = sqlite3.connect(uri, uri=True)
            try:
                tables = {
                    r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                columns = {r[1] for r in ro.execute("PRAGMA table_info(messages)")}
            finally:
                ro.close()
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"cannot use {self.path!r} as a smtpmock database: {exc} (left unchanged)"
            ) from exc
        return tables, columns

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Create or convert the schema (in the opening transaction)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:  # (the header said otherwise: it was in the WAL)
            raise sqlite3.DatabaseError(
                f"written by a newer smtpmock (schema {version}; this one reads {SCHEMA_VERSION})"
            )
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "messages" in tables and version < 2:
            # Schema 1 (trigram indexes, index columns in `messages`): keep the messages and
            # their bytes; the index is rebuilt by the indexer as for new mail.
            db.execute("ALTER TABLE messages RENAME TO messages_v1")
            for table in ("search_fts", "fields_fts"):
                db.execute(f"DROP TABLE IF EXISTS {table}")
            _create_schema(db)
            db.execute(
                "INSERT INTO messages (seq, id, received_at, size, envelope) "
                "SELECT seq, id, received_at, size, envelope FROM messages_v1"
            )
            db.execute("DROP TABLE messages_v1")
        else:
            # New, current, or schema 2 (schema 3 adds the word bitmaps, which the indexer
            # builds for the stored messages). CREATE ... IF NOT EXISTS writes nothing when
            # the tables are there.
            _create_schema(db)
        SQLiteStore._migrate_state(db)
        SQLiteStore._add_mailbox_column(db)
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")

    @staticmethod
    def _migrate_state(db: sqlite3.Connection) -> None:
        """Schema 3 to 4 (in the opening transaction): the read state column and the tags
        table. Writes nothing when they are there already."""
        columns = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
        if "read" not in columns:
            db.execute("ALTER TABLE messages ADD COLUMN read INTEGER NOT NULL DEFAULT 0")
        have = {
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE name IN "
                "('msgtags', 'msgtags_by_tag', 'msgtags_gone')"
            )
        }
        if len(have) < 3:
            for statement in _STATE_SCHEMA:
                db.execute(statement)

    def _report(self, exc: BaseException) -> None:
        """Hand an error of background work to ``on_listener_error`` (a SQLite error as the
        :class:`~smtpmock.StorageError` it means, where it means one)."""
        if self.on_listener_error is not None:
            self.on_listener_error(_storage_error(exc, self.path))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA wal_autocheckpoint={_autocheckpoint_pages()}")
        db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        return db

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the store's connection, committed at the end.

        On any failure it is rolled back for certain (:meth:`_rolled_back`) and a SQLite error
        that says why is raised as :class:`~smtpmock.StorageFull` (no space left) or
        :class:`~smtpmock.StorageUnavailable` (the file cannot be written): nothing of it is
        kept, and nothing else can be committed with it later.
        """
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            self._rolled_back()
            error = _storage_error(exc, self.path)
            if error is exc:
                raise
            raise error from exc

    def _rolled_back(self) -> None:
        """After a failed write: end its transaction, then read again what the store keeps in
        memory about the tables (counts, vocabulary, bitmaps), which it may have changed.

        SQLite rolls a transaction back by itself on some errors (no space left among them),
        and a failed ``COMMIT`` may leave it open: ``ROLLBACK`` only if one is open, and a
        connection whose transaction cannot be ended is replaced, so that the next commit
        never carries a refused write with it.
        """
        db = self._db
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.close()  # closing discards the transaction
            self._db = self._connect()
        try:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
            ).fetchone()
            self._count, self._bytes = int(row[0]), int(row[1])
            self._known = None  # reloaded from the table next time
            self._bits_load()
        except sqlite3.Error as exc:  # reported; the next write reads them again
            self._report(exc)

    # ------------------------------------------------------------------ read state and tags

    @staticmethod
    def _state_sql(kind: str, value: str) -> tuple[str, list[object]]:
        """SQL for a read-state or tag search term (columns of `messages`, bare)."""
        if kind == "read":
            return "read = 1", []
        if kind == "unread":
            return "read = 0", []
        if kind == "tagged":
            return "seq IN (SELECT seq FROM msgtags)", []
        return "seq IN (SELECT seq FROM msgtags WHERE tag = ? COLLATE NOCASE)", [value]

    def _set_read(self, ids: list[str] | None, read: bool) -> list[str]:
        flag = int(read)
        with self._write() as db:
            if ids is None:
                changed = [
                    r[0] for r in db.execute("SELECT id FROM messages WHERE read != ?", (flag,))
                ]
                db.execute("UPDATE messages SET read = ? WHERE read != ?", (flag, flag))
            else:
                changed = []
                for i in range(0, len(ids), 500):
                    chunk = ids[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    changed += [
                        r[0]
                        for r in db.execute(
                            f"SELECT id FROM messages WHERE read != ? AND id IN ({marks})",
                            [flag, *chunk],
                        )
                    ]
                    db.execute(
                        f"UPDATE messages SET read = ? WHERE id IN ({marks})", [flag, *chunk]
                    )
        return changed

    def _tags_of(
        self, *, ids: list[str] | None = None, tag: str | None = None
    ) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        query = "SELECT m.id, t.tag FROM messages m LEFT JOIN msgtags t ON t.seq = m.seq WHERE "
        with self.changed:
            if ids is None:
                rows = self._db.execute(
                    query + "m.seq IN (SELECT seq FROM msgtags WHERE tag = ? COLLATE NOCASE)",
                    (tag or "",),
                ).fetchall()
            else:
                rows = []
                for i in range(0, len(ids), 500):
                    chunk = ids[i : i + 500]
                    rows += self._db.execute(
                        query + f"m.id IN ({','.join('?' * len(chunk))})", chunk
                    ).fetchall()
        for id, name in rows:
            found.setdefault(id, [])
            if name is not None:
                found[id].append(name)
        return {id: tuple(sorted(names)) for id, names in found.items()}

    def _write_tags(self, changes: dict[str, tuple[str, ...]]) -> None:
        with self._write() as db:
            for id, tags in changes.items():
                row = db.execute("SELECT seq FROM messages WHERE id = ?", (id,)).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM msgtags WHERE seq = ?", (row[0],))
                db.executemany(
                    "INSERT OR IGNORE INTO msgtags (seq, tag) VALUES (?, ?)",
                    [(row[0], t) for t in tags],
                )

    def tags(self) -> list[str]:
        with self.changed:
            rows = self._db.execute("SELECT DISTINCT tag FROM msgtags").fetchall()
        return sorted(r[0] for r in rows)

    def unread_count(self) -> int:
        with self.changed:
            row = self._db.execute("SELECT COUNT(*) FROM messages WHERE read = 0").fetchone()
        return int(row[0])

    def _states(self, seqs: list[int]) -> tuple[set[int], dict[int, tuple[str, ...]]]:
        """The read seqs and the tags of the messages among *seqs*: two range reads when they
        are about contiguous (a listing), else lookups of those seqs (a page of a search whose
        matches lie far apart, where the range would read every message between them)."""
        if not seqs:
            return set(), {}
        lo, hi = min(seqs), max(seqs)
        if hi - lo < 4 * len(seqs):
            ranges = [("seq >= ? AND seq <= ?", [lo, hi])]
        else:
            wanted = sorted(set(seqs))
            ranges = [
                (f"seq IN ({','.join('?' * len(chunk))})", list(chunk))
                for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500))
            ]
        read: set[int] = set()
        tagged: dict[int, list[str]] = {}
        with self.changed:
            for where, params in ranges:
                read.update(
                    r[0]
                    for r in self._db.execute(
                        f"SELECT seq FROM messages WHERE {where} AND read = 1", params
                    )
                )
                for seq, tag in self._db.execute(
                    f"SELECT seq, tag FROM msgtags WHERE {where}", params
                ):
                    tagged.setdefault(seq, []).append(tag)
        return read, {seq: tuple(sorted(t)) for seq, t in tagged.items()}

    def _stamp(self, messages: list[Message]) -> list[Message]:
        """*messages* with their read state and tags set."""
        read, tagged = self._states([m.seq for m in messages])
        for message in messages:
            message.read = message.seq in read
            message.tags = tagged.get(message.seq, ())
        return messages

    def _stamp_summaries(self, summaries: list[Summary]) -> list[Summary]:
        """*summaries* with their read state and tags."""
        read, tagged = self._states([s.seq for s in summaries])
        if not read and not tagged:
            return summaries
        return [replace(s, read=s.seq in read, tags=tagged.get(s.seq, ())) for s in summaries]

    @staticmethod
    def _add_mailbox_column(db: sqlite3.Connection) -> None:
        """Mailboxes (issue 28), apart from the numbered schema (in the opening transaction):
        a column with a default, so a file written before it keeps every message (in the
        default mailbox) and an older smtpmock still reads the file (it ignores the column).
        Writes nothing when the column and its index are there."""
        columns = {r[1] for r in db.execute("PRAGMA table_info(messages)")}
        if "mailbox" not in columns:
            db.execute("ALTER TABLE messages ADD COLUMN mailbox TEXT NOT NULL DEFAULT 'default'")
        db.execute("CREATE INDEX IF NOT EXISTS messages_mailbox ON messages (mailbox, seq)")

    def mailboxes(self) -> dict[str, int]:
        with self.changed:
            rows = self._db.execute(
                "SELECT mailbox, COUNT(*) FROM messages GROUP BY mailbox ORDER BY mailbox"
            ).fetchall()
        return {str(name): int(n) for name, n in rows}

    def _oldest_in_mailbox(self, name: str, n: int) -> list[str]:
        with self.changed:
            rows = self._db.execute(
                "SELECT id FROM messages WHERE mailbox = ? ORDER BY seq LIMIT ?", (name, n)
            ).fetchall()
        return [str(r[0]) for r in rows]

    def _count_mailbox(self, name: str) -> int:
        with self.changed:
            row = self._db.execute(
                "SELECT COUNT(*) FROM messages WHERE mailbox = ?", (name,)
            ).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ storing

    def _insert_many(self, messages: Sequence[Message]) -> list[Message]:
        self._assign_seqs(messages)
        rows = []
        for message in messages:
            envelope = envelope_record(message)
            if message.transcript is not None:
                # The session as far as this message (its end of data): enough to show how it
                # arrived after a restart, when the live transcripts of the server are gone.
                envelope["transcript"] = message.transcript.excerpt(compact=True)
            rows.append(
                (
                    message.seq,
                    message.id,
                    message.received_at.timestamp(),
                    message.size,
                    to_json(envelope),
                    message.mailbox,
                )
            )
        with self._write() as db:
            db.executemany(
                "INSERT INTO messages (seq, id, received_at, size, envelope, mailbox) "
                "VALUES (?,?,?,?,?,?)",
                rows,
            )
            db.executemany(
                "INSERT INTO raw (seq, data) VALUES (?, ?)", [(m.seq, m.raw) for m in messages]
            )
            self._count += len(messages)
            self._bytes += sum(m.size for m in messages)
            evicted = [] if self.retention.unbounded else self._evict()
        self._stored()
        return evicted

    def _evict(self) -> list[Message]:
        r = self.retention
        cutoff = self._expired_before()
        evicted: list[Message] = []
        while self._count:
            row = self._db.execute(
                "SELECT seq, received_at FROM messages ORDER BY seq LIMIT 1"
            ).fetchone()
            over = (
                (r.max_messages is not None and self._count > r.max_messages)
                or (r.max_bytes is not None and self._bytes > r.max_bytes)
                or (cutoff is not None and row[1] < cutoff)
            )
            if not over:
                break
            message = self._load(int(row[0]))
            assert message is not None
            self._delete_seqs([message.seq])
            evicted.append(message)
        return evicted

    def _delete_seqs(self, seqs: list[int]) -> None:
        db = self._db
        if seqs:
            self._mark_seq(max(seqs))
        for seq in seqs:
            size = db.execute("SELECT size FROM messages WHERE seq = ?", (seq,)).fetchone()
            if size is None:
                continue
            db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            db.execute("DELETE FROM raw WHERE seq = ?", (seq,))
            self._unindex(seq)
            self._count -= 1
            self._bytes -= int(size[0])

    def _mark_seq(self, seq: int) -> None:
        """Record, before messages are deleted, the highest seq ever given (at least *seq*, one
        of theirs), in the deleting transaction: reopening numbers new messages after
        ``max(MAX(seq), seqmark)``, so a deleted message's seq is never given again. (Written
        on deletes only: a row per stored message was one more page in every commit of mail.)"""
        self._db.execute(
            "INSERT OR REPLACE INTO seqmark (id, last) VALUES (1, ?)", (max(self._last_seq, seq),)
        )

    def _remove(self, ids: Iterable[str]) -> list[str]:
        removed: list[str] = []
        with self._write() as db:
            for id in ids:
                row = db.execute("SELECT seq FROM messages WHERE id = ?", (id,)).fetchone()
                if row is not None:
                    self._delete_seqs([int(row[0])])
                    removed.append(id)
        return removed

    def _remove_all(self) -> int:
        count = self._count
        with self._write() as db:
            self._mark_seq(self._last_seq)
            for table in (
                "messages", "raw", "indexed", "texts", "terms", "suffixes", *_BIT_TABLES
            ):  # fmt: skip
                db.execute(f"DELETE FROM {table}")
            for fts in ("words_fts", "fieldwords_fts"):
                db.execute(f"INSERT INTO {fts} ({fts}) VALUES ('delete-all')")
        self._count, self._bytes = 0, 0
        self._known, self._complete = {}, True
        self._bits_gen += 1
        self._bits_load()
        return count

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self, *, force: bool = False) -> None:
        """Copy what the WAL holds into the database file (as far as no reader needs it)
        after an indexing pass of :data:`_CHECKPOINT_AFTER` messages or more, whichever thread
        ran it, and when the background indexer has caught up: the commits of new mail never
        pay for it, nor does a search that indexes a few messages first, and the WAL stays
        within about one pass of writes. Nothing to do when nothing was indexed since the last,
        unless *force* (the WAL is past its limit: storing alone wrote that much).

        Through a second connection, used for nothing else: a passive checkpoint waits for no
        reader or writer, so storing and searching go on (on the store's own connection, under
        its lock) while it copies pages and syncs the files.

        A passive checkpoint never catches up while mail keeps arriving (SQLite starts the WAL
        over only once every frame in it has been copied), so the WAL would grow with every
        message ever stored, retention or not. When it is past :data:`_WAL_LIMIT` after the
        passive copy, the rest is copied with the store held (nobody writes: a short wait,
        most of it was copied already) and the file truncated (:meth:`_truncate_wal`).
        """
        if not self._wal:
            return
        try:
            # Under the lock: a caller that finds the work taken by another thread waits for
            # that checkpoint to end, so flush_index() returns with the WAL checkpointed.
            with self._checkpoint_lock:
                if (not self._unsaved and not force) or self._closed:  # close() closes it here
                    return
                self._unsaved = 0
                if self._checkpointer is None:
                    self._checkpointer = sqlite3.connect(
                        self.path, check_same_thread=False, isolation_level=None
                    )
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # reported; the next pass tries again
            self._report(exc)
        if self._wal_size() > _WAL_LIMIT:
            self._truncate_wal()

    def _wal_over_limit(self) -> bool:
        return self._wal_size() > _WAL_LIMIT

    def _wal_size(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def _truncate_wal(self) -> None:
        """Copy the whole WAL into the database file and truncate it to nothing, with the
        store held (not with :attr:`_checkpoint_lock`: a reader that holds the store may be
        waiting for that one)."""
        with self.changed:
            if self._closed:
                return
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # reported (no space for the copy, say)
                self._report(exc)

    def flush_index(self) -> None:
        """Index every stored message now, rather than when the indexer or a search gets to it.

        Never needed for correct results (every search indexes what is pending first); useful
        after a bulk :meth:`add_many` to pay the indexing cost at a chosen moment (the WAL is
        checkpointed too).
        """
        self._index_pending()
        self._checkpoint()

    # ------------------------------------------------------------------ reading

    def _loaded(self, rows: list[tuple[int, str, bytes]]) -> list[Message]:
        """Messages from stored rows, with their read state and tags."""
        return self._stamp(_rows_to_messages(rows))

    def _load(self, seq: int) -> Message | None:
        rows = self._db.execute(
            "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
            "WHERE m.seq = ?",
            (seq,),
        ).fetchall()
        found = self._loaded(rows)
        return found[0] if found else None

    def messages(self) -> list[Message]:
        return self.since(0)

    def since(self, seq: int) -> list[Message]:
        with self.changed:
            rows = self._db.execute(
                "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                "WHERE m.seq > ? ORDER BY m.seq",
                (seq,),
            ).fetchall()
        return self._loaded(rows)

    def get(self, id: str) -> Message | None:
        with self.changed:
            rows = self._db.execute(
                "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                "WHERE m.id = ?",
                (id,),
            ).fetchall()
        found = self._loaded(rows)
        return found[0] if found else None

    def latest(self) -> Message | None:
        """The newest message, or ``None``."""
        with self.changed:
            rows = self._db.execute(
                "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                "ORDER BY m.seq DESC LIMIT 1"
            ).fetchall()
        found = self._loaded(rows)
        return found[0] if found else None

    def search(
        self, query: Search | None, *, after: int = 0, before: int | None = None
    ) -> list[Message]:
        """Whole messages matching *query* with ``after < seq <= before``, oldest first."""
        if query is None or not query.terms:
            found = self.since(after)
            return found if before is None else [m for m in found if m.seq <= before]
        self._index_for_read()
        until = -1 if before is None else before  # (-1: no upper bound)
        with self.changed:
            tail = self._tail(query, after, before)
            words, where, params = self._query(query, bitmaps=False)
            if words is not None:
                table, match = words.table, words.match
                rows = self._db.execute(
                    f"SELECT seq, m.envelope, r.data FROM (SELECT rowid AS seq FROM {table} "
                    f"WHERE {table} MATCH ? AND rowid > ? AND (? < 0 OR rowid <= ?)) "
                    "JOIN messages m USING (seq) JOIN raw r USING (seq) ORDER BY seq",
                    [match, after, until, until],
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT m.seq, m.envelope, r.data FROM messages m JOIN indexed i USING (seq) "
                    f"JOIN raw r USING (seq) WHERE seq > ? AND (? < 0 OR seq <= ?) AND {where} "
                    "ORDER BY seq",
                    [after, until, until, *params],
                ).fetchall()
        return self._loaded(rows) + tail

    def count(
        self, query: Search | None = None, *, after: int = 0, before: int | None = None
    ) -> int:
        """How many messages with ``after < seq <= before`` match *query* (reads no body)."""
        if query is None or not query.terms:
            if not after and before is None:
                return self._count
            with self.changed:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM messages WHERE seq > ? AND seq <= ?",
                    (after, self._last_seq if before is None else before),
                ).fetchone()
            return int(row[0])
        self._index_for_read()
        with self.changed:
            return self._count_indexed(query, after, before) + len(self._tail(query, after, before))

    def page(
        self,
        query: Search | None = None,
        *,
        start: int = 0,
        limit: int | None = 50,
        after: int = 0,
        newest_first: bool = True,
    ) -> Page:
        """One page of summaries and the exact number of matches; reads no message body."""
        self._index_for_read()
        with self.changed:
            tail = [Summary.of(m) for m in self._tail(query, after, None)]
            if not tail:
                return self._page_indexed(query, start, limit, after, newest_first)
            # The messages not indexed (for lack of space) are the newest.
            if newest_first:
                tail.reverse()
                first = tail[start:] if limit is None else tail[start : start + limit]
                more = None if limit is None else limit - len(first)
                rest = self._page_indexed(
                    query, max(0, start - len(tail)), more, after, newest_first
                )
                return Page(rest.total + len(tail), first + rest.summaries)
            found = self._page_indexed(query, start, limit, after, newest_first)
            more = None if limit is None else limit - len(found.summaries)
            at = max(0, start - found.total)
            last = tail[at:] if more is None else tail[at : at + more]
            return Page(found.total + len(tail), found.summaries + last)

    def __len__(self) -> int:
        return self._count

    @property
    def total_bytes(self) -> int:
        """The sum of the sizes of the stored messages."""
        return self._bytes

    def close(self) -> None:
        self._closed = True
        self._stopping.set()
        self._wake.set()
        if self._indexer is not None and self._indexer is not threading.current_thread():
            self._indexer.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self.changed:
            # (Else rebuilt from `texts` next time.)
            with contextlib.suppress(sqlite3.Error, StorageError):
                self._bits_save_open()
            self._db.close()
        with self._checkpoint_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
