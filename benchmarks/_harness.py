"""Shared plumbing for the benchmark scripts: server subprocesses, free ports, the table.

Every server a benchmark talks to runs in its own process (started in its own session so that
it and anything it spawns can be ended together), listens on 127.0.0.1 only, and is stopped
with SIGTERM, then SIGKILL after a grace period. A server script announces itself by printing
``PORT <n>`` (or, for ``smtpmock serve``, its bound addresses) and answers ``count`` on stdin
with ``COUNT <n>``: the number of messages it stored.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"  # scratch space, ignored by git
HOST = "127.0.0.1"
VENV_PYTHON = sys.executable
# A Python that still has the stdlib ``smtpd`` module (removed in 3.12).
SMTPD_PYTHONS = (
    "/root/.pyenv/versions/3.11.7/bin/python3",
    "/root/.pyenv/versions/3.10.13/bin/python3",
    "/usr/bin/python3.11",
    "/usr/bin/python3.10",
)
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"


class BenchError(RuntimeError):
    """A benchmark could not run (a server that did not start, a client that failed)."""


def free_port() -> int:
    """A port that was free a moment ago (for servers that cannot bind port 0 themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, timeout: float, proc: subprocess.Popen[str] | None = None) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:*port*.

    Only for servers that cannot announce readiness (``smtp-sink``); it retries a connect.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as sock:
                sock.recv(512)  # the greeting: the server is really serving
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"nothing listening on {HOST}:{port} after {timeout}s") from None
            time.sleep(0.02)


