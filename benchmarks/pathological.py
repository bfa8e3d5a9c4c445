"""Pathological messages: the cost of reading one must grow linearly with its size (issue 23).

Run from the repository root::

    python benchmarks/pathological.py                 # 10 kB to the default size limit (32 MiB)
    python benchmarks/pathological.py --max-size 1MB  # a quicker run
    python benchmarks/pathological.py --json          # ends with run.py's rows as one JSON line

``SMTPMOCK_BENCH_SCALE=small`` (what ``run.py --scale small`` sets) stops at 1 MB.

For every shape below, a message of each size is built in memory and *opened* the way
``smtpmock serve`` opens it: every accessor of :class:`~smtpmock.Message` (headers, addresses,
bodies, attachments and each part by index, links, defects), the search fields the index is
built from, and the HTML preview when the server extra is installed. The figure is the CPU
time of this process (``time.process_time``, the best of a few runs for small sizes) per kB of
message: flat from the smallest size to the largest means linear. A shape whose cost per kB
at the largest size is more than ``--factor`` (default 4) times its cost at the smallest makes
the script exit 1, so ``run.py --check`` fails.

Shapes (each filled up to the size):

* ``lt-flood``: an HTML body of ``<`` only (the old index expression: quadratic);
* ``unclosed-tags``: ``<a `` repeated, no ``>`` (the old link parser: quadratic);
* ``head-flood``: ``<head`` repeated (the old preview's ``<base>`` insertion: quadratic);
* ``many-parts``: ``multipart/mixed`` of 100-byte attachments (the old part look-up: quadratic);
* ``deep-nesting``: multiparts nested in each other as deep as the size allows;
* ``long-folding``: one ``Subject`` header folded over as many lines as the size allows;
* ``many-addresses``: one ``To`` header with as many addresses as the size allows;
* ``bad-encoded-words``: a ``Subject`` of malformed and unterminated RFC 2047 words;
* ``long-content-type``: a ``Content-Type`` with as many parameters as the size allows;
* ``plain``: an ordinary text and HTML message with links, for comparison.

Memory (issue 23, L6): the peak that :mod:`tracemalloc` sees while a message of 20 MB (2 MB at
small scale) is opened the same way, over the size of the message (the raw bytes themselves,
allocated before, are not counted), for a text body, an HTML body and a base64 attachment.
More than ``--memory-factor`` (default 6) times the size makes the script exit 1 too.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable

from smtpmock import Message
from smtpmock._search import index_fields

try:
    from smtpmock._http._ui import preview_document
except ImportError:  # the server extra is not installed: the preview is not measured
    preview_document = None  # type: ignore[assignment]

DEFAULT_LIMIT = 33_554_432  # ServerConfig.max_message_size
SIZES_FULL = (10_000, 100_000, 1_000_000, 10_000_000, DEFAULT_LIMIT)
SIZES_SMALL = (10_000, 100_000, 1_000_000)
HEAD = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n"


def _fill(prefix: bytes, unit: bytes, size: int, suffix: bytes = b"") -> bytes:
    count = max(1, (size - len(prefix) - len(suffix)) // len(unit))
    return prefix + unit * count + suffix


def lt_flood(size: int) -> bytes:
    return _fill(HEAD + b"Content-Type: text/html\r\n\r\n", b"<", size)


def unclosed_tags(size: int) -> bytes:
    return _fill(HEAD + b"Content-Type: text/html\r\n\r\n", b"<a ", size)


def head_flood(size: int) -> bytes:
    return _fill(HEAD + b"Content-Type: text/html\r\n\r\n", b"<head", size)


def many_parts(size: int) -> bytes:
    head = HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    part = (
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=f%07d.bin\r\n\r\nxxxx\r\n"
    )
    count = max(1, (size - len(head)) // (len(part) + 3))
    return head + b"".join(part % i for i in range(count)) + b"--b--\r\n"


def deep_nesting(size: int) -> bytes:
    level = b"Content-Type: multipart/mixed; boundary=b%07d\r\n\r\n--b%07d\r\n"
    count = max(1, (size - len(HEAD)) // (len(level) + 8))
    return HEAD + b"".join(level % (i, i) for i in range(count)) + b"\r\nx\r\n"


def long_folding(size: int) -> bytes:
    return _fill(b"From: a@example.com\r\nSubject: start", b"\r\n continued", size, b"\r\n\r\nx")


def many_addresses(size: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: s\r\nTo: "
    unit = len(b"Person 000000 <p000000@example.com>,\r\n ")
    count = max(1, (size - len(head)) // unit)
    to = b",\r\n ".join(b"Person %06d <p%06d@example.com>" % (i, i) for i in range(count))
    return head + to + b"\r\n\r\nx"


def bad_encoded_words(size: int) -> bytes:
    unit = b"=?utf-8?b?abcde?= =?\xc3\xa9?q?x?= =?x?q?a"
    return _fill(b"From: a@example.com\r\nSubject: ", unit, size, b"\r\n\r\nx")


def long_content_type(size: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8"
    return _fill(head, b"; a=b", size, b"\r\n\r\nhello")


def plain(size: int) -> bytes:
    text = b"Hello, see https://example.com/a?b=1 and the rest of this line of text.\r\n"
    html = b'<p>Hello, see <a href="https://example.com/a?b=1">this</a> &amp; more.</p>\r\n'
    head = HEAD + b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
    half = max(1, (size - len(head)) // 2)
    return (
        head
        + b"--b\r\nContent-Type: text/plain\r\n\r\n"
        + text * max(1, half // len(text))
        + b"--b\r\nContent-Type: text/html\r\n\r\n"
        + html * max(1, half // len(html))
        + b"--b--\r\n"
    )


SHAPES: dict[str, Callable[[int], bytes]] = {
    "lt-flood": lt_flood,
    "unclosed-tags": unclosed_tags,
    "head-flood": head_flood,
    "many-parts": many_parts,
    "deep-nesting": deep_nesting,
    "long-folding": long_folding,
    "many-addresses": many_addresses,
    "bad-encoded-words": bad_encoded_words,
    "long-content-type": long_content_type,
    "plain": plain,
}


def big_text(size: int) -> bytes:
    line = b"Hello, see https://example.com/a?b=1 and the rest of this line of text.\r\n"
    return _fill(HEAD + b"Content-Type: text/plain\r\n\r\n", line, size)


def big_html(size: int) -> bytes:
    line = b'<p>Hello, see <a href="https://example.com/a?b=1">this</a> &amp; more.</p>\r\n'
    return _fill(HEAD + b"Content-Type: text/html\r\n\r\n", line, size)


def big_attachment(size: int) -> bytes:
    data = bytes(range(256)) * max(1, size * 3 // 4 // 256)
    return (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        + b"--b\r\nContent-Type: application/octet-stream\r\n"
        + b"Content-Transfer-Encoding: base64\r\n"
        + b"Content-Disposition: attachment; filename=big.bin\r\n\r\n"
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )


MEMORY_SHAPES: dict[str, Callable[[int], bytes]] = {
    "text body": big_text,
    "html body": big_html,
    "base64 attachment": big_attachment,
}


def peak_memory(raw: bytes) -> int:
    """Bytes allocated at the peak while *raw* is opened (tracemalloc), beyond what was before."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        open_message(raw)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def open_message(raw: bytes) -> None:
    """Everything ``serve`` computes from a message: listing, detail, headers, parts, links."""
    message = Message(raw, rcpt_tos=["b@example.com", "hidden@example.com"])
    index_fields(message)
    _ = (message.subject, message.from_, message.to, message.cc, message.bcc, message.date)
    message.headers.as_dict()
    for attachment in message.attachments:
        message.part(attachment.index)
    _ = (message.text, message.html, message.links, message.defects)
    if preview_document is not None:
        preview_document(message)


