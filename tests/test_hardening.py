"""Attacks that hit tools in this field, each performed over a real socket (see
``field-notes.md``): SMTP smuggling, STARTTLS command injection, header injection through HELO
and MAIL FROM, unbounded sizes, slow and idle clients."""

from __future__ import annotations

import select
import smtplib
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from smtpmock import SMTPMock

from .rawsmtp import RawSMTP

MiB = 1 << 20


def _ready_for_data(mock: SMTPMock, *, ehlo: str = "client") -> RawSMTP:
    raw = RawSMTP(mock.host, mock.port)
    raw.reply()
    raw.command(f"EHLO {ehlo}")
    assert raw.command("MAIL FROM:<a@example.com>")[0] == 250
    assert raw.command("RCPT TO:<b@example.com>")[0] == 250
    assert raw.command("DATA")[0] == 354
    return raw


@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\r.\r\n", b"\n.\n"])
def test_smtp_smuggling(mock: SMTPMock, fake_end: bytes) -> None:
    smuggled = (
        b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
        b"Subject: smuggled\r\n\r\nwire the money\r\n"
    )
    with _ready_for_data(mock) as raw:
        raw.send(b"Subject: first\r\n\r\nhello" + fake_end + smuggled + b".\r\nQUIT\r\n")
        code, _ = raw.reply()
        assert code == 250
        assert raw.reply()[0] == 221  # the very next reply: nothing else was answered
    [message] = mock.messages
    assert message.subject == "first"
    assert message.rcpt_tos == ("b@example.com",)
    assert b"hello" + fake_end + smuggled in message.raw


