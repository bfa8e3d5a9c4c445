"""``SMTPMockTestCase`` / ``SMTPMockMixin``: ``self.smtpmock`` with the fixture's semantics.

The TestCase classes are defined inside the tests (so pytest does not collect them) and run with
unittest's own machinery; one test runs ``python -m unittest`` in a fresh process, outside pytest.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
import textwrap
import threading
import unittest
from pathlib import Path
from typing import Any, ClassVar

import pytest

from smtpmock import (
    LateMail,
    LateMailWarning,
    ScopedMailbox,
    SMTPMock,
    SMTPMockMixin,
    SMTPMockTestCase,
)
from smtpmock._unittest import _shared_for_unittest

from .mail import send


def _run(*cases: type[unittest.TestCase]) -> unittest.TestResult:
    loader = unittest.TestLoader()
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(case) for case in cases)
    result = unittest.TestResult()
    suite.run(result)
    return result


def _problems(result: unittest.TestResult) -> list[str]:
    return [text for _, text in result.errors + result.failures]


def test_clean_mailbox_in_every_test(smtpmock_server: SMTPMock) -> None:
    seen: list[ScopedMailbox] = []

    class Mail(SMTPMockTestCase):
        def test_1_sends(self) -> None:
            seen.append(self.smtpmock)
            send(self.smtpmock.host, self.smtpmock.port, subject="one")
            [message] = self.smtpmock.wait_for(1)
            assert message.subject == "one"

        def test_2_sees_nothing_of_test_1(self) -> None:
            seen.append(self.smtpmock)
            assert self.smtpmock.messages == []
            self.smtpmock.assert_not_sent()

    result = _run(Mail)
    assert result.testsRun == 2
    assert _problems(result) == []
    # Under pytest the mixin shares the plugin's session server (the published address).
    assert all(box.server is smtpmock_server for box in seen)


def test_mixin_with_another_base_and_options() -> None:
    servers: list[SMTPMock] = []

    class Base(unittest.TestCase):
        def setUp(self) -> None:
            super().setUp()
            self.base_ran = True

    class OwnServer(SMTPMockMixin, Base):
        smtpmock_options: ClassVar[dict[str, Any] | None] = {"hostname": "mx.unit.test"}
        smtpmock_timeout = 0.05

        def test_own(self) -> None:
            assert self.base_ran
            servers.append(self.smtpmock.server)
            with smtplib.SMTP(self.smtpmock.host, self.smtpmock.port, timeout=10) as client:
                assert b"mx.unit.test" in client.ehlo()[1]
            with pytest.raises(AssertionError, match=r"timed out after 0\.05s"):
                self.smtpmock.wait_for(1)

    result = _run(OwnServer)
    assert _problems(result) == []
    assert result.testsRun == 1
    assert servers
    assert not servers[0].running  # stopped by the test's cleanup


class _OpenTransaction:
    """A client that begins a mail transaction and finishes it only when released."""

    def __init__(self, host: str, port: int) -> None:
        self.started, self.release, self.done = (threading.Event() for _ in range(3))
        self.thread = threading.Thread(target=self._run, args=(host, port))

    def _run(self, host: str, port: int) -> None:
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo()
            client.mail("late@example.com")
            client.rcpt("bob@example.com")
            self.started.set()
            self.release.wait(10)
            client.data(b"Subject: late\r\n\r\nlate\r\n")
        self.done.set()

    def start(self) -> None:
        self.thread.start()
        assert self.started.wait(10)

    def finish(self) -> None:
        self.release.set()
        self.thread.join(10)
        assert self.done.is_set()


@pytest.mark.parametrize("policy", ["fail", "warn", "ignore"])
def test_late_mail(policy: str, smtpmock_server: SMTPMock) -> None:
    workers: list[_OpenTransaction] = []
    boxes: list[ScopedMailbox] = []

    class Late(SMTPMockTestCase):
        smtpmock_late_mail = policy  # type: ignore[assignment]

        def test_1_leaves_a_worker_behind(self) -> None:
            worker = _OpenTransaction(self.smtpmock.host, self.smtpmock.port)
            workers.append(worker)
            worker.start()

    class Next(SMTPMockTestCase):
        def test_next(self) -> None:
            workers[0].finish()  # the late message is stored during this test...
            boxes.append(self.smtpmock)

    if policy == "warn":
        with pytest.warns(LateMailWarning, match="1 mail transaction"):
            first = _run(Late)
    else:
        first = _run(Late)
    second = _run(Next)
    assert _problems(second) == []
    assert [m.subject for m in smtpmock_server.messages] == ["late"]
    assert boxes[0].messages == []  # ...but it is not that test's mail
    late = _shared_for_unittest().take_late()  # what the plugin lists in the warnings summary
    if policy == "ignore":
        assert late == []
    else:
        assert [(name.rsplit(".", 1)[-1], summary) for name, summary in late] == [
            ("test_1_leaves_a_worker_behind", smtpmock_server.messages[0].summary())
        ]
    problems = _problems(first)
    if policy == "fail":
        assert len(problems) == 1
        assert LateMail.__name__ in problems[0]
    else:
        assert problems == []


def test_outside_pytest(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent(
            """
            import smtplib
            import unittest

            from smtpmock import SMTPMockTestCase

            class Plain(SMTPMockTestCase):
                def test_1_send(self):
                    with smtplib.SMTP(self.smtpmock.host, self.smtpmock.port) as client:
                        text = "Subject: s\\r\\n\\r\\nx"
                        client.sendmail("a@example.com", ["b@example.com"], text)
                    self.assertEqual(self.smtpmock.wait_for(1)[0].subject, "s")

                def test_2_clean(self):
                    self.assertEqual(self.smtpmock.messages, [])
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "test_plain"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Ran 2 tests" in proc.stderr
