"""Databases written before read state and tags existed (SQLite schema 3, PostgreSQL schema 1)
are migrated on open: their messages stay, unread and untagged, and read state and tags work."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from smtpmock import Message
from smtpmock._search import parse
from smtpmock.store import SQLiteStore, Store

from .pg import back_to_schema_1


def _mail(i: int) -> Message:
    return Message(f"Subject: old {i}\r\n\r\nbody {i}\r\n".encode(), mail_from="a@example.com")


def _check_migrated(store: Store, ids: list[str]) -> None:
    assert [m.id for m in store.messages()] == ids
    assert store.unread_count() == len(ids)
    assert store.tags() == []
    assert store.mark_read(ids[:1]) == 1
    assert store.set_tags(ids[1:], ["Old"]) == len(ids) - 1
    assert store.count(parse("is:read")) == 1
    assert [m.id for m in store.search(parse("tag:old"))] == ids[1:]
    page = store.page(None, limit=None)
    assert {s.id: (s.read, s.tags) for s in page.summaries} == {
        ids[0]: (True, ()),
        **dict.fromkeys(ids[1:], (False, ("Old",))),
    }


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 35), reason="needs ALTER TABLE DROP COLUMN")
def test_a_sqlite_file_of_schema_3_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    ids = [store.add(_mail(i)).id for i in range(3)]
    store.flush_index()
    store.close()
    # Make it the file an smtpmock before read state wrote: schema 3, no column, no table.
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TRIGGER msgtags_gone; DROP TABLE msgtags; ALTER TABLE messages DROP COLUMN read;"
        "PRAGMA user_version=3;"
    )
    db.close()
    store = SQLiteStore(path)
    try:
        _check_migrated(store, ids)
        assert store.count(parse("body")) == 3  # the search index was kept
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    finally:
        db.close()
    store = SQLiteStore(path)  # and the state survives a reopen
    try:
        assert store.unread_count() == 2
        assert store.tags() == ["Old"]
    finally:
        store.close()


def test_a_postgresql_store_of_schema_1_is_migrated(pg_url: str) -> None:
    pytest.importorskip("psycopg")
    from smtpmock.store._postgres import PostgresStore

    store = PostgresStore(pg_url)
    ids = [store.add(_mail(i)).id for i in range(3)]
    store.close()
    back_to_schema_1(pg_url)
    store = PostgresStore(pg_url)
    try:
        _check_migrated(store, ids)
    finally:
        store.close()
