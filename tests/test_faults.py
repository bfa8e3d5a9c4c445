"""Fault injection: real clients (smtplib, aiosmtplib, raw sockets) driven into each failure.

Each test asserts three things: what the client saw (exception type, code, text), what the mock
stored (a refused message is not), and what the fault log recorded.
"""

from __future__ import annotations

import asyncio
import base64
import re
import smtplib
import socket
import threading
from typing import Any

import aiosmtplib
import pytest

from smtpmock import (
    ConfigurationError,
    FaultContext,
    FaultEvent,
    FaultRule,
    FaultSet,
    HookAction,
    ServerError,
    SessionView,
    SMTPMock,
)
from smtpmock._chaos import jim_rules, mailpit_rules
from smtpmock.smtp import StageHooks
from smtpmock.smtp._transport import _Throttle

from .mail import send

RAW = "From: alice@example.com\r\nTo: bob@example.com\r\nSubject: {subject}\r\n\r\nHi\r\n"


def raw(subject: str = "Hello") -> str:
    return RAW.format(subject=subject)


def client(mock: SMTPMock) -> smtplib.SMTP:
    return smtplib.SMTP(mock.host, mock.port, timeout=10)


# ------------------------------------------------------------------ replies at each stage


def test_mail_reply_refuses_sender_and_nothing_is_stored(mock: SMTPMock) -> None:
    rule = mock.faults.rule("MAIL", reply="451 4.7.1 Try later")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(mock.host, mock.port)
    assert info.value.smtp_code == 451
    assert info.value.smtp_error == b"4.7.1 Try later"
    assert info.value.sender == "alice@example.com"
    assert mock.messages == []
    [event] = mock.faults.log
    assert (event.stage, event.rule_id, event.action, event.code) == ("MAIL", rule.id, "reply", 451)
    assert event.sender == "alice@example.com"
    assert event.reply == "451 4.7.1 Try later"
    assert rule.fired == 1


def test_default_text_carries_an_enhanced_status_code(mock: SMTPMock) -> None:
    mock.faults.rule("MAIL", code=451)
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(mock.host, mock.port)
    assert info.value.smtp_error == b"4.3.0 Temporary failure, try again later"


def test_rule_matches_only_its_sender(mock: SMTPMock) -> None:
    mock.faults.reject_senders("*@spam.example")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(mock.host, mock.port, sender="eve@SPAM.example")
    assert info.value.smtp_code == 550
    send(mock.host, mock.port, sender="alice@example.com")
    [message] = mock.wait_for(1)
    assert message.mail_from == "alice@example.com"
    assert [e.sender for e in mock.faults.log] == ["eve@SPAM.example"]


def test_reject_recipients_refuses_only_matching_ones(mock: SMTPMock) -> None:
    mock.faults.reject_recipients(re.compile(r"^nobody@"))
    with client(mock) as smtp:
        refused = smtp.sendmail(
            "alice@example.com", ["nobody@example.com", "bob@example.com"], raw()
        )
    assert refused == {"nobody@example.com": (550, b"5.1.1 Mailbox unavailable")}
    [message] = mock.wait_for(1)
    assert message.rcpt_tos == ("bob@example.com",)
    [event] = mock.faults.log
    assert (event.stage, event.recipient, event.sender) == (
        "RCPT",
        "nobody@example.com",
        "alice@example.com",
    )


def test_every_recipient_refused_raises(mock: SMTPMock) -> None:
    mock.faults.mailbox_full()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(mock.host, mock.port, to=["bob@example.com"])
    assert info.value.recipients == {"bob@example.com": (552, b"5.2.2 Mailbox full")}
    assert mock.messages == []
    assert mock.faults.log[0].code == 552


