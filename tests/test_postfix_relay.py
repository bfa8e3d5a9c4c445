"""A real Postfix relays mail to smtpmock (issue 24's outside check, in miniature).

A throwaway Postfix instance (its own config, queue and log in a temporary directory; smtpd on a
free loopback port, ``relayhost`` = smtpmock) takes messages over SMTP and relays them to
smtpmock over plain SMTP, STARTTLS, and STARTTLS + AUTH; each message smtpmock stores must be
exactly what was submitted, below the ``Received:`` header Postfix adds.

Needs Debian's postfix and root (Postfix's master runs as root and drops to ``postfix``). A
developer without them sees a skip; in CI (``CI=true``) the test fails instead.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from smtpmock import SMTPMock

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
MESSAGES = 70  # per mode: 210 in all, as the outside check relays 200


def _missing() -> str | None:
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a Postfix instance needs root (its master drops to the postfix user)"
    return None


@pytest.fixture
def postfix_needed() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the Postfix relay test: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_MASTER = """\
{listen} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


@pytest.fixture
def relay() -> Iterator[tuple[Path, int]]:
    """A stopped Postfix configuration directory and its smtpd port; ``_start(...)`` below.

    Not pytest's tmp_path: Postfix's daemons run as ``postfix`` and must reach the queue, and
    tmp_path's parents are private to root."""
    conf = Path(tempfile.mkdtemp(prefix="smtpmock-postfix-"))
    conf.chmod(0o755)
    (conf / "queue").mkdir()
    (conf / "data").mkdir()
    shutil.chown(conf / "data", "postfix")
    port = _free_port()
    (conf / "master.cf").write_text(_MASTER.format(listen=f"127.0.0.1:{port}"))
    try:
        yield conf, port
    finally:
        subprocess.run([POSTFIX, "-c", str(conf), "stop"], capture_output=True, check=False)
        shutil.rmtree(conf, ignore_errors=True)


def _start(conf: Path, smtpmock_port: int, extra: dict[str, str]) -> None:
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(conf / "queue"),
        "data_directory": str(conf / "data"),
        "maillog_file": str(conf / "maillog"),
        "maillog_file_prefixes": str(conf),
        "syslog_name": "postfix-smtpmock-test",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "myhostname": "relay.test",
        "mydomain": "relay.test",
        "mydestination": "",
        "alias_maps": "",
        "alias_database": "",
        "local_transport": "error:no local delivery",
        "relayhost": f"[127.0.0.1]:{smtpmock_port}",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        "smtp_tls_security_level": "none",
        **extra,
    }
    (conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    done = subprocess.run(
        [POSTFIX, "-c", str(conf), "start"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def _message(n: int, mode: str) -> bytes:
    body = "".join(f"line {i} of message {n} ({mode})\r\n" for i in range(30))
    return (
        f"From: sender@example.com\r\nTo: rcpt@example.com\r\n"
        f"Subject: relayed {mode} {n}\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {make_msgid(domain='example.com')}\r\n\r\n"
        f"{body}.leading dot\r\n..two dots\r\n"
    ).encode()


def _below_received(raw: bytes) -> bytes:
    """*raw* without the leading ``Received:`` header Postfix added (with its folded lines)."""
    lines = raw.split(b"\r\n")
    assert lines[0].startswith(b"Received: ")
    index = 1
    while lines[index][:1] in (b" ", b"\t"):
        index += 1
    return b"\r\n".join(lines[index:])


@pytest.mark.usefixtures("postfix_needed")
@pytest.mark.parametrize("mode", ["plain", "starttls", "starttls+auth"])
def test_postfix_relays_byte_for_byte(relay: tuple[Path, int], mode: str) -> None:
    conf, port = relay
    options: dict[str, object] = {}
    extra: dict[str, str] = {}
    if mode != "plain":
        options["tls"] = "starttls-required"
        extra["smtp_tls_security_level"] = "encrypt"
    if mode == "starttls+auth":
        options["auth"] = {"relay": "s3cret"}
        extra |= {"smtp_sasl_auth_enable": "yes", "smtp_sasl_security_options": "noanonymous"}
    with SMTPMock(**options) as mock:  # type: ignore[arg-type]
        if mode == "starttls+auth":
            extra["smtp_sasl_password_maps"] = f"inline:{{ [127.0.0.1]:{mock.port}=relay:s3cret }}"
        _start(conf, mock.port, extra)
        sent = [_message(n, mode) for n in range(MESSAGES)]
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            for raw in sent:
                client.sendmail("sender@example.com", ["rcpt@example.com"], raw)
        try:
            got = mock.wait_for(MESSAGES, timeout=60)
        except AssertionError:
            log = (conf / "maillog").read_text() if (conf / "maillog").exists() else ""
            raise AssertionError(f"Postfix log:\n{log[-3000:]}") from None
        assert all(m.tls == (mode != "plain") for m in got)
        if mode == "starttls+auth":
            assert {m.auth_user for m in got} == {"relay"}
        by_subject = {m.subject: m for m in got}
        for raw in sent:
            subject = raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
            assert _below_received(by_subject[subject].raw) == raw
        mock.check()
