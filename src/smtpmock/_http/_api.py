"""The JSON API under ``/api/v1`` (Mailpit's shapes where cheap), health, metrics and events.

Reading never changes a message, except ``GET /api/v1/message/{ID}``, which marks it read as
Mailpit does (read state and tags: ``_compat.py``). ``DELETE /api/v1/messages`` and the other
routes whose shape Mailpit or MailHog dictate live in ``_compat.py`` (a body that is not JSON
deletes nothing; no body deletes everything, as those tools do). Parts are served by
index only, with a sanitised download name, ``Content-Disposition: attachment``, ``nosniff`` and a
content type from a short allow-list (anything else is ``application/octet-stream``). Nothing is
ever fetched from a URL found in a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from .._errors import ConfigurationError
from .._message import Message
from .._search import Search, SearchError, parse
from .._version import smtpmock_version
from ..store import Store, StoreEvent
from ._bodies import MAX_INT, FaultRuleBody
from ._docs import mount_docs
from ._problems import error_response, install_error_handlers, send_error
from ._wire import encode_export, envelope_dict, message_summary, summary_json

if TYPE_CHECKING:
    from .._server import SMTPMock

__all__ = ["ApiSettings", "begin_shutdown", "create_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SAFE_TYPES = {
    "text/plain",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "application/zip",
    "application/json",
    "text/csv",
    "text/calendar",
}
_NAME_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")
_MAX_WAIT = 300.0
_KEEPALIVE = 15.0


@dataclass
class ApiSettings:
    """Options of the HTTP side."""

    credentials: dict[str, str] = field(default_factory=dict)
    """``{user: secret}``; a secret is plain text or ``{SHA}base64(sha1)`` (htpasswd). Empty: no
    authentication."""
    max_body: int = 1_048_576
    """Largest request body accepted, in bytes (413 beyond)."""
    allowed_origins: tuple[str, ...] = ()
    """Origins, besides the server's own, allowed to open the event stream and to change state."""
    ui: bool = True
    """Serve the web UI at ``/``."""
    mailbox_tokens: dict[str, str] = field(default_factory=dict)
    """``{mailbox: token}``: bearer tokens that may use one mailbox each (see _mailboxes.py)."""
    admin_tokens: tuple[str, ...] = ()
    """Bearer tokens that may use everything. No token at all: no access control."""
    allowed_hosts: tuple[str, ...] | None = None
    """Host names (without port) the ``Host`` header may carry; ``None``: any. Served on a
    loopback address, the CLI allows only loopback names, which defeats DNS rebinding (a web
    page whose name resolves to 127.0.0.1 would otherwise be same-origin with the API)."""
    mcp: bool = True
    """Serve the MCP tools (streamable HTTP) at ``/mcp`` (see docs/mcp.md)."""


# --------------------------------------------------------------------------- middleware


class _BodyLimit:
    """Refuse request bodies larger than *limit* (by ``Content-Length`` or as they stream)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _plain(send, 413, f"request body larger than {self.limit} bytes")
                    return
        seen = 0
        refused = False

        async def counted() -> MutableMapping[str, Any]:
            # Past the limit: answer 413 now, tell the app the client went away, and drop
            # whatever the app tries to send afterwards.
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    refused = True
                    await _plain(send, 413, f"request body larger than {self.limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: MutableMapping[str, Any]) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded)


class _NoFaults(Exception):
    pass


async def _plain(
    send: Send, status: int, text: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    # The API's one error shape, from a middleware (see _problems.py).
    await send_error(send, status, text, headers)


class _HostCheck:
    """Refuse requests whose ``Host`` header names a host outside *allowed* (421)."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app, self.allowed = app, {h.lower() for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers", ())).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.allowed and name not in self.allowed:
                await _plain(send, 421, f"Host {host!r} is not served here")
                return
        await self.app(scope, receive, send)


class _BasicAuth:
    """HTTP basic authentication on every route but ``/livez`` and ``/readyz``."""

    def __init__(self, app: ASGIApp, credentials: dict[str, str]) -> None:
        self.app, self.credentials = app, credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in ("/livez", "/readyz"):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", ())).get(b"authorization", b"")
        if not self._check(header):
            await _plain(
                send,
                401,
                "authentication required",
                ((b"www-authenticate", b'Basic realm="smtpmock"'),),
            )
            return
        await self.app(scope, receive, send)

    def _check(self, header: bytes) -> bool:
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        secret = self.credentials.get(user)
        return bool(sep) and secret is not None and check_secret(secret, password)


