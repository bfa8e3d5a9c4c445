"""``smtpmock serve``'s log of HTTP answers: client errors always, every request when verbose."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["AccessLog"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AccessLog:
    """ASGI middleware: one log line per answer of 400 or more (with the error's text), and,
    at DEBUG, one per request. Outermost, so that it sees what the middlewares refuse too."""

    def __init__(self, app: ASGIApp, logger: logging.Logger) -> None:
        self.app, self.logger = app, logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        error: list[bytes] = []

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and status >= 400 and not error:
                error.append(bytes(message.get("body", b""))[:2000])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            self._log(scope, status, error[0] if error else b"")

    def _log(self, scope: Scope, status: int, body: bytes) -> None:
        client = scope.get("client") or ("?", 0)
        path = scope.get("path", "")
        line = f"HTTP {status} {scope.get('method', '?')} {path} from {client[0]}"
        if status >= 400:
            try:
                text = str(json.loads(body)["error"])
            except (ValueError, KeyError, TypeError):
                text = body.decode("utf-8", "replace")
            self.logger.info("%s: %s", line, text[:300])
        else:
            self.logger.debug("%s", line)
