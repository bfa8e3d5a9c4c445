"""A throwaway PostgreSQL for the tests: a cluster of their own, or a server named by the user.

Loaded as a pytest plugin by ``tests/conftest.py``. Fixtures:

* ``pg_server`` (session): a :class:`PostgresServer`. By default the tests' own cluster:
  ``initdb`` in a temporary directory, started with ``pg_ctl`` on a unix socket in its own
  directory (no TCP listener, so no port to collide with anything), one cluster per xdist worker,
  stopped and deleted when the session ends. As root the server runs as the ``postgres`` user
  (PostgreSQL refuses to run as root). ``SMTPMOCK_TEST_POSTGRES_URL`` points the tests at an
  existing server instead (they create and drop databases ``smtpmock_test_*`` on it, so the
  role needs ``CREATEDB``).
* ``pg_url`` (function): the URL of a new, empty store location for one test: a schema of its
  own (``options=-csearch_path=...``) in one database per worker, with ``pg_trgm`` installed
  there once (creating a database takes a second; a schema a millisecond).
  ``pg_server.create_database()`` gives a whole new database where a test needs one.

Where no PostgreSQL is found (no ``initdb``, or psycopg not installed) the tests that use these
fixtures are skipped with the reason, except in CI (``CI=true``, or
``SMTPMOCK_REQUIRE_POSTGRES=1``, which ``.ci/run`` sets), where that is a failure: CI must never
pass with the PostgreSQL tests quietly skipped. Every test that uses the fixtures carries the
``postgres`` marker (``-m "not postgres"`` leaves them out).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

URL_ENV = "SMTPMOCK_TEST_POSTGRES_URL"
REQUIRE_ENV = "SMTPMOCK_REQUIRE_POSTGRES"
BINDIR_ENV = "SMTPMOCK_PG_BINDIR"


def postgres_required() -> bool:
    """Whether a missing PostgreSQL fails the run (CI) rather than skipping its tests."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get(REQUIRE_ENV) == "1"


def unavailable(reason: str) -> None:
    """Skip the test (a developer's machine) or fail it (CI) because PostgreSQL is missing."""
    if postgres_required():
        pytest.fail(f"PostgreSQL is required here (CI or {REQUIRE_ENV}=1): {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason} (install Debian's postgresql, or set {URL_ENV})")


def find_bindir() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``: ``$SMTPMOCK_PG_BINDIR``, Debian's
    ``/usr/lib/postgresql/<newest>/bin``, or ``initdb`` on ``PATH``."""
    if os.environ.get(BINDIR_ENV):
        return Path(os.environ[BINDIR_ENV])
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda p: int(Path(p).parent.parent.name.split(".")[0]))
        return Path(newest).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PostgresServer:
    """A PostgreSQL server the tests may create databases on.

    ``local`` is true for the tests' own cluster, which :meth:`restart` can restart; a server
    named by ``SMTPMOCK_TEST_POSTGRES_URL`` is never restarted by the tests.
    """

    def __init__(self, admin_url: str, *, cluster: LocalCluster | None = None) -> None:
        self.admin_url = admin_url
        self.cluster = cluster
        self._names = itertools.count(1)
        self._created: list[str] = []
        self._shared: str | None = None
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self._prefix = f"smtpmock_test_{worker}_{os.getpid()}"

    @property
    def local(self) -> bool:
        return self.cluster is not None

    def url(self, database: str) -> str:
        """The admin URL with its database replaced by *database*."""
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + quote(database)))

    def create_database(self) -> str:
        """Create an empty database; return its URL."""
        import psycopg

        name = f"{self._prefix}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url(name)

    def create_schema(self) -> str:
        """A new, empty schema in this session's shared database (``pg_trgm`` installed in
        its ``public``); return a URL whose ``search_path`` is that schema."""
        import psycopg

        if self._shared is None:
            self._shared = self.create_database()
            with psycopg.connect(self._shared, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        name = f"s{next(self._names)}"
        with psycopg.connect(self._shared, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        separator = "&" if "?" in self._shared else "?"
        return f"{self._shared}{separator}options=-csearch_path%3D{name}%2Cpublic"

    def drop_databases(self) -> None:
        """Drop the databases this session created (on a server named by the user)."""
        import psycopg

        if not self._created:
            return
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self._created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()

    def restart(self) -> None:
        """Restart the tests' own cluster (every connection to it is cut)."""
        if self.cluster is None:
            pytest.skip(f"restarting the database needs the tests' own cluster, not {URL_ENV}")
        self.cluster.restart()


