"""The SMTP server session, sans I/O: bytes in, events out, replies as bytes.

A :class:`Session` is one SMTP conversation as a state machine, in the manner of h11. It never
touches a socket, a loop or a thread: the transport feeds it what the client sent
(:meth:`Session.receive_data`), takes its events one at a time (:meth:`Session.next_event`),
decides what to do about each, tells the session (:meth:`Session.execute`,
:meth:`Session.refuse`, :meth:`Session.message_stored`, ...) and writes
:meth:`Session.data_to_send`. Every rule below is therefore a unit test that runs in
microseconds (``tests/test_smtp_session.py``).

The states (:class:`State`) and what moves between them::

    NEW --start()--> COMMAND --DATA (354)--> DATA --CRLF.CRLF--> COMMAND
                     COMMAND --AUTH needs a line--> AUTH --line--> COMMAND
                     COMMAND --STARTTLS (220)--> TLS_PENDING --tls_started()--> COMMAND
                     any --QUIT / 421 / close--> CLOSED

The rules it owns, and why:

* Framing: a command ends at LF (CRLF or a bare LF, as deployed clients send); a line longer
  than ``max_command_length`` (12,288 for ``AUTH``, RFC 4954) is answered 500 5.5.2 and
  discarded without being kept; a bare CR or NUL in a command is refused (501), so nothing a
  client puts in HELO or MAIL FROM can carry a second line anywhere.
* Replies never exceed 512 octets (RFC 5321 4.5.3.1.5): no reply echoes unbounded input.
* DATA: only CRLF ``.`` CRLF ends it (``LF.LF``, ``CR.CRLF``, ``LF.CRLF`` are content: the SMTP
  smuggling defence, CVE-2024-27305 class); the transparency dot is removed (4.5.2).
* The size limit is answered at MAIL (``SIZE=``) or after the final dot, never in the middle of
  DATA (RFC 1870 6): past the limit the data is counted and dropped, so memory stays bounded
  whatever the client sends, and the client always reads 552.
* Lines over ``max_line_length`` in DATA are accepted and the message reports them in its
  defects; with ``refuse_long_lines`` the message is refused (500 5.5.2) after the final dot.
* STARTTLS: every plaintext byte buffered when it is accepted is discarded, and so is anything
  received before the handshake is done, whatever TCP segment it came in (CVE-2024-34083);
  after TLS the session starts over (RFC 3207 4.2). With TLS required, only EHLO, HELO, NOOP,
  QUIT and STARTTLS are answered before it (530, as Postfix).
* AUTH PLAIN, LOGIN, CRAM-MD5 with ``*`` to abort (RFC 4954); the secret never reaches the
  transcript.
"""

from __future__ import annotations

import binascii
import enum
import re
import secrets
from base64 import b64decode, b64encode
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, NamedTuple, Protocol

from ._paths import Path, parse_params, parse_path

__all__ = [
    "AuthAttempted",
    "Authenticator",
    "CloseConnection",
    "Command",
    "Envelope",
    "Event",
    "MessageReceived",
    "Session",
    "Settings",
    "StartTLS",
    "State",
    "with_enhanced_code",
]

MASK = "********"
AUTH_LINE_LIMIT = 12_288  # RFC 4954 section 4
MAX_REPLY_LINE = 510  # RFC 5321 4.5.3.1.5: 512 octets with CRLF
_CHUNK = 1 << 16  # a DATA line with no end yet is taken this much at a time

VERBS = frozenset(
    {
        "HELO",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "RSET",
        "NOOP",
        "QUIT",
        "VRFY",
        "EXPN",
        "HELP",
        "STARTTLS",
        "AUTH",
    }
)
# RFC 3207 section 4: what a client may send before STARTTLS when TLS is required. RSET is
# not among them: Postfix answers it 530 too.
_ALLOWED_BEFORE_TLS = frozenset({"EHLO", "HELO", "NOOP", "QUIT", "STARTTLS"})
_SYNTAX = {
    "AUTH": "AUTH <mechanism> [initial-response]",
    "DATA": "DATA",
    "EHLO": "EHLO hostname",
    "EXPN": "EXPN <list>",
    "HELO": "HELO hostname",
    "HELP": "HELP [command]",
    "MAIL": "MAIL FROM:<address> [parameters]",
    "NOOP": "NOOP [ignored]",
    "QUIT": "QUIT",
    "RCPT": "RCPT TO:<address> [parameters]",
    "RSET": "RSET",
    "STARTTLS": "STARTTLS",
    "VRFY": "VRFY <address>",
}
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
_MAIL_SYNTAX = f"501 5.5.4 Syntax: {_SYNTAX['MAIL']}"
_RCPT_SYNTAX = f"501 5.5.4 Syntax: {_SYNTAX['RCPT']}"
_MAIL_PARAMS = frozenset({"BODY", "SMTPUTF8", "SIZE", "RET", "ENVID", "AUTH"})
_RCPT_PARAMS = frozenset({"NOTIFY", "ORCPT"})
_NOTIFY = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def with_enhanced_code(reply: str) -> str:
    """Insert the RFC 3463 status code a reply line lacks (``250 OK`` -> ``250 2.0.0 OK``)."""
    code, sep, text = reply[:3], reply[3:4], reply[4:]
    enhanced = _DEFAULT_ENHANCED.get(code)
    if enhanced is None or sep not in (" ", "-", "") or _ENHANCED.match(text):
        return reply
    return f"{code}{sep or ' '}{enhanced} {text}".rstrip()


