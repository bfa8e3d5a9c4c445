"""The pytest plugin, tested by running whole pytest sessions (``pytester``) over real sockets.

In-process runs (``runpytest``) are used where the plugin's behaviour is the subject; the
"outside project" and xdist runs go through a subprocess, the way a user's ``pytest`` runs.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import socket
from pathlib import Path

import pytest

from smtpmock import SMTPMock
from smtpmock._unittest import SharedServer

from .mail import send

pytest.importorskip("xdist")

ROOT = Path(__file__).resolve().parent.parent

SEND = """
import smtplib

def send(box, subject="Hello", to="bob@example.com", sender="alice@example.com"):
    with smtplib.SMTP(box.host, box.port, timeout=10) as client:
        text = f"From: {sender}\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n\\r\\nHi\\r\\n"
        client.sendmail(sender, [to], text)
"""


def _free_port_pair() -> int:
    """A port P such that P and P+1 were free a moment ago (for the fixed-port tests)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no free pair of ports")


# --------------------------------------------------------------------- the fixture


def test_clean_mailbox_in_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_sends(smtpmock):
    send(smtpmock, "first")
    [message] = smtpmock.wait_for(1)
    assert message.subject == "first"

def test_sees_nothing_of_the_previous_test(smtpmock):
    assert smtpmock.messages == []
    send(smtpmock, "second")
    assert [m.subject for m in smtpmock.wait_for(1)] == ["second"]

def test_whole_api(smtpmock, smtpmock_server):
    assert (smtpmock.host, smtpmock.port) == (smtpmock_server.host, smtpmock_server.port)
    send(smtpmock, "a", to="x@example.com")
    send(smtpmock, "b", to="y@example.com")
    smtpmock.wait_for(2)
    assert [m.subject for m in smtpmock.filter(to="y@example.com")] == ["b"]
    smtpmock.assert_sent(subject="a")
    smtpmock.assert_not_sent(subject="c")
    with smtpmock.capture() as box:
        send(smtpmock, "c")
        box.wait_for(1)
    assert [m.subject for m in box] == ["c"]
    smtpmock.reset()
    assert smtpmock.messages == []
    send(smtpmock, "d")
    assert [m.subject for m in smtpmock.wait_for(1)] == ["d"]

def test_store_is_emptied_between_tests(smtpmock_server, smtpmock):
    # Nothing from earlier tests is kept: the session server's memory stays bounded.
    assert len(smtpmock_server.store) == 0
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_faults_on_the_session_server_are_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import smtplib

import pytest

def test_sets_a_fault(smtpmock):
    smtpmock.faults.reject_recipients("*@blocked.example")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        send(smtpmock, "refused", to="x@blocked.example")
    assert info.value.recipients["x@blocked.example"][0] == 550
    assert len(smtpmock.faults.log) == 1

def test_next_test_has_no_fault_and_no_log(smtpmock):
    assert smtpmock.faults.rules == []
    assert smtpmock.faults.log == []
    send(smtpmock, "accepted", to="x@blocked.example")
    [message] = smtpmock.wait_for(1)
    assert message.subject == "accepted"
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_server_is_started_once_per_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

PORTS = set()

@pytest.mark.parametrize("n", range(20))
def test_port(smtpmock, n):
    PORTS.add(smtpmock.port)

def test_one_port():
    assert len(PORTS) == 1
"""
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=21)


def test_failure_report_lists_the_mail_of_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_quiet(smtpmock):
    send(smtpmock, "not this one")
    smtpmock.wait_for(1)

def test_fails(smtpmock):
    send(smtpmock, "Your invoice", to="carol@example.com", sender="billing@example.com")
    smtpmock.wait_for(1)
    assert False, "boom"
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- Captured mail call -*",
            "smtpmock on 127.0.0.1:*: 1 message was received:",
            "*from <billing@example.com> to carol@example.com subject 'Your invoice'",
        ]
    )
    assert "not this one" not in result.stdout.str()


def test_failure_report_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
def test_fails(smtpmock):
    send(smtpmock, "Reset your password")
    smtpmock.wait_for(1)
    assert False
"""
    )
    result = pytester.runpytest_subprocess("-n", "1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Captured mail call*", "*subject 'Reset your password'"])


