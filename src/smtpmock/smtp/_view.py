"""What code outside the SMTP engine sees of a session: a read-only view, and hook actions.

Stage hooks (fault rules, the shared server's epochs, users' ``add_hook``) get a
:class:`SessionView` and answer with ``None`` (go on) or an :class:`HookAction` (reply instead,
drop, delay, throttle), possibly through an awaitable. They never reach the transport or the
state machine: the engine applies the action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._session import Session

__all__ = ["HookAction", "SessionView", "StageHook", "StageHooks"]


@dataclass(frozen=True)
class HookAction:
    """What a stage hook asks the engine to do at a stage.

    ``reply``: answer this (``"451 4.7.1 Greylisted"``) instead of running the command (at
    ``DATA_END``: instead of storing the message; at ``connect``: instead of the greeting, and
    close); a ``421`` closes the session. ``drop``: close the connection without a reply.
    ``delay``: seconds to wait first. ``throttle``: bytes per second, both ways, for the rest
    of the connection. ``note``: a line for the session transcript (why the server did it).
    """

    reply: str | None = None
    drop: bool = False
    delay: float = 0.0
    throttle: float | None = None
    note: str | None = None


class SessionView:
    """A read-only view of one SMTP session, for hooks, fault rules and transcripts."""

    __slots__ = ("__weakref__", "_session", "peer", "session_id")

    def __init__(self, session: Session, session_id: str, peer: tuple[str, int] | None) -> None:
        self._session = session
        self.session_id: str = session_id
        """The session's id (as in ``Message.session_id`` and transcripts)."""
        self.peer: tuple[str, int] | None = peer
        """The client's address."""

    @property
    def helo(self) -> str | None:
        """The name the client gave in HELO/EHLO (``None`` before, and after STARTTLS)."""
        return self._session.helo

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self._session.tls

    @property
    def auth_user(self) -> str | None:
        """The user the client authenticated as."""
        return self._session.auth_user

    @property
    def sender(self) -> str | None:
        """The envelope sender of the transaction so far (``None`` before MAIL)."""
        return self._session.envelope.mail_from

    @property
    def recipients(self) -> tuple[str, ...]:
        """The recipients accepted so far in this transaction."""
        return tuple(self._session.envelope.rcpt_tos)

    @property
    def closed(self) -> bool:
        """Whether the session has ended (or is ending)."""
        return self._session.closed

    def __repr__(self) -> str:
        return f"<SessionView {self.session_id[:8]} peer={self.peer} helo={self.helo!r}>"


HookResult = None | bool | HookAction
StageHook = Callable[[SessionView, str, Any], "HookResult | Awaitable[HookResult]"]
"""``hook(view, stage, arg)``: stages are ``"connect"``, each command verb (``"EHLO"``,
``"MAIL"``, ...; *arg* is the command's argument) and ``"DATA_END"`` (*arg* is the
:class:`~smtpmock.Message`, not stored yet). ``None``/``False``: nothing to do."""


class StageHooks:
    """The stage hooks of one server, in the order they were added.

    A hook added with ``when=`` has nothing to do while ``when()`` is false: it would answer
    ``None`` at every stage. The fault rules' hook is on every server and has nothing to do
    until a rule is added; while no hook has anything to do (:meth:`wanted`), the engine runs
    each command at once, with no stage machinery at all. Hooks may be added, and ``when()``
    become true, from any thread: it applies from the next stage on.
    """

    def __init__(self) -> None:
        self.all: tuple[StageHook, ...] = ()
        """Every hook, in order (a new tuple at each :meth:`add`: a snapshot to iterate)."""
        self._gates: tuple[Callable[[], object], ...] = ()
        self._ungated = False

    def add(self, hook: StageHook, *, when: Callable[[], object] | None = None) -> None:
        """Add *hook* after the others; with *when*, *hook* says it has nothing to do while
        ``when()`` is false (it still runs, in its turn, when another hook makes a stage run)."""
        self.all = (*self.all, hook)
        if when is None:
            self._ungated = True
        else:
            self._gates = (*self._gates, when)

    def wanted(self) -> bool:
        """Whether a stage must run the hooks (some hook may have something to do)."""
        if self._ungated:
            return True
        for gate in self._gates:  # noqa: SIM110 - no generator: this runs on every command
            if gate():
                return True
        return False
