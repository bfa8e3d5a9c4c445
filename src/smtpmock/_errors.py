"""The one exception tree of smtpmock.

::

    SMTPMockError                      every error smtpmock raises
    ├── ServerStartError               the server could not start
    │   └── PortInUseError             ... because its port is taken (also an OSError)
    ├── ServerError                    an error inside the server thread, re-raised in the test
    ├── ConfigurationError             an option that cannot work (also a ValueError)
    │   ├── SearchError                a search string that cannot be parsed
    │   └── MailboxNameError           a mailbox name that is not one (an HTTP 400)
    ├── StorageError                   the store could not do what was asked
    │   ├── StorageFull                ... because its disk (or quota) is full: SMTP 452 4.3.1
    │   └── StorageUnavailable         ... because its database cannot be reached: SMTP 451 4.3.0
    ├── LateMailWarning                a test's mail arrived after it ended (also a UserWarning)
    └── MailAssertionError             a check the test asked for failed (also an AssertionError)
        ├── WaitTimeout                wait_for() saw fewer matching messages than asked for
        ├── MessageNotSent             assert_sent() found no matching message
        ├── UnexpectedMessage          assert_not_sent() found a matching message
        └── LateMail                   a test ended with a mail transaction still open

Failures a test asked for derive from :class:`AssertionError`, so pytest reports them as test
failures rather than errors; everything else is an ordinary exception.

Every class is exported from ``smtpmock`` and says so (``__module__ == "smtpmock"``), so a report
reads ``smtpmock.WaitTimeout``; each is also an attribute of every mailbox (the ``smtpmock``
fixture included, whose name hides the module in a test): ``smtpmock.WaitTimeout``.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "LateMail",
    "LateMailWarning",
    "MailAssertionError",
    "MailboxNameError",
    "MessageNotSent",
    "PortInUseError",
    "SMTPMockError",
    "SearchError",
    "ServerError",
    "ServerStartError",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "UnexpectedMessage",
    "WaitTimeout",
]


class SMTPMockError(Exception):
    """Root of every exception smtpmock raises."""


class ServerStartError(SMTPMockError):
    """The SMTP server could not start (bad address, bad TLS files, ...)."""


class PortInUseError(ServerStartError, OSError):
    """The requested port is already taken by another socket."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        super().__init__(
            f"cannot listen on {host}:{port}: port {port} is already in use "
            "(use port=0 to let the system pick a free port, then read .port)"
        )

    def __reduce__(self) -> tuple[type[PortInUseError], tuple[str, int]]:
        return (type(self), (self.host, self.port))


class ServerError(SMTPMockError):
    """An exception raised inside the server thread, re-raised in the caller's thread.

    The original exception is chained as ``__cause__``.
    """


class ConfigurationError(SMTPMockError, ValueError):
    """An option or combination of options that cannot work."""


class SearchError(ConfigurationError):
    """A search string that cannot be understood (an HTTP 400)."""


class MailboxNameError(ConfigurationError):
    """A mailbox name that is not one: 1 to 64 of ``A-Z a-z 0-9 . _ -``, starting with a
    letter or digit (an HTTP 400; never used as a path or in SQL text)."""


class StorageError(SMTPMockError):
    """The store could not do what was asked; a refused add stored nothing."""


class StorageFull(StorageError):
    """The store has no room (disk full, quota): the SMTP side answers ``452 4.3.1``."""


class StorageUnavailable(StorageError):
    """The store cannot be reached (a lost database connection): the SMTP side answers ``451``."""


class MailAssertionError(SMTPMockError, AssertionError):
    """A mail check requested by the test failed."""


class WaitTimeout(MailAssertionError):
    """``wait_for()`` timed out before enough matching messages arrived."""


class MessageNotSent(MailAssertionError):
    """``assert_sent()`` found no matching message."""


class UnexpectedMessage(MailAssertionError):
    """``assert_not_sent()`` found a message it should not have."""


class LateMail(MailAssertionError):
    """A test ended while a mail transaction it began was still open (``late_mail="fail"``)."""


class LateMailWarning(SMTPMockError, UserWarning):
    """Mail of a test arrived, or was still being sent, after that test ended."""


# Shown as ``smtpmock.WaitTimeout`` in tracebacks and reprs (where they are exported from), not
# as the private module that defines them; pickling finds them there too.
for _name in __all__:
    globals()[_name].__module__ = "smtpmock"
del _name
