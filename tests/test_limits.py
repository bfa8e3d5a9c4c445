"""Limits, each refused with its code and text: recipients, message size, command-line length,
DATA line length, idle timeout, concurrent connections."""

from __future__ import annotations

import smtplib

import pytest

from smtpmock import ConfigurationError, SMTPMock

from .rawsmtp import RawSMTP


def _session(mock: SMTPMock) -> RawSMTP:
    raw = RawSMTP(mock.host, mock.port)
    assert raw.reply()[0] == 220
    assert raw.command("EHLO client")[0] == 250
    return raw


def test_max_recipients() -> None:
    with SMTPMock(max_recipients=3) as mock, _session(mock) as raw:
        raw.command("MAIL FROM:<a@example.com>")
        for n in range(3):
            assert raw.command(f"RCPT TO:<r{n}@example.com>")[0] == 250
        assert raw.command("RCPT TO:<r3@example.com>") == (
            452,
            "452 4.5.3 Error: too many recipients",
        )
        assert raw.command("DATA")[0] == 354
        assert raw.command(b"Subject: three\r\n\r\nx\r\n.")[0] == 250
        [message] = mock.wait_for(1)
    assert message.rcpt_tos == ("r0@example.com", "r1@example.com", "r2@example.com")


def test_message_size_limit_with_smtplib_then_session_goes_on() -> None:
    with SMTPMock(max_message_size=1000) as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
            c.ehlo()
            c.esmtp_features.pop("size")  # make smtplib send SIZE-less MAIL and the data
            big = "Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 100
            with pytest.raises(smtplib.SMTPDataError) as info:
                c.sendmail("a@example.com", ["b@example.com"], big)
            assert info.value.smtp_code == 552
            assert info.value.smtp_error.startswith(b"5.3.4 ")
            c.sendmail("a@example.com", ["b@example.com"], "Subject: small\r\n\r\nok\r\n")
        [message] = mock.wait_for(1)
    assert message.subject == "small"


def test_message_exactly_at_the_limit_is_accepted() -> None:
    body = b"Subject: edge\r\n\r\n" + b"y" * 80 + b"\r\n"
    with SMTPMock(max_message_size=len(body)) as mock, _session(mock) as raw:
        raw.command("MAIL FROM:<a@example.com>")
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        raw.send(body + b".\r\n")
        assert raw.reply()[0] == 250
        [message] = mock.wait_for(1)
    assert message.raw == body


def test_command_line_length(mock: SMTPMock) -> None:
    with _session(mock) as raw:
        limit = mock.config.max_command_length
        long_address = "a" * (limit - len("MAIL FROM:<@example.com>\r\n") + 1)
        code, text = raw.command(f"MAIL FROM:<{long_address}@example.com>")
        assert (code, text) == (500, "500 5.5.2 Error: command line too long")
        assert raw.command(f"MAIL FROM:<{long_address[:-1]}@example.com>")[0] == 250


def test_long_data_lines_are_accepted_and_reported_by_default() -> None:
    # Postfix, Mailpit and MailHog take such lines, and templating engines make them.
    with SMTPMock() as mock, _session(mock) as raw:
        raw.command("MAIL FROM:<a@example.com>")
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        # 998 octets + CRLF is the RFC 5321 maximum; a leading dot is stuffing, not counted.
        raw.send(b"Subject: fits\r\n\r\n" + b"." + b"." * 998 + b"\r\n.\r\n")
        assert raw.reply()[0] == 250
        raw.command("MAIL FROM:<a@example.com>")
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        raw.send(b"Subject: long\r\n\r\n" + b"z" * 5000 + b"\r\n.\r\n")
        assert raw.reply()[0] == 250
        fits, long = mock.wait_for(2)
    assert fits.raw.endswith(b"." * 998 + b"\r\n")
    assert not any("998" in defect for defect in fits.defects)
    assert long.raw.endswith(b"z" * 5000 + b"\r\n")
    assert "a line of 5000 octets, over RFC 5321's 998 (4.5.3.1.6)" in long.defects


