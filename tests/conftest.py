"""Shared fixtures for smtpmock's own test suite.

``mock`` is a fresh in-process server per test. ``mailbox`` is what the inspection tests run
against: a server plus the inspection API (``messages``, ``filter``, ``wait_for``,
``assert_sent``, ``assert_not_sent``, ``reset``) and ``.host``/``.port`` for SMTP. It is
parametrised so the same tests can run in-process and, once the standalone server lands,
through ``smtpmock.Client`` against ``smtpmock serve`` (moto's server mode, in spirit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smtpmock import Client, SMTPMock
from smtpmock.store import MemoryStore, Retention, Store
from tests.served import Served

# tests/test_plugin.py runs whole pytest sessions; tests/pg.py: the throwaway PostgreSQL
pytest_plugins = ["pytester", "tests.pg"]


@pytest.fixture
def mock() -> Iterator[SMTPMock]:
    with SMTPMock() as server:
        yield server


class ServedBackends:
    """One ``smtpmock serve`` subprocess per backend, started on first use: on a temporary
    SQLite file, or on PostgreSQL (a schema of its own on the tests' cluster; skipped without
    PostgreSQL, failed in CI: tests/pg.py)."""

    def __init__(self) -> None:
        self._processes: dict[str, Served] = {}

    def get(self, backend: str) -> Served:
        if backend not in self._processes:
            args: tuple[str, ...] = ()
            if backend == "postgresql":
                from tests.pg import session_server

                args = ("--db", session_server().create_schema())
            self._processes[backend] = Served(*args).start()
        return self._processes[backend]

    def close(self) -> None:
        for process in self._processes.values():
            process.close()


@pytest.fixture(scope="session")
def served_backends() -> Iterator[ServedBackends]:
    backends = ServedBackends()
    yield backends
    backends.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, served_backends: ServedBackends) -> Served:
    """A ``smtpmock serve`` subprocess (free ports) per backend per test session, so the HTTP
    API and ``Client`` suites run on SQLite and on PostgreSQL."""
    return served_backends.get(request.param)


@pytest.fixture(params=["inprocess", "client", "client-postgresql"])
def mailbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """In-process ``SMTPMock`` (memory store), or ``smtpmock.Client`` over a ``serve``
    subprocess on SQLite or on PostgreSQL (emptied before each test; ``.host``/``.port`` are
    the server's SMTP address)."""
    if request.param == "inprocess":
        with SMTPMock() as server:
            yield server
    else:
        backends: ServedBackends = request.getfixturevalue("served_backends")
        backend = "postgresql" if request.param == "client-postgresql" else "sqlite"
        with Client(backends.get(backend).url) as client:
            client.reset()
            client.faults.clear()  # a rule another test of the shared server left
            yield client


# --------------------------------------------------------------------------- store backends

StoreFactory = Callable[..., Store]
"""``store_factory(retention=None)``: a new, empty store of the backend under test."""


def _memory_store(_tmp: Path, retention: Retention | None) -> Store:
    return MemoryStore(retention)


def _sqlite_store(tmp: Path, retention: Retention | None) -> Store:
    from smtpmock.store import SQLiteStore

    return SQLiteStore(tmp / "messages.db", retention)


def _postgres_store(_tmp: Path, retention: Retention | None) -> Store:
    from tests.pg import postgres_store  # a new database on the tests' own cluster

    return postgres_store(retention)


def _postgres_postings_store(_tmp: Path, retention: Retention | None) -> Store:
    """PostgreSQL with blocks of 4 seqs (8,192 in use), merged two by two (8 in use): most
    messages of a test's corpus are in the word postings, written and merged in the
    background while the test runs."""
    from tests.pg import postgres_store

    store = postgres_store(retention)
    store._block = 4  # type: ignore[attr-defined]
    store._fanout = 2  # type: ignore[attr-defined]  # blocks merged as soon as two are there
    store._merge_wake.set()  # type: ignore[attr-defined]
    return store


# Every backend the contract suite (tests/test_store_contract.py) runs against: name ->
# maker(fresh temporary directory, retention). A backend with a service adds itself here.
STORE_BACKENDS: dict[str, Callable[[Path, Retention | None], Store]] = {
    "memory": _memory_store,
    "sqlite": _sqlite_store,
    "postgresql": _postgres_store,  # skipped without PostgreSQL (failed in CI): tests/pg.py
    "postgresql-postings": _postgres_postings_store,
}


@pytest.fixture(params=list(STORE_BACKENDS))
def store_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreFactory]:
    """Makes new, empty stores of one backend (each with its own database); every store made
    is closed after the test."""
    made: list[Store] = []
    maker = STORE_BACKENDS[request.param]

    def make(retention: Retention | None = None) -> Store:
        store = maker(tmp_path_factory.mktemp(f"store-{request.param}"), retention)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
