"""The malformed corpus: each message is sent over SMTP, stored, and every accessor reads it.

No accessor may raise, ``defects`` says what is wrong, and the server keeps serving afterwards.
"""

from __future__ import annotations

import socket
import time
from email import headerregistry

import pytest

from smtpmock import Message, SMTPMock
from tests.mail import send

ACCESSORS = (
    "raw",
    "mail_from",
    "rcpt_tos",
    "peer",
    "helo",
    "received_at",
    "tls",
    "auth_user",
    "subject",
    "from_",
    "to",
    "cc",
    "reply_to",
    "bcc",
    "message_id",
    "date",
    "headers",
    "text",
    "html",
    "body",
    "attachments",
    "links",
    "defects",
    "size",
)


def _nested(depth: int) -> bytes:
    lines = [b"Subject: deep", b"MIME-Version: 1.0"]
    for level in range(depth):
        lines.append(f'Content-Type: multipart/mixed; boundary="b{level}"'.encode())
        lines.append(b"")
        lines.append(f"--b{level}".encode())
    lines += [b"Content-Type: text/plain", b"", b"bottom"]
    lines += [f"--b{level}--".encode() for level in reversed(range(depth))]
    return b"\r\n".join(lines) + b"\r\n"


def _many_addresses(count: int) -> bytes:
    to = ",\r\n ".join(f"user{i}@example.com" for i in range(count))  # folded: lines < 1000
    return f"Subject: crowd\r\nTo: {to}\r\n\r\nhello\r\n".encode()


# name -> (raw bytes, whether defects must be reported)
CORPUS: dict[str, tuple[bytes, bool]] = {
    "nested_1000_multiparts": (_nested(1000), True),
    "unknown_charset": (
        b"Subject: =?x-klingon?q?Qapla=27?=\r\nContent-Type: text/plain; charset=x-klingon\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nQapla\xe9!\r\n",
        True,
    ),
    "header_line_without_colon": (
        b"Subject: ok\r\nThis line has no colon\r\nX-After: value\r\n\r\nbody\r\n",
        True,
    ),
    "invalid_base64_attachment": (
        b"Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"
        b"--X\r\nContent-Type: text/plain\r\n\r\ntext\r\n"
        b"--X\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="a.pdf"\r\n\r\n'
        b"!!!not*base64@@@=\r\nQUJD=x\r\n--X--\r\n",
        True,
    ),
    "raw_8bit_non_utf8_headers": (
        b"Subject: caf\xe9 cr\xe8me\r\nFrom: Ren\xe9 <rene@example.com>\r\n\r\nbody\r\n",
        True,
    ),
    "empty_message": (b"", True),
    "no_headers_at_all": (b"\r\njust a body after an empty line\r\n", True),
    "body_only": (b"just a body, no header, no blank line\r\n", True),
    "bare_lf_line_endings": (b"Subject: lf\nTo: bob@example.com\n\nline one\nline two\n", False),
    "nul_byte": (b"Subject: nul\x00here\r\n\r\nbody with \x00 inside\r\n", False),
    "unterminated_multipart": (
        b"Subject: cut\r\nContent-Type: multipart/mixed; boundary=Z\r\n\r\n--Z\r\n"
        b"Content-Type: text/plain\r\n\r\ncut off",
        True,
    ),
    "bad_date_and_address": (
        b"Subject: x\r\nDate: yesterday-ish\r\nFrom: <<<@@>>>\r\nTo: ,,,;;\r\n\r\nb\r\n",
        True,
    ),
    "bad_encoded_words": (b"Subject: =?utf-8?b?!!!?= =?utf-8?q?=ZZ?=\r\n\r\nb\r\n", False),
}


def _send_raw(mock: SMTPMock, raw: bytes) -> None:
    """Send *raw* as DATA with a hand-written SMTP client: smtplib would repair line ends."""
    with socket.create_connection((mock.host, mock.port), timeout=10) as sock:
        stream = sock.makefile("rwb")

        def command(line: bytes, expect: bytes) -> None:
            stream.write(line)
            stream.flush()
            reply = stream.readline()
            while reply[3:4] == b"-":
                reply = stream.readline()
            assert reply.startswith(expect), (line, reply)

        assert stream.readline().startswith(b"220")
        command(b"EHLO client.test\r\n", b"250")
        command(b"MAIL FROM:<sender@example.com>\r\n", b"250")
        command(b"RCPT TO:<bob@example.com>\r\n", b"250")
        command(b"DATA\r\n", b"354")
        stuffed = b"".join(
            b"." + line if line.startswith(b".") else line for line in raw.splitlines(keepends=True)
        )
        if stuffed and not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        command(stuffed + b".\r\n", b"250")
        command(b"QUIT\r\n", b"221")


