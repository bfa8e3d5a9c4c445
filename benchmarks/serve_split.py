"""Where serve's ingest time goes: SQLite storing, the commit's thread hop, background indexing.

::

    python benchmarks/serve_split.py            # needs Postfix's smtp-source

Runs the three ingest shapes of ``ingest.py`` (1 KiB, smtp-source as the client) against an
in-process ``SMTPMock`` in five configurations, each on a new database, and prints messages/s
and the CPU time per message (this process and its index worker):

- ``memory``: the in-process default (``MemoryStore``), for reference;
- ``sqlite (as serve)``: ``SQLiteStore`` as ``smtpmock serve`` uses it (group commit in a worker
  thread, background indexer parsing in a worker process);
- ``sqlite, indexer in this process``: the ``SQLiteStore()`` default, parsing in a thread;
- ``sqlite, no indexer``: the indexer kept idle during the run (``MAX_INDEX_LAG`` and the quiet
  delay raised), which shows what indexing costs the SMTP side while it competes for the GIL;
- ``sqlite, inline commit, no indexer``: the group commit written on the event loop instead of a
  worker thread, which shows what the thread hop costs.

The last two are diagnostics, not configurations smtpmock offers: an inline commit would hold
every session while the indexer holds the store, and an idle indexer only moves its cost to
later. This is a profiling aid (it patches internals), not part of ``run.py``'s table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import smtpmock.store._base as base
import smtpmock.store._sqlite_index as sqlite_store
from smtpmock import SMTPMock
from smtpmock.store import MemoryStore, SQLiteStore, Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import tree_cpu_seconds

SHAPES = (("1 client, new conn.", "-s 1 -m 2000"), ("10 clients, new conn.", "-s 10 -m 4000"),
          ("10 clients x 100/conn.", "-s 10 -m 1000 -d"))  # fmt: skip


async def _inline_write(self: base.GroupCommit) -> None:
    try:
        while self._pending:
            batch, self._pending = self._pending, []
            self.store.add_many([m for m, _ in batch])
            for _, done in batch:
                base._settle(done, None)
    finally:
        self._writer = None


def run(label: str, make_store: Callable[[Path], Store], source: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="smtpmock-split-"))
    try:
        store = make_store(work / "mail.db")
        with SMTPMock(store=store) as mock:
            for shape, args in SHAPES:
                count = int(args.split("-m ")[1].split()[0])
                cpu, wall = tree_cpu_seconds(os.getpid()), time.perf_counter()
                subprocess.run(
                    [source, *args.split(), "-l", "1024", "-f", "a@example.com",
                     "-t", "b@example.com", f"127.0.0.1:{mock.port}"],
                    check=True,
                )  # fmt: skip
                wall, cpu = time.perf_counter() - wall, tree_cpu_seconds(os.getpid()) - cpu
                print(
                    f"{label:36} {shape:24} {count / wall:7.0f} msg/s {cpu / count * 1e6:7.0f} us"
                )
            total = sum(int(a.split("-m ")[1].split()[0]) for _, a in SHAPES)
            assert len(store) == total, f"{len(store)} stored of {total}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not Path(source).exists():
        sys.exit("needs Postfix's smtp-source (Debian: apt-get install postfix)")
    print(f"{'configuration':36} {'shape':24} {'rate':>13} {'CPU/msg':>9}")
    run("memory", lambda _: MemoryStore(), source)
    run("sqlite (as serve)", lambda p: SQLiteStore(p, index_worker=True), source)
    run("sqlite, indexer in this process", SQLiteStore, source)
    sqlite_store.MAX_INDEX_LAG, sqlite_store._INDEX_QUIET = 10**9, 1e9
    run("sqlite, no indexer", SQLiteStore, source)
    base.GroupCommit._write = _inline_write  # type: ignore[method-assign]
    run("sqlite, inline commit, no indexer", SQLiteStore, source)


if __name__ == "__main__":
    main()
