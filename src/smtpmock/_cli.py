"""``smtpmock serve``: the SMTP server and the HTTP API in one process.

Every :class:`~smtpmock._config.ServerConfig` field is a flag, generated from the dataclass (so a
new option appears here by itself) with its docstring as help text: a ``bool`` field is a plain
switch (``--auth-required``; ``--no-auth-required`` turns it off; ``--auth-required true`` still
works), an optional field takes ``none``, a ``Literal`` field its choices, and the AUTH option
``user:password[,user:password]`` (or one of the words its type allows). Each flag can also be
given as an ``SMTPMOCK_<NAME>`` environment variable (the flag wins). Every value is checked
before anything starts, and a refusal names the flag, never a Python parameter.

Messages go to a SQLite file: ``--db PATH`` keeps it, otherwise a temporary file is removed on
exit. SIGINT or SIGTERM stops the server at once: event streams end, pending waits are answered
503 ``{"Status": "shutdown"}``, one line says so, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import atexit
import collections
import contextlib
import dataclasses
import email.header
import errno
import inspect
import ipaddress
import itertools
import logging
import math
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from . import _config
from ._config import ServerConfig
from ._errors import ConfigurationError, PortInUseError, SMTPMockError
from ._version import smtpmock_version

__all__ = ["main"]

_ENV = "SMTPMOCK_"
_NONE = ("none", "null", "off", "")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _field_docs() -> dict[str, str]:
    """The docstring under each ``ServerConfig`` field (attribute docstrings, read with ast)."""
    tree = ast.parse(inspect.getsource(_config))
    docs: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "ServerConfig":
            body = node.body
            for stmt, nxt in itertools.pairwise(body):
                if (
                    isinstance(stmt, ast.AnnAssign)
                    and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)
                ):
                    docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def flag_name(field: str) -> str:
    """``max_message_size`` -> ``--max-message-size``."""
    return "--" + field.replace("_", "-")


# --------------------------------------------------------------------------- value parsers
# Each takes the string a user typed and returns the value, or raises ArgumentTypeError with a
# sentence that makes sense after "argument --flag: ".


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(
        f"{value!r} is not on or off (give the flag alone to turn it on)"
    )


def _whole(value: str) -> int:
    try:
        number = int(value.strip().replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if abs(number) >= 2**63:
        raise argparse.ArgumentTypeError(f"{value} is out of range")
    return number


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number")
    return number


def _port(value: str) -> int:
    number = _whole(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value} is not a TCP port (0-65535; 0 lets the system pick a free one)"
        )
    return number


def _positive_int(value: str) -> int:
    number = _whole(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive whole number")
    return number


def _positive_seconds(value: str) -> float:
    number = _number(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of seconds")
    return number


def _user_password(value: str) -> str:
    user, sep, _password = value.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError(f"{value!r} is not user:password")
    return value


def _accounts(words: Sequence[str] = ()) -> Callable[[str], Any]:
    """``user:password[,user:password]`` as a dict, or one of *words* (the Literal values the
    AUTH option's type allows, e.g. a word meaning "accept any credentials") as itself."""

    def accounts(value: str) -> Any:
        if value in words:
            return value
        out: dict[str, str] = {}
        for item in value.split(","):
            user, sep, password = item.strip().partition(":")
            if not sep or not user:
                also = f" or one of {', '.join(words)}" if words else ""
                raise argparse.ArgumentTypeError(
                    f"accounts are user:password[,user:password]{also}, not {item!r}"
                )
            out[user] = password
        return out

    return accounts


@dataclasses.dataclass
class _Kind:
    """How one ``ServerConfig`` field reads from the command line."""

    parse: Callable[[str], Any]
    switch: bool = False
    optional: bool = False
    choices: list[str] | None = None
    accounts: bool = False


def _literals(hint: Any) -> list[Any]:
    return list(typing.get_args(hint)) if typing.get_origin(hint) is Literal else []


def _kind(hint: Any) -> _Kind:
    """The parser for a field's type; generic, so a new field gets a working flag."""
    args: tuple[Any, ...] = (hint,)
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        optional = type(None) in args
        args = tuple(a for a in args if a is not type(None))
    # Flatten unions nested in aliases (AuthOption = Mapping | Callable | ...).
    flat: list[Any] = []
    for arg in args:
        if typing.get_origin(arg) in (typing.Union, types.UnionType):
            flat += [a for a in typing.get_args(arg) if a is not type(None)]
        else:
            flat.append(arg)
    words = [str(w) for a in flat for w in _literals(a)]
    if any(typing.get_origin(a) in (Mapping, dict) or a in (Mapping, dict) for a in flat):
        return _Kind(_accounts(words), optional=optional, accounts=True)
    if (
        words
        and len(words) == sum(len(_literals(a)) for a in flat)
        and all(_literals(a) for a in flat)
    ):
        return _Kind(str, optional=optional, choices=words)
    if flat == [bool]:
        return _Kind(_boolean, switch=True, optional=optional)
    if flat == [int]:
        return _Kind(_whole, optional=optional)
    if flat in ([float], [int, float], [float, int]):
        return _Kind(_number, optional=optional)
    return _Kind(str, optional=optional)


def _wrap(kind: _Kind) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        if kind.optional and value.strip().lower() in _NONE:
            return None
        if kind.choices is not None and value not in kind.choices:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not one of {', '.join(kind.choices)}"
                + (" (or none)" if kind.optional else "")
            )
        return kind.parse(value)

    parse.__name__ = "value"
    return parse


