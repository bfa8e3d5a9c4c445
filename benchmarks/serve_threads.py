"""Where a stored message's CPU goes, per thread and process.

::

    python benchmarks/serve_threads.py                 # SQLite as serve stores, 3,000 messages
    python benchmarks/serve_threads.py --store memory --messages 5000
    python benchmarks/serve_threads.py --store serve   # the real `smtpmock serve` (HTTP side too)
    python benchmarks/serve_threads.py --store serve --sessions 10 --reuse --messages 20000

Runs ``baselines/smtpmock_inproc.py`` (``--store sqlite``: as ``smtpmock serve`` stores, index
worker included) or ``python -m smtpmock serve --db <file>`` (``--store serve``: its log thread,
HTTP side and listeners included), warms it up, sends the messages with ``smtp-source``
(``-s 1`` and a new connection per message unless told otherwise), and prints the CPU time per
message of each of the server's threads and of its child processes
(``/proc/PID/task/*/stat``): during the run, and for the count asked after it (serve indexes
what is pending to answer). The busiest thread is the SMTP loop: the one whose time caps the
rate of one client (PROFILE.md, "2026-12-04"). Linux only.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    CLOCK_TICKS,
    HERE,
    HOST,
    SMTP_SOURCE,
    VENV_PYTHON,
    ServerProcess,
    cpu_ticks,
    process_tree,
)
from ingest import http_get_json, serve_ports, start_serve


def snapshot(pid: int) -> dict[str, int]:
    """CPU ticks of each thread of *pid* (``thread <tid>``) and of each child process."""
    found: dict[str, int] = {}
    for task in sorted(Path(f"/proc/{pid}/task").iterdir(), key=lambda p: int(p.name)):
        try:
            found[f"thread {task.name}"] = cpu_ticks(task / "stat")
        except OSError:
            continue  # ended meanwhile
    for child in process_tree(pid)[1:]:
        try:
            found[f"child process {child}"] = cpu_ticks(Path(f"/proc/{child}/stat"))
        except OSError:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("memory", "sqlite", "serve"), default="sqlite")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=1, help="smtp-source -s (clients)")
    parser.add_argument("--reuse", action="store_true", help="kept connections (smtp-source -d)")
    args = parser.parse_args()
    if not Path(SMTP_SOURCE).exists():
        sys.exit(f"needs Postfix's smtp-source at {SMTP_SOURCE} (Debian: apt-get install postfix)")
    with contextlib.ExitStack() as cleanup:
        if args.store == "serve":
            db = Path(cleanup.enter_context(tempfile.TemporaryDirectory())) / "serve.db"
            server = cleanup.enter_context(start_serve(db))
            smtp, http = serve_ports(server.lines) or (0, 0)
            url = f"http://{HOST}:{http}/api/v1/messages?limit=1"

            def stored_count() -> int:
                # The listing's total: serve indexes what is pending first.
                return int(http_get_json(url, timeout=300)["total"])  # type: ignore[index]
        else:
            script = HERE / "baselines" / "smtpmock_inproc.py"
            server = cleanup.enter_context(
                ServerProcess([VENV_PYTHON, str(script), "--store", args.store]).start()
            )
            assert server.match is not None
            smtp, stored_count = int(server.match.group(1)), server.count
        target = f"{HOST}:{smtp}"
        source = [SMTP_SOURCE, "-s", str(args.sessions), "-l", "1024", "-M", "localhost"]
        if args.reuse:
            source.append("-d")
        subprocess.run([*source, "-m", "300", target], check=True)  # warm-up
        stored_count()
        before = snapshot(server.pid)
        started = time.perf_counter()
        subprocess.run([*source, "-m", str(args.messages), target], check=True)
        elapsed = time.perf_counter() - started
        during = snapshot(server.pid)
        stored = stored_count()
        after = snapshot(server.pid)
    n = args.messages
    shape = "kept connections" if args.reuse else "a new connection per message"
    print(f"store {args.store}: {n} messages, {args.sessions} client(s), {shape}: "
          f"{n / elapsed:.0f} msg/s; {stored} stored in all")  # fmt: skip
    print(f"{'':28} {'during the run':>16} {'the count after':>16}   (us of CPU per message)")
    rows = sorted(during, key=lambda k: during[k] - before.get(k, 0), reverse=True)
    for name in rows:
        run = (during[name] - before.get(name, 0)) / CLOCK_TICKS / n * 1e6
        count = (after.get(name, during[name]) - during[name]) / CLOCK_TICKS / n * 1e6
        if run or count:
            label = f"{name} (SMTP loop)" if name == rows[0] else name
            print(f"{label:28} {run:16.0f} {count:16.0f}")


if __name__ == "__main__":
    main()
