"""``SQLiteStore``: messages in one SQLite file, committed before the client is told ``250``.

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

Cost: a word inside very many others (``the``, ``to``, most two-letter needles) stands for
hundreds of prefix terms and matches nearly every message; such a search costs time in
proportion to the messages times the terms (see ``benchmarks/RESULTS.md``).

Durability: WAL journal with ``synchronous=NORMAL``. That survives the server process being
killed (SIGKILL); surviving a power cut would need ``synchronous=FULL``.
"""

from __future__ import annotations

import base64
import bisect
import concurrent.futures
import datetime as _dt
import json
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from .._message import Message
from .._search import IndexFields, Search, index_fields, tokens
from .._transcript import Transcript
from ._base import Retention, Store

__all__ = ["MAX_INDEX_LAG", "SQLiteStore", "message_summary"]

SCHEMA_VERSION = 2
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
"""

# The header fields that search matches as substrings, as columns of `indexed` and of
# `fieldwords_fts` (in this order).
_FIELDS = ("from_text", "to_text", "cc_text", "bcc_text", "reply_to_text", "subject", "message_id")
_FIELD_COLUMNS = ", ".join(_FIELDS)
_ADDRESSED = ("to_text", "cc_text", "bcc_text")
# `terms.cols`: where a word has been seen, one bit per place (free text, then each field).
_FREE_BIT = 1
_FIELD_BITS = {column: 1 << n for n, column in enumerate(_FIELDS, 1)}

_SNIPPET = 250

MAX_INDEX_LAG = 1000
"""Messages the background indexer lets wait while mail is still arriving."""
_INDEX_QUIET = 0.05  # seconds without a new message before the background indexer starts
_FTS_HASH = 16 * 1024 * 1024  # bytes of pending word index FTS5 keeps in memory
_INDEX_BATCH = 200  # messages parsed and indexed per transaction
_SUFFIX_CHARS = 64  # suffixes are kept to this many characters (longer needles: instr)
_MAX_CONTAINING = 5000  # known words containing a needle word, beyond which it filters nothing
_MAX_PREFIXES = 300  # FTS5 prefix terms one needle word may become
_MAX_KNOWN_TERMS = 100_000  # vocabulary mirrored in memory (beyond it, the table is asked)


def _addr(name: str, address: str) -> dict[str, str]:
    return {"Name": name, "Address": address}


def _snippet(text: str) -> str:
    """The start of *text* with its whitespace runs made single spaces, at least _SNIPPET long."""
    head = text[: _SNIPPET * 4]
    snippet = " ".join(head.split())
    if len(snippet) < _SNIPPET and len(head) < len(text):
        snippet = " ".join(text.split())  # mostly whitespace: normalise it all
    return snippet


def message_summary(message: Message, fields: IndexFields | None = None) -> dict[str, Any]:
    """A message as a list entry: Mailpit's ``MessageSummary`` fields plus the envelope.

    Never carries a body beyond the snippet. *fields*: :func:`index_fields` of the message, when
    the caller has them already.
    """
    fields = fields if fields is not None else index_fields(message)
    body = _snippet(message.text or "")
    return {
        "ID": message.id,
        "Seq": message.seq,
        "MessageID": (message.message_id or "").strip("<>"),
        "Read": False,
        "From": _addr(*message.from_) if message.from_ else None,
        "To": [_addr(*a) for a in message.to],
        "Cc": [_addr(*a) for a in message.cc],
        "Bcc": [_addr("", a) for a in message.bcc],
        "ReplyTo": [_addr(*a) for a in message.reply_to],
        "Subject": message.subject,
        "Created": message.received_at.isoformat().replace("+00:00", "Z"),
        "Username": message.auth_user or "",
        "Tags": [],
        "Size": message.size,
        "Attachments": fields.attachments,
        "Inline": fields.inline,
        "Snippet": body[:_SNIPPET],
        "MailFrom": message.mail_from,
        "Recipients": list(message.rcpt_tos),
    }


def envelope_dict(message: Message) -> dict[str, Any]:
    """The envelope and session facts of *message*, JSON-ready (the inverse of
    :func:`message_from_envelope`)."""
    return {
        "id": message.id,
        "seq": message.seq,
        "mail_from": message.mail_from,
        "rcpt_tos": list(message.rcpt_tos),
        "peer": list(message.peer) if message.peer else None,
        "helo": message.helo,
        "received_at": message.received_at.isoformat(),
        "tls": message.tls,
        "tls_version": message.tls_version,
        "auth_user": message.auth_user,
        "mail_options": list(message.mail_options),
        "rcpt_options": {k: list(v) for k, v in message.rcpt_options.items()},
        "smtputf8": message.smtputf8,
        "session_id": message.session_id,
    }


def message_from_envelope(raw: bytes, envelope: dict[str, Any]) -> Message:
    """Rebuild a :class:`~smtpmock.Message` from its raw bytes and :func:`envelope_dict`."""
    peer = envelope.get("peer")
    message = Message(
        raw,
        id=str(envelope["id"]),
        mail_from=str(envelope.get("mail_from") or ""),
        rcpt_tos=[str(r) for r in envelope.get("rcpt_tos") or ()],
        peer=(str(peer[0]), int(peer[1])) if peer else None,
        helo=envelope.get("helo"),
        received_at=_dt.datetime.fromisoformat(str(envelope["received_at"])),
        tls=bool(envelope.get("tls")),
        tls_version=envelope.get("tls_version"),
        auth_user=envelope.get("auth_user"),
        mail_options=[str(o) for o in envelope.get("mail_options") or ()],
        rcpt_options=envelope.get("rcpt_options") or {},
        smtputf8=bool(envelope.get("smtputf8")),
        session_id=envelope.get("session_id"),
    )
    message.seq = int(envelope.get("seq") or 0)
    transcript = envelope.get("transcript")
    if transcript:
        message.transcript = Transcript.from_dict(transcript)
    return message


def encode_export(message: Message) -> dict[str, Any]:
    """Envelope, base64 raw bytes and the session transcript as far as it concerns this
    message (:meth:`Transcript.excerpt`): what a remote client needs to rebuild the message
    (see :func:`decode_export`)."""
    transcript = message.transcript.excerpt() if message.transcript is not None else None
    return {
        "Envelope": envelope_dict(message),
        "Raw": base64.b64encode(message.raw).decode(),
        "Transcript": transcript,
    }


def decode_export(data: dict[str, Any]) -> Message:
    """The :class:`~smtpmock.Message` that :func:`encode_export` described."""
    message = message_from_envelope(base64.b64decode(data["Raw"]), data["Envelope"])
    if data.get("Transcript"):
        message.transcript = Transcript.from_dict(data["Transcript"])
    return message


def _fts_word(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


_Prepared = tuple[int, IndexFields, str, str]
"""What indexing needs of one message: seq, search fields, list entry (JSON), distinct words
(space-separated: one string, not a list of thousands, to cross from the worker process)."""


def _exit_with_parent(parent: int) -> None:
    """In the index worker: end it when its parent is gone (killed with SIGKILL, say), which
    the pool's own pipes do not notice."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="smtpmock-parent-watch", daemon=True).start()


