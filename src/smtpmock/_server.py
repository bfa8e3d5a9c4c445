"""``SMTPMock``: a real SMTP server in a background thread, with a mailbox to inspect.

The server runs its own asyncio loop in one daemon thread. ``start()`` binds the listening
sockets itself (so port 0 works and the bound port is known before any client connects) and
returns once the server accepts connections; ``stop()`` closes the listeners and every client
connection, then joins the thread. Nothing resolves the machine's own name on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

from ._auth import Accounts, AuthAttempt, AuthLog
from ._config import ServerConfig
from ._errors import (
    ConfigurationError,
    PortInUseError,
    ServerError,
    ServerStartError,
    WaitTimeout,
)
from ._faults import FaultsArgument, FaultSet
from ._inspect import DEFAULT_TIMEOUT, Mailbox
from ._loop import loop_factory, writable
from ._message import Message
from ._routing import Router
from ._tls import TLSMaterial, tls_material
from ._transcript import Transcript, TranscriptLog
from .smtp import ServerContext, Settings, StageHook, StageHooks
from .store import MemoryStore, Store
from .store._base import GroupCommit

__all__ = ["SMTPMock"]

# Exceptions the event loop reports that are about a client, not about smtpmock: a peer that
# hung up, a TLS handshake the client aborted. They are not errors of the server.
_CLIENT_FAULTS = (ConnectionError, TimeoutError, OSError, asyncio.CancelledError)
_STOP_GRACE = 1.0


class _AcceptAny:
    """The authenticator of ``auth_accept_any``: every user name and password is good."""

    def check(self, mechanism: str, user: str, password: str) -> bool:
        return True

    def check_cram_md5(self, user: str, challenge: bytes, digest: str) -> bool:
        return True


def _settings(config: ServerConfig, *, starttls: bool, implicit: bool) -> Settings:
    mechanisms: tuple[str, ...] = ()
    if config.auth_accept_any:
        mechanisms = ("CRAM-MD5", "LOGIN", "PLAIN")
    elif config.auth is not None:
        knows = Accounts(config.auth).knows_passwords
        mechanisms = ("CRAM-MD5", "LOGIN", "PLAIN") if knows else ("LOGIN", "PLAIN")
    return Settings(
        hostname=config.hostname,
        max_message_size=config.max_message_size,
        smtputf8=config.smtputf8,
        max_command_length=config.max_command_length,
        max_line_length=config.max_line_length,
        refuse_long_lines=config.refuse_long_lines,
        max_recipients=config.max_recipients,
        starttls=starttls and not implicit,
        tls_required=config.tls == "starttls-required",
        auth_mechanisms=mechanisms,
        auth_require_tls=not (config.auth_allow_plaintext or config.auth_accept_any),
        auth_required=config.auth_required,
    )


def _router(config: ServerConfig) -> Callable[[Message, Any], str] | None:
    """The mailbox of a delivered message by the mailbox rules (``port:`` rules read the local
    port of the transport, the connection it came in on); ``None`` without rules."""
    router = Router(config.mailbox_rules)
    if not router:
        return None

    def route(message: Message, transport: Any) -> str:
        local = transport.get_extra_info("sockname") if transport is not None else None
        port = int(local[1]) if isinstance(local, tuple) and len(local) >= 2 else None
        return router.choose(message, port)

    return route


def _group_deliver(store: Store) -> Callable[[Message], Awaitable[None] | None]:
    if not store.group_commit:
        add = store.add

        def deliver(message: Message) -> None:
            add(message)

        return deliver
    # A store that does I/O (SQLite: write, commit) must not hold the loop; concurrent
    # deliveries share one commit, and 250 still waits for it.
    return GroupCommit(store).add


class SMTPMock(Mailbox):
    """A real SMTP server on ``host:port`` (port 0: any free port) running in a thread.

    ::

        with SMTPMock() as mock:
            send_mail_via(mock.host, mock.port)
            [message] = mock.wait_for(1, to="bob@example.com")
            assert message.subject == "Welcome"

    Options (all keyword-only) are those of :class:`~smtpmock._config.ServerConfig`:
    ``hostname``, ``max_message_size``, ``smtputf8``, ``idle_timeout``; TLS: ``tls``
    (``"starttls"``, ``"starttls-required"``, ``"implicit"``), ``tls_cert``, ``tls_key``,
    ``tls_ca``; AUTH: ``auth``, ``auth_required``, ``auth_allow_plaintext``; limits:
    ``max_recipients``, ``max_connections``, ``max_command_length``, ``max_line_length``.
    ``store`` replaces the in-memory store; ``default_timeout`` is the timeout of
    :meth:`wait_for` when none is given.

    With ``tls``, :meth:`client_ssl_context` and :attr:`ca_cert_path` let clients verify the
    server; :attr:`sessions`, :meth:`transcript_for` and :meth:`wait_for_sessions` give the
    SMTP conversations; :attr:`auth_attempts` and :attr:`auth_failures` the AUTH exchanges.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        store: Store | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        faults: FaultsArgument = None,
        **options: Any,
    ) -> None:
        self.config = ServerConfig.from_options(options)
        super().__init__(
            store if store is not None else MemoryStore(), default_timeout=default_timeout
        )
        self._requested = (host, port)
        self._bound: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: ServerContext | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._lifecycle = threading.Lock()
        self._errors_reported = 0
        self._hooks = StageHooks()
        self._transcripts = TranscriptLog()
        self._auth_log = AuthLog()
        self._tls: TLSMaterial | None = None
        self._server_ssl: ssl.SSLContext | None = None
        self.faults: FaultSet = FaultSet.coerce(faults)
        """The live fault-injection rules and their log (see :class:`~smtpmock.FaultSet`);
        ``faults=`` takes a FaultSet, rules, their dict form or a Mailpit chaos string."""
        faults = self.faults
        # With no rule the fault hook answers None at every stage: saying so lets the engine
        # skip the stage machinery on every command until a rule is added.
        self._hooks.add(faults.hook, when=faults.__len__)

    # ------------------------------------------------------------------ address

    @property
    def host(self) -> str:
        """The address the server listens on (as bound; the requested host before start)."""
        return self._bound[0] if self._bound else self._requested[0]

    @property
    def port(self) -> int:
        """The port the server listens on; the real one when port 0 was asked for."""
        if self._bound is None:
            raise ServerStartError("the server is not running: call start() first")
        return self._bound[1]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SMTPMock:
        """Start listening; return once the server accepts connections. Idempotent."""
        with self._lifecycle:
            if self._thread is not None:
                return self
            make_loop = loop_factory()
            ready = threading.Event()
            outcome: dict[str, Any] = {}
            thread = threading.Thread(
                target=self._run,
                args=(make_loop, ready, outcome),
                name=f"smtpmock-{self._requested[0]}:{self._requested[1]}",
                daemon=True,
            )
            thread.start()
            ready.wait()
            if "error" in outcome:
                thread.join()
                raise outcome["error"]
            self._thread = thread
            return self

    def _run(
        self,
        make_loop: Callable[[], asyncio.AbstractEventLoop],
        ready: threading.Event,
        outcome: dict[str, Any],
    ) -> None:
        loop = make_loop()
        try:
            state = self._context(loop)
            loop.set_exception_handler(self._loop_exception)
            self._loop, self._state = loop, state
            self._errors_reported = 0  # a new run, a new error list (stop() reported the old)
            sockets = _bind(*self._requested)
            try:
                self._servers = [
                    loop.run_until_complete(
                        loop.create_server(state.factory, sock=s, ssl=self._server_ssl)
                    )
                    for s in sockets
                ]
            except BaseException:
                for s in sockets:
                    s.close()
                raise
            name = sockets[0].getsockname()
            self._bound = (str(name[0]), int(name[1]))
        except BaseException as exc:
            outcome["error"] = exc
            self._loop = None
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            self._close_loop(loop)

    def _context(self, loop: asyncio.AbstractEventLoop) -> ServerContext:
        """What the connections of this run share (TLS material is made here, once)."""
        config = self.config
        tls_context = None
        if config.tls is not None:
            self._tls = tls_material(config, self._requested[0])
            tls_context = self._tls.server_context()
        implicit = config.tls == "implicit"
        self._server_ssl = tls_context if implicit else None
        authenticator: Any = None
        if config.auth_accept_any:
            authenticator = _AcceptAny()
        elif config.auth is not None:
            authenticator = Accounts(config.auth)
        return ServerContext(
            config,
            self._store,
            loop,
            settings=_settings(config, starttls=tls_context is not None, implicit=implicit),
            authenticator=authenticator,
            tls_context=tls_context,
            transcripts=self._transcripts,
            auth_log=self._auth_log,
            hooks=self._hooks,
            deliver=_group_deliver(self._store),
            route=_router(config),
        )

    def stop(self) -> None:
        """Stop the server: close every connection and join the thread. Idempotent.

        Re-raises (as :class:`~smtpmock.ServerError`) the first error that happened inside the
        server thread and was not yet reported by :meth:`check`.
        """
        with self._lifecycle:
            thread, loop = self._thread, self._loop
            if thread is not None and loop is not None:
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(self._begin_shutdown)
                thread.join()
            self._thread = None
            self._loop = None
            self._bound = None
        self.check()

    def _begin_shutdown(self) -> None:
        assert self._loop is not None
        try:
            for server in self._servers:
                server.close()
            state = self._state
            for protocol in list(state.connections if state is not None else ()):
                # A connection that fails to close here is aborted by _close_loop after the
                # grace period; its error is the client's business, not a server error.
                with contextlib.suppress(Exception):
                    _close_connection(protocol.transport)
        finally:
            # Whatever a transport did above, the loop must stop, or stop() would wait forever.
            self._loop.stop()

    def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        state = self._state
        try:
            # Let the transports closed above deliver connection_lost, then abort any
            # connection that is still open (a TLS peer that does not answer close_notify).
            if state is not None and state.connections:
                loop.run_until_complete(_drain_connections(state, _STOP_GRACE))
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            for server in self._servers:
                loop.run_until_complete(server.wait_closed())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._servers = []
            loop.close()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, _CLIENT_FAULTS):
            return
        if error is None:
            error = RuntimeError(context.get("message", "unknown error in the server loop"))
        if self._state is not None:
            self._state.record_error(error)

    def check(self) -> None:
        """Raise :class:`~smtpmock.ServerError` if the server thread hit an error since the
        last check; the original exception is its ``__cause__``."""
        state = self._state
        if state is None:
            return
        errors = state.errors[self._errors_reported :]
        if not errors:
            return
        self._errors_reported += len(errors)
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ServerError(
            f"error in the smtpmock server thread: {type(first).__name__}: {first}{more}"
        ) from first

    @property
    def errors(self) -> list[BaseException]:
        """Every error raised in the server thread so far (reported or not)."""
        return list(self._state.errors) if self._state is not None else []

    def reset(self) -> None:
        """Forget every received message, session transcript and AUTH attempt."""
        self._store.clear()
        self._transcripts.clear()
        self._auth_log.clear()

    # ------------------------------------------------------------------ TLS, AUTH, transcripts

    @property
    def ca_cert_path(self) -> str | None:
        """Path of the PEM CA certificate that verifies the server (for ``swaks --tls-ca-path``,
        ``curl --cacert``); ``None`` without ``tls`` or before :meth:`start`."""
        return self._tls.ca_path if self._tls is not None else None

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSLContext that *verifies* this server's certificate (hostname included): pass it
        to ``smtplib.SMTP.starttls(context=...)``, ``smtplib.SMTP_SSL(context=...)`` or
        ``aiosmtplib``. Raises :class:`~smtpmock.ConfigurationError` without ``tls``."""
        if self.config.tls is None:
            raise ConfigurationError("client_ssl_context() needs a server started with tls=...")
        if self._tls is None:
            raise ServerStartError("the server is not running: call start() first")
        return self._tls.client_context()

    @property
    def sessions(self) -> list[Transcript]:
        """Transcripts of the newest 1,000 SMTP sessions, oldest first, including sessions that
        delivered nothing (and open ones)."""
        return self._transcripts.all()

    def transcript_for(self, message: Message) -> Transcript | None:
        """The transcript of the session that delivered *message* (``None`` if it aged out)."""
        return self._transcripts.get(message.session_id)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """Every AUTH attempt so far, oldest first (user, mechanism, success, time; never the
        secret)."""
        return self._auth_log.all()

    @property
    def auth_failures(self) -> list[AuthAttempt]:
        """The AUTH attempts that failed."""
        return [a for a in self._auth_log.all() if not a.success]

    def wait_for_sessions(self, count: int = 1, timeout: float | None = None) -> list[Transcript]:
        """Wait until at least *count* SMTP sessions have ended (the client or the server closed
        the connection) and return the ended sessions, oldest first; raises
        :class:`~smtpmock.WaitTimeout` after *timeout* seconds (default: ``default_timeout``).

        What a test of retries needs: ``assert len(mock.wait_for_sessions(3)) == 3``.
        """
        limit = self.default_timeout if timeout is None else timeout
        ended = self._transcripts.wait_closed(count, limit)
        if ended is None:
            sessions = self._transcripts.all()
            closed = sum(1 for t in sessions if t.ended_at is not None)
            raise WaitTimeout(
                f"waited {limit:g}s for {count} ended SMTP session(s); {closed} ended, "
                f"{len(sessions) - closed} still open"
            )
        return ended

    def add_hook(self, hook: StageHook) -> None:
        """Register a stage hook, before or after start: ``hook(view, stage, arg)`` gets a
        read-only :class:`~smtpmock.SessionView`, the stage (``"connect"``, a command
        verb, ``"DATA_END"``) and its argument (the command's, or the :class:`Message` at
        ``DATA_END``), and returns ``None`` to go on or a :class:`~smtpmock.smtp.HookAction`
        (reply, drop, delay, throttle), or an awaitable of either. Hooks run in the
        server's loop thread, in the order they were added."""
        self._hooks.add(hook)

    def run_in_loop(self, fn: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 5.0) -> Any:
        """Run a coroutine function on the server's loop and return its result."""
        if self._loop is None:
            raise ServerStartError("the server is not running")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout)

    def __enter__(self) -> SMTPMock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
        else:
            # Do not let a server error hide the exception that is already propagating.
            with contextlib.suppress(ServerError):
                self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._bound[1]}" if self._bound else "not running"
        return f"<SMTPMock {where} messages={len(self._store)}>"