def check_secret(secret: str, password: str) -> bool:
    """Whether *password* matches an htpasswd-style *secret* (``{SHA}...`` or plain)."""
    if secret.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return hmac.compare_digest(secret[5:], digest)
    return hmac.compare_digest(secret.encode(), password.encode())


def _same_origin(request: Request, allowed: tuple[str, ...]) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser cross-site request (curl, httpx, the test client)
    if origin in allowed:
        return True
    host = request.headers.get("host", "")
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host


# --------------------------------------------------------------------------- helpers


class _Shutdown:
    """What :func:`begin_shutdown` tells the long-lived requests (waits, event streams)."""

    def __init__(self) -> None:
        self.stopping = False
        self.wakers: set[Callable[[], None]] = set()

    def begin(self) -> None:
        self.stopping = True
        for wake in list(self.wakers):
            wake()


def begin_shutdown(app: FastAPI) -> None:
    """End *app*'s event streams and answer its pending waits (503), so that the server can
    stop at once. Call it on the loop that serves *app* (``loop.call_soon_threadsafe``)."""
    shutdown: _Shutdown = app.state.shutdown
    shutdown.begin()


class _Metrics:
    def __init__(self, store: Store) -> None:
        self.received = 0
        self.received_bytes = 0
        self.deleted = 0
        self.sessions = 0
        self._lock = threading.Lock()
        self.unsubscribe = store.subscribe(self.on_event)

    def on_event(self, event: StoreEvent) -> None:
        with self._lock:
            if event.kind == "added":
                self.received += len(event.messages)
                self.received_bytes += sum(m.size for m in event.messages)
            elif event.kind == "deleted":
                self.deleted += len(event.ids)


def _bad(text: str, status: int = 400) -> Response:
    return error_response(text, status)


