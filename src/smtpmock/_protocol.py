"""SMTP protocol glue: aiosmtpd's ``SMTP`` with smtpmock's session state and stage hooks.

This module turns an SMTP conversation into :class:`~smtpmock.Message` objects and hands them to
a ``deliver`` callable; it knows nothing about how they are stored or inspected.

Stage hooks are how features that must act *before* aiosmtpd answers a command (fault
injection, transcripts, limits) plug in without editing aiosmtpd's state machine: each hook is
``async def hook(protocol, stage, arg) -> bool`` and returns ``True`` when it has already answered
(or closed) so the command must not run. A hook may also be a plain function that returns
``False`` when it has nothing to do and an awaitable otherwise: it then costs no coroutine on
the commands it leaves alone. Stages are ``"connect"``, each command verb as sent in
upper case (``"EHLO"``, ``"MAIL"``, ``"RCPT"``, ``"DATA"``, ...), and ``"DATA_END"`` (the message
is complete, before it is stored; the hook's argument is the :class:`Message`, and a hook that
refuses it sets ``protocol.data_end_reply`` to the reply to send instead of pushing it).

What is smtpmock's own rather than aiosmtpd's, and why:

* The command loop (:meth:`SMTPProtocol._handle_client`): command lines are limited by
  ``max_command_length`` (500 5.5.2), a bare CR or NUL in a command is refused (so nothing a
  client puts in HELO or MAIL FROM can carry a second line anywhere), and every line goes to the
  session transcript.
* ``MAIL``/``RCPT``: aiosmtpd 1.4.6 refuses the null sender ``MAIL FROM:<>`` (bounces must be
  accepted) and every RCPT parameter (555); here BODY, SMTPUTF8, SIZE, RET, ENVID, AUTH (MAIL)
  and NOTIFY, ORCPT (RCPT) are accepted and recorded on the message, and ``max_recipients`` is
  enforced (452 4.5.3).
* ``DATA``: only ``CRLF.CRLF`` ends the data (``LF.LF``, ``CR.CRLF`` and ``LF.CRLF`` are content:
  the SMTP smuggling defence); the size limit (552 5.3.4) and line limit (500 5.5.2) are
  answered as soon as they are passed, the rest is read and discarded up to
  :data:`DRAIN_LIMIT` bytes (16 MiB), then the connection is closed, so memory stays bounded.
* ``EHLO`` advertises PIPELINING, ENHANCEDSTATUSCODES and DSN as well, and every reply carries an
  RFC 3463 enhanced status code (except the greeting, HELO/EHLO replies and 3xx, per RFC 2034).
* The idle timeout answers 421 4.4.2 before closing; ``max_connections`` answers 421 4.7.0.
* AUTH: CRAM-MD5 is added to aiosmtpd's PLAIN and LOGIN; every attempt is logged without its
  secret; AUTH is offered over implicit TLS too.
"""

from __future__ import annotations

import asyncio
import binascii
import datetime as _dt
import inspect
import re
import secrets
import socket
import ssl
import uuid
from base64 import b64decode, b64encode
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

from aiosmtpd.smtp import (
    DATA_SIZE_DEFAULT,
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    TLSSetupException,
    _AuthMechAttr,
    login_always_fail,
    syntax,
)
from aiosmtpd.smtp import __ident__ as _AIOSMTPD_IDENT
from aiosmtpd.smtp import log as _aiosmtpd_log

from ._auth import Accounts, AuthAttempt, AuthLog
from ._message import Message, new_id
from ._transcript import MASK, Transcript, TranscriptLog

if TYPE_CHECKING:
    from ._server import _ServerState

__all__ = ["DRAIN_LIMIT", "SMTPProtocol", "SessionSupport", "StageHook"]

StageHook = Callable[["SMTPProtocol", str, Any], "Awaitable[bool] | bool"]

DRAIN_LIMIT = 16 << 20
"""Bytes of a refused DATA read and discarded before the connection is closed. Discarding costs
no memory; reading this much more gives a client that is still pushing data through full socket
buffers (several MiB on loopback) the chance to read the refusal before the connection goes."""
_AUTH_LINE_LIMIT = 12_288  # RFC 4954 section 4: AUTH lines may be this long
# RFC 3207 section 4: what a client may send before STARTTLS when TLS is required.
_ALLOWED_BEFORE_TLS = frozenset({"EHLO", "HELO", "NOOP", "RSET", "QUIT", "STARTTLS"})
_ENHANCED = re.compile(r"\d\.\d{1,3}\.\d{1,3}(?: |$)")
_DEFAULT_ENHANCED = {
    "221": "2.0.0",
    "235": "2.7.0",
    "250": "2.0.0",
    "252": "2.5.0",
    "421": "4.3.0",
    "450": "4.2.0",
    "451": "4.3.0",
    "452": "4.3.1",
    "454": "4.7.0",
    "500": "5.5.2",
    "501": "5.5.4",
    "502": "5.5.1",
    "503": "5.5.1",
    "504": "5.5.4",
    "530": "5.7.0",
    "535": "5.7.8",
    "538": "5.7.11",
    "550": "5.0.0",
    "552": "5.3.4",
    "553": "5.1.3",
    "554": "5.0.0",
    "555": "5.5.4",
}
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 3.2.3, ASCII only
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
# "<dot-atom@dot-atom>" then nothing or parameters; the email parser would skip blanks and
# comments after ">", so a "(" there (or anything unusual before "<") takes the slow path.
_PLAIN_PATH = re.compile(rf"[ \t]*<({_DOT_ATOM}@{_DOT_ATOM})>[ \t]*((?:[^ \t(].*)?)", re.DOTALL)
_MAIL_PARAMS = frozenset({"BODY", "SMTPUTF8", "SIZE", "RET", "ENVID", "AUTH"})
_RCPT_PARAMS = frozenset({"NOTIFY", "ORCPT"})
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def _unstuff(lines: bytes) -> bytes:
    """*lines* (whole CRLF-ended lines) without the transparency dot of each (RFC 5321 4.5.2)."""
    if lines.startswith(b"."):
        lines = lines[1:]
    return lines.replace(b"\r\n.", b"\r\n")


