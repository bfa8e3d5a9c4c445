"""Session transcripts: commands and replies in order, secrets masked, content left out, TLS
marked, reachable from messages and for sessions that delivered nothing."""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import smtplib
from pathlib import Path

import pytest

from smtpmock import SMTPMock, Transcript, WaitTimeout
from smtpmock._transcript import MAX_ENTRIES, TRUNCATED, TranscriptEntry, TranscriptLog
from smtpmock.store import SQLiteStore

from .rawsmtp import RawSMTP

SECRET = "hunter2-pw"
BODY = "From: a@example.com\r\nTo: b@example.com\r\nSubject: t\r\n\r\nthe secret body text\r\n"


def _wait_closed(mock: SMTPMock, count: int) -> list[Transcript]:
    sessions = mock.wait_for_sessions(count, timeout=10)
    assert len(sessions) == count
    return sessions


def test_app_did_starttls_before_auth() -> None:
    with SMTPMock(tls="starttls", auth={"app": SECRET}) as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
            c.starttls(context=mock.client_ssl_context())
            c.login("app", SECRET)
            c.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
        transcript = mock.transcript_for(message)
    assert transcript is not None
    assert message.transcript is transcript
    commands = transcript.commands
    assert commands.index("STARTTLS") < commands.index("AUTH") < commands.index("MAIL")
    assert transcript.tls
    assert transcript.auth_user == "app"
    assert transcript.message_ids == [message.id]
    texts = [e.text for e in transcript.entries]
    tls_mark = next(i for i, t in enumerate(texts) if t.startswith("TLS started"))
    assert texts.index("220 2.0.0 Ready to start TLS") < tls_mark < texts.index("AUTH CRAM-MD5")


def test_app_retried_three_times(mock: SMTPMock) -> None:
    for _ in range(3):
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
            c.ehlo()
            c.mail("a@example.com")
            assert c.rcpt("not an address")[0] == 553
            c.rset()
    sessions = _wait_closed(mock, 3)
    assert mock.messages == []
    assert all(s.message_ids == [] for s in sessions)
    assert [s.commands for s in sessions] == [["EHLO", "MAIL", "RCPT", "RSET", "QUIT"]] * 3
    assert all(s.ended_at is not None for s in sessions)
    assert all("553 5.1.3 Error: malformed address" in s.replies for s in sessions)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_secrets_are_masked(mechanism: str) -> None:
    with SMTPMock(tls="starttls", auth={"app": SECRET}) as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
            c.starttls(context=mock.client_ssl_context())
            c.ehlo()
            c.user, c.password = "app", SECRET
            method = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login, "CRAM-MD5": c.auth_cram_md5}
            c.auth(mechanism, method[mechanism], initial_response_ok=mechanism == "PLAIN")
        [transcript] = _wait_closed(mock, 1)
    dumped = json.dumps(transcript.to_dict()) + str(transcript)
    for secret in (
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(f"\0app\0{SECRET}".encode()).decode(),
        base64.b64encode(b"app").decode(),
    ):
        assert secret not in dumped
    assert "********" in dumped
    assert transcript.commands.count("AUTH") == 1


