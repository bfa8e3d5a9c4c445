"""Mailbox rules: each message placed in a mailbox as it arrives (over real SMTP with smtplib),
first matching rule wins, unmatched mail to ``default``; bad rules refused at start-up."""

from __future__ import annotations

import smtplib
import socket

import pytest

from smtpmock import Client, ConfigurationError, Message, SMTPMock
from smtpmock._routing import MailboxRule, Router

from .served import Served


def _body(extra: str = "") -> str:
    return f"From: a@example.com\r\nTo: b@example.com\r\n{extra}Subject: routed\r\n\r\nhi\r\n"


def test_rules_route_live_mail_first_match_wins() -> None:
    rules = ["auth-user", "header:X-Mailbox", "plus-tag", "domain:tenant.test=tenant", "domain"]
    with SMTPMock(auth={"ci-7": "pw"}, auth_allow_plaintext=True, mailbox_rules=rules) as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
            client.sendmail("a@example.com", ["app+ci-1@example.com"], _body())
            client.sendmail("a@example.com", ["b@example.com"], _body("X-Mailbox: ci-2\r\n"))
            # the header rule comes before plus-tag
            client.sendmail("a@x", ["app+ci-1@x.test"], _body("X-Mailbox: hdr\r\n"))
            client.sendmail("a@x", ["bob@tenant.test"], _body())
            client.sendmail("a@x", ["bob@other.test"], _body())
            # values that are no mailbox name do not match: the next rule decides
            client.sendmail("a@x", ["bad+a/b@z.test"], _body("X-Mailbox: not a name\r\n"))
            client.sendmail("a@x", ["bob@[127.0.0.1]"], _body())
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
            client.login("ci-7", "pw")
            client.sendmail("a@x", ["app+ci-1@x.test"], _body("X-Mailbox: hdr\r\n"))
        mock.wait_for(8)
        assert mock.store.mailboxes() == {
            "ci-1": 1,
            "ci-2": 1,
            "ci-7": 1,
            "default": 1,
            "hdr": 1,
            "other.test": 1,
            "tenant": 1,
            "z.test": 1,
        }
        assert [m.rcpt_tos for m in mock.store.mailbox("default").messages()] == [
            ("bob@[127.0.0.1]",)
        ]
        assert all(m.mailbox == "ci-7" for m in mock.store.mailbox("ci-7").messages())


def test_no_rules_means_the_default_mailbox() -> None:
    with SMTPMock() as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
            client.sendmail("a@x", ["app+ci-1@x.test"], _body("X-Mailbox: ci-2\r\n"))
        [message] = mock.wait_for(1)
        assert message.mailbox == "default"
        assert mock.store.mailboxes() == {"default": 1}


def test_rules_as_one_comma_separated_string() -> None:
    with SMTPMock(mailbox_rules="plus-tag, domain") as mock:  # type: ignore[arg-type]
        assert mock.config.mailbox_rules == ("plus-tag", "domain")


def test_port_rule_and_pure_choice() -> None:
    router = Router(["port:2526=ci-port", "plus-tag"])
    message = Message(b"Subject: x\r\n\r\n", rcpt_tos=["a+tag@x"])
    assert router.choose(message, 2526) == "ci-port"
    assert router.choose(message, 2525) == "tag"
    assert router.ports == [2526]
    assert Router().choose(message, 2526) == "default"
    assert str(MailboxRule.parse(" Domain:Ci.TEST=ci ")) == "domain:ci.test=ci"


@pytest.mark.parametrize(
    "rule",
    [
        "nosuch",
        "header",
        "port:2526",
        "port:x=ci",
        "port:70000=ci",
        "plus-tag:x",
        "domain:x.test",
        "auth-user:bob",
        "header:X-Mailbox=../etc",
        "domain:x.test=bad name",
    ],
)
def test_bad_rules_are_configuration_errors(rule: str) -> None:
    with pytest.raises(ConfigurationError, match="mailbox"):
        SMTPMock(mailbox_rules=[rule])


def _free_port() -> int:
    """A port nothing listens on right now (a ``port:`` rule names a fixed port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_listens_on_a_port_rule_and_routes_by_it() -> None:
    port = _free_port()
    with Served("--mailbox-rule", f"port:{port}=ci-port") as served:
        with smtplib.SMTP(served.smtp_host, port, timeout=10) as client:
            client.sendmail("a@example.com", ["b@example.com"], _body())
        with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
            client.sendmail("a@example.com", ["c@example.com"], _body())
        with (
            Client(served.url, mailbox="ci-port") as ci,
            Client(served.url, mailbox="default") as default,
        ):
            [by_port] = ci.wait_for(1, timeout=10)
            [by_main] = default.wait_for(1, timeout=10)
    assert by_port.rcpt_tos == ("b@example.com",)
    assert by_main.rcpt_tos == ("c@example.com",)