def test_data_end_refusal_is_logged_with_subject_and_not_stored(mock: SMTPMock) -> None:
    mock.faults.rule("DATA_END", code=554, text="5.7.1 Spam detected", subject="*viagra*")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(mock.host, mock.port, subject="Cheap VIAGRA now")
    assert (info.value.smtp_code, info.value.smtp_error) == (554, b"5.7.1 Spam detected")
    send(mock.host, mock.port, subject="Minutes")
    [message] = mock.wait_for(1)
    assert message.subject == "Minutes"
    [event] = mock.faults.log
    assert (event.stage, event.subject, event.recipients) == (
        "DATA_END",
        "Cheap VIAGRA now",
        ("bob@example.com",),
    )


def test_data_command_refusal(mock: SMTPMock) -> None:
    mock.faults.rule("DATA", code=452, recipient="bob@*")
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(mock.host, mock.port)
    assert info.value.smtp_code == 452
    assert mock.faults.log[0].recipients == ("bob@example.com",)
    assert mock.messages == []


def test_connect_refusal_closes_the_connection(mock: SMTPMock) -> None:
    mock.faults.rule("connect", reply="554 5.7.1 No SMTP service here")
    with pytest.raises(smtplib.SMTPConnectError) as info:
        client(mock)
    assert (info.value.smtp_code, info.value.smtp_error) == (554, b"5.7.1 No SMTP service here")
    [event] = mock.faults.log
    assert event.stage == "connect"
    assert event.peer is not None
    assert event.peer[0] == "127.0.0.1"


def test_ehlo_refusal(mock: SMTPMock) -> None:
    mock.faults.rule("EHLO", code=421)
    with client(mock) as smtp:
        code, text = smtp.ehlo()
    assert (code, text) == (421, b"4.3.2 Service not available, closing transmission channel")


def test_auth_refusal_as_mailpit_names_it(mock: SMTPMock) -> None:
    mock.faults.chaos("Authentication:535:100")
    token = base64.b64encode(b"\0user\0secret").decode()
    with client(mock) as smtp:
        smtp.ehlo()
        code, text = smtp.docmd("AUTH", f"PLAIN {token}")
    assert (code, text) == (535, b"5.7.8 Authentication credentials invalid")
    assert [e.stage for e in mock.faults.log] == ["AUTH"]


def test_multi_line_reply(mock: SMTPMock) -> None:
    mock.faults.rule("MAIL", code=451, text="4.3.0 Try later\n4.3.0 See https://example.com")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(mock.host, mock.port)
    assert info.value.smtp_error == b"4.3.0 Try later\n4.3.0 See https://example.com"


def test_421_at_end_of_data_closes_the_channel(mock: SMTPMock) -> None:
    mock.faults.rule("DATA_END", code=421)
    with socket.create_connection(mock.address, timeout=10) as sock:
        stream = sock.makefile("rb")
        stream.readline()  # greeting
        sock.sendall(b"HELO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
        assert [stream.readline()[:3] for _ in range(3)] == [b"250"] * 3
        sock.sendall(b"DATA\r\n")
        assert stream.readline().startswith(b"354")
        sock.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        assert stream.readline().startswith(b"421 4.3.2 ")
        assert stream.readline() == b""  # the server closed the connection
    assert mock.messages == []


# ------------------------------------------------------------------ drops and delays


def test_disconnect_during_data(mock: SMTPMock) -> None:
    mock.faults.disconnect_during_data(times=1)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(mock.host, mock.port, subject="Lost")
    assert mock.messages == []
    [event] = mock.faults.log
    assert (event.stage, event.action, event.reply, event.subject) == (
        "DATA_END",
        "drop",
        None,
        "Lost",
    )
    send(mock.host, mock.port, subject="Second try")  # times=1: used up
    assert mock.wait_for(1)[0].subject == "Second try"
    mock.check()
    dropped = next(t for t in mock.sessions if t.session_id == event.session_id)
    notes = [e.text for e in dropped.entries if e.kind == "event"]
    assert f"fault rule {event.rule_id} (disconnect_during_data) drops the connection" in notes


def test_drop_at_connect(mock: SMTPMock) -> None:
    mock.faults.disconnect("connect", times=1)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client(mock)
    with client(mock) as smtp:
        assert smtp.noop()[0] == 250


def test_a_delayed_reply_does_not_hold_up_other_connections(mock: SMTPMock) -> None:
    reached = threading.Event()

    def slow_sender(ctx: FaultContext) -> bool:
        if ctx.sender == "slow@example.com":
            reached.set()
            return True
        return False

    mock.faults.rule("MAIL", delay=3600, predicate=slow_sender)
    outcome: list[BaseException] = []

    def send_slowly() -> None:
        try:
            send(mock.host, mock.port, sender="slow@example.com")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=send_slowly)
    thread.start()
    assert reached.wait(10)
    send(mock.host, mock.port, sender="fast@example.com")
    [message] = mock.wait_for(1)
    assert message.mail_from == "fast@example.com"
    assert thread.is_alive()  # still waiting for its MAIL reply
    [event] = mock.faults.log
    assert (event.action, event.delay, event.sender) == ("delay", 3600, "slow@example.com")
    mock.stop()  # closes the waiting connection
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], smtplib.SMTPServerDisconnected)


