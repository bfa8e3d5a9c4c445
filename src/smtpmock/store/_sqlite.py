"""``SQLiteStore``: messages in one SQLite file, committed before the client is told ``250``.

Layout: ``messages`` holds the envelope, the fields search needs (from
:func:`smtpmock._search.index_fields`, computed once at insert) and a ready-made JSON summary;
``raw`` holds the exact bytes in a table of its own, so listing and searching never read a body;
``search_fts`` is an FTS5 trigram index of the free text, which makes substring search
(``LIKE '%x%'``) use an index.

Durability: WAL journal with ``synchronous=NORMAL``; each :meth:`add` is one transaction,
committed before it returns (so before the SMTP handler answers ``250``). That survives the
server process being killed (SIGKILL); surviving a power cut would need ``synchronous=FULL``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._errors import ConfigurationError
from .._message import Message
from .._search import IndexFields, Search, index_fields
from .._transcript import Transcript
from ._base import Retention, Store

__all__ = ["SQLiteStore", "message_summary"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    size INTEGER NOT NULL,
    envelope TEXT NOT NULL,
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
CREATE TABLE IF NOT EXISTS raw (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(body, tokenize='trigram');
CREATE VIRTUAL TABLE IF NOT EXISTS fields_fts USING fts5(
    from_text, to_text, cc_text, bcc_text, reply_to_text, subject, message_id,
    tokenize='trigram'
);
"""

# The header fields that search matches as substrings, indexed by trigram in fields_fts.
_FIELD_COLUMNS = "from_text, to_text, cc_text, bcc_text, reply_to_text, subject, message_id"

_SNIPPET = 250


def _addr(name: str, address: str) -> dict[str, str]:
    return {"Name": name, "Address": address}


def message_summary(message: Message) -> dict[str, Any]:
    """A message as a list entry: Mailpit's ``MessageSummary`` fields plus the envelope.

    Never carries a body beyond the snippet.
    """
    fields = index_fields(message)
    body = " ".join((message.text or "").split())
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


