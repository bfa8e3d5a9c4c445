"""Server options, validated once, shared by ``SMTPMock``, the pytest plugin and the CLI.

Every option of the SMTP server is a field here, so that the in-process API, the fixture marker
and ``smtpmock serve`` flags all accept the same names with the same meaning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigurationError

__all__ = ["ServerConfig"]


@dataclass(frozen=True)
class ServerConfig:
    hostname: str = "localhost"
    """The name the server gives in its greeting and EHLO reply (never looked up in DNS)."""
    max_message_size: int | None = 33_554_432
    """Largest message accepted, in bytes (advertised as SIZE; ``None``: no limit)."""
    smtputf8: bool = True
    """Advertise and accept SMTPUTF8 (internationalised addresses and headers)."""
    idle_timeout: float = 300.0
    """Seconds a connection may stay silent before the server closes it."""

    def __post_init__(self) -> None:
        if self.max_message_size is not None and self.max_message_size <= 0:
            raise ConfigurationError("max_message_size must be positive or None")
        if self.idle_timeout <= 0:
            raise ConfigurationError("idle_timeout must be positive")
        if not self.hostname or any(c.isspace() for c in self.hostname):
            raise ConfigurationError(f"hostname must be one word, not {self.hostname!r}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ServerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**options)

    def smtp_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiosmtpd's ``SMTP`` constructor."""
        return {
            "hostname": self.hostname,
            "ident": "smtpmock ESMTP",
            "data_size_limit": self.max_message_size,
            "enable_SMTPUTF8": self.smtputf8,
            "timeout": self.idle_timeout,
        }
