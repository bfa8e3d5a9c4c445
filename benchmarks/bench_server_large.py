"""Large mail in ``smtpmock serve``: does a 25 MB message slow list, search or other senders?

::

    python benchmarks/bench_server_large.py [--small 2000]

Builds a SQLite database with N small messages and one 25 MB attachment (direct inserts:
the SMTP side is measured by ingest.py), starts ``python -m smtpmock serve --db`` on it, and
prints: the insert time of the 25 MB message, the start-up time (spawn to ready line), and
p50/p99 latency and payload size of ``GET /api/v1/messages`` and ``GET /api/v1/search``.
Then it sends a 20 MB attachment over SMTP and, while that one is being stored, times small
messages sent on a second connection (how long the big insert holds the SMTP loop).
"""

from __future__ import annotations

import argparse
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smtpmock import Message  # noqa: E402
from smtpmock.store import SQLiteStore  # noqa: E402


def big_message(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "big@example.com"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "the big one"
    msg.set_content("see attachment")
    msg.add_attachment(
        os.urandom(size), maintype="application", subtype="octet-stream", filename="big.bin"
    )
    return msg.as_bytes(policy=policy.SMTP)


def timed(fn: object, n: int = 100) -> tuple[float, float, int]:
    samples, size = [], 0
    for _ in range(n):
        start = time.perf_counter()
        response = fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
        size = len(response.content)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=2000)
    args = parser.parse_args()
    raw = big_message(25_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "m.db"
        store = SQLiteStore(db)
        for i in range(args.small // 2):
            store.add(
                Message(
                    f"Subject: small {i}\r\n\r\nhello {i}\r\n".encode(),
                    mail_from="a@x.org",
                    rcpt_tos=["b@x.org"],
                )
            )
        start = time.perf_counter()
        store.add(Message(raw, mail_from="big@example.com", rcpt_tos=["bob@example.com"]))
        print(f"insert of a 25 MB message: {(time.perf_counter() - start) * 1000:.0f} ms")
        for i in range(args.small // 2):
            store.add(
                Message(
                    f"Subject: later {i}\r\n\r\nhello {i}\r\n".encode(),
                    mail_from="a@x.org",
                    rcpt_tos=["b@x.org"],
                )
            )
        store.close()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "smtpmock",
                "serve",
                "--smtp-port",
                "0",
                "--http-port",
                "0",
                "--db",
                str(db),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        print(f"serve ready after {(time.perf_counter() - start) * 1000:.0f} ms")
        url = line.split("HTTP on ")[1].split()[0]
        smtp_host, smtp_port = line.split("SMTP on ")[1].split(",")[0].rsplit(":", 1)
        try:
            with httpx.Client(base_url=url) as http:
                for name, call in (
                    ("list 50 newest", lambda: http.get("/api/v1/messages")),
                    ("list page 20", lambda: http.get("/api/v1/messages", params={"start": 1000})),
                    (
                        "search has:attachment",
                        lambda: http.get("/api/v1/search", params={"query": "has:attachment"}),
                    ),
                    (
                        "search free text",
                        lambda: http.get("/api/v1/search", params={"query": "hello 1999"}),
                    ),
                ):
                    p50, p99, size = timed(call)
                    print(f"{name:24} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  payload {size} B")
            small_times: list[float] = []
            done = threading.Event()

            # Over SMTP: 20 MB (27 MB once base64-encoded) fits the default 32 MiB size limit.
            smtp_raw = big_message(20_000_000)

            def big_sender() -> None:
                try:
                    with smtplib.SMTP(smtp_host, int(smtp_port), timeout=120) as smtp:
                        smtp.sendmail("big@example.com", ["bob@example.com"], smtp_raw)
                finally:
                    done.set()

            with smtplib.SMTP(smtp_host, int(smtp_port), timeout=120) as small:
                thread = threading.Thread(target=big_sender)
                thread.start()
                while not done.is_set():
                    start = time.perf_counter()
                    small.sendmail("a@x.org", ["b@x.org"], "Subject: s\r\n\r\nx\r\n")
                    small_times.append((time.perf_counter() - start) * 1000)
                thread.join()
            print(
                f"small sends during a 20 MB SMTP delivery: n={len(small_times)} "
                f"median {statistics.median(small_times):.1f} ms max {max(small_times):.0f} ms"
            )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
