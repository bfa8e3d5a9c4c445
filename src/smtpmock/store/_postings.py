"""The PostgreSQL store's word postings: for each block of seqs, the messages holding each word,
as compressed bitmaps (``pyroaring``), written once when the block is full.

Why. A free-text needle is answered through word ids (``smtpmock_terms.words``, a GIN index):
PostgreSQL spends ~80 ns on each (message, word) entry it reads, and a needle of the commonest
kind (inside 140 words, each in 9% of the messages) reads 600k of them at 100k messages: 60 to
150 ms for a count. The same words as bitmaps of seqs are ORed at memory speed.

How. ``smtpmock_state.frozen`` (*F*) splits the messages. Those up to *F* have their word ids
in ``smtpmock_postings`` (one row per word and block: the block's seqs holding the word), not
in ``smtpmock_terms.words`` (emptied once the block is written, so the GIN index holds the
newest messages only); those above *F* are in ``smtpmock_terms`` as before, and a search
reads them there with ``seq > F``. One snapshot sees *F*, the postings and the terms rows
consistently: the block's postings and the new *F* commit together, and the emptying of the
block's terms rows follows (until then a search skips them by ``seq > F``).

A block is written by one instance at a time (a session advisory lock), from the committed
messages only: ``seq`` grows in commit order (every writer holds the state row lock), so once
seq *n* is visible every lower seq is final.

Deletes. Postings are never rewritten for a delete: a trigger on ``smtpmock_messages`` notes
every deleted seq in ``smtpmock_gone`` (in the deleting statement, whatever deleted it:
``delete``, retention, a clear), and a search takes the gone seqs out of what the postings
give. The merge folds them into its block's ``dead`` bitmap now and then, and drops a block
whose messages are all gone. Noting every delete (not only those up to *F*) is what makes a
block written from a snapshot taken before a delete right: its gone seq is there.
"""

from __future__ import annotations

import collections
import ctypes
from typing import TYPE_CHECKING, Any

from pyroaring import BitMap

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "BLOCK",
    "BitMap",
    "build",
    "compact",
    "empty_terms",
    "freeze",
    "frozen",
    "held",
    "merge_blocks",
    "release_memory",
    "removed",
    "seqs_of",
]

BLOCK = 8_192  # seqs per block: the newest messages (up to ~1 block) are searched through GIN
MAX_SEQ = 2**32 - 1  # the bitmaps hold 32-bit seqs: blocks stop below this
FANOUT = 8  # consecutive blocks of one size merged into one (8,192, 65,536, 524,288 seqs...)
_READ_ROWS = 256  # terms rows read at once while building a block (~300k ids)
_WRITE_ROWS = 2_000  # postings rows per INSERT
_EMPTY_ROWS = 1_024  # terms rows emptied per transaction (row locks held that long)


def frozen(conn: psycopg.Connection[Any]) -> int:
    """*F*: the seqs up to it are in the postings."""
    row = conn.execute("SELECT frozen FROM smtpmock_state").fetchone()
    return int(row[0]) if row else 0


def removed(conn: psycopg.Connection[Any]) -> tuple[int, BitMap]:
    """*F*, and the seqs up to it that the postings may hold and that are gone (the blocks'
    dead bitmaps, the gone seqs not folded yet): one statement."""
    row = conn.execute(
        "SELECT s.frozen, ARRAY(SELECT dead FROM smtpmock_blocks WHERE dead IS NOT NULL), "
        "ARRAY(SELECT seq FROM smtpmock_gone WHERE seq <= s.frozen) FROM smtpmock_state s",
        binary=True,
    ).fetchone()
    if row is None:
        return 0, BitMap()
    upto, deads, seqs = row
    gone = BitMap(int(seq) for seq in seqs)
    for dead in deads:
        gone |= BitMap.deserialize(bytes(dead))
    return int(upto), gone


def held(conn: psycopg.Connection[Any], ids: list[int]) -> BitMap:
    """The seqs the postings give for the words *ids* (some may be gone: see :func:`removed`)."""
    rows = conn.execute(
        "SELECT seqs FROM smtpmock_postings WHERE word = ANY(%s)", (ids,), binary=True
    ).fetchall()
    if not rows:
        return BitMap()
    return BitMap.union(*(BitMap.deserialize(bytes(row[0])) for row in rows))


