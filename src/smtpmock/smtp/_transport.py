"""The asyncio side of the SMTP engine: one ``asyncio.Protocol`` per connection.

Thin on purpose: bytes from ``data_received`` go to the :class:`~smtpmock.smtp.Session`, its
events are acted on (stage hooks, delivery, STARTTLS, close), its replies are written. No task
or ``StreamReader`` per connection; a task exists only while something must be awaited (an
async hook, a delay, a store that commits, the TLS handshake), and the session waits for it
(commands pipelined meanwhile stay buffered, reading is paused past :data:`_MAX_BUFFERED`).

STARTTLS goes through the public ``loop.start_tls()`` (uvloop and asyncio alike); reading is
paused as soon as 220 is queued, so every later byte is either discarded plaintext or the
handshake's. The throttle belongs to the transport: both directions pass through it, replies
included, whatever the loop.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from .._auth import AuthAttempt, AuthLog
from .._config import ServerConfig
from .._errors import StorageError, StorageFull
from .._message import Message, new_id
from .._transcript import Transcript, TranscriptLog
from ._session import (
    AuthAttempted,
    Authenticator,
    CloseConnection,
    Command,
    MessageReceived,
    Session,
    Settings,
    StartTLS,
)
from ._view import HookAction, SessionView, StageHook, StageHooks

__all__ = ["SMTPConnection", "ServerContext"]

_MAX_BUFFERED = 1 << 20  # octets a busy session may hold unread before reading pauses
_THROTTLE_TICK = 0.05  # seconds of traffic handed on at once by a throttled link
INTERNAL_ERROR = "451 4.3.0 smtpmock internal error (the test will see it on check()/stop())"


class ServerContext:
    """What every connection of one server shares."""

    def __init__(
        self,
        config: ServerConfig,
        store: Any,
        loop: asyncio.AbstractEventLoop,
        *,
        settings: Settings,
        authenticator: Authenticator | None = None,
        tls_context: ssl.SSLContext | None = None,
        transcripts: TranscriptLog | None = None,
        auth_log: AuthLog | None = None,
        hooks: StageHooks | None = None,
        deliver: Callable[[Message], Awaitable[None] | None] | None = None,
        route: Callable[[Message, Any], str] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.loop = loop
        self.settings = settings
        self.authenticator = authenticator
        self.tls_context = tls_context
        self.transcripts = transcripts if transcripts is not None else TranscriptLog()
        self.auth_log = auth_log if auth_log is not None else AuthLog()
        self.hooks = hooks if hooks is not None else StageHooks()
        self.deliver = deliver if deliver is not None else _add_to(store)
        self.route = route
        """The mailbox of a delivered message, from it and the connection's transport (the
        mailbox rules); ``None``: every message stays in ``"default"``."""
        self.connections: set[SMTPConnection] = set()
        self.served = 0
        """How many of :attr:`connections` are being served (not refused by max_connections)."""
        self.errors: list[BaseException] = []
        self._errors_lock = threading.Lock()
        self.all_closed: asyncio.Event | None = None

    def record_error(self, error: BaseException) -> None:
        with self._errors_lock:
            self.errors.append(error)

    def factory(self) -> SMTPConnection:
        return SMTPConnection(self)


def _add_to(store: Any) -> Callable[[Message], None]:
    def deliver(message: Message) -> None:
        store.add(message)

    return deliver


class SMTPConnection(asyncio.Protocol):
    """One SMTP connection: the session's I/O."""

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.session_id = new_id()
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.view: SessionView | None = None
        self.transcript: Transcript | None = None
        self.tls_version: str | None = None
        self._busy = False
        self._task: asyncio.Future[Any] | None = None
        self._paused: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._throttle: _Throttle | None = None
        self._now = context.loop.time
        self._handshaking = False
        self._early: list[bytes] = []
        self._refused = False
        self._dropped = False

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        context = self.context
        self.transport = transport  # type: ignore[assignment]
        limit = context.config.max_connections
        self._refused = limit is not None and context.served >= limit
        if not self._refused:
            context.served += 1
        context.connections.add(self)
        peer = _peer(transport.get_extra_info("peername"))
        transcript = self.transcript = context.transcripts.open(self.session_id, peer)
        transcript.add("event", f"connected from {peer[0]}:{peer[1]}" if peer else "connected")
        ssl_object = transport.get_extra_info("ssl_object")
        session = self.session = Session(
            context.settings,
            context.authenticator,
            tls=ssl_object is not None,
            record=transcript.add,
        )
        self.view = SessionView(session, self.session_id, peer)
        if ssl_object is not None:
            self._tls_up(ssl_object)
        self._touch()
        if self._refused:
            session.start(
                f"421 4.7.0 {context.settings.hostname} Too many connections, try again later"
            )
        elif context.hooks.wanted():
            self._stage("connect", None, session.start)
        else:
            session.start()
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self._handshaking:
            # Reading was paused when 220 was queued: this is the first data over TLS,
            # delivered before the handshake's waiter has woken the session.
            self._early.append(data)
            return
        self._last_activity = self._now()  # _touch(): the timer is armed from connection_made
        if self._timer is None:
            self._touch()
        throttle = self._throttle
        if throttle is not None:
            throttle.receive(data)
            return
        session = self.session
        if session is not None:
            session.receive_data(data)
            self._pump()

    def _receive(self, data: bytes) -> None:
        """Bytes handed on by the throttle."""
        session = self.session
        if session is not None and self.transport is not None:
            session.receive_data(data)
            self._pump()

    def eof_received(self) -> bool | None:
        throttle = self._throttle
        if throttle is not None and throttle.inbox:
            self._receive(throttle.take_all())
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        context = self.context
        if self in context.connections:
            context.connections.discard(self)
            if not self._refused:
                context.served -= 1
            if not context.connections and context.all_closed is not None:
                context.all_closed.set()
        if self.transcript is not None:
            context.transcripts.close(self.transcript)
        if self.session is not None:
            self.session.connection_lost()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._throttle is not None:
            self._throttle.stop()
            self._throttle = None
        self._early.clear()
        self.transport = None

    def pause_writing(self) -> None:
        self._pause("write")

    def resume_writing(self) -> None:
        self._resume("write")

    # ------------------------------------------------------------------ the session's events

    def _pump(self) -> None:
        session = self.session
        if session is None or self._dropped:
            return
        next_event = session.next_event
        hooks_wanted = self.context.hooks.wanted
        while not self._busy:
            event = next_event()
            if event is None:
                break
            kind = type(event)
            if kind is Command:
                assert isinstance(event, Command)
                if not hooks_wanted():
                    session.execute(event)  # no hook can drop the connection: go on
                    continue
                self._stage(event.verb, event.arg, partial(session.execute, event))
            elif kind is MessageReceived:
                assert isinstance(event, MessageReceived)
                self._message(event)
            elif kind is AuthAttempted:
                assert isinstance(event, AuthAttempted)
                self._auth_attempted(event)
            elif kind is StartTLS:
                self._flush()
                self._start_tls()
            elif kind is CloseConnection:
                self._flush()
                self._close()
                return
            if self._was_dropped():
                return
        self._flush()
        if self._busy:
            if session.buffered > _MAX_BUFFERED:
                self._pause("busy")
        elif "busy" in self._paused:
            self._resume("busy")

    def _was_dropped(self) -> bool:
        """Whether a hook dropped the connection (while acting on the last event)."""
        return self._dropped

    def _flush(self) -> None:
        """Write every reply queued since the last flush in one ``write`` (one ``send``)."""
        session = self.session
        if session is None:
            return
        data = session.data_to_send()
        if not data:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._throttle is not None:
            self._throttle.send(data)
        else:
            transport.write(data)

    def _close(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._throttle is not None and self._throttle.outbox:
            self._throttle.close_after = True
        else:
            transport.close()

    def _spawn(self, work: Awaitable[Any]) -> None:
        """Run *work*; the session's events wait until it is done."""
        self._busy = True
        task = asyncio.ensure_future(work, loop=self.context.loop)
        self._task = task
        task.add_done_callback(self._work_done)

    def _work_done(self, task: asyncio.Future[Any]) -> None:
        self._task = None
        self._busy = False
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            self.context.record_error(error)
            if self.session is not None and self.session.waiting:
                self.session.refuse(INTERNAL_ERROR)
        self._pump()

    # ------------------------------------------------------------------ stage hooks

    def _stage(self, stage: str, arg: Any, proceed: Callable[[], Any]) -> None:
        """Run the stage hooks, then *proceed* unless one of them answered."""
        hooks = self.context.hooks.all  # a snapshot: a hook added meanwhile waits its turn
        view = self.view
        for index, hook in enumerate(hooks):
            try:
                outcome = hook(view, stage, arg)  # type: ignore[arg-type]
            except Exception as error:
                self._hook_failed(stage, error)
                return
            if outcome is None or outcome is False:
                continue
            if isinstance(outcome, HookAction) and not outcome.delay:
                if self._act(outcome, stage):
                    return
                continue
            self._spawn(self._stage_async(stage, arg, outcome, hooks[index + 1 :], proceed))
            return
        result = proceed()
        if result is not None:
            self._spawn(result)

    async def _stage_async(
        self,
        stage: str,
        arg: Any,
        outcome: Any,
        rest: tuple[StageHook, ...],
        proceed: Callable[[], Any],
    ) -> None:
        index = 0
        try:
            while True:
                if outcome is True:
                    raise TypeError(
                        "a stage hook returns None or a HookAction, not True (to answer a"
                        " command, return HookAction(reply=...))"
                    )
                if outcome not in (None, False) and not isinstance(outcome, HookAction):
                    outcome = await outcome
                if isinstance(outcome, HookAction):
                    if outcome.delay:
                        await asyncio.sleep(outcome.delay)
                    if self._act(outcome, stage):
                        return
                elif outcome not in (None, False):
                    raise TypeError(f"a stage hook returns None or an HookAction, not {outcome!r}")
                if index >= len(rest):
                    break
                outcome = rest[index](self.view, stage, arg)  # type: ignore[arg-type]
                index += 1
        except Exception as error:
            self._hook_failed(stage, error)
            return
        result = proceed()
        if result is not None:
            await result

    def _act(self, action: HookAction, stage: str) -> bool:
        """Apply a hook's *action*; ``True`` if it answered (the stage must not go on)."""
        if action.note and self.transcript is not None:
            for line in action.note.split("\n"):
                self.transcript.add("event", line)
        if action.throttle:
            if self._throttle is None:
                self._throttle = _Throttle(self, action.throttle)
            else:
                self._throttle.rate = action.throttle
        if action.drop:
            self._dropped = True
            transport = self.transport
            if transport is not None:
                # abort(), not close(): nothing queued may reach the client.
                transport.abort()
            return True
        if action.reply is not None:
            self._answer(stage, action.reply)
            return True
        return False

    def _answer(self, stage: str, reply: str) -> None:
        session = self.session
        assert session is not None
        if stage == "DATA_END":
            session.message_refused(reply)
        else:
            session.refuse(reply)  # at "connect": instead of the greeting, and close

    def _hook_failed(self, stage: str, error: Exception) -> None:
        self.context.record_error(error)
        self._answer(stage, INTERNAL_ERROR)

    # ------------------------------------------------------------------ delivery

    def _message(self, event: MessageReceived) -> None:
        session = self.session
        assert session is not None
        envelope = event.envelope
        message = Message(
            event.content,
            mail_from=envelope.mail_from or "",
            rcpt_tos=envelope.rcpt_tos,
            peer=self.view.peer if self.view is not None else None,
            helo=session.helo,
            received_at=_dt.datetime.now(_dt.timezone.utc),
            tls=session.tls,
            tls_version=self.tls_version if session.tls else None,
            auth_user=session.auth_user,
            mail_options=envelope.mail_options,
            rcpt_options=envelope.rcpt_options,
            smtputf8=envelope.smtputf8,
            session_id=self.session_id,
        )
        message.transcript = self.transcript
        if self.context.route is not None:  # mailbox rules (_routing)
            message.mailbox = self.context.route(message, self.transport)
        if self.context.hooks.wanted():
            self._stage("DATA_END", message, partial(self._deliver, message))
        else:
            pending = self._deliver(message)
            if pending is not None:
                self._spawn(pending)

    def _deliver(self, message: Message) -> Coroutine[Any, Any, None] | None:
        transcript = self.transcript
        # Listed before delivery, so a store that keeps a snapshot of the transcript with the
        # message (SQLite) records which message it delivered.
        if transcript is not None:
            transcript.message_ids.append(message.id)
        try:
            pending = self.context.deliver(message)
        except Exception as error:
            self._delivery_failed(message, error)
            return None
        if pending is None:
            assert self.session is not None
            self.session.message_stored(message.id)
            return None
        return self._finish_delivery(message, pending)

    async def _finish_delivery(self, message: Message, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception as error:
            self._delivery_failed(message, error)
            return
        assert self.session is not None
        self.session.message_stored(message.id)  # 250 only once the store has it

    def _delivery_failed(self, message: Message, error: Exception) -> None:
        transcript = self.transcript
        if transcript is not None and message.id in transcript.message_ids:
            transcript.message_ids.remove(message.id)
        session = self.session
        assert session is not None
        if isinstance(error, StorageFull):
            session.message_refused("452 4.3.1 Insufficient system storage, try again later")
        elif isinstance(error, StorageError):
            session.message_refused("451 4.3.0 Message store unavailable, try again later")
        else:
            self.context.record_error(error)
            session.message_refused(INTERNAL_ERROR)

    def _auth_attempted(self, event: AuthAttempted) -> None:
        context = self.context
        if event.error is not None:
            context.record_error(event.error)
        context.auth_log.add(
            AuthAttempt(
                time=_dt.datetime.now(_dt.timezone.utc),
                mechanism=event.mechanism,
                user=event.user,
                success=event.success,
                session_id=self.session_id,
                peer=self.view.peer if self.view is not None else None,
            )
        )
        if event.success and self.transcript is not None:
            self.transcript.auth_user = event.user

    # ------------------------------------------------------------------ TLS

    def _start_tls(self) -> None:
        transport = self.transport
        context = self.context.tls_context
        if transport is None or context is None:
            return
        # No plaintext byte is read after 220: what is already buffered was discarded by the
        # session, and the handshake takes the socket from here.
        transport.pause_reading()
        self._handshaking = True
        self._spawn(self._handshake(transport, context))

    async def _handshake(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = self.context.loop
        try:
            new = await loop.start_tls(transport, self, context, server_side=True)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError):
            self._handshaking = False
            if self.transcript is not None:
                self.transcript.add("event", "TLS handshake failed")
            transport.abort()
            return
        self._handshaking = False
        if new is None:  # pragma: no cover - the connection went meanwhile
            transport.abort()
            return
        self.transport = new
        self._tls_up(new.get_extra_info("ssl_object"))
        session = self.session
        assert session is not None
        session.tls_started()
        early, self._early = b"".join(self._early), []
        if early:
            session.receive_data(early)

    def _tls_up(self, ssl_object: Any) -> None:
        version = ssl_object.version() if ssl_object is not None else None
        self.tls_version = str(version) if version else None
        if self.transcript is not None:
            self.transcript.tls_version = self.tls_version or "TLS"
            self.transcript.add("event", f"TLS started ({self.tls_version or 'unknown version'})")

    # ------------------------------------------------------------------ timer, flow control

    def _touch(self) -> None:
        loop = self.context.loop
        self._last_activity = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self.context.config.idle_timeout, self._idle_check)

    def _idle_check(self) -> None:
        loop = self.context.loop
        left = self._last_activity + self.context.config.idle_timeout - loop.time()
        if left > 0:
            self._timer = loop.call_later(left, self._idle_check)
            return
        self._timer = None
        session = self.session
        if session is None or self.transport is None:
            return
        session.timed_out()
        self._flush()
        self._close()

    def _pause(self, reason: str) -> None:
        transport = self.transport
        if not self._paused and transport is not None and not transport.is_closing():
            transport.pause_reading()
        self._paused.add(reason)

    def _resume(self, reason: str) -> None:
        self._paused.discard(reason)
        transport = self.transport
        if not self._paused and transport is not None and not transport.is_closing():
            transport.resume_reading()


class _Throttle:
    """A slow link for one connection: both directions at *rate* bytes per second.

    Incoming bytes are held (reading paused meanwhile, so the client's sends back up as on a
    slow link) and handed to the session a slice at a time, each slice once its bytes would
    have crossed the link; replies are written the same way.
    """

    def __init__(self, connection: SMTPConnection, rate: float) -> None:
        self.connection = connection
        self.rate = float(rate)
        self.loop = connection.context.loop
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.in_at = 0.0
        self.out_at = 0.0
        self.in_handle: asyncio.TimerHandle | None = None
        self.out_handle: asyncio.TimerHandle | None = None
        self.close_after = False

    @staticmethod
    def schedule(size: int, rate: float, tick: float = _THROTTLE_TICK) -> list[tuple[int, float]]:
        """How *size* bytes cross at *rate*: ``(slice length, seconds it takes)`` pairs."""
        step = max(1, int(rate * tick))
        out = []
        left = size
        while left > 0:
            n = min(step, left)
            out.append((n, n / rate))
            left -= n
        return out

    def _slice(self, pending: bytearray, ready_at: float) -> tuple[int, float]:
        n = min(len(pending), max(1, int(self.rate * _THROTTLE_TICK)))
        return n, max(self.loop.time(), ready_at) + n / self.rate

    def receive(self, data: bytes) -> None:
        self.inbox += data
        self.connection._pause("throttle")
        if self.in_handle is None:
            n, at = self._slice(self.inbox, self.in_at)
            self.in_at = at
            self.in_handle = self.loop.call_at(at, self._release_in, n)

    def _release_in(self, n: int) -> None:
        self.in_handle = None
        chunk = bytes(self.inbox[:n])
        del self.inbox[:n]
        self.connection._receive(chunk)
        if self.inbox:
            n, at = self._slice(self.inbox, self.in_at)
            self.in_at = at
            self.in_handle = self.loop.call_at(at, self._release_in, n)
        else:
            self.connection._resume("throttle")

    def take_all(self) -> bytes:
        if self.in_handle is not None:
            self.in_handle.cancel()
            self.in_handle = None
        data = bytes(self.inbox)
        self.inbox.clear()
        return data

    def send(self, data: bytes) -> None:
        self.outbox += data
        if self.out_handle is None:
            n, at = self._slice(self.outbox, self.out_at)
            self.out_at = at
            self.out_handle = self.loop.call_at(at, self._release_out, n)

    def _release_out(self, n: int) -> None:
        self.out_handle = None
        chunk = bytes(self.outbox[:n])
        del self.outbox[:n]
        transport = self.connection.transport
        if transport is None or transport.is_closing():
            self.outbox.clear()
            return
        transport.write(chunk)
        if self.outbox:
            n, at = self._slice(self.outbox, self.out_at)
            self.out_at = at
            self.out_handle = self.loop.call_at(at, self._release_out, n)
        elif self.close_after:
            transport.close()

    def stop(self) -> None:
        for handle in (self.in_handle, self.out_handle):
            if handle is not None:
                handle.cancel()
        self.in_handle = self.out_handle = None
        self.inbox.clear()
        self.outbox.clear()


def _peer(peer: Any) -> tuple[str, int] | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    return None