def test_delay_then_reply(mock: SMTPMock) -> None:
    mock.faults.rule("RCPT", delay=0.01, code=450)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(mock.host, mock.port)
    assert info.value.recipients["bob@example.com"][0] == 450


def test_slow_server_still_delivers(mock: SMTPMock) -> None:
    rule = mock.faults.slow(0.001)
    send(mock.host, mock.port)
    mock.wait_for(1)
    stages = [e.stage for e in mock.faults.log]
    assert stages[:2] == ["connect", "EHLO"]
    assert {"MAIL", "RCPT", "DATA", "DATA_END"} <= set(stages)
    assert rule.fired == len(stages)


# ------------------------------------------------------------------ throttling


def test_throttled_link_carries_every_byte(mock: SMTPMock) -> None:
    mock.faults.throttle(200_000)
    body = "".join(f"line {i:05d} " + "x" * 60 + "\r\n" for i in range(1500))  # ~100 kB
    send(mock.host, mock.port, body=body)
    [message] = mock.wait_for(1)
    assert message.raw.endswith(body.encode() + b"\r\n")  # send() ends the body with CRLF
    [event] = mock.faults.log
    assert (event.stage, event.action, event.throttle) == ("connect", "throttle", 200_000)


def test_throttle_range_draws_a_rate_within_it() -> None:
    with SMTPMock(faults=FaultSet(seed=5)) as mock:
        mock.faults.throttle((100_000, 300_000))
        for _ in range(3):
            send(mock.host, mock.port)
        rates = [e.throttle for e in mock.faults.log]
    assert len(rates) == 3
    assert all(r is not None and 100_000 <= r <= 300_000 for r in rates)


def test_throttle_pacing_schedule() -> None:
    schedule = _Throttle.schedule(1000, rate=100.0, tick=0.5)
    assert [n for n, _ in schedule] == [50] * 20
    assert sum(pause for _, pause in schedule) == pytest.approx(10.0)
    assert _Throttle.schedule(3, rate=1.0, tick=0.05) == [(1, 1.0)] * 3
    assert _Throttle.schedule(0, rate=10.0) == []


# ------------------------------------------------------------------ how often


def test_fail_then_succeed(mock: SMTPMock) -> None:
    rule = mock.faults.fail_then_succeed(2)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as info:
            send(mock.host, mock.port)
        assert info.value.smtp_code == 451
    send(mock.host, mock.port)
    assert len(mock.wait_for(1)) == 1
    assert rule.fired == 2
    assert rule.exhausted
    assert [e.stage for e in mock.faults.log] == ["DATA_END", "DATA_END"]


