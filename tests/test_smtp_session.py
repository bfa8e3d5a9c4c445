"""The sans-IO SMTP session, rule by rule: bytes in, events out, replies as bytes. No socket,
no loop: each test runs in microseconds. (The same rules over real sockets: test_conformance.)"""

from __future__ import annotations

from base64 import b64encode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpmock._auth import Accounts, cram_md5_digest
from smtpmock.smtp import (
    AuthAttempted,
    CloseConnection,
    Command,
    MessageReceived,
    Session,
    Settings,
    StartTLS,
    State,
)


def drive(session: Session, data: bytes = b"") -> list[object]:
    """Feed *data*, execute every command, store every message; return the other events."""
    session.receive_data(data)
    events: list[object] = []
    while (event := session.next_event()) is not None:
        if isinstance(event, Command):
            session.execute(event)
        elif isinstance(event, MessageReceived):
            events.append(event)
            session.message_stored(f"id{len(events)}")
        else:
            events.append(event)
    return events


def started(settings: Settings | None = None, **kwargs: object) -> Session:
    session = Session(settings or Settings(), **kwargs)  # type: ignore[arg-type]
    session.start()
    session.data_to_send()
    return session


def codes(replies: bytes) -> list[int]:
    return [int(line[:3]) for line in replies.split(b"\r\n") if line[3:4] == b" "]


def in_data(settings: Settings | None = None) -> Session:
    session = started(settings)
    drive(session, b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
    assert codes(session.data_to_send()) == [250, 250, 250, 354]
    return session


def test_greeting_and_quit() -> None:
    session = Session(Settings(hostname="mx.test"))
    session.start()
    assert session.data_to_send() == b"220 mx.test smtpmock ESMTP\r\n"
    assert drive(session, b"QUIT\r\n") == [CloseConnection()]
    assert session.data_to_send() == b"221 2.0.0 Bye\r\n"
    assert session.state is State.CLOSED


def test_nothing_is_read_before_the_greeting() -> None:
    session = Session(Settings())
    session.receive_data(b"EHLO early\r\n")
    assert session.next_event() is None
    session.start()
    assert session.next_event() == Command("EHLO", "early")


def test_command_waits_for_the_transport() -> None:
    session = started()
    session.receive_data(b"NOOP\r\nNOOP\r\n")
    assert session.next_event() == Command("NOOP", None)
    assert session.next_event() is None  # the first is not answered yet
    session.refuse("451 4.7.1 hook says no")
    assert session.next_event() == Command("NOOP", None)
    assert session.data_to_send() == b"451 4.7.1 hook says no\r\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"NOOP a\rb\r\n", b"501 5.5.2 Error: bare CR or NUL in command\r\n"),
        (b"HELO a\x00b\r\n", b"501 5.5.2 Error: bare CR or NUL in command\r\n"),
        (b"123\r\n", b"500 5.5.2 Error: bad syntax\r\n"),
        (b"XYZZY " + b"x" * 600 + b"\r\n", b"500 5.5.1 Error: command not recognized\r\n"),
        (b"HELO \xff\r\n", b"501 5.6.7 Error: command is not valid UTF-8\r\n"),
    ],
)
def test_refused_lines(line: bytes, reply: bytes) -> None:
    session = started()
    assert drive(session, line) == []
    assert session.data_to_send() == reply


def test_replies_never_exceed_512_octets() -> None:
    session = started()
    drive(session, b"X" * 1500 + b"\r\nVRFY " + b"v" * 1500 + b"\r\n")
    for line in session.data_to_send().split(b"\r\n"):
        assert len(line) + 2 <= 512


def test_command_line_limit_and_a_line_that_never_ends() -> None:
    session = started(Settings(max_command_length=512))
    drive(session, b"NOOP " + b"n" * 600 + b"\r\n")
    assert session.data_to_send() == b"500 5.5.2 Error: command line too long\r\n"
    drive(session, b"NOOP " + b"n" * 100_000)  # no end yet: dropped as it comes
    assert session.buffered == 0
    drive(session, b"n" * 100_000 + b"\r\nNOOP\r\n")
    assert codes(session.data_to_send()) == [500, 250]


def test_auth_lines_may_be_longer() -> None:
    session = started(Settings(max_command_length=512))
    session.receive_data(b"AUTH PLAIN " + b"A" * 4000 + b"\r\n")
    assert session.next_event() == Command("AUTH", "PLAIN " + "A" * 4000)


