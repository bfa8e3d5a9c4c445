"""What Python's cyclic garbage collector costs smtpmock's ingest, in-process (memory store).

::

    python benchmarks/gc_cost.py               # needs Postfix's smtp-source
    python benchmarks/gc_cost.py --messages 3000 --runs 3

Two figures, each from a real ``SMTPMock()`` in this process:

- **cyclic garbage per connection**: 100 smtplib sessions with the collector off, then one
  collection with ``gc.DEBUG_SAVEALL``; what it finds is what reference counting could not free
  (the test ``test_an_ended_connection_is_freed_without_the_garbage_collector`` holds it at 0);
- **collector time per message**: ``gc.callbacks`` time every collection, by generation, while
  ``smtp-source`` sends 1 KiB messages with one client and a new connection per message (the
  shape where the collector's share is largest).

A profiling aid (``PROFILE.md``), not part of ``run.py``'s table.
"""

from __future__ import annotations

import argparse
import collections
import gc
import shutil
import smtplib
import subprocess
import sys
import time
from typing import Any

from smtpmock import SMTPMock


def cyclic_garbage_per_connection(mock: SMTPMock, sessions: int = 100) -> collections.Counter[str]:
    gc.collect()
    gc.disable()
    try:
        for _ in range(sessions):
            with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
                client.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nbody\r\n")
        mock.wait_for_sessions(sessions)
        time.sleep(0.2)  # the last session's task ends on the server's loop
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = collections.Counter(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    return found


def collector_time(mock: SMTPMock, source: str, messages: int) -> dict[int, tuple[int, float]]:
    stats = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            entry = stats[info["generation"]]
            entry[0] += 1
            entry[1] += time.perf_counter() - started[0]

    gc.callbacks.append(timed)
    try:
        subprocess.run(
            [source, "-s", "1", "-m", str(messages), "-l", "1024", "-f", "a@example.com",
             "-t", "b@example.com", f"127.0.0.1:{mock.port}"],
            check=True,
        )  # fmt: skip
    finally:
        gc.callbacks.remove(timed)
    return {g: (int(n), float(t)) for g, (n, t) in stats.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000, help="per run (default 3000)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    with SMTPMock() as mock:
        found = cyclic_garbage_per_connection(mock)
        total = sum(found.values())
        print(f"cyclic garbage per connection: {total / 100:.1f} objects")
        for name, count in found.most_common(8):
            print(f"  {count / 100:5.2f} {name}")
        if not shutil.which(source):
            sys.exit("the collector's time needs Postfix's smtp-source (apt-get install postfix)")
        for run in range(1, args.runs + 1):
            stats = collector_time(mock, source, args.messages)
            spent = sum(t for _, t in stats.values())
            by_gen = ", ".join(f"gen{g} {n} x {t * 1e3:.1f} ms" for g, (n, t) in stats.items())
            print(
                f"run {run}: {spent * 1e6 / args.messages:.1f} us of collection per message"
                f" ({by_gen}; {len(mock.store)} messages kept)"
            )


if __name__ == "__main__":
    main()
