"""The floor for an asyncio SMTP server in Python: a callback state machine that stores nothing.

Not a real server (no ESMTP extensions, no limits, no address parsing beyond ``<...>``): it
answers the commands ``smtp-source`` and ``loadgen.py`` send, from ``data_received`` directly,
with no ``StreamReader``, no task per connection and no timer per line. It shows what
replacing aiosmtpd's streams-and-tasks session loop could gain (``PROFILE.md``); it is not in
``run.py``'s default targets (``python benchmarks/ingest.py --targets smtpmock,asyncio-floor``).

Prints ``PORT <n>``, answers ``count`` on stdin with ``COUNT <n>``, exits on end of input.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading

GREETING = b"220 floor ESMTP\r\n"
EHLO = b"250-floor\r\n250-8BITMIME\r\n250 PIPELINING\r\n"


class Counter:
    value = 0


class FloorProtocol(asyncio.Protocol):
    """One connection: lines in, one reply per command, message bytes collected until ``.``."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buffer = b""
        self.in_data = False
        self.lines: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(GREETING)

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
            if verb in (b"EHLO", b"HELO"):
                replies.append(EHLO if verb == b"EHLO" else b"250 floor\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                replies.append(b"250 OK\r\n")
            elif verb == b"DATA":
                self.in_data = True
                replies.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 Bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            else:
                replies.append(b"502 not implemented\r\n")
        if replies:
            self.transport.write(b"".join(replies))


def main() -> None:
    counter = Counter()
    loop = asyncio.new_event_loop()
    # proto=IPPROTO_TCP, as smtpmock's own sockets: asyncio then sets TCP_NODELAY on each
    # accepted connection (it skips sockets made with proto 0), so no reply waits on Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    server = loop.run_until_complete(loop.create_server(lambda: FloorProtocol(counter), sock=sock))
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