def _config_flags(parser: argparse.ArgumentParser) -> list[tuple[str, Callable[[str], Any]]]:
    group = parser.add_argument_group(
        "SMTP server options",
        f"Also settable as {_ENV}<NAME> environment variables (e.g. {_ENV}MAX_MESSAGE_SIZE); "
        "'none' clears an optional limit; a switch is given alone to turn it on.",
    )
    docs = _field_docs()
    hints = typing.get_type_hints(ServerConfig, vars(_config))
    out = []
    for f in dataclasses.fields(ServerConfig):
        kind = _kind(hints[f.name])
        parse = _wrap(kind)
        flag = flag_name(f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = "(callable)" if callable(default) else repr(default)
        help_text = f"{docs.get(f.name, f.name)} [default: {shown}; env {_ENV}{f.name.upper()}]"
        if kind.accounts:
            help_text = "Accounts as user:password[,user:password]. " + help_text
        if kind.switch:
            group.add_argument(
                flag,
                dest=f.name,
                nargs="?",
                const=True,
                type=parse,
                default=argparse.SUPPRESS,
                metavar="on|off",
                help=help_text.replace("%", "%%"),
            )
            group.add_argument(
                "--no-" + f.name.replace("_", "-"),
                dest=f.name,
                action="store_false",
                default=argparse.SUPPRESS,
                help=f"turn {flag} off",
            )
        else:
            metavar = "{" + ",".join(kind.choices) + "}" if kind.choices else f.name.upper()
            group.add_argument(
                flag,
                dest=f.name,
                type=parse,
                default=argparse.SUPPRESS,
                metavar=metavar,
                help=help_text.replace("%", "%%"),
            )
        out.append((f.name, parse))
    return out


def in_cli_words(text: str, names: Sequence[str]) -> str:
    """A ``ServerConfig`` refusal in the command line's words: ``auth_required=True needs
    accounts: auth={...}`` becomes ``--auth-required needs accounts: --auth user:password``."""
    for name in sorted(names, key=len, reverse=True):
        flag = flag_name(name)
        word = rf"(?<![\w.-]){re.escape(name)}"
        text = re.sub(word + r"=True\b", flag, text)
        text = re.sub(word + r"=False\b", "--no-" + name.replace("_", "-"), text)
        text = re.sub(word + r"=\{\.\.\.\}", f"{flag} user:password", text)
        text = re.sub(word + r"='([^']*)'", rf"{flag} \1", text)
        text = re.sub(word + r"=\.\.\.", f"{flag} ...", text)
        text = re.sub(word + r"=", f"{flag} ", text)
        text = re.sub(word + r"\b", flag, text)
    return re.sub(r"\bor None\b", "or none", text).replace(" is None", " is not set")


# --------------------------------------------------------------------------- the parser

_SERVE_FLAGS: dict[str, Callable[[str], Any]] = {
    "smtp_host": str,
    "smtp_port": _port,
    "http_host": str,
    "http_port": _port,
    "db": str,
    "max_messages": _positive_int,
    "max_bytes": _positive_int,
    "max_age": _positive_seconds,
    "chaos_triggers": str,
    "http_auth": _user_password,
    "http_htpasswd": str,
    "http_max_body": _positive_int,
}
"""The flags of ``serve`` itself (not SMTP options), with their parsers (for the environment
variables too)."""


def build_parser() -> tuple[
    argparse.ArgumentParser, argparse.ArgumentParser, list[tuple[str, Callable[[str], Any]]]
]:
    """``(smtpmock's parser, serve's parser, [(config field, parser), ...])``."""
    parser = argparse.ArgumentParser(
        prog="smtpmock",
        description="A real SMTP server for tests. 'smtpmock serve' runs it standalone with an "
        "HTTP API and a web UI (see docs/server.md).",
    )
    parser.add_argument("--version", action="version", version=f"smtpmock {smtpmock_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the SMTP server, the HTTP API and the web UI",
        usage="smtpmock serve [options] (smtpmock serve --help lists them)",
        description="Run the SMTP server and the HTTP API in one process until SIGINT/SIGTERM. "
        "Every flag can also be set as an SMTPMOCK_<FLAG> environment variable "
        "(dashes as underscores, e.g. SMTPMOCK_HTTP_PORT=0).",
    )
    serve.add_argument("--smtp-host", default=None, help="SMTP listen address [127.0.0.1]")
    serve.add_argument(
        "--smtp-port", type=_port, default=None, help="SMTP port, 0 for any free one [1025]"
    )
    serve.add_argument("--http-host", default=None, help="HTTP listen address [127.0.0.1]")
    serve.add_argument(
        "--http-port", type=_port, default=None, help="HTTP port, 0 for any free one [8025]"
    )
    serve.add_argument(
        "--db",
        default=None,
        metavar="PATH|URL",
        help="SQLite file to keep messages in (reopened on restart), or a postgresql:// URL "
        "shared by several instances; default: a temporary file removed on exit",
    )
    serve.add_argument(
        "--max-messages",
        type=_positive_int,
        default=None,
        help="retention: keep at most this many messages (oldest evicted first)",
    )
    serve.add_argument(
        "--max-bytes",
        type=_positive_int,
        default=None,
        help="retention: keep at most this many bytes of messages",
    )
    serve.add_argument(
        "--max-age",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="retention: evict messages older than this on arrival",
    )
    serve.add_argument(
        "--chaos-triggers",
        default=None,
        metavar="TRIGGERS",
        help="Mailpit chaos triggers, e.g. 'Sender:451:50,Recipient:550:10' (trigger:code:percent)",
    )
    serve.add_argument(
        "--http-auth",
        type=_user_password,
        default=None,
        metavar="USER:PASSWORD",
        help="require HTTP basic auth with this user and password (not for /livez, /readyz)",
    )
    serve.add_argument(
        "--http-htpasswd",
        default=None,
        metavar="FILE",
        help="require HTTP basic auth with the users of an htpasswd file "
        "(plain or {SHA} entries; bcrypt/MD5 entries are refused)",
    )
    serve.add_argument(
        "--http-max-body",
        type=_positive_int,
        default=None,
        metavar="BYTES",
        help="largest HTTP request body accepted [1048576]",
    )
    serve.add_argument(
        "--allowed-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="an extra browser Origin allowed to use the event stream and delete "
        "(repeatable); the server's own origin is always allowed",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="NAME",
        help="a Host name the HTTP API answers to (repeatable); on a loopback address only "
        "127.0.0.1, localhost and ::1 are answered by default (against DNS rebinding), on "
        "other addresses any name unless this is given",
    )
    serve.add_argument(
        "--no-ui", action="store_true", default=None, help="do not serve the web UI at /"
    )
    noise = serve.add_mutually_exclusive_group()
    noise.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="log nothing but the ready line, the stop line and server errors",
    )
    noise.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log every SMTP session and every HTTP request",
    )
    from ._relay import add_relay_flags  # release relay (issue 27): --relay-* flags

    add_relay_flags(serve)
    from ._mailbox_cli import add_mailbox_flags  # mailboxes (issue 28): rules, tokens

    add_mailbox_flags(serve)
    flags = _config_flags(serve)
    mcp = sub.add_parser(
        "mcp",
        help="run an MCP server over stdio against a running 'smtpmock serve'",
        description="Serve smtpmock's MCP tools (list, search, wait for, read and delete mail; "
        "fault rules) over stdio, against the HTTP API of a running 'smtpmock serve' "
        "(docs/mcp.md). 'smtpmock serve' also serves them itself at /mcp.",
    )
    mcp.add_argument(
        "--url",
        default=os.environ.get("SMTPMOCK_URL", "http://127.0.0.1:8025"),
        help="the server's HTTP address [$SMTPMOCK_URL or http://127.0.0.1:8025]",
    )
    mcp.add_argument(
        "--http-auth",
        default=os.environ.get("SMTPMOCK_HTTP_AUTH"),
        metavar="USER:PASSWORD",
        help="HTTP basic auth for a server started with --http-auth [$SMTPMOCK_HTTP_AUTH]",
    )
    return parser, serve, flags