def test_app_retried_three_times_then_gave_up(mock: SMTPMock) -> None:
    mock.faults.rule("DATA_END", code=451)

    def app_send_with_retries(attempts: int) -> bool:
        for _ in range(attempts):
            try:
                send(mock.host, mock.port, subject="Invoice")
                return True
            except smtplib.SMTPDataError:
                continue
        return False

    assert app_send_with_retries(3) is False
    assert mock.messages == []
    log = mock.faults.events(stage="DATA_END")
    assert [(e.subject, e.code) for e in log] == [("Invoice", 451)] * 3
    assert len({e.session_id for e in log}) == 3  # three separate connections


def test_only_the_nth_occurrence(mock: SMTPMock) -> None:
    mock.faults.rule("MAIL", code=451, nth=2)
    send(mock.host, mock.port)
    with pytest.raises(smtplib.SMTPSenderRefused):
        send(mock.host, mock.port)
    send(mock.host, mock.port)
    assert len(mock.wait_for(2)) == 2
    assert len(mock.faults.log) == 1


def test_greylisting_first_attempt_per_pair_then_accepted(mock: SMTPMock) -> None:
    mock.faults.greylist(retry_after=0)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(mock.host, mock.port, to=["bob@example.com"])
    assert info.value.recipients["bob@example.com"] == (
        451,
        b"4.7.1 Greylisted, please try again later",
    )
    send(mock.host, mock.port, to=["bob@example.com"])  # the retry
    with client(mock) as smtp:  # a new pair is greylisted on its own
        refused = smtp.sendmail(
            "alice@example.com", ["bob@example.com", "carol@example.com"], raw()
        )
    assert refused == {"carol@example.com": (451, b"4.7.1 Greylisted, please try again later")}
    messages = mock.wait_for(2)
    assert [m.rcpt_tos for m in messages] == [("bob@example.com",), ("bob@example.com",)]
    assert [e.recipient for e in mock.faults.log] == ["bob@example.com", "carol@example.com"]


def test_greylisting_retry_too_early_is_refused_again() -> None:
    now = [1000.0]
    with SMTPMock(faults=FaultSet(clock=lambda: now[0])) as mock:
        mock.faults.greylist(retry_after=300)
        for seconds_later in (0, 299):
            now[0] = 1000.0 + seconds_later
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                send(mock.host, mock.port)
        now[0] = 1000.0 + 300
        send(mock.host, mock.port)
        mock.wait_for(1)
        assert len(mock.faults.log) == 2


def decisions(seed: int, attempts: int = 24) -> list[bool]:
    """Which of *attempts* sends a 50 % MAIL rule refused, on a fresh server seeded *seed*."""
    with SMTPMock(faults=FaultSet(seed=seed)) as mock:
        mock.faults.rule("MAIL", code=451, probability=0.5)
        refused = []
        with client(mock) as smtp:
            smtp.ehlo()
            for _ in range(attempts):
                code, _ = smtp.mail("alice@example.com")
                refused.append(code == 451)
                smtp.rset()
        assert sum(refused) == len(mock.faults.log)
    return refused


def test_probability_replays_exactly_with_the_same_seed() -> None:
    first = decisions(seed=1234)
    assert decisions(seed=1234) == first
    assert 0 < sum(first) < len(first)  # it did make choices
    assert decisions(seed=4321) != first


def test_rule_seed_is_recorded_and_replays_from_the_dict() -> None:
    faults = FaultSet(seed=99)
    rule = faults.rule("MAIL", code=451, probability=0.3)
    assert rule.seed is not None
    copy = FaultSet.from_dict(faults.to_dict())
    with SMTPMock(faults=faults) as a, SMTPMock(faults=copy) as b:
        seen = []
        for mock in (a, b):
            with client(mock) as smtp:
                smtp.ehlo()
                outcome = []
                for _ in range(20):
                    outcome.append(smtp.mail("x@example.com")[0])
                    smtp.rset()
            seen.append(outcome)
    assert seen[0] == seen[1]
    assert set(seen[0]) == {250, 451}


