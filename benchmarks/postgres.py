"""``smtpmock serve`` on PostgreSQL, beside ``serve`` on SQLite in the same run (issue 25).

::

    python benchmarks/postgres.py                 # full scale
    python benchmarks/postgres.py --scale small   # the smoke run's size
    python benchmarks/run.py --only postgres      # the same, as a part of the one table

The database is a throwaway cluster of the run's own (``initdb`` in a temporary directory, a
unix socket only: ``tests/pg.py``), with PostgreSQL's durable defaults (``fsync`` and
``synchronous_commit`` on: a ``250`` means the commit reached the disk), removed at the end.
Without PostgreSQL (no ``initdb``, no psycopg) the part is skipped with a note, except where
``SMTPMOCK_REQUIRE_POSTGRES=1`` (CI), where that is a failure.

1. **Ingest**, the three shapes of ``ingest.py`` (1 KiB messages from ``smtp-source``):
   ``serve`` on PostgreSQL and ``serve`` on SQLite side by side, runs interleaved; CPU per
   stored message of the ``serve`` process, and of the PostgreSQL server (all its processes).
2. **Two instances, one database**: 10 clients spread over two ``serve`` instances (5 each,
   connections kept) against 10 clients on one instance, both on PostgreSQL.
3. **Cross-instance wake-up**: ``Client(B).wait_for(...)`` waiting when the mail is sent to
   instance A; from ``sendmail`` returning (A's ``250``) to the wait returning on B, p50/p99
   (target p99 < 50 ms).
4. **Search at scale**: the 10 KiB corpus of ``search.py`` (``_corpus.py``) stored through
   ``PostgresStore.add_many`` (batches of 2000: larger than ``serve``'s group commits) up to N
   messages (full: 100k, or what the time budget allows; small: 2k), then ``serve`` on it and
   the same HTTP searches as ``search.py`` (recipient, subject word, body word, rare body word),
   every match count checked; p50/p99 per kind (targets p99 < 20 ms for recipient and subject
   word, < 100 ms for a common body word), resident memory of ``serve`` after them.
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/pg.py: the cluster

from _corpus import Corpus
from _harness import (
    CLOCK_TICKS,
    HOST,
    VENV_PYTHON,
    BenchError,
    Row,
    ServerProcess,
    percentile,
    render_table,
    tree_cpu_seconds,
)
from ingest import (
    SHAPES,
    Client,
    ServeTarget,
    Shape,
    Target,
    have_smtp_source,
    http_get_json,
    loadgen,
    measure_side_by_side,
    serve_available,
    serve_ports,
    smtp_source,
)
from search import HTTP, queries_for, search_latencies

PG = "smtpmock serve"  # the subject column: serve on PostgreSQL
SQLITE = "serve on SQLite"
WAKE_TARGET_MS = 50.0
FILL_BATCH = 2000  # messages per add_many when filling the search corpus (one commit each)
SEARCH_TARGETS_MS = {"recipient": 20.0, "subject word": 20.0, "body word": 100.0}


def log_stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Cluster:
    """The run's own PostgreSQL (tests/pg.py's cluster, with durable settings)."""

    def __init__(self) -> None:
        from tests.pg import LocalCluster, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise BenchError("no PostgreSQL: initdb not found")
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise BenchError("no psycopg: pip install -e '.[postgres]'") from exc
        self.cluster = LocalCluster(
            bindir,
            settings={"fsync": "on", "full_page_writes": "on", "shared_buffers": "128MB"},
        )
        self.cluster.start()
        self._databases = 0

    def database(self) -> str:
        """A new database (with pg_trgm created by the first store that opens it)."""
        import psycopg

        self._databases += 1
        name = f"bench{self._databases}"
        with psycopg.connect(self.cluster.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.cluster.admin_url.replace("/postgres?", f"/{name}?", 1)

    def postmaster(self) -> int:
        pid_file = self.cluster.data / "postmaster.pid"
        return int(pid_file.read_text().split()[0])

    def cpu_seconds(self) -> float:
        """CPU time of the PostgreSQL server: the postmaster and its live processes, and the
        backends that have ended (counted in the postmaster's children's time)."""
        postmaster = self.postmaster()
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        ended = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS  # cutime + cstime
        return tree_cpu_seconds(postmaster) + ended

    def close(self) -> None:
        self.cluster.stop()


class PostgresServeTarget(Target):
    name = PG

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.urls: list[str] = []  # the database of each server started

    def available(self) -> str | None:
        return serve_available()

    def start(self) -> ServerProcess:
        self.urls.append(self.cluster.database())
        return start_serve_on(self.urls[-1])

    def stored(self) -> int:
        """Messages stored in the databases of the servers started so far."""
        import psycopg

        total = 0
        for url in self.urls:
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT messages FROM smtpmock_state").fetchone()
            total += int(row[0]) if row else 0
        return total

    def port(self, server: ServerProcess) -> int:
        ports = serve_ports(server.lines)
        assert ports is not None
        return ports[0]

    def count(self, server: ServerProcess) -> int | None:
        ports = serve_ports(server.lines)
        assert ports is not None
        body = http_get_json(f"http://{HOST}:{ports[1]}/api/v1/messages?limit=1")
        if isinstance(body, dict) and isinstance(body.get("total"), int):
            return int(body["total"])
        return None


class SQLiteServeTarget(ServeTarget):
    name = SQLITE


def start_serve_on(url: str, ready_timeout: float = 60.0) -> ServerProcess:
    """``python -m smtpmock serve --db URL`` on free ports (as ``ingest.start_serve``)."""
    argv = [
        VENV_PYTHON, "-m", "smtpmock", "serve",
        "--smtp-host", HOST, "--smtp-port", "0", "--http-host", HOST, "--http-port", "0",
        "--db", url,
    ]  # fmt: skip
    return ServerProcess(
        argv,
        ready=lambda lines: serve_ports(lines) is not None,
        ready_timeout=ready_timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ).start()


def ports_of(server: ServerProcess) -> tuple[int, int]:
    ports = serve_ports(server.lines)
    if ports is None:
        raise BenchError("serve printed no addresses")
    return ports


# ------------------------------------------------------------------------------ 1. ingest


def ingest_rows(
    cluster: Cluster, scale: str, client: Client, client_name: str, log: Callable[[str], None]
) -> list[Row]:
    repeat = 3 if scale == "full" else 1
    run_timeout = 20.0 if scale == "full" else 10.0
    pg_target = PostgresServeTarget(cluster)
    targets: list[Target] = [pg_target, SQLiteServeTarget()]
    rows: list[Row] = []
    for shape in SHAPES:
        log(f"postgres: ingest {shape.key}: serve on PostgreSQL and on SQLite")
        cpu_before = cluster.cpu_seconds()
        stored_before = pg_target.stored()
        results = measure_side_by_side(
            targets, shape, scale=scale, repeat=repeat, client=client, run_timeout=run_timeout
        )
        pg_cpu = cluster.cpu_seconds() - cpu_before  # includes start-up and warm-up (small)
        row = Row(f"PostgreSQL: {shape.title}", "msg/s", {})
        cpu = Row(
            f"PostgreSQL: serve CPU per stored message ({shape.key})",
            "us",
            {},
            higher_is_better=False,
        )
        db_cpu = Row(
            f"PostgreSQL: database CPU per stored message ({shape.key})",
            "us",
            {},
            higher_is_better=False,
        )
        row.notes.append(
            f"client {client_name}, {shape.messages(scale)} messages x {repeat} rounds, "
            "side by side, runs interleaved; PostgreSQL with fsync and synchronous_commit on"
        )
        for target in targets:
            result = results[target.name]
            row.figures[target.name] = result.rate
            cpu.figures[target.name] = result.cpu_us
            if result.note:
                row.notes.append(f"{target.name}: {result.note}")
        stored = pg_target.stored() - stored_before  # the runs and the warm-up
        db_cpu.figures[PG] = pg_cpu / stored * 1e6 if stored else None
        db_cpu.notes.append(
            "CPU of the PostgreSQL server processes over the shape's runs, per message stored "
            "through serve on PostgreSQL (SQLite has no server; its cost is in serve's row)"
        )
        rows += [row, cpu, db_cpu]
    return rows


# ------------------------------------------------------------------------------ 2. two instances


def two_instance_rows(
    cluster: Cluster, scale: str, client: Client, log: Callable[[str], None]
) -> list[Row]:
    per_connection = 100 if scale == "full" else 30
    messages = 10 * per_connection
    url = cluster.database()
    log("postgres: ingest through one and through two instances on one database")
    figures: dict[str, float | None] = {}
    notes = [
        f"10 clients x {per_connection} messages per connection; two instances: 5 clients each, "
        "at the same time"
    ]
    with start_serve_on(url) as a, start_serve_on(url) as b:
        for server in (a, b):
            client(ports_of(server)[0], Shape("warm", "", 1, True), 20, 30.0)
        one = client(ports_of(a)[0], Shape("one", "", 10, True), messages, 60.0)
        figures["one instance, 10 clients"] = (
            messages / one.elapsed if one.sent and not one.error else None
        )
        runs: list[Any] = [None, None]
        start = time.perf_counter()

        def drive(k: int, server: ServerProcess) -> None:
            runs[k] = client(ports_of(server)[0], Shape("half", "", 5, True), messages // 2, 60.0)

        threads = [threading.Thread(target=drive, args=(k, s)) for k, s in enumerate((a, b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        ok = all(r is not None and r.sent and not r.error for r in runs)
        figures[PG] = messages / elapsed if ok else None
        total = http_get_json(f"http://{HOST}:{ports_of(b)[1]}/api/v1/messages?limit=1")
        stored = total.get("total") if isinstance(total, dict) else None
        expected = 40 + messages * 2
        if stored != expected:
            notes.append(f"stored {stored}, expected {expected}")
    row = Row("PostgreSQL: two serve instances, one database, 10 clients", "msg/s", figures)
    row.notes += notes
    return [row]


# ------------------------------------------------------------------------------ 3. wake-up


def wake_rows(cluster: Cluster, scale: str, log: Callable[[str], None]) -> list[Row]:
    from smtpmock import Client as RemoteClient

    rounds = 200 if scale == "full" else 30
    url = cluster.database()
    log(f"postgres: cross-instance wait wake-up, {rounds} rounds")
    latencies: list[float] = []
    with start_serve_on(url) as a, start_serve_on(url) as b:
        smtp_a = ports_of(a)[0]
        remote = RemoteClient(f"http://{HOST}:{ports_of(b)[1]}")
        with smtplib.SMTP(HOST, smtp_a, timeout=30) as smtp:
            for k in range(rounds + 5):
                address = f"wake{k}@wake.bench.invalid"
                woke: list[float] = []
                waiting = threading.Event()

                def waiter(
                    address: str = address,
                    woke: list[float] = woke,
                    waiting: threading.Event = waiting,
                ) -> None:
                    waiting.set()
                    remote.wait_for(1, to=address, timeout=30)  # a new address: only this mail
                    woke.append(time.perf_counter())

                thread = threading.Thread(target=waiter)
                thread.start()
                waiting.wait()
                # A benchmark, not a test: a pause so that B's long-poll is parked when the
                # mail goes to A (the wake-up is what is measured, not a first look).
                time.sleep(0.02)
                smtp.sendmail("wake@example.com", [address], f"To: {address}\r\n\r\nx")
                sent = time.perf_counter()
                thread.join(60)
                if woke and k >= 5:  # the first rounds warm up both instances
                    latencies.append((woke[0] - sent) * 1000)
        remote.close()
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    row = Row(
        "PostgreSQL: wait on instance B wakes on mail to instance A, p50",
        "ms",
        {PG: p50 if latencies else None},
        higher_is_better=False,
    )
    row99 = Row(
        "PostgreSQL: wait on instance B wakes on mail to instance A, p99",
        "ms",
        {PG: p99 if latencies else None},
        higher_is_better=False,
    )
    row99.notes.append(
        f"{len(latencies)} rounds: Client(B).wait_for long-polling when the mail is sent to A; "
        f"from A's 250 to B's answer; target p99 < {WAKE_TARGET_MS:g} ms"
        + ("" if not latencies or p99 < WAKE_TARGET_MS else " (missed)")
    )
    return [row, row99]


# ------------------------------------------------------------------------------ 4. search


def fill(url: str, corpus: Corpus, n: int, deadline: float) -> tuple[int, float]:
    """Store corpus messages 0..n-1 through ``PostgresStore.add_many`` (batches of 2000) until
    *deadline*; return how many and the rate."""
    from smtpmock import Message
    from smtpmock.store._postgres import PostgresStore

    store = PostgresStore(url)
    start = time.perf_counter()
    done = 0
    try:
        while done < n and time.monotonic() < deadline:
            batch = []
            for i in range(done, min(n, done + FILL_BATCH)):
                mail_from, rcpt_tos = corpus.envelope(i)
                batch.append(Message(corpus.raw(i), mail_from=mail_from, rcpt_tos=rcpt_tos))
            store.add_many(batch)
            done += len(batch)
    finally:
        store.close()
    return done, done / (time.perf_counter() - start)


def search_rows(
    cluster: Cluster, scale: str, budget: float, log: Callable[[str], None]
) -> list[Row]:
    n = 100_000 if scale == "full" else 2_000
    deadline = time.monotonic() + max(10.0, budget - 60.0)  # the rest: serve and the searches
    url = cluster.database()
    corpus = Corpus()
    log(f"postgres: storing up to {n} corpus messages (10 KiB) through PostgresStore.add_many")
    stored, rate = fill(url, corpus, n, deadline)
    label = f"{stored // 1000}k" if stored >= 1000 else str(stored)
    log(f"postgres: {stored} stored at {rate:.0f} msg/s; searching through serve")
    rows: list[Row] = []
    fill_row = Row(
        f"PostgreSQL: store 10 KiB messages (add_many x {FILL_BATCH}, to {label})",
        "msg/s",
        {PG: rate},
    )
    if stored < n:
        fill_row.notes.append(f"stopped at {stored} of {n} by the time budget")
    rows.append(fill_row)
    with start_serve_on(url) as server:
        api = HTTP(ports_of(server)[1])
        try:
            per_kind = queries_for(corpus, stored, seed=5)
            for kind, queries in per_kind.items():
                result, cut = search_latencies(api, queries, 15.0 if scale == "full" else 5.0)
                for pct in (50, 99):
                    row = Row(
                        f"PostgreSQL: search {kind} at {label}, p{pct}",
                        "ms",
                        {PG: percentile(result.times, pct) if result.times else None},
                        higher_is_better=False,
                    )
                    rows.append(row)
                target = SEARCH_TARGETS_MS.get(kind)
                p99 = percentile(result.times, 99)
                note = f"{result.asked} queries, {len(result.wrong)} wrong counts"
                if target is not None:
                    note += f"; target p99 < {target:g} ms" + ("" if p99 < target else " (missed)")
                if cut:
                    note += "; cut short by its time limit"
                if result.wrong:
                    note += f"; e.g. {result.wrong[0]}"
                rows[-1].notes.append(note)
        finally:
            api.close()
        rss = Row(
            f"PostgreSQL: serve resident memory at {label}",
            "MB",
            {PG: server.rss_kib() / 1024},
            higher_is_better=False,
        )
        rows.append(rss)
    return rows


# ------------------------------------------------------------------------------ the part


def run_postgres(
    scale: str = "full",
    *,
    budget: float = 400.0,
    log: Callable[[str], None] = log_stderr,
) -> tuple[list[Row], str | None]:
    """Every PostgreSQL figure; ``(rows, why not)`` where *why not* says why it did not run."""
    reason = serve_available()
    if reason is not None:
        return [], reason
    started = time.monotonic()
    try:
        cluster = Cluster()
    except (BenchError, OSError, RuntimeError) as exc:
        return [], str(exc)
    use_source = have_smtp_source()
    client: Client = smtp_source if use_source else loadgen
    client_name = "smtp-source" if use_source else "loadgen.py"
    rows: list[Row] = []
    try:
        rows += ingest_rows(cluster, scale, client, client_name, log)
        rows += two_instance_rows(cluster, scale, client, log)
        rows += wake_rows(cluster, scale, log)
        left = budget - (time.monotonic() - started)
        rows += search_rows(cluster, scale, left, log)
    finally:
        cluster.close()
    return rows, None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", choices=("small", "full"), default=os.environ.get("SMTPMOCK_BENCH_SCALE", "full")
    )
    parser.add_argument("--budget", type=float, default=400.0, help="seconds for the whole part")
    parser.add_argument("--json", action="store_true", help="rows as JSON on the last line")
    args = parser.parse_args()
    rows, reason = run_postgres(args.scale, budget=args.budget)
    if reason is not None:
        print(f"PostgreSQL part skipped: {reason}", file=sys.stderr)
        if os.environ.get("SMTPMOCK_REQUIRE_POSTGRES") == "1":
            sys.exit(1)
    if args.json:
        print(json.dumps({"rows": [row.__dict__ for row in rows]}))
    else:
        print(render_table(rows))


if __name__ == "__main__":
    main()