def build(conn: psycopg.Connection[Any], lo: int, hi: int) -> dict[int, BitMap]:
    """The postings of the block of seqs *lo* < seq <= *hi*, from its terms rows (each
    word's seqs gathered in lists a few hundred rows at a time, then added to its bitmap)."""
    postings: dict[int, BitMap] = {}
    gathered: collections.defaultdict[int, list[int]] = collections.defaultdict(list)
    at = lo
    while at < hi:
        top = min(at + _READ_ROWS, hi)
        rows = conn.execute(
            "SELECT seq, words FROM smtpmock_terms WHERE seq > %s AND seq <= %s",
            (at, top),
            binary=True,  # the ids as binary int4: a quarter of the time of their text
        ).fetchall()
        for seq, words in rows:
            for word in words:
                gathered[word].append(seq)
        for word, seqs in gathered.items():
            found = postings.get(word)
            if found is None:
                postings[word] = BitMap(seqs)
            else:
                found.update(seqs)
        gathered.clear()
        at = top
    return postings


def freeze(conn: psycopg.Connection[Any], lo: int, hi: int, postings: dict[int, BitMap]) -> bool:
    """Write the block *lo* < seq <= *hi* (*postings*, emptied on the way) and move *F* from
    *lo* to *hi*, in one transaction; ``False`` (nothing written) if *F* is no longer *lo*."""
    try:
        with conn.transaction():
            _write_block(conn, lo, hi, postings)
    except _Stale:
        return False
    return True


class _Stale(Exception):
    """*F* moved meanwhile: the block's transaction is rolled back."""


def _write_block(
    conn: psycopg.Connection[Any], lo: int, hi: int, postings: dict[int, BitMap]
) -> None:
    _insert(conn, hi, postings)
    conn.execute("INSERT INTO smtpmock_blocks (hi, lo) VALUES (%s, %s)", (hi, lo))
    # Last: the state row lock waits for the writer holding it, and is held to the commit.
    moved = conn.execute(
        "UPDATE smtpmock_state SET frozen = %s WHERE frozen = %s", (hi, lo)
    ).rowcount
    if moved != 1:
        raise _Stale


def empty_terms(conn: psycopg.Connection[Any], lo: int, hi: int) -> None:
    """Empty the word ids of the terms rows *lo* < seq <= *hi* (now in the postings), a few
    hundred rows per transaction. Their GIN entries go at the next VACUUM."""
    at = lo
    while at < hi:
        top = min(at + _EMPTY_ROWS, hi)
        with conn.transaction():
            conn.execute(
                "UPDATE smtpmock_terms SET words = '{}' "
                "WHERE seq > %s AND seq <= %s AND words <> '{}'",
                (at, top),
            )
        at = top


def merge_blocks(conn: psycopg.Connection[Any], fanout: int = FANOUT) -> bool:
    """Merge the oldest *fanout* consecutive blocks of one size into one block (their words'
    bitmaps ORed), in one transaction; ``False`` if there are none. A word's postings are
    then one row per merged block rather than one per block of :data:`BLOCK` seqs: at 100k
    messages, 5 rows for 12, which a search reads at random places when the cache is cold.
    Rows are read word by word (the primary key's order), so only one word's bitmaps are in
    memory at a time."""
    blocks = [(int(lo), int(hi)) for lo, hi in conn.execute(
        "SELECT lo, hi FROM smtpmock_blocks ORDER BY hi"
    ).fetchall()]  # fmt: skip
    run: list[tuple[int, int]] = []
    for lo, hi in blocks:
        if run and (lo != run[-1][1] or hi - lo != run[-1][1] - run[-1][0]):
            run = []
        run.append((lo, hi))
        if len(run) == fanout:
            break
    else:
        return False
    his = [hi for _, hi in run]
    lo, hi = run[0][0], run[-1][1]
    try:
        with conn.transaction():
            # First: a clear or a drop of these blocks since they were read aborts the merge.
            deads = conn.execute(
                "DELETE FROM smtpmock_blocks WHERE hi = ANY(%s) RETURNING dead", (his,), binary=True
            ).fetchall()
            if len(deads) != len(his):
                raise _Stale
            dead = BitMap()
            for (bits,) in deads:
                if bits is not None:
                    dead |= BitMap.deserialize(bytes(bits))
            rows = conn.cursor(name="smtpmock_merge_blocks", binary=True)
            rows.itersize = _WRITE_ROWS
            rows.execute(
                "SELECT word, seqs FROM smtpmock_postings WHERE block = ANY(%s) ORDER BY word",
                (his,),
            )
            merged: dict[int, BitMap] = {}
            word: int | None = None
            found: list[BitMap] = []
            for row_word, seqs in rows:
                if row_word != word and found:
                    assert word is not None
                    merged[word] = BitMap.union(*found)
                    found = []
                    if len(merged) >= _WRITE_ROWS:
                        _insert(conn, hi, merged, replace=True)
                word = row_word
                found.append(BitMap.deserialize(bytes(seqs)))
            if found:
                assert word is not None
                merged[word] = BitMap.union(*found)
            rows.close()
            _insert(conn, hi, merged, replace=True)
            conn.execute(
                "DELETE FROM smtpmock_postings WHERE block = ANY(%s) AND block <> %s", (his, hi)
            )
            dead.run_optimize()
            conn.execute(
                "INSERT INTO smtpmock_blocks (hi, lo, dead) VALUES (%s, %s, %s)",
                (hi, lo, dead.serialize() if dead else None),
            )
    except _Stale:
        return False
    return True


