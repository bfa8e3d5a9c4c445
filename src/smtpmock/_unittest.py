"""Per-test mailboxes over one shared server, for the pytest plugin and ``unittest``.

One :class:`~smtpmock.SMTPMock` serves a whole test session; each test sees only its own mail
through a :class:`ScopedMailbox`. Starting a test costs a counter increment and, when the
previous tests left mail behind, one ``store.clear()``: nothing a later test could see is kept, so
memory stays bounded however long the session.

Which test does a message belong to? **The test that was running when its mail transaction began
(the client's ``MAIL FROM``)**, not the one running when the message finished arriving. So:

* a background worker that began sending during test A and finishes during test B delivers to A:
  B never sees it;
* a transaction begun *between* tests belongs to the test that ran last;
* a message that arrives after its test has ended is *late mail*. It is kept out of every other
  test, and reported (``late_mail="warn"``, the default), reported as an error
  (``"fail"``: a test that ends while one of its transactions is still open fails in teardown),
  or dropped silently (``"ignore"``).

What cannot be told apart: a worker that *begins* its transaction after its test ended and while
the next test runs. On the wire it is the next test's mail. Join your workers (or wait for their
mail with ``wait_for``) before the test ends.
"""

from __future__ import annotations

import threading
import unittest
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from ._environ import (
    LateMailPolicy,
    _process_lock,
    _process_servers,
    env_address,
    late_mail_report,
)
from ._errors import LateMail, LateMailWarning
from ._faults import FaultSet
from ._inspect import DEFAULT_TIMEOUT, Mailbox, describe_messages
from ._message import Message
from ._server import SMTPMock
from .smtp import SessionView

__all__ = ["LateMail", "LateMailWarning", "SMTPMockMixin", "SMTPMockTestCase", "ScopedMailbox"]


class _Epoch:
    """One test's stretch of time on a shared server."""

    __slots__ = ("__weakref__", "closed", "floor", "late", "late_mail", "name")

    def __init__(self, name: str, floor: int, late_mail: LateMailPolicy = "warn") -> None:
        self.name = name
        self.floor = floor
        self.late_mail = late_mail
        self.closed = False
        self.late: list[str] = []


class SharedServer:
    """A running :class:`~smtpmock.SMTPMock` cut into per-test stretches (epochs).

    Not public API: the pytest plugin and :class:`SMTPMockMixin` drive it with :meth:`begin`
    and :meth:`end`; tests get :meth:`mailbox`.
    """

    def __init__(self, server: SMTPMock) -> None:
        self.server = server
        self.current: _Epoch | None = None
        # Transaction -> the epoch it began in; message -> its owner. Weak, so that closed
        # connections and cleared messages take their entries with them.
        self._transactions: weakref.WeakKeyDictionary[SessionView, _Epoch | None] = (
            weakref.WeakKeyDictionary()
        )
        self._owners: weakref.WeakKeyDictionary[Message, _Epoch] = weakref.WeakKeyDictionary()
        self._late: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        server.add_hook(self._hook)

    # ------------------------------------------------------------------ server side

    def _hook(self, protocol: SessionView, stage: str, arg: Any) -> None:
        # Runs in the server's loop thread; never answers a command itself, and never waits
        # (so it is a plain function: no coroutine per command).
        # The lock: end() reads these maps from the test's thread.
        if stage == "MAIL":
            with self._lock:
                self._transactions[protocol] = self.current
        elif stage in ("RSET", "QUIT"):
            with self._lock:
                self._transactions.pop(protocol, None)
        elif stage == "DATA_END" and isinstance(arg, Message):
            with self._lock:
                epoch = self._transactions.pop(protocol, self.current)
                if epoch is not None:
                    self._owners[arg] = epoch
            if epoch is not None and epoch.closed and epoch.late_mail != "ignore":
                summary = arg.summary()
                with self._lock:
                    epoch.late.append(summary)
                    self._late.append((epoch.name, summary))

    # ------------------------------------------------------------------ test side

    def begin(self, name: str, late_mail: LateMailPolicy = "warn") -> _Epoch:
        """Start a test's epoch: forget all mail (no later test can see it) and open a window.

        Late mail of this epoch is recorded for :meth:`take_late` unless *late_mail* is
        ``"ignore"``.
        """
        store = self.server.store
        if len(store):
            store.clear()
        # Fault rules a test set on the shared server are that test's alone.
        self.server.faults.clear()
        self.server.faults.clear_log()
        epoch = _Epoch(name, store.last_seq, late_mail)
        self.current = epoch
        return epoch

    def end(self, epoch: _Epoch) -> list[str]:
        """Close *epoch*; return the summaries of its mail transactions still open."""
        epoch.closed = True
        with self._lock:
            transactions = list(self._transactions.items())
        return [
            _describe_transaction(protocol)
            for protocol, owner in transactions
            if owner is epoch and not protocol.closed
        ]

    def take_late(self) -> list[tuple[str, str]]:
        """Late mail reported since the last call: ``(test name, message summary)`` pairs."""
        with self._lock:
            late, self._late = self._late, []
        return late

    def owner(self, message: Message) -> _Epoch | None:
        return self._owners.get(message)

    def mailbox(self, epoch: _Epoch, default_timeout: float = DEFAULT_TIMEOUT) -> ScopedMailbox:
        """The mailbox of one test."""
        return ScopedMailbox(self.server, epoch=epoch, shared=self, default_timeout=default_timeout)


