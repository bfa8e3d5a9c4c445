"""Stopping a SQLiteStore's background indexer from a test, so that what is indexed and when
is the test's choice (the store stays open)."""

from __future__ import annotations

from smtpmock.store import SQLiteStore


def stop_indexer(store: SQLiteStore) -> None:
    """Join the background indexer (it would index and rebuild bitmaps on its own schedule)."""
    closed, store._closed = store._closed, True
    store._wake.set()
    if store._indexer is not None:
        store._indexer.join()
        store._indexer = None
    store._closed = closed
