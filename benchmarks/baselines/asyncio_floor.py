"""The floor for an asyncio SMTP server in Python: a session loop that stores nothing.

Not a real server (no ESMTP extensions, no limits, no address parsing beyond ``<...>``): it
answers the commands ``smtp-source`` and ``loadgen.py`` send. Two models of the same answers:

- ``--model callback`` (the default): a state machine that answers from ``data_received``
  directly, with no ``StreamReader``, no task per connection and no timer per line;
- ``--model streams``: aiosmtpd's model with nothing else, a task per connection reading lines
  with ``StreamReader.readline`` and answering through a ``StreamWriter``.

``--loop uvloop`` runs it on uvloop (as smtpmock), else on asyncio's loop. The pair shows what
replacing aiosmtpd's streams-and-tasks session loop could gain (``PROFILE.md``); these are not
in ``run.py``'s default targets (``python benchmarks/ingest.py --targets
smtpmock,asyncio-floor,streams-floor``, each on uvloop).

Prints ``PORT <n>``, answers ``count`` on stdin with ``COUNT <n>``, exits on end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
from typing import cast

GREETING = b"220 floor ESMTP\r\n"
EHLO = b"250-floor\r\n250-8BITMIME\r\n250 PIPELINING\r\n"


class Counter:
    value = 0


def answer(verb: bytes) -> bytes:
    """The reply to a command line's first four octets (upper case), outside DATA."""
    if verb == b"EHLO":
        return EHLO
    if verb == b"HELO":
        return b"250 floor\r\n"
    if verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
        return b"250 OK\r\n"
    if verb == b"DATA":
        return b"354 End data with <CR><LF>.<CR><LF>\r\n"
    if verb == b"QUIT":
        return b"221 Bye\r\n"
    return b"502 not implemented\r\n"


class FloorProtocol(asyncio.Protocol):
    """One connection: lines in, one reply per command, message bytes collected until ``.``."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buffer = b""
        self.in_data = False
        self.lines: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's: no isinstance check here
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(GREETING)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies: list[bytes] = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            line, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
            if self.in_data:
                if line in (b".\r\n", b".\n"):
                    self.in_data = False
                    _message = b"".join(self.lines)  # what a real server would store
                    self.lines = []
                    self.counter.value += 1
                    replies.append(b"250 OK\r\n")
                else:
                    self.lines.append(line[1:] if line.startswith(b"..") else line)
                continue
            verb = line[:4].upper()
            replies.append(answer(verb))
            if verb == b"DATA":
                self.in_data = True
            elif verb == b"QUIT":
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
        if replies:
            self.transport.write(b"".join(replies))


async def stream_session(
    counter: Counter, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One connection in aiosmtpd's model: a task, a line at a time, one write per reply."""
    writer.write(GREETING)
    lines: list[bytes] = []
    in_data = False
    while line := await reader.readline():
        if in_data:
            if line in (b".\r\n", b".\n"):
                in_data = False
                _message = b"".join(lines)  # what a real server would store
                lines = []
                counter.value += 1
                writer.write(b"250 OK\r\n")
            else:
                lines.append(line[1:] if line.startswith(b"..") else line)
            continue
        verb = line[:4].upper()
        writer.write(answer(verb))
        if verb == b"DATA":
            in_data = True
        elif verb == b"QUIT":
            break
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=("callback", "streams"), default="callback")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    counter = Counter()
    loop: asyncio.AbstractEventLoop
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    # proto=IPPROTO_TCP, as smtpmock's own sockets: asyncio then sets TCP_NODELAY on each
    # accepted connection (it skips sockets made with proto 0), so no reply waits on Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    if args.model == "callback":
        serving = loop.create_server(lambda: FloorProtocol(counter), sock=sock)
    else:

        async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await stream_session(counter, reader, writer)

        serving = asyncio.start_server(session, sock=sock)
    server = loop.run_until_complete(serving)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(f"COUNT {counter.value}", flush=True)
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


if __name__ == "__main__":
    main()