def _longest_line(lines: bytes) -> int:
    """The length, CRLF included, of the longest of *lines* (whole CRLF-ended lines)."""
    return max(map(len, lines.split(b"\r\n"))) + 2


def with_enhanced_code(reply: str) -> str:
    """Insert the RFC 3463 status code a reply line lacks (``250 OK`` -> ``250 2.0.0 OK``)."""
    code, sep, text = reply[:3], reply[3:4], reply[4:]
    enhanced = _DEFAULT_ENHANCED.get(code)
    if enhanced is None or sep not in (" ", "-", "") or _ENHANCED.match(text):
        return reply
    return f"{code}{sep or ' '}{enhanced} {text}".rstrip()


@dataclass
class SessionSupport:
    """What every connection of one server shares besides the store: TLS, accounts, logs."""

    tls_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    accounts: Accounts | None = None
    transcripts: TranscriptLog = field(default_factory=TranscriptLog)
    auth_log: AuthLog = field(default_factory=AuthLog)


class _Envelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.params_by_rcpt: dict[str, list[str]] = {}


class _ConnectionClosed(Exception):
    pass


_FAST_INIT_OPTIONS = frozenset(
    {
        "loop",
        "hostname",
        "ident",
        "data_size_limit",
        "enable_SMTPUTF8",
        "timeout",
        "tls_context",
        "auth_require_tls",
        "auth_exclude_mechanism",
        "authenticator",
    }
)


_INTROSPECTION: dict[tuple[type, object], _Introspection] = {}


class _Introspection(NamedTuple):
    """aiosmtpd's method tables for one protocol class and handler, built once.

    aiosmtpd binds every ``smtp_*``, ``auth_*`` and ``handle_*`` method per connection; bound
    to the connection, they also make each connection a reference cycle. Here the command and
    built-in AUTH tables hold the plain functions (the session passes itself), and the hook
    table is bound to the handler, which is one object shared by every connection.
    """

    auth: tuple[tuple[str, str, bool], ...]  # (mechanism, attribute, defined on the protocol)
    hooks: dict[str, Callable[..., Any]]  # hook name -> the handler's bound method
    smtp: dict[str, Callable[..., Any]]  # command verb -> the protocol's function
    ehlo_hook_ver: str | None
    auth_tables: dict[frozenset[str], dict[str, _AuthMechAttr]]  # by excluded mechanisms

    @classmethod
    def of(cls, protocol: type, handler: object) -> _Introspection:
        found = _INTROSPECTION.get((protocol, handler))
        if found is None:
            found = _INTROSPECTION[(protocol, handler)] = cls._find(protocol, handler)
        return found

    @classmethod
    def _find(cls, protocol: type, handler: object) -> _Introspection:
        # The same names, in the same order, as aiosmtpd 1.4.6's inspect.getmembers/dir scans.
        auth = [
            (
                getattr(
                    getattr(owner, name),
                    "__auth_mechanism_name__",
                    name.replace("auth_", "").replace("__", "-"),
                ),
                name,
                owner is protocol,
            )
            for owner in (protocol, handler)
            for name in sorted(dir(owner))
            if name.startswith("auth_")
        ]
        hooks = {
            name.replace("handle_", ""): getattr(handler, name)
            for name in sorted(dir(handler))
            if name.startswith("handle_")
        }
        ehlo_hook_ver = None
        ehlo = hooks.get("EHLO")
        if ehlo is not None:
            # aiosmtpd accepts the deprecated 4-argument form too (with a warning); ours has
            # none, and a handler with the old form is refused rather than half-supported.
            if len(inspect.signature(ehlo).parameters) != 5:
                raise TypeError("SMTPProtocol's handler needs the 5-argument handle_EHLO")
            ehlo_hook_ver = "new"
        smtp = {
            name.replace("smtp_", ""): getattr(protocol, name)
            for name in sorted(dir(protocol))
            if name.startswith("smtp_")
        }
        return cls(tuple(auth), hooks, smtp, ehlo_hook_ver, {})

    def auth_table(
        self, protocol: type, handler: object, excluded: Iterable[str]
    ) -> dict[str, _AuthMechAttr]:
        """Mechanism -> method, without the *excluded* ones; built-in methods as functions."""
        key = frozenset(excluded)
        table = self.auth_tables.get(key)
        if table is None:
            table = self.auth_tables[key] = {
                mechanism: _AuthMechAttr(getattr(protocol if builtin else handler, name), builtin)
                for mechanism, name, builtin in self.auth
                if mechanism not in key
            }
        return table


def _unbound(method: Any) -> Any:
    return getattr(method, "__func__", method)


