"""``PostgresStore``: messages in PostgreSQL, shared by several ``smtpmock serve`` instances.

``smtpmock serve --db postgresql://user@host/db`` on two machines (or twenty) makes them one
mailbox: mail taken by any instance is searched, waited for and deleted through any other.

Writes. An :meth:`~PostgresStore.add_many` is one transaction, committed before it returns (and
so before the SMTP side answers ``250``). It first updates the one row of ``smtpmock_state``
(message count, bytes, generation): that row lock orders the writers of every instance, so
``seq`` (an identity column, assigned by the database) grows in commit order across instances:
a reader that has seen ``seq`` *n* has seen every message below it, which is what ``since()``
and the waits rely on. Retention is enforced in the same transaction under the same lock, so
several writers never exceed it. A message is parsed once, before the transaction, into the
searchable fields (:func:`~smtpmock._search.index_fields`) and its list entry (a
:class:`~smtpmock.store.Summary` record), so reads never parse.

Search. The one query language (:class:`~smtpmock._search.Search`) is compiled to SQL over the
lower-cased text columns: a substring term is ``column LIKE '%needle%'`` (the needle
lower-cased and its wildcards escaped), which is Python's ``needle in text`` on the same text
(the other backends' semantics), and which ``pg_trgm``'s GIN indexes answer; only the rarest
trigrams of a needle are looked up, the needle itself is then checked (``_trigrams.py``).
Free text (the bodies: 10 KiB where addresses are 50 bytes) and subjects go through a word
vocabulary instead, as in the SQLite store: ``smtpmock_words`` holds each distinct word
(:func:`~smtpmock._search.tokens`) once, and ``smtpmock_terms`` the ``int[]`` of each
message's words' ids and of its subject's (GIN indexes), in rows narrow enough that counting
100k matches reads 1,300 pages, not the messages' 20k. A needle of word characters only lies
inside one word of every text containing it, so it is answered exactly by ``word LIKE`` on
the vocabulary, then ``words && ids``, reading no body; a free-text needle across words is
narrowed the same way by its longest word and the text decides; a needle inside more than
``_MANY_WORDS`` words is matched on the texts. When the extension cannot be created (no
``postgresql-contrib``, no right to create it), the same queries run as scans, and a log line
says so. Counts are exact; pages are newest first.

Word postings. Once a block of 8,192 seqs is full, its free-text word ids move from
``smtpmock_terms`` to ``smtpmock_postings``: per word, the block's messages holding it, as a
compressed bitmap (``_postings.py``, written in the background by one instance at a time).
A needle's messages are then its words' bitmaps ORed (up to F, ``smtpmock_state.frozen``)
and the word index's answer above F, read in one snapshot: a word inside 140 words held by
every message is counted from ~1,700 bitmaps rather than 600k index entries. A query of
words only counts and pages from the bitmap; any other gets the seqs as an array.

Change feed. Every write sends a ``NOTIFY`` in its transaction (delivered at commit, in commit
order) carrying kinds, seqs, ids and the shared generation, never message contents. Each
instance ``LISTEN``\\ s on a connection of its own in a background thread, loads the messages
other instances added, and publishes them to :meth:`subscribe` listeners and the
:attr:`changed` condition, so a wait, ``/api/v1/wait`` or the event stream of one instance
wakes when another takes mail. Its own notifications are recognised (an origin token) and
skipped: local changes are published as soon as they commit.

Failures. A lost database makes writes and reads raise
:class:`~smtpmock.StorageUnavailable` (the SMTP side answers ``451``; nothing acknowledged is
lost, since ``250`` follows the commit). The connection pool (``psycopg_pool``) checks each
connection before lending it and reconnects in the background with an exponential backoff
(from 1 s, each round of attempts bounded by ``reconnect_timeout``); the listening thread
reconnects with its own backoff (50 ms doubling to 2 s) and then catches up on what it missed.

Schema. Created and migrated in one transaction under ``pg_advisory_xact_lock``, so instances
starting together neither race nor half-migrate; ``smtpmock_schema`` holds the version. A
database written by a newer smtpmock is refused. Tables are prefixed ``smtpmock_``; to keep
several stores in one database, give each a schema (``?options=-csearch_path%3Dteam_a``).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import selectors
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, StorageFull, StorageUnavailable
from .._message import Message
from .._search import _WORD, Search, Term, in_mailbox, index_fields, tokens
from ._base import UPDATED_IDS_MAX, Listing, Page, Retention, Store, StoreEvent, Summary
from ._records import envelope_record, message_from_record, summary_from_record, summary_record
from ._trigrams import TrigramShares, rarest, windows

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
    from pyroaring import BitMap

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

log = logging.getLogger("smtpmock.store.postgres")

SCHEMA_VERSION = 6
_LOCK_KEY = 0x736D_7470_6D6F_636B  # "smtpmock": the advisory lock taken around schema changes
_MERGE_KEY = _LOCK_KEY + 1  # held by the instance writing word postings (_postings)
_MERGE_INTERVAL = 60.0  # seconds between merge rounds when no add asks for one (gone seqs)
_MERGE_BACKOFF = (1.0, 30.0)  # first and longest wait after a failed merge round
_MAX_PAYLOAD = 7000  # bytes of one NOTIFY payload (PostgreSQL's limit is 8000)
_LISTEN_BACKOFF = (0.05, 2.0)  # first and longest wait between reconnections of the listener
_HEALTH_INTERVAL = 15.0  # seconds of silence after which the listener checks its connection
_RECENT_LOCAL = 10_000  # local seqs remembered, so a catch-up does not publish them again
_CATCH_UP_LIMIT = 1_000  # messages a catch-up loads to publish (beyond: waits recount)

_Step = str | Callable[..., None]  # a statement, or a function of the connection


def _index_words(conn: psycopg.Connection[Any]) -> None:
    """Migration 2's data step: the word ids of the messages stored before it."""
    while True:
        rows = conn.execute(
            "SELECT seq, free_text FROM smtpmock_messages WHERE words IS NULL LIMIT 500"
        ).fetchall()
        if not rows:
            return
        words = [_words(str(text)) for _, text in rows]
        every = sorted(set().union(*words))
        # The vocabulary as schema 2 has it (no in_subject yet: migration 5 adds and fills it).
        conn.execute(
            "INSERT INTO smtpmock_words (word) SELECT unnest(%s::text[]) "
            "ON CONFLICT ((md5(word))) DO NOTHING",
            (every,),
        )
        found = conn.execute(
            "SELECT w.word, w.id FROM unnest(%s::text[]) AS u(word) "
            "JOIN smtpmock_words w ON md5(w.word) = md5(u.word)",
            (every,),
        ).fetchall()
        ids = {str(word): int(id) for word, id in found}
        conn.execute(
            "UPDATE smtpmock_messages m SET words = u.words::int[] "
            "FROM unnest(%s::bigint[], %s::text[]) AS u(seq, words) WHERE m.seq = u.seq",
            ([int(seq) for seq, _ in rows], [_id_array(w, ids) for w in words]),
        )


def _index_subjects(conn: psycopg.Connection[Any]) -> None:
    """Migration 5's data step: the ids of the subject words of the messages stored before
    it (every one is in the vocabulary already: the free text holds the subject)."""
    last = 0
    while True:
        rows = conn.execute(
            "SELECT seq, subject FROM smtpmock_messages WHERE seq > %s ORDER BY seq LIMIT 5000",
            (last,),
        ).fetchall()
        if not rows:
            return
        last = int(rows[-1][0])
        words = [_words(str(subject)) for _, subject in rows]
        every = set().union(*words)
        ids = _word_ids(conn, sorted(every), subject=every)
        conn.execute(
            "UPDATE smtpmock_terms t SET subject_words = u.words::int[] "
            "FROM unnest(%s::bigint[], %s::text[]) AS u(seq, words) WHERE t.seq = u.seq",
            ([int(seq) for seq, _ in rows], [_id_array(w, ids) for w in words]),
        )


