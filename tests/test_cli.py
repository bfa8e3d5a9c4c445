"""The ``smtpmock`` command as a user meets it: help, version, every bad value refused in the
command line's own words, plain switches, the per-message log, and a clean stop with an event
stream open and a wait pending."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from smtpmock._version import smtpmock_version
from tests.mail import send
from tests.served import Served


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "smtpmock", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_smtpmock_alone_prints_the_help() -> None:
    result = _run()
    assert result.returncode == 0
    assert "usage: smtpmock" in result.stdout
    assert "serve" in result.stdout
    assert result.stderr == ""


def test_version_is_the_package_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"smtpmock {smtpmock_version()}"
    assert smtpmock_version()[0].isdigit()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--smtp-port", "99999"], "argument --smtp-port: 99999 is not a TCP port (0-65535"),
        (["--http-port", "99999"], "argument --http-port: 99999 is not a TCP port"),
        (["--smtp-port", "-1"], "argument --smtp-port: -1 is not a TCP port"),
        (["--http-port", "-5"], "argument --http-port: -5 is not a TCP port"),
        (["--smtp-port", "smtp"], "argument --smtp-port: 'smtp' is not a whole number"),
        (["--max-messages", "0"], "argument --max-messages: 0 is not a positive whole number"),
        (["--max-bytes", "-1"], "argument --max-bytes: -1 is not a positive whole number"),
        (["--max-age", "inf"], "argument --max-age: 'inf' is not a finite number"),
        (["--http-max-body", "0"], "argument --http-max-body: 0 is not a positive"),
        (["--max-message-size", "0"], "--max-message-size must be positive or none"),
        (["--max-message-size", "lots"], "argument --max-message-size: 'lots' is not a whole"),
        (["--max-message-size", str(2**64)], "out of range"),
        (["--idle-timeout", "nan"], "argument --idle-timeout: 'nan' is not a finite number"),
        (
            ["--auth-required"],
            "--auth-required needs accounts (--auth user:password) or --auth-accept-any",
        ),
        (["--auth", "alice:pw"], "set --tls starttls"),
        (["--auth", "nopassword"], "argument --auth: accounts are user:password"),
        (["--tls", "sometimes"], "argument --tls: 'sometimes' is not one of starttls"),
        (["--smtputf8", "maybe"], "argument --smtputf8: 'maybe' is not on or off"),
        (["--tls-cert", "/x.pem"], "--tls-cert and --tls-key go together"),
        (["--http-auth", "nocolon"], "argument --http-auth: 'nocolon' is not user:password"),
        (["--chaos-triggers", "Nonsense"], "--chaos-triggers: "),
    ],
)
def test_bad_values_are_refused_in_the_cli_own_words(args: list[str], said: str) -> None:
    result = _run("serve", "--smtp-port", "0", "--http-port", "0", *args)
    assert result.returncode == 2
    assert said in result.stderr
    assert "Traceback" not in result.stderr
    # Python's words never reach the user.
    for python in ("max_message_size", "auth_required", "auth={", "=True", "port=0", " None"):
        assert python not in result.stderr
    assert result.stderr.count("\n") <= 3  # a short usage line and the reason, not every flag


def test_bad_environment_variable_names_the_variable() -> None:
    result = _run("serve", "--http-port", "0", env={"SMTPMOCK_SMTP_PORT": "99999"})
    assert result.returncode == 2
    assert "SMTPMOCK_SMTP_PORT='99999': 99999 is not a TCP port" in result.stderr


def test_port_in_use_names_the_flag(served: Served) -> None:
    result = _run("serve", "--smtp-port", str(served.smtp_port), "--http-port", "0")
    assert result.returncode == 2
    assert f"--smtp-port {served.smtp_port}: port {served.smtp_port} is already in use" in (
        result.stderr
    )
    assert "port=0" not in result.stderr
    http_port = served.url.rsplit(":", 1)[1]
    result = _run("serve", "--smtp-port", "0", "--http-port", http_port)
    assert result.returncode == 2
    assert f"--http-port {http_port}: port {http_port} is already in use" in result.stderr


def test_switches_are_plain_flags_and_old_form_still_works() -> None:
    for args in (
        ["--auth-required", "--auth-allow-plaintext"],
        ["--auth-required", "true", "--auth-allow-plaintext", "yes"],
    ):
        with (
            Served("--auth", "alice:pw", *args, "--no-smtputf8") as served,
            smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp,
        ):
            smtp.ehlo()
            assert not smtp.has_extn("smtputf8")
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                smtp.sendmail("a@x.org", ["b@x.org"], "Subject: x\r\n\r\nx")
            assert refused.value.smtp_code == 530
            smtp.login("alice", "pw")
            assert smtp.sendmail("a@x.org", ["b@x.org"], "Subject: x\r\n\r\nx") == {}


def test_every_bool_option_is_a_switch_with_a_no_form() -> None:
    import dataclasses

    from smtpmock._config import ServerConfig

    out = _run("serve", "--help").stdout
    for option in dataclasses.fields(ServerConfig):
        if option.type in ("bool", bool):
            flag = option.name.replace("_", "-")
            assert f"--{flag} [on|off]" in out
            assert f"--no-{flag}" in out


def _stopped(served: Served, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    """Stop *served*; its exit status, what it printed after the ready line, and its log."""
    assert served.proc is not None
    assert served.proc.stdout is not None
    served.proc.send_signal(sig)
    # A server that never stops must fail the test, not hang it.
    watchdog = threading.Timer(60, served.proc.kill)
    watchdog.start()
    try:
        rest = served.proc.stdout.read().decode()
    finally:
        watchdog.cancel()
    code = served.wait()
    log = served.stderr()
    served.close()
    return code, rest, log


def test_one_log_line_per_message_and_per_client_error() -> None:
    served = Served().start()
    try:
        send(served.smtp_host, served.smtp_port, subject="logged one", to=["log@x.org"])
        with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
            smtp.ehlo()
            assert smtp.docmd("FROBNICATE")[0] == 500
            assert smtp.docmd("RCPT TO:<early@x.org>")[0] == 503
        found = httpx.get(
            served.url + "/api/v1/wait", params={"query": "subject:logged", "timeout": 30}
        ).json()
        message_id = found["messages"][0]["ID"]
        assert httpx.get(served.url + "/api/v1/search", params={"query": "bogus:x"}).is_error
    finally:
        code, _rest, log = _stopped(served)
    assert code == 0
    lines = log.splitlines()
    received = [line for line in lines if " received " in line]
    assert received == [
        f"smtpmock: received {message_id} from <alice@example.com> to <log@x.org>, "
        f"{found['messages'][0]['Size']} bytes, subject 'logged one'"
    ]
    errors = [line for line in lines if "SMTP client" in line]
    assert len(errors) == 2, log
    assert "'FROBNICATE' -> 500" in errors[0]
    assert "'RCPT TO:<early@x.org>' -> 503" in errors[1]
    [http] = [line for line in lines if line.startswith("smtpmock: HTTP 400")]
    assert "GET /api/v1/search" in http
    assert "unknown search filter" in http
    assert "Traceback" not in log


def test_quiet_and_verbose() -> None:
    quiet = Served("--quiet").start()
    try:
        send(quiet.smtp_host, quiet.smtp_port, subject="hush")
        httpx.get(quiet.url + "/api/v1/wait", params={"timeout": 30}).raise_for_status()
        httpx.get(quiet.url + "/api/v1/search", params={"query": "bogus:x"})
    finally:
        code, rest, log = _stopped(quiet)
    assert code == 0
    assert log == ""
    assert rest == "smtpmock: stopped (SIGTERM)\n"

    verbose = Served("--verbose").start()
    try:
        send(verbose.smtp_host, verbose.smtp_port, subject="loud")
        httpx.get(verbose.url + "/api/v1/wait", params={"timeout": 30}).raise_for_status()
    finally:
        code, _rest, log = _stopped(verbose)
    assert code == 0
    assert " received " in log
    assert "SMTP session 127.0.0.1:" in log
    assert "ended: 5 command(s), 1 message(s)" in log  # EHLO MAIL RCPT DATA QUIT
    assert "smtpmock: HTTP 200 GET /api/v1/wait from 127.0.0.1" in log


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_with_an_event_stream_open_and_a_wait_pending(sig: signal.Signals) -> None:
    served = Served().start()
    got: dict[str, Any] = {}
    stream_open = threading.Event()
    wait_sent = threading.Event()

    def stream() -> None:
        with httpx.stream("GET", served.url + "/api/v1/events", timeout=30) as response:
            lines = response.iter_lines()
            got["first"] = next(lines)
            stream_open.set()
            got["rest"] = list(lines)  # returns when the server ends the stream

    def wait() -> None:
        with httpx.Client(timeout=60) as http:
            wait_sent.set()
            got["wait"] = http.get(served.url + "/api/v1/wait", params={"count": 3, "timeout": 60})

    threads = [threading.Thread(target=stream), threading.Thread(target=wait)]
    for thread in threads:
        thread.start()
    assert stream_open.wait(30)
    assert wait_sent.wait(30)
    # A message, then a second wait for it: by the time that one answers, the first wait (sent
    # earlier) is inside the server, and it has counted the message (its answer says 1 of 3).
    send(served.smtp_host, served.smtp_port, subject="during the wait")
    httpx.get(served.url + "/api/v1/wait", params={"timeout": 30}).raise_for_status()
    started = time.monotonic()
    code, rest, log = _stopped(served, sig)
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join(30)
    assert code == 0
    assert rest == f"smtpmock: stopped ({sig.name})\n"
    assert got["first"] == ": connected"
    answer = got["wait"]
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/json"
    body = json.loads(answer.text)
    assert body["Status"] == "shutdown"
    assert (body["Count"], body["Wanted"]) == (1, 3)
    assert body["status"] == 503
    assert "shutting down" in body["error"]
    assert "Traceback" not in log
    assert "graceful shutdown exceeded" not in log  # nothing had to be cancelled
    assert "CancelledError" not in log
    assert elapsed < 5, elapsed  # measured: 0.5-0.8 s on a loaded 2-core machine
    assert any(line == "event: added" for line in got["rest"])


def test_flags_are_generated_generically_for_new_options() -> None:
    """What the engine adds to ServerConfig gets a working flag without touching the CLI: a
    bool is a switch, an AUTH type that allows a word (say, accept any credentials) takes it."""
    import argparse
    from collections.abc import Callable, Mapping
    from typing import Literal

    from smtpmock._cli import _kind, in_cli_words

    switch = _kind(bool)
    assert switch.switch
    assert switch.parse("on") is True
    auth = _kind(Mapping[str, str] | Callable[[str, str, str], bool] | Literal["any"] | None)
    assert auth.accounts
    assert auth.optional
    assert auth.parse("any") == "any"
    assert auth.parse("a:1,b:2") == {"a": "1", "b": "2"}
    with pytest.raises(argparse.ArgumentTypeError, match="or one of any"):
        auth.parse("nocolon")
    assert _kind(int | None).parse("12") == 12
    assert _kind(Literal["lax", "strict"]).choices == ["lax", "strict"]
    assert in_cli_words("auth_accept_any=True needs tls", ["auth_accept_any"]) == (
        "--auth-accept-any needs tls"
    )


@pytest.mark.parametrize(
    ("raw", "subject"),
    [
        (b"From: a@x.org\r\nSubject: plain\r\n\r\nbody", "plain"),
        (b"Subject: =?utf-8?q?caf=C3=A9?=\r\n and more\r\n\r\nx", "café and more"),
        (b"Subject: =?utf-8?b?abcde?=\r\n\r\nx", "=?utf-8?b?abcde?="),  # malformed: as is
        (b"Subject: \xff bad\r\n\r\n", "\ufffd bad"),
        (b"X: y\r\n\r\nSubject: in the body", ""),
    ],
)
def test_the_log_reads_the_subject_without_parsing_the_message(raw: bytes, subject: str) -> None:
    from smtpmock._cli import _quick_subject

    assert _quick_subject(raw) == subject


def test_stop_leaves_no_file_behind() -> None:
    from pathlib import Path

    served = Served("--tls", "starttls").start()
    assert served.proc is not None
    assert served.proc.stdout is not None
    ca = Path(served.proc.stdout.readline().decode().rsplit(" ", 1)[1].strip())
    db = Path(served.ready_line.split("messages in ")[1].rstrip(")\n"))
    assert ca.exists()
    assert db.exists()
    code, rest, _log = _stopped(served, signal.SIGINT)
    assert (code, rest) == (0, "smtpmock: stopped (SIGINT)\n")
    assert not ca.parent.exists()  # the run-time TLS files (removed by an exit handler)
    assert not db.parent.exists()  # the temporary database


def test_log_reporter_writes_every_line_in_order_and_counts_a_flood(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SMTP loop only appends to the reporter's deque; its thread writes what gathered.
    import logging
    import types

    from smtpmock import Message, _cli
    from smtpmock.store import MemoryStore

    monkeypatch.setattr(_cli, "_LOG_PENDING", 50)
    logger = logging.getLogger("smtpmock.test-reporter")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    lines: list[str] = []
    written = threading.Event()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.wait(10)  # the first line waits, so that the flood below overflows
            lines.append(record.getMessage())

    handler = Collect()
    logger.addHandler(handler)
    store = MemoryStore()
    reporter = _cli._Reporter(logger, types.SimpleNamespace(store=store))
    try:
        raw = b"Subject: s\r\n\r\nbody\r\n"
        sent = [store.add(Message(raw, mail_from="a@x.org", rcpt_tos=["b@x.org"]))]
        deadline = time.monotonic() + 10
        while reporter.pending and time.monotonic() < deadline:
            time.sleep(0.01)  # until the thread has taken it (it then waits in the handler)
        sent += [
            store.add(Message(raw, mail_from="a@x.org", rcpt_tos=["b@x.org"])) for _ in range(80)
        ]
        written.set()
    finally:
        reporter.close()
        logger.removeHandler(handler)
    received = [line for line in lines if line.startswith("received ")]
    assert [line.split()[1] for line in received] == [m.id for m in sent[:51]]
    assert lines[-1] == "(30 log lines dropped: too many at once)"
    assert not reporter.thread.is_alive()
