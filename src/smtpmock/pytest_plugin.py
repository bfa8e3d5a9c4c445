"""pytest plugin for smtpmock (registered through the ``pytest11`` entry point).

Fixtures:

``smtpmock``
    A :class:`~smtpmock.ScopedMailbox`: the inspection API of ``SMTPMock`` over the mail of the
    current test only. The server behind it starts once per session (per xdist worker).
``smtpmock_server``
    The session's :class:`~smtpmock.SMTPMock` itself.
``smtpmock_factory``
    ``smtpmock_factory(**options)`` starts a server of its own with ``SMTPMock`` options (passed
    through unchanged); it is stopped when the test ends.

The marker ``@pytest.mark.smtpmock(**options)`` gives one test its own server with those options
behind the ``smtpmock`` fixture.

The session server starts at first use (the first test that asks for ``smtpmock`` or
``smtpmock_server``): a pytest run that uses none of the fixtures starts no server, opens no
socket and sets no environment variable. When it starts, its address is published in
``SMTPMOCK_HOST``/``SMTPMOCK_PORT``. Ask for it to start before conftest files (and Django
settings) are imported, published for them, with ``--smtpmock-start=early`` or the
``smtpmock_start = early`` ini option; a fixed port implies it. Ask for a fixed address with
``--smtpmock-host``/``--smtpmock-port``, those environment variables, or the ``smtpmock_host``/
``smtpmock_port`` ini options (in that order of precedence); under xdist, worker ``gwN`` listens
on the fixed port plus N. See ``docs/pytest.md``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

# Only light modules here: every pytest run of an environment with smtpmock installed imports
# this plugin, and a run that uses no smtpmock fixture must not pay for the SMTP server's
# modules (asyncio, aiosmtpd, email parsing). They are imported when the server first starts.
from ._environ import (
    ENV_HOST,
    ENV_PORT,
    ENV_PUBLISHED,
    LATE_MAIL_POLICIES,
    LateMailPolicy,
    env_address,
    late_mail_report,
    provide_for_unittest,
    use_for_unittest,
)
from ._errors import ConfigurationError, LateMail, LateMailWarning, ServerStartError

if TYPE_CHECKING:
    from ._server import SMTPMock
    from ._unittest import ScopedMailbox, SharedServer, _Epoch

__all__ = ["SMTPMockFactory"]

START_MODES = ("first-use", "early")
DEFAULT_TIMEOUT = 5.0  # smtpmock._inspect.DEFAULT_TIMEOUT, without importing it

SMTPMockFactory = Callable[..., "SMTPMock"]
"""The type of the ``smtpmock_factory`` fixture: ``(**options) -> SMTPMock`` (started)."""


class _Run:
    """The plugin's state for one pytest run (one process: the main one or an xdist worker)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.host, self.port = _requested_address(config)
        start = str(_option(config, "smtpmock_start") or config.getini("smtpmock_start") or "")
        if start not in ("", *START_MODES):
            raise pytest.UsageError(
                f"smtpmock_start must be one of {', '.join(START_MODES)}, not {start!r}"
            )
        # A fixed port is for something outside the tests (an application started before
        # them, a settings file): it must be listening from the start.
        self.early = start == "early" or (not start and self.port != 0)
        self.timeout = _ini_float(config, "smtpmock_timeout", DEFAULT_TIMEOUT)
        late = str(config.getini("smtpmock_late_mail") or "warn")
        if late not in LATE_MAIL_POLICIES:
            raise pytest.UsageError(
                f"smtpmock_late_mail must be one of {', '.join(LATE_MAIL_POLICIES)}, not {late!r}"
            )
        self.late_mail: LateMailPolicy = late
        self.shared: SharedServer | None = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> SharedServer:
        if self.shared is None:
            from ._server import SMTPMock
            from ._unittest import SharedServer

            server = SMTPMock(self.host, self.port, default_timeout=self.timeout).start()
            self.shared = SharedServer(server)
            self._publish(server)
            use_for_unittest(self.shared)
        return self.shared

    def _publish(self, server: SMTPMock) -> None:
        values = {
            ENV_HOST: server.host,
            ENV_PORT: str(server.port),
            ENV_PUBLISHED: f"{server.host}:{server.port}",
        }
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def stop(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        shared, self.shared = self.shared, None
        if shared is not None:
            use_for_unittest(shared, active=False)
            shared.server.stop()

    def report_late_mail(self) -> None:
        """Turn late mail (mail of a test that had already ended) into warnings on that test."""
        if self.shared is None or self.late_mail == "ignore":
            return
        for name, summary in self.shared.take_late():
            warning = LateMailWarning(
                f"mail arrived after {name} had ended (kept out of later tests): {summary}"
            )
            record = warnings.WarningMessage(warning, LateMailWarning, __file__, 0)
            self.config.hook.pytest_warning_recorded.call_historic(
                kwargs={
                    "warning_message": record,
                    "when": "runtest",
                    "nodeid": name,
                    "location": None,
                }
            )


_RUN = pytest.StashKey[_Run]()
_EPOCH: pytest.StashKey[_Epoch] = pytest.StashKey()
_MAILBOXES: pytest.StashKey[list[ScopedMailbox]] = pytest.StashKey()


def _ini_float(config: pytest.Config, name: str, default: float) -> float:
    raw = config.getini(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise pytest.UsageError(f"{name} must be positive, not {raw!r}")
    return value


def _option(config: pytest.Config, name: str) -> Any:
    # Early in start-up only the known-args namespace is filled in; later, config.option is.
    value = getattr(config.option, name, None)
    if value is None:
        value = getattr(config.known_args_namespace, name, None)
    return value


def _requested_address(config: pytest.Config) -> tuple[str, int]:
    try:
        env_host, env_port = env_address()
    except ConfigurationError as exc:
        raise pytest.UsageError(str(exc)) from None
    host = (
        _option(config, "smtpmock_host")
        or env_host
        or str(config.getini("smtpmock_host") or "")
        or "127.0.0.1"
    )
    port: int | None = _option(config, "smtpmock_port")
    if port is None:
        port = env_port
    if port is None:
        raw = str(config.getini("smtpmock_port") or "0")
        try:
            port = int(raw)
        except ValueError:
            raise pytest.UsageError(f"smtpmock_port must be a port number, not {raw!r}") from None
    if not 0 <= port <= 65535:
        raise pytest.UsageError(f"the smtpmock port must be 0-65535, not {port}")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    is_worker = _xdist_role(config) == "worker"
    if port and is_worker and worker.startswith("gw") and worker[2:].isdigit():
        port += int(worker[2:])  # each xdist worker needs a port of its own
    return host, port


def _xdist_role(config: pytest.Config) -> str | None:
    """``"worker"``, ``"controller"`` or ``None`` (no xdist), decidable before configure.

    A worker gets the controller's command line (with ``-n``) and ``PYTEST_XDIST_WORKER`` set;
    it runs under execnet (``sys.argv == ["-c"]``). The last check keeps a pytest run started
    from inside a worker (pytester), which inherits the variable, from passing for a worker.
    """
    namespace = config.known_args_namespace
    distributed = bool(getattr(namespace, "numprocesses", None) or getattr(namespace, "tx", None))
    if not distributed:
        return None
    if os.environ.get("PYTEST_XDIST_WORKER") and sys.argv[:1] == ["-c"]:
        return "worker"
    return "controller"


# ---------------------------------------------------------------------- hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smtpmock", "smtpmock: a real SMTP server for tests")
    group.addoption(
        "--smtpmock-host",
        dest="smtpmock_host",
        default=None,
        help="host of the session SMTP server (default: $SMTPMOCK_HOST, ini, 127.0.0.1)",
    )
    group.addoption(
        "--smtpmock-port",
        dest="smtpmock_port",
        type=int,
        default=None,
        help="fixed port of the session SMTP server; xdist worker gwN uses port+N "
        "(default: $SMTPMOCK_PORT, ini, 0 = any free port)",
    )
    group.addoption(
        "--smtpmock-start",
        dest="smtpmock_start",
        choices=START_MODES,
        default=None,
        help="when the session SMTP server starts: first-use (default: the first test that "
        "asks for it) or early (before conftest files are imported, its address published in "
        "SMTPMOCK_HOST/SMTPMOCK_PORT; the default with a fixed port)",
    )
    parser.addini(
        "smtpmock_start",
        "when the session SMTP server starts: first-use (default) or early (before conftest "
        "files are imported)",
        default="",
    )
    parser.addini("smtpmock_host", "host of the session SMTP server", default="")
    parser.addini("smtpmock_port", "port of the session SMTP server (0: any free port)", default="")
    parser.addini("smtpmock_timeout", "default wait_for timeout, seconds", default="")
    # A shared `smtpmock serve` (issue 28, _shared.py): a mailbox per session and xdist worker.
    parser.addini("smtpmock_url", "URL of a shared smtpmock serve ($SMTPMOCK_URL)", default="")
    parser.addini("smtpmock_token", "its bearer token ($SMTPMOCK_TOKEN)", default="")
    parser.addini("smtpmock_mailbox_prefix", "first part of the mailbox names", default="")
    parser.addini(
        "smtpmock_late_mail",
        "when a test ends while it is still sending mail: warn, fail or ignore",
        default="warn",
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    # Nothing starts here unless asked: a run that uses no smtpmock fixture pays nothing. When
    # asked (smtpmock_start = early, a fixed port), this is the earliest point with options
    # parsed: the server starts, and its address is published, before any conftest, or a Django
    # settings module that pytest-django imports here, is read.
    run = _Run(early_config)
    early_config.stash[_RUN] = run
    # The xdist controller runs no tests: its workers do, each with its own server.
    if run.early and _xdist_role(early_config) != "controller":
        try:
            run.start()
        except ServerStartError as exc:
            raise pytest.UsageError(f"smtpmock: {exc}") from exc
    try:
        return (yield)
    except BaseException:
        run.stop()
        raise


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "smtpmock(**options): give this test's smtpmock fixture its own server with these "
        "SMTPMock options",
    )
    if _RUN not in config.stash:  # registered late (pytester plugins=[...], -p after start-up)
        config.stash[_RUN] = _Run(config)
    # unittest-style tests (SMTPMockMixin) use the session server too, started when they need it.
    provide_for_unittest(config.stash[_RUN].start)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is not None:
        provide_for_unittest(run.start, active=False)
        run.stop()
    _remote_unconfigure(config)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    run = item.config.stash.get(_RUN, None)
    if run is None or run.shared is None:
        return
    run.report_late_mail()
    item.stash[_EPOCH] = run.shared.begin(item.nodeid, run.late_mail)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    still_open: list[str] = []
    try:
        yield
    finally:
        epoch = item.stash.get(_EPOCH, None)
        run = item.config.stash.get(_RUN, None)
        if epoch is not None and run is not None and run.shared is not None:
            still_open = run.shared.end(epoch)
    # Only tests that use the fixture asked for smtpmock's rules.
    if still_open and run is not None and "smtpmock" in getattr(item, "fixturenames", ()):
        _late(run.late_mail, late_mail_report(item.nodeid, still_open))


def _late(policy: LateMailPolicy, report: str) -> None:
    if policy == "fail":
        raise LateMail(report)
    if policy == "warn":
        warnings.warn(report, LateMailWarning, stacklevel=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        section = _mail_section(item)
        if section:
            report.sections.append((f"Captured mail {report.when}", section))
    return report


def _mail_section(item: pytest.Item) -> str:
    """What the servers of this test received, for the report of a failed test."""
    boxes = list(item.stash.get(_MAILBOXES, None) or ())
    run = item.config.stash.get(_RUN, None)
    epoch = item.stash.get(_EPOCH, None)
    if run is not None and run.shared is not None and epoch is not None:
        session_box = run.shared.mailbox(epoch)
        # Shown when the test asked for the fixture, or mail reached the session server anyway
        # (an application configured from SMTPMOCK_HOST/PORT, without the fixture).
        if "smtpmock" in getattr(item, "fixturenames", ()) or session_box.messages:
            boxes.insert(0, session_box)
    return "\n".join(f"smtpmock on {box.host}:{box.port}: {box.describe()}" for box in boxes)


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is not None:
        run.report_late_mail()


# ---------------------------------------------------------------------- fixtures


def _run(config: pytest.Config) -> _Run:
    run = config.stash.get(_RUN, None)
    if run is None:  # pragma: no cover - pytest_configure always sets it
        run = config.stash[_RUN] = _Run(config)
    return run


@pytest.fixture(scope="session")
def smtpmock_server(pytestconfig: pytest.Config) -> SMTPMock:
    """The session's SMTP server (one per xdist worker), started at first use."""
    return _run(pytestconfig).start().server


@pytest.fixture
def smtpmock(request: pytest.FixtureRequest) -> Iterator[ScopedMailbox]:
    """A clean mailbox for this test on the session's SMTP server (``.host``, ``.port``).

    With ``@pytest.mark.smtpmock(**options)`` the test gets a server of its own instead.
    """
    item = request.node
    run = _run(request.config)
    marker = item.get_closest_marker("smtpmock")
    if marker is not None:
        if marker.args:
            raise ConfigurationError("@pytest.mark.smtpmock takes keyword options only")
        options = {"host": run.host, **marker.kwargs}
        options.setdefault("default_timeout", run.timeout)
        from ._server import SMTPMock
        from ._unittest import SharedServer

        with SMTPMock(**options) as server:
            shared = SharedServer(server)
            epoch = shared.begin(item.nodeid, run.late_mail)
            box = shared.mailbox(epoch, default_timeout=server.default_timeout)
            item.stash.setdefault(_MAILBOXES, []).append(box)
            yield box
            still_open = shared.end(epoch)
            if still_open:
                _late(run.late_mail, late_mail_report(item.nodeid, still_open))
        return
    remote = _remote(request.config, run)
    if remote is not None:  # a shared smtpmock serve: this session's (worker's) mailbox there
        yield remote.for_test()
        return
    if run.shared is None:
        try:
            run.start()  # first use
        except ServerStartError as exc:
            raise ServerStartError(f"smtpmock: the session server: {exc}") from exc
    assert run.shared is not None
    epoch = item.stash.get(_EPOCH, None)
    if epoch is None:
        epoch = item.stash[_EPOCH] = run.shared.begin(item.nodeid, run.late_mail)
    yield run.shared.mailbox(epoch, default_timeout=run.timeout)
    run.shared.server.check()


# ------------------------------------------------- a shared smtpmock serve (issue 28, _shared.py)

_REMOTE: pytest.StashKey[Any] = pytest.StashKey()
_SESSION: pytest.StashKey[str] = pytest.StashKey()
_WORKER_SESSION = "smtpmock_session_id"  # in xdist's workerinput, from the controller


def _remote_ini(config: pytest.Config) -> dict[str, str]:
    names = ("smtpmock_url", "smtpmock_token", "smtpmock_mailbox_prefix")
    return {name: str(config.getini(name) or "") for name in names}


def _remote_wanted(config: pytest.Config) -> bool:
    return bool(os.environ.get("SMTPMOCK_URL") or config.getini("smtpmock_url"))


def _session_id(config: pytest.Config) -> str:
    """This run's id, the first part of its mailbox names: the xdist controller's (handed to
    its workers in ``workerinput``), else made on first use. Nothing is published for it."""
    if _SESSION not in config.stash:
        given = os.environ.get("SMTPMOCK_SESSION_ID") or getattr(config, "workerinput", {}).get(
            _WORKER_SESSION
        )
        import uuid

        config.stash[_SESSION] = str(given or uuid.uuid4().hex[:12])
    return config.stash[_SESSION]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist, in the controller) Every worker of a run against a shared server gets the same
    session id, so that the run's mailboxes share a prefix."""
    if _remote_wanted(node.config):
        node.workerinput[_WORKER_SESSION] = _session_id(node.config)


def _remote_unconfigure(config: pytest.Config) -> None:
    remote = config.stash.get(_REMOTE, None)
    if remote is not None:
        remote.close()  # and the SMTPMOCK_* variables it published are restored
        config.stash[_REMOTE] = None


def _remote(config: pytest.Config, run: _Run) -> Any:
    """The :class:`~smtpmock._shared.RemoteRun` when a shared server is configured (made, and
    its variables published, when the first test asks for the ``smtpmock`` fixture)."""
    if _REMOTE not in config.stash:
        remote = None
        if _remote_wanted(config):
            from ._shared import ENV_SESSION, RemoteRun, remote_settings

            environ = {**os.environ, ENV_SESSION: _session_id(config)}
            found = remote_settings(_remote_ini(config), environ)
            if found is not None:
                url, token, mailbox = found
                remote = RemoteRun(url, mailbox=mailbox, token=token, timeout=run.timeout)
        config.stash[_REMOTE] = remote
    return config.stash[_REMOTE]


@pytest.fixture
def smtpmock_factory(request: pytest.FixtureRequest) -> Iterator[SMTPMockFactory]:
    """``smtpmock_factory(**options)``: a started ``SMTPMock`` of this test's own.

    Options are ``SMTPMock``'s, passed through unchanged (TLS, AUTH, limits, faults ...). Every
    server made is stopped when the test ends; its mail shows in the report of a failed test.
    """
    from ._server import SMTPMock
    from ._unittest import ScopedMailbox

    run = _run(request.config)
    servers: list[SMTPMock] = []

    def make(**options: Any) -> SMTPMock:
        options.setdefault("default_timeout", run.timeout)
        server = SMTPMock(**options).start()
        servers.append(server)
        box = ScopedMailbox(server, default_timeout=server.default_timeout)
        request.node.stash.setdefault(_MAILBOXES, []).append(box)
        return server

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for server in servers:
            try:
                server.stop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