# Migrations, in order: _MIGRATIONS[n - 1] takes the schema from version n - 1 to n.
_MIGRATIONS: tuple[tuple[_Step, ...], ...] = (
    (
        """CREATE TABLE smtpmock_state (
            id boolean PRIMARY KEY DEFAULT true CHECK (id),
            messages bigint NOT NULL DEFAULT 0,
            bytes bigint NOT NULL DEFAULT 0,
            generation bigint NOT NULL DEFAULT 0
        )""",
        "INSERT INTO smtpmock_state DEFAULT VALUES",
        """CREATE TABLE smtpmock_messages (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            received_at double precision NOT NULL,
            size bigint NOT NULL,
            envelope json NOT NULL,
            summary json NOT NULL,
            from_text text NOT NULL,
            to_text text NOT NULL,
            cc_text text NOT NULL,
            bcc_text text NOT NULL,
            reply_to_text text NOT NULL,
            subject text NOT NULL,
            message_id text NOT NULL,
            addressed text GENERATED ALWAYS AS
                (to_text || E'\\n' || cc_text || E'\\n' || bcc_text) STORED,
            free_text text NOT NULL,
            attachments integer NOT NULL,
            inline integer NOT NULL
        )""",
        # Kept uncompressed (out of line when long): search matches it without inflating it.
        "ALTER TABLE smtpmock_messages ALTER COLUMN free_text SET STORAGE EXTERNAL",
        "CREATE INDEX smtpmock_messages_received_at ON smtpmock_messages (received_at)",
        # The raw bytes apart, so that scans of the searchable columns never read them.
        """CREATE TABLE smtpmock_raw (
            seq bigint PRIMARY KEY REFERENCES smtpmock_messages (seq) ON DELETE CASCADE,
            data bytea NOT NULL
        )""",
    ),
    (
        # The word vocabulary: every distinct word (``_search.tokens``) of the stored free
        # texts, once. A substring of the free text made of word characters only lies inside
        # one word, so it is found by looking the vocabulary up (thousands of short rows, a
        # trigram index when pg_trgm is there), then the messages holding one of the words
        # found (an int[] per message, a GIN index): no message text is read.
        """CREATE TABLE smtpmock_words (
            id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            word text NOT NULL
        )""",
        # md5: a word may be longer than a btree entry may be.
        "CREATE UNIQUE INDEX smtpmock_words_md5 ON smtpmock_words (md5(word))",
        "ALTER TABLE smtpmock_messages ADD COLUMN words integer[]",
        _index_words,
        "ALTER TABLE smtpmock_messages ALTER COLUMN words SET NOT NULL",
        # A message adds ~1000 entries: they go to GIN's pending list, which each add_many
        # merges into the index before it commits (_merge_words), in one sorted pass rather
        # than one flush per 256 kB; searches thus never read a long pending list.
        "CREATE INDEX smtpmock_messages_words ON smtpmock_messages USING gin (words) "
        "WITH (gin_pending_list_limit = 65536)",
        # The free text's own trigram index is no longer read (and cost most of an insert).
        "DROP INDEX IF EXISTS smtpmock_messages_free_text_trgm",
    ),
    # 3: Mailpit's read state and tags, beside each message.
    (
        "ALTER TABLE smtpmock_messages ADD COLUMN read boolean NOT NULL DEFAULT false",
        "ALTER TABLE smtpmock_messages ADD COLUMN tags text[] NOT NULL DEFAULT '{}'",
        "CREATE INDEX smtpmock_messages_unread ON smtpmock_messages (seq) WHERE NOT read",
    ),
    # 4: mailboxes; what every listing asks (the unread count, the tags in use) read from small
    # partial indexes instead of the whole table (a scan: 200 ms at 100k messages). The unread
    # count is the state row's message count minus the read messages, which are few (mail that
    # a test marked read); the tagged messages likewise.
    (
        # Mailboxes (issue 28): created apart from the numbered migrations at first, at every
        # start (so a database of schema 3 may have them already).
        "ALTER TABLE smtpmock_messages ADD COLUMN IF NOT EXISTS mailbox text "
        "NOT NULL DEFAULT 'default'",
        "CREATE INDEX IF NOT EXISTS smtpmock_messages_mailbox ON smtpmock_messages (mailbox, seq)",
        "CREATE INDEX IF NOT EXISTS smtpmock_messages_read ON smtpmock_messages (seq) WHERE read",
        "CREATE INDEX IF NOT EXISTS smtpmock_messages_tagged ON smtpmock_messages (seq) "
        "WHERE cardinality(tags) > 0",
    ),
    # 5: the word ids in a table of their own, beside each message's seq, and those of the
    # subject's words apart. A search for a common word counts its ~100k messages in the
    # word index, then visits each heap page of those rows (PostgreSQL's bitmap scans always
    # do): the messages table holds ~1.3 kB of summary and envelope per row (20k pages at
    # 100k messages), this one ~100 bytes (the ids of the words out of line, never read by a
    # count): 1,300 pages, and a common word counted 4 to 7x faster. A subject word is
    # counted the same way, exactly (no trigram recheck of each subject).
    (
        """CREATE TABLE smtpmock_terms (
            seq bigint PRIMARY KEY REFERENCES smtpmock_messages (seq) ON DELETE CASCADE,
            words integer[] NOT NULL,
            subject_words integer[] NOT NULL DEFAULT '{}'
        )""",
        # Out of line and uncompressed: ids do not compress, and the rows stay narrow.
        "ALTER TABLE smtpmock_terms ALTER COLUMN words SET STORAGE EXTERNAL",
        # The words seen in a subject (a subject needle looks up only those).
        "ALTER TABLE smtpmock_words ADD COLUMN in_subject boolean NOT NULL DEFAULT false",
        "INSERT INTO smtpmock_terms (seq, words) SELECT seq, words FROM smtpmock_messages",
        _index_subjects,
        "SET LOCAL maintenance_work_mem = '256MB'",  # the index of a large store: ~1 min
        "CREATE INDEX smtpmock_terms_words ON smtpmock_terms USING gin (words) "
        "WITH (gin_pending_list_limit = 65536)",
        # ~5 entries a message: inserted in place (no pending list for searches to read).
        "CREATE INDEX smtpmock_terms_subject_words ON smtpmock_terms USING gin (subject_words) "
        "WITH (fastupdate = off)",
        # (A database migrated with messages keeps their old ids on disk until those rows are
        # rewritten: dropping a column does not rewrite the table.)
        "ALTER TABLE smtpmock_messages DROP COLUMN words",
    ),
    # 6: word postings, per block of seqs, as bitmaps (``_postings``): a needle's words ORed
    # at memory speed where GIN reads each (message, word) entry; F, the seqs up to which
    # the postings hold the words (those above stay in smtpmock_terms); the seqs deleted,
    # noted by a trigger whatever deletes them (the postings are never rewritten).
    (
        "ALTER TABLE smtpmock_state ADD COLUMN frozen bigint NOT NULL DEFAULT 0",
        """CREATE TABLE smtpmock_postings (
            word integer NOT NULL,
            block bigint NOT NULL,
            seqs bytea NOT NULL,
            PRIMARY KEY (word, block)
        )""",
        # Compressed bitmaps already: never compressed again.
        "ALTER TABLE smtpmock_postings ALTER COLUMN seqs SET STORAGE EXTERNAL",
        """CREATE TABLE smtpmock_blocks (
            hi bigint PRIMARY KEY,
            lo bigint NOT NULL,
            dead bytea
        )""",
        "CREATE TABLE smtpmock_gone (seq bigint PRIMARY KEY)",
        # SET search_path FROM CURRENT: the store's own schema, whichever session deletes.
        """CREATE FUNCTION smtpmock_note_gone() RETURNS trigger LANGUAGE plpgsql
            SET search_path FROM CURRENT AS $$
        BEGIN
            INSERT INTO smtpmock_gone (seq) SELECT seq FROM removed ON CONFLICT DO NOTHING;
            RETURN NULL;
        END
        $$""",
        "CREATE TRIGGER smtpmock_messages_gone AFTER DELETE ON smtpmock_messages "
        "REFERENCING OLD TABLE AS removed FOR EACH STATEMENT "
        "EXECUTE FUNCTION smtpmock_note_gone()",
    ),
)

# Search terms that are not substring matches (no trigram index serves them; "is" and "tag":
# read state and tags; "mailbox": an exact name, served by the (mailbox, seq) index).
_NOT_TEXT = frozenset({"has", "larger", "smaller", "after", "before", "is", "tag", "mailbox"})

_UNREAD = Term("is", "unread", False)


_MemoKey = tuple[tuple[Term, ...], int, "int | None"]
# PostgresStore._lookup: (field: "" or "subject", needle) -> the ids of its words
_Lookup = dict[tuple[str, str], "list[int] | None"]
# PostgresStore._frozen_words: F, and each free-text needle's messages up to F
_Frozen = tuple[int, dict[str, "BitMap"]]


def _words_only(query: Search | None, words: _Lookup, *, negated: bool = False) -> bool:
    """Whether every term of *query* is a free-text needle of word characters answered by the
    word index alone (*words*: its lookup), none negated (with *negated*: some may be): then
    counts and pages read ``smtpmock_terms`` only (a negated one there would test every
    row's ids; with the postings, one is taken out of the messages' seqs instead)."""
    if not query:
        return False
    return all(
        (field := term.field.lower()) in _WORD_FIELDS
        and (negated or not term.negated)
        and _WORD.fullmatch(needle := _text(term.value.lower())) is not None
        and words.get((field, needle)) is not None
        for term in query.terms
    )


def _has_words(query: Search | None) -> bool:
    """Whether *query* has a term answered through word ids (free text or subject)."""
    return query is not None and any(term.field.lower() in _WORD_FIELDS for term in query.terms)


def _matching(where: str, *, terms: bool, join: str = "") -> str:
    """``FROM`` (then ``WHERE``) the messages matching *where* (seq as ``m.seq``), with *join*.

    Over ``smtpmock_terms`` the matches are found apart (the fence): else the planner may
    walk the table in seq order for a join or an ordered aggregate and test each row's ids,
    which it thinks cheap and which reads them out of TOAST (24 s at 100k messages)."""
    if terms:
        return f"(SELECT m.seq FROM smtpmock_terms m WHERE {where} OFFSET 0) m{join}"
    return f"smtpmock_messages m{join} WHERE {where}"


def _page_seqs(*, newest_first: bool, start: int, end: int | None) -> tuple[str, list[object]]:
    """An aggregate of the matches' ``m.seq``: those at positions *start* to *end* (in any
    order: the page's rows are then read in order). Aggregated in ascending seq order even
    for the newest first, the tail taken: the matches come in the table's order, which is
    seq order where nothing was deleted, and a sorted input is seen so in one pass (sorting
    100k seqs the other way took 11 ms)."""
    last = end if end is not None else 2**31 - 1
    if newest_first:
        return "(array_agg(m.seq ORDER BY m.seq))[count(*) - %s + 1 : count(*) - %s]", [
            last,
            start,
        ]
    return "(array_agg(m.seq ORDER BY m.seq))[%s : %s]", [start + 1, last]


def _memo_key(query: Search | None, after: int, before: int | None) -> _MemoKey | None:
    """What names a count that PostgresStore._count may keep: a query of substring terms
    only (its matches change only when messages are added or removed, not with read state
    or tags) and its seq bounds; ``None`` for any other query."""
    if not query or not all(term.field not in _NOT_TEXT for term in query.terms):
        return None
    return (query.terms, after, before)


# The text columns a search reads (the field names of Search's text terms, mapped to columns).
_TEXT_COLUMNS = {
    "from_text": "from_text",
    "to_text": "to_text",
    "cc_text": "cc_text",
    "bcc_text": "bcc_text",
    "reply_to_text": "reply_to_text",
    "subject": "subject",
    "message_id": "message_id",
    "addressed": "addressed",
    "free": "free_text",
}

# The columns with a trigram index (free text has the word index instead); _substring
# samples their trigrams.
_TRIGRAM_COLUMNS = tuple(column for column in _TEXT_COLUMNS.values() if column != "free_text")
_SAMPLE_ROWS = 2_000


def _summaries(rows: Iterable[Sequence[Any]]) -> list[Summary]:
    """The summaries of rows of ``_SUMMARY_COLUMNS``."""
    return [
        summary_from_record(
            data, seq=int(seq), received_at=float(at), read=bool(read), tags=tuple(tags)
        )
        for seq, at, data, read, tags in rows
    ]


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Settings of every pooled connection. No JIT: its compilation (60-80 ms at each run)
    was paid by the statements whose estimated cost passes ``jit_above_cost``, which the
    ``enable_seqscan = off`` steering makes every one that reads the state row; smtpmock's
    statements are short, so compiling them never pays. No parallel workers either: the
    planner took them for the tags of every listing at 100k messages (it guesses a third of
    the messages tagged), and starting them cost 25 ms where the read takes 0.1; the scans
    they would speed up (a needle in thousands of words) are rare, and the instances sharing
    a database would share its few workers."""
    conn.execute("SET jit = off")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.commit()


def _load_drivers() -> tuple[Any, Any, Any]:
    try:
        import psycopg
        import psycopg_pool

        from . import _postings
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigurationError(
            "a postgresql:// store needs psycopg 3, psycopg_pool and pyroaring: "
            "pip install 'smtpmock[postgres]'"
        ) from exc
    return psycopg, psycopg_pool, _postings


def describe_url(url: str) -> str:
    """*url* without its password, for messages and logs."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:
        return "the PostgreSQL database (unparsable URL)"
    host = str(params.get("host") or "localhost")
    port = f":{params['port']}" if params.get("port") else ""
    user = f"{params['user']}@" if params.get("user") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


