"""What TLS costs with smtpmock: certificate generation, server start, and per-send handshakes.

::

    python benchmarks/bench_tls.py            # 200 sends per mode
    python benchmarks/bench_tls.py -n 50

Prints, for plain, STARTTLS and implicit TLS (SMTPS), the median and 95th percentile time of one
complete smtplib send on a new connection (connect, EHLO, [STARTTLS, EHLO,] MAIL, RCPT, DATA,
QUIT, with the server's certificate verified), and the time of the first ``start()`` with TLS
(which generates the per-process CA and certificate) against a later one (cached).
"""

from __future__ import annotations

import argparse
import smtplib
import ssl
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, "src")

from smtpmock import SMTPMock

# ~1 KiB, in lines of 78 octets as mail clients write them.
MESSAGE = (
    "From: a@example.com\r\nTo: b@example.com\r\nSubject: bench\r\n\r\n" + ("x" * 76 + "\r\n") * 13
)


def _send_plain(mock: SMTPMock, _: ssl.SSLContext | None) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def _send_starttls(mock: SMTPMock, context: ssl.SSLContext | None) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
        client.starttls(context=context)
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def _send_implicit(mock: SMTPMock, context: ssl.SSLContext | None) -> None:
    with smtplib.SMTP_SSL(mock.host, mock.port, context=context, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


MODES: dict[str, tuple[str | None, Callable[[SMTPMock, ssl.SSLContext | None], None]]] = {
    "plain": (None, _send_plain),
    "starttls": ("starttls", _send_starttls),
    "implicit": ("implicit", _send_implicit),
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="sends per mode (default 200)")
    args = parser.parse_args()

    began = time.perf_counter()
    first = SMTPMock(tls="starttls").start()
    first_start = time.perf_counter() - began
    first.stop()
    began = time.perf_counter()
    again = SMTPMock(tls="implicit").start()
    cached_start = time.perf_counter() - began
    again.stop()
    print(f"first start() with TLS (generates CA + certificate): {_ms(first_start)}")
    print(f"later start() with TLS (cached):                     {_ms(cached_start)}")
    print()
    print(f"one smtplib send on a new connection, n={args.n}, certificate verified:")
    print(f"{'mode':<10}{'median':>12}{'p95':>12}{'sends/s':>10}")
    for name, (tls, send) in MODES.items():
        with SMTPMock(tls=tls) if tls else SMTPMock() as mock:
            context = mock.client_ssl_context() if tls else None
            send(mock, context)  # warm-up
            times = []
            for _ in range(args.n):
                t0 = time.perf_counter()
                send(mock, context)
                times.append(time.perf_counter() - t0)
            mock.wait_for(args.n + 1, timeout=30)
        p95 = statistics.quantiles(times, n=20)[-1]
        rate = len(times) / sum(times)
        print(f"{name:<10}{_ms(statistics.median(times)):>12}{_ms(p95):>12}{rate:>10.0f}")


if __name__ == "__main__":
    main()