# ------------------------------------------------------------------ live changes


def test_rules_added_and_removed_while_a_session_is_open(mock: SMTPMock) -> None:
    with client(mock) as smtp:
        smtp.ehlo()
        assert smtp.mail("a@example.com")[0] == 250
        smtp.rset()
        rule = mock.faults.rule("MAIL", code=451)
        assert smtp.mail("a@example.com")[0] == 451
        mock.faults.remove(rule.id)
        assert smtp.mail("a@example.com")[0] == 250
    assert mock.faults.rules == []
    with pytest.raises(KeyError):
        mock.faults.remove(rule)


def test_rules_added_from_many_threads(mock: SMTPMock) -> None:
    def add_some(k: int) -> None:
        for i in range(50):
            mock.faults.rule("VRFY", code=550, name=f"{k}-{i}")

    threads = [threading.Thread(target=add_some, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(mock.faults) == 200
    with client(mock) as smtp:
        assert smtp.verify("bob@example.com")[0] == 550
    assert len(mock.faults.log) == 1  # the first rule answered; the others never saw it
    mock.faults.clear()
    assert (len(mock.faults), mock.faults.log) == (0, [])


def test_a_failing_predicate_is_a_server_error(mock: SMTPMock) -> None:
    def broken(ctx: FaultContext) -> bool:
        raise RuntimeError("bug in the predicate")

    mock.faults.rule("MAIL", code=451, predicate=broken)
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        send(mock.host, mock.port)
    assert info.value.smtp_code == 451
    with pytest.raises(ServerError, match="bug in the predicate"):
        mock.check()


# ------------------------------------------------------------------ aiosmtplib


def test_aiosmtplib_sees_each_failure(mock: SMTPMock) -> None:
    mock.faults.reject_senders("eve@*")
    mock.faults.reject_recipients("nobody@*", code=550, text="5.1.1 No such user")
    mock.faults.rule("DATA_END", code=552, text="5.3.4 Too big for us", subject="Huge*")

    async def scenario() -> list[BaseException]:
        errors: list[BaseException] = []
        attempts = [
            ("eve@example.com", "bob@example.com", "Hi"),
            ("alice@example.com", "nobody@example.com", "Hi"),
            ("alice@example.com", "bob@example.com", "Huge attachment"),
            ("alice@example.com", "bob@example.com", "Fine"),
        ]
        for sender, rcpt, subject in attempts:
            smtp = aiosmtplib.SMTP(hostname=mock.host, port=mock.port, timeout=10)
            await smtp.connect()
            try:
                await smtp.sendmail(sender, [rcpt], raw(subject))
            except aiosmtplib.SMTPException as exc:
                errors.append(exc)
            finally:
                await smtp.quit()
        return errors

    sender_error, rcpt_error, data_error = asyncio.run(scenario())
    assert isinstance(sender_error, aiosmtplib.SMTPSenderRefused)
    assert (sender_error.code, sender_error.sender) == (550, "eve@example.com")
    assert isinstance(rcpt_error, aiosmtplib.SMTPRecipientsRefused)
    [refused] = rcpt_error.recipients
    assert (refused.code, refused.message, refused.recipient) == (
        550,
        "5.1.1 No such user",
        "nobody@example.com",
    )
    assert isinstance(data_error, aiosmtplib.SMTPDataError)
    assert (data_error.code, data_error.message) == (552, "5.3.4 Too big for us")
    [message] = mock.wait_for(1)
    assert message.subject == "Fine"
    assert [e.stage for e in mock.faults.log] == ["MAIL", "RCPT", "DATA_END"]


def test_aiosmtplib_connect_drop_and_data_drop(mock: SMTPMock) -> None:
    mock.faults.disconnect("connect", nth=1)
    mock.faults.disconnect_during_data()

    async def scenario() -> tuple[BaseException, BaseException]:
        smtp = aiosmtplib.SMTP(hostname=mock.host, port=mock.port, timeout=10)
        with pytest.raises(aiosmtplib.SMTPException) as first:
            await smtp.connect()
        smtp = aiosmtplib.SMTP(hostname=mock.host, port=mock.port, timeout=10)
        await smtp.connect()
        with pytest.raises(aiosmtplib.SMTPServerDisconnected) as second:
            await smtp.sendmail("a@example.com", ["b@example.com"], raw())
        smtp.close()
        return first.value, second.value

    first, second = asyncio.run(scenario())
    assert isinstance(first, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError))
    assert isinstance(second, aiosmtplib.SMTPServerDisconnected)
    assert mock.messages == []
    assert [(e.stage, e.action) for e in mock.faults.log] == [
        ("connect", "drop"),
        ("DATA_END", "drop"),
    ]


# ------------------------------------------------------------------ Mailpit and MailHog


def test_mailpit_chaos_string_as_the_faults_argument() -> None:
    with SMTPMock(faults="Sender:451:100,Recipient:550:0,Authentication:535:5") as mock:
        names = [r.name for r in mock.faults.rules]
        assert names == ["mailpit-chaos:Sender", "mailpit-chaos:Authentication"]
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            send(mock.host, mock.port)
        assert info.value.smtp_code == 451
        assert mock.messages == []


def test_mailpit_chaos_parsing() -> None:
    [sender, rcpt, auth] = mailpit_rules("sender:451:50, Recipients:550:10 ,AUTH:535:5")
    assert (sender.stages, sender.code, sender.probability) == (("MAIL",), 451, 0.5)
    assert (rcpt.stages, rcpt.code, rcpt.probability) == (("RCPT",), 550, 0.1)
    assert (auth.stages, auth.code, auth.probability) == (("AUTH",), 535, 0.05)
    [from_json] = mailpit_rules({"Recipient": {"ErrorCode": 0, "Probability": 20}})
    assert (from_json.stages, from_json.code) == (("RCPT",), 451)  # Mailpit's default code
    for bad in ("Sender:451", "Bounce:451:5", "Sender:250:5", "Sender:451:101", "Sender:x:5"):
        with pytest.raises(ConfigurationError):
            mailpit_rules(bad)


def test_jim_rules_map_mailhog_parameters() -> None:
    rules = {r.name: r for r in jim_rules()}
    assert set(rules) == {
        "jim:accept",
        "jim:linkspeed",
        "jim:disconnect",
        "jim:reject-sender",
        "jim:reject-recipient",
        "jim:reject-auth",
    }
    assert rules["jim:accept"].probability == pytest.approx(0.01)
    assert rules["jim:linkspeed"].throttle == (1024, 10240)
    assert "connect" not in rules["jim:disconnect"].stages
    assert (rules["jim:reject-sender"].stages, rules["jim:reject-sender"].code) == (("MAIL",), 550)
    assert rules["jim:reject-auth"].code == 535
    assert jim_rules(accept=1, disconnect=0, linkspeed_affect=0, reject_sender=0,
                     reject_recipient=0, reject_auth=0) == []  # fmt: skip
    with pytest.raises(ConfigurationError):
        jim_rules(accept=1.5)


def test_jim_over_smtp(mock: SMTPMock) -> None:
    mock.faults.jim(
        accept=1, disconnect=0, linkspeed_affect=1, linkspeed_min=500_000,
        linkspeed_max=500_000, reject_sender=0, reject_recipient=1, reject_auth=0,
    )  # fmt: skip
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(mock.host, mock.port)
    assert info.value.recipients["bob@example.com"][0] == 550
    assert [e.rule_name for e in mock.faults.log] == ["jim:linkspeed", "jim:reject-recipient"]
    mock.faults.clear()
    mock.faults.jim(accept=0)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client(mock)


# ------------------------------------------------------------------ plain dicts


def test_rule_round_trips_through_a_dict() -> None:
    rule = FaultRule(
        ["RCPT", "data"],
        reply="450 4.2.1 Busy",
        recipient=re.compile(r"@slow\.example$", re.IGNORECASE),
        sender="*@example.com",
        delay=1.5,
        times=3,
        probability=0.25,
        seed=7,
        name="busy",
    )
    data = rule.to_dict()
    assert data["stages"] == ["RCPT", "DATA"]
    assert data["recipient"] == {"regex": r"@slow\.example$", "flags": int(re.IGNORECASE)}
    again = FaultRule.from_dict(data)
    assert again.to_dict() == data
    assert again.recipient is not None
    assert again.recipient("BOB@SLOW.EXAMPLE")
    hand_written = FaultRule.from_dict({"stage": "MAIL", "reply": "451 4.7.1 Wait"})
    assert (hand_written.code, hand_written.text) == (451, "4.7.1 Wait")


def test_predicate_rules_do_not_pretend_to_round_trip() -> None:
    rule = FaultRule("MAIL", code=451, predicate=lambda ctx: True)
    data = rule.to_dict()
    assert "lambda" in data["predicate"]
    with pytest.raises(ConfigurationError, match="predicate"):
        FaultRule.from_dict(data)


def test_log_entries_round_trip(mock: SMTPMock) -> None:
    mock.faults.rule("RCPT", code=550)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mock.host, mock.port)
    [event] = mock.faults.log
    data = event.to_dict()
    assert data["peer"][0] == "127.0.0.1"
    assert FaultEvent.from_dict(data) == event
    assert mock.faults.to_dict()["log"] == [data]
    assert "RCPT from <alice@example.com> to <bob@example.com>" in str(event)


