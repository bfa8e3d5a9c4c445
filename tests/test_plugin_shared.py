"""The pytest plugin against a shared ``smtpmock serve``: two pytest-xdist runs at once, each
worker in a mailbox of its own (``<prefix>-gwN``), each test asserting the exact contents of its
view, the runs holding tokens for their own mailboxes only; then the server is checked from
outside: every message in the mailbox of the worker that sent it, nothing in ``default``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smtpmock import Client
from tests.served import Served

pytest.importorskip("xdist")

N = 4
APP_TESTS = """
import os
import smtplib

import pytest


def _send(text):
    box = os.environ["SMTPMOCK_MAILBOX"]  # published by the plugin for the application
    by_header = os.environ["ROUTE_BY"] == "header"
    headers = f"X-Smtpmock-Mailbox: {box}\\r\\n" if by_header else ""
    rcpt = "app@example.com" if by_header else f"app+{box}@example.com"
    host, port = os.environ["SMTPMOCK_HOST"], int(os.environ["SMTPMOCK_PORT"])
    with smtplib.SMTP(host, port, timeout=30) as client:
        message = f"{headers}Subject: {box} {text}\\r\\n\\r\\nhi\\r\\n"
        client.sendmail("app@example.com", [rcpt], message)


@pytest.mark.parametrize("n", range(N_TESTS))
def test_mail_of_this_test_only(smtpmock, n):
    _send(str(n))
    [message] = smtpmock.wait_for(1, timeout=30)
    assert message.subject == f"{os.environ['SMTPMOCK_MAILBOX']} {n}"
    assert [m.subject for m in smtpmock.messages] == [message.subject]
    assert message.mailbox == os.environ["SMTPMOCK_MAILBOX"]
""".replace("N_TESTS", str(N))


def _env(url: str, prefix: str, token: str, route_by: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMTPMOCK_", "PYTEST_XDIST", "PYTEST_CURRENT"))
    }
    env.update(
        SMTPMOCK_URL=url,
        SMTPMOCK_MAILBOX_PREFIX=prefix,
        SMTPMOCK_TOKEN=token,
        ROUTE_BY=route_by,
    )
    return env


def _pytest(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run pytest with *args* in *cwd*: its exit status and its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider"],
        cwd=cwd,
        check=False,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
    )
    return proc.returncode, proc.stdout.decode()


def test_two_parallel_xdist_runs_on_one_shared_server(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(APP_TESTS)
    with Served(
        "--mailbox-rule",
        "header:X-Smtpmock-Mailbox",
        "--mailbox-rule",
        "plus-tag",
        "--mailbox-token",
        "run-a*=token-a",
        "--mailbox-token",
        "run-b*=token-b",
        "--admin-token",
        "admin",
    ) as served:
        runs = {
            prefix: subprocess.Popen(
                [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"],
                cwd=tmp_path,
                env=_env(served.url, prefix, token, route_by),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for prefix, token, route_by in (
                ("run-a", "token-a", "header"),
                ("run-b", "token-b", "tag"),
            )
        }
        outputs = {
            prefix: proc.communicate(timeout=300)[0].decode() for prefix, proc in runs.items()
        }
        for prefix, proc in runs.items():
            assert proc.returncode == 0, outputs[prefix]
            assert f"{N} passed" in outputs[prefix], outputs[prefix]
        with Client(served.url, token="admin") as admin:
            boxes = admin.mailboxes()
            assert "default" not in boxes  # nothing misrouted
            for prefix in ("run-a", "run-b"):
                mine = {name: n for name, n in boxes.items() if name.startswith(prefix)}
                assert sum(mine.values()) == N
                assert all(name.startswith(f"{prefix}-gw") for name in mine)
                subjects: set[str] = set()
                for name in mine:
                    with Client(served.url, mailbox=name, token="admin") as box:
                        got = [m.subject for m in box.messages]
                    assert all(s.startswith(f"{name} ") for s in got), got
                    subjects |= {s.split(" ", 1)[1] for s in got}
                assert subjects == {str(n) for n in range(N)}
        # a run's token opens nothing of the other run
        with Client(served.url, mailbox=next(iter(boxes)), token="token-b") as other:
            if next(iter(boxes)).startswith("run-a"):
                with pytest.raises(Exception, match="404"):
                    _ = other.messages


NO_FIXTURE = """
import os
import sys
import threading


def test_nothing_of_smtpmock_runs():
    assert "smtpmock.pytest_plugin" in sys.modules
    assert [t.name for t in threading.enumerate()] == [threading.main_thread().name]
    # only what the user set: no session id, no SMTPMOCK_HOST/PORT/MAILBOX published
    assert sorted(k for k in os.environ if k.startswith("SMTPMOCK")) == ["SMTPMOCK_URL"]
    assert [m for m in ("smtpmock._client", "smtpmock._shared") if m in sys.modules] == []
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_shared_mode_run_that_uses_no_fixture_sets_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "test_unrelated.py").write_text(NO_FIXTURE)
    env = _env("http://127.0.0.1:9", "", "", "header")  # nothing listens there: never asked
    for name in ("SMTPMOCK_MAILBOX_PREFIX", "SMTPMOCK_TOKEN", "ROUTE_BY"):
        env.pop(name)
    code, output = _pytest(tmp_path, env, *args)
    assert code == 0, output
    assert "1 passed" in output, output


def test_without_a_prefix_the_workers_of_one_run_share_its_session_id(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text(APP_TESTS)
    with Served("--mailbox-rule", "header:X-Smtpmock-Mailbox") as served:
        env = _env(served.url, "", "", "header")
        for name in ("SMTPMOCK_MAILBOX_PREFIX", "SMTPMOCK_TOKEN"):
            env.pop(name)
        code, output = _pytest(tmp_path, env, "-n", "2")
        assert code == 0, output
        with Client(served.url) as admin:
            boxes = admin.mailboxes()
    assert "default" not in boxes
    assert sum(boxes.values()) == N
    sessions = {name.rsplit("-", 1)[0] for name in boxes}
    workers = {name.rsplit("-", 1)[1] for name in boxes}
    assert len(sessions) == 1, boxes  # one id, made by the controller, for every worker
    assert workers <= {"gw0", "gw1"}, boxes
