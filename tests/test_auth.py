"""AUTH PLAIN, LOGIN and CRAM-MD5 with smtplib; required AUTH; AUTH only over TLS; the log of
attempts that never holds a secret."""

from __future__ import annotations

import base64
import json
import smtplib
from collections.abc import Iterator

import pytest

from smtpmock import ConfigurationError, SMTPMock

from .rawsmtp import RawSMTP

BODY = "From: a@example.com\r\nTo: b@example.com\r\nSubject: auth\r\n\r\nhi\r\n"
SECRET = "s3cr3t-pw"
MECHANISMS = ["PLAIN", "LOGIN", "CRAM-MD5"]


@pytest.fixture
def mock() -> Iterator[SMTPMock]:
    with SMTPMock(tls="starttls", auth={"alice": SECRET}) as server:
        yield server


def _client(mock: SMTPMock) -> smtplib.SMTP:
    client = smtplib.SMTP(mock.host, mock.port, timeout=10)
    client.starttls(context=mock.client_ssl_context())
    client.ehlo()
    return client


def _auth(client: smtplib.SMTP, mechanism: str, user: str, password: str) -> None:
    client.user, client.password = user, password
    method = {
        "PLAIN": client.auth_plain,
        "LOGIN": client.auth_login,
        "CRAM-MD5": client.auth_cram_md5,
    }[mechanism]
    client.auth(mechanism, method, initial_response_ok=mechanism != "LOGIN")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_each_mechanism_authenticates_and_is_recorded(mock: SMTPMock, mechanism: str) -> None:
    with _client(mock) as client:
        assert mechanism in client.esmtp_features["auth"].split()
        _auth(client, mechanism, "alice", SECRET)
        client.sendmail("a@example.com", ["b@example.com"], BODY)
    [message] = mock.wait_for(1)
    assert message.auth_user == "alice"
    [attempt] = mock.auth_attempts
    assert (attempt.user, attempt.mechanism, attempt.success) == ("alice", mechanism, True)
    assert attempt.session_id == message.session_id
    assert mock.auth_failures == []


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_is_refused_and_visible(mock: SMTPMock, mechanism: str) -> None:
    with _client(mock) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            _auth(client, mechanism, "alice", "wrong-" + SECRET)
        assert info.value.smtp_code == 535
        assert info.value.smtp_error.startswith(b"5.7.8")
    [failure] = mock.auth_failures
    assert (failure.user, failure.mechanism, failure.success) == ("alice", mechanism, False)
    recorded = json.dumps([a.to_dict() for a in mock.auth_attempts]) + repr(mock.auth_attempts)
    assert SECRET not in recorded
    assert "wrong-" not in recorded


def test_unknown_user_is_refused(mock: SMTPMock) -> None:
    with _client(mock) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        _auth(client, "PLAIN", "mallory", SECRET)
    assert [a.user for a in mock.auth_failures] == ["mallory"]


def test_auth_only_over_tls_by_default(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        token = base64.b64encode(f"\0alice\0{SECRET}".encode()).decode()
        code, text = client.docmd("AUTH", f"PLAIN {token}")
        assert (code, text[:6]) == (538, b"5.7.11")
    assert [a.success for a in mock.auth_attempts] == [False]


def test_auth_allow_plaintext() -> None:
    with (
        SMTPMock(auth={"alice": SECRET}, auth_allow_plaintext=True) as mock,
        smtplib.SMTP(mock.host, mock.port, timeout=10) as client,
    ):
        client.login("alice", SECRET)
        client.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
    assert message.auth_user == "alice"
    assert not message.tls


def test_auth_required_refuses_mail_before_auth() -> None:
    with SMTPMock(tls="starttls", auth={"alice": SECRET}, auth_required=True) as mock:
        with _client(mock) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as info:
                client.sendmail("a@example.com", ["b@example.com"], BODY)
            assert info.value.smtp_code == 530
            assert info.value.smtp_error == b"5.7.0 Authentication required"
            _auth(client, "PLAIN", "alice", SECRET)
            client.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
    assert message.auth_user == "alice"


def test_auth_over_implicit_tls() -> None:
    with SMTPMock(tls="implicit", auth={"alice": SECRET}) as mock:
        context = mock.client_ssl_context()
        with smtplib.SMTP_SSL(mock.host, mock.port, context=context, timeout=10) as client:
            client.login("alice", SECRET)
            client.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
    assert message.auth_user == "alice"


def test_checker_callable_has_no_cram_md5() -> None:
    seen: list[tuple[str, str]] = []

    def checker(mechanism: str, user: str, password: str) -> bool:
        seen.append((mechanism, user))
        return password == SECRET

    with SMTPMock(tls="starttls", auth=checker) as mock, _client(mock) as client:
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        _auth(client, "LOGIN", "anyone", SECRET)
    assert seen == [("LOGIN", "anyone")]


def test_password_lookup_callable_serves_cram_md5() -> None:
    def lookup(user: str) -> str | None:
        return SECRET if user == "bob" else None

    with SMTPMock(tls="starttls", auth=lookup) as mock, _client(mock) as client:
        _auth(client, "CRAM-MD5", "bob", SECRET)
        assert client.docmd("NOOP")[0] == 250
    assert [(a.user, a.success) for a in mock.auth_attempts] == [("bob", True)]


def test_aborted_and_malformed_exchanges_are_logged(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        raw.command("STARTTLS")
        raw.starttls(mock.client_ssl_context())
        raw.command("EHLO client")
        assert raw.command("AUTH LOGIN")[0] == 334
        assert raw.command("*")[:2] == (501, "501 5.7.0 Auth aborted")
        assert raw.command("AUTH PLAIN !!!notbase64")[0] == 501
        assert raw.command("AUTH NTLM")[0] == 504
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250  # AUTH is optional here
    assert [(a.mechanism, a.success) for a in mock.auth_attempts] == [
        ("LOGIN", False),
        ("PLAIN", False),
        ("NTLM", False),
    ]


def test_second_auth_is_refused(mock: SMTPMock) -> None:
    with _client(mock) as client:
        _auth(client, "PLAIN", "alice", SECRET)
        assert client.docmd("AUTH", "PLAIN")[0] == 503


def test_reset_forgets_attempts(mock: SMTPMock) -> None:
    with _client(mock) as client, pytest.raises(smtplib.SMTPAuthenticationError):
        _auth(client, "PLAIN", "alice", "nope")
    assert mock.auth_failures
    mock.reset()
    assert mock.auth_attempts == []


@pytest.mark.parametrize(
    "options",
    [
        {"auth_required": True},
        {"auth": {"a": "b"}},  # no TLS and plaintext not allowed
        {"auth": "alice:pw", "auth_allow_plaintext": True},
    ],
)
def test_bad_auth_options(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SMTPMock(**options)