class SMTPProtocol(SMTP):
    """One SMTP connection."""

    # aiosmtpd sizes its StreamReader with this. smtpmock enforces the real line limits itself
    # (max_command_length, max_line_length); this only bounds how much of one line is buffered
    # before it is looked at, so an over-long line is refused after at most 16 KiB. It must
    # hold an AUTH line (12,288 octets, RFC 4954).
    line_length_limit = 16_384

    _fast_init: ClassVar[bool] = True
    """Build aiosmtpd's per-connection state from per-class caches (see :meth:`_init_smtp`);
    ``False`` runs aiosmtpd's own constructor (kept for the test that compares the two)."""

    @classmethod
    def factory(
        cls, state: _ServerState, support: SessionSupport, **kwargs: Any
    ) -> Callable[[], SMTPProtocol]:
        """The server's protocol factory: every connection with the same options, worked out
        once here rather than per connection."""
        prepared = cls._options(state, support, kwargs)

        def make() -> SMTPProtocol:
            return cls(state, support=support, _prepared=prepared)

        return make

    @classmethod
    def _options(
        cls, state: _ServerState, support: SessionSupport, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """aiosmtpd's constructor options for a connection, and whether :meth:`_init_smtp`
        can build it."""
        config = state.config
        accounts = support.accounts
        excluded = ["PLAIN", "LOGIN", "CRAM-MD5"]
        if accounts is not None:
            excluded = [] if accounts.knows_passwords else ["CRAM-MD5"]
        options = dict(
            loop=state.loop,
            tls_context=support.tls_context if not support.implicit_tls else None,
            auth_require_tls=not config.auth_allow_plaintext,
            auth_exclude_mechanism=excluded,
            authenticator=_check_login,
            **kwargs,
        )
        return options, cls._fast_init and options.keys() <= _FAST_INIT_OPTIONS

    def __init__(
        self,
        state: _ServerState,
        *,
        support: SessionSupport | None = None,
        _prepared: tuple[dict[str, Any], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        self.state = state
        self.support = support or SessionSupport()
        self.session_id = new_id()
        self.data_end_reply: str | None = None
        self.transcript: Transcript | None = None
        self.authenticated_user: str | None = None
        self._refused = False
        self._starting_tls = False
        self._quitting = False  # QUIT was answered: the session ends after this command
        self._last_activity = 0.0  # loop.time() of the last command or DATA line
        options, fast = _prepared or self._options(state, self.support, kwargs)
        if fast:
            self._init_smtp(_HANDLER, **options)
        else:
            SMTP.__init__(self, _HANDLER, **options)
            # aiosmtpd bound its tables to this connection; the session calls the functions.
            self._smtp_methods = {verb: _unbound(m) for verb, m in self._smtp_methods.items()}
            self._auth_methods = {
                mechanism: _AuthMechAttr(
                    _unbound(m.method) if m.is_builtin else m.method, m.is_builtin
                )
                for mechanism, m in self._auth_methods.items()
            }

    def _init_smtp(
        self,
        handler: Any,
        *,
        loop: asyncio.AbstractEventLoop,
        hostname: str | None = None,
        ident: str | None = None,
        data_size_limit: int | None = DATA_SIZE_DEFAULT,
        enable_SMTPUTF8: bool = False,
        timeout: float = 300,
        tls_context: ssl.SSLContext | None = None,
        auth_require_tls: bool = True,
        auth_exclude_mechanism: Iterable[str] | None = None,
        authenticator: Any = None,
    ) -> None:
        """What aiosmtpd 1.4.6's ``SMTP.__init__`` does, for the options smtpmock passes.

        aiosmtpd finds the ``auth_*``, ``handle_*`` and ``smtp_*`` methods with
        ``inspect.getmembers`` and ``dir`` on every connection (~95% of its constructor, and it
        grows with every method of this class); here the names are found once per class and
        only bound per connection. ``tests/test_protocol_init.py`` builds a protocol both ways
        and compares their attributes, so an aiosmtpd release that adds one fails loudly
        (pyproject pins ``aiosmtpd<1.5`` for the same reason).
        """
        self.__ident__ = ident or _AIOSMTPD_IDENT
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self,
            asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected,
            loop=loop,
        )
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        self.command_size_limits.clear()
        self.hostname = hostname or socket.getfqdn()
        self.tls_context = tls_context
        if tls_context is not None:
            if tls_context.verify_mode not in {ssl.CERT_NONE, ssl.CERT_OPTIONAL}:
                _aiosmtpd_log.warning("tls_context.verify_mode not in {CERT_NONE, CERT_OPTIONAL}")
            elif tls_context.check_hostname:
                _aiosmtpd_log.warning("tls_context.check_hostname == True")
        self.require_starttls = tls_context and False
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = auth_require_tls
        self._proxy_timeout = None
        if authenticator is not None:
            self._authenticator = authenticator
            self._auth_callback = None
        else:
            self._auth_callback = login_always_fail
            self._authenticator = None
        self._auth_required = False
        cls = type(self)
        names = _Introspection.of(cls, handler)
        # Shared by every connection of the class (nothing may change them in place).
        self._auth_methods = names.auth_table(cls, handler, auth_exclude_mechanism or ())
        self._handle_hooks = names.hooks
        self._ehlo_hook_ver = names.ehlo_hook_ver
        self._smtp_methods = names.smtp
        self._enforce_call_limit = False

    def _hooks_pending(self, stage: str, arg: Any) -> Awaitable[bool] | None:
        """Run the stage hooks in order: ``None`` if none has work to do, else an awaitable
        that is ``True`` if one of them handled the stage (the command must not run).

        A hook with nothing to do for *stage* answers ``False`` without a coroutine (the fault
        hook with no rules does, on every command); the first one that returns an awaitable,
        and every hook after it, run in :meth:`_finish_hooks`.
        """
        hooks = self.state.hooks
        for index, hook in enumerate(hooks):
            outcome = hook(self, stage, arg)
            if outcome is not False:
                return self._finish_hooks(outcome, hooks[index + 1 :], stage, arg)
        return None

    async def _finish_hooks(
        self, outcome: Awaitable[bool] | bool, rest: list[StageHook], stage: str, arg: Any
    ) -> bool:
        if outcome is True or (outcome is not False and await outcome):
            return True
        for hook in rest:
            outcome = hook(self, stage, arg)
            if outcome is True or (outcome is not False and await outcome):
                return True
        return False

    async def handle_exception(self, error: Exception) -> str:
        """The reply to a command that raised: the error is kept for ``check()``/``stop()``."""
        self.state.record_error(error)
        return "451 4.3.0 smtpmock internal error (the test will see it on check()/stop())"

    # -- helpers ----------------------------------------------------------------------------

    @property
    def in_tls(self) -> bool:
        """Whether the connection is encrypted (after STARTTLS, or implicit TLS)."""
        return self.session is not None and self.session.ssl is not None

    def _record(self, kind: Any, text: str) -> None:
        if self.transcript is not None:
            self.transcript.add(kind, text)

    async def push(self, status: str | bytes) -> None:
        """Send one reply line (an enhanced status code is added if it lacks one)."""
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        if self._starting_tls and text.startswith("220"):
            text = "220 2.0.0 Ready to start TLS"
            # RFC 3207 section 4.2 / CVE-2024-34083: nothing the client sent in plain text
            # after STARTTLS may be read as a command once TLS is up.
            self._reader._buffer.clear()  # type: ignore[attr-defined]
        else:
            text = with_enhanced_code(text)
        await self._send(text)

    async def _send(self, *lines: str) -> None:
        """Write reply lines in one write; wait for the transport only if it is backed up.

        aiosmtpd's ``push`` awaits ``drain()`` after every line; a reply is small and the
        socket takes it at once, so the await is only needed when the transport buffers
        (a slow reader: flow control), or to notice a connection that is gone.
        """
        transcript = self.transcript
        if transcript is not None:
            for line in lines:
                transcript.add("server", line)
        text = "\r\n".join(lines) + "\r\n"
        # What the writer writes to (the TLS one after STARTTLS).
        transport = cast("asyncio.WriteTransport | None", self.transport)
        if transport is None:
            raise _ConnectionClosed  # connection_lost has run
        transport.write(text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii"))
        if transport.get_write_buffer_size() or transport.is_closing():
            await self._writer.drain()

    def _write_now(self, text: str) -> None:
        """Write a reply from a synchronous callback (timeouts, refusals)."""
        writer = getattr(self, "_writer", None)
        if writer is None or self.transport is None or self.transport.is_closing():
            return
        self._record("server", text)
        writer.write(text.encode("utf-8") + b"\r\n")

    def _create_envelope(self) -> _Envelope:
        return _Envelope()

    # -- connection lifecycle ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # not the call that follows STARTTLS
        if first:
            state = self.state
            limit = state.config.max_connections
            self._refused = limit is not None and state.served >= limit
            if not self._refused:
                state.served += 1
            state.connections.add(self)
            peer = transport.get_extra_info("peername")
            self.transcript = self.support.transcripts.open(self.session_id, _peer(peer))
            self._record("event", f"connected from {_format_peer(peer)}")
        super().connection_made(transport)
        if first and self.support.implicit_tls:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                assert self.session is not None
                self.session.ssl = {
                    "ssl_object": ssl_object,
                    "cipher": transport.get_extra_info("cipher"),
                    "peercert": transport.get_extra_info("peercert"),
                }
                self._auth_require_tls = False  # already encrypted
                self._tls_started()
        elif not first:
            self._tls_started()

    def data_received(self, data: bytes) -> None:
        # StreamReaderProtocol's does the same through a weak reference to the reader; the
        # session holds the reader itself (as _reader) for as long as it can receive.
        self._reader.feed_data(data)

    def _tls_started(self) -> None:
        version = _tls_version(self.session.ssl if self.session else None)
        if self.transcript is not None:
            self.transcript.tls_version = version or "TLS"
        self._record("event", f"TLS started ({version or 'unknown version'})")

    def connection_lost(self, error: Exception | None) -> None:
        state = self.state
        if self in state.connections:  # once, although STARTTLS makes a second transport
            state.connections.discard(self)
            if not self._refused:
                state.served -= 1
        if self.transcript is not None:
            self.support.transcripts.close(self.transcript)
        super().connection_lost(error)
        task = self._handler_coroutine
        if task is None or task.done():
            self._release()
        else:
            task.add_done_callback(lambda _: self._release())

    def _release(self) -> None:
        """Drop what refers back to this protocol once its session is over.

        The stream callback, the writer, the session task and the idle timer each refer back
        to the connection and make a reference cycle, which only the cyclic garbage collector
        could free; without them the connection is freed as soon as it is gone. (The method
        tables are shared and unbound: see :class:`_Introspection`.)
        """
        self._timeout_handle = None
        self._client_connected_cb = None
        self._handler_coroutine = None
        self._writer = None  # type: ignore[assignment]  # it refers back to this protocol

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Note that the client is active (each command and each DATA line).

        aiosmtpd cancels its timer and schedules a new one on every call (~24 per 1 KiB
        message); here the time is only noted, and one timer per connection re-arms itself
        for the time left when it fires early (:meth:`_idle_check`).
        """
        self._last_activity = self.loop.time()
        if self._timeout_handle is None:
            self._timeout_handle = self.loop.call_later(
                duration or self._timeout_duration, self._idle_check
            )

    def _idle_check(self) -> None:
        left = self._last_activity + self._timeout_duration - self.loop.time()
        if left > 0:
            self._timeout_handle = self.loop.call_later(left, self._idle_check)
        else:
            self._timeout_cb()

    def _timeout_cb(self) -> None:
        self._record("event", "idle timeout")
        self._write_now(f"421 4.4.2 {self.hostname} Error: timeout exceeded, closing")
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    # -- the command loop -------------------------------------------------------------------

    async def _handle_client(self) -> None:
        """The session: the greeting, then the command loop.

        One coroutine, with the command read inline: every await between the task and the
        socket is a frame that each resumption passes through (6 or more per message).
        """
        try:
            if self._refused:
                await self.push(f"421 4.7.0 {self.hostname} Too many connections, try again later")
                assert self.transport is not None
                self.transport.close()
                return
            if self.state.hooks:
                pending = self._hooks_pending("connect", None)
                if pending is not None and await pending:
                    return
            await self.push(f"220 {self.hostname} {self.__ident__}")
        except _ConnectionClosed:
            return
        reader = self._reader
        limit = self.state.config.max_command_length
        while self.transport is not None:
            try:
                try:
                    line: bytes = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as exc:
                    raise _ConnectionClosed from exc
                except asyncio.LimitOverrunError as exc:
                    await self._discard_line(exc.consumed)
                    await self._refuse_command("[command line too long, discarded]")
                    continue
                if len(line) > limit and (
                    line[:5].upper() != b"AUTH " or len(line) > max(limit, _AUTH_LINE_LIMIT)
                ):
                    await self._refuse_command(f"[command line of {len(line)} octets, discarded]")
                    continue
                await self._dispatch(line.rstrip(b"\r\n"))
                if self._quitting:
                    self._writer.close()
                    return
            except _ConnectionClosed:
                return
            except asyncio.CancelledError:
                self._writer.close()
                raise
            except ConnectionResetError:
                self._writer.close()
                raise
            except TLSSetupException:
                # The client gave up on the handshake: a client problem, not a server error.
                self._record("event", "TLS handshake failed")
                if self._original_transport is not None:
                    self._original_transport.close()
                if self.transport is not None:
                    self.transport.close()
                self.connection_lost(None)
                return
            except Exception as error:
                try:
                    status = await self.handle_exception(error)
                except Exception as inner:  # pragma: no cover - defensive
                    status = f"451 4.3.0 error: {type(inner).__name__}"
                try:
                    await self.push(status)
                except _ConnectionClosed:
                    return

    async def _refuse_command(self, shown: str) -> None:
        """Answer a command line over ``max_command_length``; *shown* goes to the transcript."""
        self._record("client", shown)
        await self.push("500 5.5.2 Error: command line too long")

    async def _discard_line(self, pending: int) -> None:
        """Read and drop the rest of an over-long line, a buffer at a time."""
        while True:
            await self._reader.read(pending)
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                pending = exc.consumed
            except asyncio.IncompleteReadError as exc:
                raise _ConnectionClosed from exc

    async def _dispatch(self, line: bytes) -> None:
        verb_bytes, _, arg_bytes = line.partition(b" ")
        try:
            verb = verb_bytes.decode("ascii").upper()
        except UnicodeDecodeError:
            verb = ""
        shown = line.decode("utf-8", "backslashreplace")
        if verb == "AUTH" and len(arg_bytes.split()) > 1:
            shown = f"AUTH {arg_bytes.split()[0].decode('ascii', 'replace')} {MASK}"
        transcript = self.transcript
        if transcript is not None:
            transcript.add("client", shown)
        if not verb.isalpha():  # also when there is no verb at all
            await self.push("500 5.5.2 Error: bad syntax")
            return
        if b"\r" in line or b"\x00" in line:
            # A bare CR or NUL could smuggle a second line into anything that echoes the
            # argument (HELO names in Received headers, addresses in logs): refuse it.
            await self.push("501 5.5.2 Error: bare CR or NUL in command")
            return
        arg: str | None = None
        arg_bytes = arg_bytes.strip()
        if arg_bytes:
            if not self.enable_SMTPUTF8 and not arg_bytes.isascii():
                await self.push("500 5.6.7 Error: non-ASCII command without SMTPUTF8")
                return
            try:
                arg = arg_bytes.decode("utf-8")
            except UnicodeDecodeError:
                # RFC 6531 allows UTF-8 only; lone bytes would end up in addresses as
                # surrogates that no JSON encoder or database accepts.
                await self.push("501 5.6.7 Error: command is not valid UTF-8")
                return
        if (
            self.state.config.tls == "starttls-required"
            and not self.in_tls
            and verb not in _ALLOWED_BEFORE_TLS
        ):
            await self.push("530 5.7.0 Must issue a STARTTLS command first")
            return
        method = self._smtp_methods.get(verb)
        if method is None:
            await self.push(f'500 5.5.1 Error: command "{verb}" not recognized')
            return
        self._reset_timeout()
        if self.state.hooks:
            pending = self._hooks_pending(verb, arg)
            if pending is not None and await pending:
                return
        await method(self, arg)

    # -- commands ---------------------------------------------------------------------------

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: HELO hostname")
            return
        self._set_rset_state()  # type: ignore[no-untyped-call]
        assert self.session is not None
        self.session.extended_smtp = False
        self.session.host_name = hostname
        await self._send(f"250 {self.hostname}")  # RFC 2034: no enhanced code on HELO/EHLO

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str | None) -> None:
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()  # type: ignore[no-untyped-call]
        assert self.session is not None
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [self.hostname, "PIPELINING"]
        lines.append(f"SIZE {self.data_size_limit}" if self.data_size_limit else "SIZE")
        lines += ["8BITMIME", "ENHANCEDSTATUSCODES", "DSN"]
        if self.enable_SMTPUTF8:
            lines.append("SMTPUTF8")
        if self.tls_context is not None and not self.in_tls:
            lines.append("STARTTLS")
        if self._auth_methods and (self.in_tls or not self._auth_require_tls):
            lines.append("AUTH " + " ".join(sorted(self._auth_methods)))
        lines.append("HELP")
        # One write for the whole reply (aiosmtpd sends each line as its own segment).
        await self._send(*[f"250-{line}" for line in lines[:-1]], f"250 {lines[-1]}")

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str | None) -> None:
        # aiosmtpd's QUIT cancels the session's task, so every connection that ends well
        # ends with a CancelledError and its traceback; here the session just returns.
        if arg:
            await self.push("501 Syntax: QUIT")
            return
        status = await self._call_handler_hook("QUIT") if "QUIT" in self._handle_hooks else MISSING
        if status is MISSING:
            await self._send("221 2.0.0 Bye")
        else:
            await self.push(status)
        self._quitting = True

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str | None) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: STARTTLS")
            return
        if self.in_tls:
            await self.push("503 5.5.1 Error: TLS already active")
            return
        if self.tls_context is None:
            await self.push("454 4.7.0 TLS not available")
            return
        self._starting_tls = True
        try:
            await super().smtp_STARTTLS(arg)
        finally:
            self._starting_tls = False

    async def check_auth_needed(self, caller_method: str) -> bool:
        refusal = self._auth_refusal()
        if refusal is not None:
            await self.push(refusal)
            return True
        return False

    def _auth_refusal(self) -> str | None:
        assert self.session is not None
        if self.state.config.auth_required and not self.session.authenticated:
            return "530 5.7.0 Authentication required"
        return None

    def _not_ready(self) -> str | None:
        """The refusal of MAIL, RCPT or DATA before HELO/EHLO or a required AUTH (what
        aiosmtpd's ``check_helo_needed`` and :meth:`check_auth_needed` answer), else ``None``.
        A plain function: these checks pass on every transaction, and cost no coroutine then."""
        assert self.session is not None
        if not self.session.host_name:
            return "503 Error: send HELO first"
        return self._auth_refusal()

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        refusal = self._not_ready()
        if refusal is not None:
            await self.push(refusal)
            return
        syntax_error = "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"
        assert self.session is not None
        assert self.envelope is not None
        rest = self._strip_command_keyword("FROM:", arg) if arg else None
        if rest is None:
            await self.push(syntax_error)
            return
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        parsed = await self._path_and_params(rest, syntax_error, self._check_mail_param)
        if parsed is None:
            return
        address, options, params = parsed
        smtputf8 = "SMTPUTF8" in params
        if not address.isascii() and not smtputf8:
            await self.push("553 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter")
            return
        size = params.get("SIZE")
        if size is not None and self.data_size_limit and int(size) > self.data_size_limit:
            await self.push("552 5.3.4 Error: message size exceeds fixed maximum message size")
            return
        if "MAIL" in self._handle_hooks:
            status = await self._call_handler_hook("MAIL", address, options)
            if status is not MISSING:
                await self.push(status)
                return
        self.envelope.mail_from = address
        self.envelope.mail_options.extend(options)
        self.envelope.smtp_utf8 = smtputf8
        await self._send("250 2.1.0 Sender OK")

    async def _path_and_params(
        self,
        rest: str,
        syntax_error: str,
        check: Callable[[str, str | None], str | None],
        *,
        allow_null: bool = True,
    ) -> tuple[str, list[str], dict[str, str | None]] | None:
        """Parse ``<path> [params]`` of MAIL or RCPT; answer and return ``None`` on any error.

        *check* names what is wrong with one parameter (``None`` if nothing); the null path
        ``<>`` is allowed only where *allow_null* (MAIL: bounces).
        """
        assert self.session is not None
        address, params_text = self._parse_path(rest)
        if address is None:
            await self.push("553 5.1.3 Error: malformed address")
            return None
        if not address and not allow_null:
            await self.push(syntax_error)
            return None
        options = params_text.split()
        if options and not self.session.extended_smtp:
            await self.push(syntax_error)
            return None
        params = _parse_params(options)
        if params is None:
            await self.push(syntax_error)
            return None
        for name, value in params.items():
            problem = check(name, value)
            if problem:
                await self.push(problem)
                return None
        return address, options, params

    def _check_mail_param(self, name: str, value: str | None) -> str | None:
        if name not in _MAIL_PARAMS:
            return f"555 5.5.4 Error: MAIL parameter {name} not recognized"
        if name == "BODY" and (value or "").upper() not in ("7BIT", "8BITMIME"):
            return "501 5.5.4 Error: BODY can only be 7BIT or 8BITMIME"
        if name == "SMTPUTF8" and (value is not None or not self.enable_SMTPUTF8):
            return "555 5.5.4 Error: SMTPUTF8 not available or given a value"
        if name == "SIZE" and not (value or "").isdigit():
            return "501 5.5.4 Error: SIZE needs a number"
        if name == "RET" and (value or "").upper() not in ("FULL", "HDRS"):
            return "501 5.5.4 Error: RET can only be FULL or HDRS"
        if name in ("ENVID", "AUTH") and not value:
            return f"501 5.5.4 Error: {name} needs a value"
        return None

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        refusal = self._not_ready()
        if refusal is not None:
            await self.push(refusal)
            return
        assert self.session is not None
        assert self.envelope is not None
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        syntax_error = "501 5.5.4 Syntax: RCPT TO:<address> [parameters]"
        rest = self._strip_command_keyword("TO:", arg) if arg else None
        if rest is None:
            await self.push(syntax_error)
            return
        parsed = await self._path_and_params(
            rest, syntax_error, _check_rcpt_param, allow_null=False
        )
        if parsed is None:
            return
        address, options, _ = parsed
        if not address.isascii() and not self.envelope.smtp_utf8:
            await self.push("553 5.6.7 Error: non-ASCII address needs MAIL ... SMTPUTF8")
            return
        limit = self.state.config.max_recipients
        if limit is not None and len(self.envelope.rcpt_tos) >= limit:
            await self.push("452 4.5.3 Error: too many recipients")
            return
        if "RCPT" in self._handle_hooks:
            status = await self._call_handler_hook("RCPT", address, options)
            if status is not MISSING:
                await self.push(status)
                return
        self.envelope.rcpt_tos.append(address)
        self.envelope.rcpt_options.extend(options)
        assert isinstance(self.envelope, _Envelope)
        self.envelope.params_by_rcpt.setdefault(address, []).extend(options)
        await self._send("250 2.1.5 Recipient OK")

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parser, with a fast path for the common ``<local@domain>``.

        aiosmtpd runs the email header parser (and defines a class) on every MAIL and RCPT:
        ~50 us each. A path whose local part and domain are plain ASCII dot-atoms, followed by
        nothing or by parameters, parses to exactly itself, so a regex answers it; anything
        else (quoted local parts, source routes, UTF-8, literals, comments) goes to aiosmtpd.
        """
        match = _PLAIN_PATH.fullmatch(arg)
        if match is None:
            result: tuple[str | None, str | None] = super()._getaddr(arg)
            return result
        address = match.group(1)
        if self.local_part_limit and address.rfind("@") > self.local_part_limit:
            return None, None
        return address, match.group(2)

    def _parse_path(self, text: str) -> tuple[str | None, str]:
        """``<address> params`` -> (address, params); ``""`` for the null path ``<>``."""
        if text.startswith("<>"):
            return "", text[2:].strip()
        address, rest = self._getaddr(text)
        if address is None:
            return None, ""
        local, at, domain = str(address).rpartition("@")
        if not (at and local and domain) and str(address).lower() != "postmaster":
            return None, ""  # RFC 5321 4.1.2: a mailbox is local-part@domain
        return str(address), str(rest or "").strip()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        refusal = self._not_ready()
        if refusal is not None:
            await self.push(refusal)
            return
        assert self.envelope is not None
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, size = await self._read_data()
        if content is None:
            self._record("event", f"[message content refused: {size} octets read]")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self._record("event", f"[message content: {len(content)} octets]")
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 2.0.0 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes | None, int]:
        """Read DATA up to ``CRLF.CRLF``; ``(content, size)`` or ``(None, size)`` if refused.

        Only CRLF ends a line here: a lone LF or CR is content, so ``LF.LF``, ``CR.CRLF`` and
        ``LF.CRLF`` cannot end the message (SMTP smuggling, CVE-2023-51764 and relatives).

        Lines are taken a block at a time: one ``readuntil(b".\\r\\n")`` returns every line up
        to the first one that ends in a dot (the end marker is such a line, so nothing past it
        is read), and the block is split at CRLF into exactly the lines that one
        ``readuntil(b"\\r\\n")`` per line would have returned. A block longer than the
        reader's buffer limit switches to reading line by line for the rest of the message.
        """
        size_limit = self.data_size_limit
        line_limit = self.state.config.max_line_length
        content = bytearray()
        refused = False
        drained = received = 0
        line_length = 0  # octets of the current line so far
        reader = self._reader
        by_block = True
        lines: list[bytes] = []
        next_line = 0
        while True:
            if next_line < len(lines):
                chunk: bytes = lines[next_line]
                next_line += 1
            elif by_block and line_length == 0:
                try:
                    block: bytes = await reader.readuntil(b".\r\n")
                except asyncio.LimitOverrunError:
                    by_block = False
                    continue
                except asyncio.IncompleteReadError as exc:
                    raise _ConnectionClosed from exc
                if not refused and (block == b".\r\n" or block.endswith(b"\r\n.\r\n")):
                    # The block ends with the end marker: take it whole when no line in it
                    # is over a limit, which is what the lines one by one would give.
                    body = _unstuff(block[:-3])
                    if (line_limit is None or _longest_line(body) <= line_limit) and (
                        not size_limit or len(content) + len(body) <= size_limit
                    ):
                        self._reset_timeout()
                        content += body
                        break
                parts = block.split(b"\r\n")  # the block ends in CRLF: parts[-1] is b""
                lines = [part + b"\r\n" for part in parts[:-1]]
                next_line = 0
                continue
            else:
                try:
                    chunk = await reader.readuntil(b"\r\n")
                except asyncio.LimitOverrunError as exc:
                    chunk = await reader.read(exc.consumed)
                except asyncio.IncompleteReadError as exc:
                    raise _ConnectionClosed from exc
            ends_line = chunk.endswith(b"\r\n")
            if line_length == 0:
                if chunk == b".\r\n":
                    break
                if chunk.startswith(b"."):
                    chunk = chunk[1:]  # RFC 5321 4.5.2: remove the transparency dot
            line_length = 0 if ends_line else line_length + len(chunk)
            if ends_line:
                self._reset_timeout()  # a client that is sending is not idle
            if refused:
                drained += len(chunk)
                if drained > DRAIN_LIMIT:
                    self._record("event", "refused DATA kept coming: closing")
                    assert self.transport is not None
                    self.transport.close()
                    raise _ConnectionClosed
                continue
            this_line = line_length if not ends_line else len(chunk)
            if line_limit is not None and (
                this_line > line_limit or (not ends_line and line_length > line_limit)
            ):
                refused = True
                await self.push(
                    f"500 5.5.2 Error: line too long in DATA (RFC 5321 4.5.3.1.6 allows"
                    f" {line_limit} octets with CRLF)"
                )
            elif size_limit and len(content) + len(chunk) > size_limit:
                refused = True
                await self.push(
                    f"552 5.3.4 Error: message too big (the limit is {size_limit} octets)"
                )
            if refused:
                received = len(content) + len(chunk)
                content = bytearray()  # drop what was kept: memory stays bounded
                continue
            content += chunk
        if refused:
            return None, received + drained
        return bytes(content), len(content)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str | None) -> None:
        mechanism = (arg or "").split(" ", 1)[0].upper()
        before = len(self.support.auth_log.all())
        try:
            await self._auth(arg)
        finally:
            if len(self.support.auth_log.all()) == before and mechanism:
                self._log_attempt(mechanism, None, success=False)

    async def _auth(self, arg: str | None) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None
        if not self._auth_methods:
            await self.push("502 5.5.1 Error: AUTH not available")
            return
        if not self.session.extended_smtp:
            await self.push("503 5.5.1 Error: send EHLO before AUTH")
            return
        if self._auth_require_tls and not self.in_tls:
            await self.push("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if self.session.authenticated:
            await self.push("503 5.5.1 Error: already authenticated")
            return
        args = (arg or "").split()
        if not args or len(args) > 2:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        args[0] = args[0].upper()
        method = self._auth_methods.get(args[0])
        if method is None:
            await self.push("504 5.5.4 Error: unrecognized authentication type")
            return
        # Built-in mechanisms are functions of this class (aiosmtpd passes the session as
        # their second argument too); a handler's are bound to the handler.
        function: Any = method.method
        if method.is_builtin:
            result = await function(self, self, args)
        else:
            result = await function(self, args)
        if result is None or result is MISSING or result is False:
            return  # answered already by the mechanism
        if result.success:
            self.session.authenticated = True
            self.session.auth_data = result.auth_data
            self.authenticated_user = _text(getattr(result.auth_data, "login", result.auth_data))
            if self.transcript is not None:
                self.transcript.auth_user = self.authenticated_user
            await self.push(result.message or "235 2.7.0 Authentication successful")
        elif not result.handled:
            await self.push(result.message or "535 5.7.8 Authentication credentials invalid")

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> Any:
        """Send a 334 challenge and read the answer; the answer is recorded masked."""
        raw = challenge.encode() if isinstance(challenge, str) else challenge
        await self.push(b"334 " + (b64encode(raw) if encode_to_b64 else raw))
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await self._discard_line(exc.consumed)
            line = b""
        except asyncio.IncompleteReadError as exc:
            raise _ConnectionClosed from exc
        self._record("client", MASK)
        blob = line.strip()
        if blob == b"*":
            await self.push("501 5.7.0 Auth aborted")
            return MISSING
        try:
            return b64decode(blob, validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Error: cannot decode base64")
            return MISSING

    async def auth_CRAM__MD5(self, _: Any, args: list[str]) -> AuthResult:
        """RFC 2195: the client answers ``user hex(HMAC-MD5(password, challenge))``."""
        if len(args) > 1:
            await self.push("501 5.5.4 Error: CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**12)}.{uuid.uuid4().hex[:8]}@{self.hostname}>"
        answer = await self.challenge_auth(challenge.encode("ascii"))
        if answer is MISSING:
            self._log_attempt("CRAM-MD5", None, success=False)
            return AuthResult(success=False, handled=True)
        user, _, digest = bytes(answer).decode("utf-8", "replace").rpartition(" ")
        accounts = self.support.accounts
        ok = (
            bool(user)
            and accounts is not None
            and accounts.check_cram_md5(user, challenge.encode("ascii"), digest)
        )
        self._log_attempt("CRAM-MD5", user or None, success=ok)
        return AuthResult(success=ok, handled=False, auth_data=user)

    def _log_attempt(self, mechanism: str, user: str | None, *, success: bool) -> None:
        self.support.auth_log.add(
            AuthAttempt(
                time=_dt.datetime.now(_dt.timezone.utc),
                mechanism=mechanism,
                user=user,
                success=success,
                session_id=self.session_id,
                peer=_peer(self.session.peer if self.session else None),
            )
        )


def _check_login(
    server: SMTPProtocol, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    """aiosmtpd's authenticator for PLAIN and LOGIN (it passes the session as *server*)."""
    accounts = server.support.accounts
    if not isinstance(data, LoginPassword) or accounts is None:
        return AuthResult(success=False, handled=False)
    user = data.login.decode("utf-8", "replace")
    password = data.password.decode("utf-8", "replace")
    try:
        ok = accounts.check(mechanism, user, password)
    except Exception as exc:
        server.state.record_error(exc)
        ok = False
    server._log_attempt(mechanism, user, success=ok)
    return AuthResult(success=ok, handled=False, auth_data=user)


def _parse_params(options: list[str]) -> dict[str, str | None] | None:
    """``["SIZE=10", "SMTPUTF8"]`` -> ``{"SIZE": "10", "SMTPUTF8": None}``; ``None`` if bad."""
    params: dict[str, str | None] = {}
    for option in options:
        name, eq, value = option.partition("=")
        if not name.replace("-", "").isalnum() or (eq and not value) or not name.isascii():
            return None
        params[name.upper()] = value if eq else None
    return params


def _check_rcpt_param(name: str, value: str | None) -> str | None:
    if name not in _RCPT_PARAMS:
        return f"555 5.5.4 Error: RCPT parameter {name} not recognized"
    if name == "NOTIFY":
        words = set((value or "").upper().split(","))
        if not (words == {"NEVER"} or (words and words <= _NOTIFY)):
            return "501 5.5.4 Error: NOTIFY is NEVER or a list of SUCCESS, FAILURE, DELAY"
    if name == "ORCPT" and ";" not in (value or ""):
        return "501 5.5.4 Error: ORCPT needs addr-type;address"
    return None


class _Handler:
    """aiosmtpd's handler: builds the Message at end of data and delivers it. It keeps no
    state (one object serves every connection: :data:`_HANDLER`)."""

    async def handle_DATA(self, server: SMTPProtocol, session: Any, envelope: Any) -> str:
        state = server.state
        ssl_object = session.ssl
        message = Message(
            envelope.original_content or b"",
            mail_from=envelope.mail_from or "",
            rcpt_tos=envelope.rcpt_tos,
            peer=_peer(session.peer),
            helo=session.host_name or None,
            received_at=_dt.datetime.now(_dt.timezone.utc),
            tls=ssl_object is not None,
            tls_version=_tls_version(ssl_object),
            auth_user=server.authenticated_user if session.authenticated else None,
            mail_options=envelope.mail_options,
            rcpt_options=getattr(envelope, "params_by_rcpt", None),
            smtputf8=bool(getattr(envelope, "smtp_utf8", False)),
            session_id=server.session_id,
        )
        message.transcript = server.transcript
        message.mailbox = state.route(message, server.transport)  # mailbox rules (_routing)
        pending = server._hooks_pending("DATA_END", message) if state.hooks else None
        if pending is not None and await pending:
            # A hook refused the message; aiosmtpd pushes whatever we return, so the hook
            # leaves its reply here rather than pushing it itself.
            return server.data_end_reply or "451 4.3.0 message refused"
        transcript = server.transcript
        # Listed before delivery, so a store that keeps a snapshot of the transcript with the
        # message (SQLite) records which message it delivered.
        if transcript is not None:
            transcript.message_ids.append(message.id)
        try:
            await state.deliver(message)
        except BaseException:
            if transcript is not None:
                transcript.message_ids.remove(message.id)
            raise
        return f"250 2.0.0 OK: queued as {message.id}"


_HANDLER = _Handler()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _peer(peer: Any) -> tuple[str, int] | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return (str(peer[0]), int(peer[1]))
    return None


def _format_peer(peer: Any) -> str:
    found = _peer(peer)
    return f"{found[0]}:{found[1]}" if found else "unknown peer"


def _tls_version(ssl_info: Any) -> str | None:
    if not ssl_info:
        return None
    ssl_object = ssl_info.get("ssl_object") if isinstance(ssl_info, dict) else None
    if ssl_object is None:
        return None
    version = ssl_object.version()
    return str(version) if version else None