class LocalCluster:
    """``initdb`` + ``pg_ctl`` in a temporary directory, reachable only by its unix socket.

    *root*: a directory to keep the cluster in instead (created by the first :meth:`start`,
    started again by the next ones, never deleted: the benchmarks keep a filled database
    there between runs)."""

    PORT = 5432  # names the socket file only: the socket directory is the cluster's own

    def __init__(
        self, bindir: Path, *, settings: dict[str, str] | None = None, root: Path | None = None
    ) -> None:
        self.bindir = bindir
        self.kept = root is not None
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="smtpmock-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "server.log"
        self.settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "port": str(self.PORT),
            # A throwaway cluster: a crash of the machine may lose it; a crash of PostgreSQL or
            # of smtpmock loses nothing committed (the data is in the OS page cache).
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "200",
            **(settings or {}),
        }
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")

    @property
    def admin_url(self) -> str:
        return (
            f"postgresql://postgres@/postgres?host={quote(str(self.socket_dir))}&port={self.PORT}"
        )

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [*self._as_user, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            output = done.stderr + done.stdout
            raise RuntimeError(f"{tool} failed ({done.returncode}): {output}{log}")

    def start(self) -> LocalCluster:
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                *("-D", str(self.data), "-U", "postgres", "--auth=trust"),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            )
        # Appended at every start (a kept cluster's later settings win: the last line does).
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in self.settings.items())
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log), "-w", *extra)

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop_server(self) -> None:
        """Stop the server, keeping the cluster (see :meth:`start_server`)."""
        self._pg_ctl("stop", "-m", "fast")

    def start_server(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        """Stop the server and delete the cluster (a kept one: stop it cleanly, keep it)."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "fast" if self.kept else "immediate")
        finally:
            if not self.kept:
                shutil.rmtree(self.root, ignore_errors=True)


def open_server() -> tuple[PostgresServer | None, str]:
    """The server the tests use, or ``None`` and the reason there is none."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed (pip install -e '.[test]')"
    url = os.environ.get(URL_ENV)
    if url:
        return PostgresServer(url), ""
    bindir = find_bindir()
    if bindir is None:
        return None, "initdb not found"
    cluster = LocalCluster(bindir)
    try:
        cluster.start()
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        return None, f"could not start a throwaway cluster with {bindir}/initdb: {exc}"
    return PostgresServer(cluster.admin_url, cluster=cluster), ""


# --------------------------------------------------------------------------- the session's server


class _Session:
    server: PostgresServer | None = None
    reason: str | None = None  # why there is no server (cached: one attempt per process)


def session_server() -> PostgresServer:
    """This process's server, started on first use (skips or fails the test without one); the
    plugin stops it when the session ends."""
    if _Session.server is None and _Session.reason is None:
        _Session.server, _Session.reason = open_server()
    if _Session.server is None:
        unavailable(_Session.reason or "unknown")
        raise AssertionError("unreachable")  # pragma: no cover - unavailable() raised
    return _Session.server


def postgres_store(retention: Any = None) -> Any:
    """A ``PostgresStore`` on a new, empty database (the contract suite's maker)."""
    server = session_server()
    from smtpmock.store._postgres import PostgresStore

    store = PostgresStore(server.create_schema(), retention)
    store.wait_listening(10)
    return store


def _undo_schema_6(conn: Any) -> None:
    """Take migration 6 back (the word postings): only where they hold no message yet."""
    frozen = conn.execute("SELECT frozen FROM smtpmock_state").fetchone()
    assert frozen[0] == 0, "the postings hold messages: their ids are not in smtpmock_terms"
    conn.execute("DROP TRIGGER smtpmock_messages_gone ON smtpmock_messages")
    conn.execute("DROP FUNCTION smtpmock_note_gone()")
    conn.execute("DROP TABLE smtpmock_postings, smtpmock_blocks, smtpmock_gone")
    conn.execute("ALTER TABLE smtpmock_state DROP COLUMN frozen")


def back_to_schema_5(url: str) -> None:
    """Leave the store at *url* as smtpmock's PostgreSQL schema 5 did: no word postings."""
    import psycopg

    with psycopg.connect(url) as conn:
        _undo_schema_6(conn)
        conn.execute("DELETE FROM smtpmock_schema WHERE version > 5")


def back_to_schema_4(url: str) -> None:
    """Leave the store at *url* as smtpmock's PostgreSQL schema 4 did: the word ids in the
    messages table (migration 5 moves them to a table of their own), no subject flag on the
    vocabulary."""
    import psycopg

    with psycopg.connect(url) as conn:
        _undo_schema_6(conn)
        conn.execute("ALTER TABLE smtpmock_messages ADD COLUMN words integer[]")
        conn.execute(
            "UPDATE smtpmock_messages m SET words = t.words FROM smtpmock_terms t "
            "WHERE t.seq = m.seq"
        )
        conn.execute("ALTER TABLE smtpmock_messages ALTER COLUMN words SET NOT NULL")
        conn.execute(
            "CREATE INDEX smtpmock_messages_words ON smtpmock_messages USING gin (words) "
            "WITH (gin_pending_list_limit = 65536)"
        )
        conn.execute("DROP TABLE smtpmock_terms")
        conn.execute("ALTER TABLE smtpmock_words DROP COLUMN in_subject")
        conn.execute("DELETE FROM smtpmock_schema WHERE version > 4")


def back_to_schema_1(url: str) -> None:
    """Leave the store at *url* as smtpmock's PostgreSQL schema 1 did: no word index
    (migration 2), no read state or tags (3; their indexes go with the columns)."""
    import psycopg

    with psycopg.connect(url) as conn:
        _undo_schema_6(conn)
        conn.execute("DROP TABLE smtpmock_terms")
        conn.execute("DROP TABLE smtpmock_words")
        conn.execute("ALTER TABLE smtpmock_messages DROP COLUMN read, DROP COLUMN tags")
        conn.execute("DELETE FROM smtpmock_schema WHERE version > 1")


# --------------------------------------------------------------------------- pytest plugin


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: needs a PostgreSQL server (the tests' own cluster, tests/pg.py)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = {"pg_server", "pg_url"} & set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if uses or any("postgresql" in str(value) for value in params.values()):
            item.add_marker(pytest.mark.postgres)


def pytest_sessionfinish() -> None:
    server, _Session.server = _Session.server, None
    if server is not None:
        if server.cluster is not None:
            server.cluster.stop()
        else:
            server.drop_databases()


@pytest.fixture(scope="session")
def pg_server() -> PostgresServer:
    """The PostgreSQL server of this test session (see the module docstring)."""
    return session_server()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """The URL of a new, empty store location for this test (a schema of its own)."""
    return pg_server.create_schema()


@pytest.fixture
def open_store(pg_url: str) -> Iterator[Callable[..., Any]]:
    r"""Open ``PostgresStore``\ s on this test's database (each one an "instance"); all closed
    at the end."""
    from smtpmock.store._postgres import PostgresStore

    opened: list[PostgresStore] = []

    def opener(**kwargs: Any) -> PostgresStore:
        store = PostgresStore(pg_url, **kwargs)
        opened.append(store)
        assert store.wait_listening(10)
        return store

    yield opener
    for store in opened:
        store.close()
