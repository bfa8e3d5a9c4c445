"""Release (Mailpit's and MailHog's): a stored message sent on to a second, in-process smtpmock
server over plain SMTP, STARTTLS and implicit TLS (trustme certificates), with AUTH; and the
allowlist refusing targets that are not allowed, before any connection."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import httpx
import pytest

from smtpmock import SMTPMock
from smtpmock._relay import Relay, RelayRefused, RelayTarget

from .served import Served

pytest.importorskip("fastapi")

RAW = (
    b"From: Ann <ann@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: release me\r\n"
    b"Message-ID: <r1@example.com>\r\n\r\nthe body\r\n"
)


def _seed(served: Served) -> str:
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        client.sendmail("ann@example.com", ["bob@example.org"], RAW)
    with httpx.Client(base_url=served.url, timeout=30) as api:
        waited = api.get("/api/v1/wait", params={"count": 1, "timeout": 30}).json()
    return str(waited["messages"][0]["ID"])


@pytest.fixture
def target() -> Iterator[SMTPMock]:
    with SMTPMock() as mock:
        yield mock


def test_mailpit_release_over_plain_smtp(target: SMTPMock) -> None:
    args = ("--relay-host", target.host, "--relay-port", str(target.port), "--relay-tls", "none")
    with Served(*args) as served, httpx.Client(base_url=served.url) as api:
        id = _seed(served)
        answer = api.post(
            f"/api/v1/message/{id}/release", json={"To": ["carol@example.net", "dan@example.net"]}
        )
        assert (answer.status_code, answer.text) == (200, "ok")
        released = target.wait_for(1, timeout=30)[0]
        assert released.raw == RAW
        assert released.rcpt_tos == ("carol@example.net", "dan@example.net")
        assert released.mail_from == "ann@example.com"
        assert released.tls is False
        # Mailpit's release needs {"To": [...]}.
        assert api.post(f"/api/v1/message/{id}/release", json={"To": []}).status_code == 400
        assert api.post("/api/v1/message/nope/release", json={"To": ["x@y.z"]}).status_code == 404
        webui = api.get("/api/v1/webui").json()["MessageRelay"]
        assert webui["Enabled"] is True
        assert webui["SMTPServer"] == f"{target.host}:{target.port}"


def test_mailpit_release_over_starttls_with_auth() -> None:
    with SMTPMock(tls="starttls-required", auth={"relay": "s3cret"}, auth_required=True) as target:
        assert target.ca_cert_path is not None
        args = (
            "--relay-host",
            target.host,
            "--relay-port",
            str(target.port),
            "--relay-tls",
            "starttls",
            "--relay-ca-file",
            target.ca_cert_path,
            "--relay-username",
            "relay",
            "--relay-password",
            "s3cret",
        )
        with Served(*args) as served, httpx.Client(base_url=served.url) as api:
            id = _seed(served)
            answer = api.post(f"/api/v1/message/{id}/release", json={"To": ["eve@example.net"]})
            assert answer.status_code == 200, answer.text
            released = target.wait_for(1, timeout=30)[0]
            assert (released.raw, released.tls, released.auth_user) == (RAW, True, "relay")


def test_mailpit_release_over_implicit_tls_with_login() -> None:
    with SMTPMock(tls="implicit", auth={"relay": "pw"}, auth_required=True) as target:
        assert target.ca_cert_path is not None
        args = (
            "--relay-host",
            "localhost",
            "--relay-port",
            str(target.port),
            "--relay-tls",
            "tls",
            "--relay-ca-file",
            target.ca_cert_path,
            "--relay-username",
            "relay",
            "--relay-password",
            "pw",
            "--relay-mechanism",
            "LOGIN",
        )
        with Served(*args) as served, httpx.Client(base_url=served.url) as api:
            id = _seed(served)
            answer = api.post(f"/api/v1/message/{id}/release", json={"To": ["eve@example.net"]})
            assert answer.status_code == 200, answer.text
            released = target.wait_for(1, timeout=30)[0]
            assert (released.raw, released.tls, released.auth_user) == (RAW, True, "relay")
            assert [a.mechanism for a in target.auth_attempts] == ["LOGIN"]


def test_mailhog_release_to_a_loopback_host_with_cram_md5() -> None:
    """MailHog's release names the target itself; with no relay configured, loopback only is
    allowed. STARTTLS is used because the target offers it (as Go's smtp.SendMail)."""
    with SMTPMock(tls="starttls", auth={"hog": "pw"}) as target:
        assert target.ca_cert_path is not None
        with (
            Served("--relay-ca-file", target.ca_cert_path) as served,
            httpx.Client(base_url=served.url) as api,
        ):
            id = _seed(served)
            body = {
                "Host": "localhost",
                "Port": str(target.port),  # MailHog's ReleaseConfig has Port as a string
                "Email": "frank@example.net",
                "Username": "hog",
                "Password": "pw",
                "Mechanism": "CRAM-MD5",
            }
            answer = api.post(f"/api/v1/messages/{id}/release", json=body)
            assert (answer.status_code, answer.content) == (200, b"")
            released = target.wait_for(1, timeout=30)[0]
            assert (released.rcpt_tos, released.auth_user, released.tls) == (
                ("frank@example.net",),
                "hog",
                True,
            )
            assert [a.mechanism for a in target.auth_attempts] == ["CRAM-MD5"]


def test_allowlist_refuses_other_hosts_before_connecting(target: SMTPMock) -> None:
    # Configured relay host only: neither another address nor another name is allowed, even
    # on loopback, and nothing reaches the target.
    args = ("--relay-host", "127.0.0.1", "--relay-port", str(target.port))
    with Served(*args) as served, httpx.Client(base_url=served.url) as api:
        id = _seed(served)
        for host in ("192.0.2.10", "localhost", "mail.example.com", "127.0.0.2"):
            body = {"Host": host, "Port": target.port, "Email": "x@example.net"}
            refused = api.post(f"/api/v1/messages/{id}/release", json=body)
            assert refused.status_code == 403, (host, refused.text)
            assert "not allowed" in refused.text
        assert target.sessions == []
    # No relay configured: loopback only; Mailpit's release (no host of its own) is refused.
    with Served() as served, httpx.Client(base_url=served.url) as api:
        id = _seed(served)
        body = {"Host": "192.0.2.10", "Port": 25, "Email": "x@example.net"}
        assert api.post(f"/api/v1/messages/{id}/release", json=body).status_code == 403
        mailpit = api.post(f"/api/v1/message/{id}/release", json={"To": ["x@example.net"]})
        assert mailpit.status_code == 400
        assert "no relay host" in mailpit.text
        assert api.get("/api/v1/webui").json()["MessageRelay"]["Enabled"] is False
        assert target.sessions == []


def test_relay_allowlist_rules() -> None:
    loopback = Relay()
    assert loopback.allowlist == ("loopback",)
    assert [loopback.allows(h) for h in ("localhost", "127.0.0.5", "::1", "[::1]")] == [True] * 4
    assert [loopback.allows(h) for h in ("10.0.0.1", "example.com", "localhost.evil.com", "")] == [
        False
    ] * 4
    configured = Relay(host="smtp.example.com")
    assert configured.allows("SMTP.example.com.")
    assert not configured.allows("localhost")
    networks = Relay(allowed_hosts=("10.1.0.0/16", "relay.internal"))
    assert [networks.allows(h) for h in ("10.1.2.3", "relay.internal")] == [True, True]
    assert [networks.allows(h) for h in ("10.2.0.1", "127.0.0.1")] == [False, False]
    with pytest.raises(RelayRefused, match="not allowed"):
        networks.send(RelayTarget("192.0.2.1", 25), "a@b.c", ["d@e.f"], b"x")


def test_relay_settings_from_flags_and_environment() -> None:
    import argparse

    from smtpmock._errors import ConfigurationError
    from smtpmock._relay import add_relay_flags, relay_from_args

    parser = argparse.ArgumentParser()
    add_relay_flags(parser)
    args = parser.parse_args(["--relay-host", "smtp.example.com", "--relay-tls", "tls"])
    env = {
        "SMTPMOCK_RELAY_HOST": "ignored.example.com",  # the flag wins
        "SMTPMOCK_RELAY_PORT": "465",
        "SMTPMOCK_RELAY_PASSWORD": "from-env",
        "SMTPMOCK_RELAY_ALLOW_HOST": "smtp.example.com, 10.0.0.0/8",
    }
    relay = relay_from_args(args, env)
    assert (relay.host, relay.port, relay.tls, relay.password) == (
        "smtp.example.com",
        465,
        "tls",
        "from-env",
    )
    assert relay.allowlist == ("smtp.example.com", "10.0.0.0/8")
    assert relay_from_args(parser.parse_args([]), {}).allowlist == ("loopback",)
    with pytest.raises(ConfigurationError, match="TLS mode"):
        relay_from_args(parser.parse_args([]), {"SMTPMOCK_RELAY_TLS": "maybe"})
    with pytest.raises(ConfigurationError, match="mechanism"):
        relay_from_args(parser.parse_args(["--relay-mechanism", "XOAUTH9"]), {})
