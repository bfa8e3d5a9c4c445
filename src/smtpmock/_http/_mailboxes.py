"""Mailboxes over HTTP: every route scoped to one mailbox, and per-mailbox tokens.

**Scoping.** ``/m/{mailbox}/...`` serves the whole HTTP API (smtpmock's ``/api/v1``, the
Mailpit- and MailHog-shaped routes, the web UI) over that one mailbox: the same app built over
``store.mailbox(name)`` (:class:`~smtpmock.store.MailboxStore`), so a list, search, wait, event
stream, delete or clear there sees and touches that mailbox only. A client with a base URL is
pointed at a mailbox by giving it ``http://host:8025/m/ci-1`` as its base URL. The header
``X-Smtpmock-Mailbox: ci-1`` does the same on the unprefixed paths. ``GET /api/v1/mailboxes``
lists the mailboxes (with their message counts) the caller may see. Scoped apps are built on
first use and the most recently used are kept (:data:`_KEPT_APPS`).

**Access control** (:class:`MailboxAccess`, off unless tokens are configured): every request
but ``/livez`` and ``/readyz`` carries ``Authorization: Bearer TOKEN``. An admin token may do
everything. A mailbox token may use its own mailbox (by prefix or header; a token given for
``NAME*`` may use every mailbox whose name starts with ``NAME``) and
``GET /api/v1/mailboxes`` (which then lists only its mailbox); any other mailbox is ``404``
whether it exists or not (names must not leak), the unscoped store is ``403``, and so are the
routes that change the whole server (fault rules, chaos, Jim). Tokens are compared as SHA-256
digests with :func:`hmac.compare_digest`, against every configured token (no early exit).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

from .._errors import MailboxNameError
from .._search import check_mailbox_name
from ._problems import send_error

if TYPE_CHECKING:
    from .._server import SMTPMock
    from ..store import Store
    from ._api import ApiSettings, ASGIApp, Receive, Scope, Send

__all__ = ["ADMIN", "MailboxAccess", "MailboxDispatch", "add_mailbox_routes", "allowed"]

ADMIN = "\0admin"
"""The role of an admin token (never a mailbox name: those cannot start with NUL)."""

MAILBOX_HEADER = b"x-smtpmock-mailbox"
PREFIX = "/m/"
_KEPT_APPS = 64
_OPEN_PATHS = ("/livez", "/readyz")
# Routes that change the whole server, not one mailbox: admin only when tokens are on.
_SERVER_WIDE = ("/api/v1/faults", "/api/v1/chaos", "/api/v2/jim")
_VISIBLE_KEY = "smtpmock.visible_mailboxes"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class MailboxAccess:
    """Who a bearer token is: :data:`ADMIN`, a mailbox name, or nobody.

    *tokens*: ``{mailbox: token}``; *admin_tokens*: tokens that see everything. With neither,
    :attr:`enabled` is false and nothing is checked (today's behaviour).
    """

    def __init__(
        self, tokens: Mapping[str, str] | None = None, admin_tokens: Sequence[str] = ()
    ) -> None:
        self._known: list[tuple[bytes, str]] = []
        for name, token in (tokens or {}).items():
            check_mailbox_name(name.removesuffix("*"))
            if not token:
                raise MailboxNameError(f"mailbox {name!r}: empty token")
            self._known.append((_digest(token), name))
        for token in admin_tokens:
            if not token:
                raise MailboxNameError("empty admin token")
            self._known.append((_digest(token), ADMIN))

    @property
    def enabled(self) -> bool:
        return bool(self._known)

    def identify(self, token: str | None) -> str | None:
        """The role of *token* (constant time in the token: every known digest is compared)."""
        if token is None:
            return None
        given = _digest(token)
        found: str | None = None
        for digest, role in self._known:
            if hmac.compare_digest(digest, given) and found is None:
                found = role
        return found


def allowed(role: str, name: str) -> bool:
    """Whether a token of *role* (a mailbox name, or a prefix ending in ``*``) may use mailbox
    *name*."""
    if role.endswith("*"):
        return name.startswith(role[:-1])
    return name == role


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = str(value.decode("latin-1"))
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


async def _answer(send: Send, status: int, text: str, *, bearer: bool = False) -> None:
    # The API's one error shape (_problems.py): {"error": ..., "status": N}.
    headers = ((b"www-authenticate", b'Bearer realm="smtpmock"'),) if bearer else ()
    await send_error(send, status, text, headers)


class MailboxDispatch:
    """The outermost ASGI app of ``smtpmock serve``: picks the mailbox a request is for (prefix
    or header), checks its token, and hands it to the app of that mailbox (or the root app)."""

    def __init__(
        self,
        root: ASGIApp,
        mock: SMTPMock,
        settings: ApiSettings,
        make_app: Callable[[Store], FastAPI],
        access: MailboxAccess,
    ) -> None:
        self.root, self.mock, self.settings = root, mock, settings
        self.make_app, self.access = make_app, access
        self._apps: OrderedDict[str, FastAPI] = OrderedDict()

    def app_for(self, name: str) -> ASGIApp:
        """The (cached) app of mailbox *name*."""
        app = self._apps.get(name)
        if app is None:
            app = self.make_app(self.mock.store.mailbox(name))
            self._apps[name] = app
            while len(self._apps) > _KEPT_APPS:
                _, old = self._apps.popitem(last=False)
                metrics = getattr(old.state, "metrics", None)
                unsubscribe = getattr(metrics, "unsubscribe", None)
                if unsubscribe is not None:
                    unsubscribe()
        else:
            self._apps.move_to_end(name)
        asgi: ASGIApp = app.state.asgi
        return asgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.root(scope, receive, send)
            return
        path: str = scope["path"]
        name: str | None = None
        prefix = ""
        if path.startswith(PREFIX) or path == PREFIX[:-1]:
            name, _, _ = path[len(PREFIX) :].partition("/")
            prefix = PREFIX + name
        header = _header(scope, MAILBOX_HEADER)
        if header is not None:
            if name is not None and header != name:
                await _answer(send, 400, "X-Smtpmock-Mailbox and the /m/ prefix disagree")
                return
            name = header
        if name is not None:
            try:
                check_mailbox_name(name)
            except MailboxNameError as exc:
                await _answer(send, 400, str(exc))
                return
        if prefix and path == prefix and scope["type"] == "http":
            # /m/NAME -> /m/NAME/: the web UI's relative paths resolve under the mailbox.
            query = scope.get("query_string", b"").decode("latin-1")
            location = scope.get("root_path", "") + prefix + "/" + (f"?{query}" if query else "")
            await send(
                {
                    "type": "http.response.start",
                    "status": 308,
                    "headers": [
                        (b"location", location.encode("latin-1")),
                        (b"content-length", b"0"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        inner = path[len(prefix) :] or "/"
        if self.access.enabled and not (name is None and inner in _OPEN_PATHS):
            role = self.access.identify(_bearer(scope))
            if role is None:
                await _answer(send, 401, "a bearer token is required", bearer=True)
                return
            if role != ADMIN:
                if name is not None and not allowed(role, name):
                    await _answer(send, 404, "no such mailbox")
                    return
                if name is None and inner != "/api/v1/mailboxes":
                    await _answer(
                        send, 403, f"this token may use mailbox {role!r} only: /m/{role}/..."
                    )
                    return
                if inner.startswith(_SERVER_WIDE):
                    await _answer(send, 403, "only an admin token may change the whole server")
                    return
                scope = {**scope, _VISIBLE_KEY: (role,)}
        if name is None:
            await self.root(scope, receive, send)
            return
        if prefix:
            scope = {**scope, "root_path": scope.get("root_path", "") + prefix}
        await self.app_for(name)(scope, receive, send)


def add_mailbox_routes(app: FastAPI, store: Store) -> None:
    """``GET /api/v1/mailboxes``: the mailboxes the caller may see, with message counts."""

    @app.get("/api/v1/mailboxes", tags=["mailboxes"])
    def mailboxes(request: Request) -> Any:
        """Mailboxes holding messages (``Name``, ``Messages``), sorted by name; a mailbox token
        sees its own mailbox only."""
        counts = store.mailboxes()
        visible = request.scope.get(_VISIBLE_KEY)
        if visible is not None:
            counts = {n: c for n, c in counts.items() if any(allowed(v, n) for v in visible)}
            for role in visible:  # its own mailbox, also while empty
                if not role.endswith("*"):
                    counts.setdefault(role, 0)
            counts = dict(sorted(counts.items()))
        items = [{"Name": name, "Messages": count} for name, count in counts.items()]
        return {"mailboxes": items, "total": len(items)}
