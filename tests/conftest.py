"""Shared fixtures for smtpmock's own test suite.

``mock`` is a fresh in-process server per test. ``mailbox`` is what the inspection tests run
against: a server plus the inspection API (``messages``, ``filter``, ``wait_for``,
``assert_sent``, ``assert_not_sent``, ``reset``) and ``.host``/``.port`` for SMTP. It is
parametrised so the same tests can run in-process and, once the standalone server lands,
through ``smtpmock.Client`` against ``smtpmock serve`` (moto's server mode, in spirit).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from smtpmock import Client, SMTPMock
from tests.served import Served

# tests/test_plugin.py runs whole pytest sessions; tests/pg.py: the throwaway PostgreSQL
pytest_plugins = ["pytester", "tests.pg"]


@pytest.fixture
def mock() -> Iterator[SMTPMock]:
    with SMTPMock() as server:
        yield server


@pytest.fixture(scope="session")
def served() -> Iterator[Served]:
    """One ``smtpmock serve`` subprocess (free ports, temporary database) per test session."""
    with Served() as process:
        yield process


@pytest.fixture(params=["inprocess", "client"])
def mailbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """In-process ``SMTPMock``, or ``smtpmock.Client`` over a ``serve`` subprocess (emptied
    before each test; ``.host``/``.port`` are the server's SMTP address)."""
    if request.param == "inprocess":
        with SMTPMock() as server:
            yield server
    else:
        process: Served = request.getfixturevalue("served")
        with Client(process.url) as client:
            client.reset()
            yield client
