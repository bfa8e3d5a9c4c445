"""``smtpmock serve`` with many stored messages: search latency, memory, time to be ready.

::

    python benchmarks/search.py                 # 10k and 100k messages of 10 KiB
    python benchmarks/search.py --scale small   # 1k and 5k
    python benchmarks/search.py --keep-db       # keep the databases for the next run

For each size N, with the messages of ``_corpus.Corpus`` (10 KiB each, with known words):

1. fill a SQLite database with the first N - 1,000 messages directly through the store
   (``fill_store.py``: ``SQLiteStore.add_many`` in batches of 500, the call ``serve``'s group
   commit makes, and ``flush_index`` after every 5,000), reporting the rates of storing and of
   indexing;
2. start ``python -m smtpmock serve`` on it (free ports) and send the last 1,000 over SMTP
   (``loadgen.py``, 10 connections kept open), so the SMTP path with its group commit and
   background indexing is part of the store, and its rate is reported;
3. measure search latency p50/p99 over HTTP (``GET /api/v1/search?query=``, one kept-alive
   connection, 200 queries of each kind): a recipient (``to:user123@example.com``, 1 match), a
   subject word (``subject:kalo``), a body word (a bare word, free text) and a rare body word
   (``zqref123x``, 1 match). Every answer's match count (``messages_count``) is checked against
   the count the corpus works out; a wrong one is counted in the table and shown in the notes.
   The 5 slowest queries of each kind are printed to stderr;
4. resident memory (``VmRSS``) of the serve process after the searches; ``Client.wait_for``
   wake-up latency through the server (the wake-up messages are deleted again);
5. the database's size on disk per message, and the time for ``serve`` to be ready (spawned to
   both addresses printed and ``/readyz`` answering) when restarted on it, and its memory then.

The 10k database is grown into the 100k one (same corpus, numbering continues). Everything is
bounded by the time budget: the fill stops early enough to be indexed in time, and the figures
are then measured at the size reached, which labels the rows. A size is skipped, with a note,
when the disk has too little room for it. Targets from issue 7: search p99 < 20 ms and RSS <
200 MB at 100k messages.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import smtplib
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _corpus import Corpus
from _harness import HOST, WORK, BenchError, Row, ServerProcess, percentile, render_table
from fill_store import db_bytes, fill
from ingest import serve_available, serve_ports, start_serve
from loadgen import run_load

QUERIES = 200
SMTP_TAIL = 1000  # the last messages of each size arrive over SMTP
KINDS = ("recipient", "subject word", "body word", "rare body word")
KIND_SECONDS = 15.0  # at most this long per kind of query (after at least 5 queries)
# Seconds kept after the fill for serve, the SMTP tail, the searches and the restart (about
# 25 s at 100k; the searches get less time per kind when it is short).
RESERVE = 45.0
DISK_PER_MESSAGE = 40 * 1024  # bytes of disk to have free per message to add (~26 KB used)
WAKE_DOMAIN = "wake.bench.invalid"
TARGET_P99_MS = 20.0
TARGET_RSS_MB = 200.0


class HTTP:
    """One kept-alive HTTP connection to the serve API (127.0.0.1 only); reconnects when the
    server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def close(self) -> None:
        self.conn.close()


@dataclass
class KindResult:
    times: list[float] = field(default_factory=list)  # ms per query
    wrong: list[tuple[str, object, int]] = field(default_factory=list)  # query, got, expected
    slowest: list[tuple[float, str, int]] = field(default_factory=list)  # ms, query, matches
    asked: int = 0

    def add(self, other: KindResult) -> None:
        """Count *other*'s queries in with these (its times, wrong answers and queries)."""
        self.times += other.times
        self.wrong += other.wrong
        self.asked += other.asked


