"""MAIL/RCPT address parsing: smtpmock's regex fast path gives exactly what aiosmtpd's parser
gives, and everything it does not recognise goes to aiosmtpd's parser."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP

from smtpmock import SMTPMock
from smtpmock._config import ServerConfig
from smtpmock._protocol import _PLAIN_PATH, SMTPProtocol
from smtpmock._server import _ServerState
from smtpmock.store import MemoryStore

# Paths the fast path answers: plain ASCII dot-atoms, with or without parameters.
FAST = [
    "<a@b>",
    "<bob@example.com>",
    "<Bob.Smith+tag@Mail.Example.COM>",
    "<!#$%&'*+/=?^_`{|}~-@x-y.z>",
    "<a@b> SIZE=100",
    "<a@b>SIZE=100 BODY=8BITMIME",
    "<a@b>  NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
    "  <a@b>",
    "\t<a@b>\t",
    "<a@b> ",
    "<a@b>>",
    "<a@b>\x0bSIZE=1",
    "<a@b-c_d>",
    "<" + "x" * 200 + "@example.com>",
]
# Paths that must go to aiosmtpd's parser (whatever it makes of them).
SLOW = [
    "",
    "<>",
    "<> SIZE=1",
    '<"quoted local"@example.com>',
    '<"a\\"b"@example.com>',
    "<@relay.example:bob@example.com>",
    "<@r1,@r2:bob@example.com>",
    "<josé@exämple.com>",
    "<用户@例子.广告>",
    "<bob@[192.0.2.1]>",
    "<bob@[IPv6:2001:db8::1]>",
    "bob@example.com",
    "<bob@example.com",
    "<bob@example.com> (comment) SIZE=1",
    "<bob(comment)@example.com>",
    "<a..b@example.com>",
    "<.a@example.com>",
    "<a@b..c>",
    "<a@b.>",
    "<a @b>",
    "<a@ b>",
    "<a@b@c>",
    "<@>",
    "<a@>",
    "<@b>",
    "\x0b<a@b>",
    "<<a@b>>",
    "<a,b@c>",
    "<a;b@c>",
    "<a\\b@c>",
]


@pytest.fixture(scope="module")
def protocol() -> Iterator[SMTPProtocol]:
    loop = asyncio.new_event_loop()
    state = _ServerState(ServerConfig.from_options({}), MemoryStore(), loop)
    yield SMTPProtocol(state)
    loop.close()


@pytest.mark.parametrize("path", FAST)
def test_fast_path_matches_aiosmtpd(protocol: SMTPProtocol, path: str) -> None:
    assert _PLAIN_PATH.fullmatch(path) is not None
    expected = SMTP._getaddr(protocol, path)
    assert expected[0] is not None  # aiosmtpd accepts it too
    assert protocol._getaddr(path) == expected


@pytest.mark.parametrize("path", SLOW)
def test_other_paths_go_to_aiosmtpd(protocol: SMTPProtocol, path: str) -> None:
    assert _PLAIN_PATH.fullmatch(path) is None
    assert protocol._getaddr(path) == SMTP._getaddr(protocol, path)


@pytest.mark.parametrize("path", ["<abcd@example.com>", "<abc@example.com>", "<ab@x> SIZE=1"])
def test_local_part_limit_on_the_fast_path(
    protocol: SMTPProtocol, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "local_part_limit", 3)
    expected = SMTP._getaddr(protocol, path)
    assert protocol._getaddr(path) == expected
    assert (expected[0] is None) == path.startswith("<abcd")


def test_both_paths_over_the_wire(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port) as client:
        client.ehlo()
        assert client.docmd("MAIL", "FROM:<a.b+c@example.com> BODY=8BITMIME")[0] == 250
        assert client.docmd("RCPT", "TO:<plain@example.com>")[0] == 250
        assert client.docmd("RCPT", 'TO:<"quoted name"@example.com>')[0] == 250
        assert client.docmd("RCPT", "TO:<@relay.example:routed@example.com>")[0] == 250
        assert client.docmd("RCPT", "TO:<bad..dots@example.com>")[0] == 250
        assert client.docmd("RCPT", "TO:<broken@>")[0] == 553
        client.data(b"Subject: paths\r\n\r\nx\r\n")
    [message] = mock.wait_for(1)
    assert message.mail_from == "a.b+c@example.com"
    assert message.rcpt_tos == (
        "plain@example.com",
        '"quoted name"@example.com',
        "routed@example.com",
        "bad..dots@example.com",
    )