def test_long_data_lines_refused_after_the_final_dot_when_strict() -> None:
    with SMTPMock(refuse_long_lines=True) as mock, _session(mock) as raw:
        raw.command("MAIL FROM:<a@example.com>")
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        raw.send(b"Subject: lines\r\n\r\n" + b"." + b"." * 998 + b"\r\n.\r\n")
        assert raw.reply()[0] == 250
        raw.command("MAIL FROM:<a@example.com>")
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        raw.send(b"Subject: lines\r\n\r\n" + b"z" * 999 + b"\r\n")
        raw.send(b"more\r\n.\r\n")
        code, text = raw.reply()  # the first reply after DATA's 354 comes after the dot
        assert code == 500
        assert text.startswith("500 5.5.2 Error: line too long in DATA")
        assert raw.command("NOOP")[0] == 250  # the session goes on
        [message] = mock.wait_for(1)
    assert message.raw.endswith(b"." * 998 + b"\r\n")


def test_data_line_limit_can_be_lifted() -> None:
    with SMTPMock(max_line_length=None) as mock, _session(mock) as raw:
        raw.command("MAIL FROM:<a@example.com>")
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        raw.send(b"Subject: long\r\n\r\n" + b"w" * 200_000 + b"\r\n.\r\n")
        assert raw.reply()[0] == 250
        [message] = mock.wait_for(1)
    assert len(message.raw) > 200_000


def test_idle_timeout_says_421_then_closes() -> None:
    with SMTPMock(idle_timeout=0.3) as mock, _session(mock) as raw:
        # Block on the socket: the server's own timer must speak first.
        assert raw.reply() == (421, "421 4.4.2 localhost Error: timeout exceeded, closing")
        assert raw.at_eof()


def test_max_connections() -> None:
    with SMTPMock(max_connections=2) as mock, _session(mock) as one, _session(mock) as two:
        with RawSMTP(mock.host, mock.port) as three:
            code, text = three.reply()
            assert (code, text[:9]) == (421, "421 4.7.0")
            assert three.at_eof()
        # the two admitted sessions still work
        assert one.command("NOOP")[0] == 250
        assert two.command("NOOP")[0] == 250
        assert two.command("QUIT")[0] == 221
        mock.wait_for_sessions(2)  # the refused one and the one that quit
        with RawSMTP(mock.host, mock.port) as four:
            assert four.reply()[0] == 220  # a freed slot is given to the next client


@pytest.mark.parametrize("ending", ["quit", "hang-up after STARTTLS", "failed handshake"])
def test_a_slot_is_freed_once_however_the_session_ends(ending: str) -> None:
    """STARTTLS gives a session a second transport, and a failed handshake ends it early: the
    slot must come back exactly once (not lost, not given back twice)."""
    with SMTPMock(max_connections=1, tls="starttls") as mock:
        for _ in range(3):
            with RawSMTP(mock.host, mock.port) as raw:
                assert raw.reply()[0] == 220
                assert raw.command("EHLO client.test")[0] == 250
                if ending == "quit":
                    assert raw.command("QUIT")[0] == 221
                elif ending == "hang-up after STARTTLS":
                    assert raw.command("STARTTLS")[0] == 220
                    raw.starttls(mock.client_ssl_context())
                    assert raw.command("NOOP")[0] == 250
                else:
                    assert raw.command("STARTTLS")[0] == 220
                    raw.send(b"not a TLS client hello\r\n" * 20)
            mock.wait_for_sessions(len(mock.sessions))
            with RawSMTP(mock.host, mock.port) as one:
                assert one.reply()[0] == 220  # the slot came back
                with RawSMTP(mock.host, mock.port) as two:
                    assert two.reply()[0] == 421  # ... but only once
                assert one.command("QUIT")[0] == 221
            mock.wait_for_sessions(len(mock.sessions))


@pytest.mark.parametrize(
    "options",
    [
        {"max_recipients": 0},
        {"max_connections": -1},
        {"max_line_length": 0},
        {"max_command_length": 100},
    ],
)
def test_bad_limit_options(options: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError):
        SMTPMock(**options)
