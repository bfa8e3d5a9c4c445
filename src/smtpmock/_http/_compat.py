"""Mailpit's and MailHog's endpoints that are not smtpmock's own: their shapes, on our store.

:func:`add_compat_routes` registers them on the app :func:`~._api.create_app` builds. What the
clients of those tools rely on wins here over smtpmock's own conventions (docs/server.md has the
table of every endpoint and each difference):

* ``DELETE /api/v1/messages`` with no body deletes everything (Mailpit and MailHog do), as does a
  JSON object without non-empty ``IDs``; a body that is not JSON at all (nor a form with ``ids``)
  still deletes nothing. The reply is always JSON (npm ``mailhog`` parses any non-empty body).
* MailHog's v2 items carry the whole message as MailHog's ``data.Message`` does: every header as
  ``{name: [raw value]}``, the raw body, ``MIME.Parts`` (nested, bodies still encoded) and
  ``Raw {From, To, Data, Helo}``.
* Read state and tags (Mailpit's): ``PUT /api/v1/messages`` (``IDs``, or a ``Search``, or
  neither: every message), ``GET /api/v1/tags``, ``PUT /api/v1/tags``, ``PUT`` and ``DELETE
  /api/v1/tags/{Tag}``, answered ``ok`` as Mailpit does. ``GET /api/v1/message/{ID}`` marks the
  message read, as Mailpit does; smtpmock's own reads (``/api/v1/wait``, ``/api/v1/export``,
  :class:`~smtpmock.Client`) never change it.
* Release (Mailpit's and MailHog's) goes through :class:`~smtpmock._relay.Relay`, whose
  allowlist decides where mail may go; the relay settings are ``app.state.relay``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import mimetypes
import os
import re
import time
from collections.abc import Callable
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.message import Message as _StdMessage
from email.policy import SMTP as _SMTP_POLICY
from email.policy import SMTPUTF8 as _SMTPUTF8_POLICY
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from .._errors import ConfigurationError
from .._message import Message
from .._relay import Relay, RelayError, RelayRefused, RelayTarget
from .._search import Search, parse
from ._api import ApiSettings, _bad, _eml_download, _same_origin

if TYPE_CHECKING:
    from .._server import SMTPMock
    from ..store import Store

__all__ = ["add_compat_routes", "go_header_key", "mailhog_message"]

Page = Callable[[Search | None, int, int], tuple[int, list[dict[str, Any]]]]
Find = Callable[[str], Message | None]

_CHAOS_PREFIX = "mailpit-chaos:"
_CHAOS_DEFAULTS = {"Sender": 451, "Recipient": 451, "Authentication": 535}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_JIM_FIELDS = {
    # MailHog's Jim JSON field -> smtpmock.jim_rules keyword, with MailHog's defaults.
    "DisconnectChance": ("disconnect", 0.005),
    "AcceptChance": ("accept", 0.99),
    "LinkSpeedAffect": ("linkspeed_affect", 0.1),
    "LinkSpeedMin": ("linkspeed_min", 1024.0),
    "LinkSpeedMax": ("linkspeed_max", 10240.0),
    "RejectSenderChance": ("reject_sender", 0.05),
    "RejectRecipientChance": ("reject_recipient", 0.05),
    "RejectAuthChance": ("reject_auth", 0.05),
}
_JIM_PREFIX = "jim:"
_MAILHOG_MAX_LIMIT = 250
_MAILHOG_PAGE_BYTES = 64 * 1024 * 1024


def go_header_key(name: str) -> str:
    """*name* in Go's canonical MIME header form (``textproto.CanonicalMIMEHeaderKey``):
    ``message-id`` -> ``Message-Id``; a name with a byte outside the token set is left as is."""
    if not _TOKEN.match(name):
        return name
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


# --------------------------------------------------------------------------- MailHog's shapes


def _mailhog_path(address: str) -> dict[str, Any]:
    relays: list[str] | None = None
    email = address
    if ":" in address:
        route, email = address.split(":", 1)
        relays = route.split(",")
    mailbox, at, domain = email.partition("@")
    return {"Relays": relays, "Mailbox": mailbox, "Domain": domain if at else "", "Params": ""}


def _boundary(content_type: str) -> str:
    holder = _StdMessage()
    holder["Content-Type"] = content_type
    value = holder.get_param("boundary")
    return value if isinstance(value, str) else ""


def _mailhog_content(data: str) -> dict[str, Any]:
    """MailHog's ``ContentFromString``: headers split at the first blank line, each name as
    written with its raw value (continuation lines appended), the body untouched; a multipart
    part gets its own ``MIME`` with its parts."""
    headers: dict[str, list[str]] = {}
    head, sep, body = data.partition("\r\n\r\n")
    if not sep:
        head, body = "", data
    last = ""
    for line in head.split("\r\n") if head else ():
        if last and line[:1] in (" ", "\t"):
            headers[last][-1] += line
        elif ": " in line:
            name, value = line.split(": ", 1)
            headers.setdefault(name, []).append(value)
            last = name
    size = len(data.encode("utf-8", "surrogateescape"))  # Go's len: bytes
    content: dict[str, Any] = {"Headers": headers, "Body": body, "Size": size, "MIME": None}
    return content


def _mailhog_mime(content: dict[str, Any], depth: int = 0) -> dict[str, Any] | None:
    kind = content["Headers"].get("Content-Type")
    if not kind or not kind[0].startswith("multipart/") or depth > 50:
        return None
    boundary = _boundary(kind[0])
    pieces = content["Body"].split("--" + boundary)[1:-1] if boundary else []
    parts = []
    for piece in pieces:
        if piece:
            part = _mailhog_content(piece.strip("\r\n"))
            part["MIME"] = _mailhog_mime(part, depth + 1)
            parts.append(part)
    return {"Parts": parts}


def mailhog_message(message: Message) -> dict[str, Any]:
    """*message* as MailHog's ``data.Message`` (the item of ``/api/v2/messages``)."""
    data = message.raw.decode("utf-8", "replace")
    content = _mailhog_content(data)
    mime = _mailhog_mime(content)
    headers = content["Headers"]
    names = {name.lower(): name for name in headers}
    # What MailHog adds on receipt: a Message-ID if there is none, Received, Return-Path.
    if "message-id" not in names:
        headers["Message-ID"] = [message.id]
    received = (
        f"from {message.helo or ''} by smtpmock (smtpmock)\r\n          id {message.id}; "
        f"{formatdate(message.received_at.timestamp())}"
    )
    headers.setdefault(names.get("received", "Received"), []).append(received)
    headers.setdefault(names.get("return-path", "Return-Path"), []).append(f"<{message.mail_from}>")
    return {
        "ID": message.id,
        "From": _mailhog_path(message.mail_from),
        "To": [_mailhog_path(r) for r in message.rcpt_tos],
        "Content": content,
        "Created": message.received_at.isoformat().replace("+00:00", "Z"),
        "MIME": mime,
        "Raw": {
            "From": message.mail_from,
            "To": list(message.rcpt_tos),
            "Data": data,
            "Helo": message.helo or "",
        },
    }