def test_wait_timeout_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsmtpmock_timeout = 0.05\n")
    pytester.makepyfile(
        """
from smtpmock import WaitTimeout

def test_times_out(smtpmock):
    try:
        smtpmock.wait_for(1)
    except WaitTimeout as exc:
        assert "timed out after 0.05s" in str(exc)
    else:
        raise AssertionError("no timeout")
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_bad_ini_values_are_usage_errors(pytester: pytest.Pytester, value: str) -> None:
    pytester.makeini(f"[pytest]\nsmtpmock_timeout = {value}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*smtpmock_timeout must be*"])


# --------------------------------------------------------------------- marker and factory


def test_marker_gives_the_test_its_own_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import smtplib
import pytest

@pytest.mark.smtpmock(hostname="mx.marker.test", max_message_size=1000)
def test_own(smtpmock, smtpmock_server):
    assert smtpmock.port != smtpmock_server.port
    with smtplib.SMTP(smtpmock.host, smtpmock.port) as client:
        code, reply = client.ehlo()
    assert b"mx.marker.test" in reply
    with pytest.raises(smtplib.SMTPException):
        with smtplib.SMTP(smtpmock.host, smtpmock.port) as client:
            client.sendmail("a@example.com", ["b@example.com"], "x" * 5000)
    send(smtpmock, "small")
    assert [m.subject for m in smtpmock.wait_for(1)] == ["small"]
    assert smtpmock_server.messages == []

@pytest.mark.smtpmock(no_such_option=1)
def test_unknown_option(smtpmock):
    pass
"""
    )
    result = pytester.runpytest("--strict-markers")  # the marker is registered
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ConfigurationError: unknown option(s) no_such_option*"])


def test_factory_servers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import smtplib

SERVERS = []

def test_two_servers(smtpmock_factory):
    a = smtpmock_factory(hostname="a.test")
    b = smtpmock_factory(hostname="b.test", default_timeout=1.5)
    SERVERS.extend([a, b])
    assert a.port != b.port
    assert b.default_timeout == 1.5
    with smtplib.SMTP(a.host, a.port) as client:
        assert b"a.test" in client.ehlo()[1]
    send(a, "to a")
    send(b, "to b")
    assert [m.subject for m in a.wait_for(1)] == ["to a"]
    assert [m.subject for m in b.wait_for(1)] == ["to b"]

def test_stopped_after_the_test():
    assert SERVERS and not any(s.running for s in SERVERS)

def test_factory_mail_in_failure_report(smtpmock_factory):
    c = smtpmock_factory()
    send(c, "from the factory")
    c.wait_for(1)
    assert False
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*Captured mail call*", "*subject 'from the factory'"])


# --------------------------------------------------------------------- fixed address


@pytest.mark.parametrize("how", ["ini", "flag"])
def test_address_is_published_before_conftest_import(pytester: pytest.Pytester, how: str) -> None:
    # An application configured at import time reads the address in its settings module, once
    # it asked for the server to start early.
    args: list[str] = []
    if how == "ini":
        pytester.makeini("[pytest]\nsmtpmock_start = early\n")
    else:
        args = ["--smtpmock-start=early"]
    pytester.makeconftest(
        """
import os
EARLY = (os.environ["SMTPMOCK_HOST"], int(os.environ["SMTPMOCK_PORT"]))
"""
    )
    pytester.makepyfile(
        """
from conftest import EARLY

def test_same(smtpmock):
    assert EARLY == (smtpmock.host, smtpmock.port)
"""
    )
    pytester.runpytest(*args).assert_outcomes(passed=1)


NO_COST = """
import os
import socket
import sys
import threading
from pathlib import Path

import pytest


def _sockets():
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return None
    found = []
    for fd in fds.iterdir():
        try:
            if os.readlink(fd).startswith("socket:"):
                found.append(fd.name)
        except OSError:
            pass
    return found


def test_nothing_of_smtpmock_runs():
    assert "smtpmock.pytest_plugin" in sys.modules  # the plugin is loaded ...
    # ... and costs nothing: no server thread, no socket, no variable.
    assert [t.name for t in threading.enumerate()] == [threading.main_thread().name]
    assert sorted(k for k in os.environ if k.startswith("SMTPMOCK")) == []
    assert _sockets() in (None, [])
    # nor even the server's modules
    assert [m for m in ("smtpmock._server", "aiosmtpd") if m in sys.modules] == []


def test_nothing_at_the_second_test_either():
    test_nothing_of_smtpmock_runs()
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_run_that_uses_no_fixture_starts_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    # None of smtpmock's variables in the environment it starts from (CI sets some of its own,
    # such as SMTPMOCK_REQUIRE_POSTGRES): any the run shows, the plugin set.
    for name in [k for k in os.environ if k.startswith("SMTPMOCK")]:
        monkeypatch.delenv(name)
    pytester.makepyfile(test_unrelated=NO_COST)  # xdist workers talk over pipes, not sockets
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_first_use_starts_and_publishes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        SEND
        + """
