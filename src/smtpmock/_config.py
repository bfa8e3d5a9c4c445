"""Server options, validated once, shared by ``SMTPMock``, the pytest plugin and the CLI.

Every option of the SMTP server is a field here, so that the in-process API, the fixture marker
and ``smtpmock serve`` flags all accept the same names with the same meaning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import ConfigurationError

__all__ = ["AuthOption", "ServerConfig"]

AuthOption = Mapping[str, str] | Callable[[str, str, str], bool] | Callable[[str], str | None]
"""The ``auth`` option: accounts, a checker, or a password look-up."""
_TLS_MODES = ("starttls", "starttls-required", "implicit")


@dataclass(frozen=True)
class ServerConfig:
    hostname: str = "localhost"
    """The name the server gives in its greeting and EHLO reply (never looked up in DNS)."""
    max_message_size: int | None = 33_554_432
    """Largest message accepted, in bytes (advertised as SIZE; ``None``: no limit)."""
    smtputf8: bool = True
    """Advertise and accept SMTPUTF8 (internationalised addresses and headers)."""
    idle_timeout: float = 300.0
    """Seconds a connection may stay silent before the server answers 421 4.4.2 and closes it."""
    tls: Literal["starttls", "starttls-required", "implicit"] | None = None
    """``"starttls"``: STARTTLS offered; ``"starttls-required"``: nothing but EHLO, NOOP, RSET
    and QUIT before STARTTLS (530); ``"implicit"``: TLS from the first byte (SMTPS)."""
    tls_cert: str | None = None
    """PEM certificate chain file; default: one generated at run time (``trustme``) for
    ``hostname``, ``localhost``, 127.0.0.1 and ::1."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert`` (may be the same file)."""
    tls_ca: str | None = None
    """CA certificate that signed ``tls_cert`` (for ``client_ssl_context()``); default:
    ``tls_cert`` itself (a self-signed certificate)."""
    auth: AuthOption | None = None
    """Accounts: ``{"user": "password"}``, a checker ``(mechanism, user, password) -> bool``, or a
    look-up ``(user) -> password | None`` (a checker cannot serve CRAM-MD5, which needs the
    password itself)."""
    auth_required: bool = False
    """Refuse MAIL, RCPT and DATA before a successful AUTH (530 5.7.0)."""
    auth_allow_plaintext: bool = False
    """Offer AUTH on connections without TLS (otherwise 538 5.7.11 until TLS)."""
    max_recipients: int | None = 1000
    """Recipients per message; the next RCPT is answered 452 4.5.3."""
    max_connections: int | None = 1000
    """Concurrent connections; the next one is answered 421 4.7.0 and closed."""
    max_command_length: int = 2048
    """Longest command line in octets, CRLF included (RFC 5321 says 512 plus what extensions
    add; ``AUTH`` lines may reach 12,288 per RFC 4954). Longer lines: 500 5.5.2."""
    max_line_length: int | None = 1000
    """Longest line inside DATA in octets, CRLF included (RFC 5321 4.5.3.1.6), not counting a
    stuffed leading dot; ``None``: no limit. A longer line is accepted and reported in the
    message's ``defects`` (as Postfix, Mailpit and MailHog accept it), unless
    ``refuse_long_lines``."""
    refuse_long_lines: bool = False
    """Refuse a message with a DATA line over ``max_line_length`` (500 5.5.2, after the final
    dot), as RFC 5321 allows; by default it is accepted and reported in its defects."""
    auth_accept_any: bool = False
    """Offer AUTH (PLAIN, LOGIN, CRAM-MD5) and accept any user name and password, on any
    connection (TLS or not): for an application that insists on logging in. The user name is
    recorded on the message (``auth_user``). Not with ``auth``."""
    mailbox_rules: tuple[str, ...] = ()
    """Mailbox rules, first match wins, unmatched mail to 'default' (comma-separated:
    auth-user, plus-tag, domain, domain:D=BOX, header:NAME, port:PORT=BOX; see _routing.py)."""

    def __post_init__(self) -> None:
        if self.max_message_size is not None and self.max_message_size <= 0:
            raise ConfigurationError("max_message_size must be positive or None")
        if self.idle_timeout <= 0:
            raise ConfigurationError("idle_timeout must be positive")
        if not self.hostname or any(c.isspace() for c in self.hostname):
            raise ConfigurationError(f"hostname must be one word, not {self.hostname!r}")
        self._check_tls()
        self._check_auth()
        for name in ("max_recipients", "max_connections", "max_line_length"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name} must be positive or None")
        if self.max_command_length < 512:
            raise ConfigurationError("max_command_length must be at least 512 (RFC 5321)")
        self._check_mailbox_rules()

    def _check_mailbox_rules(self) -> None:
        rules: object = self.mailbox_rules
        if isinstance(rules, str):  # one string (CLI flag, environment): comma-separated
            rules = tuple(r.strip() for r in rules.split(",") if r.strip())
        if not isinstance(rules, (tuple, list)):
            raise ConfigurationError(f"mailbox_rules must be a list of rules, not {rules!r}")
        object.__setattr__(self, "mailbox_rules", tuple(str(r) for r in rules))
        from ._routing import Router

        Router(self.mailbox_rules)  # a rule that cannot work is an error now

    def _check_tls(self) -> None:
        if self.tls is not None and self.tls not in _TLS_MODES:
            raise ConfigurationError(
                f"tls must be one of {', '.join(map(repr, _TLS_MODES))} or None, not {self.tls!r}"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigurationError("tls_cert and tls_key go together: give both or neither")
        if self.tls_cert is not None and self.tls is None:
            raise ConfigurationError("tls_cert/tls_key given but tls is None: set tls=...")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ConfigurationError("tls_ca only makes sense with tls_cert/tls_key")

    def _check_auth(self) -> None:
        if self.auth_accept_any:
            if self.auth is not None:
                raise ConfigurationError(
                    "auth_accept_any=True accepts any credentials: give it or auth=, not both"
                )
            return
        if self.auth is None:
            if self.auth_required:
                raise ConfigurationError(
                    "auth_required=True needs accounts (auth={...}) or auth_accept_any=True"
                )
            return
        if not (isinstance(self.auth, Mapping) or callable(self.auth)):
            raise ConfigurationError("auth must be a dict of user: password, or a callable")
        if self.tls is None and not self.auth_allow_plaintext:
            raise ConfigurationError(
                "AUTH is only offered over TLS: set tls='starttls' (or 'implicit'), or "
                "auth_allow_plaintext=True to allow it on a plain connection"
            )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ServerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**options)
