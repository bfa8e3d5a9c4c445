"""``smtpmock serve``'s mailbox flags (issue 28): rules, tokens, per-mailbox retention and the
extra SMTP ports that ``port:`` rules name.

Every flag also reads an ``SMTPMOCK_*`` variable, and tokens can come from files, so that no
secret needs to be on a command line (where ``ps`` shows it).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._routing import Router
from ._search import check_mailbox_name

if TYPE_CHECKING:
    from ._server import SMTPMock
    from .store import Store

__all__ = ["MailboxSetup", "add_mailbox_flags"]


def add_mailbox_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "mailboxes",
        "Isolated mailboxes on one server (docs/mailboxes.md). The API of mailbox NAME is "
        "under /m/NAME/ (or with the header X-Smtpmock-Mailbox: NAME).",
    )
    group.add_argument(
        "--mailbox-rule",
        action="append",
        default=None,
        metavar="RULE",
        help="route arriving mail to a mailbox (repeatable, first match wins, else "
        "'default'): auth-user, plus-tag, domain, domain:D=BOX, header:NAME, port:PORT=BOX "
        "(serve also listens on PORT) [env SMTPMOCK_MAILBOX_RULES, comma-separated]",
    )
    group.add_argument(
        "--mailbox-token",
        action="append",
        default=None,
        metavar="MAILBOX=TOKEN",
        help="a bearer token that may use MAILBOX only (MAILBOX ending in '*': every mailbox "
        "whose name starts so) (repeatable); with any token set, "
        "every request needs one [env SMTPMOCK_MAILBOX_TOKENS, comma-separated]",
    )
    group.add_argument(
        "--mailbox-tokens-file",
        default=None,
        metavar="FILE",
        help="MAILBOX=TOKEN lines ('#' comments) [env SMTPMOCK_MAILBOX_TOKENS_FILE]",
    )
    group.add_argument(
        "--admin-token",
        action="append",
        default=None,
        metavar="TOKEN",
        help="a bearer token that may use everything [env SMTPMOCK_ADMIN_TOKEN]",
    )
    group.add_argument(
        "--admin-token-file",
        default=None,
        metavar="FILE",
        help="a file holding the admin token [env SMTPMOCK_ADMIN_TOKEN_FILE]",
    )
    group.add_argument(
        "--mailbox-max-messages",
        type=int,
        default=None,
        metavar="N",
        help="retention: keep at most N messages in each mailbox (oldest evicted first) "
        "[env SMTPMOCK_MAILBOX_MAX_MESSAGES]",
    )


def _pairs(text: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        line = item.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition("=")
        if not sep or not token.strip():
            raise ConfigurationError(f"{where}: expected MAILBOX=TOKEN, not {line[:40]!r}")
        box = name.strip()
        check_mailbox_name(box.removesuffix("*"))  # NAME* : every mailbox starting with NAME
        out[box] = token.strip()
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc


class MailboxSetup:
    """The mailbox flags and variables of one ``serve`` run, read and checked."""

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        rules = list(getattr(args, "mailbox_rule", None) or ())
        if not rules and env.get("SMTPMOCK_MAILBOX_RULES"):
            rules = [r.strip() for r in env["SMTPMOCK_MAILBOX_RULES"].split(",") if r.strip()]
        self.rules = rules
        Router(rules)  # refuse a bad rule now
        tokens: dict[str, str] = {}
        tokens_file = args.mailbox_tokens_file or env.get("SMTPMOCK_MAILBOX_TOKENS_FILE")
        if tokens_file:
            tokens.update(_pairs(_read(tokens_file), tokens_file))
        if env.get("SMTPMOCK_MAILBOX_TOKENS"):
            tokens.update(_pairs(env["SMTPMOCK_MAILBOX_TOKENS"], "SMTPMOCK_MAILBOX_TOKENS"))
        for item in args.mailbox_token or ():
            tokens.update(_pairs(item, "--mailbox-token"))
        self.tokens = tokens
        admin = list(args.admin_token or ())
        if env.get("SMTPMOCK_ADMIN_TOKEN"):
            admin.append(env["SMTPMOCK_ADMIN_TOKEN"].strip())
        admin_file = args.admin_token_file or env.get("SMTPMOCK_ADMIN_TOKEN_FILE")
        if admin_file:
            admin.append(_read(admin_file).strip())
        if any(not t for t in admin):
            raise ConfigurationError("empty admin token")
        self.admin_tokens = tuple(admin)
        limit = args.mailbox_max_messages
        if limit is None and env.get("SMTPMOCK_MAILBOX_MAX_MESSAGES"):
            try:
                limit = int(env["SMTPMOCK_MAILBOX_MAX_MESSAGES"])
            except ValueError as exc:
                raise ConfigurationError(f"SMTPMOCK_MAILBOX_MAX_MESSAGES: {exc}") from exc
        self.max_messages: int | None = limit
        self._extra: list[SMTPMock] = []

    def apply(self, options: dict[str, Any], settings: Any) -> None:
        """Add the rules to the server *options* and the tokens to the HTTP *settings*."""
        if self.rules:
            before = options.get("mailbox_rules") or ()
            if isinstance(before, str):
                before = [r for r in before.split(",") if r.strip()]
            options["mailbox_rules"] = (*before, *self.rules)
        settings.mailbox_tokens = dict(self.tokens)
        settings.admin_tokens = self.admin_tokens

    def start_ports(self, host: str, store: Store, main: SMTPMock, **kwargs: Any) -> list[int]:
        """Listen on the ports the ``port:`` rules name (besides *main*'s): one more server
        each, with the same options, on the same store. Returns the ports."""
        from ._server import SMTPMock

        ports = [p for p in Router(main.config.mailbox_rules).ports if p != main.port]
        for port in ports:
            extra = SMTPMock(host, port, store=store, **kwargs)
            extra.start()
            self._extra.append(extra)
        return ports

    def stop(self) -> None:
        for extra in self._extra:
            extra.stop()
        self._extra.clear()
