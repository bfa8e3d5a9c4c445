"""Parsing never raises and never takes more than linear time, whatever the bytes (issue 23).

Each finding of the issue is reproduced first (H1 malformed encoded words, H2 a flood of ``<``,
M1 unclosed tags for links, L1 thousands of parts); then property tests with hypothesis throw
generated malformed headers and MIME at every accessor. The shapes that used to be quadratic
are run at sizes where the old code took minutes: they finish because the code is linear (their
cost per byte is measured in ``benchmarks/pathological.py``, not here).
"""

from __future__ import annotations

import base64
import datetime as dt
import html.parser
import re
import smtplib
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpmock import Client, Message, SMTPMock
from smtpmock._message import (
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    _decode_words,
    _html_links,
    _html_text,
)
from tests.served import Served

# Every public accessor of Message that parses something.
ACCESSORS = (
    "subject",
    "headers",
    "from_",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "message_id",
    "date",
    "text",
    "html",
    "body",
    "attachments",
    "links",
    "defects",
    "email",
)


def read_everything(message: Message) -> None:
    """Touch every accessor, and the ways the HTTP API reads a message."""
    for name in ACCESSORS:
        getattr(message, name)
    message.headers.as_dict()
    for attachment in message.attachments:
        assert message.part(attachment.index) == attachment
    assert all(isinstance(d, str) for d in message.defects)
    message.summary()
    repr(message)


def _send(mock: SMTPMock, raw: bytes) -> Message:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
        client.sendmail("env@example.com", ["bob@example.com"], raw)
    [message] = mock.wait_for(1)
    return message


# ----------------------------------------------------------------------------- H1


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        (b"Subject: =?utf-8?b?abcde?=", "=?utf-8?b?abcde?="),  # base64 of a bad length
        (b"Subject: =?\xc3\xa9?q?abc?=", "=?\u00e9?q?abc?="),  # a non-ASCII charset name
        (b"Subject: =?x-no-such-charset?q?abc?=", "=?x-no-such-charset?q?abc?="),
        (b"Subject: =?base64?q?abc?=", "=?base64?q?abc?="),  # a codec that is no charset
        (b"Subject: =?utf-8*en?b?!!!!?=", "=?utf-8*en?b?!!!!?="),
    ],
)
def test_an_undecodable_encoded_word_is_kept_as_sent_and_named_in_defects(
    header: bytes, kept: str
) -> None:
    raw = header + b"\r\nFrom: a@example.com\r\n\r\nbody\r\n"
    message = Message(raw)
    assert message.subject == kept
    read_everything(message)
    assert any("undecodable encoded word in the Subject header" in d for d in message.defects)
    assert message.raw == raw


def test_malformed_words_in_every_address_header_over_smtp(mock: SMTPMock) -> None:
    bad = b"=?utf-8?b?abcde?="
    raw = b"\r\n".join(
        [
            b"From: " + bad + b" <alice@example.com>",
            b"To: " + bad + b" <bob@example.com>, =?\xc3\xa9?q?x?= <carol@example.com>",
            b"Cc: " + bad + b" <dave@example.com>",
            b"Reply-To: " + bad + b" <erin@example.com>",
            b"Subject: " + bad + b" and =?utf-8?q?caf=C3=A9?=",
            b"",
            b"see https://example.com/x",
        ]
    )
    message = _send(mock, raw)
    read_everything(message)
    assert message.subject == "=?utf-8?b?abcde?= and caf\u00e9"
    assert message.from_ is not None
    assert message.from_.address == "alice@example.com"
    assert [a.address for a in message.to] == ["bob@example.com", "carol@example.com"]
    assert [a.address for a in message.cc] == ["dave@example.com"]
    assert message.bcc == []
    assert message.links == ["https://example.com/x"]
    assert message.raw.replace(b"\r\n", b"\n").strip() == raw.replace(b"\r\n", b"\n").strip()


def test_a_malformed_filename_and_content_type_do_not_break_attachments() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=\xc3\xa9\r\n\r\nh\xc3\xa9llo\r\n"
        b"--b\r\nContent-Type: application/x; name==?utf-8?b?abcde?=\r\n"
        b'Content-Disposition: attachment; filename="=?utf-8?b?abcde?="\r\n\r\nx\r\n'
        b'--b\r\nContent-Type: ;;;===\r\nContent-Disposition: ;"\r\n\r\ny\r\n--b--\r\n'
    )
    message = Message(raw)
    read_everything(message)
    assert message.text == "h\u00e9llo"  # the unknown charset: read as UTF-8
    # The stdlib's parameter parser reads this word its own lenient way; it must not raise.
    assert [a.content_type for a in message.attachments] == ["application/x", "text/plain"]
    assert isinstance(message.attachments[0].filename, str)


