"""Real clients beyond smtplib: aiosmtplib, and swaks and curl where the machine has them,
through plain, STARTTLS and implicit TLS, with AUTH, verifying the server's certificate."""

from __future__ import annotations

import asyncio
import gc
import shutil
import subprocess
from collections.abc import Coroutine
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest

from smtpmock import SMTPMock

SECRET = "cl1ent-pw"
SWAKS = shutil.which("swaks")
CURL = shutil.which("curl")
needs_swaks = pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (apt install swaks)")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def _email(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "user@example.com"
    msg["Subject"] = subject
    msg.set_content("hello\n")
    return msg


# ------------------------------------------------------------------------------- aiosmtplib


# aiosmtplib closes its TLS transport without waiting for the close to finish; when asyncio.run()
# ends first, the client's own socket is reported unclosed at garbage collection. That is the
# client library's clean-up, not the server's, so only that warning is let through here.
_AIOSMTPLIB_CLOSE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _aio(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an aiosmtplib call; collect its leftovers inside the test that made them."""
    try:
        return asyncio.run(coro)
    finally:
        gc.collect()


@_AIOSMTPLIB_CLOSE
def test_aiosmtplib_plain(mock: SMTPMock) -> None:
    _aio(aiosmtplib.send(_email("aio plain"), hostname=mock.host, port=mock.port))
    [message] = mock.wait_for(1)
    assert message.subject == "aio plain"
    assert not message.tls


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@_AIOSMTPLIB_CLOSE
def test_aiosmtplib_tls_and_auth(tls: str) -> None:
    with SMTPMock(tls=tls, auth={"app": SECRET}) as mock:
        context = mock.client_ssl_context()
        _aio(
            aiosmtplib.send(
                _email(f"aio {tls}"),
                hostname=mock.host,
                port=mock.port,
                username="app",
                password=SECRET,
                use_tls=tls == "implicit",
                start_tls=tls == "starttls",
                tls_context=context,
            )
        )
        [message] = mock.wait_for(1)
    assert message.tls
    assert message.auth_user == "app"


@_AIOSMTPLIB_CLOSE
def test_aiosmtplib_wrong_password_fails() -> None:
    with SMTPMock(tls="starttls", auth={"app": SECRET}) as mock:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            _aio(
                aiosmtplib.send(
                    _email("nope"),
                    hostname=mock.host,
                    port=mock.port,
                    username="app",
                    password="wrong",
                    start_tls=True,
                    tls_context=mock.client_ssl_context(),
                )
            )
        assert mock.messages == []
        # aiosmtplib tries every mechanism offered before giving up; each try is logged.
        failures = mock.auth_failures
        assert {a.user for a in failures} == {"app"}
        assert sorted(a.mechanism for a in failures) == ["CRAM-MD5", "LOGIN", "PLAIN"]


# ------------------------------------------------------------------------------- swaks


def _swaks(mock: SMTPMock, *extra: str) -> subprocess.CompletedProcess[str]:
    assert SWAKS is not None
    return subprocess.run(
        [
            SWAKS,
            "--server", mock.host,
            "--port", str(mock.port),
            "--from", "app@example.com",
            "--to", "user@example.com",
            "--header", "Subject: swaks",
            "--timeout", "10",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip


@needs_swaks
def test_swaks_plain(mock: SMTPMock) -> None:
    result = _swaks(mock)
    assert result.returncode == 0, result.stdout + result.stderr
    [message] = mock.wait_for(1)
    assert message.subject == "swaks"


@needs_swaks
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_starttls_verified_with_auth(mechanism: str) -> None:
    with SMTPMock(tls="starttls-required", auth={"app": SECRET}) as mock:
        assert mock.ca_cert_path is not None
        result = _swaks(
            mock,
            "--tls", "--tls-verify", "--tls-ca-path", mock.ca_cert_path,
            "--auth", mechanism, "--auth-user", "app", "--auth-password", SECRET,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        [message] = mock.wait_for(1)
    assert message.tls
    assert message.auth_user == "app"


@needs_swaks
def test_swaks_implicit_tls(mock: SMTPMock) -> None:
    with SMTPMock(tls="implicit") as server:
        assert server.ca_cert_path is not None
        result = _swaks(server, "--tls-on-connect", "--tls-verify", "--tls-ca-path",
                        server.ca_cert_path)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        [message] = server.wait_for(1)
    assert message.tls


# ------------------------------------------------------------------------------- curl


def _curl(url: str, mock: SMTPMock, *extra: str) -> subprocess.CompletedProcess[bytes]:
    assert CURL is not None
    body = b"From: app@example.com\r\nTo: user@example.com\r\nSubject: curl\r\n\r\nhi\r\n"
    return subprocess.run(
        [
            CURL, "--silent", "--show-error", "--max-time", "20",
            "--url", url,
            "--mail-from", "app@example.com",
            "--mail-rcpt", "user@example.com",
            "--upload-file", "-",
            *extra,
        ],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip


@needs_curl
def test_curl_smtp_plain(mock: SMTPMock) -> None:
    result = _curl(f"smtp://{mock.host}:{mock.port}", mock)
    assert result.returncode == 0, result.stderr
    [message] = mock.wait_for(1)
    assert message.subject == "curl"
    assert message.raw.endswith(b"hi\r\n")


@needs_curl
def test_curl_smtp_starttls_with_auth() -> None:
    with SMTPMock(tls="starttls", auth={"app": SECRET}) as mock:
        assert mock.ca_cert_path is not None
        result = _curl(
            f"smtp://localhost:{mock.port}",
            mock,
            "--ssl-reqd", "--cacert", mock.ca_cert_path,
            "--user", f"app:{SECRET}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        [message] = mock.wait_for(1)
    assert message.tls
    assert message.auth_user == "app"


@needs_curl
def test_curl_smtps() -> None:
    with SMTPMock(tls="implicit", auth={"app": SECRET}) as mock:
        assert mock.ca_cert_path is not None
        result = _curl(
            f"smtps://127.0.0.1:{mock.port}",
            mock,
            "--cacert", mock.ca_cert_path,
            "--user", f"app:{SECRET}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        [message] = mock.wait_for(1)
    assert message.tls
    assert message.auth_user == "app"


@needs_curl
def test_curl_without_the_ca_refuses_the_server() -> None:
    with SMTPMock(tls="implicit") as mock:
        result = _curl(f"smtps://localhost:{mock.port}", mock)
        assert result.returncode != 0  # curl verifies by default; the CA is not trusted
        assert mock.messages == []
