"""aiosmtpd with a do-nothing handler: the Python library smtpmock is built on, storing nothing.

Binds 127.0.0.1 and a free port itself (``Controller(port=0)`` cannot), prints ``PORT <n>``,
answers ``count`` on stdin with ``COUNT <n>`` (messages acknowledged) and exits on end of input.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from typing import Any

from aiosmtpd.smtp import SMTP


class Handler:
    """Accepts every message and throws it away."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def main() -> None:
    handler = Handler()
    loop = asyncio.new_event_loop()
    # proto=IPPROTO_TCP, as smtpmock's own sockets: asyncio then sets TCP_NODELAY on each
    # accepted connection (it skips sockets made with proto 0), so no reply waits on Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, hostname="localhost", loop=loop), sock=sock)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(f"COUNT {handler.count}", flush=True)
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


if __name__ == "__main__":
    main()
