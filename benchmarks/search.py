"""``smtpmock serve`` with many stored messages: search latency, memory, time to be ready.

::

    python benchmarks/search.py                 # 10k and 100k messages of 10 KiB
    python benchmarks/search.py --scale small   # 1k and 5k

For each size N: start ``python -m smtpmock serve`` (SQLite) on free ports with a new database,
load N messages of 10 KiB over SMTP (``loadgen.py``, 10 connections kept open), then measure

- search latency p50/p99 over HTTP (``GET /api/v1/search?query=``, one kept-alive connection,
  200 queries of each kind): a recipient (``to:user123@example.com``, 1 match), a subject word
  (about N/500 matches), a body word (a few % of messages) and a rare body word (1 match);
- resident memory of the serve process (``VmRSS``) with N messages stored;
- the time for ``serve`` to be ready (spawned to both addresses printed and ``/readyz`` answering)
  when restarted on that database;
- ``Client.wait_for`` wake-up latency through the server (``sendmail`` returned ``250`` to the
  waiting thread returning), when ``smtpmock.Client`` exists.

The load is bounded by a time budget: if the server cannot take N messages in time, the figures
are measured at the size reached, and the row says so. When ``smtpmock serve`` does not exist
yet the part is skipped with a note. Targets from issue 7: search p99 < 20 ms and RSS < 200 MB
at 100k messages.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import smtplib
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import HOST, WORK, BenchError, Row, ServerProcess, percentile, render_table
from ingest import serve_available, serve_ports, start_serve
from loadgen import MessageFactory, run_load

MESSAGE_SIZE = 10 * 1024
QUERIES = 200
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "nu",
    "pe",
    "ri",
    "sa",
    "to",
    "vu",
    "ze",
    "bra",
    "cli",
    "dro",
    "fen",
    "gul",
    "hap",
    "jor",
    "kes",
    "lim",
    "mor",
]


def vocabulary(size: int, seed: int = 7) -> list[str]:
    """*size* distinct pronounceable pseudo-words (deterministic)."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Corpus:
    """Deterministic 10 KiB messages whose words are known, so queries have known answers."""

    def __init__(self, seed: int = 11) -> None:
        rng = random.Random(seed)
        self.words = vocabulary(20_000)
        self.subject_words = self.words[:500]
        text = " ".join(rng.choice(self.words[500:]) for _ in range(60_000))
        self.text = text.encode()

    def factory(self) -> MessageFactory:
        text, size, subject_words = self.text, MESSAGE_SIZE, self.subject_words

        def make(i: int) -> tuple[str, list[str], bytes]:
            start = (i * 7919) % (len(text) - size)
            start = text.index(b" ", start) + 1
            body = text[start : start + size - 40]
            lines = b"\r\n".join(body[j : j + 76] for j in range(0, len(body), 76))
            subject = f"{subject_words[i % 500]} order {i}"
            head = (
                f"From: Shop <shop@example.com>\r\nTo: <user{i}@example.com>\r\n"
                f"Subject: {subject}\r\nMessage-ID: <{i}.search@example.com>\r\n\r\n"
                f"reference zqref{i}x\r\n"
            ).encode()
            return "shop@example.com", [f"user{i}@example.com"], head + lines + b"\r\n"

        return make


