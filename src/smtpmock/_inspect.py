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

from ._errors import MessageNotSent, UnexpectedMessage, WaitTimeout
from ._message import Message
from ._query import Criteria, Predicate
from .store import Store

__all__ = ["Mailbox"]

DEFAULT_TIMEOUT = 5.0
_MAX_LISTED = 20


class Mailbox:
    """Messages of a store after a starting point, with waits and assertions over them."""

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
        """Block until *count* messages matching *criteria* are in this mailbox; return them all.

        Messages already received count: ``wait_for(1, to="bob@example.com")`` returns at once if
        such a message is already there. To wait only for mail sent by a block of code, wrap it
        in :meth:`capture` and wait on the capture. The wait is woken by each arrival (no
        polling). On timeout it raises :class:`~smtpmock.WaitTimeout` (an ``AssertionError``)
        that lists what did arrive, closest matches first.
        """
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
            while not restart:
                with store.changed:
                    if store.generation != generation:
                        restart = True  # something was deleted: count again from the start
                        continue
                    new = self._visible(store.since(seen))
                    if not new:
                        remaining = deadline - time.monotonic()
                        # A finished capture can gain no more messages: fail now.
                        if remaining <= 0 or self._ceiling is not None:
                            break
                        store.changed.wait(remaining)
                        continue
                seen = new[-1].seq
                matched.extend(m for m in new if crit.matches(m))
                if len(matched) >= count:
                    return matched
            if not restart:
                raise WaitTimeout(self._explain_timeout(count, limit, crit, matched))

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
        self, *predicates: Predicate, count: int | None = None, **criteria: Any
    ) -> list[Message]:
        """Assert that a message matching the criteria was received; return the matches.

        With *count*, assert that exactly that many match. Fails with
        :class:`~smtpmock.MessageNotSent` listing what did arrive, closest first. Does not wait:
        use :meth:`wait_for` when the mail may still be on its way.
        """
        crit = Criteria.build(*predicates, **criteria)
        messages = self.messages
        matched = crit.filter(messages)
        if (count is None and matched) or (count is not None and len(matched) == count):
            return matched
        want = "a message" if count is None else f"exactly {count} message(s)"
        raise MessageNotSent(
            f"expected {want} matching {crit.describe()}, found {len(matched)}\n"
            + describe_messages(messages, crit)
        )

    def assert_not_sent(self, *predicates: Predicate, **criteria: Any) -> None:
        """Assert that no received message matches the criteria."""
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
