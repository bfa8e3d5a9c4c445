"""Release: send a stored message on to a real SMTP server (Mailpit's and MailHog's "release").

A :class:`Relay` holds the operator's settings (``smtpmock serve --relay-*``): the default target
server, how to reach it (plain, STARTTLS, implicit TLS; AUTH) and the **allowlist** of hosts a
release may go to. The allowlist is what keeps a shared smtpmock from being used to send mail
anywhere: with no ``--relay-allow-host``, the only allowed target is the configured relay host,
or, when none is configured, loopback only (``localhost``, ``127.0.0.0/8``, ``::1``). Host names
are compared as written, never resolved for the check: a name is allowed only if it is listed
(or is ``localhost`` under the loopback default), an address literal if it is listed or falls
in a listed network. Nothing is ever connected to before that check passes.

Sending is blocking :mod:`smtplib` work: call :meth:`Relay.send` from a worker thread (the HTTP
routes use :func:`asyncio.to_thread`), never on an event loop.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from ._errors import ConfigurationError, SMTPMockError

__all__ = [
    "Relay",
    "RelayError",
    "RelayRefused",
    "RelayTarget",
    "add_relay_flags",
    "relay_from_args",
]

TLSMode = Literal["auto", "none", "starttls", "tls"]
_MODES = ("auto", "none", "starttls", "tls")
_MECHANISMS = {"PLAIN": "auth_plain", "LOGIN": "auth_login", "CRAM-MD5": "auth_cram_md5"}


class RelayError(SMTPMockError):
    """A release could not be delivered (connection, TLS, AUTH or the server's refusal)."""


class RelayRefused(RelayError):
    """A release was refused before any connection: target not allowed or not configured."""


@dataclass
class RelayTarget:
    """Where and how to deliver one release."""

    host: str
    port: int = 25
    tls: TLSMode = "auto"
    """``auto``: STARTTLS when the server offers it (as Go's ``smtp.SendMail``, which MailHog
    uses); ``none``: never; ``starttls``: required; ``tls``: implicit TLS from the first byte."""
    username: str | None = None
    password: str | None = None
    mechanism: str | None = None
    """``PLAIN``, ``LOGIN`` or ``CRAM-MD5``; ``None``: the best the server offers."""


@dataclass
class Relay:
    """The relay settings of a server (``--relay-*``) and the allowlist of target hosts."""

    host: str | None = None
    """The default target (``--relay-host``); Mailpit's release always goes here."""
    port: int = 25
    tls: TLSMode = "auto"
    username: str | None = None
    password: str | None = None
    mechanism: str | None = None
    ca_file: str | None = None
    """CA bundle to verify the target's certificate with (default: the system's)."""
    allowed_hosts: tuple[str, ...] | None = None
    """Host names, addresses or networks (``10.0.0.0/8``) a release may go to. ``None``: the
    configured :attr:`host` only, or loopback only when no host is configured."""
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.tls not in _MODES:
            raise ConfigurationError(
                f"relay TLS mode must be one of {', '.join(_MODES)}, not {self.tls!r}"
            )
        if self.mechanism is not None and self.mechanism.upper() not in _MECHANISMS:
            raise ConfigurationError(
                f"relay AUTH mechanism must be one of {', '.join(_MECHANISMS)}, "
                f"not {self.mechanism!r}"
            )

    @property
    def allowlist(self) -> tuple[str, ...]:
        """The effective allowlist (``("loopback",)`` for the loopback-only default)."""
        if self.allowed_hosts is not None:
            return tuple(self.allowed_hosts)
        if self.host:
            return (self.host,)
        return ("loopback",)

    def default_target(self) -> RelayTarget:
        """The configured relay host, or :class:`RelayRefused` when there is none."""
        if not self.host:
            raise RelayRefused("no relay host is configured (smtpmock serve --relay-host)")
        return RelayTarget(
            self.host, self.port, self.tls, self.username, self.password, self.mechanism
        )

    def allows(self, host: str) -> bool:
        """Whether *host* (a name or an address literal) is an allowed target."""
        name = host.strip().strip("[]").rstrip(".").lower()
        if not name:
            return False
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
                name
            )
        except ValueError:
            address = None
        for entry in self.allowlist:
            item = entry.strip().strip("[]").rstrip(".").lower()
            if item == "loopback":
                if name == "localhost" or (address is not None and address.is_loopback):
                    return True
                continue
            if item == name:
                return True
            if address is not None and "/" in item:
                try:
                    if address in ipaddress.ip_network(item, strict=False):
                        return True
                except ValueError:
                    continue
            elif address is not None:
                try:
                    if ipaddress.ip_address(item) == address:
                        return True
                except ValueError:
                    continue
        return False

    def check(self, target: RelayTarget) -> None:
        """Raise :class:`RelayRefused` unless *target* may be connected to."""
        if not self.allows(target.host):
            raise RelayRefused(
                f"relay to {target.host!r} is not allowed (allowed: {', '.join(self.allowlist)}; "
                "see smtpmock serve --relay-allow-host)"
            )
        if not 0 < target.port < 65536:
            raise RelayRefused(f"relay port must be 1..65535, not {target.port}")
        if target.tls not in _MODES:
            raise RelayRefused(f"relay TLS mode must be one of {', '.join(_MODES)}")
        if target.mechanism is not None and target.mechanism.upper() not in _MECHANISMS:
            raise RelayRefused(
                f"AUTH mechanism must be one of {', '.join(_MECHANISMS)}, not {target.mechanism!r}"
            )

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def send(self, target: RelayTarget, sender: str, recipients: list[str], data: bytes) -> None:
        """Deliver *data* to *recipients* through *target* (blocking: run it in a thread).

        Raises :class:`RelayRefused` before connecting when the target is not allowed, and
        :class:`RelayError` when the delivery fails; returns when the server accepted it.
        """
        self.check(target)
        if not recipients:
            raise RelayRefused("a release needs at least one recipient")
        try:
            client: smtplib.SMTP
            if target.tls == "tls":
                client = smtplib.SMTP_SSL(
                    target.host, target.port, timeout=self.timeout, context=self._context()
                )
            else:
                client = smtplib.SMTP(target.host, target.port, timeout=self.timeout)
            with client:
                client.ehlo_or_helo_if_needed()
                if target.tls == "starttls" or (
                    target.tls == "auto" and client.has_extn("starttls")
                ):
                    client.starttls(context=self._context())
                    client.ehlo()
                if target.username is not None:
                    client.user, client.password = target.username, target.password or ""
                    if target.mechanism:
                        method = getattr(client, _MECHANISMS[target.mechanism.upper()])
                        client.auth(target.mechanism.upper(), method)
                    else:
                        client.login(target.username, target.password or "")
                refused = client.sendmail(sender, recipients, data)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise RelayError(f"release to {target.host}:{target.port} failed: {exc}") from exc
        if refused:
            raise RelayError(f"release to {target.host}:{target.port}: refused {refused}")