def measure(raw: bytes) -> float:
    """CPU seconds to open *raw*: the best of runs adding up to about 0.3 s (at least 1)."""
    best = float("inf")
    spent = 0.0
    runs = 0
    while runs < 1 or (spent < 0.3 and runs < 20):
        gc.collect()
        start = time.process_time()
        open_message(raw)
        took = time.process_time() - start
        best = min(best, took)
        spent += took
        runs += 1
    return best


def parse_size(text: str) -> int:
    units = {"kb": 1000, "mb": 1000**2, "kib": 1024, "mib": 1024**2}
    lowered = text.strip().lower()
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if lowered.endswith(unit):
            return int(float(lowered[: -len(unit)]) * factor)
    return int(lowered)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="end with run.py's rows as JSON")
    parser.add_argument("--max-size", type=parse_size, help="largest size (default: by scale)")
    parser.add_argument("--shapes", help=f"comma-separated, of: {', '.join(SHAPES)}")
    parser.add_argument(
        "--factor", type=float, default=4.0, help="largest allowed growth of the cost per kB"
    )
    parser.add_argument(
        "--memory-factor", type=float, default=6.0, help="largest allowed peak over the size"
    )
    args = parser.parse_args()
    small = os.environ.get("SMTPMOCK_BENCH_SCALE") == "small"
    sizes = [s for s in (SIZES_SMALL if small else SIZES_FULL) if s <= (args.max_size or 1e12)]
    if args.max_size and args.max_size not in sizes:
        sizes.append(args.max_size)
    shapes = args.shapes.split(",") if args.shapes else list(SHAPES)

    print(f"{'shape':<20} {'size':>12} {'seconds':>9} {'us/kB':>9}", flush=True)
    rows = []
    failed = []
    for shape in shapes:
        costs = []
        for size in sizes:
            raw = SHAPES[shape](size)
            seconds = measure(raw)
            per_kb = seconds * 1e6 / (len(raw) / 1000)
            costs.append(per_kb)
            print(f"{shape:<20} {len(raw):>12,} {seconds:>9.3f} {per_kb:>9.1f}", flush=True)
            del raw
        growth = costs[-1] / costs[0] if costs[0] > 0 else float("inf")
        verdict = "flat" if growth <= args.factor else f"GREW more than {args.factor:g}x"
        print(f"{shape:<20} cost per kB x{growth:.2f} from the smallest to the largest: {verdict}")
        if growth > args.factor:
            failed.append(f"{shape} (x{growth:.1f})")
        rows.append(
            {
                "scenario": f"pathological {shape}: open one message of {sizes[-1] / 1e6:g} MB",
                "unit": "CPU us/kB",
                "figures": {"smtpmock": round(costs[-1], 2)},
                "higher_is_better": False,
                "subjects": ["smtpmock"],
                "notes": [
                    f"us/kB at {', '.join(f'{s / 1e6:g} MB' for s in sizes)}: "
                    + ", ".join(f"{c:.1f}" for c in costs)
                    + f" (x{growth:.2f}; at most x{args.factor:g} allowed)"
                ],
            }
        )
    memory_size = 2_000_000 if small else 20_000_000
    print(f"\n{'peak memory opening':<28} {'size':>12} {'peak MB':>9} {'x size':>7}")
    for name, build in MEMORY_SHAPES.items():
        raw = build(memory_size)
        peak = peak_memory(raw)
        times = peak / len(raw)
        print(f"{name:<28} {len(raw):>12,} {peak / 1e6:>9.1f} {times:>7.2f}", flush=True)
        if times > args.memory_factor:
            failed.append(f"memory for a {name} (x{times:.1f})")
        rows.append(
            {
                "scenario": f"peak memory opening a {len(raw) / 1e6:.0f} MB {name}",
                "unit": "x message size",
                "figures": {"smtpmock": round(times, 2)},
                "higher_is_better": False,
                "subjects": ["smtpmock"],
                "notes": [f"tracemalloc peak {peak / 1e6:.1f} MB; at most x{args.memory_factor:g}"],
            }
        )
        del raw
    if args.json:
        print(json.dumps({"rows": rows}))
    if failed:
        print(f"over the bound: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
