"""DATA is read a block at a time (up to each line that ends in a dot); what is stored must be
exactly what line-by-line reading stores, wherever the dots and packet boundaries fall."""

from __future__ import annotations

import random

import pytest

from smtpmock import SMTPMock

from .rawsmtp import RawSMTP

BIG = b"Subject: big\r\n\r\n" + (b"w" * 78 + b"\r\n") * 400 + b".. stuffed\r\nfin.\r\n"
CASES = [
    # (bytes after DATA's 354, what is stored)
    (b".\r\n", b""),
    (b"Subject: a\r\n\r\nend of sentence.\r\n.\r\n", b"Subject: a\r\n\r\nend of sentence.\r\n"),
    (b"x\r\n..\r\n...\r\n.y.\r\n.\r\n", b"x\r\n.\r\n..\r\ny.\r\n"),
    (b"a.\r\nb.\r\n.\r\n", b"a.\r\nb.\r\n"),
    # smuggling forms stay content: only CRLF.CRLF ends the message
    (b"s\n.\r\nMAIL FROM:<x@y>\r\n.\r\n", b"s\n.\r\nMAIL FROM:<x@y>\r\n"),
    (b"s\r.\r\nt\r\n.\r\n", b"s\r.\r\nt\r\n"),
    (b"s\r\n.\n.\r\n.\r\n", b"s\r\n\n.\r\n"),  # a line ".\n." is unstuffed, not an end
    # larger than the reader's 16 KiB buffer limit before any dot: line-by-line from there
    (BIG + b".\r\n", BIG.replace(b"\r\n.. ", b"\r\n. ")),
]  # fmt: skip


@pytest.mark.parametrize(("data", "stored"), CASES)
@pytest.mark.parametrize("packets", ["one", "bytewise-tail"])
def test_stored_content(mock: SMTPMock, data: bytes, stored: bytes, packets: str) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        assert raw.reply()[0] == 220
        assert raw.command("EHLO c")[0] == 250
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250
        assert raw.command("RCPT TO:<b@example.com>")[0] == 250
        assert raw.command("DATA")[0] == 354
        if packets == "one":
            # pipelined: the next command arrives in the same packet as the end of data
            raw.send(data + b"NOOP\r\n")
        else:
            head, tail = data[:-8], data[-8:]
            raw.send(head)
            for i in range(len(tail)):
                raw.send(tail[i : i + 1])
            raw.send(b"NOOP\r\n")
        assert raw.reply()[0] == 250
        assert raw.reply()[0] == 250  # the NOOP was read as a command, not as content
        [message] = mock.wait_for(1)
    assert message.raw == stored


def _reference(data: bytes) -> bytes:
    """What RFC 5321 says is stored: CRLF lines up to the line ".", each unstuffed once."""
    stored = []
    for line in data.split(b"\r\n"):
        if line == b".":
            return b"".join(stored)
        stored.append((line[1:] if line.startswith(b".") else line) + b"\r\n")
    raise AssertionError("no end marker")  # pragma: no cover


def test_random_dots_and_line_ends_match_the_reference(mock: SMTPMock) -> None:
    # Dots, lone CRs and LFs placed at random: whole blocks taken at once and blocks split
    # into lines must both store what the line-by-line reading of RFC 5321 gives.
    rng = random.Random(7)
    alphabet = [b".", b".", b"a", b"\r", b"\n", b"\r\n", b"\r\n.", b"\r\n.."]
    bodies = []
    for _ in range(60):
        body = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        if body.startswith(b".\r\n") or b"\r\n.\r\n" in body:
            body = body.replace(b".\r\n", b"..\r\n")  # keep the end marker for the end
        bodies.append(body + b".\r\n")
    with RawSMTP(mock.host, mock.port) as raw:
        assert raw.reply()[0] == 220
        assert raw.command("EHLO c")[0] == 250
        for data in bodies:
            assert raw.command("MAIL FROM:<a@example.com>")[0] == 250
            assert raw.command("RCPT TO:<b@example.com>")[0] == 250
            assert raw.command("DATA")[0] == 354
            raw.send(data)
            assert raw.reply()[0] == 250, data
    stored = [m.raw for m in mock.wait_for(len(bodies))]
    assert stored == [_reference(data) for data in bodies]