def _from_env(
    args: argparse.Namespace,
    flags: list[tuple[str, Callable[[str], Any]]],
    environ: Mapping[str, str],
) -> None:
    """Fill what no flag gave from ``SMTPMOCK_<NAME>`` (ConfigurationError names the variable)."""
    for name, convert in [*_SERVE_FLAGS.items(), *flags]:
        value = environ.get(_ENV + name.upper())
        given = (
            getattr(args, name, None) is not None if name in _SERVE_FLAGS else hasattr(args, name)
        )
        if value is None or given:
            continue
        try:
            setattr(args, name, convert(value))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise ConfigurationError(f"{_ENV}{name.upper()}={value!r}: {exc}") from exc


def read_htpasswd(path: str) -> dict[str, str]:
    """``{user: secret}`` from an htpasswd file; only plain and ``{SHA}`` entries work."""
    out: dict[str, str] = {}
    for number, text in enumerate(Path(path).read_text().splitlines(), 1):
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, secret = line.partition(":")
        if not sep:
            raise ConfigurationError(f"{path}:{number}: expected user:secret")
        if secret.startswith(("$2", "$apr1$", "$1$", "$5$", "$6$")):
            raise ConfigurationError(
                f"{path}:{number}: {secret.split('$')[1]!r} hashes are not supported "
                "(use htpasswd -s for {SHA}, or a plain password)"
            )
        out[user] = secret
    return out


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every keep-alive response waits ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"--http-port {port}: port {port} is already in use on {host} "
                "(--http-port 0 lets the system pick a free one; the ready line says which)"
            ) from exc
        raise ConfigurationError(f"--http-host {host} --http-port {port}: {exc}") from exc
    sock.listen(1024)
    return sock