def _text(value: str) -> str:
    """*value* as PostgreSQL can store it: no NUL (text cannot hold it) and no lone surrogate
    (not UTF-8). Needles go through the same function, so matching is unchanged."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _json(value: object) -> str:
    return _text(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _channel(schema: str) -> str:
    """The NOTIFY channel of the store in *schema* (stores in other schemas of the same
    database have their own), at most 63 bytes as PostgreSQL wants."""
    name = f"smtpmock_changes.{schema}"
    if len(name.encode()) > 63:
        name = "smtpmock_changes." + hashlib.sha1(schema.encode()).hexdigest()[:20]
    return name


def _words(free_text: str) -> set[str]:
    """The distinct words of a (stored, lower-cased) free text."""
    return set(tokens(free_text))


def _word_ids(
    conn: psycopg.Connection[Any], words: list[str], subject: Iterable[str] = ()
) -> dict[str, int]:
    """The ids of *words* (sorted), added to the vocabulary where new, those in *subject*
    marked as seen in a subject. Callers hold the state row lock (every writer does), so
    concurrent writers never insert the same word at once."""
    if not words:
        return {}
    in_subject = sorted(set(subject))
    # One statement: the words known before it (its snapshot: every earlier writer has
    # committed) and those it adds (which it sees through RETURNING only).
    rows = conn.execute(
        "WITH added AS (INSERT INTO smtpmock_words (word, in_subject) "
        "SELECT u.word, u.word = ANY(%b::text[]) FROM unnest(%b::text[]) AS u(word) "
        "ON CONFLICT ((md5(word))) DO NOTHING RETURNING word, id), "
        "flagged AS (UPDATE smtpmock_words SET in_subject = true "
        "WHERE md5(word) = ANY(SELECT md5(unnest(%b::text[]))) AND NOT in_subject) "
        "SELECT w.word, w.id FROM unnest(%b::text[]) AS u(word) "
        "JOIN smtpmock_words w ON md5(w.word) = md5(u.word) "
        "UNION ALL SELECT word, id FROM added",
        (in_subject, words, in_subject, words),
    ).fetchall()
    return {str(word): int(id) for word, id in rows}


def _id_array(words: Iterable[str], ids: dict[str, int]) -> str:
    return "{" + ",".join(map(str, map(ids.__getitem__, words))) + "}"


def _state_sql(kind: str, value: str) -> tuple[str, list[object]]:
    """SQL for a read-state or tag search term (tags are ASCII, so lower() is casefold())."""
    if kind == "read":
        return "m.read", []
    if kind == "unread":
        return "NOT m.read", []
    if kind == "tagged":
        return "cardinality(m.tags) > 0", []
    return "EXISTS (SELECT 1 FROM unnest(m.tags) AS t(name) WHERE lower(t.name) = lower(?))", [
        value
    ]


def _pg_array_item(tag: str) -> str:
    """*tag* as an element of a PostgreSQL array literal (tags hold letters, digits, ``-_.``
    and spaces, so quoting is enough)."""
    return '"' + tag.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Row:
    """One message as its columns (computed before the transaction)."""

    __slots__ = ("message", "subject_words", "values", "words")

    def __init__(self, message: Message) -> None:
        self.message = message
        fields = index_fields(message)
        envelope = envelope_record(message)
        envelope.pop("seq", None)  # the column is the truth
        if message.transcript is not None:
            # Like the SQLite store: the session as far as it concerns this message, so that
            # any instance can show it (the live transcripts stay in the receiving process).
            envelope["transcript"] = message.transcript.excerpt(compact=True)
        summary = summary_record(Summary.of(message, fields))
        free_text = _text(fields.free_text)
        self.words = _words(free_text)
        self.subject_words = _words(_text(fields.subject))
        self.values: tuple[object, ...] = (
            message.id,
            fields.received_at,
            message.size,
            _json(envelope),
            _json(summary),
            _text(fields.from_text),
            _text(fields.to_text),
            _text(fields.cc_text),
            _text(fields.bcc_text),
            _text(fields.reply_to_text),
            _text(fields.subject),
            _text(fields.message_id),
            free_text,
            fields.attachments,
            fields.inline,
            message.mailbox,
        )


# The messages, their word ids and their bytes: one statement (seqs assigned in the order
# given; the other tables take them through RETURNING).
_INSERT = """
WITH m AS (
    INSERT INTO smtpmock_messages (id, received_at, size, envelope, summary, from_text,
        to_text, cc_text, bcc_text, reply_to_text, subject, message_id, free_text,
        attachments, inline, mailbox)
    SELECT id, received_at, size, envelope::json, summary::json, from_text, to_text,
        cc_text, bcc_text, reply_to_text, subject, message_id, free_text, attachments,
        inline, mailbox
    FROM unnest(%b::text[], %b::float8[], %b::bigint[], %b::text[], %b::text[], %b::text[],
        %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
        %b::int[], %b::int[], %b::text[]) WITH ORDINALITY AS u(id, received_at, size,
        envelope, summary, from_text, to_text, cc_text, bcc_text, reply_to_text, subject,
        message_id, free_text, attachments, inline, mailbox, ord)
    ORDER BY ord
    RETURNING seq, id
), u AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bytea[])
        AS u(id, words, subject, data)
), t AS (
    INSERT INTO smtpmock_terms (seq, words, subject_words)
    SELECT m.seq, u.words::int[], u.subject::int[] FROM m JOIN u ON u.id = m.id
), r AS (
    INSERT INTO smtpmock_raw (seq, data) SELECT m.seq, u.data FROM m JOIN u ON u.id = m.id
)
SELECT seq, id FROM m
"""

_WORD_FIELDS = frozenset({"", "subject"})  # search fields with word ids (free text, subject)
_MANY_WORDS = 1_000  # a needle in more words is matched on the texts (PostgresStore._lookup)
_OVERLAP_SCANS = 128  # index scans at most for one needle's words (_overlap)


def _overlap(
    ids: list[int], *, terms: bool, column: str = "words", above: int = 0
) -> tuple[str, list[object]]:
    """The messages holding one of the words *ids* (in *column* of ``smtpmock_terms``: the
    free text's ``words`` or the ``subject_words``): over the messages, or over
    ``smtpmock_terms`` (as ``m``) when a query has only words (:func:`_words_only`).

    One ``words && ids`` costs GIN time in proportion to the ids times the messages found
    (it takes the least of all the ids' lists at each step): 110 ms for the 125 words that
    hold ``jorlo`` (99.8k messages at 100k). One scan per id (or per group of ids, up to
    ``_OVERLAP_SCANS`` scans), each reading its lists once into a bitmap, PostgreSQL then
    ORing the bitmaps: 60 ms.

    *above*: only the messages above this seq (those at or below are in the postings, see
    ``_postings``); over ``smtpmock_terms`` the caller bounds the seqs itself."""
    size = max(1, -(-len(ids) // _OVERLAP_SCANS))
    groups: list[object] = [ids[i : i + size] for i in range(0, len(ids), size)] or [[]]
    held = f"m.{column}" if terms else f"t.{column}"
    sql = " OR ".join([f"{held} && ?::int[]"] * len(groups))
    if len(groups) > 1:
        sql = f"({sql})"
    if not terms:
        # The matches found once, through the index, then joined (a hash join, negated or
        # not): the fence keeps the planner from testing each message's ids instead, which
        # it thinks cheap and which reads them out of TOAST: 60 us a message, 6 s at 100k.
        # (seq + 0: not through the primary key, which would read each message's ids out
        # of TOAST; the word index finds the few messages above F.)
        bound = f"t.seq + 0 > {int(above)} AND " if above else ""
        sql = (
            f"EXISTS (SELECT 1 FROM (SELECT t.seq FROM smtpmock_terms t WHERE {bound}{sql} "
            "OFFSET 0) w WHERE w.seq = m.seq)"
        )
    return sql, groups


_MESSAGE_COLUMNS = "m.seq, m.envelope, r.data, m.read, m.tags"
_SUMMARY_COLUMNS = "m.seq, m.received_at, m.summary, m.read, m.tags"
_FROM_MESSAGES = "smtpmock_messages m JOIN smtpmock_raw r ON r.seq = m.seq"


class PostgresStore(Store):
    """Messages in a PostgreSQL database, shared by every instance that opens the same one.

    *url*: a libpq URL or connection string (``postgresql://user:password@host:5432/db``).
    *pool_size*: connections kept for this instance's reads and writes (plus one for
    ``LISTEN``). *timeout*: how long a read or write waits for a connection before raising
    :class:`~smtpmock.StorageUnavailable`. *reconnect_timeout*: the longest round of the
    pool's reconnection attempts (exponential backoff from 1 s) before it starts over.
    """

    group_commit = True

    def __init__(
        self,
        url: str,
        retention: Retention | None = None,
        *,
        pool_size: int = 8,
        timeout: float = 5.0,
        reconnect_timeout: float = 5.0,
    ) -> None:
        super().__init__(retention)
        pg, pool, postings = _load_drivers()
        self._postings = postings
        self._block: int = postings.BLOCK
        self._fanout: int = postings.FANOUT
        self.url = url
        self.description = describe_url(url)
        self._psycopg = pg
        self._timeout = timeout
        self._origin = uuid.uuid4().hex[:16]
        self._closing = threading.Event()
        self._recent_local: collections.deque[int] = collections.deque(maxlen=_RECENT_LOCAL)
        self._recent_set: set[int] = set()
        self._feed_seq = 0  # the highest seq the change feed has accounted for
        self._pending: list[Any] = []  # notifications read, not yet handled (feed thread)
        self._merge_allowed = True
        # The last count of a substring query: (its _MemoKey: terms and seq bounds, (message
        # count, generation) when counted, the count). See _count.
        self._counted: tuple[_MemoKey | None, tuple[int, int], int] = (None, (-1, -1), 0)
        # The trigram sample of _substring, and the highest seq when it was taken.
        self._shares: tuple[TrigramShares | None, int] = (None, 0)
        self.trigram = False
        """Whether ``pg_trgm`` indexes serve substring search (else: scans)."""
        try:
            conninfo = pg.conninfo.make_conninfo(url)
        except pg.ProgrammingError as exc:
            raise ConfigurationError(f"not a PostgreSQL URL: {self.description}: {exc}") from exc
        self._conninfo = conninfo
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = pool.ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            check=pool.ConnectionPool.check_connection,
            timeout=timeout,
            reconnect_timeout=reconnect_timeout,
            name="smtpmock",
            kwargs={"connect_timeout": max(2, int(timeout))},
            configure=_configure,
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except pool.PoolTimeout as exc:
            self._pool.close()
            raise StorageUnavailable(
                f"cannot connect to {self.description} within {timeout:g}s"
            ) from exc
        try:
            self._migrate()
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT generation, (SELECT coalesce(max(seq), 0) FROM smtpmock_messages),"
                    " current_schema(), coalesce((SELECT pg_has_role(current_user, relowner, "
                    "'USAGE') FROM pg_class WHERE oid = to_regclass('smtpmock_terms_words')), "
                    "false), frozen FROM smtpmock_state"
                ).fetchone()
            assert row is not None
            self.generation, self._last_seq = int(row[0]), int(row[1])
            self._frozen_seen = int(row[4])  # F, as this instance last saw it
            # gin_clean_pending_list is the index owner's (or a member's) only.
            self._merge_allowed = bool(row[3])
            if not self._merge_allowed:
                self._not_merging()
            self._channel = _channel(str(row[2]))
            self._feed_seq = self._last_seq
        except BaseException:
            self._pool.close()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._listening = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, name="smtpmock-postgres-listen", daemon=True
        )
        self._listener.start()
        # The word postings' writer (_postings): asked by adds that fill a block, and at
        # start (a migrated store, or a round an earlier process did not finish).
        self._merge_wake = threading.Event()
        self._merge_wake.set()
        self._merge_conn: psycopg.Connection[Any] | None = None
        self._emptied_last = False
        self._merger = threading.Thread(
            target=self._merge_loop, name="smtpmock-postgres-merge", daemon=True
        )
        self._merger.start()

    # --------------------------------------------------------------------- connections

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; database failures become smtpmock's storage errors."""
        psycopg = self._psycopg
        import psycopg_pool

        try:
            with self._pool.connection(timeout=self._timeout) as conn:
                yield conn
        except psycopg_pool.PoolTimeout as exc:
            raise StorageUnavailable(
                f"{self.description} unreachable (no connection within {self._timeout:g}s)"
            ) from exc
        except psycopg.errors.DiskFull as exc:
            raise StorageFull(f"{self.description}: {exc}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StorageUnavailable(f"{self.description}: {exc}".strip()) from exc

    def wait_listening(self, timeout: float | None = None) -> bool:
        """Block until the change feed is connected (for tests and tools that must not miss
        the first remote change); ``False`` on timeout."""
        return self._listening.wait(timeout)

    # --------------------------------------------------------------------- schema

    def _up_to_date(self) -> bool:
        """Whether the schema is this smtpmock's and every trigram index is there, read from
        the catalog: the usual start, which then runs no DDL. (Even ``CREATE INDEX IF NOT
        EXISTS`` locks the table first, in a mode that waits for every writer: an instance
        starting beside one under load stalled its writes, or deadlocked one of them.)"""
        trigram_indexes = [
            "smtpmock_words_trgm",
            *(f"smtpmock_messages_{column}_trgm" for column in _TRIGRAM_COLUMNS),
        ]
        with self._connection() as conn:
            row = conn.execute(
                "SELECT to_regclass('smtpmock_schema') IS NOT NULL, "
                "(SELECT count(*) FROM unnest(%s::text[]) AS i(name) "
                "WHERE to_regclass(i.name) IS NOT NULL)",
                (trigram_indexes,),
            ).fetchone()
            if row is None or not row[0] or int(row[1]) != len(trigram_indexes):
                return False
            version = conn.execute("SELECT max(version) FROM smtpmock_schema").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            return False
        self.trigram = True
        return True

    def _migrate(self) -> None:
        if self._up_to_date():
            return
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute("CREATE TABLE IF NOT EXISTS smtpmock_schema (version integer NOT NULL)")
            row = conn.execute("SELECT coalesce(max(version), 0) FROM smtpmock_schema").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.description} holds smtpmock schema {version}, newer than this "
                    f"smtpmock's {SCHEMA_VERSION}: upgrade smtpmock"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[number - 1]:
                    if isinstance(statement, str):
                        conn.execute(statement)
                    else:
                        statement(conn)
                conn.execute("INSERT INTO smtpmock_schema (version) VALUES (%s)", (number,))
            self.trigram = self._trigram_indexes(conn)

    def _trigram_indexes(self, conn: psycopg.Connection[Any]) -> bool:
        """Create ``pg_trgm`` and its GIN indexes (if missing); ``False`` if it cannot be."""
        psycopg = self._psycopg
        try:
            with conn.transaction():  # a savepoint: a refusal leaves the migration intact
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                conn.execute(
                    "CREATE INDEX IF NOT EXISTS smtpmock_words_trgm "
                    "ON smtpmock_words USING gin (word gin_trgm_ops)"
                )
                for column in _TRIGRAM_COLUMNS:
                    conn.execute(
                        f"CREATE INDEX IF NOT EXISTS smtpmock_messages_{column}_trgm "
                        f"ON smtpmock_messages USING gin ({column} gin_trgm_ops) "
                        # Every search reads GIN's list of pending insertions in full: the
                        # default 4 MB of it made a one-match search 8x slower right after a
                        # burst of mail; 256 kB keeps inserts batched and that read short.
                        "WITH (gin_pending_list_limit = 256)"
                    )
        except psycopg.Error as exc:
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                raise
            log.warning(
                "pg_trgm unavailable in %s (%s): substring search falls back to plain "
                "LIKE/ILIKE scans without trigram indexes",
                self.description,
                str(exc).strip(),
            )
            return False
        return True

    # --------------------------------------------------------------------- writes

    def try_add_many(self, messages: Sequence[Message]) -> bool:
        # Every write waits on the network: never on the caller's event loop.
        return False

    def _insert_many(self, messages: Sequence[Message]) -> list[Message]:
        raise NotImplementedError  # add_many is overridden: no lock is held across the I/O

    def add_many(self, messages: Sequence[Message]) -> Sequence[Message]:
        """Store *messages* as one transaction; ``seq`` assigned by the database; retention
        enforced in the same transaction; committed (and announced to the other instances)
        when this returns."""
        if not messages:
            return messages
        rows = [_Row(m) for m in messages]  # parsing happens outside the transaction
        columns = list(zip(*(r.values for r in rows), strict=True))
        added_bytes = sum(m.size for m in messages)
        try:
            with self._connection() as conn, conn.transaction():
                # The state row lock: writers of every instance commit one at a time, so seqs
                # are visible in order.
                state = conn.execute(
                    "UPDATE smtpmock_state SET messages = messages + %s, bytes = bytes + %s "
                    "RETURNING messages, bytes, generation",
                    (len(messages), added_bytes),
                ).fetchone()
                assert state is not None
                ids = _word_ids(
                    conn,
                    sorted(set().union(*(r.words | r.subject_words for r in rows))),
                    subject=set().union(*(r.subject_words for r in rows)),
                )
                words = [_id_array(r.words, ids) for r in rows]
                subjects = [_id_array(r.subject_words, ids) for r in rows]
                cur = conn.execute(
                    _INSERT,
                    [
                        *(list(c) for c in columns),
                        [m.id for m in messages],
                        words,
                        subjects,
                        [m.raw for m in messages],
                    ],
                )
                seqs = {str(id): int(seq) for seq, id in cur.fetchall()}
                ordered = [seqs[m.id] for m in messages]
                self._merge_words(conn)
                evicted, generation = self._enforce(conn, int(state[0]), int(state[1]))
                if generation is None:
                    generation = int(state[2])
                notes: list[dict[str, Any]] = [
                    {"k": "added", "s": [ordered[0], ordered[-1]], "g": generation}
                ]
                if evicted:
                    notes[:0] = self._deleted_notes([m.id for m in evicted], generation)
                self._notify(conn, notes)
        except BaseException:
            for message in messages:
                message.seq = 0
            raise
        for message, seq in zip(messages, ordered, strict=True):
            message.seq = seq
        if ordered[-1] - self._frozen_seen >= self._block:
            self._merge_wake.set()
        with self.changed:
            self._last_seq = max(self._last_seq, ordered[-1])
            self._remember_local(ordered)
            self.generation = max(self.generation, generation)
            self.changed.notify_all()
        if self._listeners:
            if evicted:
                self._emit(StoreEvent("deleted", tuple(evicted), tuple(m.id for m in evicted)))
            for message in messages:
                self._emit(StoreEvent("added", (message,)))
        self._enforce_mailbox_retention(messages)
        return messages

    def _merge_words(self, conn: psycopg.Connection[Any]) -> None:
        """Merge the word index's pending list (this transaction's entries) into the index.
        Only the index's owner may: other roles leave it to autovacuum (still exact)."""
        if not self._merge_allowed:
            return
        try:
            conn.execute("SELECT gin_clean_pending_list('smtpmock_terms_words')")
        except self._psycopg.errors.InsufficientPrivilege as exc:
            # The ownership checked at start changed since: this add fails (the transaction
            # is aborted; the SMTP side answers 451, the sender retries), the next ones skip.
            self._merge_allowed = False
            self._not_merging()
            raise StorageUnavailable(f"{self.description}: {exc}".strip()) from exc

    def _not_merging(self) -> None:
        log.warning(
            "%s: not the owner of smtpmock_terms_words, so GIN's pending list is left to "
            "autovacuum (searches may be slower after bursts of mail)",
            self.description,
        )

    def _enforce(
        self, conn: psycopg.Connection[Any], count: int, total: int
    ) -> tuple[list[Message], int | None]:
        """Evict the oldest messages beyond the retention limits (in the add transaction,
        under the state row lock); return them (read as they are deleted, for the ``deleted``
        event) and the new generation (``None``: no eviction)."""
        r = self.retention
        if r.unbounded:
            return [], None
        # The messages are read by the statement that deletes them: the raw bytes are still
        # visible to it (the cascade to smtpmock_raw runs at the end of the statement).
        data = "r.data" if self._listeners else "''::bytea"
        evict = (
            "WITH gone AS (DELETE FROM smtpmock_messages WHERE {} RETURNING seq, envelope, size)"
            f" SELECT g.seq, g.envelope, {data}, g.size FROM gone g "
            "LEFT JOIN smtpmock_raw r ON r.seq = g.seq ORDER BY g.seq"
        )
        evicted: list[Message] = []
        freed = [0]  # bytes

        def delete(condition: str, params: tuple[object, ...]) -> tuple[int, int]:
            rows = conn.execute(evict.format(condition), params).fetchall()
            evicted.extend(self._message(seq, env, raw or b"") for seq, env, raw, _ in rows)
            size = sum(int(row[3]) for row in rows)
            freed[0] += size
            return len(rows), size

        cutoff = self._expired_before()
        if cutoff is not None:
            gone, size = delete("received_at < %s", (cutoff,))
            count, total = count - gone, total - size
        if r.max_messages is not None and count > r.max_messages:
            gone, size = delete(
                "seq IN (SELECT seq FROM smtpmock_messages ORDER BY seq LIMIT %s)",
                (count - r.max_messages,),
            )
            count, total = count - gone, total - size
        if r.max_bytes is not None and total > r.max_bytes:
            doomed: list[int] = []
            after = 0
            excess = total - r.max_bytes
            while excess > 0:
                batch = conn.execute(
                    "SELECT seq, size FROM smtpmock_messages WHERE seq > %s ORDER BY seq LIMIT 500",
                    (after,),
                ).fetchall()
                if not batch:
                    break
                for seq, size in batch:
                    if excess <= 0:
                        break
                    doomed.append(int(seq))
                    excess -= int(size)
                after = int(batch[-1][0])
            delete("seq = ANY(%s)", (doomed,))
        if not evicted:
            return [], None
        row = conn.execute(
            "UPDATE smtpmock_state SET messages = messages - %s, bytes = bytes - %s, "
            "generation = generation + 1 RETURNING generation",
            (len(evicted), freed[0]),
        ).fetchone()
        assert row is not None
        return evicted, int(row[0])

    def _remove(self, ids: Iterable[str]) -> list[str]:
        raise NotImplementedError  # delete() is overridden

    def _remove_all(self) -> int:
        raise NotImplementedError  # clear() is overridden

    def delete(self, ids: Iterable[str], *, mailbox: str | None = None) -> int:
        """Delete the messages with these ids (every instance sees it); return how many
        existed."""
        wanted = [str(i) for i in ids]
        if not wanted:
            return 0
        return self._delete_where("m.id = ANY(%s)", [wanted], mailbox)

    def delete_matching(self, query: Search) -> int:
        """Delete the messages matching *query* in one statement; return how many there were."""
        return self._delete_where(None, [], query=query)

    def _delete_where(
        self,
        where: str | None,
        params: list[object],
        mailbox: str | None = None,
        *,
        query: Search | None = None,
    ) -> int:
        """Delete the messages matching *where* (``None``: *query*'s condition, made under
        the lock: F cannot move while it is held)."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT 1 FROM smtpmock_state FOR UPDATE")  # the writers' lock first
            if where is None:
                words = self._lookup(query, conn)
                where, params = self._where(
                    query, words=words, frozen=self._frozen_words(conn, words)
                )
            self._plan(conn, query)
            rows = conn.execute(
                f"DELETE FROM smtpmock_messages m WHERE {where} RETURNING m.id, m.size",
                params,
            ).fetchall()
            if not rows:
                return 0
            removed = [str(i) for i, _ in rows]
            state = conn.execute(
                "UPDATE smtpmock_state SET messages = messages - %s, bytes = bytes - %s, "
                "generation = generation + 1 RETURNING generation",
                (len(rows), sum(int(s) for _, s in rows)),
            ).fetchone()
            assert state is not None
            generation = int(state[0])
            self._notify(conn, self._deleted_notes(removed, generation))
        with self.changed:
            self.generation = max(self.generation, generation)
            self.changed.notify_all()
        self._emit(StoreEvent("deleted", ids=tuple(removed), mailbox=mailbox))
        return len(removed)

    def clear(self) -> int:
        """Delete every message (every instance sees it); return how many there were."""
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT 1 FROM smtpmock_state FOR UPDATE")
            conn.execute("DELETE FROM smtpmock_raw")
            conn.execute("DELETE FROM smtpmock_terms")
            cur = conn.execute("DELETE FROM smtpmock_messages")
            count = max(cur.rowcount, 0)
            # The postings too: nothing up to F is left. (The gone seqs stay, to be folded by
            # the next merge round: a block written, or blocks merged, meanwhile from what was
            # read before this holds cleared messages, which they take out.)
            # (Blocks first, as a merge round locks them: no deadlock with one.)
            conn.execute("DELETE FROM smtpmock_blocks")
            conn.execute("DELETE FROM smtpmock_postings")
            state = conn.execute(
                "UPDATE smtpmock_state SET messages = 0, bytes = 0, "
                "generation = generation + 1 RETURNING generation"
            ).fetchone()
            assert state is not None
            generation = int(state[0])
            self._notify(conn, [{"k": "cleared", "g": generation}])
        self._merge_wake.set()  # fold the gone seqs soon: every search reads them until then
        with self.changed:
            self.generation = max(self.generation, generation)
            self.changed.notify_all()
        self._emit(StoreEvent("cleared"))
        return count

    # --------------------------------------------------------------------- word postings

    def _merge_loop(self) -> None:
        """Write the word postings of every full block (``_postings``), in the background: a
        round when an add has filled a block, and every minute (for the gone seqs)."""
        delay = _MERGE_BACKOFF[0]
        while not self._closing.is_set():
            self._merge_wake.wait(_MERGE_INTERVAL)
            if self._closing.is_set():
                return
            self._merge_wake.clear()
            try:
                self._merge()
            except Exception as exc:  # the database lost, a statement cancelled: retried
                if self._closing.is_set():
                    return
                log.warning(
                    "%s: writing word postings failed (%s); retrying in %gs",
                    self.description,
                    str(exc).strip() or exc.__class__.__name__,
                    delay,
                )
                self._closing.wait(delay)
                delay = min(delay * 2, _MERGE_BACKOFF[1])
                self._merge_wake.set()
            else:
                delay = _MERGE_BACKOFF[0]

    def _merge(self, *, wait: bool = False) -> None:
        """One round, on a connection of its own, if no other instance is having one (with
        *wait*: after it): the full blocks above F written, their terms rows emptied (then
        VACUUM, so that the word index forgets them), the gone seqs folded
        (:func:`_postings.compact`)."""
        postings = self._postings
        with self._psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=max(2, int(self._timeout))
        ) as conn:
            _configure(conn)
            self._merge_conn = conn
            try:
                take = "pg_advisory_lock(%s), true" if wait else "pg_try_advisory_lock(%s)"
                locked = conn.execute(f"SELECT {take}", (_MERGE_KEY,)).fetchone()
                if not locked or not locked[-1]:
                    return
                wrote = False
                try:
                    last = conn.execute(
                        "SELECT lo, hi FROM smtpmock_blocks ORDER BY hi DESC LIMIT 1"
                    ).fetchone()
                    if last is not None and not self._emptied_last:
                        # A round cut short between writing a block and emptying its rows.
                        postings.empty_terms(conn, int(last[0]), int(last[1]))
                    self._emptied_last = True
                    while not self._closing.is_set():
                        row = conn.execute(
                            "SELECT frozen, (SELECT coalesce(max(seq), 0) FROM "
                            "smtpmock_messages) FROM smtpmock_state"
                        ).fetchone()
                        assert row is not None
                        lo, latest = int(row[0]), int(row[1])
                        self._frozen_seen = lo
                        hi = lo + self._block
                        # Every seq up to the highest committed one is final (commit order).
                        if latest < hi or hi > postings.MAX_SEQ:
                            break
                        block = postings.build(conn, lo, hi)
                        if self._closing.is_set() or not postings.freeze(conn, lo, hi, block):
                            continue
                        postings.empty_terms(conn, lo, hi)
                        self._frozen_seen = hi
                        wrote = True
                    gone = conn.execute("SELECT EXISTS (SELECT 1 FROM smtpmock_gone)").fetchone()
                    if gone and gone[0]:
                        postings.compact(conn)
                    while not self._closing.is_set() and postings.merge_blocks(conn, self._fanout):
                        wrote = True
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (_MERGE_KEY,))
                if wrote:
                    postings.release_memory()
                if wrote and self._merge_allowed and not self._closing.is_set():
                    conn.execute("VACUUM (ANALYZE) smtpmock_terms")
            finally:
                self._merge_conn = None

    # --------------------------------------------------------------------- read state, tags

    def _state_change(self, change: Callable[[], list[str]]) -> int:
        # The change is one transaction of its own (no lock held over the network); its
        # NOTIFY tells the other instances, which publish an ``updated`` event too.
        ids = change()
        if ids:
            with self.changed:
                self.changed.notify_all()
            named = tuple(ids) if len(ids) <= UPDATED_IDS_MAX else ()
            self._emit(StoreEvent("updated", ids=named))
        return len(ids)

    def _updated_notes(self, conn: psycopg.Connection[Any], ids: list[str]) -> None:
        notes = self._deleted_notes(ids if len(ids) <= UPDATED_IDS_MAX else [], 0)
        for note in notes:
            note["k"] = "updated"
            note.pop("g", None)
        self._notify(conn, notes)

    def _set_read(self, ids: list[str] | None, read: bool) -> list[str]:
        with self._connection() as conn, conn.transaction():
            if ids is None:
                rows = conn.execute(
                    "UPDATE smtpmock_messages SET read = %s WHERE read <> %s RETURNING id",
                    (read, read),
                ).fetchall()
            else:
                rows = conn.execute(
                    "UPDATE smtpmock_messages SET read = %s "
                    "WHERE id = ANY(%s) AND read <> %s RETURNING id",
                    (read, ids, read),
                ).fetchall()
            changed = [str(r[0]) for r in rows]
            if changed:
                self._updated_notes(conn, changed)
        return changed

    def _tags_of(
        self, *, ids: list[str] | None = None, tag: str | None = None
    ) -> dict[str, tuple[str, ...]]:
        with self._connection() as conn:
            if ids is None:
                rows = conn.execute(
                    "SELECT id, tags FROM smtpmock_messages m WHERE EXISTS (SELECT 1 FROM "
                    "unnest(m.tags) AS t(name) WHERE lower(t.name) = lower(%s))",
                    (tag or "",),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id, tags FROM smtpmock_messages WHERE id = ANY(%s)", (ids,)
                ).fetchall()
        return {str(id): tuple(tags) for id, tags in rows}

    def _write_tags(self, changes: dict[str, tuple[str, ...]]) -> None:
        with self._connection() as conn, conn.transaction():
            conn.execute(
                "UPDATE smtpmock_messages m SET tags = u.tags::text[] FROM "
                "unnest(%s::text[], %s::text[]) AS u(id, tags) WHERE m.id = u.id",
                (
                    list(changes),
                    [
                        "{" + ",".join(_pg_array_item(t) for t in tags) + "}"
                        for tags in changes.values()
                    ],
                ),
            )
            self._updated_notes(conn, list(changes))

    # The planner guesses that a third of the messages are tagged (it has no statistics for
    # cardinality(tags)) and half are read, and would scan the table for both: the partial
    # indexes (schema 4) hold only the tagged and the read messages, which are few.

    def tags(self) -> list[str]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SET LOCAL enable_seqscan = off")
            rows = conn.execute(
                "SELECT DISTINCT unnest(tags) FROM smtpmock_messages WHERE cardinality(tags) > 0"
            ).fetchall()
        return sorted(str(r[0]) for r in rows)

    def unread_count(self) -> int:
        # One statement, one snapshot: the state row's count is updated in the transactions
        # that add and delete messages.
        with self._connection() as conn, conn.transaction():
            conn.execute("SET LOCAL enable_seqscan = off")
            row = conn.execute(
                "SELECT messages - (SELECT count(*) FROM smtpmock_messages WHERE read) "
                "FROM smtpmock_state"
            ).fetchone()
        return int(row[0]) if row else 0

    def _deleted_notes(self, ids: list[str], generation: int) -> list[dict[str, Any]]:
        """``deleted`` notifications for *ids*, as many as the payload limit needs."""
        notes: list[dict[str, Any]] = []
        chunk: list[str] = []
        size = 0
        for id in ids:
            if chunk and size + len(id) + 3 > _MAX_PAYLOAD - 100:
                notes.append({"k": "deleted", "i": chunk, "g": generation})
                chunk, size = [], 0
            chunk.append(id)
            size += len(id) + 3
        notes.append({"k": "deleted", "i": chunk, "g": generation})
        return notes

    def _notify(self, conn: psycopg.Connection[Any], notes: list[dict[str, Any]]) -> None:
        for note in notes:
            note["o"] = self._origin
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, _json(note)))

    def _remember_local(self, seqs: list[int]) -> None:
        for seq in seqs:
            if len(self._recent_local) == self._recent_local.maxlen:
                self._recent_set.discard(self._recent_local[0])
            self._recent_local.append(seq)
            self._recent_set.add(seq)

    # --------------------------------------------------------------------- reads

    def _where(
        self,
        query: Search | None,
        *,
        after: int = 0,
        before: int | None = None,
        terms: bool = False,
        words: _Lookup | None = None,
        frozen: _Frozen | None = None,
    ) -> tuple[str, list[object]]:
        """A condition over ``smtpmock_messages m`` (and its parameters) for *query* and the
        seq bounds; with *terms*, over ``smtpmock_terms m`` (a query of words only, while the
        postings hold no message). *words*: the query's :meth:`_lookup`, when the caller has
        made it; *frozen*: its :meth:`_frozen_words` (read in the same snapshot as the
        condition is), when there are postings."""
        if words is None:
            words = self._lookup(query)
        upto, held = frozen if frozen is not None and not terms else (0, {})
        clauses: list[str] = []
        params: list[object] = []
        if after:
            clauses.append("m.seq > %s")
            params.append(after)
        if before is not None:
            clauses.append("m.seq <= %s")
            params.append(before)
        if query:

            def word_sql(key: str, ids: list[int]) -> tuple[str, list[object]]:
                """The messages holding one of the words *ids* of needle *key*: those up to F
                from the postings (their seqs as an array), the others through the index."""
                if not upto:
                    return _overlap(ids, terms=terms)
                tail, tail_params = _overlap(ids, terms=False, above=upto)
                # The seqs as one string of numbers: psycopg's dump of a list of ints took
                # 30 MB of memory for 100k of them (the resident size kept it).
                seqs = ",".join(map(str, held[key]))
                return f"(m.seq IN (SELECT unnest(string_to_array(?, ',')::bigint[])) OR {tail})", [
                    seqs,
                    *tail_params,
                ]

            def text_sql(field: str, needle: str) -> tuple[str, list[object]]:
                needle = _text(needle)
                if field == "subject" and _WORD.fullmatch(needle):
                    ids = words.get(("subject", needle))
                    if ids is not None:  # exact: the needle lies inside one subject word
                        return _overlap(ids, terms=terms, column="subject_words")
                if field != "free":
                    return self._substring(_TEXT_COLUMNS[field], needle)
                like = f"m.{_TEXT_COLUMNS[field]} LIKE ?"
                if _WORD.fullmatch(needle):
                    # Inside one word: the messages holding a word that contains it (exact).
                    ids = words[("", needle)]
                    if ids is None:
                        return "strpos(m.free_text, ?) > 0", [needle]
                    return word_sql(needle, ids)
                parts = tokens(needle)
                longest = max(parts, key=len) if parts else ""
                ids = words.get(("", longest)) if parts else None
                if ids is None:
                    return like, [_like(needle)]
                # Across words: its longest word part lies inside one word of every match
                # (narrows through the word index); the text itself decides.
                sql, ids_params = word_sql(longest, ids)
                return f"{sql} AND {like}", [*ids_params, _like(needle)]

            sql, query_params = query.sql(text_sql, _state_sql)
            # Search.sql writes "?" placeholders and bare column names (unambiguous here: the
            # raw table, when joined, has only seq and data).
            clauses.append(sql.replace("?", "%s"))
            params.extend(query_params)
        return (" AND ".join(clauses) or "true"), params

    def _conditions(
        self,
        conn: psycopg.Connection[Any],
        query: Search | None,
        *,
        after: int = 0,
        before: int | None = None,
    ) -> tuple[str, list[object], bool, BitMap | None]:
        """:meth:`_where` for *query*, its words looked up on *conn*: over ``smtpmock_terms``
        when the query has only words (the third value says so), else over the messages.

        When the postings hold messages (``_postings``) and the query's terms are all needles
        inside words (negated or not), the fourth value is its matches, found as bitmaps
        (:meth:`_word_matches`), and the condition is not to be used. (Else it is ``None``.)"""
        words = self._lookup(query, conn)
        terms = _words_only(query, words)
        frozen = self._frozen_words(conn, words)
        if frozen[0] and _words_only(query, words, negated=True):
            assert query is not None
            every = self._word_matches(conn, query, words, frozen, after=after, before=before)
            return "false", [], True, every
        where, params = self._where(
            query, after=after, before=before, terms=terms, words=words, frozen=frozen
        )
        return where, params, terms, None

    def _frozen_words(self, conn: psycopg.Connection[Any], words: _Lookup) -> _Frozen:
        """F, and for each free-text needle looked up in *words* the messages up to F holding
        one of its words (from the postings, the gone ones taken out), read on *conn*: ``(0,
        {})`` when no message is in the postings or no needle has words."""
        needles = [needle for (field, needle), ids in words.items() if not field and ids]
        if not needles:
            return 0, {}
        postings = self._postings
        upto, gone = postings.removed(conn)
        if not upto:
            return 0, {}
        held: dict[str, BitMap] = {}
        for needle in needles:
            ids = words[("", needle)]
            assert ids is not None
            found = postings.held(conn, ids)
            found -= gone
            held[needle] = found
        for (field, needle), ids in words.items():
            if not field and ids == []:  # a needle in no word: nothing up to F either
                held[needle] = postings.BitMap()
        return upto, held

    def _word_matches(
        self,
        conn: psycopg.Connection[Any],
        query: Search,
        words: _Lookup,
        frozen: _Frozen,
        *,
        after: int,
        before: int | None,
    ) -> BitMap:
        """Every match of *query*, whose terms are all needles inside words, some negated:
        each needle's messages as a bitmap (free text: the postings and the word index above
        F; subject: the subject index), ANDed, the negated ones taken out (of every message
        in the seq bounds, the primary key's seqs, when all are negated). A negated needle
        through SQL tests each message's row: 200 ms for a common one at 100k messages."""
        upto, held = frozen
        postings = self._postings
        found: BitMap | None = None
        if all(term.negated for term in query.terms):  # taken out of every message
            bounds, bound_params = "m.seq > %s", [after]
            if before is not None:
                bounds += " AND m.seq <= %s"
                bound_params.append(before)
            rows = conn.execute(
                f"SELECT m.seq FROM smtpmock_messages m WHERE {bounds}", bound_params
            ).fetchall()
            found = postings.BitMap(int(row[0]) for row in rows)
        # The needles' own first, then those negated (out of what they found).
        for term in sorted(query.terms, key=lambda term: term.negated):
            needle = _text(term.value.lower())
            if term.field.lower():  # subject: its index covers every message
                ids = words[("subject", needle)]
                above, mine = 0, postings.BitMap()
                column = "subject_words"
            else:
                ids = words[("", needle)]
                above, mine = upto, held[needle]
                column = "words"
            assert ids is not None
            sql, params = _overlap(ids, terms=True, column=column)
            sql = sql.replace("?", "%s")
            rows = conn.execute(
                f"SELECT m.seq FROM smtpmock_terms m WHERE m.seq + 0 > %s AND {sql}",
                [above, *params],
            ).fetchall()
            mine = mine | postings.BitMap(int(row[0]) for row in rows)
            if found is None:
                found = mine
                found.remove_range(0, after + 1)
                if before is not None:
                    found.remove_range(before + 1, postings.MAX_SEQ + 1)
            elif term.negated:
                found -= mine
            else:
                found &= mine
        assert found is not None
        return found

    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a read-only transaction with one snapshot for all its
        statements (the word lookup, F and the postings, and the statements that use them),
        begun by its BEGIN (no statement of its own)."""
        with self._connection() as conn:
            conn.isolation_level = self._psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            try:
                with conn.transaction():
                    yield conn
            finally:
                # Back to the defaults for the pool's next user (a broken connection is
                # discarded by the pool anyway).
                with contextlib.suppress(self._psycopg.Error):
                    conn.isolation_level = None
                    conn.read_only = None

    def _lookup(self, query: Search | None, conn: psycopg.Connection[Any] | None = None) -> _Lookup:
        """The ids of the words containing each free-text or subject needle of *query* (a
        free-text needle across words: its longest word), from the vocabulary (every word of
        every stored free text; for a subject needle, the words seen in a subject); ``None``
        for a needle in more than
        ``_MANY_WORDS`` words (``zq`` in 100k ``zqref{n}x``), which is matched on the texts:
        GIN spends time in proportion to the ids times the messages found (2 minutes there),
        reading the texts a second or two. *conn*: the caller's connection, if it has one."""
        found: _Lookup = {}
        for term in query.terms if query else ():
            field = term.field.lower()
            if field not in _WORD_FIELDS:
                continue
            needle = _text(term.value.lower())
            if not _WORD.fullmatch(needle):
                if field:  # a subject needle across words: its trigrams
                    continue
                needle = max(tokens(needle), key=len, default="")
            if needle and (field, needle) not in found:
                ids = self._words_containing(needle, conn, subject=bool(field))
                found[(field, needle)] = ids if len(ids) <= _MANY_WORDS else None
        return found

    def _substring(self, column: str, needle: str) -> tuple[str, list[object]]:
        """A condition for *needle* inside *column*: the rarest of its trigrams looked up
        through the column's trigram index, then the needle itself checked (see
        ``_trigrams``); or ``LIKE`` whole, when there is nothing to leave out."""
        found = windows(needle)
        if self.trigram and len(found) >= 2:
            shares = self._trigram_shares()
            picked = rarest({window: shares.share(column, window) for window in found})
            if picked:
                looked_up = " AND ".join([f"m.{column} LIKE ?"] * len(picked))
                return f"({looked_up} AND strpos(m.{column}, ?) > 0)", [
                    *(f"%{window}%" for window in picked),
                    needle,
                ]
        return f"m.{column} LIKE ?", [_like(needle)]

    def _trigram_shares(self) -> TrigramShares:
        """The sample that steers :meth:`_substring`, taken again when the store has grown
        by half since (a few ms: ~2,000 rows of the short columns, from random pages)."""
        shares, sampled_at = self._shares
        if shares is not None and self._last_seq <= sampled_at * 1.5 + _SAMPLE_ROWS:
            return shares
        columns = ", ".join(_TRIGRAM_COLUMNS)
        with self._connection() as conn:
            state = conn.execute("SELECT messages FROM smtpmock_state").fetchone()
            stored = int(state[0]) if state else 0
            if stored <= 2 * _SAMPLE_ROWS:
                sample = f"SELECT {columns} FROM smtpmock_messages ORDER BY seq DESC LIMIT %s"
                params: list[object] = [_SAMPLE_ROWS]
            else:
                sample = (
                    f"SELECT {columns} FROM smtpmock_messages TABLESAMPLE SYSTEM (%s::real) "
                    "LIMIT %s"
                )
                params = [150.0 * _SAMPLE_ROWS / stored, _SAMPLE_ROWS]
            rows = conn.execute(sample, params).fetchall()
        shares = TrigramShares(_TRIGRAM_COLUMNS, rows)
        self._shares = (shares, self._last_seq)
        return shares

    def _messages(self, sql: str, params: Sequence[object] = ()) -> list[Message]:
        with self._connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [self._message(*row) for row in rows]

    @staticmethod
    def _message(
        seq: int,
        envelope: dict[str, Any],
        data: bytes,
        read: bool = False,
        tags: Sequence[str] = (),
    ) -> Message:
        message = message_from_record(bytes(data), envelope)
        message.seq = int(seq)
        message.read = bool(read)
        message.tags = tuple(tags)
        return message

    def _words_containing(
        self, needle: str, conn: psycopg.Connection[Any] | None = None, *, subject: bool = False
    ) -> list[int]:
        """The ids of the vocabulary's words that contain *needle* (with *subject*: of those
        seen in a subject; the others would only add empty index scans: 250 of them for a
        subject word found inside body words, 2 ms of planning). Every word of a message
        committed before this runs is there (words commit with their messages)."""
        if conn is None:
            with self._connection() as own:
                return self._words_containing(needle, own, subject=subject)
        flag = " AND in_subject" if subject else ""
        rows = conn.execute(
            f"SELECT id FROM smtpmock_words WHERE word LIKE %s{flag}", (_like(needle),)
        ).fetchall()
        return [int(row[0]) for row in rows]

    def messages(self) -> list[Message]:
        return self._messages(f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} ORDER BY m.seq")

    def since(self, seq: int) -> list[Message]:
        return self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} WHERE m.seq > %s ORDER BY m.seq",
            (seq,),
        )

    def get(self, id: str) -> Message | None:
        found = self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} WHERE m.id = %s", (id,)
        )
        return found[0] if found else None

    def latest(self) -> Message | None:
        found = self._messages(
            f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} ORDER BY m.seq DESC LIMIT 1"
        )
        return found[0] if found else None

    def _indexed(self, query: Search | None) -> bool:
        """Whether an index serves *query*: a free-text term (the word index, which nothing
        must replace by a scan of ``smtpmock_terms``: it would read every message's ids out
        of TOAST), or a positive substring term of at least three characters (shorter needles
        give pg_trgm no trigram to look up)."""
        if not query:
            return False
        return _has_words(query) or (
            self.trigram
            and any(
                not term.negated and term.field not in _NOT_TEXT and len(term.value) >= 3
                for term in query.terms
            )
        )

    def _plan(
        self, conn: psycopg.Connection[Any], query: Search | None, *, seqscan: bool = False
    ) -> None:
        """Steer the planner to the trigram indexes for *query* (this transaction only).

        Its cost model does not see what a scan costs here (reading each message's text out of
        TOAST, decompressing it and matching it: ~50 us per 10 KiB message), so it prefers a
        scan 10 to 100 times slower than the index, above all before the table's first
        ANALYZE.

        And no nested loop when *query* has words: the messages holding a word are found once,
        behind a fence (:func:`_overlap`), and a nested loop finds them again for each row of
        its other side; misled by an old estimate (one read message where there were 50), the
        planner chose one for ``jorlo is:read``: 50 times 45 ms at 100k messages.

        *seqscan*: no sequential scan whatever the query (the caller reads partial indexes).
        One statement (a round trip is a tenth of a short search)."""
        settings = []
        if seqscan or self._indexed(query):
            settings.append("set_config('enable_seqscan', 'off', true)")
        if _has_words(query):
            settings.append("set_config('enable_nestloop', 'off', true)")
        if settings:
            conn.execute(f"SELECT {', '.join(settings)}")

    def search(
        self, query: Search | None, *, after: int = 0, before: int | None = None
    ) -> list[Message]:
        if not _has_words(query):
            where, params = self._where(query, after=after, before=before)
            with self._connection() as conn, conn.transaction():
                self._plan(conn, query)
                rows = conn.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} WHERE {where} ORDER BY m.seq",
                    params,
                ).fetchall()
            return [self._message(*row) for row in rows]
        # With words: the matches first (as pages and counts find them), then their rows, by
        # seq (where a nested loop is what is wanted).
        with self._reading() as conn:
            self._plan(conn, query)
            where, params, terms, found = self._conditions(conn, query, after=after, before=before)
            if found is not None:
                seqs = list(found)
            else:
                seqs = [
                    int(row[0])
                    for row in conn.execute(
                        f"SELECT m.seq FROM {_matching(where, terms=terms)}", params
                    ).fetchall()
                ]
            conn.execute("SET LOCAL enable_nestloop = on")
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} WHERE m.seq = ANY(%s) "
                "ORDER BY m.seq",
                (seqs,),
            ).fetchall()
        return [self._message(*row) for row in rows]

    def count(
        self, query: Search | None = None, *, after: int = 0, before: int | None = None
    ) -> int:
        if not query and not after and before is None:
            return len(self)
        # "X is:unread" (what the HTTP API asks after each page of X) is counted as X minus
        # the read messages among X: the read messages are few, and X's count is usually the
        # one the page just made (see _count).
        unread = query is not None and _UNREAD in query.terms
        if unread:
            assert query is not None
            query = Search(query.query, tuple(t for t in query.terms if t != _UNREAD))
        key = _memo_key(query, after, before)
        with self._reading() as conn:
            self._plan(conn, query, seqscan=True)  # the read messages: their index
            counted = self._counted
            if unread and key is not None and counted[0] == key:
                # No read message and the same messages as at the last count: that count,
                # without even looking the query's words up again.
                row = conn.execute(
                    "SELECT messages, generation, EXISTS (SELECT 1 FROM smtpmock_messages "
                    "WHERE read) FROM smtpmock_state"
                ).fetchone()
                if row is not None and (int(row[0]), int(row[1])) == counted[1] and not row[2]:
                    return counted[2]
            where, params, terms, matches = self._conditions(
                conn, query, after=after, before=before
            )
            if matches is not None:
                if unread:
                    return len(matches) - matches.intersection_cardinality(self._read(conn))
                return len(matches)
            return self._count(conn, query, where, params, terms=terms, key=key, minus_read=unread)

    def _count_with_page(
        self,
        conn: psycopg.Connection[Any],
        query: Search | None,
        where: str,
        params: list[object],
        *,
        terms: bool,
        key: _MemoKey | None,
        order: str,
        start: int,
        end: int | None,
    ) -> tuple[int, list[int]]:
        """The number of messages matching *where*, and the seqs of its page (positions
        *start* to *end* in seq *order*), from one read of the matches: counting visits every
        match anyway, and a second search for the page read the index again (half the time
        of a search for a recipient at 100k messages) or walked seq order. (The caller has
        steered the planner.)"""
        seqs_sql, seqs_params = _page_seqs(newest_first=order == "DESC", start=start, end=end)
        row = conn.execute(
            "SELECT s.messages, s.generation, c.n, c.seqs FROM smtpmock_state s, "
            f"(SELECT count(*) AS n, {seqs_sql} AS seqs "
            f"FROM {_matching(where, terms=terms)}) c",
            [*seqs_params, *params],
        ).fetchone()
        assert row is not None
        total = int(row[2])
        if key is not None:  # for the count that follows (see _count)
            self._counted = (key, (int(row[0]), int(row[1])), total)
        return total, [int(seq) for seq in row[3] or ()]

    def _count(
        self,
        conn: psycopg.Connection[Any],
        query: Search | None,
        where: str,
        params: list[object],
        *,
        terms: bool,
        key: _MemoKey | None,
        minus_read: bool = False,
    ) -> int:
        """The messages matching *where* (minus the read ones among them, with *minus_read*).

        Counting a common word reads every message holding it (100k at 100k messages: a few
        hundred ms), and the HTTP API counts each search twice (its page, then its unread
        matches). A query of substring terms only matches the same messages as long as
        the set of messages is the same, and the state row's (message count, generation)
        names that set: messages are only added within a generation (each add raises the
        count), and every removal starts a new one. So the last such count is kept with the
        pair (under *key*: the query's terms and seq bounds), and reused when the statement
        that would count again reads the same pair; one statement, one snapshot: the answer
        is as exact as a fresh count."""
        read_sql = ""
        read_params: list[object] = []
        if minus_read:
            # The read messages (their partial index) among X: a hash join with X's matches,
            # found apart (a nested loop would test X on each row, with X's words found
            # again each time or its ids read out of TOAST).
            read_sql = (
                ", (SELECT count(*) FROM (SELECT seq FROM smtpmock_messages WHERE read "
                f"OFFSET 0) r WHERE r.seq IN (SELECT m.seq FROM {_matching(where, terms=terms)}))"
            )
            read_params = list(params)  # (count() has set enable_seqscan off for this)
        counted = self._counted  # (replaced whole by other threads, never changed in place)
        memo = counted if key is not None and counted[0] == key else None
        stamp = memo[1] if memo is not None else (-1, -1)
        row = conn.execute(
            "SELECT s.messages, s.generation, CASE WHEN s.messages = %s AND s.generation = %s "
            f"THEN NULL ELSE (SELECT count(*) FROM {_matching(where, terms=terms)}) END"
            f"{read_sql} FROM smtpmock_state s",
            [*stamp, *params, *read_params],
        ).fetchone()
        assert row is not None
        if row[2] is None:
            assert memo is not None
            total = memo[2]
        else:
            total = int(row[2])
            if key is not None:
                self._counted = (key, (int(row[0]), int(row[1])), total)
        return total - int(row[3]) if minus_read else total

    def page(
        self,
        query: Search | None = None,
        *,
        start: int = 0,
        limit: int | None = 50,
        after: int = 0,
        newest_first: bool = True,
    ) -> Page:
        order = "DESC" if newest_first else "ASC"
        with self._reading() as conn:
            if not query and not after:
                state = conn.execute("SELECT messages FROM smtpmock_state").fetchone()
                total = int(state[0]) if state else 0
                bounds = " LIMIT %s" if limit is not None else ""
                rows = conn.execute(
                    f"SELECT {_SUMMARY_COLUMNS} FROM smtpmock_messages m "
                    f"ORDER BY m.seq {order} OFFSET %s{bounds}",
                    [start, *([limit] if limit is not None else [])],
                ).fetchall()
            else:
                self._plan(conn, query)
                where, params, terms, matches = self._conditions(conn, query, after=after)
                end = start + limit if limit is not None else None
                if matches is not None:
                    total = len(matches)
                    seqs = self._postings.seqs_of(matches, start, end, newest_first=newest_first)
                    return Page(total, _summaries(self._summary_rows(conn, seqs, order)))
                total, seqs = self._count_with_page(
                    conn,
                    query,
                    where,
                    params,
                    terms=terms,
                    key=_memo_key(query, after, None),
                    order=order,
                    start=start,
                    end=end,
                )
                rows = self._summary_rows(conn, seqs, order)
        return Page(total, _summaries(rows))

    def listing(
        self, query: Search | None = None, *, start: int = 0, limit: int | None = 50
    ) -> Listing:
        """One transaction of two statements: the figures, the tags and the page's seqs from
        one read of the matches, then the page's summaries (the separate reads take five
        pool connections and seven round trips: ~3 ms more at 100k messages)."""
        return self._listing(query, start=start, limit=limit, mailbox=None)

    def _mailbox_listing(
        self, name: str, query: Search | None, *, start: int, limit: int | None
    ) -> Listing:
        return self._listing(query, start=start, limit=limit, mailbox=name)

    def _listing(
        self, query: Search | None, *, start: int, limit: int | None, mailbox: str | None
    ) -> Listing:
        """:meth:`listing`, of mailbox *mailbox* only (its figures too) when given."""
        # The view's matches: the query in the mailbox.
        matches = in_mailbox(query, mailbox) if mailbox is not None else query
        # One snapshot for the statements below (what _listing_sql reads decides the shape
        # of the listing's statement).
        with self._reading() as conn:
            # The partial indexes of the read and the tagged messages; the query's own.
            self._plan(conn, matches, seqscan=True)
            sql, args, found = self._listing_sql(conn, matches, start, limit, mailbox=mailbox)
            row = conn.execute(sql, args).fetchone()
            assert row is not None
            stored, read_count, tags, total, read_matches, seqs = row
            if found is not None:  # the matches, from the postings and above F
                total = len(found)
                read_matches = (
                    found.intersection_cardinality(self._read(conn)) if int(read_count) else 0
                )
                end = start + limit if limit is not None else None
                seqs = self._postings.seqs_of(found, start, end, newest_first=True)
            rows = self._summary_rows(conn, [int(seq) for seq in seqs or ()], "DESC")
        stored, read_count = int(stored), int(read_count)
        page = Page(int(total), _summaries(rows))
        unread = stored - read_count
        unread_matches = int(total) - int(read_matches) if query else unread
        return Listing(page, unread_matches, stored, unread, sorted(str(t) for t in tags))

    def _listing_sql(
        self,
        conn: psycopg.Connection[Any],
        query: Search | None,
        start: int,
        limit: int | None,
        *,
        mailbox: str | None,
    ) -> tuple[str, list[object], BitMap | None]:
        """:meth:`_listing`'s statement: the figures (those of *mailbox* when given: then
        *query* holds its ``mailbox:`` term), the tags, the matches' count, their read ones
        and the page's seqs; or, for a query of words only when the postings hold messages,
        the figures and the tags, and the matches themselves (the third value)."""
        within, within_params = ("", []) if mailbox is None else (" AND mailbox = %s", [mailbox])
        figures = (
            f"(SELECT count(*) FROM smtpmock_messages WHERE read{within}), "
            "ARRAY(SELECT DISTINCT unnest(tags) FROM smtpmock_messages "
            f"WHERE cardinality(tags) > 0{within}), "
        )
        figures_params: list[object] = [*within_params, *within_params]
        if not query:
            sql = (
                f"SELECT s.messages, {figures}s.messages, 0, ARRAY(SELECT seq FROM "
                "smtpmock_messages ORDER BY seq DESC OFFSET %s LIMIT %s) FROM smtpmock_state s"
            )
            return sql, [*figures_params, start, limit], None
        where, params, terms, found = self._conditions(conn, query)
        if found is not None:
            sql = f"SELECT s.messages, {figures}0, 0, NULL::bigint[] FROM smtpmock_state s"
            return sql, figures_params, found
        # The read matches: few, as the read messages are. Over smtpmock_terms (no read
        # column), a hash join with the read ones (from their partial index), when there is
        # one (the join took 2 ms for 12k matches, 4 for 100k).
        read, join = ("m.read", "")
        if terms and not self._any_read(conn):
            read = "false"
        elif terms:
            read = "r.seq IS NOT NULL"
            join = (
                " LEFT JOIN (SELECT seq FROM smtpmock_messages WHERE read OFFSET 0) r "
                "ON r.seq = m.seq"
            )
        end = start + limit if limit is not None else None
        seqs_sql, seqs_params = _page_seqs(newest_first=True, start=start, end=end)
        # The messages stored: the state's count, or the mailbox's (its matches, when the
        # query is the mailbox alone).
        stored, stored_params = "s.messages", []
        if mailbox is not None and len(query.terms) == 1:
            stored = "c.n"
        elif mailbox is not None:
            stored = "(SELECT count(*) FROM smtpmock_messages WHERE mailbox = %s)"
            stored_params = [mailbox]
        sql = (
            f"SELECT {stored}, {figures}c.n, c.read_n, c.seqs FROM smtpmock_state s, "
            f"(SELECT count(*) AS n, count(*) FILTER (WHERE {read}) AS read_n, "
            f"{seqs_sql} AS seqs FROM {_matching(where, terms=terms, join=join)}) c"
        )
        return sql, [*stored_params, *figures_params, *seqs_params, *params], None

    def _read(self, conn: psycopg.Connection[Any]) -> BitMap:
        """The read messages' seqs (their partial index)."""
        rows = conn.execute("SELECT seq FROM smtpmock_messages WHERE read").fetchall()
        read: BitMap = self._postings.BitMap(int(row[0]) for row in rows)
        return read

    @staticmethod
    def _any_read(conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM smtpmock_messages WHERE read)").fetchone()
        return bool(row is None or row[0])

    @staticmethod
    def _summary_rows(
        conn: psycopg.Connection[Any], seqs: list[int], order: str
    ) -> list[tuple[Any, ...]]:
        return conn.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM smtpmock_messages m "
            f"WHERE m.seq = ANY(%s) ORDER BY m.seq {order}",
            (seqs,),
        ).fetchall()

    def mailboxes(self) -> dict[str, int]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT mailbox, count(*) FROM smtpmock_messages GROUP BY mailbox ORDER BY mailbox"
            ).fetchall()
        return {str(name): int(n) for name, n in rows}

    def _oldest_in_mailbox(self, name: str, n: int) -> list[str]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id FROM smtpmock_messages WHERE mailbox = %s ORDER BY seq LIMIT %s",
                (name, n),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def _count_mailbox(self, name: str) -> int:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM smtpmock_messages WHERE mailbox = %s", (name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def __len__(self) -> int:
        with self._connection() as conn:
            row = conn.execute("SELECT messages FROM smtpmock_state").fetchone()
        return int(row[0]) if row else 0

    @property
    def total_bytes(self) -> int:
        with self._connection() as conn:
            row = conn.execute("SELECT bytes FROM smtpmock_state").fetchone()
        return int(row[0]) if row else 0

    # --------------------------------------------------------------------- change feed

    def _listen(self) -> None:
        """The listening thread: LISTEN, publish the other instances' changes, reconnect."""
        psycopg = self._psycopg
        delay = _LISTEN_BACKOFF[0]
        failing = False  # one warning per outage, not one per attempt
        while not self._closing.is_set():
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                (log.debug if failing else log.warning)(
                    "change feed: cannot connect to %s: %s", self.description, exc
                )
                failing = True
                self._closing.wait(delay)
                delay = min(delay * 2, _LISTEN_BACKOFF[1])
                continue
            try:
                conn.add_notify_handler(self._on_notify_during_query)
                self._pending = []
                channel = psycopg.sql.Identifier(self._channel)
                conn.execute(psycopg.sql.SQL("LISTEN {}").format(channel))
                delay = _LISTEN_BACKOFF[0]
                self._catch_up()
                if failing:
                    log.warning("change feed: reconnected to %s", self.description)
                failing = False
                self._listening.set()
                self._pump(conn)
            except (psycopg.Error, StorageUnavailable) as exc:
                if not self._closing.is_set():
                    log.warning("change feed: lost %s (%s); reconnecting", self.description, exc)
                    failing = True
            except Exception:  # never let the feed die: log and reconnect
                log.exception("change feed: unexpected error; reconnecting")
            finally:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    conn.close()
            if not self._closing.is_set():
                self._closing.wait(delay)
                delay = min(delay * 2, _LISTEN_BACKOFF[1])

    def _on_notify_during_query(self, notify: Any) -> None:
        self._pending.append(notify)

    def _pump(self, conn: psycopg.Connection[Any]) -> None:
        from psycopg.pq import ConnStatus

        pgconn = conn.pgconn
        with selectors.DefaultSelector() as selector:
            selector.register(pgconn.socket, selectors.EVENT_READ, "db")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._closing.is_set():
                ready = selector.select(_HEALTH_INTERVAL)
                if self._closing.is_set():
                    return
                if not ready:
                    conn.execute("SELECT 1")  # silence: is the connection still there?
                else:
                    pgconn.consume_input()
                    if pgconn.status != ConnStatus.OK:
                        raise self._psycopg.OperationalError("connection lost")
                    while (notify := pgconn.notifies()) is not None:
                        self._pending.append(notify)
                batch, self._pending = self._pending, []
                self._handle([json.loads(n.extra.decode()) for n in batch])

    def _handle(self, notes: list[dict[str, Any]]) -> None:
        """Publish the changes other instances made, in commit order (consecutive additions
        loaded together)."""
        added: list[int] = []
        for note in notes:
            kind = note.get("k")
            if kind == "added":
                lo, hi = int(note["s"][0]), int(note["s"][1])
                if hi <= self._feed_seq:
                    continue  # already published by a catch-up
                self._feed_seq = hi
                if note.get("o") != self._origin:
                    added.extend(range(max(lo, 0), hi + 1))
                continue
            if added:
                self._publish_added(added)
                added = []
            if note.get("o") == self._origin:
                continue
            if kind == "updated":
                ids = tuple(str(i) for i in note.get("i") or ())
                self._publish(StoreEvent("updated", ids=ids))
                continue
            generation = int(note.get("g") or 0)
            if kind == "deleted":
                ids = tuple(str(i) for i in note.get("i") or ())
                self._publish_removal(StoreEvent("deleted", ids=ids), generation)
            elif kind == "cleared":
                self._publish_removal(StoreEvent("cleared"), generation)
        if added:
            self._publish_added(added)

    def _publish_added(self, seqs: list[int]) -> None:
        # The messages are loaded only for someone to hear them (a waiter needs no more than
        # the condition: it searches).
        found = (
            self._messages(
                f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} WHERE m.seq = ANY(%s) "
                "ORDER BY m.seq",
                (seqs,),
            )
            if self._listeners
            else []
        )
        with self.changed:
            self._last_seq = max(self._last_seq, seqs[-1])
            self.changed.notify_all()
        for message in found:
            self._emit(StoreEvent("added", (message,)))

    def _publish_removal(self, event: StoreEvent, generation: int) -> None:
        with self.changed:
            self.generation = max(self.generation + 1, generation)
            self.changed.notify_all()
        self._emit(event)

    def _catch_up(self) -> None:
        """After (re)connecting the feed: publish what changed while it was not listening."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT generation, (SELECT coalesce(max(seq), 0) FROM smtpmock_messages)"
                " FROM smtpmock_state"
            ).fetchone()
        assert row is not None
        generation, newest = int(row[0]), int(row[1])
        if generation > self.generation:
            # Messages went away unseen: waits recount (ids unknown, so none are named).
            self._publish_removal(StoreEvent("deleted"), generation)
        if newest > self._feed_seq:
            missed = (
                []
                if not self._listeners
                else self._messages(
                    f"SELECT {_MESSAGE_COLUMNS} FROM {_FROM_MESSAGES} WHERE m.seq > %s AND "
                    f"m.seq <= %s ORDER BY m.seq DESC LIMIT {_CATCH_UP_LIMIT}",
                    (self._feed_seq, newest),
                )
            )
            self._feed_seq = newest
            with self.changed:
                self._last_seq = max(self._last_seq, newest)
                self.changed.notify_all()
            for message in reversed(missed):
                if message.seq not in self._recent_set:
                    self._emit(StoreEvent("added", (message,)))

    # --------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop the change feed and close every connection (idempotent)."""
        if self._closing.is_set():
            return
        self._closing.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._merge_wake.set()
        merging = self._merge_conn
        if merging is not None:  # a block being read or written, a VACUUM: cut short
            with contextlib.suppress(Exception):
                cancel = getattr(merging, "cancel_safe", None)  # psycopg 3.2; 3.1: cancel()
                cancel() if cancel is not None else merging.cancel()
        self._listener.join(timeout=10)
        self._merger.join(timeout=10)
        self._pool.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __repr__(self) -> str:
        return f"<PostgresStore {self.description}>"
