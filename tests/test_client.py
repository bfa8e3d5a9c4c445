"""smtpmock.Client against a ``serve`` subprocess: the same answers as in-process."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest

from smtpmock import Client, ServerError, SMTPMock, WaitTimeout
from smtpmock._client import server_query
from tests.mail import send
from tests.served import Served

RICH = (
    "From: =?utf-8?q?Ren=C3=A9e?= <renee@example.com>\r\nTo: Bob <bob@example.com>\r\n"
    "Cc: carol@example.com\r\nSubject: =?utf-8?b?w4ljbGFpcg==?=\r\nMessage-ID: <m1@example.com>\r\n"
    "Date: Tue, 05 Mar 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=X\r\n\r\n"
    "--X\r\nContent-Type: multipart/alternative; boundary=Y\r\n\r\n"
    "--Y\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVisit https://example.com/a\r\n"
    '--Y\r\nContent-Type: text/html\r\n\r\n<a href="https://example.com/b">b</a>\r\n--Y--\r\n'
    "--X\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
    'filename="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--X--\r\n'
)


@pytest.fixture
def client(served: Served) -> Iterator[Client]:
    with Client(served.url) as remote:
        remote.reset()
        remote.faults.clear()  # the server is shared by the session's tests
        yield remote


def test_messages_rebuilt_match_in_process_parsing(client: Client) -> None:
    with SMTPMock() as local:
        for host, port in ((client.host, client.port), (local.host, local.port)):
            send(
                host, port, sender="renee@example.com", to=["bob@example.com", "x@y.org"], raw=RICH
            )
        [remote_msg] = client.wait_for(1, timeout=30)
        [local_msg] = local.wait_for(1, timeout=30)
    assert remote_msg.raw == local_msg.raw
    for name in (
        "subject",
        "from_",
        "to",
        "cc",
        "bcc",
        "text",
        "html",
        "links",
        "date",
        "message_id",
        "mail_from",
        "rcpt_tos",
        "helo",
        "received_at",
    ):
        if name != "received_at":
            assert getattr(remote_msg, name) == getattr(local_msg, name), name
    assert remote_msg.received_at.tzinfo is not None
    assert [(a.filename, a.content) for a in remote_msg.attachments] == [
        (a.filename, a.content) for a in local_msg.attachments
    ]
    assert remote_msg.subject == "Éclair"
    assert remote_msg.peer is not None


def test_messages_carry_their_session_transcript(client: Client) -> None:
    send(client.host, client.port, subject="traced")
    [message] = client.wait_for(1)
    assert message.transcript is not None
    assert message.transcript.commands[:4] == ["EHLO", "MAIL", "RCPT", "DATA"]
    assert message.id in message.transcript.message_ids


def test_wait_for_regex_and_predicate_run_client_side(client: Client) -> None:
    send(client.host, client.port, subject="Order 41", to=["a@example.com"])
    thread = threading.Thread(
        target=lambda: send(client.host, client.port, subject="Order 42", to=["a@example.com"])
    )
    thread.start()
    try:
        [found] = client.wait_for(
            1, timeout=30, subject=re.compile(r"Order \d*2$"), where=lambda m: "42" in m.subject
        )
    finally:
        thread.join()
    assert found.subject == "Order 42"


def test_wait_for_timeout_lists_what_arrived(client: Client) -> None:
    send(client.host, client.port, subject="near miss", to=["x@example.com"])
    client.wait_for(1, timeout=30)
    with pytest.raises(WaitTimeout) as info:
        client.wait_for(1, timeout=0.2, to="x@example.com", subject="exact")
    assert "near miss" in str(info.value)
    assert "0 matched" in str(info.value)


def test_capture_is_scoped_to_the_block(client: Client) -> None:
    send(client.host, client.port, subject="before")
    client.wait_for(1, timeout=30)
    with client.capture() as outbox:
        send(client.host, client.port, subject="inside")
        assert [m.subject for m in outbox.wait_for(1, timeout=30)] == ["inside"]
    send(client.host, client.port, subject="after")
    client.wait_for(1, timeout=30, subject="after")
    assert [m.subject for m in outbox.messages] == ["inside"]
    with pytest.raises(WaitTimeout):
        outbox.wait_for(2, timeout=30)  # a finished capture fails at once, not after 30 s


def test_faults_over_http(client: Client) -> None:
    import smtplib

    rule = client.faults.rule("RCPT", code=550, recipient="no@example.com")
    try:
        assert [r.id for r in client.faults.rules] == [rule.id]
        assert len(client.faults) == 1
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            send(client.host, client.port, to=["no@example.com"])
        [event] = client.faults.log[-1:]
        assert event.code == 550
        assert event.rule_id == rule.id
        [chaos] = client.faults.chaos("Sender:451:100")
        assert chaos.code == 451
    finally:
        client.faults.clear()
    assert client.faults.rules == []
    send(client.host, client.port, to=["no@example.com"])


@pytest.mark.parametrize(
    ("criteria", "query"),
    [
        ({"to": "bob@example.com"}, 'addressed:"bob@example.com"'),
        ({"to": '"Bob" <bob@example.com>'}, ""),  # a formatted address is not a substring
        ({"to": re.compile("bob")}, ""),
        ({"sender": "a@x.org", "subject": "Hi there"}, 'from:"a@x.org" subject:"Hi there"'),
        ({"subject": 'say "hi"'}, ""),
        ({"text": "code is", "has_attachment": True}, '"code is" has:attachment'),
        ({"body": "<b>", "html": "x"}, ""),
    ],
)
def test_server_query_only_narrows(criteria: dict[str, object], query: str) -> None:
    assert server_query(criteria) == query


def test_unreachable_server_and_errors() -> None:
    with Client("http://127.0.0.1:9") as client, pytest.raises(ServerError, match="cannot reach"):
        _ = client.messages


def test_server_errors_are_reported(client: Client) -> None:
    with pytest.raises(ServerError, match="400"):
        client._store._get("/api/v1/export", query="is:loud")


def test_len_and_get_do_not_download_the_mailbox(client: Client) -> None:
    for n in range(3):
        send(client.host, client.port, to=[f"u{n}@example.com"], subject=f"m{n}")
    messages = client.wait_for(3)
    seen: list[str] = []
    client._http.event_hooks["request"].append(lambda request: seen.append(request.url.path))
    assert len(client) == 3
    found = client.get(messages[1].id)
    assert found is not None
    assert found.subject == "m1"
    assert found.raw == messages[1].raw
    assert found.rcpt_tos == messages[1].rcpt_tos
    assert client.get("no-such-id") is None
    with client.capture() as box:
        send(client.host, client.port, to=["late@example.com"], subject="m3")
        box.wait_for(1)
    seen.clear()
    assert len(box) == 1
    assert len(client) == 4
    assert box.get(messages[0].id) is None  # outside the capture
    assert "/api/v1/export" not in seen  # the whole-mailbox download
