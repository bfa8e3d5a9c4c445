"""One JSON error shape for the whole HTTP API, and the OpenAPI entries that document it.

Every error answer, whichever layer gives it (a route, request validation, the body-size limit,
the ``Host`` check, basic auth, an unknown path, an unexpected exception), is::

    {"error": "what went wrong, in words", "status": 400}

with the HTTP status repeated in the body, ``Content-Type: application/json`` and ``nosniff``.
Bad input of any kind (a query parameter out of range, a malformed body, a search string that
does not parse, a fault rule that makes no sense) is a 400; nothing about it is stored or used.
A bug in smtpmock is a 500 with the same shape and no traceback (the traceback goes to the
server's log).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ERROR_SCHEMA",
    "error_body",
    "error_response",
    "install_error_handlers",
    "send_error",
]

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("smtpmock.http")

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What went wrong."},
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
    },
    "required": ["error", "status"],
}
"""The JSON Schema of every error answer (``components/schemas/Error`` in the OpenAPI)."""

_NOSNIFF = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def error_body(status: int, text: str) -> dict[str, Any]:
    return {"error": text, "status": status}


def error_response(
    text: str, status: int = 400, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error answer every route gives."""
    return JSONResponse(
        error_body(status, text), status_code=status, headers={**_NOSNIFF, **(headers or {})}
    )