def _prepare_rows(rows: list[tuple[int, str, bytes]]) -> list[_Prepared]:
    """Parse stored rows into what the index needs (in an index worker process, or not)."""
    prepared = []
    for message in SQLiteStore._rows_to_messages(rows):
        seq, fields, summary = SQLiteStore._prepare(message)
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


def _distinct_words(text: str) -> str:
    """The words of *text*, each once, in order of first appearance, space-separated: what
    `words_fts` holds for it."""
    return " ".join(dict.fromkeys(tokens(text)))


class SQLiteStore(Store):
    """Messages in a SQLite database file (``":memory:"`` for a private in-memory one).

    Reopening an existing file keeps its messages (ids, order and bytes); a file written by an
    older smtpmock is converted on open. Listing and search (:meth:`summaries`) read only the
    index tables, never the raw bytes.

    *index_worker*: parse messages for the index in one worker process (started on first use,
    ended by :meth:`close`), so that indexing does not take the GIL from an SMTP server
    running in this process; ``smtpmock serve`` turns it on. If the worker cannot start or
    dies, parsing goes on in this process. The worker is started with ``spawn``, so a script
    that uses this needs the usual ``if __name__ == "__main__":`` guard.
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
        # Parse messages for the index in a worker process: the parsing is pure Python and
        # would otherwise hold the GIL that an SMTP server in this process needs.
        self._index_worker = index_worker
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            # Indexing writes a batch of messages per transaction; a 16 MiB in-memory word
            # index per transaction (the default is 1 MiB) halves what FTS5 spends on it.
            for fts in ("words_fts", "fieldwords_fts"):
                self._db.execute(
                    f"INSERT INTO {fts} ({fts}, rank) VALUES ('hashsize', ?)", (_FTS_HASH,)
                )
            row = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0), COUNT(*), COALESCE(SUM(size), 0) FROM messages"
            ).fetchone()
            indexed = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM indexed").fetchone()
        except sqlite3.Error as exc:
            if hasattr(self, "_db"):
                self._db.close()
            raise ConfigurationError(
                f"cannot use {self.path!r} as a smtpmock database: {exc}"
            ) from exc
        self._last_seq, self._count, self._bytes = int(row[0]), int(row[1]), int(row[2])
        # Every message with seq <= _indexed_seq is in the index (or was deleted).
        self._indexed_seq = int(indexed[0])
        self._known: dict[str, int] | None = None  # the vocabulary ({term: cols}), when mirrored
        self._complete = False  # whether _known holds the whole vocabulary
        self._last_insert = 0.0
        self._wake = threading.Event()
        self._closed = False
        self._indexer: threading.Thread | None = None
        if index_worker:
            try:
                self._start_worker()
            except Exception:  # no worker processes here: parse in this process
                self._index_worker = False

    def _migrate(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version == SCHEMA_VERSION or "messages" not in tables:
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer smtpmock (schema {version}; this one reads {SCHEMA_VERSION})"
            )
        # Schema 1 (trigram indexes, index columns in `messages`): keep the messages and their
        # bytes; the index is rebuilt by the indexer as for new mail.
        db.execute("BEGIN IMMEDIATE")
        db.execute("ALTER TABLE messages RENAME TO messages_v1")
        for table in ("search_fts", "fields_fts"):
            db.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            "INSERT INTO messages (seq, id, received_at, size, envelope) "
            "SELECT seq, id, received_at, size, envelope FROM messages_v1"
        )
        db.execute("DROP TABLE messages_v1")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")

    # ------------------------------------------------------------------ storing

    def _insert(self, message: Message) -> list[Message]:
        return self._insert_many((message,))

    def _insert_many(self, messages: Sequence[Message]) -> list[Message]:
        rows = []
        for message in messages:
            envelope = envelope_dict(message)
            if message.transcript is not None:
                # The session as far as this message (its end of data): enough to show how it
                # arrived after a restart, when the live transcripts of the server are gone.
                envelope["transcript"] = message.transcript.excerpt()
            rows.append(
                (
                    message.seq,
                    message.id,
                    message.received_at.timestamp(),
                    message.size,
                    json.dumps(envelope),
                )
            )
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO messages (seq, id, received_at, size, envelope) VALUES (?,?,?,?,?)",
                rows,
            )
            db.executemany(
                "INSERT INTO raw (seq, data) VALUES (?, ?)", [(m.seq, m.raw) for m in messages]
            )
            self._count += len(messages)
            self._bytes += sum(m.size for m in messages)
            evicted = [] if self.retention.unbounded else self._evict()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            row = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
            self._count, self._bytes = int(row[0]), int(row[1])
            raise
        self._last_insert = time.monotonic()
        self._start_indexer()
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
        for seq in seqs:
            size = db.execute("SELECT size FROM messages WHERE seq = ?", (seq,)).fetchone()
            if size is None:
                continue
            db.execute("DELETE FROM messages WHERE seq = ?", (seq,))
            db.execute("DELETE FROM raw WHERE seq = ?", (seq,))
            self._unindex(seq)
            self._count -= 1
            self._bytes -= int(size[0])

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

    def _remove(self, ids: Iterable[str]) -> list[str]:
        removed: list[str] = []
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for id in ids:
                row = db.execute("SELECT seq FROM messages WHERE id = ?", (id,)).fetchone()
                if row is not None:
                    self._delete_seqs([int(row[0])])
                    removed.append(id)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return removed

    def _remove_all(self) -> int:
        count = self._count
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        for table in ("messages", "raw", "indexed", "texts", "terms", "suffixes"):
            db.execute(f"DELETE FROM {table}")
        for fts in ("words_fts", "fieldwords_fts"):
            db.execute(f"INSERT INTO {fts} ({fts}) VALUES ('delete-all')")
        db.execute("COMMIT")
        self._count, self._bytes = 0, 0
        self._known, self._complete = {}, True
        return count

    # ------------------------------------------------------------------ indexing

    def _start_indexer(self) -> None:
        if self._indexer is None and not self._closed:
            self._indexer = threading.Thread(
                target=self._index_in_background, name=f"smtpmock-indexer {self.path}", daemon=True
            )
            self._indexer.start()
        self._wake.set()

    def _index_in_background(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            while not self._closed and self._indexed_seq < self._last_seq:
                quiet_for = time.monotonic() - self._last_insert
                if quiet_for < _INDEX_QUIET and self._last_seq - self._indexed_seq < MAX_INDEX_LAG:
                    # Mail is arriving: let it in first (a new message sets _wake again).
                    self._wake.wait(_INDEX_QUIET - quiet_for)
                    self._wake.clear()
                    continue
                try:
                    self._index_pending(limit=_INDEX_BATCH)
                except Exception as exc:  # reported, and retried by the next read
                    if self.on_listener_error is not None:
                        self.on_listener_error(exc)
                    break

    def flush_index(self) -> None:
        """Index every stored message now, rather than when the indexer or a search gets to it.

        Never needed for correct results (every search indexes what is pending first); useful
        after a bulk :meth:`add_many` to pay the indexing cost at a chosen moment.
        """
        self._index_pending()

    def _index_pending(self, limit: int | None = None) -> None:
        """Index the messages not indexed yet (at most about *limit* of them, oldest first).

        Safe from any thread, with or without the store's lock held: two indexers racing for
        the same messages both parse them, and the second one's write is skipped. With an
        index worker, the next batch is being parsed there while this one is written.
        """
        after = self._indexed_seq  # the last message handed to parsing
        parsing: tuple[Callable[[], list[_Prepared]], int] | None = None
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
            if following is None:
                return
            parsing = following

    def _parse_later(self, rows: list[tuple[int, str, bytes]]) -> Callable[[], list[_Prepared]]:
        """Start parsing *rows* in the index worker (or not: then when called)."""
        if self._index_worker and not self._closed and rows:
            try:
                future = self._start_worker().submit(_prepare_rows, rows)
            except Exception as exc:
                self._worker_failed(exc)
            else:

                def result() -> list[_Prepared]:
                    try:
                        return future.result()
                    except Exception as exc:  # a dead worker: parse here from now on
                        self._worker_failed(exc)
                        return _prepare_rows(rows)

                return result
        return lambda: _prepare_rows(rows)

    def _start_worker(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                # spawn, not fork: the process has threads (the server's, uvicorn's). The first
                # task starts the worker now, in the background, not on the first search.
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
                self._pool.submit(int)
            return self._pool

    def _worker_failed(self, exc: BaseException) -> None:
        self._index_worker = False
        if self.on_listener_error is not None:
            self.on_listener_error(exc)

    @staticmethod
    def _prepare(message: Message) -> tuple[int, IndexFields, str]:
        try:
            fields = index_fields(message)
            summary = message_summary(message, fields)
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
            summary = {
                "ID": message.id,
                "Seq": message.seq,
                "Size": message.size,
                "MailFrom": message.mail_from,
                "Recipients": list(message.rcpt_tos),
            }
        return message.seq, fields, json.dumps(summary)

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
        db.execute("BEGIN IMMEDIATE")
        try:
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
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._known = None  # reloaded from the table next time
            raise

    def _add_vocabulary(self, prepared: list[_Prepared]) -> None:
        """Record every word of *prepared* in `terms` (with where it was seen) and `suffixes`."""
        db = self._db
        seen = dict.fromkeys(set().union(*(p[3].split() for p in prepared)), _FREE_BIT)
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

    # ------------------------------------------------------------------ substring SQL

    def _expansion(self, word: str, cols: int) -> str | None:
        """An FTS5 query matching exactly the indexed words that contain *word*.

        Every known word seen in one of the places *cols* that contains *word* (a range scan of
        `suffixes`), written as few terms as possible: a word ``x + word + y`` is covered by the
        prefix term ``"x + word"*``, which matches only words containing *word*, so one prefix
        stands for every word it begins. ``""`` when no word contains it; ``None`` when it is in
        too many words to narrow a search down.
        """
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
        terms = sorted(r[0] for r in found)
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
        for word in dict.fromkeys(words):
            expansion = self._expansion(word, cols)
            if expansion is None:
                continue  # in too many words to narrow anything down
            if not expansion:
                return _TextPlan(nothing=True)  # no stored message has this word there
            groups.append(expansion)
        if not groups:
            return _TextPlan(check=check, needle=needle)
        match = column_filter + "(" + " AND ".join(f"({g})" for g in groups) + ")"
        if len(words) == 1 and words[0] == needle:
            return _TextPlan(fts=fts, match=match)  # the words found are the answer
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
    ) -> tuple[str, str] | None:
        """``(table, MATCH expression)`` when one word index alone answers *search*.

        That is when every term is a substring test answered exactly by its words, all in the
        same index: then counting and paging read only that index, not a row per match.
        *plan_for*: where the terms' plans come from (default :meth:`_text_plan`).
        """
        plan_for = plan_for or self._text_plan
        if search is None or not search.terms:
            return None
        table, matches = None, []
        for term, compiled in search._compiled():
            if term.negated or compiled.text is None:
                return None
            plan = plan_for(*compiled.text)
            if plan.fts is None or plan.check is not None or table not in (None, plan.fts):
                return None
            table = plan.fts
            matches.append(f"({plan.match})")
        assert table is not None
        return table, " AND ".join(matches)

    def _query(self, search: Search | None) -> tuple[tuple[str, str] | None, str, list[object]]:
        """``(word query or None, SQL condition, its parameters)`` for *search*.

        Called with the store held and after :meth:`_index_pending`. The condition is only
        built when no single word index answers the search.
        """
        plans: dict[tuple[str, str], _TextPlan] = {}

        def plan_for(field: str, needle: str) -> _TextPlan:
            # Each term is planned once (a plan costs a vocabulary range scan) whether the word
            # query or the general condition ends up using it.
            if (field, needle) not in plans:
                plans[field, needle] = self._text_plan(field, needle)
            return plans[field, needle]

        words = self._word_query(search, plan_for)
        if words is not None:
            return words, "", []
        if search is None:
            return None, "1", []
        where, params = search.sql(lambda field, needle: self._plan_sql(plan_for(field, needle)))
        return None, where, params

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _rows_to_messages(rows: list[tuple[int, str, bytes]]) -> list[Message]:
        messages = []
        for seq, envelope, raw in rows:
            message = message_from_envelope(bytes(raw), json.loads(envelope))
            message.seq = seq  # the column is the truth (a converted file's JSON may lack it)
            messages.append(message)
        return messages

    def _load(self, seq: int) -> Message | None:
        rows = self._db.execute(
            "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
            "WHERE m.seq = ?",
            (seq,),
        ).fetchall()
        found = self._rows_to_messages(rows)
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
        return self._rows_to_messages(rows)

    def get(self, id: str) -> Message | None:
        with self.changed:
            rows = self._db.execute(
                "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                "WHERE m.id = ?",
                (id,),
            ).fetchall()
        found = self._rows_to_messages(rows)
        return found[0] if found else None

    def latest(self) -> Message | None:
        """The newest message, or ``None``."""
        with self.changed:
            rows = self._db.execute(
                "SELECT m.seq, m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                "ORDER BY m.seq DESC LIMIT 1"
            ).fetchall()
        found = self._rows_to_messages(rows)
        return found[0] if found else None

    def search(self, search: Search, *, after: int = 0) -> list[Message]:
        """Full messages matching *search* with ``seq`` above *after*, in arrival order."""
        self._index_pending()
        with self.changed:
            words, where, params = self._query(search)
            if words is not None:
                table, match = words
                rows = self._db.execute(
                    f"SELECT seq, m.envelope, r.data FROM (SELECT rowid AS seq FROM {table} "
                    f"WHERE {table} MATCH ? AND rowid > ?) JOIN messages m USING (seq) "
                    "JOIN raw r USING (seq) ORDER BY seq",
                    [match, after],
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT m.seq, m.envelope, r.data FROM messages m JOIN indexed i USING (seq) "
                    f"JOIN raw r USING (seq) WHERE seq > ? AND {where} ORDER BY seq",
                    [after, *params],
                ).fetchall()
        return self._rows_to_messages(rows)

    def count(self, search: Search, *, after: int = 0, before: int | None = None) -> int:
        """How many messages with ``after < seq <= before`` match *search* (reads no body)."""
        self._index_pending()
        with self.changed:
            until = self._last_seq if before is None else before
            words, where, params = self._query(search)
            if words is not None:
                table, match = words
                row = self._db.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE {table} MATCH ? "
                    "AND rowid > ? AND rowid <= ?",
                    [match, after, until],
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM messages JOIN indexed USING (seq) "
                    f"WHERE seq > ? AND seq <= ? AND {where}",
                    [after, until, *params],
                ).fetchone()
        return int(row[0])

    def summaries(
        self,
        search: Search | None = None,
        *,
        start: int = 0,
        limit: int | None = 50,
        after: int = 0,
        newest_first: bool = True,
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(number of matches, one page of summaries)``; reads no message body."""
        self._index_pending()
        order = "DESC" if newest_first else "ASC"
        with self.changed:
            words, where, params = self._query(search)
            if words is not None:
                # Count and page from the word index alone (no row read per match).
                table, match = words
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
                    page = seqs[start:] if limit is None else seqs[start : start + limit]
                    found: dict[int, str] = {}
                    for i in range(0, len(page), 500):
                        chunk = page[i : i + 500]
                        found.update(
                            self._db.execute(
                                "SELECT seq, summary FROM indexed "
                                f"WHERE seq IN ({','.join('?' * len(chunk))})",
                                chunk,
                            )
                        )
                    return len(seqs), [json.loads(found[seq]) for seq in page if seq in found]
                total = self._db.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE {table} MATCH ? AND rowid > ?",
                    [match, after],
                ).fetchone()[0]
                rows = self._db.execute(
                    f"SELECT summary FROM indexed WHERE seq IN (SELECT rowid FROM {table} "
                    f"WHERE {table} MATCH ? AND rowid > ? ORDER BY rowid {order} "
                    f"LIMIT ? OFFSET ?) ORDER BY seq {order}",
                    [match, after, -1 if limit is None else limit, start],
                ).fetchall()
                return int(total), [json.loads(r[0]) for r in rows]
            if search is None and not after:
                total = self._count
            else:
                total = self._db.execute(
                    "SELECT COUNT(*) FROM messages JOIN indexed USING (seq) "
                    f"WHERE seq > ? AND {where}",
                    [after, *params],
                ).fetchone()[0]
            rows = self._db.execute(
                "SELECT summary FROM messages JOIN indexed USING (seq) "
                f"WHERE seq > ? AND {where} ORDER BY seq {order} LIMIT ? OFFSET ?",
                [after, *params, -1 if limit is None else limit, start],
            ).fetchall()
        return int(total), [json.loads(r[0]) for r in rows]

    def __len__(self) -> int:
        return self._count

    @property
    def total_bytes(self) -> int:
        """The sum of the sizes of the stored messages."""
        return self._bytes

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._indexer is not None and self._indexer is not threading.current_thread():
            self._indexer.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self.changed:
            self._db.close()