# --------------------------------------------------------------------------- Mailpit's send


class _SendError(ValueError):
    pass


def _contact(value: Any, where: str) -> tuple[str, str]:
    if isinstance(value, str) and value:
        return "", value
    if isinstance(value, dict) and isinstance(value.get("Email"), str) and value["Email"]:
        name = value.get("Name") or ""
        if not isinstance(name, str):
            raise _SendError(f"{where}: Name must be a string")
        return name, value["Email"]
    raise _SendError(f'{where} must be {{"Email": "...", "Name": "..."}}')


def _contacts(body: dict[str, Any], key: str) -> list[tuple[str, str]]:
    value = body.get(key) or []
    if not isinstance(value, list):
        raise _SendError(f"{key} must be a list")
    return [_contact(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _header_safe(value: str, where: str) -> str:
    if "\r" in value or "\n" in value:
        raise _SendError(f"{where} must not contain line breaks")
    return value


_SPECIALS = frozenset('<>()[],;:\\"@')  # RFC 5322 specials: none in an unquoted local part


def _address(name: str, email: str, where: str) -> Address:
    name, email = _header_safe(name, where), _header_safe(email, where)
    if email.isascii():
        return Address(display_name=name, addr_spec=email)
    # An internationalised address (RFC 6531/6532), as Mailpit takes it: the stdlib's
    # address parser refuses a non-ASCII local part, so the two halves are checked here and
    # the message is written with UTF-8 headers (build_send's ``smtputf8``).
    local, at, domain = email.rpartition("@")
    if not (at and local and domain) or any(c.isspace() or c in _SPECIALS for c in local):
        raise _SendError(f"{where}: not an email address ({email!r})")
    Address(addr_spec="x@" + domain.encode("idna").decode("ascii"))  # the domain must parse
    return Address(display_name=name, username=local, domain=domain)


def _address_header(contacts: list[tuple[str, str]], where: str) -> list[Address]:
    try:
        return [_address(name, email, where) for name, email in contacts]
    except (ValueError, IndexError, MessageError) as exc:
        if isinstance(exc, _SendError):
            raise
        raise _SendError(f"{where}: not an email address ({exc})") from exc


def build_send(body: Any) -> tuple[bytes, str, list[str], bool]:
    """Mailpit's ``SendRequest`` JSON as ``(raw bytes, envelope sender, recipients,
    smtputf8)``: *smtputf8* when an address is internationalised (the headers are UTF-8)."""
    if not isinstance(body, dict):
        raise _SendError("body must be a JSON object (Mailpit's SendRequest)")
    if "From" not in body:
        raise _SendError("From is required")
    sender = _contact(body["From"], "From")
    to, cc, reply_to = _contacts(body, "To"), _contacts(body, "Cc"), _contacts(body, "ReplyTo")
    bcc = [address for _, address in _contacts(body, "Bcc")]
    message = EmailMessage()
    for name, contacts in (("From", [sender]), ("To", to), ("Cc", cc), ("Reply-To", reply_to)):
        if contacts:
            message[name] = _address_header(contacts, name)
    subject = body.get("Subject") or ""
    if not isinstance(subject, str):
        raise _SendError("Subject must be a string")
    message["Subject"] = _header_safe(subject, "Subject")
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="smtpmock")
    extra = body.get("Headers") or {}
    if not isinstance(extra, dict):
        raise _SendError('Headers must be {"Name": "value"}')
    for name, value in extra.items():
        if not isinstance(value, str) or not _TOKEN.match(str(name)):
            raise _SendError(f"header {name!r} must be a token name with a string value")
        del message[name]
        message[name] = _header_safe(value, f"header {name}")
    text, html = body.get("Text") or "", body.get("HTML") or ""
    if not isinstance(text, str) or not isinstance(html, str):
        raise _SendError("Text and HTML must be strings")
    if html and text:
        message.set_content(text)
        message.add_alternative(html, subtype="html")
    elif html:
        message.set_content(html, subtype="html")
    else:
        message.set_content(text)
    attachments = body.get("Attachments") or []
    if not isinstance(attachments, list):
        raise _SendError("Attachments must be a list")
    for i, item in enumerate(attachments):
        if not isinstance(item, dict) or not isinstance(item.get("Filename"), str):
            raise _SendError(f"Attachments[{i}] needs Filename and Content (base64)")
        try:
            data = base64.b64decode(str(item.get("Content") or ""), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _SendError(f"Attachments[{i}].Content is not base64") from exc
        kind = item.get("ContentType") or mimetypes.guess_type(item["Filename"])[0]
        maintype, _, subtype = str(kind or "application/octet-stream").partition("/")
        cid = item.get("ContentID") or None
        message.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=_header_safe(item["Filename"], f"Attachments[{i}].Filename"),
            disposition="inline" if cid else "attachment",
            cid=f"<{_header_safe(str(cid), 'ContentID')}>" if cid else None,
        )
    recipients = [address for _, address in to + cc] + bcc
    _address_header([("", address) for address in bcc], "Bcc")  # checked, never a header
    smtputf8 = not all(address.isascii() for address in [sender[1], *recipients])
    policy = _SMTPUTF8_POLICY if smtputf8 else _SMTP_POLICY
    return message.as_bytes(policy=policy), sender[1], recipients, smtputf8


# --------------------------------------------------------------------------- read state, tags


def _true(value: str) -> bool:
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"Read must be true or false, not {value!r}")


