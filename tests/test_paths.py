"""MAIL/RCPT paths: the parser of the SMTP engine (pure), and the same paths over the wire."""

from __future__ import annotations

import smtplib

import pytest

from smtpmock import SMTPMock
from smtpmock.smtp._paths import Path, parse_params, parse_path

from .rawsmtp import RawSMTP

ACCEPTED = [
    ("<a@b>", "a@b", ""),
    ("<Bob.Smith+tag@Mail.Example.COM>", "Bob.Smith+tag@Mail.Example.COM", ""),
    ("<!#$%&'*+/=?^_`{|}~-@x-y.z>", "!#$%&'*+/=?^_`{|}~-@x-y.z", ""),
    ("<a@b> SIZE=100", "a@b", "SIZE=100"),
    (
        "<a@b>  NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
        "a@b",
        "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
    ),
    ("  <a@b>", "a@b", ""),
    ("\t<a@b>\t", "a@b", ""),
    ("<>", "", ""),
    ("<> SIZE=1", "", "SIZE=1"),
    ('<"quoted local"@example.com>', '"quoted local"@example.com', ""),
    ('<"a\\"b"@example.com>', '"a\\"b"@example.com', ""),
    ('<"a>b"@example.com>', '"a>b"@example.com', ""),
    ("<@relay.example:bob@example.com>", "bob@example.com", ""),
    ("<@r1,@r2:bob@example.com>", "bob@example.com", ""),
    ("<josé@exämple.com>", "josé@exämple.com", ""),
    ("<用户@例子.广告>", "用户@例子.广告", ""),
    ("<bob@[192.0.2.1]>", "bob@[192.0.2.1]", ""),
    ("<bob@[IPv6:2001:db8::1]>", "bob@[IPv6:2001:db8::1]", ""),
    ("bob@example.com", "bob@example.com", ""),
    ("<a..b@example.com>", "a..b@example.com", ""),
    ("<" + "x" * 200 + "@example.com>", "x" * 200 + "@example.com", ""),
]
# Truncated or unbalanced: a syntax error (501), never a crash (issue 23, M2).
SYNTAX = ["", "<", "<a", "<a@b", "<bob@example.com", '<"unterminated@b>', "<@relay:"]
MAILBOX = [  # well formed as a path, but no mailbox: 553
    "<a@b..c>",
    "<a@b.>",
    "<a @b>",
    "<a@b@c>",
    "<@>",
    "<a@>",
    "<@b>",
    "<<a@b>>",
    "<a,b@c>",
    "<a\\b@c>",
    "<bob(comment)@example.com>",
]


@pytest.mark.parametrize(("text", "address", "params"), ACCEPTED)
def test_accepted_paths(text: str, address: str, params: str) -> None:
    assert parse_path(text) == Path(address, params)


@pytest.mark.parametrize("text", SYNTAX)
def test_truncated_paths_are_syntax_errors(text: str) -> None:
    assert parse_path(text).error == "syntax"


@pytest.mark.parametrize("text", MAILBOX)
def test_paths_without_a_mailbox(text: str) -> None:
    assert parse_path(text).error == "mailbox"


def test_postmaster_only_where_allowed() -> None:
    assert parse_path("<Postmaster>", allow_postmaster=True) == Path("Postmaster", "")
    assert parse_path("<postmaster>").error == "mailbox"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("SIZE=10 SMTPUTF8", {"SIZE": "10", "SMTPUTF8": None}),
        ("body=8BITMIME", {"BODY": "8BITMIME"}),
        ("SIZE=", None),
        ("(comment)", None),
        (">", None),
        ("A=b=c", None),
    ],
)
def test_parameters(text: str, expected: dict[str, str | None] | None) -> None:
    assert parse_params(text) == expected


def test_paths_over_the_wire(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port) as client:
        client.ehlo()
        assert client.docmd("MAIL", "FROM:<a.b+c@example.com> BODY=8BITMIME")[0] == 250
        assert client.docmd("RCPT", "TO:<plain@example.com>")[0] == 250
        assert client.docmd("RCPT", 'TO:<"quoted name"@example.com>')[0] == 250
        assert client.docmd("RCPT", "TO:<@relay.example:routed@example.com>")[0] == 250
        assert client.docmd("RCPT", "TO:<bad..dots@example.com>")[0] == 250
        assert client.docmd("RCPT", "TO:<broken@>")[0] == 553
        client.data(b"Subject: paths\r\n\r\nx\r\n")
    [message] = mock.wait_for(1)
    assert message.mail_from == "a.b+c@example.com"
    assert message.rcpt_tos == (
        "plain@example.com",
        '"quoted name"@example.com',
        "routed@example.com",
        "bad..dots@example.com",
    )


@pytest.mark.parametrize(
    "line",
    [
        "MAIL FROM:<",
        "MAIL FROM:<a",
        "MAIL FROM:<a@example.com",
        'MAIL FROM:<"a',
        "MAIL FROM:",
        "MAIL FROM: <@relay:",
        "MAIL FROM:<@",
    ],
)
def test_truncated_mail_from_is_501_not_a_server_error(mock: SMTPMock, line: str) -> None:
    # Issue 23, M2: these were "451 internal error" and an IndexError that failed check().
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        code, _ = raw.command(line)
        assert code == 501
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250  # the session goes on
    assert mock.errors == []
    mock.check()