def _close_connection(transport: asyncio.BaseTransport | None) -> None:
    if transport is None or transport.is_closing():
        return
    writer = writable(transport)
    try:
        pending = writer.get_write_buffer_size() if writer is not None else 0
    except Exception:  # a TLS transport mid-handshake may not know yet
        pending = 1
    if pending == 0 and writer is not None:
        # Nothing left to send: abort at once. close() on a TLS connection would wait for the
        # peer's close_notify, which an idle client never sends.
        writer.abort()
    else:
        transport.close()  # flush what is queued, within the grace period of _close_loop


async def _drain_connections(state: ServerContext, grace: float) -> None:
    # Wait (woken by the last connection_lost, no polling) for the closed transports to
    # finish, then abort whatever is still open: a TLS peer that never answers close_notify.
    if state.connections:
        state.all_closed = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(state.all_closed.wait(), grace)
    for protocol in list(state.connections):
        writer = writable(protocol.transport)
        if writer is not None:
            writer.abort()
    await asyncio.sleep(0)


async def _quietly(waiting: Coroutine[Any, Any, Any]) -> None:
    # A connection that ends with an error has ended all the same.
    with contextlib.suppress(Exception):
        await waiting


def _bind(host: str, port: int) -> list[socket.socket]:
    """Create and bind the listening sockets for *host*, one per address family it resolves to.

    With port 0 every socket gets the port the system chose for the first one, so a name that
    resolves to both IPv4 and IPv6 (``localhost``) is one server on one port.
    """
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as exc:
        raise ServerStartError(f"cannot resolve host {host!r}: {exc}") from exc
    seen: set[tuple[Any, ...]] = set()
    sockets: list[socket.socket] = []
    chosen_port = port
    try:
        for family, type_, proto, _, addr in infos:
            key = (family, addr[0])
            if key in seen:
                continue
            seen.add(key)
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            target = (addr[0], chosen_port, *addr[2:])
            try:
                sock.bind(target)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUseError(host, chosen_port) from exc
                raise ServerStartError(f"cannot listen on {host}:{chosen_port}: {exc}") from exc
            chosen_port = sock.getsockname()[1]
            sock.listen(1024)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