class HTTP:
    """One kept-alive HTTP connection to the serve API (127.0.0.1 only)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def search_latencies(
    api: HTTP,
    queries: list[tuple[str, int | None]],
    notes: list[str],
    kind: str,
    time_limit: float,
) -> list[float]:
    """Milliseconds per query (at least 5, then until *time_limit* s); match counts checked."""
    times: list[float] = []
    wrong = 0
    stop_at = time.monotonic() + time_limit
    for query, expected in queries:
        if len(times) >= 5 and time.monotonic() > stop_at:
            notes.append(f"{kind}: {len(times)} queries in the {time_limit:.0f} s allowed")
            break
        path = "/api/v1/search?" + urllib.parse.urlencode({"query": query, "limit": 50})
        t0 = time.perf_counter()
        status, body = api.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise BenchError(f"search {query!r} answered {status}: {body[:200]!r}")
        if expected is not None:
            data = json.loads(body)
            got = data.get("messages_count", data.get("total")) if isinstance(data, dict) else None
            if got is not None and got != expected:
                wrong += 1
    if wrong:
        notes.append(f"{kind}: {wrong}/{len(times)} queries had an unexpected match count")
    return times


def client_wake(http_port: int, smtp_port: int, rounds: int) -> list[float] | None:
    """``Client.wait_for`` latency (ms): ``sendmail`` returned to the waiter returning."""
    try:
        from smtpmock import Client  # type: ignore[attr-defined]
    except ImportError:
        return None
    client = Client(f"http://{HOST}:{http_port}")
    latencies: list[float] = []
    with smtplib.SMTP(HOST, smtp_port, timeout=30) as smtp:
        for k in range(rounds):
            address = f"wake{k}.{time.monotonic_ns()}@example.com"
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


def remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def measure_size(
    n: int, corpus: Corpus, deadline: float, log: Callable[[str], None], keep_db: bool = False
) -> tuple[dict[str, float], list[str]]:
    """Every figure for one store size; bounded by *deadline* (``time.monotonic()``).

    With *keep_db* the database is kept in ``benchmarks/.work`` and the next run tops it up
    from where this one stopped, so a store too big to fill within one run's budget is built
    over several runs.
    """
    figures: dict[str, float] = {}
    notes: list[str] = []
    WORK.mkdir(exist_ok=True)
    db = WORK / f"search-{n}.db"
    if not keep_db:
        remove_db(db)
    server: ServerProcess = start_serve(db)
    try:
        figures["ready_start_ms"] = server.ready_after * 1000
        ports = serve_ports(server.lines)
        assert ports is not None
        smtp_port, http_port = ports
        already = stored_total(http_port) if keep_db else 0
        if already:
            notes.append(f"{already} messages kept from an earlier run (--keep-db)")
        load_budget = max(10.0, (deadline - time.monotonic()) * 0.6)
        log(f"search: loading {n - already} messages of 10 KiB (at most {load_budget:.0f} s)")
        base = corpus.factory()
        loaded = run_load(
            HOST,
            smtp_port,
            sessions=10,
            messages=max(0, n - already),
            reuse=True,
            factory=lambda i: base(i + already),
            timeout=load_budget,
        )
        if loaded.sent:
            figures["load_rate"] = loaded.rate
        stored = already + loaded.sent
        if stored < n:
            notes.append(f"loaded {stored} of {n} messages in the {load_budget:.0f} s budget")
        figures["stored"] = stored
        api = HTTP(http_port)
        rng = random.Random(n)
        try:
            picks = [rng.randrange(stored) for _ in range(QUERIES)] if stored else []
            kinds: dict[str, list[tuple[str, int | None]]] = {
                "recipient": [(f"to:user{i}@example.com", 1) for i in picks],
                "subject word": [(f"subject:{corpus.subject_words[i % 500]}", None) for i in picks],
                "body word": [(rng.choice(corpus.words[500:]), None) for _ in picks],
                "rare body word": [(f"zqref{i}x", 1) for i in picks],
            }
            per_kind = max(3.0, (deadline - time.monotonic()) * 0.7 / len(kinds))
            for kind, queries in kinds.items():
                times = search_latencies(api, queries, notes, kind, per_kind)
                figures[f"{kind} p50"] = percentile(times, 50)
                figures[f"{kind} p99"] = percentile(times, 99)
        finally:
            api.close()
        figures["rss_mib"] = server.rss_kib() / 1024
        wake = client_wake(http_port, smtp_port, 50)
        if wake:
            figures["client wake p50"] = percentile(wake, 50)
            figures["client wake p99"] = percentile(wake, 99)
        elif wake is None:
            notes.append("smtpmock.Client not available: wait_for through Client skipped")
    finally:
        server.stop()
    # Restart on the same database: the time to be ready with the messages stored.
    restarted = start_serve(db)
    try:
        ports = serve_ports(restarted.lines)
        assert ports is not None
        ok = readyz(ports[1])
        figures["ready_ms"] = (time.monotonic() - restarted.started_at) * 1000
        if not ok:
            notes.append("/readyz did not answer 200 right after the addresses were printed")
    finally:
        restarted.stop()
    if not keep_db:
        remove_db(db)
    return figures, notes


def run_search(
    scale: str = "full",
    *,
    budget: float = 240.0,
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
    for index, n in enumerate(sizes):
        # The smaller store gets a third of the budget, the bigger one the rest.
        deadline = started + budget * (0.35 if index == 0 else 1.0)
        if time.monotonic() > deadline:
            break
        log(f"search: {n} messages")
        try:
            figures, notes = measure_size(n, corpus, deadline, log, keep_db)
        except BenchError as exc:
            rows.append(Row(f"serve, {n:,} messages", "-", {"smtpmock serve": None},
                            notes=[f"failed: {exc}"]))  # fmt: skip
            continue
        label = f"{n // 1000}k" if figures.get("stored", n) >= n else f"{int(figures['stored']):,}"
        rows += size_rows(label, figures, notes)
    return rows


def size_rows(label: str, figures: dict[str, float], notes: list[str]) -> list[Row]:
    """The table rows of one store size (only the figures that were measured)."""
    rows: list[Row] = []
    group = f"serve {label} msgs"

    def row(name: str, unit: str, key: str, better_high: bool = False) -> None:
        if key in figures:
            first = name.startswith("load")
            scenario = f"serve {label} msgs: {name}"
            figure: dict[str, float | None] = {"smtpmock serve": figures[key]}
            row_notes = notes if first else []
            rows.append(Row(scenario, unit, figure, better_high, notes=row_notes, label=group))

    row("load over SMTP (10 KiB, 10 conns)", "msg/s", "load_rate", True)
    for kind in ("recipient", "subject word", "body word", "rare body word"):
        row(f"search {kind} p50", "ms", f"{kind} p50")
        row(f"search {kind} p99", "ms", f"{kind} p99")
    row("resident memory", "MiB", "rss_mib")
    row("ready at start (first run: empty database)", "ms", "ready_start_ms")
    row("ready, restarted on this database", "ms", "ready_ms")
    row("Client.wait_for wake p50", "ms", "client wake p50")
    row("Client.wait_for wake p99", "ms", "client wake p99")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for the whole part")
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="keep the databases in benchmarks/.work and top them up on the next run",
    )
    args = parser.parse_args()
    print(render_table(run_search(args.scale, budget=args.budget, keep_db=args.keep_db)))


if __name__ == "__main__":
    main()
