"""The stdlib ``smtpd`` server (Python <= 3.11) with a do-nothing ``process_message``.

Run with a Python that still has ``smtpd``. Binds 127.0.0.1 and a free port, prints
``PORT <n>``, answers ``count`` on stdin with ``COUNT <n>`` and exits on end of input. The
listen backlog is smtpd's own (5): that is part of what is measured.
"""

from __future__ import annotations

import sys
import threading
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore
    import smtpd


class Sink(smtpd.SMTPServer):
    """Accepts every message and throws it away."""

    count = 0

    def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):  # type: ignore[no-untyped-def]
        self.count += 1


def main() -> None:
    # No remote address: only smtpd's relaying subclasses use one (typeshed wants a tuple).
    server = Sink(("127.0.0.1", 0), None, decode_data=False)  # type: ignore[arg-type]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.2, count=1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert server.socket is not None
    print(f"PORT {server.socket.getsockname()[1]}", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(f"COUNT {server.count}", flush=True)
    stop.set()
    thread.join(5)
    server.close()


if __name__ == "__main__":
    main()