def search_latencies(
    api: HTTP, queries: list[tuple[str, int]], time_limit: float
) -> tuple[KindResult, bool]:
    """Milliseconds per query (at least 5, then until *time_limit* s), every match count
    checked against its expected value; and whether the time limit cut the list short."""
    result = KindResult()
    timed: list[tuple[float, str, int]] = []
    stop_at = time.monotonic() + time_limit
    cut = False
    for query, expected in queries:
        if result.asked >= 5 and time.monotonic() > stop_at:
            cut = True
            break
        result.asked += 1
        path = "/api/v1/search?" + urllib.parse.urlencode({"query": query, "limit": 50})
        t0 = time.perf_counter()
        try:
            status, body = api.get(path)
        except (OSError, http.client.HTTPException) as exc:
            result.wrong.append((query, f"no answer ({exc.__class__.__name__})", expected))
            continue
        ms = (time.perf_counter() - t0) * 1000
        if status != 200:  # a failed search is a wrong answer, not a latency
            result.wrong.append((query, f"HTTP {status}", expected))
            continue
        result.times.append(ms)
        data = json.loads(body)
        got = data.get("messages_count") if isinstance(data, dict) else None
        if got != expected:
            result.wrong.append((query, got, expected))
        timed.append((ms, query, expected))
    result.slowest = sorted(timed, reverse=True)[:5]
    return result, cut


def client_wake(http_port: int, smtp_port: int, rounds: int) -> list[float] | None:
    """``Client.wait_for`` latency (ms): ``sendmail`` returned to the waiter returning.

    The messages go to ``@wake.bench.invalid`` (deleted afterwards by :func:`delete_wake`).
    """
    try:
        from smtpmock import Client
    except ImportError:
        return None
    client = Client(f"http://{HOST}:{http_port}")
    latencies: list[float] = []
    with smtplib.SMTP(HOST, smtp_port, timeout=30) as smtp:
        for k in range(rounds):
            address = f"wake{k}.{time.monotonic_ns()}@{WAKE_DOMAIN}"
            waiting = threading.Event()
            woke: list[float] = []

            def waiter(
                address: str = address, waiting: threading.Event = waiting, woke: list[float] = woke
            ) -> None:
                waiting.set()
                client.wait_for(1, to=address, timeout=30)
                woke.append(time.perf_counter())

            thread = threading.Thread(target=waiter)
            thread.start()
            waiting.wait()
            smtp.sendmail("wake@example.com", [address], f"To: {address}\r\nSubject: wake\r\n\r\nx")
            sent = time.perf_counter()
            thread.join(60)
            if woke:
                latencies.append((woke[0] - sent) * 1000)
    close = getattr(client, "close", None)
    if callable(close):
        close()
    return latencies


def delete_wake(http_port: int) -> None:
    """Delete the wake-up messages, so that the database holds the corpus only."""
    api = HTTP(http_port)
    try:
        query = urllib.parse.urlencode({"query": f"to:@{WAKE_DOMAIN}"})
        status, body = api.request("DELETE", f"/api/v1/search?{query}")
    finally:
        api.close()
    if status != 200:
        raise BenchError(f"deleting the wake-up messages answered {status}: {body[:200]!r}")


def readyz(http_port: int) -> bool:
    api = HTTP(http_port)
    try:
        status, _ = api.get("/readyz")
        return status == 200
    except OSError:
        return False
    finally:
        api.close()


def stored_total(http_port: int) -> int:
    api = HTTP(http_port)
    try:
        status, body = api.get("/api/v1/messages?limit=1")
    finally:
        api.close()
    data = json.loads(body) if status == 200 else {}
    return int(data.get("total", 0)) if isinstance(data, dict) else 0