# --------------------------------------------------------------------------- the log

_REPLY = re.compile(r"^([45]\d\d)[ -]")
_ERRORS_PER_SESSION = 5


def _logger(quiet: bool, verbose: bool) -> logging.Logger:
    """The ``smtpmock`` logger, to stderr, one line per record (stdout has the ready line)."""
    root = logging.getLogger("smtpmock")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("smtpmock: %(message)s"))
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    return logging.getLogger("smtpmock.serve")


def _short(values: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(values[:most])
    return shown + (f" +{len(values) - most} more" if len(values) > most else "")


_SUBJECT = re.compile(rb"^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def _quick_subject(raw: bytes) -> str:
    """The ``Subject:`` of *raw*, for the log, read from the first 16 kB of the header block
    without parsing the message (a full parse costs ~0.4 ms; the log must not). RFC 2047 words
    are decoded when they decode; anything odd is shown as received."""
    end = raw.find(b"\r\n\r\n", 0, 16_384)
    head = raw[: end if end >= 0 else 16_384]
    match = _SUBJECT.search(head)
    if match is None:
        return ""
    value = re.sub(rb"\r?\n[ \t]", b" ", match.group(1)).decode("utf-8", "replace").strip()
    if "=?" in value:
        # A malformed encoded word: the log shows it as it came.
        with contextlib.suppress(Exception):
            value = str(email.header.make_header(email.header.decode_header(value)))
    return value


# The log reporter's bounds: lines waiting at most (a flood drops lines, counted, never mail),
# and how long it lets a burst gather before writing it (one thread wake-up per batch).
_LOG_PENDING = 10_000
_LOG_BATCH_DELAY = 0.05


class _Reporter:
    """One log line per message received and per SMTP error reply, written by a thread of its
    own. The SMTP loop only appends to a bounded deque (a flood drops lines, counted, never
    mail) and wakes the thread for the first line of a batch only: a wake-up per message (a
    ``queue.Queue``) cost the loop a notify and the log thread a GIL hand-off per message,
    ~150 us of CPU per message with one client (benchmarks/PROFILE.md, 2026-12-06)."""

    def __init__(self, logger: logging.Logger, mock: Any) -> None:
        self.logger = logger
        self.pending: collections.deque[tuple[str, Any]] = collections.deque()
        self.dropped = 0
        self._ready = threading.Event()  # set when lines wait and the thread may be asleep
        self._closing = threading.Event()
        self._unsubscribe = mock.store.subscribe(self._on_store)
        transcripts = getattr(mock, "_transcripts", None)
        self._on_close: list[Callable[[Any], None]] | None = getattr(transcripts, "on_close", None)
        if self._on_close is not None:
            self._on_close.append(self._on_session)
        self.thread = threading.Thread(target=self._run, name="smtpmock-log", daemon=True)
        self.thread.start()

    def _put(self, item: tuple[str, Any]) -> None:
        if len(self.pending) >= _LOG_PENDING:
            self.dropped += 1
            return
        self.pending.append(item)  # (deque appends are atomic)
        if not self._ready.is_set():
            self._ready.set()

    def _on_store(self, event: Any) -> None:
        if event.kind == "added" and self.logger.isEnabledFor(logging.INFO):
            for message in event.messages:
                self._put(("message", message))

    def _on_session(self, transcript: Any) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self._put(("session", transcript))

    def _run(self) -> None:
        pending = self.pending
        while True:
            self._ready.wait()
            # Let a burst gather (cut short by close()), then write what is there. Cleared
            # before the lines are taken: a line put after that sets it again.
            self._closing.wait(_LOG_BATCH_DELAY)
            self._ready.clear()
            while pending:
                kind, value = pending.popleft()
                try:
                    if kind == "message":
                        self._message(value)
                    else:
                        self._session(value)
                except Exception as exc:  # a line we cannot write must not stop the others
                    self.logger.warning("could not log a %s: %s: %s", kind, type(exc).__name__, exc)
            if self.dropped:
                dropped, self.dropped = self.dropped, 0
                self.logger.info("(%d log lines dropped: too many at once)", dropped)
            if self._closing.is_set() and not pending:
                return

    def _message(self, message: Any) -> None:
        subject = _quick_subject(message.raw)
        self.logger.info(
            "received %s from <%s> to %s, %d bytes, subject %r",
            message.id,
            message.mail_from or "",
            _short([f"<{r}>" for r in message.rcpt_tos]),
            message.size,
            (subject or "")[:100],
        )

    def _session(self, transcript: Any) -> None:
        peer = transcript.peer
        where = f"{peer[0]}:{peer[1]}" if peer else "?"
        last_command = ""
        errors: list[str] = []
        for entry in list(transcript.entries):
            if entry.kind == "client":
                last_command = entry.text[:100]
            elif entry.kind == "server" and _REPLY.match(entry.text):
                line = f"{last_command!r} -> {entry.text[:200]}" if last_command else entry.text
                if not errors or errors[-1] != line:
                    errors.append(line)
        for line in errors[:_ERRORS_PER_SESSION]:
            self.logger.info("SMTP client %s: %s", where, line)
        if len(errors) > _ERRORS_PER_SESSION:
            more = len(errors) - _ERRORS_PER_SESSION
            self.logger.info("SMTP client %s: and %d more error replies", where, more)
        self.logger.debug(
            "SMTP session %s ended: %d command(s), %d message(s)%s",
            where,
            len(transcript.commands),
            len(transcript.message_ids),
            f", TLS {transcript.tls_version}" if transcript.tls_version else "",
        )

    def close(self) -> None:
        self._unsubscribe()
        if self._on_close is not None:
            with contextlib.suppress(ValueError):
                self._on_close.remove(self._on_session)
        self._closing.set()
        self._ready.set()
        self.thread.join(timeout=2.0)


# --------------------------------------------------------------------------- serve


def _uvicorn_server(config: Any, on_signal: Callable[[int], None]) -> Any:
    """A ``uvicorn.Server`` that tells us about SIGINT/SIGTERM the moment they arrive (so the
    long-lived requests end at once rather than after the graceful-shutdown timeout) and does
    not raise the signal again after a clean stop (which would end in a KeyboardInterrupt)."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def handle_exit(self, sig: int, frame: types.FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: do not wait for anything
            self.should_exit = True
            on_signal(sig)

    return Server(config)


def serve(args: argparse.Namespace, options: dict[str, Any], log: logging.Logger) -> int:
    """Run until SIGINT/SIGTERM; return the exit status."""
    try:
        import uvicorn

        from ._http import ApiSettings, begin_shutdown, create_app, wrap
        from ._http._accesslog import AccessLog
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        print(
            f"smtpmock serve needs the server extra: pip install 'smtpmock[server]' ({exc})",
            file=sys.stderr,
        )
        return 2
    from ._server import SMTPMock
    from .store import Retention, open_store, shown_location

    temp_dir = None
    if args.db:
        db_path = args.db
    else:
        temp_dir = tempfile.TemporaryDirectory(prefix="smtpmock-")
        db_path = os.path.join(temp_dir.name, "messages.db")
    from ._mailbox_cli import MailboxSetup  # mailboxes (issue 28)

    mailboxes = MailboxSetup(args)
    retention = Retention(args.max_messages, args.max_bytes, args.max_age, mailboxes.max_messages)
    credentials: dict[str, str] = {}
    if args.http_auth:
        user, _, password = args.http_auth.partition(":")
        credentials[user] = password
    if args.http_htpasswd:
        credentials.update(read_htpasswd(args.http_htpasswd))
    settings = ApiSettings(
        credentials=credentials,
        max_body=args.http_max_body or ApiSettings.max_body,
        allowed_origins=tuple(args.allowed_origin or ()),
        ui=not args.no_ui,
    )
    mailboxes.apply(options, settings)
    http_host = args.http_host or "127.0.0.1"
    if _is_loopback(http_host):
        settings.allowed_hosts = ("127.0.0.1", "localhost", "::1", *(args.allowed_host or ()))
    elif args.allowed_host:
        settings.allowed_hosts = tuple(args.allowed_host)
    http_sock = _listen(http_host, 8025 if args.http_port is None else args.http_port)
    store = open_store(db_path, retention, server=True)
    extra: dict[str, Any] = {}
    if args.chaos_triggers:
        extra["faults"] = args.chaos_triggers
    smtp_port = 1025 if args.smtp_port is None else args.smtp_port
    reporter = None
    mock = None
    try:
        try:
            mock = SMTPMock(
                args.smtp_host or "127.0.0.1", smtp_port, store=store, **extra, **options
            )
        except ConfigurationError as exc:
            if args.chaos_triggers and "faults" in extra:
                raise ConfigurationError(f"--chaos-triggers: {exc}") from exc
            raise
        try:
            mock.start()
        except PortInUseError as exc:
            raise ConfigurationError(
                f"--smtp-port {exc.port}: port {exc.port} is already in use on {exc.host} "
                "(--smtp-port 0 lets the system pick a free one; the ready line says which)"
            ) from exc
        reporter = _Reporter(log, mock)
        extra_ports = mailboxes.start_ports(mock.host, store, mock, **extra, **options)
        app = create_app(mock, settings)
        from ._relay import relay_from_args  # release relay (issue 27)

        app.state.relay = relay_from_args(args)
        config = uvicorn.Config(
            AccessLog(wrap(app), logging.getLogger("smtpmock.http")),
            log_level="warning",
            lifespan="off",
            # Waits and event streams end as soon as the signal arrives (begin_shutdown), so
            # this bound is only for a request stuck elsewhere.
            timeout_graceful_shutdown=1,
        )
        stopped_by: list[str] = []
        loop_box: list[asyncio.AbstractEventLoop] = []

        def on_signal(sig: int) -> None:
            stopped_by.append(signal.Signals(sig).name)
            if loop_box:
                loop_box[0].call_soon_threadsafe(begin_shutdown, app)

        server = _uvicorn_server(config, on_signal)
        http_port = http_sock.getsockname()[1]
        smtp_host = mock.host

        async def run() -> None:
            loop_box.append(asyncio.get_running_loop())
            task = asyncio.create_task(server.serve(sockets=[http_sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.005)
            if server.started:
                print(
                    f"smtpmock: SMTP on {smtp_host}:{mock.port}, HTTP on "
                    f"http://{http_host}:{http_port} (messages in {shown_location(db_path)})",
                    flush=True,
                )
                if mock.ca_cert_path is not None:
                    # Clients verify the server with this CA (curl --cacert, swaks
                    # --tls-ca-path); smtpmock never asks them to skip verification.
                    print(
                        f"smtpmock: TLS ({mock.config.tls}), CA certificate {mock.ca_cert_path}",
                        flush=True,
                    )
                if extra_ports:
                    print(f"smtpmock: SMTP also on ports {extra_ports} (port: rules)", flush=True)
            await task

        asyncio.run(run())
        if stopped_by:
            print(f"smtpmock: stopped ({stopped_by[0]})", flush=True)
    finally:
        http_sock.close()
        mailboxes.stop()
        if mock is not None:
            mock.stop()  # first: the sessions it closes are still logged
        if reporter is not None:
            reporter.close()
        store.close()
        if temp_dir is not None:
            temp_dir.cleanup()
    return 0


def _mcp_command(args: argparse.Namespace) -> int:
    """``smtpmock mcp``: the MCP tools over stdio (stdout is the protocol; messages to stderr)."""
    from ._mcp import run_stdio

    auth = None
    if args.http_auth:
        user, sep, password = args.http_auth.partition(":")
        if not sep or not user:
            print("smtpmock: --http-auth takes user:password", file=sys.stderr)
            return 2
        auth = (user, password)
    try:
        return run_stdio(args.url, auth)
    except ImportError as exc:
        print(f"smtpmock: {exc}", file=sys.stderr)
        return 2
    except SMTPMockError as exc:
        print(f"smtpmock: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``smtpmock`` command."""
    parser, serve_parser, flags = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "mcp":
        return _mcp_command(args)
    # uvicorn handles SIGINT/SIGTERM while it serves; before that, SIGTERM should end us too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    names = [name for name, _ in flags]
    try:
        _from_env(args, flags, os.environ)
        options = {name: getattr(args, name) for name in names if hasattr(args, name)}
        try:
            ServerConfig.from_options(options)
        except ConfigurationError as exc:
            serve_parser.error(in_cli_words(str(exc), names))
        log = _logger(args.quiet, args.verbose)
        code = serve(args, options, log)
    except ConfigurationError as exc:
        print(f"smtpmock serve: error: {in_cli_words(str(exc), names)}", file=sys.stderr)
        return 2
    except (SMTPMockError, OSError) as exc:
        print(f"smtpmock serve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("smtpmock: stopped", flush=True)
        return 0
    if argv is None:
        # Run as the command: everything is closed (servers, store, its worker, the temporary
        # database). Run the exit handlers (they remove the TLS files, flush the log), then skip
        # the rest of the interpreter's teardown, which frees the FastAPI and pydantic module
        # graph one object at a time: 0.1 s on an idle machine, 0.6 s on a loaded one, most of
        # what stood between the signal and the exit.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