def test_the_decoder_joins_adjacent_words_and_keeps_what_it_cannot_read() -> None:
    defects: list[str] = []
    # One character split over two words; the space between encoded words is not text.
    assert _decode_words("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?= !", defects) == "\u20ac !"
    assert _decode_words("a =?utf-8?b?w6k=?= =?iso-8859-1?q?=E9?= b") == "a \u00e9\u00e9 b"
    assert _decode_words("=?utf-8?b?/w==?=", defects, "x") == "\ufffd"
    assert defects == [
        "undecodable encoded word in x (bytes not valid utf-8 replaced); kept as sent"
    ]
    assert _decode_words("=?utf-8?b?abcde?= =?utf-8?q?ok?=") == "=?utf-8?b?abcde?= ok"


def test_unterminated_encoded_words_decode_in_linear_time() -> None:
    # email.header.decode_header's expression rescans the line from every "=?": quadratic.
    value = "=?x?q?a" * 200_000
    assert _decode_words(value) == value


# ----------------------------------------------------------------------------- H2, M1


def test_a_flood_of_angle_brackets_is_indexed_and_read_for_links() -> None:
    flood = "<" * 3_000_000  # the old tag expression: about an hour; links: longer
    raw = b"Content-Type: text/html\r\n\r\n" + flood.encode() + b" https://example.com/end"
    message = Message(raw)
    assert message.links == ["https://example.com/end"]
    assert message._search_text.endswith("https://example.com/end")  # lower-cased


def test_unclosed_tags_are_read_for_links() -> None:
    body = '<a href="https://example.com/1">one</a>' + "<a " * 300_000
    message = Message(b"Content-Type: text/html\r\n\r\n" + body.encode())
    assert message.links == ["https://example.com/1"]
    read_everything(message)


@given(st.text(alphabet="<>ab \"'=/!-", max_size=300))
@settings(max_examples=300, deadline=None)
def test_html_text_is_the_tag_expression_made_linear(html_body: str) -> None:
    expected = re.sub(r"<[^>]*>", " ", html_body)
    assert _html_text(html_body) == expected


class _OldLinks(html.parser.HTMLParser):
    """The link extraction smtpmock had before (quadratic on unclosed tags): the reference."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            self.links += [v.strip() for k, v in attrs if k == "href" and v and v.strip()]

    def handle_data(self, data: str) -> None:
        self.links += [
            m.group(0).rstrip(".,;:!?)]}'\"")
            for m in re.finditer(r"""\b(?:https?|ftp)://[^\s<>"'`{}|\\^\[\]]+""", data, re.I)
        ]


ORDINARY_HTML = [
    '<p>Hi <a href="https://example.com/c?a=1&amp;b=2">confirm</a></p>',
    "<html><head><title>t</title></head><body><A HREF='http://x.org/a'>x</A></body></html>",
    "<a href=https://unquoted.example/x target=_blank>u</a> text https://bare.example/y.",
    '<map><area shape="rect" href="https://area.example/"></map><!-- https://comment.example -->',
    '<a class="b" href="  https://spaces.example/  ">s</a><a href="">empty</a><a>none</a>',
    "<p>Visit https://a.example/x, then ftp://files.example/f).</p><br/><img src='cid:x'>",
    '<a title="x > y" href="https://gt-in-attr.example/">g</a>&lt;https://ent.example/e&gt;',
    '<div><a href="https://one.example/" href="https://two.example/">two hrefs</a></div>',
]


@pytest.mark.parametrize("body", ORDINARY_HTML)
def test_links_on_ordinary_html_are_what_html_parser_found(body: str) -> None:
    old = _OldLinks()
    old.feed(body)
    old.close()
    links, cut = _html_links(body, deadline=float("inf"))
    assert not cut
    assert links == old.links


def test_link_extraction_stops_at_its_time_bound_and_says_so() -> None:
    body = "<b>x</b>" * 10_000 + '<a href="https://late.example/">late</a>'
    links, cut = _html_links(body, deadline=0.0)  # already past: stops at the first check
    assert cut
    assert "https://late.example/" not in links
    message = Message(b"Content-Type: text/html\r\n\r\n" + body.encode())
    assert message.links == ["https://late.example/"]  # the real bound is seconds away


# ----------------------------------------------------------------------------- L1 and friends


def _many_parts(count: int) -> bytes:
    parts = b"".join(
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename=f%d.bin\r\n\r\nxxxx\r\n" % i
        for i in range(count)
    )
    return b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--"