import os
import threading


def test_before():
    assert "SMTPMOCK_PORT" not in os.environ
    assert not any(t.name.startswith("smtpmock") for t in threading.enumerate())


def test_uses(smtpmock):
    assert os.environ["SMTPMOCK_PORT"] == str(smtpmock.port)
    send(smtpmock)
    smtpmock.wait_for(1)


def test_after(smtpmock_server):
    assert smtpmock_server.running
    assert os.environ["SMTPMOCK_PORT"] == str(smtpmock_server.port)
"""
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


def test_bad_start_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsmtpmock_start = sometimes\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*smtpmock_start must be one of first-use, early*"])


FAILING = """
import smtplib


def test_waits_for_mail_that_never_comes(smtpmock):
    with smtplib.SMTP(smtpmock.host, smtpmock.port) as client:
        client.sendmail("a@example.com", ["carol@example.com"], "Subject: Other\\r\\n\\r\\nx")
    smtpmock.wait_for(1, to="bob@example.com", timeout=0.05)  # LINE-WAIT


def test_asserts_a_mail_that_was_not_sent(smtpmock):
    smtpmock.assert_sent(subject="Welcome")  # LINE-SENT


def test_asserts_no_mail_but_there_is(smtpmock):
    with smtplib.SMTP(smtpmock.host, smtpmock.port) as client:
        client.sendmail("a@example.com", ["bob@example.com"], "Subject: Hi\\r\\n\\r\\nx")
    smtpmock.wait_for(1)
    smtpmock.assert_not_sent(to="bob@example.com")  # LINE-NOT-SENT


def test_catches_it_by_the_fixture(smtpmock):
    import pytest

    with pytest.raises(smtpmock.WaitTimeout):
        smtpmock.wait_for(1, timeout=0.01)
"""


@pytest.mark.parametrize("style", ["long", "short", "auto"])
def test_failures_show_the_test_line_not_smtpmock_frames(
    pytester: pytest.Pytester, style: str
) -> None:
    pytester.makepyfile(test_failing=FAILING)
    result = pytester.runpytest_subprocess(f"--tb={style}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=3, passed=1)
    out = result.stdout.str()
    for mark in ("LINE-WAIT", "LINE-SENT", "LINE-NOT-SENT"):
        assert mark in out
    assert "smtpmock.WaitTimeout: timed out after 0.05s" in out
    assert "smtpmock.MessageNotSent: expected a message matching subject='Welcome'" in out
    assert "smtpmock.UnexpectedMessage: expected no message matching to='bob@example.com'" in out
    assert "_errors" not in out
    source = Path(smtpmock_source()).parent
    frames = [line for line in out.splitlines() if str(source) in line]
    assert frames == []
    for name in ("_inspect.py", "_client.py", "_query.py", "wait_for(self", "def assert_sent"):
        assert name not in out


def smtpmock_source() -> str:
    import smtpmock

    return str(smtpmock.__file__)


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_fixed_port(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    port = _free_port_pair()
    args: list[str] = []
    if how == "flag":
        args = [f"--smtpmock-port={port}"]
    elif how == "env":
        monkeypatch.setenv("SMTPMOCK_PORT", str(port))
        monkeypatch.delenv("SMTPMOCK_PUBLISHED", raising=False)
    else:
        pytester.makeini(f"[pytest]\nsmtpmock_port = {port}\nsmtpmock_host = 127.0.0.1\n")
    pytester.makepyfile(
        SEND
        + f"""
import os

def test_fixed(smtpmock):
    assert smtpmock.port == {port}
    assert os.environ["SMTPMOCK_PORT"] == "{port}"
    send(smtpmock)
    smtpmock.wait_for(1)