def _insert(
    conn: psycopg.Connection[Any],
    block: int,
    postings: dict[int, BitMap],
    *,
    replace: bool = False,
) -> None:
    """Insert *postings* as rows of *block*, :data:`_WRITE_ROWS` per statement, each bitmap
    serialized as its rows are sent and dropped then (the dict is emptied: the block is in
    memory once, as bitmaps). *replace*: rows of the same word and block are replaced (a
    merge writes its block where the newest merged block's rows are)."""
    conflict = " ON CONFLICT (word, block) DO UPDATE SET seqs = excluded.seqs" if replace else ""
    words = sorted(postings)
    for k in range(0, len(words), _WRITE_ROWS):
        batch = words[k : k + _WRITE_ROWS]
        data = []
        for word in batch:
            bitmap = postings.pop(word)
            bitmap.run_optimize()
            data.append(bitmap.serialize())
        conn.execute(
            "INSERT INTO smtpmock_postings (word, block, seqs) "
            "SELECT u.word, %s, u.seqs FROM unnest(%b::int[], %b::bytea[]) AS u(word, seqs)"
            + conflict,
            (block, batch, data),
        )


def compact(conn: psycopg.Connection[Any]) -> int:
    """Fold the gone seqs into their blocks' ``dead`` bitmaps and drop the blocks whose
    messages are all gone; the number of gone seqs handled. Run by the one merging instance:
    no block is written meanwhile, so a gone seq above *F* is never needed again (its terms
    row is deleted; no block will read it)."""
    with conn.transaction():
        upto = frozen(conn)
        rows = conn.execute("DELETE FROM smtpmock_gone RETURNING seq").fetchall()
        gone = BitMap(int(row[0]) for row in rows if int(row[0]) <= upto)
        if gone:
            blocks = conn.execute("SELECT hi, lo, dead FROM smtpmock_blocks ORDER BY hi").fetchall()
            for hi, lo, dead in blocks:
                mine = BitMap(gone)
                mine.intersection_update(BitMap(range(int(lo) + 1, int(hi) + 1)))
                if not mine:
                    continue
                if dead is not None:
                    mine |= BitMap.deserialize(bytes(dead))
                mine.run_optimize()
                conn.execute(
                    "UPDATE smtpmock_blocks SET dead = %s WHERE hi = %s", (mine.serialize(), hi)
                )
        empty = [
            int(row[0])
            for row in conn.execute(
                "SELECT b.hi FROM smtpmock_blocks b WHERE NOT EXISTS (SELECT 1 FROM "
                "smtpmock_messages m WHERE m.seq > b.lo AND m.seq <= b.hi)"
            ).fetchall()
        ]
        if empty:
            conn.execute("DELETE FROM smtpmock_postings WHERE block = ANY(%s)", (empty,))
            conn.execute("DELETE FROM smtpmock_blocks WHERE hi = ANY(%s)", (empty,))
    return len(rows)


def release_memory() -> None:
    """Give back to the system the memory a block's bitmaps were built in: glibc keeps what
    was freed (40 MB after a block of 8,192 messages of 10 KiB, in a process of 40), so the
    merging instance's resident size would stay at its high-water mark. Elsewhere: nothing."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


def seqs_of(bitmap: BitMap, start: int, end: int | None, *, newest_first: bool) -> list[int]:
    """The seqs at positions *start* to *end* of *bitmap* in seq order (newest first with
    *newest_first*)."""
    n = len(bitmap)
    stop = n if end is None else min(n, end)
    if start >= stop:
        return []
    if newest_first:
        return list(reversed(list(bitmap[n - stop : n - start])))
    return list(bitmap[start:stop])
