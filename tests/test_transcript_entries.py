"""Transcript entries record a float timestamp and build the datetime when read."""

from __future__ import annotations

import datetime as dt
import smtplib

import pytest

from smtpmock import SMTPMock, TranscriptEntry


def test_entry_times_are_aware_utc_within_the_session(mock: SMTPMock) -> None:
    with smtplib.SMTP(mock.host, mock.port) as client:
        client.noop()
    [session] = mock.wait_for_sessions(1)
    entries = session.entries
    assert all(isinstance(e, TranscriptEntry) for e in entries)
    for entry in entries:
        assert entry.time.tzinfo is dt.timezone.utc
        assert entry.time == dt.datetime.fromtimestamp(entry.stamp, dt.timezone.utc)
        assert entry.to_dict()["time"] == entry.time.isoformat()
    assert session.ended_at is not None
    # Whole seconds: started_at/ended_at come from datetime.now, entries from time.time.
    assert session.started_at.replace(microsecond=0) <= entries[0].time
    assert entries[-1].time <= session.ended_at.replace(microsecond=0) + dt.timedelta(seconds=1)


def test_entries_are_immutable() -> None:
    entry = TranscriptEntry(0.0, "event", "connected")
    with pytest.raises(AttributeError):
        entry.text = "changed"  # type: ignore[misc]
    assert str(entry) == "-- connected"
    assert entry.to_dict() == {
        "time": "1970-01-01T00:00:00+00:00",
        "kind": "event",
        "text": "connected",
    }
