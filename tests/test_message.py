"""Message: the raw bytes, the envelope and every parsed view, each checked over a real socket."""

from __future__ import annotations

import datetime as dt
import smtplib
from email import policy
from email.message import EmailMessage

import pytest

from smtpmock import Address, Attachment, Headers, Message, SMTPMock
from tests.mail import send


def _send_bytes(
    mock: SMTPMock,
    raw: bytes,
    *,
    sender: str = "env@example.com",
    to: tuple[str, ...] = ("bob@example.com",),
    **kw: object,
) -> Message:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
        client.sendmail(sender, list(to), raw, **kw)  # type: ignore[arg-type]
    [message] = mock.wait_for(1)
    return message


def _rich_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jorg@example.com>"
    msg["To"] = '"Bob, the builder" <bob@example.com>, carol@example.com'
    msg["Cc"] = "Dave <dave@example.com>"
    msg["Reply-To"] = "Support <support@example.com>"
    msg["Subject"] = "Grüße aus Köln"
    msg["Message-ID"] = "<abc.123@example.com>"
    msg["Date"] = "Tue, 24 Nov 2026 10:30:00 +0100"
    msg["X-Tag"] = "first"
    msg["X-Tag"] = "second"
    msg.set_content("Confirm at https://example.com/confirm?token=a1&x=2.\nThanks\n")
    msg.add_alternative(
        '<p>Hi <a href="https://example.com/c?a=1&amp;b=2">confirm</a>'
        '<img src="cid:logo@example"></p>',
        subtype="html",
    )
    html_part = msg.get_payload()[1]
    html_part.add_related(
        b"\x89PNG\r\n\x1a\nfake-image",
        maintype="image",
        subtype="png",
        cid="<logo@example>",
        filename="logo.png",
        disposition="inline",
    )
    msg.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="report.csv")
    msg.add_attachment(
        bytes(range(256)),
        maintype="application",
        subtype="octet-stream",
        filename="=?utf-8?q?d=C3=A4ta.bin?=",
    )
    return msg


@pytest.fixture
def rich(mock: SMTPMock) -> Message:
    raw = _rich_message().as_bytes(policy=policy.SMTP)
    return _send_bytes(mock, raw, to=("bob@example.com", "carol@example.com", "hidden@example.com"))


def test_raw_is_exactly_what_was_sent_after_dot_unstuffing(mock: SMTPMock) -> None:
    raw = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
    # smtplib dot-stuffs on the wire ("." -> "..", ".." -> "..."); the server undoes exactly that.
    message = _send_bytes(mock, raw)
    assert message.raw == raw
    assert message.text is not None
    assert "..two dots\n" in message.text


def test_envelope(mock: SMTPMock) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    send(mock.host, mock.port, sender="alice@example.com", to=["bob@example.com", "c@example.com"])
    [message] = mock.wait_for(1)
    assert message.mail_from == "alice@example.com"
    assert message.rcpt_tos == ("bob@example.com", "c@example.com")
    assert message.peer is not None
    assert message.peer[0] == "127.0.0.1"
    assert message.peer[1] > 0
    assert message.helo  # smtplib sends EHLO with the local name
    assert message.received_at.tzinfo is not None
    assert message.received_at >= before
    assert message.tls is False
    assert message.auth_user is None
    assert message.size == len(message.raw)