def add_relay_flags(parser: argparse.ArgumentParser) -> None:
    """The ``--relay-*`` flags of ``smtpmock serve`` (each also ``SMTPMOCK_RELAY_*`` in the
    environment; the flag wins; ``SMTPMOCK_RELAY_ALLOW_HOST`` is comma-separated)."""
    group = parser.add_argument_group(
        "release (relay)",
        "where Mailpit's and MailHog's release may send a stored message; with no "
        "--relay-allow-host only the --relay-host is allowed, or loopback only without one",
    )
    group.add_argument("--relay-host", default=None, help="SMTP server releases go to")
    group.add_argument("--relay-port", type=int, default=None, help="its port [25]")
    group.add_argument(
        "--relay-tls",
        choices=_MODES,
        default=None,
        help="auto: STARTTLS when offered; none; starttls: required; tls: implicit [auto]",
    )
    group.add_argument("--relay-username", default=None, help="AUTH user name")
    group.add_argument(
        "--relay-password",
        default=None,
        help="AUTH password (SMTPMOCK_RELAY_PASSWORD keeps it out of the process list)",
    )
    group.add_argument(
        "--relay-mechanism", default=None, help="AUTH mechanism: PLAIN, LOGIN or CRAM-MD5"
    )
    group.add_argument("--relay-ca-file", default=None, help="CA bundle to verify the relay")
    group.add_argument(
        "--relay-allow-host",
        action="append",
        default=None,
        metavar="HOST",
        help="a host name, address or network (10.0.0.0/8) a release may go to (repeatable; "
        "'loopback' for localhost and loopback addresses)",
    )


def relay_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Relay:
    """The :class:`Relay` the ``--relay-*`` flags (else ``SMTPMOCK_RELAY_*``) describe."""
    env = os.environ if environ is None else environ

    def option(name: str) -> str | None:
        value = getattr(args, f"relay_{name}", None)
        if value is not None:
            return str(value)
        return env.get(f"SMTPMOCK_RELAY_{name.upper()}") or None

    allowed = getattr(args, "relay_allow_host", None)
    if not allowed and env.get("SMTPMOCK_RELAY_ALLOW_HOST"):
        allowed = [h.strip() for h in env["SMTPMOCK_RELAY_ALLOW_HOST"].split(",") if h.strip()]
    port = option("port") or "25"
    tls = option("tls") or "auto"
    if tls not in _MODES:
        raise ConfigurationError(f"relay TLS mode must be one of {', '.join(_MODES)}, not {tls!r}")
    try:
        port_number = int(port)
    except ValueError as exc:
        raise ConfigurationError(f"relay port must be a number, not {port!r}") from exc
    return Relay(
        host=option("host"),
        port=port_number,
        tls=cast(TLSMode, tls),
        username=option("username"),
        password=option("password"),
        mechanism=option("mechanism"),
        ca_file=option("ca_file"),
        allowed_hosts=tuple(allowed) if allowed else None,
    )