def _eml_download(message: Message) -> Response:
    """The exact bytes as received, as an ``.eml`` attachment named by the message's id."""
    return Response(
        message.raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="{message.id}.eml"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _safe_filename(name: str | None, fallback: str) -> str:
    if not name:
        return fallback
    base = re.split(r"[\\/]", name.replace("\x00", ""))[-1]
    cleaned = _NAME_SAFE.sub("_", base).strip(" .")
    return cleaned[:120] or fallback


def _content_disposition(name: str | None, fallback: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, for a name that is not plain ASCII, the
    real one as RFC 6266 / RFC 8187 ``filename*=UTF-8''...`` (which browsers, curl -J and
    httpx prefer). Both are base names only: no path, no control character."""
    ascii_name = _safe_filename(name, fallback)
    header = f'attachment; filename="{ascii_name}"'
    if not name:
        return header
    base = re.split(r"[\\/]", name)[-1]
    kept = "".join(c if (c.isalnum() or c in "._ -()+,@") else "_" for c in base)
    unicode_name = kept.strip(" .")[:120]
    if unicode_name and not unicode_name.isascii():
        header += f"; filename*=UTF-8''{quote(unicode_name, safe='')}"
    return header


def _attachment_json(message: Message, index: int) -> dict[str, Any]:
    part = message.part(index)
    return {
        "PartID": str(part.index),
        "FileName": part.filename or "",
        "ContentType": part.content_type,
        "ContentID": part.content_id or "",
        "Size": part.size,
    }


def _detail(message: Message, transcript: dict[str, Any] | None) -> dict[str, Any]:
    summary = message_summary(message)
    attachments = [a for a in message.attachments if not a.is_inline]
    inline = [a for a in message.attachments if a.is_inline]
    return {
        **{k: v for k, v in summary.items() if k not in ("Snippet", "Attachments", "Inline")},
        "ReturnPath": message.mail_from,
        "Date": (message.date or message.received_at).isoformat(),  # Mailpit: received time
        "Text": message.text or "",
        "HTML": message.html or "",
        "Attachments": [_attachment_json(message, a.index) for a in attachments],
        "Inline": [_attachment_json(message, a.index) for a in inline],
        "Envelope": envelope_dict(message),
        "Defects": message.defects,
        "Transcript": transcript,
    }


# --------------------------------------------------------------------------- the app


def create_app(
    mock: SMTPMock,
    settings: ApiSettings | None = None,
    *,
    store: Store | None = None,
    _shutdown: _Shutdown | None = None,
) -> FastAPI:
    """The HTTP API over a running *mock* (its store, faults and SMTP address); *store*: one
    mailbox of it (``mock.store.mailbox(name)``, served under ``/m/{name}``)."""
    settings = settings or ApiSettings()
    root = store is None
    store = mock.store if store is None else store
    metrics = _Metrics(store)
    # A mailbox's app shares the root's: begin_shutdown(root) ends its waits and streams too.
    shutdown = _Shutdown() if _shutdown is None else _shutdown
    app = FastAPI(
        title="smtpmock",
        summary="A real SMTP server for tests: inspect, search, wait for and delete messages.",
        version=smtpmock_version(),
        description='Every error answer is `{"error": "...", "status": N}` (JSON).',
        docs_url=None,  # served by _docs.py, from local files, under a CSP
        redoc_url=None,
    )
    install_error_handlers(app)
    mount_docs(app)
    app.state.store = store

    def find(id: str) -> Message | None:
        if id == "latest":
            return store.latest()
        return store.get(id)

    def page(search: Search | None, start: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        found = store.page(search, start=start, limit=limit)
        return found.total, [summary_json(s) for s in found.summaries]

    def listing(search: Search | None, start: int, limit: int) -> Response:
        # A response made here: FastAPI's encoding of a returned dict (jsonable_encoder)
        # took 4.3 ms for a page of 50 summaries, json.dumps 0.3.
        found = store.listing(search, start=start, limit=limit)
        summaries = [summary_json(s) for s in found.page.summaries]
        return JSONResponse(
            {
                "total": found.stored,
                "unread": found.unread,
                "messages_count": found.page.total,
                "count": len(summaries),  # Mailpit's legacy field: messages in this page
                "messages_unread": found.unread_matches,
                "start": start,
                "tags": found.tags,
                "messages": summaries,
            }
        )

    def matching(search: Search, after: int = 0, before: int | None = None) -> list[Message]:
        return store.search(search, after=after, before=before)

    def transcript_of(message: Message) -> dict[str, Any] | None:
        # The live transcript while the server keeps it (the newest 1,000 sessions, still
        # growing until the session ends); else the snapshot stored with the message.
        found = mock.transcript_for(message) or message.transcript
        return found.to_dict() if found is not None else None

    def count_matching(search: Search, after: int, before: int | None) -> int:
        return store.count(search, after=after, before=before)

    # -- health and metadata ----------------------------------------------------------------

    @app.get("/livez", response_class=PlainTextResponse, tags=["health"])
    def livez() -> str:
        """The HTTP server is up."""
        return "ok"

    @app.get("/readyz", response_class=PlainTextResponse, tags=["health"])
    def readyz() -> Response:
        """The SMTP server accepts mail."""
        if mock.running:
            return PlainTextResponse("ok")
        return _bad("SMTP server not running", 503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    def prometheus() -> str:
        """Prometheus text exposition."""
        state = getattr(mock, "_state", None)
        active = len(state.connections) if state is not None else 0
        sessions = mock.sessions
        fired = len(mock.faults.log)
        lines = [
            (
                "smtpmock_messages_received_total",
                "counter",
                "Messages accepted (250).",
                metrics.received,
            ),
            (
                "smtpmock_received_bytes_total",
                "counter",
                "Bytes of accepted messages.",
                metrics.received_bytes,
            ),
            (
                "smtpmock_messages_deleted_total",
                "counter",
                "Messages deleted or evicted.",
                metrics.deleted,
            ),
            ("smtpmock_messages_stored", "gauge", "Messages in the store.", len(store)),
            (
                "smtpmock_stored_bytes",
                "gauge",
                "Bytes in the store.",
                getattr(store, "total_bytes", 0),
            ),
            ("smtpmock_smtp_sessions_active", "gauge", "Open SMTP connections.", active),
            (
                "smtpmock_smtp_sessions_recent",
                "gauge",
                "SMTP sessions in the transcript log (the newest 1,000).",
                len(sessions),
            ),
            (
                "smtpmock_faults_logged",
                "gauge",
                "Injected faults that fired, as kept in the fault log (the newest 10,000).",
                fired,
            ),
        ]
        out = []
        for name, kind, help_text, value in lines:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(out) + "\n"

    # -- listing and search -----------------------------------------------------------------

    @app.get("/api/v1/messages", tags=["messages"])
    def list_messages(
        start: int = Query(0, ge=0, le=MAX_INT), limit: int = Query(50, ge=1, le=5000)
    ) -> Response:
        """Summaries (no bodies), newest first, paginated."""
        return listing(None, start, limit)

    @app.get("/api/v1/search", tags=["messages"])
    def search_messages(
        query: str = "",
        start: int = Query(0, ge=0, le=MAX_INT),
        limit: int = Query(50, ge=1, le=5000),
    ) -> Any:
        """Summaries of the messages matching a search string, newest first."""
        try:
            search = parse(query)
        except SearchError as exc:
            return _bad(str(exc))
        return listing(search, start, limit)

    @app.get("/api/v1/export", tags=["messages"])
    def export(
        query: str = "",
        after: int = Query(0, ge=0, le=MAX_INT),
        before: int | None = Query(None, ge=0, le=MAX_INT),
    ) -> Any:
        """Envelope and raw bytes (base64) of matching messages, oldest first (for Client)."""
        try:
            search = parse(query)
        except SearchError as exc:
            return _bad(str(exc))
        found = matching(search, after, before)
        return JSONResponse(
            {"messages": [encode_export(m) for m in found], "Generation": store.generation}
        )

    # -- one message ------------------------------------------------------------------------

    @app.get("/api/v1/message/{id}", tags=["message"])
    def message(id: str) -> Any:
        """Parsed fields, envelope, defects and the SMTP transcript (``latest`` works); marks
        the message read, as Mailpit does."""
        found = find(id)
        if found is None:
            return _bad("message not found", 404)
        if not found.read:
            store.mark_read([found.id])
            found.read = True
        return _detail(found, transcript_of(found))

    @app.get("/api/v1/message/{id}/raw", tags=["message"])
    def raw(id: str) -> Response:
        """The exact bytes as received, as a ``.eml`` download."""
        found = find(id)
        if found is None:
            return _bad("message not found", 404)
        return _eml_download(found)

    @app.get("/api/v1/message/{id}/part/{index}", tags=["message"])
    def part(id: str, index: Annotated[int, Path(ge=0, le=1_000_000)]) -> Response:
        """One MIME leaf part by index, always as a download with a safe type and name."""
        found = find(id)
        if found is None:
            return _bad("message not found", 404)
        try:
            leaf = found.part(index)
        except IndexError:
            return _bad("no such part", 404)
        kind = leaf.content_type if leaf.content_type in _SAFE_TYPES else "application/octet-stream"
        return Response(
            leaf.content,
            media_type=kind,
            headers={
                "Content-Disposition": _content_disposition(leaf.filename, f"part-{index}"),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    # -- deleting ---------------------------------------------------------------------------

    @app.delete("/api/v1/message/{id}", tags=["message"])
    def delete_message(id: str, request: Request) -> Response:
        """Delete one message."""
        if not _same_origin(request, settings.allowed_origins):
            return _bad("foreign Origin refused", 403)
        if store.delete([id]) == 0:
            return _bad("message not found", 404)
        return JSONResponse({"deleted": 1})

    @app.delete("/api/v1/search", tags=["messages"])
    def delete_search(request: Request, query: str = "") -> Response:
        """Delete the messages matching a (non-empty) search string."""
        if not _same_origin(request, settings.allowed_origins):
            return _bad("foreign Origin refused", 403)
        try:
            search = parse(query)
        except SearchError as exc:
            return _bad(str(exc))
        if not search:
            return _bad('an empty query deletes nothing; use DELETE /api/v1/messages {"All": true}')
        count = store.delete([m.id for m in matching(search)])
        return JSONResponse({"deleted": count})

    # -- waiting ----------------------------------------------------------------------------

    @app.get("/api/v1/wait", tags=["wait"])
    async def wait(  # noqa: PLR0917 - query parameters are the endpoint's interface
        query: str = "",
        count: int = Query(1, ge=1, le=100_000),
        timeout: float = Query(5.0, ge=0, le=_MAX_WAIT),
        after: int = Query(0, ge=0, le=MAX_INT),
        before: int | None = Query(None, ge=0, le=MAX_INT),
        generation: int | None = Query(None, ge=0, le=MAX_INT),
        raw: bool = False,
    ) -> Response:
        """Long-poll until *count* messages after seq *after* match *query*.

        Answers 200 ``{"Status": "matched"}`` as soon as they are there (woken by arrivals, no
        polling), 200 ``{"Status": "changed"}`` if messages were deleted since *generation*, or
        409 ``{"Status": "timeout", "error": ..., "status": 409}`` with what did match (409,
        not 408: HTTP clients and browsers retry a 408 by themselves). A server shutting down
        answers pending waits 503 ``{"Status": "shutdown"}``. ``raw=true`` adds envelope and
        raw bytes (base64) to each message.
        """
        try:
            search = parse(query)
        except SearchError as exc:
            return _bad(str(exc))
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def listener(_event: StoreEvent) -> None:
            loop.call_soon_threadsafe(wake.set)

        unsubscribe = store.subscribe(listener)
        shutdown.wakers.add(wake.set)
        deadline = loop.time() + timeout
        try:
            while True:
                wake.clear()
                now_generation = store.generation
                # Count in SQL on each wake; read the messages themselves only to answer.
                matched = await asyncio.to_thread(count_matching, search, after, before)
                changed = generation is not None and now_generation != generation
                if matched >= count or changed:
                    status, code = ("matched" if matched >= count else "changed"), 200
                    break
                if shutdown.stopping:
                    status, code = "shutdown", 503
                    break
                remaining = deadline - loop.time()
                if remaining <= 0 or before is not None:
                    status, code = "timeout", 409
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), remaining)
        finally:
            shutdown.wakers.discard(wake.set)
            unsubscribe()
        found = await asyncio.to_thread(matching, search, after, before)
        body: dict[str, Any] = {
            "Status": status,
            "Count": len(found),
            "Wanted": count,
            "Generation": now_generation,
            "messages": [
                {**message_summary(m), **(encode_export(m) if raw else {})} for m in found
            ],
        }
        if status == "timeout":
            body["error"] = (
                f"timed out after {timeout:g}s: {len(found)} of {count} message(s) matching "
                f"{query or 'anything'!r}"
            )
        elif status == "shutdown":
            body["error"] = (
                f"the server is shutting down: {len(found)} of {count} message(s) matching "
                f"{query or 'anything'!r} had arrived"
            )
        if code != 200:
            body["status"] = code
        return JSONResponse(body, status_code=code, headers={"Cache-Control": "no-store"})

    # -- live events ------------------------------------------------------------------------

    @app.get("/api/v1/events", tags=["events"])
    async def events(request: Request) -> Response:
        """Server-Sent Events: ``added`` (a summary), ``deleted`` (ids) and ``cleared``.

        Refused (403) when the request carries a foreign ``Origin``.
        """
        if not _same_origin(request, settings.allowed_origins):
            return _bad("foreign Origin refused", 403)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[StoreEvent | None] = asyncio.Queue(maxsize=10_000)

        def listener(event: StoreEvent) -> None:
            loop.call_soon_threadsafe(_offer, queue, event)

        def end() -> None:
            # Shutdown: a None ends the stream even when the queue is full.
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

        unsubscribe = store.subscribe(listener)

        async def stream() -> AsyncIterator[str]:
            shutdown.wakers.add(end)
            try:
                yield ": connected\n\n"
                while not shutdown.stopping:
                    try:
                        event = await asyncio.wait_for(queue.get(), _KEEPALIVE)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event is None:
                        break
                    if event.kind == "added":
                        for m in event.messages:
                            yield f"event: added\ndata: {json.dumps(message_summary(m))}\n\n"
                    elif event.kind == "deleted":
                        yield f"event: deleted\ndata: {json.dumps(list(event.ids))}\n\n"
                    elif event.kind == "updated":  # read state or tags
                        yield f"event: updated\ndata: {json.dumps(list(event.ids))}\n\n"
                    else:
                        yield "event: cleared\ndata: null\n\n"
            finally:
                shutdown.wakers.discard(end)
                unsubscribe()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    # -- fault rules ------------------------------------------------------------------------

    def fault_set() -> Any:
        faults = getattr(mock, "faults", None)
        if faults is None:  # pragma: no cover - only with a core that has no fault engine
            raise _NoFaults
        return faults

    @app.get("/api/v1/faults", tags=["faults"])
    def list_faults() -> Any:
        """Fault rules (with their counters) and the log of faults that fired."""
        data: dict[str, Any] = fault_set().to_dict()
        return data

    @app.post("/api/v1/faults", tags=["faults"])
    def add_fault(request: Request, body: FaultRuleBody) -> Response:
        """Add one rule (``FaultRule.to_dict`` form, or a Mailpit chaos string as
        ``{"chaos": "Recipient:550:100"}``); answers with what was added.

        Every field is checked before the rule is built (finite numbers in range, regular
        expressions that compile); a refused rule is a 400 and the rule set is unchanged."""
        if not _same_origin(request, settings.allowed_origins):
            return _bad("foreign Origin refused", 403)
        try:
            if body.chaos is not None:
                from .._chaos import mailpit_rules
                from .._faults import FaultRule

                # All built first, then added: a bad trigger adds none of them.
                built: list[FaultRule] = mailpit_rules(body.chaos)
                rules = [fault_set().add(rule) for rule in built]
                return JSONResponse({"rules": [r.to_dict() for r in rules]})
            rule = fault_set().add(body.rule_dict())
        except ConfigurationError as exc:
            return _bad(str(exc))
        return JSONResponse(rule.to_dict())

    @app.delete("/api/v1/faults", tags=["faults"])
    def clear_faults(request: Request) -> Response:
        """Remove every fault rule."""
        if not _same_origin(request, settings.allowed_origins):
            return _bad("foreign Origin refused", 403)
        fault_set().clear()
        return JSONResponse({"rules": []})

    @app.delete("/api/v1/faults/{rule_id}", tags=["faults"])
    def remove_fault(rule_id: str, request: Request) -> Response:
        """Remove one rule by its id (404 if there is none)."""
        if not _same_origin(request, settings.allowed_origins):
            return _bad("foreign Origin refused", 403)
        try:
            fault_set().remove(rule_id)
        except KeyError:
            return _bad(f"no fault rule with id {rule_id!r}", 404)
        return JSONResponse({"rules": [r.to_dict() for r in fault_set().rules]})

    from ._compat import add_compat_routes
    from ._mailboxes import MailboxAccess, MailboxDispatch, add_mailbox_routes

    add_compat_routes(app, mock, settings, page, find)
    add_mailbox_routes(app, store)

    if settings.ui:
        from ._ui import mount_ui

        mount_ui(app, find)

    if settings.mcp and root:
        # At the root only: the MCP tools include the server-wide fault rules, which a
        # mailbox (and its token) must not reach through /m/{mailbox}/mcp.
        from .._mcp import mount as mount_mcp

        mount_mcp(app, mock, settings.allowed_origins)

    app.state.metrics = metrics
    app.state.shutdown = shutdown
    app.state.mock = mock

    limited: ASGIApp = _BodyLimit(app, settings.max_body)
    if settings.credentials:
        limited = _BasicAuth(limited, settings.credentials)
    if settings.allowed_hosts is not None:
        limited = _HostCheck(limited, settings.allowed_hosts)
    if root:  # /m/{mailbox}/... and the mailbox tokens, in front of everything
        access = MailboxAccess(settings.mailbox_tokens, settings.admin_tokens)

        def scoped(view: Store) -> FastAPI:
            return create_app(mock, settings, store=view, _shutdown=shutdown)

        limited = MailboxDispatch(limited, mock, settings, scoped, access)
    app.state.asgi = limited
    return app


def _offer(queue: asyncio.Queue[StoreEvent | None], event: StoreEvent) -> None:
    # A consumer that stopped reading must not make the store's listener block or fail.
    if not queue.full():
        queue.put_nowait(event)


def wrap(app: FastAPI) -> ASGIApp:
    """The ASGI app to serve: *app* behind the body-size limit and basic auth."""
    wrapped: ASGIApp = app.state.asgi
    return wrapped