def test_helo_name_is_recorded(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, local_hostname="client.test", timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nbody\r\n")
    [message] = mock.wait_for(1)
    assert message.helo == "client.test"


def test_null_reverse_path(mock: SMTPMock) -> None:
    message = _send_bytes(mock, b"Subject: bounce\r\n\r\nx\r\n", sender="")
    assert message.mail_from == ""


def test_subject_and_addresses_are_decoded(rich: Message) -> None:
    assert rich.subject == "Grüße aus Köln"
    assert rich.from_ == Address("Jörg Müller", "jorg@example.com")
    assert rich.to == [
        Address("Bob, the builder", "bob@example.com"),
        Address("", "carol@example.com"),
    ]
    assert rich.cc == [Address("Dave", "dave@example.com")]
    assert rich.reply_to == [Address("Support", "support@example.com")]
    assert rich.bcc == ["hidden@example.com"]
    assert str(rich.to[0]) == '"Bob, the builder" <bob@example.com>'
    assert str(rich.to[1]) == "carol@example.com"


def test_message_id_and_date(rich: Message) -> None:
    assert rich.message_id == "<abc.123@example.com>"
    assert rich.date == dt.datetime(2026, 11, 24, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def test_headers_keep_repeated_values_in_order(rich: Message) -> None:
    headers = rich.headers
    assert isinstance(headers, Headers)
    assert headers.get_all("x-tag") == ["first", "second"]
    assert headers["X-TAG"] == "first"
    assert "subject" in headers
    assert headers["Subject"] == "Grüße aus Köln"
    assert headers.get_all("x-missing") == []
    assert headers.as_dict()["X-Tag"] == ["first", "second"]
    names = list(headers)
    assert names.index("From") < names.index("Subject") < names.index("X-Tag")


def test_text_and_html_bodies(rich: Message) -> None:
    assert rich.text == "Confirm at https://example.com/confirm?token=a1&x=2.\nThanks\n"
    assert rich.html is not None
    assert rich.html.startswith('<p>Hi <a href="https://example.com/c?a=1&amp;b=2">')
    assert rich.body == rich.text


def test_attachments_include_inline_images(rich: Message) -> None:
    by_name = {a.filename: a for a in rich.attachments}
    assert set(by_name) == {"logo.png", "report.csv", "däta.bin"}
    logo = by_name["logo.png"]
    assert isinstance(logo, Attachment)
    assert logo.content_type == "image/png"
    assert logo.content_id == "logo@example"
    assert logo.content == b"\x89PNG\r\n\x1a\nfake-image"
    assert logo.size == len(logo.content)
    assert logo.is_inline
    csv = by_name["report.csv"]
    assert csv.content_type == "text/csv"
    assert csv.content_id is None
    assert csv.content.replace(b"\r\n", b"\n") == b"col1,col2\n1,2\n"
    assert not csv.is_inline
    binary = by_name["däta.bin"]
    assert binary.content == bytes(range(256))
    assert binary.size == 256
    assert rich.part(binary.index).content == binary.content


def test_links(rich: Message) -> None:
    assert rich.links == [
        "https://example.com/c?a=1&b=2",
        "https://example.com/confirm?token=a1&x=2",
    ]


def test_links_in_html_text_are_unescaped(mock: SMTPMock) -> None:
    raw = b"Content-Type: text/html\r\n\r\n<p>Go to https://example.com/x?a=1&amp;b=2 now</p>\r\n"
    message = _send_bytes(mock, raw)
    assert message.links == ["https://example.com/x?a=1&b=2"]


def test_smtputf8_raw_utf8_headers(mock: SMTPMock) -> None:
    raw = (
        "From: Zoë <zoë@exämple.com>\r\nTo: bob@example.com\r\nSubject: Ünïcödé ✓\r\n\r\nbody\r\n"
    ).encode()
    message = _send_bytes(mock, raw, sender="zoë@exämple.com", mail_options=["SMTPUTF8"])
    assert message.subject == "Ünïcödé ✓"
    assert message.from_ == Address("Zoë", "zoë@exämple.com")
    assert message.mail_from == "zoë@exämple.com"
    assert message.smtputf8
    assert message.defects == []


def test_well_formed_message_has_no_defects(rich: Message) -> None:
    assert rich.defects == []


def test_defects_are_reported(mock: SMTPMock) -> None:
    raw = (
        b"Subject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-used"\r\n\r\nno parts here\r\n'
    )
    message = _send_bytes(mock, raw)
    assert any("Boundary" in d for d in message.defects), message.defects


def test_message_built_directly_parses_lazily() -> None:
    message = Message(b"Subject: direct\r\n\r\nhello\r\n", rcpt_tos=["x@example.com"])
    assert "headers" not in message.__dict__  # nothing parsed yet
    assert message.subject == "direct"
    assert message.text == "hello\n"
    assert message.bcc == ["x@example.com"]
    assert message.attachments == []
    assert "direct" in repr(message)
    assert "x@example.com" in message.summary()


def test_messages_with_the_same_address_headers_parse_alike_and_apart() -> None:
    # Short address headers are parsed once and remembered: every message still gets its own
    # list, with the same decoded names, and one message's list changes nothing in another's.
    raw = (
        b"From: =?utf-8?q?Chlo=C3=A9?= <chloe@example.com>\r\n"
        b"To: Bob <bob@example.com>, carol@example.com\r\n\r\nhi\r\n"
    )
    first, second = Message(raw), Message(raw)
    assert (
        first.to
        == second.to
        == [
            Address("Bob", "bob@example.com"),
            Address("", "carol@example.com"),
        ]
    )
    assert first.from_ == second.from_ == Address("Chloé", "chloe@example.com")
    first.to.append(Address("", "mallory@example.com"))
    assert len(second.to) == 2
    assert len(Message(raw).to) == 2
    # A list too long to remember gives the same answer as a short one would.
    many = ", ".join(f"user{n}@example.com" for n in range(200)).encode()
    assert [a.address for a in Message(b"To: " + many + b"\r\n\r\nx").to][
        -1
    ] == "user199@example.com"
