"""The seed's API, kept working: ``MockSMTPServer(hostname, port)``.

The original was built on ``smtpd``/``asyncore`` (gone in Python 3.12) and handed its regexes
``str`` messages whose lines end in ``\\n``. This class keeps that contract on top of
:class:`~smtpmock.SMTPMock`: it starts in its constructor, ``received_messages`` are ``str``
with ``\\n`` line ends (as ``smtpd`` produced: no terminator after the last line), and
``received_message_matching`` uses ``re.match``.
"""

from __future__ import annotations

import re

from ._message import Message
from ._server import SMTPMock

__all__ = ["MockSMTPServer"]


def _as_smtpd_text(message: Message) -> str:
    text = message.raw.decode("utf-8", "replace").replace("\r\n", "\n")
    return text[:-1] if text.endswith("\n") else text


class MockSMTPServer(SMTPMock):
    """A mock SMTP server that starts on construction, with the seed's assertion helpers.

    ``MockSMTPServer("localhost", 0)`` picks a free port; read it from ``.port``.
    """

    def __init__(self, hostname: str, port: int, **options: object) -> None:
        super().__init__(hostname, port, **options)  # type: ignore[arg-type]
        self.daemon = True  # the seed's server was a daemon thread; kept for code that reads it
        self.start()

    @property
    def received_messages(self) -> list[str]:
        """Every message received, as ``str`` with ``\\n`` line ends, in arrival order."""
        return [_as_smtpd_text(m) for m in self.messages]

    def received_message_matching(self, template: str | re.Pattern[str]) -> bool:
        """Whether a received message matches *template* with ``re.match`` semantics."""
        return any(re.match(template, text) for text in self.received_messages)

    def received_messages_count(self) -> int:
        return len(self._store)
