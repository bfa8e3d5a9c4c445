"""The seed's API: ``MockSMTPServer(hostname, port)`` and its sample usage, unchanged.

The seed's own sample binds the fixed port 25025. Runs of it (in this process and in the
subprocesses, here and in any other test run on the machine) take a file lock first, so that
parallel runs wait for each other instead of failing with "port in use".
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import smtpmock
from smtpmock import MockSMTPServer
from tests.mail import send

# The sample usage from the seed's docstring, byte for byte (only the ---- fences dropped).
SEED_SAMPLE = """\
# create the server -- will start automatically
import smtpmock
mock_server = smtpmock.MockSMTPServer("localhost", 25025)
#send a test message
import smtplib
client = smtplib.SMTP("localhost", 25025)
fromaddr = "test.sender@mydomain.com"
toaddrs = ["test.recipient1@mydomain.com", "test.recipient2@mydomain.com"]
content = "test message content"
msg = "From: %s\\r\\nTo: %s\\r\\n\\r\\n%s" % (fromaddr, ", ".join(toaddrs), content)
client.sendmail(fromaddr, toaddrs, msg)
client.quit()
# verify that the message has been recieved
assert(mock_server.received_message_matching("From: .*\\\\nTo: .*\\\\n+.+tent"))
# reset the server to be ready for a new test
mock_server.reset()
assert(mock_server.received_messages_count() == 0)
"""

PYTHONS = ("3.10", "3.11", "3.12", "3.13")
VENVS = Path(os.environ.get("SMTPMOCK_VENVS", "/work/venvs"))


@contextmanager
def seed_port() -> Iterator[None]:
    """Hold the machine-wide lock for port 25025 while the block runs."""
    path = Path(tempfile.gettempdir()) / "smtpmock-test-port-25025.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def test_seed_sample_verbatim() -> None:
    with seed_port():
        # fmt: off
        # ---- the seed's sample, indented, otherwise unchanged
        # create the server -- will start automatically
        import smtpmock
        mock_server = smtpmock.MockSMTPServer("localhost", 25025)
        #send a test message
        import smtplib
        client = smtplib.SMTP("localhost", 25025)
        fromaddr = "test.sender@mydomain.com"
        toaddrs = ["test.recipient1@mydomain.com", "test.recipient2@mydomain.com"]
        content = "test message content"
        msg = "From: %s\r\nTo: %s\r\n\r\n%s" % (fromaddr, ", ".join(toaddrs), content)
        client.sendmail(fromaddr, toaddrs, msg)
        client.quit()
        # verify that the message has been recieved
        assert(mock_server.received_message_matching("From: .*\\nTo: .*\\n+.+tent"))
        # reset the server to be ready for a new test
        mock_server.reset()
        assert(mock_server.received_messages_count() == 0)
        # ---- end of the seed's sample
        # fmt: on
        mock_server.stop()
        assert not mock_server.running


def test_sample_text_matches_the_inline_copy() -> None:
    source = Path(__file__).read_text()
    inline = source.split("# ---- the seed's sample, indented, otherwise unchanged\n")[1]
    inline = inline.split("        # ---- end of the seed's sample")[0]
    dedented = "".join(line.removeprefix("        ") for line in inline.splitlines(True))
    assert dedented == SEED_SAMPLE


def test_port_zero_reports_the_port_and_stops() -> None:
    server = MockSMTPServer("localhost", 0)
    try:
        assert server.port > 0
        assert server.running
        assert server.daemon is True
        send(
            "127.0.0.1",
            server.port,
            sender="a@example.com",
            to=["b@example.com"],
            subject="hi",
            body="line one\r\nline two",
        )
        server.wait_for(1)
        [text] = server.received_messages
        # As smtpd delivered it: str, "\n" line ends, no newline after the last line.
        assert text == "From: a@example.com\nTo: b@example.com\nSubject: hi\n\nline one\nline two"
        assert server.received_messages_count() == 1
        assert server.received_message_matching(r"From: a@example\.com\n")
        assert server.received_message_matching(re.compile(r"(?s).*line two$"))
        assert not server.received_message_matching("Subject")  # re.match: anchored at start
        server.reset()
        assert server.received_messages == []
        assert server.received_messages_count() == 0
    finally:
        server.stop()
    server.stop()
    assert not server.running


def _python_for(version: str) -> Path | None:
    venv = VENVS / f"py{version.replace('.', '')}" / "bin" / "python"
    if venv.exists():
        return venv
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return Path(sys.executable)
    return None


@pytest.mark.parametrize("version", PYTHONS)
def test_seed_sample_on_each_python(version: str) -> None:
    python = _python_for(version)
    if python is None:
        pytest.skip(f"no Python {version} venv at {VENVS} with smtpmock installed")
    program = SEED_SAMPLE + (
        "mock_server.stop()\nimport sys\nprint(sys.version_info[:2], smtpmock.__file__)\n"
    )
    # The venv supplies the dependencies; PYTHONPATH makes it import this checkout's code
    # even when its editable install points at another copy of the repository.
    source = str(Path(smtpmock.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": source}
    with seed_port():
        done = subprocess.run(
            [str(python), "-W", "error", "-c", program],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
    assert done.returncode == 0, done.stderr
    major, minor = (int(x) for x in version.split("."))
    assert done.stdout.startswith(f"({major}, {minor})"), done.stdout
    # The venv must run this checkout's code, not some other installed copy.
    assert Path(done.stdout.split()[-1]).resolve() == Path(smtpmock.__file__).resolve(), done.stdout