class SQLiteStore(Store):
    """Messages in a SQLite database file (``":memory:"`` for a private in-memory one).

    Reopening an existing file keeps its messages (ids, order and bytes). Listing and search
    (:meth:`summaries`) read only the index table, never the raw bytes.
    """

    def __init__(self, path: str | Path = ":memory:", retention: Retention | None = None) -> None:
        super().__init__(retention)
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0), COUNT(*), COALESCE(SUM(size), 0) FROM messages"
            ).fetchone()
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"cannot use {self.path!r} as a smtpmock database: {exc}"
            ) from exc
        self._last_seq, self._count, self._bytes = int(row[0]), int(row[1]), int(row[2])
        self._backfill_fields_index()
        self._prepared: dict[int, tuple[IndexFields, dict[str, Any], dict[str, Any]]] = {}
        self._prepared_lock = threading.Lock()

    def _backfill_fields_index(self) -> None:
        # A database written before fields_fts existed: index its header fields once.
        if not self._count:
            return
        indexed = self._db.execute("SELECT COUNT(*) FROM fields_fts").fetchone()[0]
        if indexed == self._count:
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("DELETE FROM fields_fts")
        self._db.execute(
            f"INSERT INTO fields_fts (rowid, {_FIELD_COLUMNS}) SELECT seq, {_FIELD_COLUMNS} "
            "FROM messages"
        )
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ writing

    def add(self, message: Message) -> Message:
        # Parse and derive the index (seconds for a 25 MB message) before taking the store's
        # lock, so readers and other writers are not held up by it.
        prepared = (index_fields(message), message_summary(message), envelope_dict(message))
        with self._prepared_lock:
            self._prepared[id(message)] = prepared
        try:
            return super().add(message)
        finally:
            with self._prepared_lock:
                self._prepared.pop(id(message), None)

    def _insert(self, message: Message) -> list[Message]:
        with self._prepared_lock:
            prepared = self._prepared.get(id(message))
        if prepared is None:
            prepared = (index_fields(message), message_summary(message), envelope_dict(message))
        fields, summary, envelope = prepared
        summary = {**summary, "Seq": message.seq}
        envelope = {**envelope, "seq": message.seq}
        if message.transcript is not None:
            # The session as far as this message (its end of data): enough to show how it
            # arrived after a restart, when the live transcripts of the server are gone.
            envelope["transcript"] = message.transcript.excerpt()
        values = asdict(fields)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO messages (seq, id, received_at, size, envelope, summary, from_text, "
                "to_text, cc_text, bcc_text, reply_to_text, subject, message_id, attachments, "
                "inline) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    message.seq,
                    message.id,
                    fields.received_at,
                    message.size,
                    json.dumps(envelope),
                    json.dumps(summary),
                    values["from_text"],
                    values["to_text"],
                    values["cc_text"],
                    values["bcc_text"],
                    values["reply_to_text"],
                    values["subject"],
                    values["message_id"],
                    fields.attachments,
                    fields.inline,
                ),
            )
            db.execute("INSERT INTO raw (seq, data) VALUES (?, ?)", (message.seq, message.raw))
            db.execute(
                "INSERT INTO search_fts (rowid, body) VALUES (?, ?)",
                (message.seq, fields.free_text),
            )
            db.execute(
                f"INSERT INTO fields_fts (rowid, {_FIELD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                (
                    message.seq,
                    values["from_text"],
                    values["to_text"],
                    values["cc_text"],
                    values["bcc_text"],
                    values["reply_to_text"],
                    values["subject"],
                    values["message_id"],
                ),
            )
            self._count += 1
            self._bytes += message.size
            evicted = [] if self.retention.unbounded else self._evict()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            row = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages").fetchone()
            self._count, self._bytes = int(row[0]), int(row[1])
            raise
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
            db.execute("DELETE FROM search_fts WHERE rowid = ?", (seq,))
            db.execute("DELETE FROM fields_fts WHERE rowid = ?", (seq,))
            self._count -= 1
            self._bytes -= int(size[0])

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
        db.execute("DELETE FROM messages")
        db.execute("DELETE FROM raw")
        db.execute("DELETE FROM search_fts")
        db.execute("DELETE FROM fields_fts")
        db.execute("COMMIT")
        self._count, self._bytes = 0, 0
        return count

    # ------------------------------------------------------------------ reading

    def _rows_to_messages(self, rows: list[tuple[str, bytes]]) -> list[Message]:
        return [message_from_envelope(bytes(raw), json.loads(env)) for env, raw in rows]

    def _load(self, seq: int) -> Message | None:
        rows = self._db.execute(
            "SELECT m.envelope, r.data FROM messages m JOIN raw r USING (seq) WHERE m.seq = ?",
            (seq,),
        ).fetchall()
        found = self._rows_to_messages(rows)
        return found[0] if found else None

    def messages(self) -> list[Message]:
        return self.since(0)

    def since(self, seq: int) -> list[Message]:
        with self.changed:
            rows = self._db.execute(
                "SELECT m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                "WHERE m.seq > ? ORDER BY m.seq",
                (seq,),
            ).fetchall()
        return self._rows_to_messages(rows)

    def get(self, id: str) -> Message | None:
        with self.changed:
            rows = self._db.execute(
                "SELECT m.envelope, r.data FROM messages m JOIN raw r USING (seq) WHERE m.id = ?",
                (id,),
            ).fetchall()
        found = self._rows_to_messages(rows)
        return found[0] if found else None

    def latest(self) -> Message | None:
        """The newest message, or ``None``."""
        with self.changed:
            rows = self._db.execute(
                "SELECT m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                "ORDER BY m.seq DESC LIMIT 1"
            ).fetchall()
        found = self._rows_to_messages(rows)
        return found[0] if found else None

    def search(self, search: Search, *, after: int = 0) -> list[Message]:
        """Full messages matching *search* with ``seq`` above *after*, in arrival order."""
        where, params = search.sql()
        with self.changed:
            rows = self._db.execute(
                "SELECT m.envelope, r.data FROM messages m JOIN raw r USING (seq) "
                f"WHERE m.seq > ? AND {where} ORDER BY m.seq",
                [after, *params],
            ).fetchall()
        return self._rows_to_messages(rows)

    def count(self, search: Search, *, after: int = 0, before: int | None = None) -> int:
        """How many messages with ``after < seq <= before`` match *search* (reads no body)."""
        where, params = search.sql()
        with self.changed:
            row = self._db.execute(
                f"SELECT COUNT(*) FROM messages WHERE seq > ? AND seq <= ? AND {where}",
                [after, self._last_seq if before is None else before, *params],
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
        where, params = search.sql() if search is not None else ("1", [])
        order = "DESC" if newest_first else "ASC"
        with self.changed:
            total = self._db.execute(
                f"SELECT COUNT(*) FROM messages WHERE seq > ? AND {where}", [after, *params]
            ).fetchone()[0]
            rows = self._db.execute(
                f"SELECT summary FROM messages WHERE seq > ? AND {where} "
                f"ORDER BY seq {order} LIMIT ? OFFSET ?",
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
        with self.changed:
            self._db.close()
