"""The event loop smtpmock's server threads run, and transport checks that hold for any loop.

uvloop (libuv) is used where it is installed (it is a dependency on CPython outside Windows):
the server uses 20-40% less CPU per message on it than on the stdlib loop, where most of
ingest's time went (``benchmarks/PROFILE.md``). ``SMTPMOCK_EVENT_LOOP=asyncio``
chooses the stdlib loop. uvloop's transports implement asyncio's interface without subclassing
its classes, so transports are tested for what they can do, never with ``isinstance``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import cast

from ._errors import ConfigurationError

__all__ = ["LOOP_ENV", "loop_factory", "readable", "writable"]

LOOP_ENV = "SMTPMOCK_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a server thread's loop: uvloop's or asyncio's ``new_event_loop``.

    Raises :class:`~smtpmock.ConfigurationError` when :data:`LOOP_ENV` names no loop that can be
    made here; called by ``start()`` in the caller's thread, before any thread is started.
    """
    choice = os.environ.get(LOOP_ENV, "auto").strip().lower() or "auto"
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ConfigurationError(f"{LOOP_ENV} must be auto, uvloop or asyncio, not {choice!r}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigurationError(f"{LOOP_ENV}=uvloop, but uvloop is not installed") from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def writable(transport: asyncio.BaseTransport | None) -> asyncio.WriteTransport | None:
    """*transport* as a write transport, or ``None`` when it is none (or gone)."""
    if transport is None or not hasattr(transport, "abort"):
        return None
    return cast(asyncio.WriteTransport, transport)


def readable(transport: asyncio.BaseTransport | None) -> asyncio.ReadTransport | None:
    """*transport* as a read transport (one that can pause reading), or ``None``."""
    if transport is None or not hasattr(transport, "pause_reading"):
        return None
    return cast(asyncio.ReadTransport, transport)