def db_files(db: Path) -> list[Path]:
    return [Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm")]


def remove_db(db: Path) -> None:
    for path in db_files(db):
        path.unlink(missing_ok=True)


def seed_from(db: Path, seed: Path, move: bool) -> None:
    """Start *db* from the smaller database *seed* (moved, or copied when it is kept)."""
    for src, dst in zip(db_files(seed), db_files(db), strict=True):
        if src.exists():
            if move:
                src.replace(dst)
            else:
                shutil.copyfile(src, dst)


def queries_for(corpus: Corpus, stored: int, seed: int) -> dict[str, list[tuple[str, int]]]:
    """Each kind's queries with the match count each must give on messages 0..stored-1."""
    rng = random.Random(seed)
    picks = [rng.randrange(stored) for _ in range(QUERIES)]
    subject = [corpus.subject_words[i % len(corpus.subject_words)] for i in picks]
    body = [rng.choice(corpus.body_words) for _ in picks]
    return {
        "recipient": [(f"to:user{i}@example.com", corpus.expected_recipient(i, stored))
                      for i in picks],
        "subject word": [(f"subject:{w}", corpus.expected_subject(w, stored)) for w in subject],
        "body word": [(w, corpus.expected_free(w, stored)) for w in body],
        "rare body word": [(f"zqref{i}x", corpus.expected_rare(i, stored)) for i in picks],
    }  # fmt: skip


@dataclass
class SizeResult:
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    db: Path | None = None  # the database, for the next size to grow from
    fill_rate: float | None = None  # messages/s filled, for the next size's first estimate


def measure_size(
    n: int,
    corpus: Corpus,
    deadline: float,
    log: Callable[[str], None],
    *,
    keep_db: bool = False,
    seed: Path | None = None,
    rate_guess: float = 300.0,
) -> SizeResult:
    """Every figure for one store size; bounded by *deadline* (``time.monotonic()``).

    *seed*: a smaller database of the same corpus to grow from. With *keep_db* the database
    stays in ``benchmarks/.work`` and the next run starts from it.
    """
    out = SizeResult()
    figures, notes = out.figures, out.notes
    WORK.mkdir(exist_ok=True)
    db = WORK / f"search-{n}.db"
    if not keep_db:
        remove_db(db)
    seeded = not db.exists() and seed is not None and seed.exists()
    if seeded:
        assert seed is not None
        seed_from(db, seed, move=not keep_db)
    out.db = db

    # 1. Fill through the store, up to the SMTP tail.
    tail = min(SMTP_TAIL, n)
    have = db_bytes(db)
    need = max(0, n * DISK_PER_MESSAGE - have)
    free = shutil.disk_usage(WORK).free
    if need > free:
        notes.append(
            f"skipped: {n:,} messages need about {need / 2**30:.1f} GiB free in {WORK}, "
            f"{free / 2**30:.1f} GiB are"
        )
        return out
    log(f"search: filling {db.name} up to {n - tail} messages through the store")
    filled = fill(
        db, n - tail, corpus=corpus, deadline=deadline - RESERVE, rate_guess=rate_guess, log=log
    )
    if filled.added:
        figures["fill_store_rate"] = filled.store_rate
        if filled.index_s > 0.05:
            figures["fill_index_rate"] = filled.index_rate
        figures["fill_rate"] = filled.rate
        out.fill_rate = filled.rate
        during = filled.indexed_while_storing
        notes.append(
            f"fill: {filled.added:,} messages through SQLiteStore.add_many (batches of 500) in "
            f"{filled.store_s:.1f} s, and flush_index after every 5,000, {filled.index_s:.1f} s"
            + (f" (the background indexer had done {during:,} while storing)" if during else "")
        )
    if filled.before:
        origin = "the smaller size" if seeded else "an earlier run (--keep-db)"
        notes.append(f"started from the database of {origin}: {filled.before:,} messages")
    if filled.stopped_early:
        notes.append(f"the fill stopped at {filled.before + filled.added:,}: time budget")
    log(
        f"search: fill {filled.added} in {filled.total_s:.1f} s: storing {filled.store_s:.1f} s, "
        f"flush_index {filled.index_s:.1f} s"
    )

    # 2. serve on it, and the last messages over SMTP.
    server: ServerProcess = start_serve(db, ready_timeout=120.0)
    try:
        ports = serve_ports(server.lines)
        assert ports is not None
        smtp_port, http_port = ports
        ok = readyz(http_port)
        figures["ready_start_ms"] = (time.monotonic() - server.started_at) * 1000
        if not ok:
            notes.append("/readyz did not answer 200 right after the addresses were printed")
        already = stored_total(http_port)
        goal = already + tail if filled.stopped_early else max(already, n)
        budget = max(10.0, deadline - time.monotonic() - 40.0)
        log(f"search: {goal - already} messages of 10 KiB over SMTP (at most {budget:.0f} s)")
        base = corpus.factory()
        loaded = run_load(
            HOST,
            smtp_port,
            sessions=10,
            messages=goal - already,
            reuse=True,
            factory=lambda i: base(i + already),
            timeout=budget,
        )
        if loaded.sent:
            figures["load_rate"] = loaded.rate
        stored = stored_total(http_port)
        if stored != already + loaded.sent:
            notes.append(f"SMTP: client sent {loaded.sent}, the store went {already} -> {stored}")
        if stored < goal:
            notes.append(
                f"SMTP: {stored - already} of {goal - already} in the {budget:.0f} s left (a "
                "message cut off mid-send can leave a gap, and one count off by one)"
            )
        figures["stored"] = stored

        # 3. Searches, every answer checked.
        api = HTTP(http_port)
        try:
            t0 = time.perf_counter()
            api.get("/api/v1/search?" + urllib.parse.urlencode({"query": "to:user0@example.com"}))
            log(f"search: first search {1000 * (time.perf_counter() - t0):.0f} ms (not counted)")
            kinds = queries_for(corpus, stored, seed=n)
            wrong_total = 0
            for index, (kind, queries) in enumerate(kinds.items()):
                left = (deadline - time.monotonic() - 15.0) / (len(kinds) - index)
                limit = min(KIND_SECONDS, max(3.0, left))
                result, cut = search_latencies(api, queries, limit)
                figures[f"{kind} p50"] = percentile(result.times, 50)
                figures[f"{kind} p99"] = percentile(result.times, 99)
                if cut:
                    notes.append(f"{kind}: {result.asked} queries in the {limit:.0f} s allowed")
                if result.wrong:
                    wrong_total += len(result.wrong)
                    examples = ", ".join(
                        f"{q!r} gave {g}, expected {e}" for q, g, e in result.wrong[:3]
                    )
                    notes.append(
                        f"WRONG ANSWERS: {kind}: {len(result.wrong)} of {result.asked} queries "
                        f"answered with a wrong match count or an error ({examples})"
                    )
                slow = "; ".join(f"{q!r} {ms:.1f} ms ({m} matches)" for ms, q, m in result.slowest)
                log(f"search {stored} msgs, slowest {kind}: {slow}")
            figures["wrong"] = wrong_total
            shares = sorted(e / stored for _, e in kinds["body word"])
            notes.append(
                f"body word: {len(shares)} random words of the corpus vocabulary; a search is for "
                f"a substring, so short words match many messages: {shares[0]:.1%} to "
                f"{shares[-1]:.1%} of them, median {shares[len(shares) // 2]:.1%}"
            )
        finally:
            api.close()

        # 4. Memory, wake-up.
        figures["rss_mib"] = server.rss_kib() / 1024
        wake = client_wake(http_port, smtp_port, 50)
        if wake:
            figures["client wake p50"] = percentile(wake, 50)
            figures["client wake p99"] = percentile(wake, 99)
            delete_wake(http_port)
            if stored_total(http_port) != stored:
                notes.append("the wake-up messages could not all be deleted again")
        elif wake is None:
            notes.append("smtpmock.Client not available: wait_for through Client skipped")
    finally:
        server.stop()

    # 5. Disk, and a restart on the same database.
    figures["disk_kib_per_msg"] = db_bytes(db) / max(1, figures.get("stored", 1)) / 1024
    restarted = start_serve(db, ready_timeout=120.0)
    try:
        ports = serve_ports(restarted.lines)
        assert ports is not None
        ok = readyz(ports[1])
        figures["ready_ms"] = (time.monotonic() - restarted.started_at) * 1000
        figures["rss_restart_mib"] = restarted.rss_kib() / 1024
        if not ok:
            notes.append("/readyz did not answer 200 right after the addresses were printed")
    finally:
        restarted.stop()
    return out


def run_search(
    scale: str = "full",
    *,
    budget: float = 400.0,
    keep_db: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> list[Row]:
    """Rows for the results table (all figures are ``smtpmock serve``'s; no peer measured)."""
    sizes = (10_000, 100_000) if scale == "full" else (1_000, 5_000)
    reason = serve_available()
    if reason is not None:
        return [Row("serve with stored 10 KiB messages: search, RSS, ready", "-",
                    {"smtpmock serve": None}, notes=[f"skipped: {reason}"])]  # fmt: skip
    corpus = Corpus()
    started = time.monotonic()
    rows: list[Row] = []
    seed: Path | None = None
    rate_guess = 300.0
    made: list[Path] = []
    try:
        for index, n in enumerate(sizes):
            # The smaller store gets a quarter of the budget, the bigger one the rest (and it
            # grows from the smaller one's database).
            deadline = started + budget * (0.25 if index == 0 else 1.0)
            if time.monotonic() > deadline - 10:
                rows.append(Row(f"serve, {n:,} messages", "-", {"smtpmock serve": None},
                                notes=["skipped: the time budget was spent"]))  # fmt: skip
                break
            log(f"search: {n} messages")
            try:
                result = measure_size(
                    n, corpus, deadline, log, keep_db=keep_db, seed=seed, rate_guess=rate_guess
                )
            except BenchError as exc:
                rows.append(Row(f"serve, {n:,} messages", "-", {"smtpmock serve": None},
                                notes=[f"failed: {exc}"]))  # fmt: skip
                continue
            if result.db is not None:
                made.append(result.db)
                seed = result.db
            if result.fill_rate:
                # Indexing slows a little as the store grows: keep a margin.
                rate_guess = 0.8 * result.fill_rate
            stored = int(result.figures.get("stored", 0))
            label = f"{n // 1000}k" if stored >= n else f"{stored:,}"
            rows += size_rows(label, n, result.figures, result.notes)
    finally:
        if not keep_db:
            for db in made:
                remove_db(db)
    return rows


def size_rows(label: str, n: int, figures: dict[str, float], notes: list[str]) -> list[Row]:
    """The table rows of one store size (only the figures that were measured)."""
    rows: list[Row] = []
    group = f"serve {label} msgs"
    notes = list(notes)
    if n >= 100_000 and figures.get("stored", 0) >= n:
        for kind in KINDS:
            p99 = figures.get(f"{kind} p99")
            if p99 is not None and p99 >= TARGET_P99_MS:
                notes.append(f"{kind} p99 {p99:.1f} ms: above the {TARGET_P99_MS:.0f} ms target")
        rss = figures.get("rss_mib")
        if rss is not None and rss * 1.048576 >= TARGET_RSS_MB:
            notes.append(f"resident memory {rss:.0f} MiB: above the {TARGET_RSS_MB:.0f} MB target")
    if not figures:
        return [Row(f"{group}: -", "-", {"smtpmock serve": None}, notes=notes, label=group)]

    def row(name: str, unit: str, key: str, better_high: bool = False) -> None:
        if key in figures:
            figure: dict[str, float | None] = {"smtpmock serve": figures[key]}
            row_notes = [] if rows else notes  # the notes go with the first row
            rows.append(Row(f"{group}: {name}", unit, figure, better_high, notes=row_notes,
                            label=group))  # fmt: skip

    row("fill, storing (SQLiteStore.add_many, 500 per call)", "msg/s", "fill_store_rate", True)
    row("fill, indexing the rest (flush_index)", "msg/s", "fill_index_rate", True)
    row("fill overall, indexing included", "msg/s", "fill_rate", True)
    row(f"last {SMTP_TAIL:,} over SMTP (10 KiB, 10 conns)", "msg/s", "load_rate", True)
    for kind in KINDS:
        row(f"search {kind} p50", "ms", f"{kind} p50")
        row(f"search {kind} p99", "ms", f"{kind} p99")
    row("searches with a wrong match count", "queries", "wrong")
    row("resident memory after the searches", "MiB", "rss_mib")
    row("resident memory, restarted, idle", "MiB", "rss_restart_mib")
    row("database on disk per message", "KiB", "disk_kib_per_msg")
    row("ready, first start on the filled database", "ms", "ready_start_ms")
    row("ready, restarted on this database", "ms", "ready_ms")
    row("Client.wait_for wake p50", "ms", "client wake p50")
    row("Client.wait_for wake p99", "ms", "client wake p99")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--budget", type=float, default=400.0, help="seconds for the whole part")
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="keep the databases in benchmarks/.work and start from them on the next run",
    )
    args = parser.parse_args()
    print(render_table(run_search(args.scale, budget=args.budget, keep_db=args.keep_db)))


if __name__ == "__main__":
    main()