def test_faults_argument_forms() -> None:
    rule = FaultRule("MAIL", code=451)
    as_dict = {"seed": 3, "rules": [{"stage": "RCPT", "code": 550}]}
    for value, stages in (
        (rule, [("MAIL",)]),
        ([rule.to_dict() | {"id": None}, FaultRule("DATA", code=554)], [("MAIL",), ("DATA",)]),
        (as_dict, [("RCPT",)]),
        ({"stage": "EHLO", "code": 421}, [("EHLO",)]),
        ({"Sender": {"ErrorCode": 451, "Probability": 10}}, [("MAIL",)]),
        (None, []),
    ):
        faults = FaultSet.coerce(value)
        assert [r.stages for r in faults.rules] == stages
    assert FaultSet.coerce(as_dict).seed == 3
    with pytest.raises(ConfigurationError):
        FaultSet.coerce(42)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage": "BOGUS", "code": 451}, "unknown stage"),
        ({"stage": "MAIL", "code": 250}, "400..599"),
        ({"stage": "MAIL", "reply": "oops"}, "3-digit"),
        ({"stage": "MAIL", "code": 451, "drop": True}, "not both"),
        ({"stage": "MAIL"}, "must do something"),
        ({"stage": "connect", "code": 451, "sender": "*"}, "sender="),
        ({"stage": "MAIL", "code": 451, "subject": "*"}, "subject="),
        ({"stage": "MAIL", "code": 451, "greylist": 10}, "greylist="),
        ({"stage": "MAIL", "code": 451, "probability": 2}, "probability"),
        ({"stage": "MAIL", "code": 451, "times": 0}, "times"),
        ({"stage": "MAIL", "throttle": 0}, "throttle"),
        ({"stage": "MAIL", "code": 451, "text": "a\rb"}, "CR"),
    ],
)
def test_bad_rules_are_refused_clearly(kwargs: dict[str, object], message: str) -> None:
    stage = kwargs.pop("stage")
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        FaultRule(stage, **kwargs)  # type: ignore[arg-type]