def test_data_is_a_size_marker_not_content(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.sendmail("a@example.com", ["b@example.com"], BODY)
    [message] = mock.wait_for(1)
    [transcript] = _wait_closed(mock, 1)
    text = str(transcript)
    assert "the secret body text" not in text
    assert f"[message content: {len(message.raw)} octets]" in text
    assert transcript.replies[-2].startswith(f"250 2.0.0 OK: queued as {message.id}")


def test_order_and_serialisation(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("HELO client")
        raw.command("NOOP")
    [transcript] = _wait_closed(mock, 1)
    data = json.loads(json.dumps(transcript.to_dict()))
    kinds_texts = [(e["kind"], e["text"]) for e in data["entries"]]
    assert kinds_texts[0][0] == "event"
    assert kinds_texts[1:6] == [
        ("server", "220 localhost smtpmock ESMTP"),
        ("client", "HELO client"),
        ("server", "250 localhost"),
        ("client", "NOOP"),
        ("server", "250 2.0.0 OK"),
    ]
    assert kinds_texts[-1] == ("event", "disconnected")
    times = [e.time for e in transcript.entries]
    assert times == sorted(times)
    assert data["session_id"] == transcript.session_id
    assert data["tls"] is False


def test_implicit_tls_is_marked() -> None:
    with SMTPMock(tls="implicit") as mock:
        ctx = mock.client_ssl_context()
        with smtplib.SMTP_SSL(mock.host, mock.port, context=ctx, timeout=10) as c:
            c.noop()
        [transcript] = _wait_closed(mock, 1)
    assert transcript.tls
    assert transcript.entries[1].text.startswith("TLS started")


def test_reset_forgets_sessions(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.noop()
    _wait_closed(mock, 1)
    mock.reset()
    assert mock.sessions == []


def test_log_is_bounded() -> None:
    log = TranscriptLog(maxlen=3)
    for n in range(5):
        log.open(f"s{n}", None)
    assert [t.session_id for t in log.all()] == ["s2", "s3", "s4"]
    assert log.get("s0") is None


def test_one_session_cannot_grow_its_transcript_without_bound(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        count = MAX_ENTRIES // 2 + 10
        raw.send(b"NOOP\r\n" * count)
        assert [raw.reply()[0] for _ in range(count)] == [250] * count
        assert raw.command("QUIT")[0] == 221
    [transcript] = _wait_closed(mock, 1)
    assert len(transcript.entries) == MAX_ENTRIES + 1
    assert transcript.entries[-1].text == TRUNCATED


def test_wait_for_sessions_times_out_while_a_session_is_open(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        with pytest.raises(WaitTimeout, match="0 ended, 1 still open"):
            mock.wait_for_sessions(1, timeout=0.05)
    assert len(mock.wait_for_sessions(1, timeout=10)) == 1


def test_storing_a_message_copies_its_own_transaction_not_the_whole_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite keeps an excerpt of the transcript with each message; over one connection that
    delivers n messages, building the excerpts must cost O(n), not O(n^2) (it used to turn
    the whole session into JSON for every message)."""
    converted = 0
    original = TranscriptEntry.to_dict

    def counting(entry: TranscriptEntry) -> dict[str, str]:
        nonlocal converted
        converted += 1
        return original(entry)

    monkeypatch.setattr(TranscriptEntry, "to_dict", counting)
    store = SQLiteStore(tmp_path / "mail.db")
    with contextlib.closing(store), SMTPMock(store=store) as mock:
        with smtplib.SMTP(mock.host, mock.port) as smtp:
            for n in range(60):
                smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: {n}\r\n\r\nx\r\n")
        stored = mock.messages
        assert len(stored) == 60
    # Each excerpt: the opening (greeting, EHLO and its reply) plus one transaction (~9 lines).
    assert converted < 60 * 20, f"{converted} entries converted for 60 messages"
    with contextlib.closing(SQLiteStore(tmp_path / "mail.db")) as again:
        last = again.messages()[-1]
    assert last.transcript is not None
    assert last.transcript.commands[:2] == ["EHLO", "MAIL"]


def test_lines_of_one_reply_share_a_time_and_a_line_after_the_end_is_kept() -> None:
    transcript = Transcript("s1", None)
    transcript.add("server", "250-one", "250 two")
    transcript.end()
    transcript.end()  # once only
    transcript.add("event", "a hook's late note")
    entries = transcript.entries
    assert [(e.kind, e.text) for e in entries] == [
        ("server", "250-one"),
        ("server", "250 two"),
        ("event", "disconnected"),
        ("event", "a hook's late note"),
    ]
    assert entries[0].stamp == entries[1].stamp
    assert all(isinstance(e, TranscriptEntry) for e in entries)


def test_an_ended_transcript_leaves_the_garbage_collector_one_list() -> None:
    """The memory store keeps every message's transcript: its lines must not be objects that
    every full collection walks (with a connection per message, ~22 per stored message)."""
    transcript = Transcript("s1", ("127.0.0.1", 1))
    for n in range(20):
        transcript.add("client", f"NOOP {n}")
    transcript.end()
    gc.collect()  # untracks the lines (plain tuples of atoms) ...
    gc.collect()  # ... then the tuple that holds them
    tracked = [
        r for r in gc.get_referents(transcript) if gc.is_tracked(r) and not isinstance(r, type)
    ]
    assert tracked == [transcript.message_ids]
    assert len(transcript.entries) == 21
