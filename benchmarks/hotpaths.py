"""Per-call costs of the ingest hot paths, without a profiler's overhead (see ``PROFILE.md``).

::

    python benchmarks/hotpaths.py

Prints microseconds per call (best of 5 rounds) for what the profile of ``ingest.py`` found on
the path of every connection and every command: aiosmtpd's ``SMTP.__init__`` (which runs
``inspect.getmembers(self)`` and two ``dir()`` scans per connection), smtpmock's own protocol
constructor, aiosmtpd's address parsing (``_getaddr``, which defines a ``typing.Protocol`` class
on every call), the idle-timer reset done for every line received, and building and storing a
``Message``. Each figure is one operation in isolation; multiply by the calls per message
(listed beside it) to see its share of a message's budget.
"""

from __future__ import annotations

import asyncio
import inspect
import timeit
import uuid
from collections.abc import Callable
from email._header_value_parser import get_angle_addr
from typing import Any

from aiosmtpd.smtp import SMTP

from smtpmock import MemoryStore, Message, SMTPMock

RAW = (
    b"From: <a@example.com>\r\nTo: <b@example.com>\r\nSubject: load test\r\n"
    b"Message-ID: <1.load@example.com>\r\n\r\n" + (b"x" * 74 + b"\r\n") * 13
)


class _Nothing:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def per_call(fn: Callable[[], object], number: int) -> float:
    """Best-of-5 microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    loop = asyncio.new_event_loop()
    handler = _Nothing()
    results: list[tuple[str, float, str]] = []

    def aiosmtpd_init() -> Any:
        return SMTP(handler, hostname="localhost", loop=loop)

    results.append(("aiosmtpd SMTP.__init__ (do-nothing handler)", per_call(aiosmtpd_init, 300),
                    "1 per connection"))  # fmt: skip
    sample = aiosmtpd_init()
    getmembers = per_call(lambda: inspect.getmembers(sample), 300)
    results.append(("  of which inspect.getmembers(self)", getmembers, "1 per connection"))
    results.append(("  of which dir(self) (smtp_* scan)", per_call(lambda: dir(sample), 1000),
                    "1 per connection"))  # fmt: skip

    with SMTPMock() as mock:
        state = mock._state
        factory = mock._protocol_factory(state)  # type: ignore[arg-type]
        results.append(("smtpmock SMTPProtocol() (its factory, as in the server)",
                        per_call(factory, 300), "1 per connection"))  # fmt: skip

    results.append(("aiosmtpd _getaddr('<rcpt@example.com>')",
                    per_call(lambda: sample._getaddr("<rcpt@example.com>"), 2000),
                    "2 per message (MAIL, RCPT)"))  # fmt: skip
    results.append(("  of which get_angle_addr (the parse itself)",
                    per_call(lambda: get_angle_addr("<rcpt@example.com>"), 2000),
                    "2 per message"))  # fmt: skip

    def timer_reset() -> None:
        handle = loop.call_later(300, lambda: None)
        handle.cancel()

    results.append(("idle-timer reset (call_later + cancel)", per_call(timer_reset, 20000),
                    "~24 per 1 KiB message (each line)"))  # fmt: skip
    store = MemoryStore()

    def build_and_store() -> object:
        message = Message(RAW, mail_from="a@example.com", rcpt_tos=["b@example.com"])
        return store.add(message)

    results.append(("Message(raw, envelope) + MemoryStore.add", per_call(build_and_store, 5000),
                    "1 per message"))  # fmt: skip
    try:
        from smtpmock._transcript import Transcript
    except ImportError:  # transcripts not in this version
        pass
    else:
        transcript = Transcript("s", None)

        def record() -> None:
            transcript.add("server", "250 2.0.0 OK")
            if len(transcript.entries) > 500:
                transcript.entries.clear()

        results.append(("Transcript.add (one line, as _record does)", per_call(record, 20000),
                        "~14 per message (commands + replies)"))  # fmt: skip
    results.append(("uuid.uuid4().hex (session id)", per_call(lambda: uuid.uuid4().hex, 20000),
                    "1 per connection"))  # fmt: skip
    loop.close()

    width = max(len(name) for name, _, _ in results)
    print(f"{'operation':<{width}}  {'us/call':>8}  calls")
    for name, micros, calls in results:
        print(f"{name:<{width}}  {micros:8.1f}  {calls}")


if __name__ == "__main__":
    main()