class State(enum.Enum):
    NEW = "new"
    COMMAND = "command"
    AUTH = "auth"
    DATA = "data"
    TLS_PENDING = "tls-pending"
    CLOSED = "closed"


# Module-level names for the states: on Python 3.11 every ``State.X`` in a method goes through
# the enum metaclass's attribute hook (about 50 a message); a global is one dict lookup.
_NEW, _COMMAND, _AUTH, _DATA, _TLS_PENDING, _CLOSED = (
    State.NEW,
    State.COMMAND,
    State.AUTH,
    State.DATA,
    State.TLS_PENDING,
    State.CLOSED,
)


# ---------------------------------------------------------------------------------- events


class Command(NamedTuple):
    """A command line that passed framing; the transport runs its stage hooks, then calls
    :meth:`Session.execute` (or :meth:`Session.refuse`). A named tuple, not a dataclass: one
    is made per command line, and a frozen dataclass costs four times as much to build."""

    verb: str
    arg: str | None


class MessageReceived(NamedTuple):
    """The data of a transaction ended with CRLF.CRLF; the transport stores it, then calls
    :meth:`Session.message_stored` (or :meth:`Session.message_refused`)."""

    content: bytes
    envelope: Envelope


@dataclass(frozen=True)
class StartTLS:
    """``220`` to STARTTLS is queued: write it, then start the TLS handshake, then call
    :meth:`Session.tls_started`. Everything received meanwhile is discarded."""


@dataclass(frozen=True)
class CloseConnection:
    """Write what is queued, then close (after QUIT, a 421 or a refused connection)."""


@dataclass(frozen=True)
class AuthAttempted:
    """An AUTH exchange ended (for the AUTH log). *error*: the checker raised it."""

    mechanism: str
    user: str | None
    success: bool
    error: BaseException | None = None


Event = Command | MessageReceived | StartTLS | CloseConnection | AuthAttempted


@dataclass
class Envelope:
    """The mail transaction so far."""

    mail_from: str | None = None
    mail_options: list[str] = field(default_factory=list)
    rcpt_tos: list[str] = field(default_factory=list)
    rcpt_options: dict[str, list[str]] = field(default_factory=dict)
    smtputf8: bool = False


class Authenticator(Protocol):
    """What checks credentials (``smtpmock._auth.Accounts`` is one)."""

    def check(self, mechanism: str, user: str, password: str) -> bool: ...

    def check_cram_md5(self, user: str, challenge: bytes, digest: str) -> bool: ...


@dataclass(frozen=True)
class Settings:
    """What every session of one server shares (see ``ServerConfig`` for the meanings)."""

    hostname: str = "localhost"
    ident: str = "smtpmock ESMTP"
    max_message_size: int | None = 33_554_432
    smtputf8: bool = True
    max_command_length: int = 2048
    max_line_length: int | None = 1000
    refuse_long_lines: bool = False
    max_recipients: int | None = 1000
    starttls: bool = False
    """STARTTLS is offered."""
    tls_required: bool = False
    auth_mechanisms: tuple[str, ...] = ()
    """Mechanisms offered (empty: no AUTH)."""
    auth_require_tls: bool = True
    auth_required: bool = False

    # Replies that depend only on the settings, built once per server (cached_property writes
    # the instance's __dict__ directly, so it works on a frozen dataclass).

    @cached_property
    def greeting(self) -> FixedReply:
        return FixedReply.of(f"220 {self.hostname} {self.ident}")

    @cached_property
    def ehlo_plain(self) -> FixedReply:
        """The EHLO reply before TLS."""
        return FixedReply.of(*self._ehlo(tls=False))

    @cached_property
    def ehlo_tls(self) -> FixedReply:
        """The EHLO reply over TLS."""
        return FixedReply.of(*self._ehlo(tls=True))

    def _ehlo(self, *, tls: bool) -> tuple[str, ...]:
        lines = [self.hostname, "PIPELINING"]
        size = self.max_message_size
        lines.append(f"SIZE {size}" if size else "SIZE")
        lines += ["8BITMIME", "ENHANCEDSTATUSCODES", "DSN"]
        if self.smtputf8:
            lines.append("SMTPUTF8")
        if self.starttls and not tls:
            lines.append("STARTTLS")
        if self.auth_mechanisms and (tls or not self.auth_require_tls):
            lines.append("AUTH " + " ".join(self.auth_mechanisms))
        lines.append("HELP")
        return (*[f"250-{line}" for line in lines[:-1]], f"250 {lines[-1]}")


