"""Session transcripts: what a client said and what the server answered, in order.

One :class:`Transcript` per SMTP connection. Secrets never enter it: the argument of ``AUTH`` and
every line a client sends during an AUTH exchange are written as ``********``; message content is
not kept either (the message is in the store), only a marker with its size. Transcripts are kept
on the server in a bounded log (the newest 1,000 sessions by default) and serialise to plain
dicts for the HTTP API.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple

__all__ = ["Transcript", "TranscriptEntry", "TranscriptLog"]

EntryKind = Literal["client", "server", "event"]
MASK = "********"
MAX_ENTRIES = 5000
"""Entries kept per session; later lines are dropped after one :data:`TRUNCATED` marker."""
TRUNCATED = "[transcript truncated: too many lines in one session]"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class TranscriptEntry(NamedTuple):
    """One line of a session: sent by the ``client``, by the ``server``, or an ``event``
    (connection, TLS start, DATA content marker, timeout, disconnection)."""

    stamp: float
    """When, in seconds since the epoch (``time.time()``); :attr:`time` is the datetime."""
    kind: EntryKind
    text: str

    @property
    def time(self) -> _dt.datetime:
        """When, as an aware UTC datetime (built when read: recording a line stays cheap)."""
        return _dt.datetime.fromtimestamp(self.stamp, _dt.timezone.utc)

    def to_dict(self) -> dict[str, str]:
        """``{"time": ISO 8601, "kind": ..., "text": ...}``."""
        return {"time": self.time.isoformat(), "kind": self.kind, "text": self.text}

    def __str__(self) -> str:
        prefix = {"client": "C:", "server": "S:", "event": "--"}[self.kind]
        return f"{prefix} {self.text}"


_new_entry = tuple.__new__  # skips the NamedTuple's Python-level __new__

_Line = tuple[float, EntryKind, str]
"""An entry as a transcript keeps it: ``(stamp, kind, text)``, a plain tuple (see
:class:`Transcript`)."""


class Transcript:
    """The conversation of one SMTP session (a connection), in order.

    ``commands`` lists the client's command verbs (``["EHLO", "STARTTLS", "EHLO", "AUTH",
    "MAIL", ...]``), which is what most assertions need: ``commands.index("STARTTLS") <
    commands.index("AUTH")``.
    """

    # The lines are kept as plain tuples and made TranscriptEntry objects when read: the
    # cyclic garbage collector stops tracking a plain tuple of a float and two strings, not
    # an instance of a tuple subclass. The memory store keeps every message's transcript
    # (Message.transcript); with a connection per message, ~22 tracked lines per stored
    # message made every full collection walk them all (PROFILE.md, 2026-12-06).

    def __init__(
        self,
        session_id: str,
        peer: tuple[str, int] | None,
        *,
        started_at: _dt.datetime | None = None,
        ended_at: _dt.datetime | None = None,
        tls_version: str | None = None,
        auth_user: str | None = None,
        message_ids: list[str] | None = None,
        entries: Iterable[tuple[float, EntryKind, str]] = (),
    ) -> None:
        self.session_id = session_id
        self.peer = peer
        self.started_at: _dt.datetime = started_at if started_at is not None else _now()
        self.ended_at = ended_at
        """When the connection closed (``None`` while it is open)."""
        self.tls_version = tls_version
        """The TLS version once TLS started (STARTTLS or implicit)."""
        self.auth_user = auth_user
        """The user the client authenticated as, if it did."""
        self.message_ids: list[str] = message_ids if message_ids is not None else []
        """Ids of the messages this session delivered, in order."""
        self._lines: list[_Line] | tuple[_Line, ...] = [(e[0], e[1], e[2]) for e in entries]

    @property
    def entries(self) -> list[TranscriptEntry]:
        """Every line so far, in order (a new list at each read)."""
        return [_new_entry(TranscriptEntry, line) for line in list(self._lines)]

    @property
    def tls(self) -> bool:
        return self.tls_version is not None

    @property
    def commands(self) -> list[str]:
        """The command verbs the client sent, upper case, in order (AUTH continuations and DATA
        content are not commands)."""
        out = []
        for _, kind, text in list(self._lines):
            if kind == "client" and text != MASK:
                out.append(text.split(" ", 1)[0].upper())
        return out

    @property
    def replies(self) -> list[str]:
        """Every line the server sent, in order."""
        return [text for _, kind, text in list(self._lines) if kind == "server"]

    def add(self, kind: EntryKind, *texts: str) -> None:
        """Append one entry per text (lines of one reply share their time); past
        :data:`MAX_ENTRIES` only a truncation marker is kept, so a client looping on NOOP
        cannot grow the server's memory without bound."""
        lines = self._lines
        if isinstance(lines, tuple):  # a line after the end (a late hook's note): rare
            lines = self._lines = list(lines)
        stamp = _time.time()
        for text in texts:
            count = len(lines)
            if count < MAX_ENTRIES:
                lines.append((stamp, kind, text))
            elif count == MAX_ENTRIES:
                lines.append((stamp, "event", TRUNCATED))

    def end(self) -> None:
        """Record that the session ended (once): a last ``disconnected`` event and
        :attr:`ended_at`."""
        if self.ended_at is not None:
            return
        self.add("event", "disconnected")
        self.ended_at = _now()
        # One tuple from here on: a tuple of plain tuples is not tracked by the garbage
        # collector at all, so the transcript of a stored message costs a full collection
        # one list less to walk, and none of its lines.
        self._lines = tuple(self._lines)

    def to_dict(self) -> dict[str, Any]:
        """The transcript as plain JSON-ready data."""
        data = self._facts()
        data["entries"] = [e.to_dict() for e in self.entries]
        return data

    def _facts(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "peer": list(self.peer) if self.peer else None,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "tls": self.tls,
            "tls_version": self.tls_version,
            "auth_user": self.auth_user,
            "message_ids": list(self.message_ids),
        }

    def excerpt(self, *, compact: bool = False) -> dict[str, Any]:
        """:meth:`to_dict` cut to what concerns the newest message: the session's opening
        (everything before its first ``MAIL``: greeting, EHLO, STARTTLS, AUTH) and the newest
        transaction (from its ``MAIL`` on). ``"omitted"`` counts the entries left out.

        Stores keep this with each message: the whole session would make a connection that
        delivers n messages store n growing copies of itself. With *compact*, each entry is
        a ``[microseconds since the epoch, kind, text]`` list, not a dict with an ISO 8601
        time: what a store writes for every message, a third smaller and five times faster
        to build and encode; :meth:`from_dict` reads both.
        """
        # Costs the opening plus the newest transaction, whatever the session's length: a
        # connection delivering n messages must not cost n^2 (no copy of the whole list).
        lines = self._lines
        count = len(lines)

        def is_mail(line: _Line) -> bool:
            return line[1] == "client" and line[2][:5].upper() in ("MAIL ", "MAIL")

        first = next((i for i in range(count) if is_mail(lines[i])), count)
        last = next((i for i in range(count - 1, first - 1, -1) if is_mail(lines[i])), first)
        kept = [*lines[:first], *lines[last:count]]
        data = self._facts()
        data["message_ids"] = list(self.message_ids[-1:])
        if compact:
            data["entries"] = [[_micros(stamp), kind, text] for stamp, kind, text in kept]
        else:
            data["entries"] = [_new_entry(TranscriptEntry, line).to_dict() for line in kept]
        data["omitted"] = count - len(kept)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """Rebuild a transcript from :meth:`to_dict` output (as stores and the HTTP API keep it)."""
        peer = data.get("peer")
        ended = data.get("ended_at")
        return cls(
            session_id=str(data["session_id"]),
            peer=(str(peer[0]), int(peer[1])) if peer else None,
            started_at=_dt.datetime.fromisoformat(str(data["started_at"])),
            ended_at=_dt.datetime.fromisoformat(str(ended)) if ended else None,
            tls_version=data.get("tls_version"),
            auth_user=data.get("auth_user"),
            message_ids=[str(i) for i in data.get("message_ids") or ()],
            entries=[_entry(e) for e in data.get("entries") or ()],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transcript):
            return NotImplemented
        return (self._facts(), self._lines) == (other._facts(), other._lines)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return (
            f"Transcript(session_id={self.session_id!r}, peer={self.peer!r}, "
            f"ended_at={self.ended_at!r}, message_ids={self.message_ids!r}, "
            f"entries={len(self._lines)})"
        )

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.entries)


