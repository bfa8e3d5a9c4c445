"""SMTP ingest (messages/s) of 1 KiB messages: smtpmock beside the other servers, same run.

::

    python benchmarks/ingest.py                 # full scale (part of benchmarks/run.py)
    python benchmarks/ingest.py --scale small   # a few hundred messages per shape
    python benchmarks/ingest.py --targets smtpmock,aiosmtpd --shapes reuse

Targets, each a fresh server process on 127.0.0.1 and a free port per shape:

- ``smtpmock``: ``SMTPMock()`` in a small script (``baselines/smtpmock_inproc.py``), memory store;
- ``smtpmock serve``: ``python -m smtpmock serve`` (SQLite, committed before ``250``), when the
  command exists;
- ``aiosmtpd``: aiosmtpd with a do-nothing handler (``baselines/aiosmtpd_sink.py``);
- ``smtpd``: the stdlib ``smtpd`` on a Python that still has it (``baselines/smtpd_sink.py``);
- ``smtp-sink``: Postfix's C sink, the ceiling on this machine, when installed.

Shapes: one client with a new connection per message; 10 concurrent clients with a new
connection per message; 10 clients sending 100 messages per connection. The client is Postfix's
``smtp-source`` when installed, else ``loadgen.py``. The servers of a shape run side by side,
each warmed up, and each round runs the shape once against each of them in a rotating order
(``--repeat`` rounds); the median rate is reported; the rate counts what the server says it stored
(smtpmock, and the baselines' own counters), falling back to what the client sent (smtp-sink).
Every run is bounded in time: a server that stalls is measured on what it stored by then.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    HERE,
    HOST,
    SMTP_SINK,
    SMTP_SOURCE,
    VENV_PYTHON,
    WORK,
    BenchError,
    Row,
    ServerProcess,
    free_port,
    median,
    render_table,
    wait_listening,
    which_smtpd_python,
)
from loadgen import run_load

MESSAGE_SIZE = 1024


@dataclass(frozen=True)
class Shape:
    key: str
    title: str
    sessions: int
    reuse: bool

    def messages(self, scale: str) -> int:
        if self.reuse:  # 10 clients x N messages per connection
            # 600 per connection at full scale: with 100 (1,000 messages), smtpd's listen
            # backlog of 5 turns the ten simultaneous connects into one-second SYN retries
            # that dominate its figure (issue 24); 6,000 messages measure the server.
            per_connection = 600 if scale == "full" else 30
            return self.sessions * per_connection
        if scale == "full":
            return 2000 if self.sessions == 1 else 4000
        return 200 if self.sessions == 1 else 300


SHAPES = (
    Shape("single", "ingest 1 KiB: 1 client, new connection per message", 1, False),
    Shape("concurrent", "ingest 1 KiB: 10 clients, new connection per message", 10, False),
    Shape("reuse", "ingest 1 KiB: 10 clients x 600 messages per connection", 10, True),
)


# ------------------------------------------------------------------------------ servers


class Target:
    """A server under test: how to start it and how to ask how many messages it stored."""

    name = ""

    def available(self) -> str | None:
        """``None`` when it can run here, else the reason it cannot."""
        return None

    def start(self) -> ServerProcess:
        raise NotImplementedError

    def port(self, server: ServerProcess) -> int:
        assert server.match is not None
        return int(server.match.group(1))

    def count(self, server: ServerProcess) -> int | None:
        return server.count()

    def cleanup(self) -> None:
        """Remove what the server left on disk (called after it stopped)."""


class SMTPMockTarget(Target):
    name = "smtpmock"

    def __init__(self, profile: Path | None = None) -> None:
        self.profile = profile

    def start(self) -> ServerProcess:
        argv = [VENV_PYTHON, str(HERE / "baselines" / "smtpmock_inproc.py")]
        if self.profile is not None:
            argv += ["--profile", str(self.profile)]
        return ServerProcess(argv).start()


def serve_available() -> str | None:
    """``None`` when ``python -m smtpmock serve`` exists, else why not."""
    try:
        probe = subprocess.run(
            [VENV_PYTHON, "-m", "smtpmock", "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`python -m smtpmock serve --help` did not answer in 60 s"
    if probe.returncode != 0:
        tail = (probe.stderr or probe.stdout).strip().splitlines()[-1:]
        return f"`smtpmock serve` not available yet ({' '.join(tail)[:120]})"
    return None


_ADDRESS = re.compile(r"(?:https?://)?(?:\[[0-9a-fA-F:]+\]|[\w.-]+):(\d{2,5})\b")


def serve_ports(lines: Sequence[str]) -> tuple[int, int] | None:
    """The (SMTP, HTTP) ports ``smtpmock serve`` printed, once it printed both."""
    smtp = http = None
    for line in lines:
        lowered = line.lower()
        for found in _ADDRESS.finditer(line):
            port = int(found.group(1))
            if "http" in found.group(0).lower() or ("http" in lowered and "smtp" not in lowered):
                http = http or port
            elif "smtp" in lowered:
                smtp = smtp or port
    return (smtp, http) if smtp and http else None


def start_serve(db: Path, extra: Sequence[str] = (), ready_timeout: float = 60.0) -> ServerProcess:
    """Start ``python -m smtpmock serve`` on free ports with *db*; ready once it printed both."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [
        VENV_PYTHON, "-m", "smtpmock", "serve",
        "--smtp-host", HOST, "--smtp-port", "0", "--http-host", HOST, "--http-port", "0",
        "--db", str(db), *extra,
    ]  # fmt: skip
    return ServerProcess(
        argv,
        ready=lambda lines: serve_ports(lines) is not None,
        ready_timeout=ready_timeout,
        env=env,
    ).start()


