"""``smtpmock serve`` as a user runs it: flags, environment, signals, durability, real clients."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from smtpmock import Client, Message
from smtpmock._config import ServerConfig
from smtpmock.store import SQLiteStore
from tests.mail import send
from tests.served import Served

BODY = ("x" * 78 + "\r\n") * 25


def test_help_explains_every_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "smtpmock", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--smtp-host",
        "--smtp-port",
        "--http-host",
        "--http-port",
        "--db",
        "--chaos-triggers",
        "--http-auth",
        "--max-messages",
        "--max-bytes",
        "--max-age",
    ):
        assert flag in out
    for field in dataclasses.fields(ServerConfig):
        assert f"--{field.name.replace('_', '-')}" in out
        assert f"SMTPMOCK_{field.name.upper()}" in out.replace("\n", "").replace(" ", "")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ready_line_and_clean_shutdown(sig: signal.Signals) -> None:
    with Served() as served:
        db = Path(served.ready_line.split("messages in ")[1].rstrip(")\n"))
        assert db.exists()
        assert httpx.get(served.url + "/livez").text == "ok"
        send(served.smtp_host, served.smtp_port)
        assert served.stop(sig) == 0
        assert not db.exists()  # the default temporary database is removed on exit
        assert "Traceback" not in served.stderr()


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    acked: list[str] = []
    enough = threading.Event()
    stop = threading.Event()

    def load(served: Served, n: int) -> None:
        try:
            with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    subject = f"load-{n}-{i}"
                    smtp.sendmail(
                        "a@x.org",
                        ["b@x.org"],
                        f"Subject: {subject}\r\n\r\n" + BODY,
                    )
                    acked.append(subject)  # sendmail returned: the server said 250
                    if len(acked) >= 200:
                        enough.set()
        except (smtplib.SMTPException, OSError):
            return  # the server was killed mid-conversation

    served = Served("--db", str(db)).start()
    threads = [threading.Thread(target=load, args=(served, n)) for n in range(4)]
    for thread in threads:
        thread.start()
    assert enough.wait(60)
    assert served.proc is not None
    children = _children(served.proc.pid)  # the index worker and multiprocessing's tracker
    assert children or sys.platform != "linux"
    served.kill()
    served.close()
    stop.set()
    for thread in threads:
        thread.join(60)
    assert served.proc is not None
    assert served.proc.returncode == -signal.SIGKILL
    with Served("--db", str(db)) as again, Client(again.url) as client:
        stored = {m.subject for m in client.messages}
        assert set(acked) <= stored
        assert len(acked) >= 200
    # The worker processes do not outlive a killed server.
    deadline = time.monotonic() + 15
    while [c for c in children if _alive(c)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if _alive(c)], f"left behind: {children}"


def _children(pid: int) -> list[int]:
    """Live descendants of *pid* (Linux /proc; empty elsewhere)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        for tasks in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            kids = [int(k) for k in tasks.read_text().split()]
            found += kids
            todo += kids
    return found


