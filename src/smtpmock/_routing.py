"""Mailbox rules: which mailbox a message goes to as it arrives.

Pure (no I/O, no server state): the SMTP side calls :meth:`Router.choose` once per delivered
message, with the message (envelope, AUTH user, headers) and the local port it came in on.
Rules are tried in order; the first that gives a valid mailbox name wins; a message that no rule
places goes to ``"default"``. A rule whose value is not a valid mailbox name (``alice@x`` as an
AUTH user, a header with spaces) does not match: the next rule is tried, the mail is never
refused for it.

Rule syntax (one string each, the CLI's ``--mailbox-rule``):

==============================  ================================================================
``auth-user``                   the SMTP AUTH user name
``auth-user:NAME=BOX``          AUTH user NAME (exact) to mailbox BOX
``plus-tag``                    the ``+tag`` of the first recipient that has one
                                (``app+ci-1@example.com`` to ``ci-1``)
``domain``                      the domain of the first recipient (``ci-1.test`` for
                                ``bob@ci-1.test``)
``domain:DOMAIN=BOX``           any recipient at DOMAIN (case-insensitive) to BOX
``header:NAME``                 the value of header NAME (e.g. ``header:X-Mailbox``)
``port:PORT=BOX``               mail received on local port PORT to BOX
==============================  ================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import ConfigurationError, MailboxNameError
from ._message import Message
from ._search import DEFAULT_MAILBOX, check_mailbox_name

__all__ = ["MailboxRule", "Router"]

_KINDS = ("auth-user", "plus-tag", "domain", "header", "port")


def _valid(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return check_mailbox_name(name)
    except MailboxNameError:
        return None


@dataclass(frozen=True)
class MailboxRule:
    """One parsed rule: its kind, its argument (header name, domain, port, user) and the fixed
    mailbox it sends matching mail to (``None``: the mailbox is the value the rule reads)."""

    kind: str
    arg: str = ""
    target: str | None = None

    @classmethod
    def parse(cls, text: str) -> MailboxRule:
        spec = text.strip()
        head, _, target = spec.partition("=")
        kind, _, arg = head.partition(":")
        kind, arg = kind.strip().lower(), arg.strip()
        if kind not in _KINDS:
            raise ConfigurationError(
                f"unknown mailbox rule {text!r}: known kinds are {', '.join(_KINDS)} "
                "(e.g. plus-tag, header:X-Mailbox, domain:ci.test=ci, port:2526=ci-1)"
            )
        fixed = check_mailbox_name(target.strip()) if target else None
        if kind == "header" and not arg:
            raise ConfigurationError(f"mailbox rule {text!r}: say which header (header:NAME)")
        if kind == "port" and (not arg.isdigit() or not 0 < int(arg) < 65536 or fixed is None):
            raise ConfigurationError(f"mailbox rule {text!r}: use port:PORT=MAILBOX")
        if kind == "plus-tag" and (arg or fixed):
            raise ConfigurationError(f"mailbox rule {text!r}: plus-tag takes no argument")
        if kind in ("auth-user", "domain") and bool(arg) != bool(fixed):
            raise ConfigurationError(
                f"mailbox rule {text!r}: use {kind} alone, or {kind}:VALUE=MAILBOX"
            )
        return cls(kind, arg.lower() if kind == "domain" else arg, fixed)

    def __str__(self) -> str:
        text = f"{self.kind}:{self.arg}" if self.arg else self.kind
        return f"{text}={self.target}" if self.target else text

    def apply(self, message: Message, port: int | None) -> str | None:
        """The mailbox this rule sends *message* to, or ``None`` if it does not match."""
        if self.kind == "port":
            return self.target if port == int(self.arg) else None
        if self.kind == "auth-user":
            user = message.auth_user
            if self.target is not None:
                return self.target if user == self.arg else None
            return _valid(user)
        if self.kind == "plus-tag":
            for rcpt in message.rcpt_tos:
                local = rcpt.rpartition("@")[0] if "@" in rcpt else rcpt
                if "+" in local:
                    found = _valid(local.split("+", 1)[1])
                    if found:
                        return found
            return None
        if self.kind == "domain":
            domains = [r.rpartition("@")[2].lower() for r in message.rcpt_tos if "@" in r]
            if self.target is not None:
                return self.target if self.arg in domains else None
            return _valid(domains[0]) if domains else None
        # header
        values = message.headers.get_all(self.arg)
        return _valid(values[0].strip()) if values else None


class Router:
    """Rules in order; :meth:`choose` gives the first match, else ``"default"``."""

    def __init__(self, rules: Iterable[str | MailboxRule] = ()) -> None:
        self.rules: tuple[MailboxRule, ...] = tuple(
            r if isinstance(r, MailboxRule) else MailboxRule.parse(r) for r in rules
        )

    def __bool__(self) -> bool:
        return bool(self.rules)

    def choose(self, message: Message, port: int | None = None) -> str:
        """The mailbox of *message*, received on local *port*."""
        for rule in self.rules:
            try:
                found = rule.apply(message, port)
            except Exception:  # a header the parser cannot read: the rule does not match
                found = None
            if found is not None:
                return found
        return DEFAULT_MAILBOX

    @property
    def ports(self) -> list[int]:
        """The ports the ``port:`` rules name (for a server that listens on them)."""
        return sorted({int(r.arg) for r in self.rules if r.kind == "port"})