def _read_everything(message: Message) -> None:
    for name in ACCESSORS:
        getattr(message, name)
    for attachment in message.attachments:
        assert attachment.size == len(attachment.content)
        message.part(attachment.index)
    dict(message.headers)
    message.headers.as_dict()
    repr(message)
    message.summary()
    message.as_text()


@pytest.mark.parametrize("name", list(CORPUS))
def test_malformed_message_is_stored_and_readable(mock: SMTPMock, name: str) -> None:
    raw, defective = CORPUS[name]
    _send_raw(mock, raw)
    [message] = mock.wait_for(1)
    expected = raw if raw.endswith(b"\r\n") or not raw else raw + b"\r\n"
    assert message.raw == expected
    _read_everything(message)
    if defective:
        assert message.defects, name
    # The server still serves after it.
    send(mock.host, mock.port, subject="after")
    mock.wait_for(1, subject="after")
    mock.check()


def test_nested_multiparts_keep_the_headers(mock: SMTPMock) -> None:
    _send_raw(mock, _nested(1000))
    [message] = mock.wait_for(1)
    assert message.subject == "deep"
    assert any("nested too deeply" in d for d in message.defects)


def test_unknown_charset_body_reads_with_replacement(mock: SMTPMock) -> None:
    _send_raw(mock, CORPUS["unknown_charset"][0])
    [message] = mock.wait_for(1)
    assert message.text is not None
    assert message.text.startswith("Qapla")
    assert any("text/plain" in d and "x-klingon" in d for d in message.defects), message.defects
    # The subject's encoded word names the same unknown charset: kept as sent, and reported.
    assert message.subject == "=?x-klingon?q?Qapla=27?="
    assert any("Subject header" in d for d in message.defects), message.defects


def test_raw_8bit_latin1_headers_are_readable(mock: SMTPMock) -> None:
    _send_raw(mock, CORPUS["raw_8bit_non_utf8_headers"][0])
    [message] = mock.wait_for(1)
    assert message.subject == "café crème"
    assert message.from_ is not None
    assert message.from_.address == "rene@example.com"


def test_bare_lf_message_is_parsed(mock: SMTPMock) -> None:
    _send_raw(mock, CORPUS["bare_lf_line_endings"][0])
    [message] = mock.wait_for(1)
    assert message.subject == "lf"
    # The whole message is one SMTP line; the CRLF that ends it is the only CRLF.
    assert message.text == "line one\nline two\n\n"


def test_20000_addresses_in_to_stay_fast(mock: SMTPMock) -> None:
    _send_raw(mock, _many_addresses(20_000))
    [message] = mock.wait_for(1)
    # Not a timing assertion in the wall-clock sense of the suite: a generous bound that the
    # quadratic policy.default address parser (~8 s) cannot meet and getaddresses (~0.2 s) does.
    started = time.process_time()
    recipients = message.to
    elapsed = time.process_time() - started
    assert len(recipients) == 20_000
    assert recipients[-1].address == "user19999@example.com"
    assert elapsed < 3.0, elapsed
    _read_everything(message)


def test_address_headers_avoid_the_quadratic_stdlib_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # policy.default's address header objects take ~8 s for 20,000 addresses; Message must not
    # go through them (it uses email.utils.getaddresses on the raw value).
    def forbidden(cls: object, value: str, kwds: dict[str, object]) -> None:
        raise AssertionError("AddressHeader.parse used")

    monkeypatch.setattr(headerregistry.AddressHeader, "parse", classmethod(forbidden))
    message = Message(_many_addresses(2_000), rcpt_tos=["user1@example.com", "x@example.com"])
    assert len(message.to) == 2_000
    assert message.bcc == ["x@example.com"]
    assert message.defects == []


def test_message_built_from_any_bytes_never_raises() -> None:
    for raw, _ in CORPUS.values():
        _read_everything(Message(raw))
