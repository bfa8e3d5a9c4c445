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
import re
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


# An address as nearly every client sends it: <dot-atom@domain> or <dot-atom@[literal]>, then
# optional ESMTP parameters. Anything else would go to aiosmtpd's full parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_FAST_PATH = re.compile(
    rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[^\]\s]+\]))>(.*)",
    re.DOTALL,
)


def fast_getaddr(arg: str) -> tuple[str | None, str | None]:
    """The proposed fast path of ``_getaddr`` (PROFILE.md, change 2); ``None`` = use aiosmtpd's."""
    found = _FAST_PATH.fullmatch(arg)
    if found is None:
        return None, None
    return found.group(1), found.group(2)


def introspected_names(protocol: object, handler: object) -> dict[str, list[tuple[str, str]]]:
    """What aiosmtpd's ``SMTP.__init__`` looks up on every connection, found once."""
    return {
        "smtp": [(n[5:], n) for n in dir(protocol) if n.startswith("smtp_")],
        "handle": [(n[7:], n) for n in dir(handler) if n.startswith("handle_")],
        "auth": [(n[5:], n) for n in dir(protocol) if n.startswith("auth_")],
    }


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
    names = introspected_names(sample, handler)

    def rebuild() -> object:
        methods = {verb: getattr(sample, name) for verb, name in names["smtp"]}
        hooks = {verb: getattr(handler, name) for verb, name in names["handle"]}
        auth = {mech: getattr(sample, name) for mech, name in names["auth"]}
        return methods, hooks, auth

    getmembers = per_call(lambda: inspect.getmembers(sample), 300)
    results.append(("  of which inspect.getmembers(self)", getmembers, "1 per connection"))
    results.append(("  of which dir(self) (smtp_* scan)", per_call(lambda: dir(sample), 1000),
                    "1 per connection"))  # fmt: skip
    results.append(("  proposed: the three dicts from names found once per class",
                    per_call(rebuild, 3000), "1 per connection"))  # fmt: skip

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
    results.append(("  proposed: regex fast path for <dot-atom@domain>",
                    per_call(lambda: fast_getaddr("<rcpt@example.com> SIZE=1200"), 20000),
                    "2 per message"))  # fmt: skip

    def timer_reset() -> None:
        handle = loop.call_later(300, lambda: None)
        handle.cancel()

    results.append(("idle-timer reset (call_later + cancel)", per_call(timer_reset, 20000),
                    "~24 per 1 KiB message (each line)"))  # fmt: skip
    activity = {"last": 0.0}

    def note_activity() -> None:
        activity["last"] = loop.time()

    results.append(("  proposed: record loop.time(), one timer re-arms itself",
                    per_call(note_activity, 20000), "~24 per message"))  # fmt: skip
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
