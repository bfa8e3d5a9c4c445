"""``smtpmock serve``: the SMTP server and the HTTP API in one process.

Every :class:`~smtpmock._config.ServerConfig` field is a flag, generated from the dataclass (so a
new option appears here by itself) with its docstring as help text, and each flag can also be
given as an ``SMTPMOCK_<NAME>`` environment variable (the flag wins). Messages go to a SQLite
file: ``--db PATH`` keeps it, otherwise a temporary file is removed on exit.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import dataclasses
import inspect
import ipaddress
import itertools
import os
import signal
import socket
import sys
import tempfile
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from . import _config
from ._config import ServerConfig
from ._errors import ConfigurationError, SMTPMockError

__all__ = ["main"]

_ENV = "SMTPMOCK_"
_NONE = ("none", "null", "off", "")


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


def _converter(hint: Any) -> tuple[Callable[[str], Any], list[str] | None, bool]:
    """``(parse one string, choices or None, optional?)`` for a field's type."""
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    optional = False
    if origin in (typing.Union, types.UnionType):
        optional = type(None) in args
        args = tuple(a for a in args if a is not type(None))
        hint = args[0] if len(args) == 1 else hint
        origin = typing.get_origin(hint)
        if len(args) > 1 and any(
            typing.get_origin(a) in (Mapping, dict) or a is Mapping for a in args
        ):
            return _accounts, None, optional
    if origin is Literal:
        choices = [str(c) for c in typing.get_args(hint)]
        return str, choices, optional
    if origin in (Mapping, dict) or origin is typing.Union:
        return _accounts, None, optional
    if hint is bool:
        return _boolean, None, optional
    if hint in (int, float, str):
        return typing.cast(Callable[[str], Any], hint), None, optional
    return str, None, optional


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {value!r} (use true or false)")


