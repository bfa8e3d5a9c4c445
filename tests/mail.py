"""Helpers to send mail from tests with real clients."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence


def send(
    host: str,
    port: int,
    *,
    sender: str = "alice@example.com",
    to: Sequence[str] = ("bob@example.com",),
    subject: str = "Hello",
    body: str = "Hi Bob",
    headers: str = "",
    raw: bytes | str | None = None,
) -> None:
    """Send one message with smtplib; *raw* replaces the generated message text."""
    if raw is None:
        raw = (
            f"From: {sender}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n{headers}"
            f"\r\n{body}\r\n"
        )
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail(sender, list(to), raw)
