"""Inspection and waiting, written once over any store: ``messages``, ``filter``, ``wait_for``,
``assert_sent``, ``assert_not_sent`` and ``capture``.

A :class:`Mailbox` is a window onto a store: the messages whose ``seq`` lies after a floor (and,
once a capture block has ended, up to a ceiling). ``SMTPMock`` is a mailbox over its whole
store; ``capture()`` and the pytest fixture hand out narrower ones.

Waits sleep on the store's condition variable and are woken by each arrival; they never poll.
Criteria are evaluated outside the store's lock, so a slow predicate cannot stall the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import _errors
from ._errors import MessageNotSent, ServerStartError, UnexpectedMessage, WaitTimeout
from ._message import Message
from ._query import Criteria, Predicate
from .store import Store

__all__ = ["Mailbox"]

DEFAULT_TIMEOUT = 5.0
_MAX_LISTED = 20


class Mailbox:
    """Messages of a store after a starting point, with waits and assertions over them.

    The exceptions of smtpmock are attributes of every mailbox too (``mailbox.WaitTimeout``), so
    a test whose ``smtpmock`` fixture hides the module can still write
    ``pytest.raises(smtpmock.WaitTimeout)``.
    """

    SMTPMockError = _errors.SMTPMockError
    MailAssertionError = _errors.MailAssertionError
    WaitTimeout = _errors.WaitTimeout
    MessageNotSent = _errors.MessageNotSent
    UnexpectedMessage = _errors.UnexpectedMessage
    LateMail = _errors.LateMail
    LateMailWarning = _errors.LateMailWarning
    ServerError = _errors.ServerError
    ServerStartError = _errors.ServerStartError
    PortInUseError = _errors.PortInUseError
    ConfigurationError = _errors.ConfigurationError
    SearchError = _errors.SearchError
    MailboxNameError = _errors.MailboxNameError
    StorageError = _errors.StorageError
    StorageFull = _errors.StorageFull
    StorageUnavailable = _errors.StorageUnavailable

    def __init__(
        self,
        store: Store,
        *,
        floor: int = 0,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._store = store
        self._floor = floor
        self._ceiling: int | None = None
        self.default_timeout = default_timeout

    # ------------------------------------------------------------------ reading

    def _visible(self, messages: list[Message]) -> list[Message]:
        ceiling = self._ceiling
        if ceiling is None:
            return messages
        return [m for m in messages if m.seq <= ceiling]

    @property
    def messages(self) -> list[Message]:
        """The messages received so far, in arrival order (a new list on each access)."""
        return self._visible(self._store.since(self._floor))

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __getitem__(self, index: int) -> Message:
        return self.messages[index]

    def get(self, id: str) -> Message | None:
        """The message with this ``id`` in this mailbox, or ``None``."""
        message = self._store.get(id)
        if message is None or message.seq <= self._floor or not self._visible([message]):
            return None
        return message

    def filter(self, *predicates: Predicate, **criteria: Any) -> list[Message]:
        """The messages matching every criterion, in arrival order.

        Criteria: ``to``, ``sender``, ``from_``, ``subject``, ``body``, ``text``, ``html``,
        ``headers`` (a mapping), ``has_attachment``, ``attachment`` (a file name) and ``where``
        (any predicate; positional predicates work too). A ``str`` matches exactly (addresses
        ignoring case); a compiled ``re.Pattern`` is searched. ``body``/``text``/``html`` match a
        substring.
        """
        return Criteria.build(*predicates, **criteria).filter(self.messages)

    # ------------------------------------------------------------------ waiting

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        **criteria: Any,
    ) -> list[Message]:
        """Block until *count* messages matching *criteria* are in this mailbox; return those
        *count* messages (the first that matched, in arrival order).

        So ``[message] = mock.wait_for(1, to="bob@example.com")`` holds even if Bob got two
        mails. ``count`` is "at least": a wait cannot know that no more are on their way; check
        the total with ``assert_sent(..., exactly=N)`` once the waiting is done.

        Messages already received count: ``wait_for(1, to="bob@example.com")`` returns at once if
        such a message is already there. To wait only for mail sent by a block of code, wrap it
        in :meth:`capture` and wait on the capture. The wait is woken by each arrival (no
        polling). On timeout it raises :class:`~smtpmock.WaitTimeout` (an ``AssertionError``)
        that lists what did arrive, closest matches first; on a server that is not running it
        raises :class:`~smtpmock.ServerStartError` at once (no mail can arrive).
        """
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        limit = self.default_timeout if timeout is None else timeout
        crit = Criteria.build(**criteria)
        deadline = time.monotonic() + limit
        store = self._store
        while True:
            matched: list[Message] = []
            seen = self._floor
            with store.changed:
                generation = store.generation
            restart = False
            stopped = False
            while not restart:
                with store.changed:
                    if store.generation != generation:
                        restart = True  # something was deleted: count again from the start
                        continue
                    new = self._visible(store.since(seen))
                    if not new:
                        remaining = deadline - time.monotonic()
                        stopped = not self._receiving()
                        # A finished capture, or a stopped server, can gain no more messages.
                        if remaining <= 0 or self._ceiling is not None or stopped:
                            break
                        store.changed.wait(remaining)
                        continue
                seen = new[-1].seq
                matched.extend(m for m in new if crit.matches(m))
                if len(matched) >= count:
                    return matched[:count]
            if stopped:
                raise ServerStartError(self._explain_stopped(count, crit, matched))
            if not restart:
                raise WaitTimeout(self._explain_timeout(count, limit, crit, matched))

    def _receiving(self) -> bool:
        """Whether mail can still arrive: false once the server behind is stopped."""
        running = getattr(self, "running", None)  # SMTPMock's and ScopedMailbox's property
        return running is None or bool(running)

    def _explain_stopped(self, count: int, crit: Criteria, matched: list[Message]) -> str:
        noun = "message" if count == 1 else "messages"
        return (
            f"wait_for({count}) on a server that is not running (stopped, or never started): "
            f"no more mail can arrive; {len(matched)} of {count} {noun} matching "
            f"{crit.describe()} had arrived\n" + describe_messages(self.messages, crit)
        )

    def _explain_timeout(
        self, count: int, timeout: float, crit: Criteria, matched: list[Message]
    ) -> str:
        noun = "message" if count == 1 else "messages"
        head = (
            f"timed out after {timeout:g}s waiting for {count} {noun} matching "
            f"{crit.describe()}; {len(matched)} matched"
        )
        return head + "\n" + describe_messages(self.messages, crit)

    # ------------------------------------------------------------------ assertions

    def assert_sent(
        self, *predicates: Predicate, exactly: int | None = None, **criteria: Any
    ) -> list[Message]:
        """Assert that a message matching the criteria was received; return every match.

        With *exactly*, assert that exactly that many match (as Rails' ``assert_emails`` and
        pytest-httpserver's ``count=`` do). Fails with :class:`~smtpmock.MessageNotSent` listing
        what did arrive, closest first. Does not wait: use :meth:`wait_for` when the mail may
        still be on its way.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        if "count" in criteria:
            raise _errors.ConfigurationError(
                "assert_sent() takes exactly=N for 'exactly N matching messages' (count is "
                "wait_for's 'wait until N have arrived'); without it, at least one must match"
            )
        crit = Criteria.build(*predicates, **criteria)
        messages = self.messages
        matched = crit.filter(messages)
        if (exactly is None and matched) or (exactly is not None and len(matched) == exactly):
            return matched
        want = "a message" if exactly is None else f"exactly {exactly} message(s)"
        raise MessageNotSent(
            f"expected {want} matching {crit.describe()}, found {len(matched)}\n"
            + describe_messages(messages, crit)
        )

    def assert_not_sent(self, *predicates: Predicate, **criteria: Any) -> None:
        """Assert that no received message matches the criteria."""
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        crit = Criteria.build(*predicates, **criteria)
        matched = crit.filter(self.messages)
        if matched:
            lines = "\n".join(f"  {m.summary()}" for m in matched[:_MAX_LISTED])
            raise UnexpectedMessage(
                f"expected no message matching {crit.describe()}, found {len(matched)}:\n{lines}"
            )

    # ------------------------------------------------------------------ scoping

    @contextmanager
    def capture(self) -> Iterator[Mailbox]:
        """Collect the messages that arrive while the ``with`` block runs.

        The yielded mailbox sees only those messages, has the same ``wait_for``/``assert_*``
        API, and stays readable after the block (frozen at what had arrived when it ended)::

            with mock.capture() as outbox:
                app.send_welcome("bob@example.com")
                outbox.wait_for(1)
            assert outbox[0].subject == "Welcome"
        """
        box = Mailbox(self._store, floor=self._store.last_seq, default_timeout=self.default_timeout)
        try:
            yield box
        finally:
            box._ceiling = self._store.last_seq


def describe_messages(messages: list[Message], crit: Criteria | None = None) -> str:
    """List *messages* for a failure report, closest matches to *crit* first."""
    if not messages:
        return "no messages were received"
    if crit is not None and crit:
        scored = sorted(((crit.mismatches(m), m) for m in messages), key=lambda pair: len(pair[0]))
    else:
        scored = [([], m) for m in messages]
    noun = "message was" if len(messages) == 1 else "messages were"
    order = " (closest first)" if crit else ""
    lines = [f"{len(messages)} {noun} received{order}:"]
    for fails, message in scored[:_MAX_LISTED]:
        why = f"  -- fails {', '.join(fails)}" if fails else ""
        lines.append(f"  {message.summary()}{why}")
    if len(messages) > _MAX_LISTED:
        lines.append(f"  ... and {len(messages) - _MAX_LISTED} more")
    return "\n".join(lines)