def read_request(body: bytes, content_type: str) -> tuple[list[str] | None, str, bool]:
    """What ``PUT /api/v1/messages`` with *body* marks: ``(ids or None, search, read)``.

    Mailpit's JSON ``{"IDs": [...], "Search": "...", "Read": true}`` (field names matched
    ignoring case, as Go's JSON decoding does): ids, else a search, else every message
    (``None``, ``""``); both ids and a search is an error, as in Mailpit. A form body
    (``ids=a&ids=b&Read=True``, as PyPI ``mailpit-api-client`` sends) marks those ids. Anything
    else raises ``ValueError``: it marks nothing.
    """
    if content_type.partition(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError("form body must be ids=...&Read=true") from exc
        fields = {k.lower(): v for k, v in form.items()}
        if set(fields) - {"ids", "read"} or not fields.get("ids"):
            raise ValueError("form body must be ids=...&Read=true")
        return [i for i in fields["ids"] if i], "", _true((fields.get("read") or [""])[-1])
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError('body must be JSON: {"IDs": [...], "Read": true}') from exc
    if not isinstance(data, dict):
        raise ValueError('body must be a JSON object: {"IDs": [...], "Read": true}')
    fields = {str(k).lower(): v for k, v in data.items()}
    read = fields.get("read", False)
    if not isinstance(read, bool):
        raise ValueError("Read must be true or false")
    ids = fields.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError('IDs must be a list of message ids: {"IDs": ["id", ...]}')
    search = fields.get("search") or ""
    if not isinstance(search, str):
        raise ValueError("Search must be a search string")
    if ids and search.strip():
        raise ValueError("You may specify either IDs or a search query, not both")
    return (ids or None), search.strip(), read


def tags_request(body: Any) -> tuple[list[str], list[str]]:
    """``PUT /api/v1/tags``: ``(ids, tags)`` from ``{"IDs": [...], "Tags": [...]}`` (no
    ``Tags``: remove them all)."""
    if not isinstance(body, dict):
        raise ValueError('body must be a JSON object: {"IDs": [...], "Tags": [...]}')
    fields = {str(k).lower(): v for k, v in body.items()}
    ids, tags = fields.get("ids") or [], fields.get("tags") or []
    for name, value in (("IDs", ids), ("Tags", tags)):
        if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
            raise ValueError(f"{name} must be a list of strings")
    return ids, tags


def _ok() -> PlainTextResponse:
    return PlainTextResponse("ok")


# --------------------------------------------------------------------------- deleting


def delete_request(body: bytes, content_type: str) -> list[str] | None:
    """What ``DELETE /api/v1/messages`` with *body* deletes: ``None`` for everything, else ids.

    Everything: no body, ``{"All": true}``, or a JSON object with no non-empty ``IDs`` (as
    Mailpit; its field names match case-insensitively, as Go's JSON decoding does). A form body
    (``ids=a&ids=b``, as PyPI ``mailpit-api-client`` sends) deletes those ids. Anything else,
    above all a body that is not JSON, raises ``ValueError``: it deletes nothing.
    """
    if not body.strip():
        return None
    if content_type.partition(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("ascii"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError("form body must be ids=...&ids=...") from exc
        ids = [i for key, values in form.items() if key.lower() == "ids" for i in values]
        if not ids or {k.lower() for k in form} != {"ids"}:
            raise ValueError("form body must be ids=...&ids=...")
        return ids
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError('body must be JSON: {"IDs": [...]} or {"All": true}') from exc
    if not isinstance(data, dict):
        raise ValueError('body must be a JSON object: {"IDs": [...]} or {"All": true}')
    fields = {str(k).lower(): v for k, v in data.items()}
    if "all" in fields:
        if fields["all"] is not True or len(fields) != 1:
            raise ValueError('{"All": true} deletes everything; nothing else goes with it')
        return None
    listed = fields.get("ids")
    if listed is None or listed == []:
        return None
    if not isinstance(listed, list) or not all(isinstance(i, str) and i for i in listed):
        raise ValueError('IDs must be a list of message ids: {"IDs": ["id", ...]}')
    return [str(i) for i in listed]


# --------------------------------------------------------------------------- the routes


def add_compat_routes(
    app: FastAPI, mock: SMTPMock, settings: ApiSettings, page: Page, find: Find
) -> None:
    """Register Mailpit's and MailHog's routes on *app* (*page* lists summaries, newest first;
    *find* looks a message up by id or ``latest``)."""
    store: Store = app.state.store  # the mailbox's, under /m/{mailbox}
    started = time.monotonic()
    jim: dict[str, float] = {}

    def foreign(request: Request) -> Response | None:
        if _same_origin(request, settings.allowed_origins):
            return None
        return _bad("foreign Origin refused", 403)

    def relay_settings() -> Relay:
        relay = getattr(app.state, "relay", None)
        return relay if isinstance(relay, Relay) else Relay()

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw.strip() else None

    # -- server facts -------------------------------------------------------------------------

    @app.get("/api/v1/info", tags=["compatibility"])
    def info() -> dict[str, Any]:
        """Mailpit's application information (``Version`` is smtpmock's), plus smtpmock's SMTP
        address, store size and change counters."""
        from .. import __version__

        metrics = getattr(app.state, "metrics", None)
        return {
            "Version": __version__,
            "LatestVersion": "",
            "Database": getattr(store, "path", ""),
            "DatabaseSize": getattr(store, "total_bytes", 0),
            "Messages": len(store),
            "Unread": store.unread_count(),
            "Tags": {t: store.count(parse(_tag_query(t))) for t in store.tags()},
            "RuntimeStats": {
                "Uptime": round(time.monotonic() - started),
                "Memory": _memory(),
                "MessagesDeleted": getattr(metrics, "deleted", 0),
                "SMTPAccepted": getattr(metrics, "received", 0),
                "SMTPAcceptedSize": getattr(metrics, "received_bytes", 0),
                "SMTPRejected": 0,
                "SMTPIgnored": 0,
            },
            "SMTP": {"Host": mock.host, "Port": mock.port if mock.running else None},
            "Size": getattr(store, "total_bytes", None),
            "LastSeq": store.last_seq,
            "Generation": store.generation,
        }

    @app.get("/api/v1/webui", tags=["compatibility"])
    def webui() -> dict[str, Any]:
        """Mailpit's web UI configuration (the relay settings come from ``--relay-*``)."""
        relay = relay_settings()
        return {
            "Label": "smtpmock",
            "MessageRelay": {
                "Enabled": bool(relay.host),
                "SMTPServer": f"{relay.host}:{relay.port}" if relay.host else "",
                "ReturnPath": "",
                "AllowedRecipients": "",
                "BlockedRecipients": "",
                "OverrideFrom": "",
                "AllowedHosts": list(relay.allowlist),
            },
            "SpamAssassin": False,
            "ChaosEnabled": True,
            "DuplicatesIgnored": False,
            "HideDeleteAllButton": False,
        }

    # -- deleting -----------------------------------------------------------------------------

    @app.delete("/api/v1/messages", tags=["messages"])
    async def delete_messages(request: Request) -> Response:
        """Delete ``{"IDs": [...]}``; everything with no body, ``{}``, empty ``IDs`` or
        ``{"All": true}`` (as Mailpit and MailHog); a body that is not JSON deletes nothing."""
        refused = foreign(request)
        if refused is not None:
            return refused
        try:
            ids = delete_request(await request.body(), request.headers.get("content-type", ""))
        except ValueError as exc:
            return _bad(str(exc))
        if ids is None:
            count = await asyncio.to_thread(store.clear)
        else:
            count = await asyncio.to_thread(store.delete, ids)
        return JSONResponse({"deleted": count})

    # -- read state and tags (Mailpit) -------------------------------------------------------

    @app.put("/api/v1/messages", tags=["messages"])
    async def set_read(request: Request) -> Response:
        """Mailpit's read status: ``{"IDs": [...], "Read": true}``, ``{"Search": "...",
        "Read": true}``, or neither (every message); ``Read`` defaults to false (unread)."""
        refused = foreign(request)
        if refused is not None:
            return refused
        try:
            ids, query, read = read_request(
                await request.body(), request.headers.get("content-type", "")
            )
            target: list[str] | Search | None = parse(query) if query else ids
        except (ValueError, ConfigurationError) as exc:
            return _bad(str(exc))
        await asyncio.to_thread(store.mark_read, target, read)
        return _ok()

    @app.get("/api/v1/tags", tags=["tags"])
    def get_tags() -> list[str]:
        """Every tag in use, sorted."""
        return store.tags()

    @app.put("/api/v1/tags", tags=["tags"])
    async def set_tags(request: Request) -> Response:
        """Mailpit's set tags: ``{"IDs": [...], "Tags": [...]}`` replaces the tags of those
        messages (cleaned as Mailpit: other characters than ``A-Za-z0-9-_.`` and space become
        spaces; an empty or missing ``Tags`` removes them)."""
        refused = foreign(request)
        if refused is not None:
            return refused
        try:
            ids, tags = tags_request(await json_body(request))
            await asyncio.to_thread(store.set_tags, ids, tags)
        except (ValueError, ConfigurationError) as exc:
            return _bad(str(exc))
        return _ok()

    @app.put("/api/v1/tags/{tag}", tags=["tags"])
    async def rename_tag(tag: str, request: Request) -> Response:
        """Mailpit's rename: ``{"Name": "new name"}`` (404 when no message carries *tag*)."""
        refused = foreign(request)
        if refused is not None:
            return refused
        try:
            body = await json_body(request)
            fields = {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}
            name = fields.get("name")
            if not isinstance(name, str):
                raise ValueError('body must be {"Name": "new tag name"}')
            if not store.count(parse(_tag_query(tag))):
                return _bad(f"tag {tag!r} not found", 404)
            await asyncio.to_thread(store.rename_tag, tag, name)
        except (ValueError, ConfigurationError) as exc:
            return _bad(str(exc))
        return _ok()

    @app.delete("/api/v1/tags/{tag}", tags=["tags"])
    async def delete_tag(tag: str, request: Request) -> Response:
        """Mailpit's delete tag: removed from every message; the messages stay."""
        refused = foreign(request)
        if refused is not None:
            return refused
        await asyncio.to_thread(store.delete_tag, tag)
        return _ok()

    @app.get("/api/v1/messages/{id}", tags=["compatibility"])
    def mailhog_get(id: str) -> Response:
        """MailHog's v1 message: the whole message as MailHog's ``data.Message``."""
        found = store.get(id)
        if found is None:
            return _bad("message not found", 404)
        return JSONResponse(mailhog_message(found))

    @app.get("/api/v1/messages/{id}/download", tags=["compatibility"])
    def mailhog_download(id: str) -> Response:
        """MailHog's download: the exact bytes as received (MailHog rebuilds them from its
        parsed headers, in no fixed order), as an ``.eml`` attachment."""
        found = store.get(id)
        if found is None:
            return _bad("message not found", 404)
        return _eml_download(found)

    @app.delete("/api/v1/messages/{id}", tags=["compatibility"])
    def mailhog_delete(id: str, request: Request) -> Response:
        """MailHog's delete of one message (an empty 200; 404 if there is no such message)."""
        refused = foreign(request)
        if refused is not None:
            return refused
        if store.delete([id]) == 0:
            return _bad("message not found", 404)
        return Response(status_code=200)

    # -- headers, views -----------------------------------------------------------------------

    @app.get("/api/v1/message/{id}/headers", tags=["message"])
    def headers(id: str) -> Any:
        """Every header, ``{"Name": [values...]}``, decoded, names in Go's canonical form
        (``Message-Id``) as Mailpit returns them, sorted."""
        found = find(id)
        if found is None:
            return _bad("message not found", 404)
        out: dict[str, list[str]] = {}
        for name, value in found.headers.items_all():
            out.setdefault(go_header_key(name), []).append(value)
        return dict(sorted(out.items()))

    @app.get("/view/{name}", tags=["compatibility"])
    def view(name: str) -> Response:
        """Mailpit's ``/view/{ID}.html`` (the HTML body, sandboxed, no remote content) and
        ``/view/{ID}.txt`` (the text body)."""
        from ._ui import _COMMON_HEADERS, PREVIEW_CSP, preview_document

        id, dot, kind = name.rpartition(".")
        found = find(id) if dot and kind in ("html", "txt") else None
        if found is None:
            return _bad("message not found", 404)
        if kind == "txt":
            return PlainTextResponse(found.text or "", headers=_COMMON_HEADERS)
        if found.html is None:
            return _bad("message has no HTML body", 404)
        return Response(
            preview_document(found),
            media_type="text/html; charset=utf-8",
            headers={**_COMMON_HEADERS, "Content-Security-Policy": PREVIEW_CSP},
        )

    @app.get("//view/{name}", include_in_schema=False)
    def view_slashes(name: str, request: Request) -> Response:
        """``//view/...`` redirects to ``/view/...`` as Go's router cleans paths (cypress-mailpit
        asks for ``//view/{ID}.html``)."""
        target = f"/view/{name}"
        if request.url.query:
            target += f"?{request.url.query}"
        return RedirectResponse(target, status_code=301)

    # -- sending and releasing ----------------------------------------------------------------

    @app.post("/api/v1/send", tags=["compatibility"])
    async def send(request: Request) -> Response:
        """Mailpit's send API: build a message from ``SendRequest`` JSON and store it as if it
        had arrived over SMTP; answers ``{"ID": ...}``."""
        refused = foreign(request)
        if refused is not None:
            return refused
        try:
            raw, sender, recipients, smtputf8 = build_send(await json_body(request))
        except ValueError as exc:  # _SendError and JSON errors
            return _bad(str(exc))
        client = request.client
        message = Message(
            raw,
            mail_from=sender,
            rcpt_tos=recipients,
            peer=(client.host, client.port) if client else None,
            helo="smtpmock-http-send",
            smtputf8=smtputf8,
        )
        await asyncio.to_thread(store.add, message)
        body = await json_body(request)
        tags = body.get("Tags") if isinstance(body, dict) else None
        if isinstance(tags, list) and tags:  # Mailpit tags the sent message
            with contextlib.suppress(ConfigurationError):
                await asyncio.to_thread(
                    store.set_tags, [message.id], [str(t) for t in tags if isinstance(t, str)]
                )
        return JSONResponse({"ID": message.id})

    async def relay(target: RelayTarget, message: Message, recipients: list[str]) -> Response:
        try:
            await asyncio.to_thread(
                relay_settings().send, target, message.mail_from, recipients, message.raw
            )
        except RelayRefused as exc:
            return _bad(str(exc), 403)
        except RelayError as exc:
            return _bad(str(exc), 502)
        return Response(status_code=200)

    @app.post("/api/v1/message/{id}/release", tags=["compatibility"])
    async def mailpit_release(id: str, request: Request) -> Response:
        """Mailpit's release: send the message to ``{"To": [...]}`` through the configured
        relay (``--relay-host``); answers ``ok``."""
        refused = foreign(request)
        if refused is not None:
            return refused
        found = find(id)
        if found is None:
            return _bad("message not found", 404)
        try:
            body = await json_body(request)
        except ValueError:
            return _bad('body must be JSON: {"To": ["address", ...]}')
        to = body.get("To") if isinstance(body, dict) else None
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and a for a in to):
            return _bad('body must be {"To": ["address", ...]} (non-empty)')
        try:
            target = relay_settings().default_target()
        except RelayRefused as exc:
            return _bad(str(exc))
        answer = await relay(target, found, to)
        if answer.status_code == 200:
            return PlainTextResponse("ok")
        return answer

    @app.post("/api/v1/messages/{id}/release", tags=["compatibility"])
    async def mailhog_release(id: str, request: Request) -> Response:
        """MailHog's release: ``{"Host", "Port", "Email", "Username", "Password",
        "Mechanism"}``; the host must be allowed (``--relay-allow-host``); an empty
        ``Host`` uses the configured relay. Answers an empty 200."""
        refused = foreign(request)
        if refused is not None:
            return refused
        found = find(id)
        if found is None:
            return _bad("message not found", 404)
        try:
            body = await json_body(request)
        except ValueError:
            return _bad("body must be JSON: {Host, Port, Email, ...}")
        if not isinstance(body, dict) or not isinstance(body.get("Email"), str):
            return _bad('body must be {"Host": ..., "Port": ..., "Email": "address"}')
        settings_ = relay_settings()
        host = str(body.get("Host") or settings_.host or "")
        if not host:
            return _bad("Host is required (no relay host is configured)")
        try:
            port = int(body.get("Port") or (settings_.port if host == settings_.host else 25))
        except (TypeError, ValueError):
            return _bad("Port must be a number")
        same = host == settings_.host
        username = body.get("Username") or (settings_.username if same else None)
        password = body.get("Password") or (settings_.password if same else None)
        mechanism = body.get("Mechanism") or (settings_.mechanism if same else None)
        target = RelayTarget(
            host,
            port,
            settings_.tls if same else "auto",
            str(username) if username else None,
            str(password) if password is not None else None,
            str(mechanism) if mechanism else None,
        )
        return await relay(target, found, [body["Email"]])

    # -- Mailpit's chaos endpoint, mapped onto fault rules ------------------------------------

    def chaos_triggers() -> dict[str, dict[str, int]]:
        triggers = {
            name: {"ErrorCode": code, "Probability": 0} for name, code in _CHAOS_DEFAULTS.items()
        }
        for rule in mock.faults.rules:
            if not (rule.name or "").startswith(_CHAOS_PREFIX):
                continue
            name = (rule.name or "").removeprefix(_CHAOS_PREFIX)
            if name in triggers:
                triggers[name] = {
                    "ErrorCode": rule.code or _CHAOS_DEFAULTS[name],
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
        refused = foreign(request)
        if refused is not None:
            return refused
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

    # -- MailHog v2 ---------------------------------------------------------------------------

    def mailhog_page(search: Search | None, request: Request) -> dict[str, Any]:
        # MailHog's getStartLimit: bad or non-positive values fall back, limit capped at 250.
        start = max(0, _int(request.query_params.get("start"), 0))
        limit = _int(request.query_params.get("limit"), 50)
        limit = 50 if limit <= 0 else min(limit, _MAILHOG_MAX_LIMIT)
        total, summaries = page(search, start, limit)
        items: list[dict[str, Any]] = []
        budget = int(getattr(app.state, "mailhog_page_bytes", _MAILHOG_PAGE_BYTES))
        for summary in summaries:
            # Whole messages go in each item: past a byte budget the page ends early (at least
            # one item), so big attachments cannot make one answer hold gigabytes. ``count``
            # says how many came; a client pages on with ``start``.
            if items and summary["Size"] > budget:
                break
            found = store.get(summary["ID"])
            if found is not None:
                items.append(mailhog_message(found))
                budget -= found.size
        return {"total": total, "count": len(items), "start": start, "items": items}

    @app.get("/api/v2/messages", tags=["compatibility"])
    def mailhog_messages(request: Request) -> dict[str, Any]:
        """MailHog's list, newest first: whole messages as MailHog's ``data.Message``."""
        return mailhog_page(None, request)

    @app.get("/api/v2/search", tags=["compatibility"])
    def mailhog_search(request: Request, kind: str = "", query: str = "") -> Any:
        """MailHog's search: ``kind`` is ``from``, ``to`` or ``containing``."""
        field_name = {"from": "from", "to": "addressed", "containing": ""}.get(kind)
        if field_name is None:
            return _bad("kind must be from, to or containing")
        if not query:
            return _bad("query is required")
        escaped = query.replace("\\", "").replace('"', "")
        text = f'{field_name}:"{escaped}"' if field_name else f'"{escaped}"'
        return mailhog_page(parse(text), request)

    def apply_jim(params: dict[str, float] | None) -> None:
        from .._chaos import jim_rules

        faults = mock.faults
        rules = jim_rules(**{_JIM_FIELDS[k][0]: v for k, v in params.items()}) if params else []
        for old in faults.rules:
            if old.name and old.name.startswith(_JIM_PREFIX):
                with contextlib.suppress(KeyError):
                    faults.remove(old)
        for rule in rules:
            faults.add(rule)
        jim.clear()
        jim.update(params or {})

    async def jim_params(request: Request, base: dict[str, float]) -> dict[str, float]:
        body = await json_body(request)
        if body is None:
            return dict(base)
        if not isinstance(body, dict) or not set(body) <= set(_JIM_FIELDS):
            raise ValueError(f"body must be Jim settings: {', '.join(_JIM_FIELDS)}")
        merged = dict(base)
        for key, value in body.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{key} must be a number")
            merged[key] = float(value)
        return merged

    @app.get("/api/v2/jim", tags=["compatibility"])
    def get_jim() -> Response:
        """MailHog's Jim settings (404 while Jim is off, as MailHog)."""
        if not jim:
            return _bad("Jim is not enabled", 404)
        return JSONResponse(jim)

    @app.post("/api/v2/jim", tags=["compatibility"])
    @app.put("/api/v2/jim", tags=["compatibility"])
    async def set_jim(request: Request) -> Response:
        """Turn Jim on (POST, MailHog's defaults plus the body) or change it (PUT): its chaos
        becomes fault rules named ``jim:*``."""
        refused = foreign(request)
        if refused is not None:
            return refused
        if request.method == "PUT" and not jim:
            return _bad("Jim is not enabled", 404)
        defaults = {key: default for key, (_, default) in _JIM_FIELDS.items()}
        try:
            params = await jim_params(request, jim or defaults)
            apply_jim(params)
        except (ValueError, ConfigurationError) as exc:
            return _bad(str(exc))
        return Response(status_code=200)

    @app.delete("/api/v2/jim", tags=["compatibility"])
    def delete_jim(request: Request) -> Response:
        """Turn Jim off (its fault rules are removed; other rules stay)."""
        refused = foreign(request)
        if refused is not None:
            return refused
        apply_jim(None)
        return Response(status_code=200)


def _tag_query(tag: str) -> str:
    """A ``tag:`` search term for *tag* (quoted: tags may hold spaces)."""
    escaped = tag.replace("\\", "\\\\").replace('"', '\\"')
    return f'tag:"{escaped}"'


def _memory() -> int:
    """Resident memory of this process in bytes (0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):
        return 0