def test_six_thousand_parts_are_walked_once(mock: SMTPMock) -> None:
    message = _send(mock, _many_parts(6000))
    attachments = message.attachments
    assert len(attachments) == 6000
    assert attachments[5999].filename == "f5999.bin"
    # What the HTTP API does per attachment: looks it up by index (it walked the tree each time).
    assert all(message.part(a.index) is a for a in attachments)


def test_more_parts_than_the_limit_are_read_as_headers_and_text() -> None:
    message = Message(_many_parts(MAX_MIME_PARTS + 1))
    read_everything(message)
    assert message.attachments == []
    assert message.text is not None
    assert f"filename=f{MAX_MIME_PARTS}.bin" in message.text
    assert f"more than {MAX_MIME_PARTS:,} MIME parts; only the headers were parsed" in (
        message.defects
    )


def test_a_huge_content_type_is_read_from_its_start_and_named_in_defects() -> None:
    header = b"Content-Type: text/plain; charset=utf-8" + b"; a=b" * 60_000
    message = Message(header + b"\r\nSubject: s\r\n\r\nhello\r\n")
    assert message.text == "hello\n"
    assert any("Content-Type header of 300,025 characters" in d for d in message.defects)
    quoted = b'Content-Type: text/plain; a="' + b";" * 100_000 + b'"'
    read_everything(Message(quoted + b"\r\n\r\nx"))


def test_many_distinct_header_names_are_listed_in_linear_time() -> None:
    raw = b"".join(b"X-H%d: v\r\n" % i for i in range(60_000)) + b"\r\nbody"
    headers = Message(raw).headers.as_dict()
    assert len(headers) == 60_000
    assert headers["X-H59999"] == ["v"]


def test_deep_nesting_and_long_folding_are_read() -> None:
    nested = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(3000)
    )
    read_everything(Message(b"Subject: deep\r\n" + nested + b"x\r\n"))
    folded = b"Subject: start" + b"\r\n continued" * 100_000 + b"\r\n\r\nbody"
    message = Message(folded)
    assert message.subject.startswith("start continued continued")
    assert len(message.subject) == len("start") + 100_000 * len(" continued")


# ----------------------------------------------------------------------------- properties

_CHARSETS = st.sampled_from(
    [
        "utf-8",
        "UTF-8",
        "iso-8859-1",
        "x-unknown",
        "\u00e9",
        "",
        "utf-8*en",
        "base64",
        "gb2312",
        "a?b",
    ]
)
_WORD_TEXT = st.text(alphabet="abcAB+/=_?=09 \u00e9\x00", max_size=20)


@st.composite
def encoded_words(draw: st.DrawFn) -> str:
    return "=?{}?{}?{}?=".format(draw(_CHARSETS), draw(st.sampled_from("bBqQx")), draw(_WORD_TEXT))


_ATOMS = st.one_of(
    encoded_words(),
    st.sampled_from(
        ['"', "<", ">", "@", ",", ";", ":", "(", ")", "\\", "=?", "?=", " ", "\t", "\r\n ", "a@b.c"]
    ),
    st.text(max_size=8),
)
_HEADER_VALUES = st.lists(_ATOMS, max_size=12).map("".join)
_HEADER_NAMES = st.sampled_from(
    [
        "Subject",
        "From",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Disposition",
        "Content-Transfer-Encoding",
        "Content-ID",
        "X-Any",
    ]
)


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    lines = [
        _to_bytes(f"{draw(_HEADER_NAMES)}: {draw(_HEADER_VALUES)}")
        for _ in range(draw(st.integers(0, 8)))
    ]
    if draw(st.booleans()):
        lines.append(draw(st.binary(max_size=30)))  # a line that may have no colon at all
    return b"\r\n".join(lines)