"""
    )
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_fixed_port_taken_is_a_clear_error(pytester: pytest.Pytester) -> None:
    with SMTPMock() as taken:
        port = taken.port
        pytester.makepyfile("def test_x(smtpmock): pass")
        result = pytester.runpytest_subprocess(f"--smtpmock-port={port}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: smtpmock: cannot listen on *port {port} is already in use*"]
    )


def test_fixed_port_under_xdist_is_offset_per_worker(pytester: pytest.Pytester) -> None:
    port = _free_port_pair()
    pytester.makepyfile(
        """
import os
import pytest

@pytest.mark.parametrize("n", range(6))
def test_port(smtpmock, n):
    worker = int(os.environ["PYTEST_XDIST_WORKER"][2:])
    assert smtpmock.port == PORT + worker
""".replace("PORT", str(port))
    )
    result = pytester.runpytest_subprocess("-n", "2", f"--smtpmock-port={port}")
    result.assert_outcomes(passed=6)


# --------------------------------------------------------------------- xdist


def test_every_xdist_worker_has_its_own_server(pytester: pytest.Pytester, tmp_path: Path) -> None:
    out = tmp_path / "ports"
    out.mkdir()
    pytester.makepyfile(
        SEND
        + f"""
import json, os
import pytest

@pytest.mark.parametrize("n", range(16))
def test_record(smtpmock, n):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    send(smtpmock, f"{{worker}}-{{n}}")
    # Only this test's message, although four servers take mail at the same time.
    assert [m.subject for m in smtpmock.wait_for(1)] == [f"{{worker}}-{{n}}"]
    path = os.path.join({str(out)!r}, f"{{worker}}-{{n}}.json")
    with open(path, "w") as f:
        json.dump([worker, smtpmock.port, os.environ["SMTPMOCK_PORT"]], f)
"""
    )
    result = pytester.runpytest_subprocess("-n", "4")
    result.assert_outcomes(passed=16)
    records = [json.loads(p.read_text()) for p in out.iterdir()]
    ports_by_worker: dict[str, set[int]] = {}
    for worker, port, published in records:
        assert str(port) == published
        ports_by_worker.setdefault(worker, set()).add(port)
    assert len(ports_by_worker) == 4
    assert all(len(ports) == 1 for ports in ports_by_worker.values())
    all_ports = set().union(*ports_by_worker.values())
    assert len(all_ports) == 4


# --------------------------------------------------------------------- late mail

LATE = (
    SEND
    + """
import smtplib
import threading

started, release, done = threading.Event(), threading.Event(), threading.Event()

def slow_worker(host, port):
    # Begins its transaction now, finishes it when released: a background job that ends late.
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo()
        client.mail("late@example.com")
        client.rcpt("bob@example.com")
        started.set()
        release.wait(10)
        client.data(b"Subject: late\\r\\n\\r\\nlate\\r\\n")
    done.set()

def test_leaves_a_worker_behind(smtpmock):
    threading.Thread(target=slow_worker, args=(smtpmock.host, smtpmock.port)).start()
    assert started.wait(10)

def test_next(smtpmock, smtpmock_server):
    release.set()
    assert done.wait(10)  # the late message was answered 250 during this test...
    assert [m.subject for m in smtpmock_server.messages] == ["late"]  # ...and stored,
    assert smtpmock.messages == []  # but it is not this test's mail
    send(smtpmock, "mine")
    assert [m.subject for m in smtpmock.wait_for(1)] == ["mine"]
"""
)


def test_late_mail_is_kept_out_of_the_next_test_and_warned(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LATE)
    # In a subprocess: in-process, this suite's filterwarnings=error would apply to the run.
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=2)
    out = result.stdout.str()
    assert "LateMailWarning: 1 mail transaction(s) begun during" in out
    assert "mail arrived after test_late_mail_is_kept_out_of_the_next_test_and_warned.py::" in out
    assert "test_leaves_a_worker_behind had ended (kept out of later tests)" in out


def test_late_mail_strict_mode_fails_the_test_that_leaked(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsmtpmock_late_mail = fail\n")
    pytester.makepyfile(LATE)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_worker_behind*",
            "*LateMail: 1 mail transaction*",
            "*from <late@example.com> to bob@example.com (SMTP session *, unfinished)",
        ]
    )


def test_late_mail_ignored(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsmtpmock_late_mail = ignore\n")
    pytester.makepyfile(LATE)
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2, warnings=0)


def test_mail_sent_between_tests_belongs_to_the_test_before(pytester: pytest.Pytester) -> None:
    # A worker that sends after its test has fully ended and before the next one starts.
    pytester.makeconftest(
        SEND
        + """
