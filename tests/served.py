"""Run ``smtpmock serve`` as a subprocess on free ports, for the server-mode tests."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from types import TracebackType

_READY = re.compile(r"SMTP on (\S+):(\d+), HTTP on (http://\S+)")


class Served:
    """One ``smtpmock serve`` process; ``.smtp_host``, ``.smtp_port`` and ``.url`` once ready."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args: Sequence[str] = args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__ or start()
        self.smtp_host = ""
        self.smtp_port = 0
        self.url = ""
        self.ready_line = ""

    def start(self, timeout: float = 30.0) -> Served:
        command = [
            sys.executable,
            "-m",
            "smtpmock",
            "serve",
            "--smtp-port",
            "0",
            "--http-port",
            "0",
            *self.args,
        ]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(self.env or {})},
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.kill()
                error = self.stderr()
                self._stderr.close()
                raise AssertionError(f"smtpmock serve not ready in {timeout}s: {error}")
        line = self.proc.stdout.readline().decode()
        match = _READY.search(line)
        if not match:
            self.wait()
            error = self.stderr()
            self._stderr.close()
            raise AssertionError(f"unexpected start-up output {line!r}: {error}")
        self.ready_line = line
        self.smtp_host, self.smtp_port, self.url = match[1], int(match[2]), match[3]
        return self

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send *sig* and wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the process if it still runs, and release its files."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        self._stderr.close()