async def send_error(
    send: Send, status: int, text: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """The same answer, sent by an ASGI middleware (before any route runs)."""
    body = json.dumps(error_body(status, text)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- handlers

_WHERE = {"query": "query parameter", "path": "path parameter", "header": "header"}


_PLAIN_TYPES = {"str", "int", "float", "bool", "list", "dict", "none"}


def _is_union_tag(segment: str) -> bool:
    # pydantic names the branch of a union it tried: 'constrained-float', 'list[...]',
    # 'RegexPattern', 'str'; field names are lower-case identifiers.
    return any(c in segment for c in "-[") or segment[:1].isupper() or segment in _PLAIN_TYPES


def _one_per_field(errors: Sequence[Any]) -> list[Any]:
    """One error per field: of a union's branches, the one that got past the type check."""
    chosen: dict[tuple[str, ...], Any] = {}
    for error in errors:
        loc = [str(x) for x in error.get("loc", ())]
        key = tuple(x for i, x in enumerate(loc) if i == 0 or not _is_union_tag(x))
        earlier = chosen.get(key)
        if earlier is None or (
            str(earlier.get("type", "")).endswith("_type")
            and not str(error.get("type", "")).endswith("_type")
        ):
            chosen[key] = {**error, "loc": key}
    return list(chosen.values())


def _describe(all_errors: Sequence[Any]) -> str:
    """Pydantic's errors as one sentence: ``query parameter start: ... (got ...)``."""
    parts = []
    errors = _one_per_field(all_errors)
    for error in errors[:5]:
        loc = [str(x) for x in error.get("loc", ())]
        where = ""
        if loc and loc[0] in _WHERE:
            where = f"{_WHERE[loc[0]]} {'.'.join(loc[1:])}"
        elif loc and loc[0] == "body":
            where = "body" + ("." + ".".join(loc[1:]) if len(loc) > 1 else "")
        message = str(error.get("msg", "invalid"))
        got = error.get("input")
        shown = ""
        if error.get("type") != "missing" and isinstance(got, (str, int, float, bool)):
            text = repr(got)
            shown = f" (got {text[:60]}{'...' if len(text) > 60 else ''})"
        parts.append(f"{where}: {message}{shown}" if where else f"{message}{shown}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error *app* gives take the one shape, and document it in its OpenAPI."""

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_describe(exc.errors()), 400)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if status == 400 and detail == "There was an error parsing the body":
            detail = "the body is not valid JSON (or nests too deeply)"
        return error_response(detail, status, dict(exc.headers or {}))

    async def overflow(_request: Request, _exc: Exception) -> JSONResponse:
        # A number that passed validation but not the storage layer (SQLite's 64-bit
        # integers): the request's fault, said as such rather than as a 500.
        return error_response("a number in the request is out of range", 400)

    async def too_deep(_request: Request, _exc: Exception) -> JSONResponse:
        # json.loads on a document nested thousands deep.
        return error_response("the body nests too deeply", 400)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(f"internal error ({type(exc).__name__}); see the server log", 500)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(OverflowError, overflow)
    app.add_exception_handler(RecursionError, too_deep)
    app.add_exception_handler(Exception, crashed)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]


# --------------------------------------------------------------------------- OpenAPI

_DESCRIPTIONS = {
    400: "Bad input: a parameter or body that does not validate (nothing was changed)",
    401: "Authentication required (only when the server runs with --http-auth/--http-htpasswd)",
    403: "A foreign Origin (a browser on another site) may not do this",
    404: "No such message, part or rule",
    409: "The wait timed out: fewer messages matched than asked for (body: what did match)",
    413: "Request body larger than the server's limit (--http-max-body)",
    421: "The Host header names a host this server does not answer to (DNS rebinding guard)",
    502: "The relay refused the message or could not be reached (release)",
    503: "Not available now (SMTP server not running, or the server is shutting down)",
}

# Answers particular to one operation, beyond the ones every operation of its kind gives.
_SPECIFIC: dict[tuple[str, str], tuple[int, ...]] = {
    ("/readyz", "get"): (503,),
    ("/api/v1/wait", "get"): (409, 503),
    ("/api/v1/server", "get"): (404,),
    ("/api/v1/faults/{rule_id}", "delete"): (404,),
    ("/api/v1/events", "get"): (403,),
    ("/view/{name}", "get"): (404,),
    ("/api/v2/jim", "get"): (404,),  # MailHog: Jim is off
    ("/api/v2/jim", "put"): (404,),
    ("/api/v2/jim", "delete"): (404,),
    ("/api/v1/message/{id}/release", "post"): (502,),
    ("/api/v1/messages/{id}/release", "post"): (502,),
    ("/api/v1/tags/{tag}", "put"): (404,),  # Mailpit: no message carries the tag
}
_UNAUTHENTICATED = ("/livez", "/readyz")
_CONTENT: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/v1/message/{id}/raw", "get"): {"message/rfc822": {}},
    ("/api/v1/message/{id}/part/{index}", "get"): {"application/octet-stream": {}},
    ("/api/v1/message/{id}/html", "get"): {"text/html": {}},
    ("/api/v1/events", "get"): {"text/event-stream": {}},
    ("/view/{name}", "get"): {"text/html": {}, "text/plain": {}},
    # MailHog's and Mailpit's answers with no body, or a plain "ok", as their clients expect
    ("/api/v1/messages/{id}", "delete"): {},
    ("/api/v1/messages", "put"): {"text/plain": {}},  # Mailpit's read state and tags
    ("/api/v1/tags", "put"): {"text/plain": {}},
    ("/api/v1/tags/{tag}", "put"): {"text/plain": {}},
    ("/api/v1/tags/{tag}", "delete"): {"text/plain": {}},
    ("/api/v1/message/{id}/release", "post"): {"text/plain": {}},
    ("/api/v1/messages/{id}/release", "post"): {},
    ("/api/v2/jim", "post"): {},
    ("/api/v2/jim", "put"): {},
    ("/api/v2/jim", "delete"): {},
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            if (path, method) in _CONTENT:
                ok = responses.setdefault("200", {"description": "Successful Response"})
                ok["content"] = _CONTENT[path, method]
                if not ok["content"]:
                    del ok["content"]  # an empty body
            codes = {421, *_SPECIFIC.get((path, method), ())}
            if path not in _UNAUTHENTICATED:
                codes.add(401)
            if operation.get("parameters") or operation.get("requestBody"):
                codes.add(400)
            if "{id}" in path:
                codes.add(404)
            if method in ("post", "put", "delete", "patch"):
                codes |= {400, 403, 413}
            for code in sorted(codes):
                responses[str(code)] = {"description": _DESCRIPTIONS[code], "content": reference}
    app.openapi_schema = schema
    return schema
