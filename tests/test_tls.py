"""TLS: STARTTLS offered or required, implicit TLS, generated or given certificates, and a
client context that verifies the server."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path

import pytest
import trustme

from smtpmock import ConfigurationError, ServerStartError, SMTPMock

from .rawsmtp import RawSMTP

BODY = "From: a@example.com\r\nTo: b@example.com\r\nSubject: tls\r\n\r\nhi\r\n"


def test_starttls_offered_and_verified() -> None:
    with SMTPMock(tls="starttls") as mock, smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.ehlo()
        assert c.has_extn("starttls")
        code, _ = c.starttls(context=mock.client_ssl_context())
        assert code == 220
        c.ehlo()
        assert not c.has_extn("starttls")  # not offered twice
        c.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
    assert message.tls
    assert message.tls_version in ("TLSv1.2", "TLSv1.3")


def test_starttls_offered_plain_still_works() -> None:
    with SMTPMock(tls="starttls") as mock, smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
    assert not message.tls
    assert message.tls_version is None


def test_starttls_required_refuses_mail_before_tls() -> None:
    with SMTPMock(tls="starttls-required") as mock, RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        assert raw.command("EHLO client")[0] == 250
        code, text = raw.command("MAIL FROM:<a@example.com>")
        assert (code, text) == (530, "530 5.7.0 Must issue a STARTTLS command first")
        assert raw.command("STARTTLS")[0] == 220
        raw.starttls(mock.client_ssl_context())
        assert raw.command("EHLO client")[0] == 250
        assert raw.command("MAIL FROM:<a@example.com>")[0] == 250


def test_implicit_tls_smtps() -> None:
    with SMTPMock(tls="implicit") as mock:
        context = mock.client_ssl_context()
        with smtplib.SMTP_SSL(mock.host, mock.port, context=context, timeout=10) as c:
            c.ehlo()
            assert not c.has_extn("starttls")
            assert c.docmd("STARTTLS")[0] == 503  # already encrypted
            c.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
    assert message.tls
    assert message.tls_version is not None


def test_plain_client_cannot_talk_to_implicit_tls() -> None:
    with SMTPMock(tls="implicit") as mock:
        with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
            smtplib.SMTP(mock.host, mock.port, timeout=5)
        assert mock.messages == []


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_client_context_verifies_hostname_and_ip(server_hostname: str) -> None:
    with SMTPMock(tls="implicit") as mock:
        context = mock.client_ssl_context()
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        with (
            RawSMTP(mock.host, mock.port) as raw,
            context.wrap_socket(raw.sock, server_hostname=server_hostname) as tls,
        ):
            assert tls.recv(3) == b"220"


def test_unverified_default_context_is_rejected() -> None:
    """The certificate is not trusted by the system: only the mock's CA verifies it."""
    with SMTPMock(tls="implicit") as mock, pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(mock.host, mock.port, context=ssl.create_default_context(), timeout=5)


def test_ca_cert_path_is_a_pem_for_external_clients() -> None:
    plain = SMTPMock()
    assert plain.ca_cert_path is None
    with pytest.raises(ConfigurationError):
        plain.client_ssl_context()
    with SMTPMock(tls="starttls") as mock:
        assert mock.ca_cert_path is not None
        pem = Path(mock.ca_cert_path).read_text()
        assert pem.startswith("-----BEGIN CERTIFICATE-----")
        context = ssl.create_default_context(cafile=mock.ca_cert_path)
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
            c.starttls(context=context)
            c.noop()


def test_generated_certificate_is_cached_per_process() -> None:
    with SMTPMock(tls="starttls") as one, SMTPMock(tls="implicit") as two:
        assert one.ca_cert_path == two.ca_cert_path


def test_certificate_files_given(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("c.pem", "k.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    options = {"tls_cert": str(cert_file), "tls_key": str(key_file), "tls_ca": str(ca_file)}
    with SMTPMock(tls="starttls", **options) as mock:
        assert mock.ca_cert_path == str(ca_file)
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
            c.starttls(context=mock.client_ssl_context())
            c.sendmail("a@example.com", ["b@example.com"], BODY)
        [message] = mock.wait_for(1)
    assert message.tls


def test_unreadable_certificate_fails_start(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    mock = SMTPMock(tls="starttls", tls_cert=str(bogus), tls_key=str(bogus))
    with pytest.raises(ServerStartError, match="cannot load the TLS certificate"):
        mock.start()
    assert not mock.running


@pytest.mark.parametrize(
    "options",
    [
        {"tls": "ssl"},
        {"tls": "starttls", "tls_cert": "only-cert.pem"},
        {"tls_cert": "c.pem", "tls_key": "k.pem"},
    ],
)
def test_bad_tls_options(options: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        SMTPMock(**options)


def test_starttls_without_tls_configured() -> None:
    with SMTPMock() as mock, smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.ehlo()
        assert not c.has_extn("starttls")
        assert c.docmd("STARTTLS") == (454, b"4.7.0 TLS not available")


def test_failed_handshake_is_not_a_server_error() -> None:
    with SMTPMock(tls="starttls") as mock, RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        assert raw.command("STARTTLS")[0] == 220
        raw.send(b"this is not a TLS client hello\r\n" * 4)
        assert raw.at_eof()
    mock.check()  # raises if the server recorded an error