import threading

PENDING = []

def pytest_runtest_logreport(report):
    if report.when == "teardown" and report.nodeid.endswith("test_starts_worker"):
        for thread in PENDING:
            thread.start()
            thread.join(10)
"""
    )
    pytester.makepyfile(
        """
import threading
from conftest import PENDING, send

def test_starts_worker(smtpmock):
    PENDING.append(threading.Thread(target=send, args=(smtpmock, "between")))

def test_next(smtpmock, smtpmock_server):
    assert not PENDING[0].is_alive()
    assert smtpmock.messages == []
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, warnings=1)
    assert "test_starts_worker had ended (kept out of later tests)" in result.stdout.str()


def test_shared_server_attributes_mail_by_transaction_start() -> None:
    with SMTPMock() as server:
        shared = SharedServer(server)
        a = shared.begin("a")
        with smtplib.SMTP(server.host, server.port, timeout=10) as client:
            client.ehlo()
            client.mail("slow@example.com")
            client.rcpt("bob@example.com")
            assert shared.end(a)  # the transaction is still open
            b = shared.begin("b")
            box_b = shared.mailbox(b)
            with box_b.capture() as captured:
                client.data(b"Subject: slow\r\n\r\nx\r\n")  # a's, arriving during b
                send(server.host, server.port, subject="b's own")
                assert [m.subject for m in captured.wait_for(1)] == ["b's own"]
        assert [m.subject for m in captured] == ["b's own"]
        assert [m.subject for m in box_b.messages] == ["b's own"]
        assert [m.subject for m in server.messages] == ["slow", "b's own"]
        assert shared.take_late() == [("a", server.messages[0].summary())]
        assert shared.end(b) == []
        shared.begin("c")
        assert len(server.store) == 0


# --------------------------------------------------------------------- outside project

OUTSIDE = """
import smtplib
import pytest

def send(box, subject):
    with smtplib.SMTP(box.host, box.port, timeout=10) as client:
        client.sendmail("app@example.com", ["user@example.com"],
                        f"Subject: {subject}\\r\\n\\r\\nHello\\r\\n")

@pytest.mark.parametrize("n", range(4))
def test_sends_mail(smtpmock, n):
    send(smtpmock, f"mail {n}")
    [message] = smtpmock.wait_for(1, to="user@example.com")
    assert message.subject == f"mail {n}"

@pytest.mark.parametrize("n", range(4))
def test_clean_mailbox_after_a_test_that_sent_mail(smtpmock, n):
    assert smtpmock.messages == []
    smtpmock.assert_not_sent()
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_outside_project(pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    # One test file, no conftest, no flags: only the installed plugin. Serially the order is
    # send, check, send, check...; under xdist the workers interleave them.
    pytester.makepyfile(test_outside=OUTSIDE)
    assert not (pytester.path / "conftest.py").exists()
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    assert re.search(r"8 passed", result.stdout.str())


# --------------------------------------------------------------------- docs recipes


def _recipe_files(heading: str, doc: str = "pytest.md") -> dict[str, str]:
    """The ```python blocks under *heading* in docs/*doc* whose first line names a file."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    files = {}
    for code in re.findall(r"^```(?:python|ini)\n(.*?)^```", section, re.MULTILINE | re.DOTALL):
        first, _, rest = code.partition("\n")
        name = re.fullmatch(r"# (\S+\.(?:py|ini))", first.strip())
        if name:
            files[name.group(1)] = rest
    assert files, f"no file blocks under {heading!r}"
    return files


@pytest.mark.parametrize(
    ("heading", "module", "tests"),
    [
        ("Quick start", None, 2),
        ("Django", "django", 2),
        ("Flask", "flask", 2),
        ("Servers with their own options", None, 2),
        ("Faults in one test", None, 1),
        ("unittest", None, 2),
        ("When a check fails", None, 1),
        ("tls-auth.md: In pytest", None, 2),
    ],
)
def test_docs_recipe_runs(
    pytester: pytest.Pytester, heading: str, module: str | None, tests: int
) -> None:
    if module is not None:
        pytest.importorskip(module)
    doc, _, heading = heading.rpartition(": ")
    for name, code in _recipe_files(heading, doc or "pytest.md").items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)
