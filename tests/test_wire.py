"""The HTTP API's JSON shapes (``smtpmock._http._wire``): out of the store, and reachable by
``smtpmock.Client`` without FastAPI."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from smtpmock import Message
from smtpmock._http._wire import decode_export, encode_export, message_summary, summary_json
from smtpmock.store import Summary


def _message() -> Message:
    raw = (
        b"From: Ann <ann@example.com>\r\nTo: Bob <bob@example.org>\r\nCc: cy@example.org\r\n"
        b"Subject: Hi\r\nMessage-ID: <x1@example.com>\r\n\r\nHello   there\r\n"
    )
    message = Message(
        raw,
        mail_from="ann@example.com",
        rcpt_tos=["bob@example.org", "cy@example.org", "hidden@example.net"],
        peer=("127.0.0.1", 5000),
        received_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        auth_user="ann",
    )
    message.seq = 7
    return message


def test_summary_json_is_mailpits_message_summary_plus_the_envelope() -> None:
    message = _message()
    data = summary_json(Summary.of(message))
    assert data == message_summary(message)
    assert data == {
        "ID": message.id,
        "Seq": 7,
        "MessageID": "x1@example.com",
        "Read": False,
        "From": {"Name": "Ann", "Address": "ann@example.com"},
        "To": [{"Name": "Bob", "Address": "bob@example.org"}],
        "Cc": [{"Name": "", "Address": "cy@example.org"}],
        "Bcc": [{"Name": "", "Address": "hidden@example.net"}],
        "ReplyTo": [],
        "Subject": "Hi",
        "Created": "2026-01-02T03:04:05Z",
        "Username": "ann",
        "Tags": [],
        "Size": message.size,
        "Attachments": 0,
        "Inline": 0,
        "Snippet": "Hello there",
        "MailFrom": "ann@example.com",
        "Recipients": ["bob@example.org", "cy@example.org", "hidden@example.net"],
        "Mailbox": "default",
    }


def test_export_round_trips_bytes_and_envelope() -> None:
    message = _message()
    again = decode_export(encode_export(message))
    assert again.raw == message.raw
    assert (again.id, again.seq, again.mail_from, again.rcpt_tos, again.peer) == (
        message.id,
        7,
        message.mail_from,
        message.rcpt_tos,
        message.peer,
    )
    assert again.received_at == message.received_at
    assert again.auth_user == "ann"


def test_client_imports_without_fastapi() -> None:
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None  # importing it now fails\n"
        "from smtpmock import Client\n"
        "import smtpmock._http._wire\n"
        "assert 'smtpmock._http._api' not in sys.modules\n"
        "assert 'smtpmock.store._sqlite' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
