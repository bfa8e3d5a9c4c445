"""The public names of ``smtpmock``, pinned: adding or removing one is a deliberate change."""

from __future__ import annotations

import inspect

import smtpmock

PUBLIC = {
    "Address",
    "Attachment",
    "AuthAttempt",
    "Client",
    "ConfigurationError",
    "Criteria",
    "FaultContext",
    "FaultEvent",
    "FaultRule",
    "FaultSet",
    "Headers",
    "LateMail",
    "LateMailWarning",
    "MailAssertionError",
    "Mailbox",
    "MemoryStore",
    "Message",
    "MessageNotSent",
    "MockSMTPServer",
    "PortInUseError",
    "Retention",
    "SMTPMock",
    "SMTPMockError",
    "SMTPMockMixin",
    "SMTPMockTestCase",
    "SQLiteStore",
    "ScopedMailbox",
    "ServerError",
    "ServerStartError",
    "Store",
    "Transcript",
    "TranscriptEntry",
    "UnexpectedMessage",
    "WaitTimeout",
    "__version__",
}

ASSERTIONS = {
    "MailAssertionError",
    "WaitTimeout",
    "MessageNotSent",
    "UnexpectedMessage",
    "LateMail",
}


def test_all_is_pinned() -> None:
    assert set(smtpmock.__all__) == PUBLIC
    assert len(smtpmock.__all__) == len(set(smtpmock.__all__))


def test_every_public_name_exists_and_is_documented() -> None:
    for name in smtpmock.__all__:
        value = getattr(smtpmock, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from smtpmock import *", namespace)
    assert set(namespace) - {"__builtins__"} == PUBLIC


def test_exception_tree() -> None:
    errors = {
        name: getattr(smtpmock, name)
        for name in smtpmock.__all__
        if inspect.isclass(getattr(smtpmock, name))
        and issubclass(getattr(smtpmock, name), BaseException)
    }
    assert set(errors) >= ASSERTIONS | {"SMTPMockError", "PortInUseError", "ServerError"}
    for name, error in errors.items():
        assert issubclass(error, smtpmock.SMTPMockError), name
        assert issubclass(error, AssertionError) == (name in ASSERTIONS), name
    assert issubclass(smtpmock.PortInUseError, OSError)
    assert issubclass(smtpmock.ConfigurationError, ValueError)


def test_version() -> None:
    assert isinstance(smtpmock.__version__, str)
    assert smtpmock.__version__.count(".") >= 2


def test_typed_package() -> None:
    from importlib.resources import files

    assert files("smtpmock").joinpath("py.typed").is_file()