class FixedReply(NamedTuple):
    """A reply that depends only on the settings: its lines, and its octets encoded once."""

    lines: tuple[str, ...]
    octets: bytes

    @classmethod
    def of(cls, *lines: str) -> FixedReply:
        return cls(lines, "".join(line + "\r\n" for line in lines).encode("utf-8"))


class _Recorder(Protocol):
    """Where a session writes its transcript: ``record(kind, *lines)``, one call for the lines
    of one multi-line reply."""

    def __call__(self, kind: Literal["client", "server", "event"], /, *lines: str) -> None: ...


_NEED_DATA = object()


class Session:
    """One SMTP server session (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator | None = None,
        *,
        tls: bool = False,
        record: _Recorder | None = None,
        challenge: Callable[[], str] | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.tls = tls
        """Whether the connection is encrypted (implicit TLS, or after STARTTLS)."""
        self.helo: str | None = None
        self.extended = False
        self.auth_user: str | None = None
        self.envelope = Envelope()
        self.state = _NEW
        self._record = record
        self._challenge = challenge
        self._in = bytearray()
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._waiting = False  # an event awaits the transport's answer
        self._discarding_line = False
        # DATA
        self._content = bytearray()
        self._size = 0
        self._line_start = True
        self._line_length = 0  # octets of the current DATA line so far
        self._long_line = False
        self._oversize = False
        # AUTH
        self._auth_step: Callable[[bytes], None] | None = None

    # ------------------------------------------------------------------ reading

    @property
    def waiting(self) -> bool:
        """Whether the session waits for the transport's answer to the last event."""
        return self._waiting

    @property
    def buffered(self) -> int:
        """Octets received and not yet looked at."""
        return len(self._in)

    def receive_data(self, data: bytes) -> None:
        """Take bytes the client sent (b"" is ignored: the transport reports the end itself)."""
        if self.state is _TLS_PENDING or self.state is _CLOSED:
            return  # plaintext after STARTTLS is never read as commands (CVE-2024-34083)
        self._in += data

    def data_to_send(self) -> bytes:
        """The replies queued since the last call."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | None:
        """The next event, or ``None`` when more data (or the transport's answer) is needed."""
        events = self._events
        while True:
            if events:
                return events.popleft()
            if self._waiting or not self._in:
                return None  # (with nothing buffered, every state needs more data)
            state = self.state
            if state is _COMMAND:
                event = self._next_command()
            elif state is _DATA:
                event = self._next_data()
            elif state is _AUTH:
                event = self._next_auth_line()
            else:
                return None
            if event is _NEED_DATA:
                return events.popleft() if events else None
            if event is not None:
                kind = type(event)
                self._waiting = kind is Command or kind is MessageReceived
                return event  # type: ignore[return-value]

    # ------------------------------------------------------------------ the transport's answers

    def start(self, refusal: str | None = None) -> None:
        """Greet the client (or refuse the connection with *refusal* and close)."""
        if self.state is not _NEW:
            return
        if refusal is not None:
            self._reply(refusal)
            self._close()
            return
        self.state = _COMMAND
        self._send_fixed(self.settings.greeting)

    def execute(self, command: Command) -> None:
        """Run *command* (its hooks let it through)."""
        self._waiting = False
        _HANDLERS[command.verb](self, command.arg)

    def refuse(self, reply: str) -> None:
        """Answer the pending command (or the greeting) with *reply* instead of running it;
        a 421 closes the session (RFC 5321 3.8)."""
        self._waiting = False
        if self.state is _NEW:
            self.start(reply)
            return
        self._reply(reply)
        if reply.startswith("421"):
            self._close()

    def message_stored(self, message_id: str) -> None:
        self._waiting = False
        self.envelope = Envelope()
        self._send("250 2.0.0 OK: queued as " + message_id)

    def message_refused(self, reply: str) -> None:
        self._waiting = False
        self.envelope = Envelope()
        self._reply(reply)
        if reply.startswith("421"):
            self._close()

    def tls_started(self) -> None:
        """The handshake after STARTTLS is done: the session starts over (RFC 3207 4.2)."""
        self.tls = True
        self._in.clear()
        self.helo = None
        self.extended = False
        self.auth_user = None
        self.envelope = Envelope()
        self.state = _COMMAND

    def timed_out(self) -> None:
        """The client was idle too long: 421 and close."""
        if self.state is _CLOSED:
            return
        self._event("idle timeout")
        self._send(f"421 4.4.2 {self.settings.hostname} Error: timeout exceeded, closing")
        self._close()

    def connection_lost(self) -> None:
        self.state = _CLOSED
        self._in.clear()
        self._content.clear()

    @property
    def closed(self) -> bool:
        return self.state is _CLOSED

    # ------------------------------------------------------------------ replies

    def _send(self, *lines: str) -> None:
        """Queue reply lines as they are (no enhanced code added)."""
        record = self._record
        for line in lines:
            text = line if len(line) <= MAX_REPLY_LINE else line[:MAX_REPLY_LINE]
            if record is not None:
                record("server", text)
            self._out.append(_ENCODED.get(text) or text.encode("utf-8") + b"\r\n")

    def _send_fixed(self, reply: FixedReply) -> None:
        """Queue a reply built once per server (the greeting, EHLO's nine lines)."""
        if self._record is not None:
            self._record("server", *reply.lines)
        self._out.append(reply.octets)

    def _reply(self, reply: str) -> None:
        """Queue a reply, each line with its enhanced status code."""
        if "\n" in reply:
            self._send(*(with_enhanced_code(line.rstrip("\r")) for line in reply.split("\n")))
        else:
            self._send(with_enhanced_code(reply))

    def _event(self, text: str) -> None:
        if self._record is not None:
            self._record("event", text)

    def _close(self) -> None:
        self.state = _CLOSED
        self._in.clear()
        self._events.append(CloseConnection())

    # ------------------------------------------------------------------ command framing

    def _next_command(self) -> object:
        buf = self._in
        limit = self.settings.max_command_length
        if self._discarding_line:
            newline = buf.find(b"\n")
            if newline < 0:
                buf.clear()
                return _NEED_DATA
            del buf[: newline + 1]
            self._discarding_line = False
            self._refuse_line("[command line too long, discarded]")
            return None
        newline = buf.find(b"\n")
        if newline < 0:
            if len(buf) > max(limit, AUTH_LINE_LIMIT):
                buf.clear()
                self._discarding_line = True
                return None
            return _NEED_DATA
        size = newline + 1  # the line with its end
        stop = newline - 1 if newline and buf[newline - 1] == 0x0D else newline
        line = bytes(buf[:stop])  # one copy: the line without its CRLF (or bare LF)
        del buf[:size]
        if size > limit and (line[:5].upper() != b"AUTH " or size > max(limit, AUTH_LINE_LIMIT)):
            self._refuse_line(f"[command line of {size} octets, discarded]")
            return None
        arg: str | None
        if line.isascii():
            # The common case, in str from here: one decode for the verb, the argument and
            # the transcript alike.
            text = line.decode("ascii")
            verb, _, arg_text = text.partition(" ")
            verb = verb.upper()
            if self._record is not None:
                shown = text
                if verb == "AUTH" and len(arg_text.encode("ascii").split()) > 1:
                    shown = f"AUTH {arg_text.encode('ascii').split()[0].decode('ascii')} {MASK}"
                self._record("client", shown)
            if not verb.isalpha():
                self._reply("500 5.5.2 Error: bad syntax")
                return None
            if "\r" in text or "\x00" in text:
                self._reply("501 5.5.2 Error: bare CR or NUL in command")
                return None
            arg = arg_text.strip(" \t") or None
        else:
            verb_bytes, _, arg_bytes = line.partition(b" ")
            verb = verb_bytes.decode("latin-1").upper()
            if self._record is not None:
                shown = line.decode("utf-8", "backslashreplace")
                if verb == "AUTH" and len(arg_bytes.split()) > 1:
                    shown = f"AUTH {arg_bytes.split()[0].decode('ascii', 'replace')} {MASK}"
                self._record("client", shown)
            if not verb.isalpha() or not verb.isascii():
                self._reply("500 5.5.2 Error: bad syntax")
                return None
            if b"\r" in line or b"\x00" in line:
                self._reply("501 5.5.2 Error: bare CR or NUL in command")
                return None
            arg = None
            arg_bytes = arg_bytes.strip(b" \t")
            if arg_bytes:
                if not arg_bytes.isascii():
                    if not self.settings.smtputf8:
                        self._reply("500 5.6.7 Error: non-ASCII command without SMTPUTF8")
                        return None
                    try:
                        arg = arg_bytes.decode("utf-8")
                    except UnicodeDecodeError:
                        # RFC 6531 allows UTF-8 only; lone bytes would end up in addresses as
                        # surrogates that no JSON encoder or database accepts.
                        self._reply("501 5.6.7 Error: command is not valid UTF-8")
                        return None
                else:
                    arg = arg_bytes.decode("ascii")
        if verb not in VERBS:
            self._reply("500 5.5.1 Error: command not recognized")
            return None
        if self.settings.tls_required and not self.tls and verb not in _ALLOWED_BEFORE_TLS:
            self._reply("530 5.7.0 Must issue a STARTTLS command first")
            return None
        return Command(verb, arg)

    def _refuse_line(self, shown: str) -> None:
        self._event(shown)
        self._reply("500 5.5.2 Error: command line too long")

    # ------------------------------------------------------------------ commands

    def _do_HELO(self, arg: str | None) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: HELO hostname")
            return
        self.envelope = Envelope()
        self.helo, self.extended = arg, False
        self._send(f"250 {self.settings.hostname}")  # RFC 2034: no enhanced code on HELO/EHLO

    def _do_EHLO(self, arg: str | None) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: EHLO hostname")
            return
        self.envelope = Envelope()
        self.helo, self.extended = arg, True
        settings = self.settings
        self._send_fixed(settings.ehlo_tls if self.tls else settings.ehlo_plain)

    def _do_RSET(self, arg: str | None) -> None:
        if arg:
            self._reply("501 5.5.4 Syntax: RSET")
            return
        self.envelope = Envelope()
        self._send("250 2.0.0 OK")

    def _do_NOOP(self, arg: str | None) -> None:
        self._send("250 2.0.0 OK")

    def _do_QUIT(self, arg: str | None) -> None:
        if arg:
            self._reply("501 5.5.4 Syntax: QUIT")
            return
        self._send("221 2.0.0 Bye")
        self._close()

    def _do_VRFY(self, arg: str | None) -> None:
        if not arg:
            self._reply("501 5.5.4 Syntax: VRFY <address>")
            return
        self._reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery")

    def _do_EXPN(self, arg: str | None) -> None:
        self._reply("502 5.5.1 EXPN not implemented")

    def _do_HELP(self, arg: str | None) -> None:
        # only what this session offers: no AUTH without mechanisms, no STARTTLS once in TLS
        hidden = set()
        if not self.settings.starttls or self.tls:
            hidden.add("STARTTLS")
        if not self.settings.auth_mechanisms:
            hidden.add("AUTH")
        verbs = sorted(VERBS - hidden)
        if arg and arg.upper() in verbs:
            self._reply(f"250 2.0.0 Syntax: {_SYNTAX[arg.upper()]}")
        elif arg:
            self._reply("501 5.5.4 Supported commands: " + " ".join(verbs))
        else:
            self._reply("250 2.0.0 Supported commands: " + " ".join(verbs))

    def _do_STARTTLS(self, arg: str | None) -> None:
        if arg:
            self._reply("501 5.5.4 Syntax: STARTTLS")
            return
        if self.tls:
            self._reply("503 5.5.1 Error: TLS already active")
            return
        if not self.settings.starttls:
            self._reply("454 4.7.0 TLS not available")
            return
        self._send("220 2.0.0 Ready to start TLS")
        # RFC 3207 4.2 / CVE-2024-34083: nothing sent in plain text after STARTTLS is a command.
        self._in.clear()
        self.state = _TLS_PENDING
        self._events.append(StartTLS())

    def _not_ready(self) -> str | None:
        """The refusal of MAIL, RCPT or DATA before HELO/EHLO or a required AUTH."""
        if not self.helo:
            return "503 5.5.1 Error: send HELO first"
        if self.settings.auth_required and self.auth_user is None:
            return "530 5.7.0 Authentication required"
        return None

    def _do_MAIL(self, arg: str | None) -> None:
        refusal = self._not_ready()
        if refusal is not None:
            self._reply(refusal)
            return
        if not arg or arg[:5].upper() != "FROM:":
            self._reply(_MAIL_SYNTAX)
            return
        if self.envelope.mail_from is not None:
            self._reply("503 5.5.1 Error: nested MAIL command")
            return
        parsed = self._path_and_params(arg[5:], _MAIL_SYNTAX, self._check_mail_param)
        if parsed is None:
            return
        path, params = parsed
        smtputf8 = "SMTPUTF8" in params
        if not path.address.isascii() and not smtputf8:
            self._reply("553 5.6.7 Error: non-ASCII address needs the SMTPUTF8 parameter")
            return
        size = params.get("SIZE")
        limit = self.settings.max_message_size
        if size is not None and limit and int(size) > limit:
            self._reply("552 5.3.4 Error: message size exceeds fixed maximum message size")
            return
        envelope = self.envelope
        envelope.mail_from = path.address
        envelope.mail_options = path.params.split()
        envelope.smtputf8 = smtputf8
        self._send("250 2.1.0 Sender OK")

    def _path_and_params(
        self,
        text: str,
        syntax: str,
        check: Callable[[str, str | None], str | None],
        *,
        rcpt: bool = False,
    ) -> tuple[Path, dict[str, str | None]] | None:
        """The path and parameters after ``FROM:``/``TO:``, or ``None`` once refused (501 for
        syntax, 553 for a malformed mailbox, or *check*'s refusal of a parameter). RCPT takes
        ``<Postmaster>`` alone and never the null path."""
        path = parse_path(text, allow_postmaster=rcpt)
        if path.error == "syntax" or (rcpt and path.error is None and not path.address):
            self._reply(syntax)
            return None
        if path.error is not None:
            self._reply("553 5.1.3 Error: malformed address")
            return None
        params = parse_params(path.params)
        if params is None or (params and not self.extended):
            self._reply(syntax)
            return None
        for name, value in params.items():
            problem = check(name, value)
            if problem:
                self._reply(problem)
                return None
        return path, params

    def _check_mail_param(self, name: str, value: str | None) -> str | None:
        if name not in _MAIL_PARAMS:
            return "555 5.5.4 Error: MAIL parameter not recognized"
        if name == "BODY" and (value or "").upper() not in ("7BIT", "8BITMIME"):
            return "501 5.5.4 Error: BODY can only be 7BIT or 8BITMIME"
        if name == "SMTPUTF8" and (value is not None or not self.settings.smtputf8):
            return "555 5.5.4 Error: SMTPUTF8 not available or given a value"
        if name == "SIZE" and not ((value or "").isdigit() and (value or "").isascii()):
            return "501 5.5.4 Error: SIZE needs a number"
        if name == "RET" and (value or "").upper() not in ("FULL", "HDRS"):
            return "501 5.5.4 Error: RET can only be FULL or HDRS"
        if name in ("ENVID", "AUTH") and not value:
            return f"501 5.5.4 Error: {name} needs a value"
        return None

    def _do_RCPT(self, arg: str | None) -> None:
        refusal = self._not_ready()
        if refusal is not None:
            self._reply(refusal)
            return
        envelope = self.envelope
        if envelope.mail_from is None:
            self._reply("503 5.5.1 Error: need MAIL command")
            return
        if not arg or arg[:3].upper() != "TO:":
            self._reply(_RCPT_SYNTAX)
            return
        parsed = self._path_and_params(arg[3:], _RCPT_SYNTAX, _check_rcpt_param, rcpt=True)
        if parsed is None:
            return
        path, _ = parsed
        address = path.address
        if not address.isascii() and not envelope.smtputf8:
            self._reply("553 5.6.7 Error: non-ASCII address needs MAIL ... SMTPUTF8")
            return
        limit = self.settings.max_recipients
        if limit is not None and len(envelope.rcpt_tos) >= limit:
            self._reply("452 4.5.3 Error: too many recipients")
            return
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.setdefault(address, []).extend(path.params.split())
        self._send("250 2.1.5 Recipient OK")

    def _do_DATA(self, arg: str | None) -> None:
        refusal = self._not_ready()
        if refusal is not None:
            self._reply(refusal)
            return
        if self.envelope.mail_from is None:
            self._reply("503 5.5.1 Error: need MAIL command")
            return
        if not self.envelope.rcpt_tos:
            self._reply("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            self._reply("501 5.5.4 Syntax: DATA")
            return
        self._content = bytearray()
        self._size = 0
        self._line_start = True
        self._line_length = 0
        self._long_line = self._oversize = False
        self.state = _DATA
        self._send("354 End data with <CR><LF>.<CR><LF>")

    # ------------------------------------------------------------------ DATA

    def _next_data(self) -> object:
        """Consume DATA from the buffer: whole lines at a time (C-speed find/replace), a line
        without an end yet a chunk at a time so that none is held whole."""
        buf = self._in
        while buf:
            if self._line_start:
                if len(buf) < 3 and b".\r\n".startswith(bytes(buf)):
                    return _NEED_DATA  # "." or ".\r": the end marker, or a stuffed line?
                if buf.startswith(b".\r\n"):
                    del buf[:3]
                    return self._data_ended()
                if buf[0] == 0x2E:  # RFC 5321 4.5.2: remove the transparency dot
                    del buf[:1]
                    self._line_start = False
                    continue
            end = buf.find(b"\r\n.\r\n")
            if end >= 0:
                block = buf[: end + 2]
                del buf[: end + 5]
                self._take(block, whole_lines=True)
                return self._data_ended()
            last = buf.rfind(b"\r\n")
            if last >= 0:
                block = buf[: last + 2]
                del buf[: last + 2]
                self._take(block, whole_lines=True)
                continue
            # A line with no end yet: keep a short one until it ends; take a long one now,
            # all but a trailing CR (which may be half of the CRLF).
            if len(buf) < _CHUNK:
                return _NEED_DATA
            keep = 1 if buf.endswith(b"\r") else 0
            block = buf[: len(buf) - keep]
            del buf[: len(buf) - keep]
            self._take(block, whole_lines=False)
        return _NEED_DATA

    def _take(self, block: bytearray, *, whole_lines: bool) -> None:
        """Add *block* (lines ending in CRLF, or the middle of a line) to the content."""
        if whole_lines:
            # The transparency dot of every line but the first (handled by the caller).
            block = block.replace(b"\r\n.", b"\r\n")
        limit = self.settings.max_line_length
        # A block no longer than the limit cannot hold a long line: most are never split.
        if (
            limit is not None
            and not self._long_line
            and self._line_length + len(block) > limit - 2 + (2 if whole_lines else 0)
            # Nor can lines whose octets (line ends not counted) add up to no more than it.
            and not (
                whole_lines
                and self._line_length + len(block) - 2 * block.count(b"\r\n") <= limit - 2
            )
        ):
            if whole_lines:
                lines = block.split(b"\r\n")
                lines.pop()  # the empty part after the last CRLF
                longest = max(self._line_length + len(lines[0]), *map(len, lines))
            else:
                longest = self._line_length + len(block)
            if longest > limit - 2:
                self._long_line = True
        if whole_lines:
            self._line_start = True
            self._line_length = 0
        else:
            self._line_start = False
            self._line_length += len(block)
        size = self._size + len(block)
        self._size = size
        if self._oversize:
            return
        max_size = self.settings.max_message_size
        if (max_size and size > max_size) or (self._long_line and self.settings.refuse_long_lines):
            self._oversize = True
            self._content = bytearray()  # drop what was kept: memory stays bounded
            return
        self._content += block

    def _data_ended(self) -> object:
        self.state = _COMMAND
        size = self._size
        if self._oversize:
            self._content = bytearray()
            self.envelope = Envelope()
            self._event(f"[message content refused: {size} octets read]")
            limit = self.settings.max_message_size
            if limit and size > limit:
                self._reply(f"552 5.3.4 Error: message too big (the limit is {limit} octets)")
            else:
                line_limit = self.settings.max_line_length
                self._reply(
                    f"500 5.5.2 Error: line too long in DATA (RFC 5321 4.5.3.1.6 allows"
                    f" {line_limit} octets with CRLF)"
                )
            return None
        content = bytes(self._content)
        self._content = bytearray()
        self._event(f"[message content: {len(content)} octets]")
        return MessageReceived(content, self.envelope)

    # ------------------------------------------------------------------ AUTH

    def _do_AUTH(self, arg: str | None) -> None:
        settings = self.settings
        args = (arg or "").split()
        mechanism = args[0].upper() if args else ""
        refusal = None
        if not self.helo:
            refusal = "503 5.5.1 Error: send EHLO first"
        elif not settings.auth_mechanisms or self.authenticator is None:
            refusal = "502 5.5.1 Error: AUTH not available"
        elif not self.extended:
            refusal = "503 5.5.1 Error: send EHLO before AUTH"
        elif settings.auth_require_tls and not self.tls:
            refusal = "538 5.7.11 Encryption required for requested authentication mechanism"
        elif self.auth_user is not None:
            refusal = "503 5.5.1 Error: already authenticated"
        elif self.envelope.mail_from is not None:
            refusal = "503 5.5.1 Error: AUTH not allowed during a mail transaction"
        elif not args or len(args) > 2:
            refusal = "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
        elif mechanism not in settings.auth_mechanisms:
            refusal = "504 5.5.4 Error: unrecognized authentication type"
        if refusal is not None:
            self._reply(refusal)
            if mechanism and mechanism.isascii() and len(mechanism) <= 20:
                self._events.append(AuthAttempted(mechanism, None, False))
            return
        initial = args[1] if len(args) > 1 else None
        if mechanism == "PLAIN":
            self._auth_plain(initial)
        elif mechanism == "LOGIN":
            self._auth_login(initial)
        else:
            self._auth_cram(initial)

    def _challenge_line(self, challenge: bytes, step: Callable[[bytes], None]) -> None:
        self._send("334 " + b64encode(challenge).decode("ascii"))
        self._auth_step = step
        self.state = _AUTH

    def _next_auth_line(self) -> object:
        buf = self._in
        newline = buf.find(b"\n")
        if newline < 0:
            if len(buf) > AUTH_LINE_LIMIT:
                buf.clear()
                self.state = _COMMAND
                self._discarding_line = True
                self._events.append(AuthAttempted(self._auth_mechanism, None, False))
            return _NEED_DATA
        line = bytes(buf[:newline]).strip()
        del buf[: newline + 1]
        if self._record is not None:
            self._record("client", MASK)
        self.state = _COMMAND
        step, self._auth_step = self._auth_step, None
        if line == b"*":
            self._reply("501 5.7.0 Auth aborted")
            self._events.append(AuthAttempted(self._auth_mechanism, None, False))
            return None
        try:
            decoded = b64decode(line, validate=True)
        except binascii.Error:
            self._reply("501 5.5.2 Error: cannot decode base64")
            self._events.append(AuthAttempted(self._auth_mechanism, None, False))
            return None
        assert step is not None
        step(decoded)
        return None

    _auth_mechanism = ""

    def _decode_initial(self, initial: str) -> bytes | None:
        if initial == "=":
            return b""
        try:
            return b64decode(initial, validate=True)
        except binascii.Error:
            self._reply("501 5.5.2 Error: cannot decode base64")
            self._events.append(AuthAttempted(self._auth_mechanism, None, False))
            return None

    def _auth_plain(self, initial: str | None) -> None:
        self._auth_mechanism = "PLAIN"
        if initial is None:
            self._challenge_line(b"", self._plain_answer)
            return
        decoded = self._decode_initial(initial)
        if decoded is not None:
            self._plain_answer(decoded)

    def _plain_answer(self, answer: bytes) -> None:
        parts = answer.split(b"\x00")
        if len(parts) != 3:
            self._reply("501 5.5.2 Error: cannot split the PLAIN credentials")
            self._events.append(AuthAttempted("PLAIN", None, False))
            return
        self._check_password("PLAIN", parts[1], parts[2])

    def _auth_login(self, initial: str | None) -> None:
        self._auth_mechanism = "LOGIN"
        if initial is None:
            self._challenge_line(b"Username:", self._login_user)
            return
        decoded = self._decode_initial(initial)
        if decoded is not None:
            self._login_user(decoded)

    def _login_user(self, user: bytes) -> None:
        def password(secret: bytes) -> None:
            self._check_password("LOGIN", user, secret)

        self._challenge_line(b"Password:", password)

    def _check_password(self, mechanism: str, user_bytes: bytes, password: bytes) -> None:
        user = user_bytes.decode("utf-8", "replace")
        assert self.authenticator is not None
        error: BaseException | None = None
        try:
            ok = self.authenticator.check(mechanism, user, password.decode("utf-8", "replace"))
        except Exception as exc:  # a user's checker: its failure is reported, not fatal
            ok, error = False, exc
        self._auth_done(mechanism, user, ok, error)

    def _auth_cram(self, initial: str | None) -> None:
        self._auth_mechanism = "CRAM-MD5"
        if initial is not None:
            self._reply("501 5.5.4 Error: CRAM-MD5 takes no initial response")
            self._events.append(AuthAttempted("CRAM-MD5", None, False))
            return
        if self._challenge is not None:
            text = self._challenge()
        else:
            text = f"<{secrets.randbelow(10**12)}.{secrets.token_hex(4)}@{self.settings.hostname}>"
        challenge = text.encode("ascii")

        def answer(data: bytes) -> None:
            user, _, digest = data.decode("utf-8", "replace").rpartition(" ")
            assert self.authenticator is not None
            error: BaseException | None = None
            try:
                ok = bool(user) and self.authenticator.check_cram_md5(user, challenge, digest)
            except Exception as exc:
                ok, error = False, exc
            self._auth_done("CRAM-MD5", user or None, ok, error)

        self._challenge_line(challenge, answer)

    def _auth_done(
        self, mechanism: str, user: str | None, ok: bool, error: BaseException | None
    ) -> None:
        self._events.append(AuthAttempted(mechanism, user, ok, error))
        if ok:
            self.auth_user = user
            self._reply("235 2.7.0 Authentication successful")
        else:
            self._reply("535 5.7.8 Authentication credentials invalid")


def _check_rcpt_param(name: str, value: str | None) -> str | None:
    if name not in _RCPT_PARAMS:
        return "555 5.5.4 Error: RCPT parameter not recognized"
    if name == "NOTIFY":
        words = set((value or "").upper().split(","))
        if not (words == {"NEVER"} or (words and words <= _NOTIFY)):
            return "501 5.5.4 Error: NOTIFY is NEVER or a list of SUCCESS, FAILURE, DELAY"
    if name == "ORCPT" and ";" not in (value or ""):
        return "501 5.5.4 Error: ORCPT needs addr-type;address"
    return None


# The handler of each verb, looked up once per command (not getattr on a built name).
_HANDLERS: dict[str, Callable[[Session, str | None], None]] = {
    verb: getattr(Session, "_do_" + verb) for verb in VERBS
}
# The encoded form of the fixed replies sent on every message (a dict hit, not an encode).
_ENCODED: dict[str, bytes] = {
    text: text.encode("ascii") + b"\r\n"
    for text in (
        "250 2.0.0 OK",
        "250 2.1.0 Sender OK",
        "250 2.1.5 Recipient OK",
        "354 End data with <CR><LF>.<CR><LF>",
        "221 2.0.0 Bye",
    )
}