def _accounts(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user:
            raise argparse.ArgumentTypeError(
                f"accounts are user:password[,user:password], not {item!r}"
            )
        out[user] = password
    return out


def _wrap(
    convert: Callable[[str], Any], optional: bool, choices: list[str] | None
) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        if optional and value.strip().lower() in _NONE:
            return None
        if choices is not None and value not in choices:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        try:
            return convert(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _config_flags(parser: argparse.ArgumentParser) -> list[tuple[str, Callable[[str], Any]]]:
    group = parser.add_argument_group(
        "SMTP server options",
        f"Also settable as {_ENV}<NAME> environment variables (e.g. {_ENV}MAX_MESSAGE_SIZE); "
        "'none' clears an optional limit.",
    )
    docs = _field_docs()
    hints = typing.get_type_hints(ServerConfig, vars(_config))
    out = []
    for f in dataclasses.fields(ServerConfig):
        convert, choices, optional = _converter(hints[f.name])
        parse = _wrap(convert, optional, choices)
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = "(callable)" if callable(default) else repr(default)
        help_text = f"{docs.get(f.name, f.name)} [default: {shown}; env {_ENV}{f.name.upper()}]"
        if convert is _accounts:
            help_text = "Accounts as user:password[,user:password]. " + help_text
        metavar = "{" + ",".join(choices) + "}" if choices else f.name.upper()
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


def build_parser() -> tuple[argparse.ArgumentParser, list[tuple[str, Callable[[str], Any]]]]:
    parser = argparse.ArgumentParser(
        prog="smtpmock",
        description="A real SMTP server for tests. 'smtpmock serve' runs it standalone with an "
        "HTTP API (see docs/server.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the SMTP server and the HTTP API",
        description="Run the SMTP server and the HTTP API in one process until SIGINT/SIGTERM. "
        "Every flag can also be set as an SMTPMOCK_<FLAG> environment variable "
        "(dashes as underscores, e.g. SMTPMOCK_HTTP_PORT=0).",
    )
    serve.add_argument("--smtp-host", default=None, help="SMTP listen address [127.0.0.1]")
    serve.add_argument("--smtp-port", type=int, default=None, help="SMTP port, 0 for any [1025]")
    serve.add_argument("--http-host", default=None, help="HTTP listen address [127.0.0.1]")
    serve.add_argument("--http-port", type=int, default=None, help="HTTP port, 0 for any [8025]")
    serve.add_argument(
        "--db",
        default=None,
        metavar="PATH|URL",
        help="SQLite file to keep messages in (reopened on restart), or a postgresql:// URL "
        "shared by several instances; default: a temporary file removed on exit",
    )
    serve.add_argument(
        "--max-messages",
        type=int,
        default=None,
        help="retention: keep at most this many messages (oldest evicted first)",
    )
    serve.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="retention: keep at most this many bytes of messages",
    )
    serve.add_argument(
        "--max-age",
        type=float,
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
        type=int,
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
    from ._relay import add_relay_flags  # release relay (issue 27): --relay-* flags

    add_relay_flags(serve)
    from ._mailbox_cli import add_mailbox_flags  # mailboxes (issue 28): rules, tokens

    add_mailbox_flags(serve)
    flags = _config_flags(serve)
    return parser, flags


_SERVE_ENV = {
    "smtp_host": str,
    "smtp_port": int,
    "http_host": str,
    "http_port": int,
    "db": str,
    "max_messages": int,
    "max_bytes": int,
    "max_age": float,
    "chaos_triggers": str,
    "http_auth": str,
    "http_htpasswd": str,
    "http_max_body": int,
}


def _from_env(
    args: argparse.Namespace,
    flags: list[tuple[str, Callable[[str], Any]]],
    environ: Mapping[str, str],
) -> None:
    for name, convert in _SERVE_ENV.items():
        value = environ.get(_ENV + name.upper())
        if getattr(args, name) is None and value is not None:
            try:
                setattr(args, name, convert(value))
            except ValueError as exc:
                raise ConfigurationError(f"{_ENV}{name.upper()}={value!r}: {exc}") from exc
    for name, parse in flags:
        value = environ.get(_ENV + name.upper())
        if not hasattr(args, name) and value is not None:
            try:
                setattr(args, name, parse(value))
            except argparse.ArgumentTypeError as exc:
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
        raise ConfigurationError(f"cannot listen on http {host}:{port}: {exc}") from exc
    sock.listen(1024)
    return sock


def serve(args: argparse.Namespace, config_names: Sequence[str]) -> int:
    """Run until SIGINT/SIGTERM; return the exit status."""
    try:
        import uvicorn

        from ._http import ApiSettings, create_app, wrap
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        print(
            f"smtpmock serve needs the server extra: pip install 'smtpmock[server]' ({exc})",
            file=sys.stderr,
        )
        return 2
    from ._server import SMTPMock
    from .store import Retention, open_store, shown_location

    options = {name: getattr(args, name) for name in config_names if hasattr(args, name)}
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
        user, sep, password = args.http_auth.partition(":")
        if not sep or not user:
            raise ConfigurationError("--http-auth takes user:password")
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
    mock = SMTPMock(
        args.smtp_host or "127.0.0.1",
        1025 if args.smtp_port is None else args.smtp_port,
        store=store,
        **extra,
        **options,
    )
    try:
        mock.start()
        extra_ports = mailboxes.start_ports(mock.host, store, mock, **extra, **options)
        app = create_app(mock, settings)
        from ._relay import relay_from_args  # release relay (issue 27)

        app.state.relay = relay_from_args(args)
        config = uvicorn.Config(
            wrap(app),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        http_port = http_sock.getsockname()[1]
        smtp_host = mock.host

        async def run() -> None:
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
    finally:
        http_sock.close()
        mailboxes.stop()
        mock.stop()
        store.close()
        if temp_dir is not None:
            temp_dir.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``smtpmock`` command."""
    parser, flags = build_parser()
    args = parser.parse_args(argv)
    if args.command != "serve":  # pragma: no cover - argparse refuses unknown commands
        parser.error(f"unknown command {args.command}")
    # uvicorn handles SIGINT/SIGTERM while it serves; before that, SIGTERM should end us too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _from_env(args, flags, os.environ)
        return serve(args, [name for name, _ in flags])
    except (SMTPMockError, OSError) as exc:
        print(f"smtpmock: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