def _describe_transaction(protocol: SessionView) -> str:
    sender = protocol.sender or ""
    recipients = ", ".join(protocol.recipients) or "(no recipient yet)"
    return f"from <{sender}> to {recipients} (SMTP session {protocol.session_id[:8]}, unfinished)"


class ScopedMailbox(Mailbox):
    """What the ``smtpmock`` fixture and ``self.smtpmock`` are: one test's view of a server.

    It has the whole inspection API of :class:`~smtpmock.SMTPMock` (``messages``, ``filter``,
    ``wait_for``, ``assert_sent``, ``assert_not_sent``, ``capture``) over the mail of the current
    test only, plus the server's ``host``/``port`` and :meth:`reset`.
    """

    def __init__(
        self,
        server: SMTPMock,
        *,
        epoch: _Epoch | None = None,
        shared: SharedServer | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        floor = epoch.floor if epoch is not None else server.store.last_seq
        super().__init__(server.store, floor=floor, default_timeout=default_timeout)
        self.server = server
        """The :class:`~smtpmock.SMTPMock` behind this mailbox (shared by the session)."""
        self._epoch = epoch
        self._shared = shared

    def _visible(self, messages: list[Message]) -> list[Message]:
        messages = super()._visible(messages)
        shared, epoch = self._shared, self._epoch
        if shared is None or epoch is None:
            return messages
        # Mail whose transaction began in an earlier test is that test's late mail.
        return [m for m in messages if shared.owner(m) in (epoch, None)]

    @contextmanager
    def capture(self) -> Iterator[ScopedMailbox]:
        """Collect this test's messages that arrive while the ``with`` block runs (see
        :meth:`Mailbox.capture <smtpmock.Mailbox.capture>`); late mail of other tests stays out.
        """
        box = ScopedMailbox(
            self.server,
            epoch=self._epoch,
            shared=self._shared,
            default_timeout=self.default_timeout,
        )
        box._floor = self._store.last_seq
        try:
            yield box
        finally:
            box._ceiling = self._store.last_seq

    @property
    def host(self) -> str:
        """The host the server listens on: point the code under test here."""
        return self.server.host

    @property
    def running(self) -> bool:
        """Whether the server behind is running (``wait_for`` fails at once when it is not)."""
        return self.server.running

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server.port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.server.address

    @property
    def faults(self) -> FaultSet:
        """The server's fault rules (see :class:`~smtpmock.FaultSet`). On the session server
        they are cleared, with their log, when each test begins, so they never leak."""
        return self.server.faults

    def reset(self) -> None:
        """Forget the mail received so far in this test (the mailbox starts empty again)."""
        self._floor = self._store.last_seq

    def check(self) -> None:
        """Raise :class:`~smtpmock.ServerError` if the server thread hit an error."""
        self.server.check()

    def describe(self) -> str:
        """The mail of this mailbox as a list for reports (time, sender, recipients, subject)."""
        return describe_messages(self.messages)

    def __repr__(self) -> str:
        return f"<ScopedMailbox {self.server.host}:{self.server.port} messages={len(self)}>"


# ---------------------------------------------------------------------- unittest


def _shared_for_unittest() -> SharedServer:
    """The server of :class:`SMTPMockMixin` tests; outside pytest, one per process, started on
    first use and running until the process exits (a daemon thread), like a session fixture.
    """
    with _process_lock:
        while _process_servers:
            top = _process_servers[-1]
            if not isinstance(top, SharedServer):
                shared = top()  # the pytest plugin's session server, started at first use
                assert isinstance(shared, SharedServer)
                return shared
            if top.server.running:
                return top
            _process_servers.pop()
        host, port = env_address()
        server = SMTPMock(host or "127.0.0.1", port or 0).start()
        shared = SharedServer(server)
        _process_servers.append(shared)
        return shared


class SMTPMockMixin:
    """Gives each test ``self.smtpmock``: a clean :class:`ScopedMailbox`, like the fixture.

    ::

        class SignupTests(SMTPMockMixin, unittest.TestCase):
            def test_welcome(self):
                send_welcome(host=self.smtpmock.host, port=self.smtpmock.port)
                self.smtpmock.wait_for(1, to="bob@example.com")

    All tests of the process share one server (started on first use, on
    ``SMTPMOCK_HOST``/``SMTPMOCK_PORT`` if set, else ``127.0.0.1`` and a free port), so a test
    pays only for its clean mailbox. Set ``smtpmock_options`` on the class (``SMTPMock`` keyword
    options, passed through unchanged) to give each of its tests its own server instead.
    ``smtpmock_timeout`` is the default ``wait_for`` timeout; ``smtpmock_late_mail`` says what
    happens when a test ends while one of its mail transactions is still open (``"warn"``:
    :class:`LateMailWarning`; ``"fail"``: :class:`LateMail`; ``"ignore"``). That mail never shows
    in a later test.
    """

    smtpmock: ScopedMailbox
    smtpmock_options: ClassVar[dict[str, Any] | None] = None
    smtpmock_timeout: ClassVar[float] = DEFAULT_TIMEOUT
    smtpmock_late_mail: ClassVar[LateMailPolicy] = "warn"

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        options = type(self).smtpmock_options
        name = getattr(self, "id", lambda: type(self).__name__)()
        if options is not None:
            server = SMTPMock(**options).start()
            self.addCleanup(server.stop)  # type: ignore[attr-defined]
            shared = SharedServer(server)
        else:
            shared = _shared_for_unittest()
        epoch = shared.begin(name, type(self).smtpmock_late_mail)
        self.smtpmock = shared.mailbox(epoch, default_timeout=type(self).smtpmock_timeout)
        self.addCleanup(self._smtpmock_end, shared, epoch)  # type: ignore[attr-defined]

    def _smtpmock_end(self, shared: SharedServer, epoch: _Epoch) -> None:
        open_ = shared.end(epoch)
        shared.server.check()
        if open_:
            report = late_mail_report(epoch.name, open_)
            if type(self).smtpmock_late_mail == "fail":
                raise LateMail(report)
            if type(self).smtpmock_late_mail == "warn":
                warnings.warn(report, LateMailWarning, stacklevel=2)


class SMTPMockTestCase(SMTPMockMixin, unittest.TestCase):
    """A :class:`unittest.TestCase` with ``self.smtpmock`` (see :class:`SMTPMockMixin`)."""
