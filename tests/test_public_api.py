"""The public names of ``smtpmock``, pinned: adding or removing one is a deliberate change."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

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
    "HookAction",
    "LateMail",
    "LateMailWarning",
    "MailAssertionError",
    "Mailbox",
    "MailboxNameError",
    "MemoryStore",
    "Message",
    "MessageNotSent",
    "MockSMTPServer",
    "PortInUseError",
    "PostgresStore",
    "Retention",
    "SMTPMock",
    "SMTPMockError",
    "SMTPMockMixin",
    "SMTPMockTestCase",
    "SQLiteStore",
    "ScopedMailbox",
    "SearchError",
    "SessionView",
    "ServerError",
    "ServerStartError",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "Store",
    "Transcript",
    "TranscriptEntry",
    "UnexpectedMessage",
    "VerificationCode",
    "WaitTimeout",
    "create_mcp_server",
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


def test_the_plugin_loads_no_sqlite_nor_http_client() -> None:
    # Every pytest run in an environment with smtpmock loads the plugin: the SMTP server, the
    # message parser, the SQLite store, its search index and worker, and Client are imported
    # when first asked for (the server at the first test that uses it), not by
    # ``import smtpmock``.
    heavy = [
        "sqlite3",
        "asyncio",
        "aiosmtpd",
        "smtpmock._server",
        "smtpmock._message",
        "smtpmock.store._sqlite",
        "smtpmock._search",
        "smtpmock._client",
        "smtpmock._extract",
        "smtpmock._mcp",
    ]
    heavy += ["psycopg", "smtpmock.store._postgres"]
    code = (
        "import sys, smtpmock, smtpmock.pytest_plugin\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "from smtpmock import Client, SQLiteStore\n"
        "from smtpmock.store import SQLiteStore as FromStore\n"
        "assert SQLiteStore is FromStore and Client.__module__ == 'smtpmock._client'\n"
        "assert {'Client', 'SQLiteStore'} <= set(dir(smtpmock))\n"
        "from smtpmock import PostgresStore\n"
        "from smtpmock.store import PostgresStore as PgFromStore\n"
        "assert PostgresStore is PgFromStore\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    import smtpmock.store

    for module in (smtpmock, smtpmock.store):
        with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
            module.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_exceptions_are_named_as_exported_and_pickle() -> None:
    import pickle

    for name in smtpmock.__all__:
        value = getattr(smtpmock, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            assert value.__module__ == "smtpmock", name
            assert getattr(smtpmock.Mailbox, name) is value, name  # reachable from a fixture
    error = smtpmock.WaitTimeout("timed out")
    assert repr(error) == "WaitTimeout('timed out')"
    assert type(pickle.loads(pickle.dumps(error))) is smtpmock.WaitTimeout
    assert issubclass(smtpmock.SearchError, smtpmock.ConfigurationError)
