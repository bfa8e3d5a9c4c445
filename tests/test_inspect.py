"""Inspection and waiting: filter, wait_for, assert_sent/assert_not_sent, capture, reset."""

from __future__ import annotations

import re
import smtplib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from smtpmock import (
    ConfigurationError,
    Message,
    MessageNotSent,
    SMTPMock,
    UnexpectedMessage,
    WaitTimeout,
)
from tests.mail import send

ATTACHED = (
    "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
    "Cc: Erin <Erin@Example.COM>\r\nSubject: Invoice\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
    "--B\r\nContent-Type: text/plain\r\n\r\nYour invoice is attached.\r\n"
    "--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
    'filename="Invoice-42.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--B--\r\n'
)


@contextmanager
def in_thread(target: Callable[[], object]) -> Iterator[threading.Thread]:
    """Run *target* in a thread for the duration of the block; join it and re-raise its error."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]


@pytest.fixture
def populated(mailbox: SMTPMock) -> SMTPMock:
    send(
        mailbox.host,
        mailbox.port,
        sender="alice@example.com",
        to=["Bob@Example.com"],
        subject="Welcome, Bob",
        body="Click https://example.com/confirm?t=1 to confirm",
        headers="X-Campaign: spring\r\n",
    )
    send(
        mailbox.host,
        mailbox.port,
        sender="carol@example.com",
        to=["dave@example.com"],
        subject="Reset your password",
        body="Your code is 123456",
    )
    send(
        mailbox.host,
        mailbox.port,
        sender="alice@example.com",
        to=["bob@example.com", "hidden@example.com"],
        raw=ATTACHED,
    )
    assert len(mailbox.wait_for(3)) == 3
    return mailbox


def subjects(messages: list[Message]) -> list[str]:
    return [m.subject for m in messages]


def test_messages_in_arrival_order(populated: SMTPMock) -> None:
    assert subjects(populated.messages) == ["Welcome, Bob", "Reset your password", "Invoice"]
    assert [m.seq for m in populated.messages] == sorted(m.seq for m in populated.messages)
    assert len(populated) == 3
    assert populated[0].subject == "Welcome, Bob"


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"to": "bob@example.com"}, ["Welcome, Bob", "Invoice"]),  # envelope, any case
        ({"to": "BOB@EXAMPLE.COM"}, ["Welcome, Bob", "Invoice"]),
        ({"to": "hidden@example.com"}, ["Invoice"]),  # envelope only (a Bcc)
        ({"to": "erin@example.com"}, ["Invoice"]),  # header only (Cc), any case
        ({"to": "Erin <erin@example.com>"}, ["Invoice"]),
        ({"to": "Bob <bob@example.com>"}, ["Invoice"]),  # header with display name
        ({"to": re.compile(r"^dave@")}, ["Reset your password"]),
        ({"to": "nobody@example.com"}, []),
        ({"sender": "alice@example.com"}, ["Welcome, Bob", "Invoice"]),
        ({"sender": "Alice <alice@example.com>"}, ["Invoice"]),  # From: header
        ({"subject": "Welcome, Bob"}, ["Welcome, Bob"]),
        ({"subject": "Welcome"}, []),  # a str is exact
        ({"subject": "welcome, bob"}, []),  # ... and case-sensitive
        ({"subject": re.compile("Welcome|Reset")}, ["Welcome, Bob", "Reset your password"]),
        ({"body": "code is"}, ["Reset your password"]),  # substring
        ({"body": re.compile(r"\b\d{6}\b")}, ["Reset your password"]),
        ({"headers": {"x-campaign": "spring"}}, ["Welcome, Bob"]),
        ({"headers": {"X-Campaign": True}}, ["Welcome, Bob"]),
        ({"headers": {"X-Campaign": False}}, ["Reset your password", "Invoice"]),
        ({"headers": {"X-Campaign": re.compile("spr")}}, ["Welcome, Bob"]),
        ({"has_attachment": True}, ["Invoice"]),
        ({"has_attachment": False}, ["Welcome, Bob", "Reset your password"]),
        ({"attachment": "invoice-42.pdf"}, ["Invoice"]),
        ({"attachment": re.compile(r"\.pdf$")}, ["Invoice"]),
        ({"where": lambda m: "confirm" in m.links[0] if m.links else False}, ["Welcome, Bob"]),
        ({"sender": "alice@example.com", "has_attachment": False}, ["Welcome, Bob"]),
        ({}, ["Welcome, Bob", "Reset your password", "Invoice"]),
    ],
)
def test_filter(populated: SMTPMock, criteria: dict[str, object], expected: list[str]) -> None:
    assert subjects(populated.filter(**criteria)) == expected


def test_filter_with_positional_predicate(populated: SMTPMock) -> None:
    assert subjects(populated.filter(lambda m: m.subject.startswith("R"))) == [
        "Reset your password"
    ]


def test_a_raising_predicate_is_a_mismatch(populated: SMTPMock) -> None:
    def picky(message: Message) -> bool:
        if message.subject != "Invoice":
            raise KeyError("not an invoice")
        return True

    assert subjects(populated.filter(where=picky)) == ["Invoice"]


def test_unknown_criterion_is_a_configuration_error(mailbox: SMTPMock) -> None:
    with pytest.raises(ConfigurationError, match="recipient"):
        mailbox.filter(recipient="bob@example.com")
    with pytest.raises(ConfigurationError, match="recipient"):
        mailbox.wait_for(1, timeout=0, recipient="bob@example.com")
    with pytest.raises(ConfigurationError):
        mailbox.assert_sent(subjekt="x")
    with pytest.raises(ConfigurationError):
        mailbox.filter(subject=42)


def test_wait_for_counts_messages_already_received(populated: SMTPMock) -> None:
    found = populated.wait_for(2, timeout=0, sender="alice@example.com")
    assert subjects(found) == ["Welcome, Bob", "Invoice"]


def test_wait_for_wakes_on_arrival_from_another_thread(mailbox: SMTPMock) -> None:
    with in_thread(lambda: send(mailbox.host, mailbox.port, subject="later")):
        [message] = mailbox.wait_for(1, timeout=30, subject="later")
    assert message.subject == "later"


def test_wait_for_returns_all_matches_once_count_is_reached(mailbox: SMTPMock) -> None:
    send(mailbox.host, mailbox.port, subject="one", to=["x@example.com"])
    send(mailbox.host, mailbox.port, subject="noise", to=["y@example.com"])

    def more() -> None:
        send(mailbox.host, mailbox.port, subject="two", to=["x@example.com"])

    with in_thread(more):
        found = mailbox.wait_for(2, timeout=30, to="x@example.com")
    assert subjects(found) == ["one", "two"]


def test_wait_for_timeout_lists_closest_first(populated: SMTPMock) -> None:
    with pytest.raises(WaitTimeout) as caught:
        populated.wait_for(1, timeout=0.05, sender="alice@example.com", subject="Invoice 43")
    text = str(caught.value)
    assert isinstance(caught.value, AssertionError)
    assert "sender='alice@example.com'" in text
    assert "subject='Invoice 43'" in text
    assert "3 messages were received (closest first)" in text
    lines = [line for line in text.splitlines() if "from <" in line]
    # Two messages fail one term (alice's), the third fails both; the closest are listed first.
    assert "Reset your password" in lines[2]
    assert "fails sender='alice@example.com', subject='Invoice 43'" in lines[2]
    assert "fails subject='Invoice 43'" in lines[0]


def test_wait_for_timeout_on_empty_mailbox(mailbox: SMTPMock) -> None:
    with pytest.raises(WaitTimeout, match="no messages were received"):
        mailbox.wait_for(1, timeout=0.01)


def test_wait_for_rejects_a_count_below_one(mailbox: SMTPMock) -> None:
    with pytest.raises(ValueError, match="count"):
        mailbox.wait_for(0)


def test_assert_sent(populated: SMTPMock) -> None:
    [message] = populated.assert_sent(subject="Invoice")
    assert message.subject == "Invoice"
    assert len(populated.assert_sent(sender="alice@example.com", exactly=2)) == 2
    with pytest.raises(MessageNotSent, match="exactly 1 message"):
        populated.assert_sent(sender="alice@example.com", exactly=1)
    with pytest.raises(MessageNotSent, match="closest first") as caught:
        populated.assert_sent(to="eve@example.com")
    assert isinstance(caught.value, AssertionError)
    assert populated.assert_sent(to="eve@example.com", exactly=0) == []
    # count is wait_for's word ("until N have arrived"); here it is refused, not misread.
    with pytest.raises(ConfigurationError, match="exactly=N"):
        populated.assert_sent(sender="alice@example.com", count=2)


def test_assert_not_sent(populated: SMTPMock) -> None:
    populated.assert_not_sent(to="eve@example.com")
    with pytest.raises(UnexpectedMessage, match="Reset your password") as caught:
        populated.assert_not_sent(body="code is")
    assert isinstance(caught.value, AssertionError)


def test_capture_sees_only_the_block_and_stays_frozen(mailbox: SMTPMock) -> None:
    send(mailbox.host, mailbox.port, subject="before")
    mailbox.wait_for(1, subject="before")
    with mailbox.capture() as outbox:
        send(mailbox.host, mailbox.port, subject="inside")
        assert subjects(outbox.wait_for(1)) == ["inside"]
    send(mailbox.host, mailbox.port, subject="after")
    mailbox.wait_for(1, subject="after")
    assert subjects(outbox.messages) == ["inside"]
    assert len(outbox) == 1
    outbox.assert_sent(subject="inside")
    outbox.assert_not_sent(subject="after")
    # A finished capture cannot gain messages: its wait fails at once instead of waiting.
    with pytest.raises(WaitTimeout):
        outbox.wait_for(2, timeout=30)


def test_capture_wakes_on_arrival_in_another_thread(mailbox: SMTPMock) -> None:
    with (
        mailbox.capture() as outbox,
        in_thread(lambda: send(mailbox.host, mailbox.port, subject="threaded")),
    ):
        [message] = outbox.wait_for(1, timeout=30)
    assert message.subject == "threaded"


def test_reset(populated: SMTPMock) -> None:
    populated.reset()
    assert populated.messages == []
    send(populated.host, populated.port, subject="fresh")
    assert subjects(populated.wait_for(1)) == ["fresh"]


def test_reset_during_a_wait_counts_again(mailbox: SMTPMock) -> None:
    send(mailbox.host, mailbox.port, subject="old", to=["x@example.com"])
    mailbox.wait_for(1)
    counted_old = threading.Event()
    result: list[list[Message]] = []

    def seen(message: Message) -> bool:
        if message.subject == "old":
            counted_old.set()  # the waiter has counted "old": the reset comes after that
        return True

    def waiter() -> None:
        result.append(mailbox.wait_for(2, timeout=30, to="x@example.com", where=seen))

    with in_thread(waiter):
        assert counted_old.wait(30)
        mailbox.reset()
        send(mailbox.host, mailbox.port, subject="new1", to=["x@example.com"])
        send(mailbox.host, mailbox.port, subject="new2", to=["x@example.com"])
    # The message deleted by reset() no longer counts: the wait returns the two new ones.
    assert subjects(result[0]) == ["new1", "new2"]
    assert subjects(mailbox.messages) == ["new1", "new2"]


def test_reset_before_wait_forgets_old_messages(mailbox: SMTPMock) -> None:
    send(mailbox.host, mailbox.port, subject="old", to=["x@example.com"])
    mailbox.wait_for(1)
    mailbox.reset()
    with in_thread(lambda: send(mailbox.host, mailbox.port, subject="new", to=["x@example.com"])):
        found = mailbox.wait_for(1, timeout=30, to="x@example.com")
    assert subjects(found) == ["new"]


def test_many_threads_while_mail_arrives(mailbox: SMTPMock) -> None:
    senders, per_sender = 4, 50
    total = senders * per_sender

    def sender(n: int) -> Callable[[], None]:
        def run() -> None:
            with smtplib.SMTP(mailbox.host, mailbox.port, timeout=30) as client:
                for i in range(per_sender):
                    client.sendmail(
                        f"s{n}@example.com",
                        [f"r{n}@example.com"],
                        f"Subject: {n}-{i}\r\n\r\nbody {n} {i}\r\n",
                    )

        return run

    waited: list[list[Message]] = []
    readers_done = threading.Event()

    def reader() -> None:
        while not readers_done.is_set():
            mailbox.filter(to="r0@example.com")
            _ = [m.subject for m in mailbox.messages]

    threads = [threading.Thread(target=sender(n)) for n in range(senders)]
    reader_thread = threading.Thread(target=reader)
    waiter_thread = threading.Thread(
        target=lambda: waited.append(mailbox.wait_for(total, timeout=60))
    )
    waiter_thread.start()
    reader_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    waiter_thread.join(60)
    readers_done.set()
    reader_thread.join(60)
    assert len(waited[0]) == total
    got = [m.subject for m in mailbox.messages]
    assert sorted(got) == sorted(f"{n}-{i}" for n in range(senders) for i in range(per_sender))
    assert len({m.id for m in mailbox.messages}) == total
    for n in range(senders):
        mine = [m.subject for m in mailbox.filter(sender=f"s{n}@example.com")]
        assert mine == [f"{n}-{i}" for i in range(per_sender)]  # each session in order


def test_wait_for_returns_the_messages_it_waited_for(populated: SMTPMock) -> None:
    # Two messages match; waiting for one returns one (the first), so the README's
    # ``[message] = mock.wait_for(1, ...)`` holds however many are there.
    [message] = populated.wait_for(1, sender="alice@example.com")
    assert message.subject == "Welcome, Bob"
    assert subjects(populated.wait_for(2, sender="alice@example.com")) == [
        "Welcome, Bob",
        "Invoice",
    ]
    assert len(populated.wait_for(1)) == 1


def test_wait_for_after_stop_fails_at_once() -> None:
    mock = SMTPMock().start()
    send(mock.host, mock.port, sender="a@example.com", to=["b@example.com"], subject="one")
    mock.wait_for(1)
    mock.stop()
    assert [m.subject for m in mock.wait_for(1)] == ["one"]  # what is there is still found
    with pytest.raises(mock.ServerStartError, match="not running") as caught:
        mock.wait_for(2, timeout=600)  # would take ten minutes if it waited
    assert "1 of 2 messages" in str(caught.value)
    assert "one" in str(caught.value)


def test_address_equals_its_address_string(populated: SMTPMock) -> None:
    [message] = populated.filter(subject="Invoice")
    assert message.to == ["bob@example.com"]
    assert "bob@example.com" in message.to
    assert "BOB@example.com" in message.to  # case-insensitive, as to= is
    assert "Bob <bob@example.com>" in message.to  # the forms that to= accepts
    assert "erin@example.com" in message.cc
    assert message.from_ == "alice@example.com"
    assert message.from_ != "bob@example.com"
    assert message.to != ["alice@example.com"]
    name, address = message.from_  # still a (name, address) pair
    assert (name, address) == ("Alice", "alice@example.com")
    assert message.from_ == ("Alice", "alice@example.com")
    assert message.from_ != ("Someone else", "alice@example.com")
    assert {message.from_, message.from_._replace(address="ALICE@example.com")} == {message.from_}
    assert message.from_ in {"alice@example.com"}  # hashes as its lower-case address
