"""The PostgreSQL test fixtures themselves (tests/pg.py): a skip with the reason on a developer's
machine without PostgreSQL, a failure in CI, and a working throwaway cluster where it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg import PostgresServer

_USES_PG = """
def test_needs_postgres(pg_url):
    assert pg_url
"""


@pytest.fixture
def no_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment where no PostgreSQL can be found."""
    monkeypatch.setenv("SMTPMOCK_PG_BINDIR", "/nonexistent/postgresql/bin")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))  # tests.pg
    for name in ("SMTPMOCK_TEST_POSTGRES_URL", "SMTPMOCK_REQUIRE_POSTGRES", "CI"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_postgres")
def test_without_postgres_a_developer_sees_a_skip_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest('pytest_plugins = ["tests.pg"]')
    pytester.makepyfile(_USES_PG)
    result = pytester.runpytest_subprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no PostgreSQL: could not start a throwaway cluster*"])


@pytest.mark.usefixtures("no_postgres")
@pytest.mark.parametrize("variable", ["CI=true", "SMTPMOCK_REQUIRE_POSTGRES=1"])
def test_without_postgres_ci_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    name, value = variable.split("=")
    monkeypatch.setenv(name, value)
    pytester.makeconftest('pytest_plugins = ["tests.pg"]')
    pytester.makepyfile(_USES_PG)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*PostgreSQL is required here*"])


@pytest.mark.parametrize("kind", ["database", "schema"])
def test_each_test_gets_an_empty_place_of_its_own(pg_server: PostgresServer, kind: str) -> None:
    import psycopg

    create = pg_server.create_database if kind == "database" else pg_server.create_schema
    first, second = create(), create()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        row = conn.execute("SELECT count(*) FROM t").fetchone()
    assert row == (0,)
    with psycopg.connect(second, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 't' AND schemaname = current_schema()"
        ).fetchone()
    assert row == (0,)


def test_tests_using_the_fixtures_carry_the_postgres_marker(
    request: pytest.FixtureRequest, pg_url: str
) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    assert pg_url.startswith("postgresql://")