def _alive(pid: int) -> bool:
    """Whether *pid* still runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_environment_variables_and_flags(tmp_path: Path) -> None:
    env = {
        "SMTPMOCK_MAX_MESSAGE_SIZE": "2000",
        "SMTPMOCK_HOSTNAME": "mx.test",
        "SMTPMOCK_MAX_MESSAGES": "2",
    }
    with Served("--max-recipients", "2", env=env) as served:
        with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
            _code, reply = smtp.ehlo()
            assert reply.startswith(b"mx.test")
            assert smtp.esmtp_features["size"] == "2000"
            with pytest.raises(smtplib.SMTPSenderRefused):
                smtp.sendmail("a@x.org", ["b@x.org"], "Subject: big\r\n\r\n" + "x" * 5000)
        with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
            refused = smtp.sendmail(
                "a@x.org", ["1@x.org", "2@x.org", "3@x.org"], "Subject: r\r\n\r\n"
            )
        assert list(refused) == ["3@x.org"]
        assert refused["3@x.org"][0] == 452
        with Client(served.url) as client:
            for i in range(4):
                send(served.smtp_host, served.smtp_port, subject=f"r{i}")
            client.wait_for(1, timeout=30, subject="r3")
            assert [m.subject for m in client.messages] == ["r2", "r3"]  # retention: 2


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--max-message-size", "lots"], "not a whole number"),
        (["--tls", "sometimes"], "is not one of"),
        (["--idle-timeout", "-1"], "--idle-timeout must be positive"),
        (["--chaos-triggers", "Nonsense"], "trigger"),
        (["--http-auth", "nocolon"], "user:password"),
    ],
)
def test_bad_options_exit_2_with_a_reason(args: list[str], error: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "smtpmock", "serve", "--smtp-port", "0", "--http-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert error in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_reported(served: Served) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "smtpmock",
            "serve",
            "--smtp-port",
            str(served.smtp_port),
            "--http-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "already in use" in result.stderr


def test_mailpit_chaos_triggers() -> None:
    with Served("--chaos-triggers", "Recipient:550:100") as served:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            send(served.smtp_host, served.smtp_port)
        assert info.value.recipients["bob@example.com"][0] == 550
        rules = httpx.get(served.url + "/api/v1/faults").json()["rules"]
        assert [r["code"] for r in rules] == [550]


def test_swaks_and_smtp_source(served: Served) -> None:
    with Client(served.url) as client:
        client.reset()
        subprocess.run(
            [
                "swaks",
                "--server",
                f"{served.smtp_host}:{served.smtp_port}",
                "--to",
                "swaks@example.com",
                "--from",
                "s@example.com",
                "--header",
                "Subject: via swaks",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        [message] = client.wait_for(1, timeout=30, to="swaks@example.com")
        assert message.subject == "via swaks"
        subprocess.run(
            [
                "smtp-source",
                "-s",
                "4",
                "-m",
                "40",
                "-f",
                "src@example.com",
                "-t",
                "sink@example.com",
                f"{served.smtp_host}:{served.smtp_port}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert len(client.wait_for(40, timeout=60, to="sink@example.com")) == 40


def _big_message(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "big@example.com"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "the big one"
    msg.set_content("see attachment")
    msg.add_attachment(
        b"\0" * size, maintype="application", subtype="octet-stream", filename="big.bin"
    )
    return msg.as_bytes(policy=policy.SMTP)


def test_large_mail_is_never_in_list_or_search(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    store = SQLiteStore(db)
    for i in range(2000):
        store.add(
            Message(
                f"Subject: small {i}\r\n\r\nhello {i}\r\n".encode(),
                mail_from="a@x.org",
                rcpt_tos=["b@x.org"],
            )
        )
    big = store.add(
        Message(_big_message(25_000_000), mail_from="big@example.com", rcpt_tos=["bob@example.com"])
    )
    store.add(Message(b"Subject: after\r\n\r\nx\r\n", mail_from="a@x.org", rcpt_tos=["b@x.org"]))
    store.close()
    # The first listing indexes all 2,002 messages (a 25 MB one among them): allow it time on
    # a loaded machine.
    with Served("--db", str(db)) as served, httpx.Client(base_url=served.url, timeout=60) as api:
        listed = api.get("/api/v1/messages", params={"limit": 50})
        assert listed.json()["total"] == 2002
        assert big.id in listed.text
        assert len(listed.content) < 100_000  # summaries only: no body, no attachment
        found = api.get("/api/v1/search", params={"query": "has:attachment"})
        assert [m["ID"] for m in found.json()["messages"]] == [big.id]
        assert len(found.content) < 10_000
        raw = api.get(f"/api/v1/message/{big.id}/raw")
        assert len(raw.content) == big.size


def test_tls_and_auth_flags() -> None:
    import ssl

    with Served(
        "--tls", "starttls", "--auth", "alice:pw1,bob:pw2", "--auth-required", "true"
    ) as srv:
        # The second line names the CA that verifies the server: clients never skip checks.
        assert srv.proc is not None
        assert srv.proc.stdout is not None
        tls_line = srv.proc.stdout.readline().decode()
        assert "TLS (starttls), CA certificate " in tls_line
        ca_path = tls_line.rsplit(" ", 1)[1].strip()
        context = ssl.create_default_context(cafile=ca_path)
        with smtplib.SMTP(srv.smtp_host, srv.smtp_port, timeout=30) as smtp:
            smtp.starttls(context=context)
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login("alice", "wrong")
            smtp.login("bob", "pw2")
            smtp.sendmail("bob@x.org", ["c@x.org"], "Subject: secure\r\n\r\nhi\r\n")
        with Client(srv.url) as client:
            [message] = client.wait_for(1, timeout=30)
        assert message.tls
        assert message.auth_user == "bob"


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_implicit_tls_verified_by_curl_with_the_printed_ca() -> None:
    with Served("--tls", "implicit") as srv:
        assert srv.proc is not None
        assert srv.proc.stdout is not None
        ca_path = srv.proc.stdout.readline().decode().rsplit(" ", 1)[1].strip()
        mail = "From: a@example.com\r\nTo: b@example.com\r\nSubject: over smtps\r\n\r\nhi\r\n"
        done = subprocess.run(
            [
                "curl",
                "--silent",
                "--show-error",
                "--cacert",
                ca_path,
                f"smtps://localhost:{srv.smtp_port}",
                "--mail-from",
                "a@example.com",
                "--mail-rcpt",
                "b@example.com",
                "--upload-file",
                "-",
            ],
            input=mail.encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        with Client(srv.url) as client:
            [message] = client.wait_for(1, timeout=30)
        assert message.subject == "over smtps"
        assert message.tls