def which_smtpd_python() -> str | None:
    """A Python interpreter that still ships ``smtpd``, or ``None``."""
    for candidate in SMTPD_PYTHONS:
        if not os.path.exists(candidate):
            continue
        probe = subprocess.run(
            [candidate, "-W", "ignore::DeprecationWarning", "-c", "import smtpd"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return None


def process_tree(pid: int) -> list[int]:
    """*pid* and its live descendants (Linux ``/proc``)."""
    found, todo = [], [pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in children.read_text().split()]
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_ticks(stat: Path) -> int:
    """User + system CPU time in a ``/proc/.../stat`` file (a process or one of its threads),
    in :data:`CLOCK_TICKS` per second; raises ``OSError`` if it has ended."""
    fields = stat.read_text().rsplit(")", 1)[1].split()  # the name may hold spaces
    return int(fields[11]) + int(fields[12])


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time *pid* and its live descendants have used so far."""
    total = 0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_ticks(Path(f"/proc/{each}/stat"))
    return total / CLOCK_TICKS


_SERVER_NUMBERS = itertools.count(1)


class ServerProcess:
    """A server subprocess, started in its own session and always ended on exit.

    *ready* is a regular expression matched against each line the process prints until it
    matches (its groups are kept in :attr:`match`), or a function given every line so far that
    says whether the server is ready; with ``ready=None`` the caller checks readiness itself
    (``wait_listening``).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        ready: str | Callable[[list[str]], bool] | None = r"^PORT (\d+)",
        ready_timeout: float = 30.0,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stderr_path: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.ready = re.compile(ready) if isinstance(ready, str) else ready
        self.ready_timeout = ready_timeout
        self.env = env
        self.cwd = cwd
        self.stderr_path = stderr_path
        self.proc: subprocess.Popen[str] | None = None
        self.match: re.Match[str] | None = None
        self.lines: list[str] = []
        self.started_at = 0.0
        self.ready_after = 0.0
        self._stderr: IO[str] | None = None
        self._pending = b""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ServerProcess:
        WORK.mkdir(exist_ok=True)
        # One file per server of this run: several servers can run side by side.
        stderr_path = self.stderr_path or WORK / f"server-stderr-{next(_SERVER_NUMBERS)}.log"
        self._stderr = open(stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: stop() ends it and its children
        )
        if self.ready is not None:
            try:
                self.match = self._wait_ready()
            except BaseException:
                self.stop()
                raise
        self.ready_after = time.monotonic() - self.started_at
        return self

    def _readline(self, deadline: float) -> str | None:
        """The next line the process printed; ``""`` at end of output, ``None`` on timeout.

        Reads the raw pipe with ``select`` and keeps its own buffer: a buffered text stream
        could hold a second line where ``select`` cannot see it.
        """
        assert self.proc is not None
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                line, self._pending = self._pending, b""
                return line.decode(errors="replace")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(errors="replace") + "\n"

    def _wait_ready(self) -> re.Match[str] | None:
        assert self.proc is not None
        assert self.ready is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                raise BenchError(
                    f"{self.argv[0]} did not become ready in {self.ready_timeout}s; "
                    f"output: {self.lines[-5:]}; stderr: {self.stderr_tail()}"
                )
            if not line:
                raise BenchError(
                    f"{' '.join(self.argv[:3])} exited ({self.proc.wait()}) before ready; "
                    f"output: {self.lines[-5:]}; stderr: {self.stderr_tail()}"
                )
            self.lines.append(line.rstrip("\n"))
            if callable(self.ready):
                if self.ready(self.lines):
                    return None
                continue
            found = self.ready.search(line)
            if found:
                return found

    def stderr_tail(self, n: int = 400) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError):
            return Path(self._stderr.name).read_text(errors="replace")[-n:]
        return ""

    def ask(self, command: str, answer: str, timeout: float = 30.0) -> str:
        """Send *command* on stdin; return the first group of the reply line matching *answer*."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        pattern = re.compile(answer)
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            found = pattern.search(line)
            if found:
                return found.group(1)
        raise BenchError(f"no answer to {command!r} from {self.argv[:3]}")

    def count(self) -> int:
        """How many messages the server says it stored (server scripts of this directory)."""
        return int(self.ask("count", r"^COUNT (\d+)"))

    def processes(self) -> list[int]:
        """The process and its live descendants (``smtpmock serve`` has an index worker)."""
        return process_tree(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its live descendants have used (``/proc``)."""
        return tree_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        """Resident memory of the process and its live descendants, in KiB (Linux)."""
        total = 0
        for pid in self.processes():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
                total += int(found.group(1)) if found else 0
        return total

    def stop(self, grace: float = 5.0) -> int | None:
        """End the process group: close stdin, SIGTERM, then SIGKILL after *grace*."""
        proc = self.proc
        if proc is None:
            return None
        code = proc.poll()
        if code is None:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.close()  # our server scripts exit on EOF
            try:
                code = proc.wait(grace / 2)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    code = proc.wait(grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    code = proc.wait()
        # Anything the server left in its group (it should be nothing) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.proc = None
        return code

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[float]:
    """Yield the deadline (``time.monotonic()`` based) for a step that must end by then."""
    yield time.monotonic() + seconds


def percentile(values: Sequence[float], pct: float) -> float:
    """The *pct* percentile (nearest rank) of *values*."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One line of the results table.

    ``figures`` maps a system name (``smtpmock``, ``smtpmock serve``, ``aiosmtpd``, ...) to its
    figure (``None``: not measured, with the reason in ``notes``). ``subject`` names the
    smtpmock entries that the ratios are computed for; every other entry is a baseline.
    """

    scenario: str
    unit: str
    figures: dict[str, float | None]
    higher_is_better: bool = True
    subjects: tuple[str, ...] = ("smtpmock", "smtpmock serve")
    notes: list[str] = field(default_factory=list)
    label: str | None = None
    """What the notes are prefixed with (default: the scenario)."""

    def ratio(self, subject: str, baseline: str) -> float | None:
        """How many times better *subject* is than *baseline* (> 1: smtpmock is better)."""
        mine, theirs = self.figures.get(subject), self.figures.get(baseline)
        if mine is None or theirs is None or mine <= 0 or theirs <= 0:
            return None
        return mine / theirs if self.higher_is_better else theirs / mine


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render_table(rows: Sequence[Row]) -> str:
    """One Markdown table: scenario, smtpmock's figures, each baseline's, and the ratios."""
    head = (
        "| scenario | unit | smtpmock | smtpmock serve | baselines (same run) "
        "| ratios (>1: smtpmock better) |"
    )
    lines = [head, "|---|---|---:|---:|---|---|"]
    for row in rows:
        baselines = [n for n in row.figures if n not in row.subjects]
        base_cells = [f"{n} {fmt(row.figures[n])}" for n in baselines]
        ratio_cells = []
        for subject in row.subjects:
            if row.figures.get(subject) is None:
                continue
            short = "serve" if subject.endswith("serve") else "mem"
            parts = []
            for n in baselines:
                r = row.ratio(subject, n)
                if r is not None:
                    parts.append(f"{r:.2f}x {n}")
            if parts:
                ratio_cells.append(f"{short}: " + ", ".join(parts))
        cells = [
            row.scenario,
            row.unit,
            fmt(row.figures.get(row.subjects[0])),
            fmt(row.figures.get(row.subjects[1])) if len(row.subjects) > 1 else "-",
            " · ".join(base_cells) or "-",
            "; ".join(ratio_cells) or "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row.label or row.scenario}: {n}" for row in rows for n in row.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)