def test_duplicate_rule_id_is_refused() -> None:
    faults = FaultSet()
    faults.add({"id": "r1", "stage": "MAIL", "code": 451})
    with pytest.raises(ConfigurationError, match="r1"):
        faults.add({"id": "r1", "stage": "RCPT", "code": 451})


def test_throttle_and_delay_survive_starttls() -> None:
    with SMTPMock(tls="starttls") as mock:
        mock.faults.throttle(500_000)
        mock.faults.slow(0.001, stage=["STARTTLS", "MAIL"])
        with client(mock) as smtp:
            smtp.starttls(context=mock.client_ssl_context())
            smtp.sendmail("alice@example.com", ["bob@example.com"], raw("Secret"))
        [message] = mock.wait_for(1)
        assert message.subject == "Secret"
        assert message.tls
        assert [e.stage for e in mock.faults.log] == ["connect", "STARTTLS", "MAIL"]


def test_a_predicate_may_change_the_rules(mock: SMTPMock) -> None:
    def add_another(ctx: FaultContext) -> bool:
        mock.faults.rule("RCPT", code=550, name="added by predicate")
        return False

    mock.faults.rule("MAIL", code=451, predicate=add_another, times=1)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mock.host, mock.port)
    assert [e.rule_name for e in mock.faults.log] == ["added by predicate"]