@st.composite
def mime_messages(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = draw(header_blocks())
    kind = draw(
        st.sampled_from(
            [
                "text/plain",
                "text/html",
                "multipart/mixed",
                "multipart/alternative",
                "application/octet-stream",
            ]
        )
    )
    charset = draw(st.sampled_from(["utf-8", "\u00e9", "x-bad", "", "utf-16"]))
    encoding = draw(st.sampled_from(["", "base64", "quoted-printable", "8bit", "x-what"]))
    head = _to_bytes(f"Content-Type: {kind}; charset={charset}; boundary=zz{depth}")
    if encoding:
        head += _to_bytes(f"\r\nContent-Transfer-Encoding: {encoding}")
    if kind.startswith("multipart") and depth < 3:
        children = draw(st.lists(mime_messages(depth + 1), max_size=3))
        body = b"".join(b"--zz%d\r\n" % depth + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--zz%d--\r\n" % depth  # or a missing closing boundary
    else:
        body = draw(st.one_of(st.binary(max_size=80), _HEADER_VALUES.map(_to_bytes)))
    return headers + b"\r\n" + head + b"\r\n\r\n" + body


_SETTINGS = settings(
    max_examples=100,
    deadline=dt.timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@given(header_blocks(), st.binary(max_size=40))
@_SETTINGS
def test_no_accessor_raises_on_malformed_headers(headers: bytes, body: bytes) -> None:
    raw = headers + b"\r\n\r\n" + body
    message = Message(raw, rcpt_tos=["bob@example.com"])
    read_everything(message)
    assert message.raw == raw


@given(mime_messages())
@_SETTINGS
def test_no_accessor_raises_on_malformed_mime(raw: bytes) -> None:
    message = Message(raw)
    read_everything(message)
    assert message.raw == raw


@given(st.lists(st.one_of(encoded_words(), st.text(max_size=6)), max_size=10).map("".join))
@_SETTINGS
def test_the_decoder_never_raises_and_leaves_plain_text_alone(value: str) -> None:
    defects: list[str] = []
    decoded = _decode_words(value, defects, "a header")
    assert isinstance(decoded, str)
    if "=?" not in value:
        assert decoded == value
        assert defects == []


def test_the_html_preview_is_built_in_linear_time_on_a_flood_of_head_tags() -> None:
    from smtpmock._http._ui import preview_document

    body = "<head" * 400_000  # 2 MB: the old search scanned to the end from each "<head"
    document = preview_document(Message(b"Content-Type: text/html\r\n\r\n" + body.encode()))
    assert document == '<base target="_blank">' + body
    document = preview_document(Message(b"Content-Type: text/html\r\n\r\n<html><p>x</p>"))
    assert document == '<html><base target="_blank"><p>x</p>'


def _nested(depth: int, body: bytes) -> bytes:
    opening = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return b"Subject: nested\r\n" + opening + b"Content-Type: text/plain\r\n\r\n" + body + closing


def test_nesting_up_to_the_limit_is_parsed_and_deeper_is_read_as_headers_and_text() -> None:
    # Each of the many lines of the innermost part used to be checked against every boundary.
    body = b"--not a boundary\r\n" * 50_000 + b"the end"
    message = Message(_nested(MAX_MIME_DEPTH - 1, body))
    assert message.text is not None
    assert message.text.endswith("the end")
    assert not any("nested" in d for d in message.defects)
    too_deep = Message(_nested(MAX_MIME_DEPTH + 1, b"x"))
    read_everything(too_deep)
    assert any(
        f"nested too deeply to parse (the limit is {MAX_MIME_DEPTH})" in d for d in too_deep.defects
    )


@given(st.binary(max_size=300), st.sampled_from([b"\r\n", b"\n"]), st.booleans())
@settings(max_examples=100, deadline=None)
def test_attachment_bytes_are_what_the_stdlib_decodes(
    data: bytes, newline: bytes, bad: bool
) -> None:
    encoded = base64.encodebytes(data).replace(b"\n", newline)
    if bad:  # not clean base64: the stdlib decodes it (and records its defects)
        encoded = b"!" + encoded
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"t\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"\r\n--b--\r\n"
    )
    message = Message(raw)
    [attachment] = message.attachments
    expected = message.email.get_payload()[1].get_payload(decode=True)
    assert attachment.content == expected


def test_serve_answers_for_a_message_with_malformed_words(served: Served) -> None:
    """Issue 23 H1 through ``smtpmock serve``: the detail, headers, MailHog list, wait and
    search all answered 500 for one such message."""
    token = f"needle{time.monotonic_ns()}"
    raw = (
        b"From: =?utf-8?b?abcde?= <alice@example.com>\r\n"
        b"To: =?\xc3\xa9?q?x?= <bob@example.com>\r\n"
        b"Subject: =?utf-8?b?abcde?= " + token.encode() + b"\r\n\r\nbody " + token.encode()
    )
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
        smtp.sendmail("alice@example.com", ["bob@example.com"], raw)
    with Client(served.url) as client:
        [message] = client.wait_for(1, subject=f"=?utf-8?b?abcde?= {token}", timeout=30)
    assert message.subject == f"=?utf-8?b?abcde?= {token}"
    with httpx.Client(base_url=served.url, timeout=30) as http:
        detail = http.get(f"/api/v1/message/{message.id}")
        assert detail.status_code == 200
        assert any("undecodable encoded word" in d for d in detail.json()["Defects"])
        headers = http.get(f"/api/v1/message/{message.id}/headers")
        assert headers.json()["Subject"] == [f"=?utf-8?b?abcde?= {token}"]
        assert http.get("/api/v2/messages").status_code == 200
        found = http.get("/api/v1/search", params={"query": f"body {token}"}).json()
        assert [m["ID"] for m in found["messages"]] == [message.id]