def http_get_json(url: str, timeout: float = 30.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class ServeTarget(Target):
    name = "smtpmock serve"

    def __init__(self) -> None:
        self.db = WORK / f"ingest-{os.getpid()}.db"

    def available(self) -> str | None:
        return serve_available()

    def start(self) -> ServerProcess:
        WORK.mkdir(exist_ok=True)
        self.db = WORK / f"ingest-{os.getpid()}.db"
        self.cleanup()
        return start_serve(self.db)

    def cleanup(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)

    def port(self, server: ServerProcess) -> int:
        ports = serve_ports(server.lines)
        assert ports is not None
        return ports[0]

    def count(self, server: ServerProcess) -> int | None:
        ports = serve_ports(server.lines)
        assert ports is not None
        body = http_get_json(f"http://{HOST}:{ports[1]}/api/v1/messages?limit=1")
        if isinstance(body, dict) and isinstance(body.get("total"), int):
            return int(body["total"])
        return None


class AiosmtpdTarget(Target):
    name = "aiosmtpd"

    def start(self) -> ServerProcess:
        return ServerProcess([VENV_PYTHON, str(HERE / "baselines" / "aiosmtpd_sink.py")]).start()


FLOORS: dict[str, list[str]] = {  # target name: arguments of baselines/asyncio_floor.py
    "asyncio-floor": [],
    "asyncio-floor-uvloop": ["--loop", "uvloop"],
    "streams-floor-uvloop": ["--loop", "uvloop", "--model", "streams"],
}


class AsyncioFloorTarget(Target):
    """Not a baseline of the issue: the cost floor of an asyncio server (``PROFILE.md``).

    ``asyncio-floor``: the callback model on asyncio's loop; ``asyncio-floor-uvloop`` the same
    on uvloop; ``streams-floor-uvloop``: aiosmtpd's model (a task and a ``StreamReader`` per
    connection) with nothing else, on uvloop as smtpmock.
    """

    def __init__(self, name: str = "asyncio-floor") -> None:
        self.name = name
        self.args = FLOORS[name]

    def start(self) -> ServerProcess:
        script = HERE / "baselines" / "asyncio_floor.py"
        return ServerProcess([VENV_PYTHON, str(script), *self.args]).start()


class SmtpdTarget(Target):
    name = "smtpd"

    def __init__(self) -> None:
        self.python = which_smtpd_python()

    def available(self) -> str | None:
        return None if self.python else "no Python with the stdlib smtpd module (<= 3.11) found"

    def start(self) -> ServerProcess:
        assert self.python is not None
        argv = [
            self.python,
            "-W",
            "ignore::DeprecationWarning",
            str(HERE / "baselines" / "smtpd_sink.py"),
        ]
        return ServerProcess(argv).start()


class SmtpSinkTarget(Target):
    name = "smtp-sink"

    def available(self) -> str | None:
        return None if os.access(SMTP_SINK, os.X_OK) else f"{SMTP_SINK} not installed (postfix)"

    def start(self) -> ServerProcess:
        port = free_port()
        argv = [SMTP_SINK]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        argv += [f"{HOST}:{port}", "256"]
        server = ServerProcess(argv, ready=None).start()
        server.lines.append(f"PORT {port}")
        server.match = re.match(r"PORT (\d+)", server.lines[-1])
        try:
            wait_listening(port, 10.0, server.proc)
        except BaseException:
            server.stop()
            raise
        return server

    def count(self, server: ServerProcess) -> int | None:
        return None  # smtp-sink keeps no count: trust the client


def all_targets(extra: bool = False) -> list[Target]:
    """The targets of issue 7; with *extra*, also the asyncio floor (for the profile)."""
    targets = [SMTPMockTarget(), ServeTarget(), AiosmtpdTarget(), SmtpdTarget(), SmtpSinkTarget()]
    floors = [AsyncioFloorTarget(n) for n in FLOORS]
    return [*targets, *floors] if extra else targets


# ------------------------------------------------------------------------------ clients


@dataclass
class ClientRun:
    sent: int | None  # what the client says it delivered (None: unknown)
    elapsed: float
    timed_out: bool
    error: str | None = None


def have_smtp_source() -> bool:
    return os.access(SMTP_SOURCE, os.X_OK)


def smtp_source(port: int, shape: Shape, messages: int, timeout: float) -> ClientRun:
    """Run Postfix's smtp-source; with ``-d`` each session keeps its connection open."""
    argv = [
        SMTP_SOURCE, "-s", str(shape.sessions), "-m", str(messages), "-l", str(MESSAGE_SIZE),
        "-f", "load@example.com", "-t", "rcpt@example.com", "-M", "localhost",
        "-S", "load test",
    ]  # fmt: skip
    if shape.reuse:
        argv.append("-d")
    argv.append(f"{HOST}:{port}")
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return ClientRun(None, time.perf_counter() - start, True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        return ClientRun(None, elapsed, False, (done.stderr or done.stdout).strip()[-200:])
    return ClientRun(messages, elapsed, False)


def loadgen(port: int, shape: Shape, messages: int, timeout: float) -> ClientRun:
    result = run_load(
        HOST,
        port,
        sessions=shape.sessions,
        messages=messages,
        reuse=shape.reuse,
        size=MESSAGE_SIZE,
        timeout=timeout,
    )
    timed_out = result.sent + result.failed < messages
    error = f"{result.failed} failed" if result.failed else None
    return ClientRun(result.sent, result.elapsed, timed_out, error)


Client = Callable[[int, Shape, int, float], ClientRun]


# ------------------------------------------------------------------------------ measuring


@dataclass
class Measurement:
    rate: float | None
    note: str | None = None
    cpu_us: float | None = None  # server CPU time per stored message, median of the runs


@dataclass
class _Series:
    """One target's runs of one shape, as they are taken."""

    target: Target
    server: ServerProcess | None = None
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    done: bool = False  # no more runs (failed to start, or a run was capped)

    def result(self) -> Measurement:
        note = "; ".join(dict.fromkeys(self.notes)) or None
        if not self.rates:
            return Measurement(None, note or "no run completed")
        return Measurement(median(self.rates), note, median(self.cpu) if self.cpu else None)


def _one_run(series: _Series, shape: Shape, messages: int, client: Client, timeout: float) -> None:
    """One client run against *series*' server; the rate counts what the server stored."""
    target, server, notes = series.target, series.server, series.notes
    assert server is not None
    port = target.port(server)
    before = target.count(server)
    cpu_before = server.cpu_seconds()
    run = client(port, shape, messages, timeout)
    cpu_used = server.cpu_seconds() - cpu_before
    # Asked before the next run starts: serve indexes what is pending to answer, so its
    # indexing is not left running into another server's run.
    after = target.count(server)
    stored = None if before is None or after is None else after - before
    if stored is not None:
        if run.sent is not None and stored != run.sent:
            notes.append(f"client sent {run.sent}, server stored {stored}")
        delivered = stored
    elif run.sent is not None:
        delivered = run.sent
    else:
        notes.append(run.error or f"client stopped after {timeout:g}s, count unknown")
        return
    if run.timed_out:
        notes.append(f"run capped at {timeout:g}s: {delivered}/{messages} stored")
        if delivered:
            series.rates.append(delivered / run.elapsed)
        series.done = True  # one capped run is evidence enough; do not spend the budget again
        return
    if run.error:
        notes.append(f"client error: {run.error}")
    series.rates.append(delivered / run.elapsed)
    if delivered:
        series.cpu.append(cpu_used / delivered * 1e6)


def measure_side_by_side(
    targets: Sequence[Target],
    shape: Shape,
    *,
    scale: str,
    repeat: int,
    client: Client,
    run_timeout: float,
    deadline: float = float("inf"),
) -> dict[str, Measurement]:
    """Median messages/s of *repeat* runs of *shape* against each target, interleaved.

    Every target's server is started (fresh) and warmed up first; then each round runs the
    shape once against each of them, in an order that rotates from round to round. A slow
    spell of a shared machine (on this 2-CPU VM the same server's rate moves by a third from
    one minute to the next) then falls on every target alike instead of on whichever ran at
    that moment, which is what makes the ratios between them comparable.
    """
    messages = shape.messages(scale)
    all_series = [_Series(t) for t in targets]
    with contextlib.ExitStack() as stack:
        for series in all_series:
            stack.callback(series.target.cleanup)
            try:
                series.server = stack.enter_context(series.target.start())
                warm = client(
                    series.target.port(series.server), Shape("warm", "", 1, True), 20, 30.0
                )
            except BenchError as exc:
                series.notes.append(f"failed: {exc}")
                series.done = True
                continue
            if warm.error:
                series.notes.append(f"warm-up failed: {warm.error}")
                series.done = True
        for attempt in range(repeat):
            active = [s for s in all_series if not s.done]
            if not active:
                break
            if attempt and time.monotonic() > deadline:
                for series in active:
                    series.notes.append(
                        f"{attempt} of {repeat} runs: the ingest time budget was spent"
                    )
                break
            turn = attempt % len(active)
            for series in active[turn:] + active[:turn]:
                try:
                    _one_run(series, shape, messages, client, run_timeout)
                except BenchError as exc:
                    series.notes.append(f"failed: {exc}")
                    series.done = True
                if series.done and series.server is not None:
                    series.server.stop()  # a stalled server must not load the others' runs
    return {s.target.name: s.result() for s in all_series}


def run_ingest(
    scale: str = "full",
    *,
    targets: Sequence[Target] | None = None,
    shapes: Sequence[Shape] = SHAPES,
    repeat: int | None = None,
    force_loadgen: bool = False,
    budget: float | None = None,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> list[Row]:
    """Measure every shape against every available target; two :class:`Row` per shape.

    The targets of a shape run side by side, their runs interleaved
    (:func:`measure_side_by_side`). With *budget* (seconds), once it is spent each remaining
    shape gets one round instead of *repeat*.
    """
    deadline = time.monotonic() + budget if budget is not None else float("inf")
    targets = list(targets) if targets is not None else all_targets()
    repeat = repeat or (3 if scale == "full" else 1)
    run_timeout = 20.0 if scale == "full" else 10.0
    use_source = have_smtp_source() and not force_loadgen
    client: Client = smtp_source if use_source else loadgen
    client_name = "smtp-source" if use_source else "loadgen.py (smtp-source not installed)"
    unavailable = {t.name: t.available() for t in targets}
    runnable = [t for t in targets if unavailable[t.name] is None]
    rows = []
    for shape in shapes:
        row = Row(shape.title, "msg/s", {})
        cpu_row = Row(
            f"server CPU per stored message ({shape.key})", "us", {}, higher_is_better=False
        )
        row.notes.append(
            f"client {client_name}, {shape.messages(scale)} messages x {repeat} rounds, "
            "the servers side by side and their runs interleaved"
        )
        log(f"ingest: {shape.key} -> {', '.join(t.name for t in runnable)}")
        results = measure_side_by_side(
            runnable,
            shape,
            scale=scale,
            repeat=repeat,
            client=client,
            run_timeout=run_timeout,
            deadline=deadline,
        )
        for target in targets:
            reason = unavailable[target.name]
            if reason is not None:
                row.figures[target.name] = None
                cpu_row.figures[target.name] = None
                if shape is shapes[0]:
                    row.notes.append(f"{target.name} skipped: {reason}")
                continue
            result = results[target.name]
            row.figures[target.name] = result.rate
            cpu_row.figures[target.name] = result.cpu_us
            if result.note:
                row.notes.append(f"{target.name}: {result.note}")
            if target.name == "smtpd" and shape.sessions > 1 and not shape.reuse:
                # No run size helps here: every message is a new connect, and ten at once
                # overflow smtpd's listen backlog of 5 (one-second SYN retries, issue 24).
                row.notes.append(
                    "smtpd: new connections from 10 clients overflow its listen backlog of 5"
                    " (one-second SYN retries), so its rate here measures that, not the"
                    " server; compare CPU per message"
                )
            log(f"ingest: {shape.key} -> {target.name}: {result.rate}")
        rows += [row, cpu_row]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--repeat", type=int, help="runs per shape (default 3 full, 1 small)")
    parser.add_argument(
        "--targets",
        help="comma-separated target names: smtpmock, smtpmock serve, aiosmtpd, smtpd, "
        "smtp-sink, and the floors asyncio-floor, asyncio-floor-uvloop, streams-floor-uvloop "
        "(not in the default set)",
    )
    parser.add_argument("--shapes", help="comma-separated subset of: single,concurrent,reuse")
    parser.add_argument("--loadgen", action="store_true", help="use loadgen.py, not smtp-source")
    parser.add_argument("--budget", type=float, help="seconds; then one run per shape and target")
    args = parser.parse_args()
    targets = all_targets(extra=bool(args.targets))
    if args.targets:
        wanted = set(args.targets.split(","))
        targets = [t for t in targets if t.name in wanted]
    shapes: tuple[Shape, ...] = SHAPES
    if args.shapes:
        keys = set(args.shapes.split(","))
        shapes = tuple(s for s in SHAPES if s.key in keys)
    rows = run_ingest(
        args.scale,
        targets=targets,
        shapes=shapes,
        repeat=args.repeat,
        force_loadgen=args.loadgen,
        budget=args.budget,
    )
    print(render_table(rows))


if __name__ == "__main__":
    main()