def test_rset_before_starttls_when_required_is_530() -> None:
    session = started(Settings(starttls=True, tls_required=True))
    drive(session, b"EHLO c\r\nRSET\r\nMAIL FROM:<a@b.c>\r\nNOOP\r\n")
    assert codes(session.data_to_send()) == [250, 530, 530, 250]


@pytest.mark.parametrize(
    ("settings", "tls", "listed"),
    [
        (Settings(), False, set()),
        (Settings(starttls=True), False, {"STARTTLS"}),
        (Settings(starttls=True, auth_mechanisms=("PLAIN",)), True, {"AUTH"}),
    ],
)
def test_help_lists_only_what_the_session_offers(
    settings: Settings, tls: bool, listed: set[str]
) -> None:
    session = started(settings, tls=tls)
    drive(session, b"HELP\r\n")
    reply = session.data_to_send().decode()
    assert reply.startswith("250 2.0.0 Supported commands: ")
    verbs = set(reply.split(": ", 1)[1].split())
    assert {"EHLO", "MAIL", "RCPT", "DATA", "QUIT"} <= verbs
    assert verbs & {"AUTH", "STARTTLS"} == listed


def test_starttls_discards_every_buffered_plaintext_byte() -> None:
    session = started(Settings(starttls=True))
    events = drive(session, b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x.y>\r\n")
    assert events == [StartTLS()]
    assert session.data_to_send().endswith(b"220 2.0.0 Ready to start TLS\r\n")
    # A second segment of plaintext, before the handshake: discarded too.
    assert drive(session, b"RCPT TO:<evil@x.y>\r\n") == []
    session.tls_started()
    assert session.helo is None
    assert session.tls
    drive(session, b"MAIL FROM:<a@b.c>\r\n")
    assert codes(session.data_to_send()) == [503]


def test_mail_rcpt_data_and_dot_unstuffing() -> None:
    session = in_data()
    [event] = drive(session, b"Subject: x\r\n\r\n..leading dot\r\n.\r\n")
    assert isinstance(event, MessageReceived)
    assert event.content == b"Subject: x\r\n\r\n.leading dot\r\n"
    assert event.envelope.mail_from == "a@b.c"
    assert event.envelope.rcpt_tos == ["d@e.f"]
    assert session.data_to_send() == b"250 2.0.0 OK: queued as id1\r\n"


@pytest.mark.parametrize("fake_end", [b"\n.\r\n", b"\r.\r\n", b"\n.\n"])
def test_only_crlf_dot_crlf_ends_data(fake_end: bytes) -> None:
    session = in_data()
    body = b"Subject: x\r\n\r\nhello" + fake_end + b"MAIL FROM:<smuggled@x.y>\r\n"
    assert drive(session, body) == []
    [event] = drive(session, b".\r\n")
    assert isinstance(event, MessageReceived)
    assert event.content == body


def test_size_limit_is_answered_after_the_dot_only() -> None:
    session = in_data(Settings(max_message_size=100))
    drive(session, b"x" * 98 + b"\r\n" + (b"y" * 998 + b"\r\n") * 500)
    assert session.data_to_send() == b""  # nothing in the middle of DATA
    assert session.buffered < 70_000
    assert drive(session, b".\r\nNOOP\r\n") == []
    assert codes(session.data_to_send()) == [552, 250]


def test_size_at_mail() -> None:
    session = started(Settings(max_message_size=100))
    drive(session, b"EHLO c\r\nMAIL FROM:<a@b.c> SIZE=101\r\nMAIL FROM:<a@b.c> SIZE=100\r\n")
    assert codes(session.data_to_send()) == [250, 552, 250]


def test_a_line_with_no_end_is_not_held_whole() -> None:
    session = in_data(Settings(max_message_size=None))
    drive(session, b"z" * 1_000_000)
    assert session.buffered < 70_000
    [event] = drive(session, b"\r\n.\r\n")
    assert isinstance(event, MessageReceived)
    assert event.content == b"z" * 1_000_000 + b"\r\n"


def test_long_lines_default_and_strict() -> None:
    session = in_data()
    [event] = drive(session, b"a" * 2000 + b"\r\n.\r\n")
    assert isinstance(event, MessageReceived)
    strict = in_data(Settings(refuse_long_lines=True))
    assert drive(strict, b"a" * 999 + b"\r\n.\r\n") == []
    assert codes(strict.data_to_send()) == [500]
    fits = in_data(Settings(refuse_long_lines=True))
    assert len(drive(fits, b"." + b"a" * 998 + b"\r\n.\r\n")) == 1


@pytest.mark.parametrize(
    "line",
    [b"MAIL FROM:<", b"MAIL FROM:<a", b"MAIL FROM:<a@b", b'MAIL FROM:<"x', b"MAIL FROM:<@r:"],
)
def test_truncated_paths_are_501(line: bytes) -> None:
    session = started()
    drive(session, b"EHLO c\r\n" + line + b"\r\n")
    assert codes(session.data_to_send()) == [250, 501]


def auth_session(**settings: object) -> Session:
    session = started(
        Settings(auth_mechanisms=("CRAM-MD5", "LOGIN", "PLAIN"), **settings),  # type: ignore[arg-type]
        authenticator=Accounts({"alice": "s3cret"}),
        tls=True,
        challenge=lambda: "<1.2@test>",
    )
    drive(session, b"EHLO c\r\n")
    session.data_to_send()
    return session


def b64(data: bytes) -> bytes:
    return b64encode(data)


def test_auth_plain_login_cram_and_abort() -> None:
    session = auth_session()
    events = drive(session, b"AUTH PLAIN " + b64(b"\0alice\0wrong") + b"\r\n")
    assert events == [AuthAttempted("PLAIN", "alice", False)]
    assert codes(session.data_to_send()) == [535]
    drive(session, b"AUTH LOGIN\r\n")
    assert session.data_to_send() == b"334 VXNlcm5hbWU6\r\n"
    drive(session, b"*\r\n")
    assert codes(session.data_to_send()) == [501]
    digest = cram_md5_digest("s3cret", b"<1.2@test>").encode()
    drive(session, b"AUTH CRAM-MD5\r\n")
    assert session.data_to_send() == b"334 " + b64(b"<1.2@test>") + b"\r\n"
    events = drive(session, b64(b"alice " + digest) + b"\r\n")
    assert events == [AuthAttempted("CRAM-MD5", "alice", True)]
    assert session.auth_user == "alice"
    assert codes(session.data_to_send()) == [235]


def test_auth_needs_tls_unless_allowed() -> None:
    session = started(Settings(auth_mechanisms=("PLAIN",)), authenticator=Accounts({"a": "b"}))
    drive(session, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0a\0b") + b"\r\n")
    assert codes(session.data_to_send()) == [250, 538]


# ---------------------------------------------------------------------------- properties

_piece = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b".", b"..", b"\r\n.\r\n", b"\r\n..", b"x", b"yy", b" ", b"\x00"]
)
_body = st.lists(_piece, max_size=40).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(body=_body, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_data_is_the_same_however_it_is_segmented(body: bytes, cuts: list[int]) -> None:
    """Whatever the body and however TCP cuts it, the content is the body up to the first
    CRLF.CRLF, unstuffed, and what follows is read as commands."""
    wire = b"\r\n" + body + b"\r\n.\r\nNOOP\r\n"
    whole = in_data(Settings(max_message_size=None))
    whole_events = drive(whole, wire[2:])
    whole_replies = whole.data_to_send()
    pieces = in_data(Settings(max_message_size=None))
    data = wire[2:]
    events: list[object] = []
    start = 0
    for cut in sorted(cuts):
        events += drive(pieces, data[start:cut])
        start = max(start, cut)
    events += drive(pieces, data[start:])
    assert events == whole_events
    assert pieces.data_to_send() == whole_replies
    end = wire.index(b"\r\n.\r\n")
    expected = wire[2 : end + 2].replace(b"\r\n.", b"\r\n")
    if wire[2:3] == b".":
        expected = expected[1:]
    first = whole_events[0]
    assert isinstance(first, MessageReceived)
    assert first.content == expected


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), size=st.integers(min_value=1, max_value=400))
def test_any_bytes_any_time(data: bytes, size: int) -> None:
    """Arbitrary input never raises, every reply line fits in 512 octets, and the session
    never holds more than one command line's worth of input."""
    session = started(Settings(max_message_size=size, starttls=True, max_command_length=512))
    for chunk in (data, b"\r\n", data):
        events = drive(session, chunk)
        for event in events:
            if isinstance(event, StartTLS):
                session.tls_started()
    for line in session.data_to_send().split(b"\r\n"):
        assert len(line) <= 510
    assert session.buffered <= 12_288 + 1
