"""Fault-injection figures: throttle accuracy, rule overhead, delays not holding others up.

Run from the repository root::

    python benchmarks/bench_faults.py            # about 15 s
    python benchmarks/bench_faults.py --quick    # smaller sizes
    python benchmarks/bench_faults.py --json     # rows for run.py (its "faults" part)

``run.py`` runs it: a throttle that no longer throttles (measured under 80 % of the time the
rate implies) makes this script exit 1, so ``run.py --check`` (CI) fails.

What is measured:

* ``throttle``: time to send one message of N bytes over a link throttled to R bytes/second,
  against the N/R seconds the rate implies (the tests only check that every byte arrives).
* ``overhead``: messages/second over one kept-open smtplib connection with no rule, and with
  50 rules that are tried at every command but never match.
* ``isolation``: per-message send time on fresh connections while another connection sits in a
  long ``delay`` rule, against the same with no delayed connection.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import statistics
import sys
import threading
import time

from smtpmock import FaultContext, SMTPMock

BODY_LINE = "x" * 76 + "\r\n"


def message(size: int) -> str:
    lines = max(1, size // len(BODY_LINE))
    return "Subject: bench\r\n\r\n" + BODY_LINE * lines


def bench_throttle(sizes: list[int], rates: list[int]) -> list[tuple[int, int, float, float]]:
    print("throttle: size, rate -> expected s, measured s")
    out = []
    for rate in rates:
        for size in sizes:
            with SMTPMock() as mock:
                mock.faults.throttle(rate)
                text = message(size)
                start = time.perf_counter()
                with smtplib.SMTP(mock.host, mock.port, timeout=120) as client:
                    client.sendmail("a@example.com", ["b@example.com"], text)
                elapsed = time.perf_counter() - start
                mock.wait_for(1)
            # both directions are throttled: the replies (a few hundred bytes) count too
            expected = len(text) / rate
            print(f"  {len(text):>8} B at {rate:>7} B/s -> {expected:6.2f} s, {elapsed:6.2f} s")
            out.append((len(text), rate, expected, elapsed))
    return out


def rate_per_second(mock: SMTPMock, count: int) -> float:
    text = message(500)
    with smtplib.SMTP(mock.host, mock.port, timeout=30) as client:
        client.ehlo()
        start = time.perf_counter()
        for _ in range(count):
            client.sendmail("a@example.com", ["b@example.com"], text)
        elapsed = time.perf_counter() - start
    mock.wait_for(count)
    return count / elapsed


def bench_overhead(count: int) -> dict[int, float]:
    print(f"overhead: messages/s over one connection ({count} messages)")
    out = {}
    for rules in (0, 50):
        with SMTPMock() as mock:
            for i in range(rules):
                mock.faults.rule("*", code=451, predicate=lambda ctx, i=i: ctx.helo == f"no{i}")
            figures = [rate_per_second(mock, count) for _ in range(3)]
            mock.reset()
        print(f"  {rules:>3} rules: {statistics.median(figures):8.0f} msg/s (median of 3)")
        out[rules] = statistics.median(figures)
    return out


def send_times(mock: SMTPMock, count: int) -> list[float]:
    text = message(500)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with smtplib.SMTP(mock.host, mock.port, timeout=30) as client:
            client.sendmail("fast@example.com", ["b@example.com"], text)
        times.append(time.perf_counter() - start)
    return times


def bench_isolation(count: int) -> tuple[float, float]:
    print(f"isolation: ms per send on a fresh connection ({count} sends)")
    with SMTPMock() as mock:
        baseline = send_times(mock, count)
        reached = threading.Event()

        def slow_only(ctx: FaultContext) -> bool:
            if ctx.sender == "slow@example.com":
                reached.set()
                return True
            return False

        mock.faults.rule("MAIL", delay=3600, predicate=slow_only)

        def stuck() -> None:
            try:
                with smtplib.SMTP(mock.host, mock.port, timeout=3600) as client:
                    client.sendmail("slow@example.com", ["b@example.com"], message(100))
            except smtplib.SMTPServerDisconnected:
                pass

        thread = threading.Thread(target=stuck, daemon=True)
        thread.start()
        reached.wait(10)
        during = send_times(mock, count)
    thread.join(10)
    for label, figures in (("no delayed connection", baseline), ("one delayed 1 h", during)):
        figures.sort()
        p99 = figures[min(len(figures) - 1, int(len(figures) * 0.99))]
        print(f"  {label:<22} median {statistics.median(figures) * 1e3:6.2f}  p99 {p99 * 1e3:6.2f}")
    return statistics.median(baseline) * 1e3, statistics.median(during) * 1e3


def _row(
    scenario: str, unit: str, value: float, higher: bool, notes: list[str]
) -> dict[str, object]:
    return {
        "scenario": scenario,
        "unit": unit,
        "figures": {"smtpmock": round(value, 3)},
        "higher_is_better": higher,
        "subjects": ["smtpmock"],
        "notes": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="end with run.py's JSON rows")
    args = parser.parse_args()
    if args.quick:
        throttled = bench_throttle([20_000], [20_000])
        overhead = bench_overhead(100)
        isolation = bench_isolation(50)
    else:
        throttled = bench_throttle([20_000, 100_000], [20_000, 100_000])
        overhead = bench_overhead(500)
        isolation = bench_isolation(200)
    broken = [
        f"{size} B at {rate} B/s took {elapsed:.2f} s, the rate implies {expected:.2f} s"
        for size, rate, expected, elapsed in throttled
        if elapsed < 0.8 * expected
    ]
    if args.json:
        rows = [
            _row(
                f"faults: throttled send, {size // 1000} kB at {rate // 1000} kB/s",
                "s",
                elapsed,
                False,
                [f"the rate implies {expected:.2f} s: less means the throttle does not work"],
            )
            for size, rate, expected, elapsed in throttled
        ]
        rows += [
            _row(f"faults: msg/s, one connection, {n} rules never matching", "msg/s", v, True, [])
            for n, v in overhead.items()
        ]
        rows.append(
            _row(
                "faults: ms per send while another connection waits in a 1 h delay",
                "ms",
                isolation[1],
                False,
                [f"{isolation[0]:.2f} ms with no delayed connection"],
            )
        )
        print(json.dumps({"rows": rows}))
    if broken:
        print("throttle does not throttle: " + "; ".join(broken), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
