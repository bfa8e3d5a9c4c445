"""The idle timeout counts from the client's last command or DATA line: one timer per
connection re-arms itself while the client is active, and fires once it is not."""

from __future__ import annotations

import time

from smtpmock import SMTPMock

from .rawsmtp import RawSMTP

TIMEOUT = 1.0
GAP = 0.2  # a slow client: each step well inside the timeout, all of them well past it


def test_a_slow_but_active_client_is_not_cut_off() -> None:
    with SMTPMock(idle_timeout=TIMEOUT) as mock, RawSMTP(mock.host, mock.port) as raw:
        assert raw.reply()[0] == 220
        assert raw.command("EHLO client.example")[0] == 250
        for _ in range(4):
            time.sleep(GAP)  # not synchronisation: the client's pace is what is tested
            assert raw.command("NOOP")[0] == 250
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250
        assert raw.command("RCPT TO:<b@example.com>")[0] == 250
        assert raw.command("DATA")[0] == 354
        raw.send(b"Subject: slow\r\n\r\n")
        for n in range(4):
            time.sleep(GAP)  # DATA lines count as activity too
            raw.send(b"line %d\r\n" % n)
        raw.send(b".\r\n")
        assert raw.reply()[0] == 250
        [message] = mock.wait_for(1)
        assert b"line 3" in message.raw
        # Then silence: the same connection's timer still fires, once.
        assert raw.reply() == (421, "421 4.4.2 localhost Error: timeout exceeded, closing")
        assert raw.at_eof()
        [session] = mock.wait_for_sessions(1)
    assert [e.text for e in session.entries].count("idle timeout") == 1