def test_starttls_command_injection() -> None:
    with SMTPMock(tls="starttls") as mock, RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        raw.send(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<injected@example.com>\r\n")
        assert raw.reply() == (220, "220 2.0.0 Ready to start TLS")
        raw.starttls(mock.client_ssl_context())
        # The first reply after the handshake answers our QUIT, not the injected NOOP.
        code, _ = raw.command("MAIL FROM:<a@example.com>")
        assert code == 503  # and the session starts clean: EHLO is needed again
        assert raw.command("QUIT")[0] == 221
    [session] = mock.wait_for_sessions(1)
    assert session.commands == ["EHLO", "STARTTLS", "MAIL", "QUIT"]


MAIL = b"MAIL FROM:<a@example.com>"


@pytest.mark.parametrize(
    ("helo", "helo_replies", "mail_from", "mail_replies"),
    [
        # CRLF or LF ends the command: the rest is a second, unknown command (500).
        (b"HELO x\r\nX-Injected: y", [250, 500], MAIL, [250]),
        (b"HELO x\nX-Injected: y", [250, 500], MAIL, [250]),
        (b"HELO x", [250], MAIL + b"\r\nX-Injected: y", [250, 500]),
        # A bare CR inside a command is refused outright.
        (b"HELO x\rX-Injected: y", [501], MAIL, [250]),
        (b"HELO x", [250], MAIL + b"\rX-Injected: y", [501]),
    ],
)
def test_header_injection_through_helo_and_mail_from(
    mock: SMTPMock,
    helo: bytes,
    helo_replies: list[int],
    mail_from: bytes,
    mail_replies: list[int],
) -> None:
    body = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: clean\r\n\r\nbody\r\n"
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.send(helo + b"\r\n")
        assert [raw.reply()[0] for _ in helo_replies] == helo_replies
        if helo_replies[0] != 250:
            assert raw.command("HELO x")[0] == 250
        raw.send(mail_from + b"\r\n")
        assert [raw.reply()[0] for _ in mail_replies] == mail_replies
        if mail_replies[0] != 250:
            assert raw.command(MAIL)[0] == 250
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        raw.send(body + b".\r\n")
        assert raw.reply()[0] == 250
    [message] = mock.messages
    assert message.raw == body  # stored exactly as received: no header added
    assert "X-Injected" not in message.headers
    assert message.helo == "x"
    assert message.mail_from == "a@example.com"


@pytest.mark.parametrize("strict", [False, True])
def test_single_data_line_larger_than_the_size_limit(strict: bool) -> None:
    with (
        SMTPMock(max_message_size=10_000, refuse_long_lines=strict) as mock,
        _ready_for_data(mock) as raw,
    ):
        raw.send(b"Subject: one line\r\n\r\n" + b"A" * 50_000)  # no line end yet
        # RFC 5321 4.1.1.4 / RFC 1870 6: no reply in the middle of DATA, only after the dot.
        assert not select.select([raw.sock], [], [], 0.2)[0]
        raw.send(b"\r\n.\r\n")
        code, text = raw.reply()
        assert (code, text[4:9]) == (552, "5.3.4")  # the size is what is over first
        assert raw.command("NOOP")[0] == 250
    assert mock.messages == []


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")  # pragma: no cover


@pytest.mark.skipif(not hasattr(select, "select"), reason="needs select()")
def test_100_mb_over_the_limit_is_read_in_bounded_memory_and_answered_552(
    mock: SMTPMock,
) -> None:
    limit = mock.config.max_message_size
    assert limit is not None
    before = _peak_rss()
    chunk = (b"x" * 998 + b"\r\n") * 1024  # ~1 MiB of well-formed lines
    sent = 0
    with _ready_for_data(mock) as raw:
        while sent < limit + 100 * MiB:
            raw.sock.sendall(chunk)
            sent += len(chunk)
            # Nothing is answered before the end of the data (RFC 1870 6).
            assert not select.select([raw.sock], [], [], 0)[0]
        raw.sock.sendall(b".\r\n")
        code, text = raw.reply()  # a permanent refusal, not a dropped connection
        assert (code, text[:9]) == (552, "552 5.3.4")
        assert raw.command("NOOP")[0] == 250
    assert mock.messages == []
    growth = _peak_rss() - before
    assert growth < 100 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB"


def test_smtplib_gets_552_for_a_message_far_over_the_limit() -> None:
    # Issue 24 defect 3: 16 MiB over the limit used to end in SMTPServerDisconnected.
    with SMTPMock(max_message_size=1 << 20) as mock:
        body = "Subject: big\r\n\r\n" + ("y" * 998 + "\r\n") * (20 * 1024)  # ~20 MiB
        with smtplib.SMTP(mock.host, mock.port, timeout=60) as client:
            client.ehlo()
            client.mail("a@example.com")  # no SIZE=, as a client that does not know the size
            client.rcpt("b@example.com")
            code, text = client.data(body)
            assert (code, text[:5]) == (552, b"5.3.4")
            assert client.noop()[0] == 250
    assert mock.messages == []


def test_10000_character_command_line(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        assert raw.command("HELO " + "h" * 10_000) == (
            500,
            "500 5.5.2 Error: command line too long",
        )
        assert raw.command(b"NOOP " + b"n" * (4 * MiB))[0] == 500  # beyond the read buffer
        assert raw.command("HELO client")[0] == 250


@pytest.fixture
def crowd(mock: SMTPMock) -> Iterator[None]:
    """500 idle connections and one client sending a byte a second, all open at once."""
    stop = threading.Event()
    connected = threading.Event()

    def slow_loris() -> None:
        with socket.create_connection((mock.host, mock.port), timeout=10) as s:
            connected.set()
            for byte in b"EHLO " + b"s" * 100:
                if stop.wait(1.0):  # the attack's pace, not a synchronisation
                    return
                s.sendall(bytes([byte]))

    with ExitStack() as stack:
        for _ in range(500):
            stack.enter_context(socket.create_connection((mock.host, mock.port), timeout=10))
        thread = threading.Thread(target=slow_loris, daemon=True)
        thread.start()
        # connected before the test's own client: the server accepts in that order, so the
        # slow client's session exists once the test's message is stored
        assert connected.wait(10)
        yield
        stop.set()
        thread.join()


@pytest.mark.usefixtures("crowd")
def test_slow_and_idle_clients_do_not_block_delivery(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], "Subject: through\r\n\r\nok\r\n")
    [message] = mock.wait_for(1, timeout=10)
    assert message.subject == "through"
    assert len(mock.sessions) >= 502
