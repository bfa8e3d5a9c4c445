"""Where a body-word search's time goes in a filled SQLite store: the floor FTS5 sets.

::

    python benchmarks/fill_store.py --db /tmp/b/s100k.db --count 100000   # once, ~5 minutes
    python benchmarks/search_floor.py --db /tmp/b/s100k.db tovu kabralim jorlimkes com

For each needle (a free-text substring search): the FTS5 expression the store plans for it,
then, best of ``--repeat`` runs, the time to count its matches in SQLite, to read all their
rowids into Python, to count the same words written as exact terms instead of prefixes, and
to read each containing word's doclist once (``group_concat``), with the postings those
words hold together; then what the store itself takes to count and to give the first page of
50 (``SQLiteStore.count`` and ``summaries``), which read the word bitmaps (``_bits.py``); for a
needle with no FTS5 expression (inside more words than FTS5 terms or the planner's list
allow), only those two.
Opens the store as ``serve`` does; a file without bitmaps (written before they existed) gets
them built first, and the time that takes is printed.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Callable
from functools import partial

from smtpmock._search import parse
from smtpmock.store import SQLiteStore
from smtpmock.store._sqlite_index import _FREE_BIT


def best_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True, help="a database filled by fill_store.py")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("needles", nargs="+")
    args = parser.parse_args()
    store = SQLiteStore(args.db)
    db: sqlite3.Connection = store._db
    started = time.perf_counter()
    store._bits_upkeep()  # what the background indexer would do soon after opening
    print(f"bitmaps ready in {time.perf_counter() - started:.1f} s")

    def count(expr: str) -> int:
        sql = "SELECT count(*) FROM words_fts WHERE words_fts MATCH ?"
        return int(db.execute(sql, [expr]).fetchone()[0])

    def read_all(expr: str) -> None:
        sql = "SELECT rowid FROM words_fts WHERE words_fts MATCH ? ORDER BY rowid DESC"
        db.execute(sql, [expr]).fetchall()

    def read_doclists(words: list[str]) -> None:
        sql = "SELECT group_concat(rowid) FROM words_fts WHERE words_fts MATCH ?"
        for word in words:
            db.execute(sql, [f'"{word}"']).fetchone()

    def store_count(needle: str) -> int:
        return store.count(parse(needle))

    def store_page(needle: str) -> object:
        return store.page(parse(needle))

    print("| needle | matches | FTS5 terms | words | postings | count | rowids to Python "
          "| count, exact words | read doclists | store: count | store: first page |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for needle in args.needles:
        plan = store._text_plan("free", needle)
        if plan.match is None:
            # No FTS5 expression: the store counts and pages it from the bitmaps of its words
            # (when it knows them) or checks every text with instr.
            if plan.nothing:
                why = "matches nothing"
            elif plan.words:
                why = f"{len(plan.words):,} words, too many for FTS5: bitmaps only"
            else:
                why = "in too many words to list: instr on every text"
            store_ms = [
                best_ms(partial(store_count, needle), args.repeat),
                best_ms(partial(store_page, needle), args.repeat),
            ]
            print(
                f"| `{needle}` | {store.count(parse(needle)):,} | ({why}) | | | | | | "
                "| " + " | ".join(f"{ms:.1f} ms" for ms in store_ms) + " |"
            )
            continue
        expr = plan.match
        words = [
            r[0]
            for r in db.execute(
                "SELECT term FROM terms WHERE cols & ? AND instr(term, ?) > 0", [_FREE_BIT, needle]
            )
        ]
        exact = " OR ".join(f'"{w}"' for w in words)
        postings = sum(count(f'"{w}"') for w in words)
        figures = [
            best_ms(partial(count, expr), args.repeat),
            best_ms(partial(read_all, expr), args.repeat),
            best_ms(partial(count, exact), args.repeat),
            best_ms(partial(read_doclists, words), args.repeat),
            best_ms(partial(store_count, needle), args.repeat),
            best_ms(partial(store_page, needle), args.repeat),
        ]
        print(
            f"| `{needle}` | {count(expr):,} | {len(expr.split(' OR '))} | {len(words)} "
            f"| {postings:,} | " + " | ".join(f"{ms:.1f} ms" for ms in figures) + " |"
        )
    store.close()


if __name__ == "__main__":
    main()
