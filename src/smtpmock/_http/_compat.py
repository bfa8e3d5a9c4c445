"""Mailpit's and MailHog's endpoints that are not smtpmock's own: their shapes, on our store.

:func:`add_compat_routes` registers them on the app :func:`~._api.create_app` builds. What the
clients of those tools rely on wins here over smtpmock's own conventions (see docs/server.md's
compatibility table).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from .._errors import ConfigurationError
from .._search import Search, parse
from ._api import ApiSettings, _bad, _same_origin

if TYPE_CHECKING:
    from .._server import SMTPMock

__all__ = ["add_compat_routes"]

Page = Callable[[Search | None, int, int], tuple[int, list[dict[str, Any]]]]

_CHAOS_PREFIX = "mailpit-chaos:"
_CHAOS_NAMES = ("Sender", "Recipient", "Authentication")


def add_compat_routes(app: FastAPI, mock: SMTPMock, settings: ApiSettings, page: Page) -> None:
    """Register Mailpit's and MailHog's routes on *app* (*page* lists summaries, newest first)."""
    store = mock.store

    # -- server facts -------------------------------------------------------------------------

    @app.get("/api/v1/info", tags=["messages"])
    def info() -> dict[str, Any]:
        """Server facts: the SMTP address, message count, size and change counters."""
        return {
            "Version": "smtpmock",
            "SMTP": {"Host": mock.host, "Port": mock.port if mock.running else None},
            "Messages": len(store),
            "Size": getattr(store, "total_bytes", None),
            "LastSeq": store.last_seq,
            "Generation": store.generation,
        }

    # -- Mailpit's chaos endpoint, mapped onto fault rules ------------------------------------

    def chaos_triggers() -> dict[str, dict[str, int]]:
        triggers = {name: {"ErrorCode": 451, "Probability": 0} for name in _CHAOS_NAMES}
        for rule in mock.faults.rules:
            if not (rule.name or "").startswith(_CHAOS_PREFIX):
                continue
            name = (rule.name or "").removeprefix(_CHAOS_PREFIX)
            if name in triggers:
                triggers[name] = {
                    "ErrorCode": rule.code or 451,
                    "Probability": round((rule.probability or 1.0) * 100),
                }
        return triggers

    @app.get("/api/v1/chaos", tags=["compatibility"])
    def get_chaos() -> Any:
        """Mailpit's chaos triggers, read from the fault rules Mailpit's syntax added."""
        return chaos_triggers()

    @app.put("/api/v1/chaos", tags=["compatibility"])
    async def put_chaos(request: Request) -> Response:
        """Set Mailpit's chaos triggers (``{"Sender": {"ErrorCode": 451, "Probability": 50},
        ...}``): the rules a previous chaos setting added are replaced; other rules stay."""
        if not _same_origin(request, settings.allowed_origins):
            return _bad("foreign Origin refused", 403)
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            return _bad("body must be Mailpit chaos triggers as JSON")
        if not isinstance(body, dict):
            return _bad("body must be a JSON object of chaos triggers")
        from .._chaos import mailpit_rules

        try:
            rules = mailpit_rules(body)
        except ConfigurationError as exc:
            return _bad(str(exc))
        faults = mock.faults
        for old in faults.rules:
            if old.name and old.name.startswith(_CHAOS_PREFIX):
                with contextlib.suppress(KeyError):
                    faults.remove(old)
        for rule in rules:
            faults.add(rule)
        return JSONResponse(chaos_triggers())

    # -- MailHog v2 (read-only compatibility) -------------------------------------------------

    @app.get("/api/v2/messages", tags=["compatibility"])
    def mailhog_messages(
        start: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=5000)
    ) -> dict[str, Any]:
        """MailHog's list shape, newest first (summaries only: no body)."""
        total, summaries = page(None, start, limit)
        return {
            "total": total,
            "count": len(summaries),
            "start": start,
            "items": [_mailhog(s) for s in summaries],
        }

    @app.get("/api/v2/search", tags=["compatibility"])
    def mailhog_search(
        kind: str, query: str, start: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=5000)
    ) -> Any:
        """MailHog's search: ``kind`` is ``from``, ``to`` or ``containing``."""
        field_name = {"from": "from", "to": "addressed", "containing": ""}.get(kind)
        if field_name is None:
            return _bad("kind must be from, to or containing")
        escaped = query.replace("\\", "").replace('"', "")
        text = f'{field_name}:"{escaped}"' if field_name else f'"{escaped}"'
        total, summaries = page(parse(text), start, limit)
        return {
            "total": total,
            "count": len(summaries),
            "start": start,
            "items": [_mailhog(s) for s in summaries],
        }


def _mailhog(summary: dict[str, Any]) -> dict[str, Any]:
    def path(address: str) -> dict[str, Any]:
        mailbox, _, domain = address.rpartition("@")
        return {"Relays": None, "Mailbox": mailbox, "Domain": domain, "Params": ""}

    return {
        "ID": summary["ID"],
        "From": path(summary["MailFrom"]),
        "To": [path(r) for r in summary["Recipients"]],
        "Content": {
            "Headers": {"Subject": [summary["Subject"]]},
            "Body": "",
            "Size": summary["Size"],
            "MIME": None,
        },
        "Created": summary["Created"],
        "MIME": None,
        "Raw": {"From": summary["MailFrom"], "To": summary["Recipients"], "Data": "", "Helo": ""},
    }