def _micros(stamp: float) -> int:
    """*stamp* in whole microseconds, rounded as ``datetime.fromtimestamp`` rounds it."""
    whole = int(stamp)
    return whole * 1_000_000 + round((stamp - whole) * 1e6)


def _entry(data: Any) -> _Line:
    """An entry from :meth:`Transcript.to_dict` (a dict) or a compact excerpt (a list)."""
    if isinstance(data, dict):
        stamp = _dt.datetime.fromisoformat(str(data["time"])).timestamp()
        return (stamp, data["kind"], str(data["text"]))
    micros, kind, text = data
    return (int(micros) / 1e6, kind, str(text))


class TranscriptLog:
    """The newest *maxlen* transcripts, oldest first; thread-safe."""

    def __init__(self, maxlen: int = 1000) -> None:
        self.maxlen = maxlen
        self._sessions: OrderedDict[str, Transcript] = OrderedDict()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.on_close: list[Callable[[Transcript], None]] = []
        """Called (in the server's thread) with each transcript whose session ended."""

    def open(self, session_id: str, peer: tuple[str, int] | None) -> Transcript:
        transcript = Transcript(session_id, peer)
        with self._lock:
            self._sessions[session_id] = transcript
            while len(self._sessions) > self.maxlen:
                self._sessions.popitem(last=False)
        return transcript  # no notify: what waits (wait_closed) waits for sessions to end

    def close(self, transcript: Transcript) -> None:
        """Mark *transcript*'s session as ended and wake :meth:`wait_closed`."""
        with self._lock:
            transcript.end()
            self._changed.notify_all()
        for listener in list(self.on_close):
            listener(transcript)

    def wait_closed(self, count: int, timeout: float) -> list[Transcript] | None:
        """Block until at least *count* kept sessions have ended; those sessions, or ``None``
        on timeout. Woken by each session's end, never by polling."""

        def ended() -> list[Transcript]:
            return [t for t in self._sessions.values() if t.ended_at is not None]

        with self._lock:
            if self._changed.wait_for(lambda: len(ended()) >= count, timeout):
                return ended()
            return None

    def get(self, session_id: str | None) -> Transcript | None:
        if session_id is None:
            return None
        with self._lock:
            return self._sessions.get(session_id)

    def all(self) -> list[Transcript]:
        with self._lock:
            return list(self._sessions.values())

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
