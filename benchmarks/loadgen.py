"""A small asyncio SMTP load generator, for machines without Postfix's ``smtp-source``.

::

    python benchmarks/loadgen.py --port 2525 --sessions 10 --messages 1000 --size 1024 --reuse

Speaks plain SMTP (EHLO, MAIL, RCPT, DATA, QUIT) with no library in the way, one command at a
time like ``smtp-source``. ``--sessions`` connections run concurrently and share ``--messages``;
with ``--reuse`` each connection sends its share of messages before QUIT, otherwise every
message gets a new connection. Prints one JSON line: sent, failed, elapsed seconds, rate.

Being Python, it competes with the server for the CPU: prefer ``smtp-source`` when installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

HOST = "127.0.0.1"

MessageFactory = Callable[[int], tuple[str, list[str], bytes]]
"""``factory(i)`` -> (mail_from, rcpt_tos, data) of the i-th message (no final dot)."""


@dataclass
class LoadResult:
    sent: int
    failed: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "rate": self.rate}


def fixed_message(size: int) -> MessageFactory:
    """Messages with a small header block and *size* bytes of body in 76-column lines."""
    line = b"x" * 74 + b"\r\n"
    body = (line * (size // len(line) + 1))[:size]
    if not body.endswith(b"\r\n"):
        body = body[:-2] + b"\r\n"

    def factory(i: int) -> tuple[str, list[str], bytes]:
        head = (
            f"From: <load@example.com>\r\nTo: <rcpt{i}@example.com>\r\n"
            f"Subject: load test {i}\r\nMessage-ID: <{i}.load@example.com>\r\n\r\n"
        ).encode()
        return "load@example.com", [f"rcpt{i}@example.com"], head + body

    return factory


def dot_stuff(data: bytes) -> bytes:
    """Normalise line endings to CRLF and dot-stuff (RFC 5321 4.5.2); ends with CRLF."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)


class SMTPFailure(Exception):
    pass


async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise SMTPFailure("connection closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes, ok: int
) -> None:
    writer.write(line)
    code = await _reply(reader)
    if code != ok:
        raise SMTPFailure(f"{line[:20]!r} answered {code}")


async def _session(  # noqa: PLR0917 - private, called once
    host: str,
    port: int,
    take: Callable[[], int | None],
    factory: MessageFactory,
    reuse: bool,
    result: LoadResult,
) -> None:
    index = take()
    while index is not None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            if await _reply(reader) != 220:
                raise SMTPFailure("no greeting")
            await _command(reader, writer, b"EHLO loadgen.localhost\r\n", 250)
            while index is not None:
                mail_from, rcpts, data = factory(index)
                try:
                    await _command(reader, writer, f"MAIL FROM:<{mail_from}>\r\n".encode(), 250)
                    for rcpt in rcpts:
                        await _command(reader, writer, f"RCPT TO:<{rcpt}>\r\n".encode(), 250)
                    await _command(reader, writer, b"DATA\r\n", 354)
                    await _command(reader, writer, dot_stuff(data) + b".\r\n", 250)
                    result.sent += 1
                except SMTPFailure:
                    result.failed += 1
                    writer.write(b"RSET\r\n")
                    await _reply(reader)
                index = take()
                if not reuse:
                    break
            writer.write(b"QUIT\r\n")
            await writer.drain()
            await _reply(reader)
        except (OSError, SMTPFailure):
            result.failed += 1
            index = take()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run_load_async(
    host: str,
    port: int,
    *,
    sessions: int,
    messages: int,
    reuse: bool,
    factory: MessageFactory,
    timeout: float,
) -> LoadResult:
    """Send *messages* messages over *sessions* concurrent connections; bounded by *timeout*."""
    result = LoadResult(0, 0, 0.0)
    counter = iter(range(messages))

    def take() -> int | None:
        return next(counter, None)

    start = time.perf_counter()
    tasks = [
        asyncio.ensure_future(_session(host, port, take, factory, reuse, result))
        for _ in range(sessions)
    ]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            result.failed += 1
    result.elapsed = time.perf_counter() - start
    return result


def run_load(
    host: str,
    port: int,
    *,
    sessions: int = 1,
    messages: int = 100,
    reuse: bool = False,
    size: int = 1024,
    factory: MessageFactory | None = None,
    timeout: float = 120.0,
) -> LoadResult:
    """Blocking wrapper around :func:`run_load_async` (runs its own event loop)."""
    return asyncio.run(
        run_load_async(
            host,
            port,
            sessions=sessions,
            messages=messages,
            reuse=reuse,
            factory=factory or fixed_message(size),
            timeout=timeout,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024, help="body bytes per message")
    parser.add_argument("--reuse", action="store_true", help="many messages per connection")
    parser.add_argument("--timeout", type=float, default=120.0, help="stop after this many s")
    args = parser.parse_args()
    result = run_load(
        args.host,
        args.port,
        sessions=args.sessions,
        messages=args.messages,
        reuse=args.reuse,
        size=args.size,
        timeout=args.timeout,
    )
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
