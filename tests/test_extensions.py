"""ESMTP extensions advertised in EHLO and working: SIZE, 8BITMIME, SMTPUTF8, PIPELINING,
ENHANCEDSTATUSCODES, DSN parameters, and the null sender."""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage
from email.policy import SMTPUTF8

import pytest

from smtpmock import SMTPMock

from .rawsmtp import RawSMTP

BODY = "From: a@example.com\r\nTo: b@example.com\r\nSubject: ext\r\n\r\nhi\r\n"


def test_ehlo_advertises_extensions(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.ehlo()
        for name in ("size", "8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes", "dsn"):
            assert c.has_extn(name), name
        assert c.esmtp_features["size"] == str(mock.config.max_message_size)
        assert not c.has_extn("starttls")  # no TLS configured
        assert not c.has_extn("auth")  # no accounts configured


def test_size_parameter_over_the_limit_is_refused_at_mail() -> None:
    with SMTPMock(max_message_size=1000) as mock, RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        code, text = raw.command("MAIL FROM:<a@example.com> SIZE=1001")
        assert code == 552
        assert text.startswith("552 5.3.4 ")
        assert raw.command("MAIL FROM:<a@example.com> SIZE=1000")[0] == 250


def test_null_sender_is_accepted(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.sendmail("<>", ["b@example.com"], BODY)
    [message] = mock.wait_for(1)
    assert message.mail_from == ""
    assert message.rcpt_tos == ("b@example.com",)


def test_dsn_and_body_parameters_are_recorded(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.sendmail(
            "a@example.com",
            ["b@example.com", "c@example.com"],
            BODY,
            mail_options=["BODY=8BITMIME", "RET=HDRS", "ENVID=QQ314159"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@example.com"],
        )
    [message] = mock.wait_for(1)
    assert "BODY=8BITMIME" in message.mail_options
    assert "RET=HDRS" in message.mail_options
    assert "ENVID=QQ314159" in message.mail_options  # value case kept as sent
    assert any(o.upper().startswith("SIZE=") for o in message.mail_options)
    assert message.rcpt_options == {
        "b@example.com": ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@example.com"),
        "c@example.com": ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@example.com"),
    }


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("MAIL FROM:<a@example.com> FOO=BAR", 555),
        ("MAIL FROM:<a@example.com> BODY=BINARYMIME", 501),
        ("MAIL FROM:<a@example.com> RET=ALL", 501),
        ("MAIL FROM:<a@example.com> SIZE=big", 501),
        ("MAIL FROM:<a@example.com> SMTPUTF8=yes", 555),
    ],
)
def test_bad_mail_parameters(mock: SMTPMock, command: str, code: int) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        assert raw.command(command)[0] == code
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250  # nothing was half-set


@pytest.mark.parametrize(
    ("params", "code"),
    [("NOTIFY=SOMETIMES", 501), ("NOTIFY=NEVER,SUCCESS", 501), ("ORCPT=x", 501), ("X=1", 555)],
)
def test_bad_rcpt_parameters(mock: SMTPMock, params: str, code: int) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        raw.command("MAIL FROM:<a@example.com>")
        assert raw.command(f"RCPT TO:<b@example.com> {params}")[0] == code


def test_smtputf8_addresses_and_headers_round_trip(mock: SMTPMock) -> None:
    msg = EmailMessage(policy=SMTPUTF8)
    msg["From"] = "Jöran <jöran@exämple.com>"
    msg["To"] = "用户 <用户@例子.广告>"
    msg["Subject"] = "Grüße 👋"
    msg.set_content("Straße\n")
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.send_message(msg)
    [message] = mock.wait_for(1)
    assert message.smtputf8
    assert message.mail_from == "jöran@exämple.com"
    assert message.rcpt_tos == ("用户@例子.广告",)
    assert message.subject == "Grüße 👋"
    assert message.to[0].address == "用户@例子.广告"
    assert "Grüße 👋".encode() in message.raw


def test_non_ascii_address_without_smtputf8_is_refused(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        code, text = raw.command("MAIL FROM:<jöran@exämple.com>")
        assert (code, text[4:9]) == (553, "5.6.7")
        assert raw.command("MAIL FROM:<jöran@exämple.com> SMTPUTF8")[0] == 250


def test_8bitmime_body_is_stored_byte_for_byte(mock: SMTPMock) -> None:
    raw_message = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nÆøå ✓\r\n"
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.sendmail("a@example.com", ["b@example.com"], raw_message.encode(), ["BODY=8BITMIME"])
    [message] = mock.wait_for(1)
    assert message.raw == raw_message.encode()
    assert message.text is not None
    assert "Æøå ✓" in message.text


def test_pipelining_client_sending_everything_in_one_write(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        raw.send(
            b"MAIL FROM:<a@example.com>\r\n"
            b"RCPT TO:<b@example.com>\r\n"
            b"RCPT TO:<c@example.com>\r\n"
            b"DATA\r\n"
        )
        assert [raw.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
        raw.send(
            b"Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<d@example.com>\r\nRSET\r\nQUIT\r\n"
        )
        assert [raw.reply()[0] for _ in range(4)] == [250, 250, 250, 221]
    [message] = mock.wait_for(1)
    assert message.rcpt_tos == ("b@example.com", "c@example.com")
    assert message.subject == "piped"


def test_replies_carry_enhanced_status_codes(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        replies = [
            raw.command(c)[1]
            for c in (
                "NOOP",
                "MAIL FROM:<a@example.com>",
                "MAIL FROM:<a@example.com>",
                "RCPT TO:<b@example.com>",
                "RCPT TO:<not an address>",
                "VRFY someone",
                "FROB",
                "RSET",
                "DATA",
                "QUIT",
            )
        ]
    for reply in replies:
        assert re.match(r"^[245]\d\d [245]\.\d{1,3}\.\d{1,3} ", reply), reply


def test_helo_client_cannot_use_parameters(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        assert raw.command("HELO client")[1] == f"250 {mock.config.hostname}"
        assert raw.command("MAIL FROM:<a@example.com> BODY=8BITMIME")[0] == 501
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250


def test_invalid_utf8_in_a_command_is_refused(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        assert raw.command(b"MAIL FROM:<\xff\xfe@example.com> SMTPUTF8")[0] == 501
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250
