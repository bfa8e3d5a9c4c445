"""smtpmock in-process, as a benchmark target: ``SMTPMock()`` on 127.0.0.1 and a free port.

Prints ``PORT <n>``; then answers ``count`` on stdin with ``COUNT <n>`` (messages stored) and
stops the server on end of input. ``--profile PATH`` runs cProfile inside the server's loop
thread for the whole run and writes the stats to PATH on exit (see ``benchmarks/PROFILE.md``).
``--store sqlite`` stores in a temporary SQLite file as ``smtpmock serve`` does (committed before
``250``, indexed by a worker process), without the HTTP side; ``count`` then indexes what is
pending first, as serve's listing does, so indexing is not left running after a run.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import tempfile
from pathlib import Path

from smtpmock import SMTPMock
from smtpmock.store import SQLiteStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", help="write cProfile stats of the server thread here")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smtpmock-bench-") as work:
        store = None
        if args.store == "sqlite":
            store = SQLiteStore(Path(work) / "mail.db", index_worker=True)
        try:
            serve(SMTPMock(store=store), args.profile)
        finally:
            if store is not None:
                store.close()


def serve(mock: SMTPMock, profile_path: str | None) -> None:
    with mock:
        profiler = cProfile.Profile() if profile_path else None
        if profiler is not None:

            async def enable() -> None:  # cProfile profiles the thread that enables it
                profiler.enable()

            mock.run_in_loop(enable)
        print(f"PORT {mock.port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                if isinstance(mock.store, SQLiteStore):
                    mock.store.flush_index()
                print(f"COUNT {len(mock.store)}", flush=True)
        if profiler is not None:
            assert profile_path is not None

            async def disable() -> None:
                profiler.disable()

            mock.run_in_loop(disable)
            profiler.dump_stats(profile_path)


if __name__ == "__main__":
    main()
