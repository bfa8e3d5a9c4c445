"""Build a SQLite database for ``smtpmock serve`` directly, through the store's public API.

::

    python benchmarks/fill_store.py --db benchmarks/.work/search-100000.db --count 100000

Writes the messages of ``_corpus.Corpus`` (10 KiB each, known words) with
``SQLiteStore.add_many`` in batches of ``--batch`` (one transaction each: the same call that
``serve``'s group commit makes for the messages that arrive together over SMTP); after every
``--flush-every`` messages, ``flush_index()`` indexes whatever the store's background indexer
has not indexed yet, so the time to index is measured as it goes (and a fill with a deadline
knows how far it can get); then ``close()``. An existing database is topped up: numbering
continues at ``len(store)``, so the database holds messages 0..count-1 of the corpus.

Prints the rates: storing (``add_many`` only; the background indexer runs alongside, so part
of the indexing is paid here), indexing the rest (``flush_index``), and overall.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import Corpus

from smtpmock import Message
from smtpmock.store import SQLiteStore

BATCH = 500
FLUSH_EVERY = 5000


@dataclass
class FillResult:
    before: int  # messages in the database before this fill
    added: int
    store_s: float  # add_many calls
    index_s: float  # flush_index()
    close_s: float
    indexed_while_storing: int | None  # messages the background indexer had done by then
    db_bytes: int  # the database file with its WAL, after close
    stopped_early: bool = False

    @property
    def total_s(self) -> float:
        return self.store_s + self.index_s + self.close_s

    @property
    def store_rate(self) -> float:
        return self.added / self.store_s if self.store_s > 0 else 0.0

    @property
    def index_rate(self) -> float:
        """Messages indexed per second by ``flush_index`` (those it had left to do)."""
        left = self.added - (self.indexed_while_storing or 0)
        return left / self.index_s if self.index_s > 0 else 0.0

    @property
    def rate(self) -> float:
        """Messages per second, storing and indexing included."""
        return self.added / self.total_s if self.total_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        rates = {"store_rate": self.store_rate, "index_rate": self.index_rate, "rate": self.rate}
        return {**asdict(self), "total_s": self.total_s, **rates}


def db_bytes(db: Path) -> int:
    return sum(
        Path(f"{db}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{db}{suffix}").exists()
    )


def indexed_count(db: Path) -> int | None:
    """How many messages the store has indexed, read on a second connection (``None`` when
    the store's schema has no ``indexed`` table any more: the figure is then not reported)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM indexed").fetchone()[0])
    except sqlite3.Error:
        return None


def fill(
    db: Path,
    count: int,
    *,
    corpus: Corpus | None = None,
    batch: int = BATCH,
    flush_every: int = FLUSH_EVERY,
    deadline: float | None = None,
    rate_guess: float = 300.0,
    log: Callable[[str], None] | None = None,
) -> FillResult:
    """Top *db* up to *count* messages of the corpus.

    Works in rounds of *flush_every* messages: ``add_many`` batches of *batch*, then
    ``flush_index()``. With a *deadline* (``time.monotonic()``) a round is cut to what the
    rounds so far say can be stored and indexed by then (the first round goes by *rate_guess*,
    messages/s, indexing included), and no round starts that would not end in time.
    """
    corpus = corpus or Corpus()
    store = SQLiteStore(db, index_worker=True)  # as `smtpmock serve` opens it
    before = len(store)
    stopped = False
    store_s = index_s = 0.0
    during: int | None = 0
    try:
        next_log = time.perf_counter() + 10
        i = before
        while i < count:
            size = min(flush_every, count - i)
            if deadline is not None:
                spent = store_s + index_s
                rate = (i - before) / spent if spent > 1.0 else rate_guess
                size = min(size, int((deadline - time.monotonic()) * rate))
                if size < min(batch, count - i):
                    stopped = True
                    break
            indexed_at_start = indexed_count(db)
            t0 = time.perf_counter()
            end = i + size
            while i < end:
                chunk = range(i, min(end, i + batch))
                messages = []
                for k in chunk:
                    mail_from, rcpt_tos = corpus.envelope(k)
                    raw = corpus.raw(k)
                    messages.append(Message(raw, mail_from=mail_from, rcpt_tos=rcpt_tos))
                store.add_many(messages)
                i = chunk.stop
            t1 = time.perf_counter()
            indexed = indexed_count(db)
            if during is not None and indexed is not None and indexed_at_start is not None:
                during += indexed - indexed_at_start
            else:
                during = None  # the store's schema changed: not known
            store.flush_index()
            t2 = time.perf_counter()
            store_s += t1 - t0
            index_s += t2 - t1
            if log is not None and t2 > next_log:
                next_log = t2 + 10
                log(f"fill: {i - before} of {count - before} messages stored and indexed")
    finally:
        t3 = time.perf_counter()
        store.close()
    close_s = time.perf_counter() - t3
    return FillResult(before, i - before, store_s, index_s, close_s, during, db_bytes(db), stopped)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="the SQLite file (created if new)")
    parser.add_argument("--count", type=int, required=True, help="messages the db ends up with")
    parser.add_argument("--batch", type=int, default=BATCH, help="messages per add_many")
    parser.add_argument(
        "--flush-every", type=int, default=FLUSH_EVERY, help="messages between flush_index calls"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    result = fill(
        args.db,
        args.count,
        batch=args.batch,
        flush_every=args.flush_every,
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps(result.as_dict()))
        return
    during = result.indexed_while_storing
    held = result.before + result.added
    lines = [
        f"{args.db}: {result.before} + {result.added} messages",
        f"  storing   {result.store_s:8.1f} s  {result.store_rate:8.0f} msg/s"
        + (f"  (the background indexer did {during} meanwhile)" if during is not None else ""),
        f"  indexing  {result.index_s:8.1f} s  {result.index_rate:8.0f} msg/s (flush_index)",
        f"  close     {result.close_s:8.1f} s",
        f"  overall   {result.total_s:8.1f} s  {result.rate:8.0f} msg/s, indexing included",
        f"  on disk   {result.db_bytes / 2**20:8.1f} MiB"
        + (f", {result.db_bytes / held:,.0f} B/msg" if held else ""),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