# ------------------------------------------------------------------ the stage hook mechanism


def test_plain_and_async_stage_hooks_run_in_order() -> None:
    """A hook may be a plain function answering False (nothing to do: no coroutine, as the
    fault hook without rules) or return an awaitable; later hooks still run after either, and
    one that handled the stage stops the command and the hooks after it."""
    seen_first: list[str] = []
    seen_last: list[str] = []

    def first(protocol: Any, stage: str, arg: Any) -> bool:
        seen_first.append(stage)
        return False

    async def refuse_blocked(view: SessionView, stage: str, arg: Any) -> HookAction | None:
        if stage == "RCPT" and "blocked@" in str(arg):
            assert view.sender == "alice@example.com"  # the envelope so far
            return HookAction(reply="550 5.7.1 blocked by a hook")
        return None

    def last(protocol: Any, stage: str, arg: Any) -> bool:
        seen_last.append(stage)
        return False

    with SMTPMock() as mock:
        for hook in (first, refuse_blocked, last):
            mock.add_hook(hook)
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as smtp:
            refused = smtp.sendmail(
                "alice@example.com", ["blocked@example.com", "bob@example.com"], raw()
            )
        [message] = mock.wait_for(1)
    assert refused == {"blocked@example.com": (550, b"5.7.1 blocked by a hook")}
    assert message.rcpt_tos == ("bob@example.com",)
    assert seen_first == ["connect", "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "DATA_END", "QUIT"]
    assert seen_last == ["connect", "EHLO", "MAIL", "RCPT", "DATA", "DATA_END", "QUIT"]


def test_stage_hooks_are_wanted_while_a_gated_hook_has_something_to_do() -> None:
    """The fault hook is on every server, gated by its rule count: with no rule, the engine
    skips the stage machinery; a rule opens the gate from the next stage on."""
    hooks = StageHooks()
    assert not hooks.wanted()
    rules: list[str] = []
    hooks.add(lambda view, stage, arg: None, when=rules.__len__)
    assert not hooks.wanted()
    rules.append("a rule")
    assert hooks.wanted()
    rules.clear()
    hooks.add(lambda view, stage, arg: None)  # no gate: always wanted
    assert hooks.wanted()
    assert len(hooks.all) == 2


def test_a_rule_added_to_a_server_that_had_none_applies_at_once(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
        client.ehlo()
        assert client.mail("a@example.com")[0] == 250
        client.rset()
        mock.faults.reject_senders("a@example.com")
        assert client.mail("a@example.com")[0] == 550
