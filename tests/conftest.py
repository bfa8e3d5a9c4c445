"""Shared fixtures for smtpmock's own test suite.

``mock`` is a fresh in-process server per test. ``mailbox`` is what the inspection tests run
against: a server plus the inspection API (``messages``, ``filter``, ``wait_for``,
``assert_sent``, ``assert_not_sent``, ``reset``) and ``.host``/``.port`` for SMTP. It is
parametrised so the same tests can run in-process and, once the standalone server lands,
through ``smtpmock.Client`` against ``smtpmock serve`` (moto's server mode, in spirit).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smtpmock import SMTPMock


@pytest.fixture
def mock() -> Iterator[SMTPMock]:
    with SMTPMock() as server:
        yield server


@pytest.fixture(params=["inprocess"])
def mailbox(request: pytest.FixtureRequest) -> Iterator[SMTPMock]:
    if request.param == "inprocess":
        with SMTPMock() as server:
            yield server
    else:  # pragma: no cover - other modes are added with the standalone server
        raise AssertionError(request.param)
