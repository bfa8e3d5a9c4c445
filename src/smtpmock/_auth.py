"""SMTP AUTH: the accounts the ``auth`` option describes, CRAM-MD5, and the attempt log.

PLAIN and LOGIN come from aiosmtpd; CRAM-MD5 (RFC 2195) is added by the protocol with
:func:`cram_md5_digest`. CRAM-MD5 proves knowledge of the password without sending it, so the
server needs the password itself: it is offered only when ``auth`` is a dict or a look-up
``(user) -> password``, never with a checker ``(mechanism, user, password) -> bool``.

Every attempt is recorded as an :class:`AuthAttempt` (who, which mechanism, whether it worked,
when); the password is never recorded.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import inspect
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._config import AuthOption

__all__ = ["Accounts", "AuthAttempt", "AuthLog", "cram_md5_digest"]


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange: its outcome, never its secret."""

    time: _dt.datetime
    mechanism: str
    user: str | None
    """The user name the client gave (``None`` if the exchange broke off before it did)."""
    success: bool
    session_id: str
    peer: tuple[str, int] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "mechanism": self.mechanism,
            "user": self.user,
            "success": self.success,
            "session_id": self.session_id,
            "peer": list(self.peer) if self.peer else None,
        }


class AuthLog:
    """The newest *maxlen* attempts, thread-safe."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._items: deque[AuthAttempt] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, attempt: AuthAttempt) -> None:
        with self._lock:
            self._items.append(attempt)

    def all(self) -> list[AuthAttempt]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _takes_one_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1


class Accounts:
    """What the ``auth`` option allows, behind one interface."""

    def __init__(self, option: AuthOption) -> None:
        self._mapping: Mapping[str, str] | None = None
        self._lookup: Callable[[str], str | None] | None = None
        self._checker: Callable[[str, str, str], bool] | None = None
        if isinstance(option, Mapping):
            self._mapping = dict(option)
        elif _takes_one_argument(option):
            self._lookup = option  # type: ignore[assignment]
        else:
            self._checker = option  # type: ignore[assignment]

    @property
    def knows_passwords(self) -> bool:
        """Whether the password itself can be looked up (what CRAM-MD5 needs)."""
        return self._checker is None

    def password_for(self, user: str) -> str | None:
        if self._mapping is not None:
            return self._mapping.get(user)
        if self._lookup is not None:
            return self._lookup(user)
        return None

    def check(self, mechanism: str, user: str, password: str) -> bool:
        if self._checker is not None:
            return bool(self._checker(mechanism, user, password))
        expected = self.password_for(user)
        return expected is not None and hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        )

    def check_cram_md5(self, user: str, challenge: bytes, digest: str) -> bool:
        password = self.password_for(user)
        if password is None:
            return False
        expected = cram_md5_digest(password, challenge)
        return hmac.compare_digest(
            expected.encode("ascii"), digest.lower().encode("ascii", "replace")
        )


def cram_md5_digest(password: str, challenge: bytes) -> str:
    """The hex HMAC-MD5 of *challenge* keyed with *password* (RFC 2195)."""
    return hmac.new(password.encode("utf-8"), challenge, "md5").hexdigest()
