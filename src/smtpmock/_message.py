"""One received message: the exact bytes, the SMTP envelope, and lazy, never-raising parsing.

The raw bytes are the truth. Everything else is derived from them on first access and cached.
No accessor raises on malformed input: what the parser could not make sense of is reported in
:attr:`Message.defects` and the accessor returns its best effort (``None``, ``""`` or ``[]``).

Why headers are decoded here rather than through ``email.policy.default``'s header objects:

* ``policy.default`` turns raw 8-bit header bytes (SMTPUTF8 mail) into U+FFFD; we decode
  them as UTF-8, which is what RFC 6532 says they are.
* Its address-list parser is quadratic: 20,000 addresses in ``To:`` take ~8 s. We use
  :func:`email.utils.getaddresses`, which takes ~0.2 s for the same header.
"""

from __future__ import annotations

import datetime as _dt
import functools
import html.parser
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.message import Message as _StdMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._transcript import Transcript

__all__ = ["Address", "Attachment", "Headers", "Message", "new_id"]

_PARSER = BytesParser(policy=policy.default)
_HEADERS_PARSER = BytesParser(policy=policy.default)
_ADDRESS_HEADERS = ("to", "cc", "bcc", "reply-to", "from", "sender")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_URL = re.compile(r"""\b(?:https?|ftp)://[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
_NEEDS_QUOTES = re.compile(r'[()<>@,;:\\".\[\]]')


class Address(NamedTuple):
    """A mailbox from a header: its display name (decoded) and its address.

    It equals its address as a string, ignoring case, and the other spellings the ``to=``
    criterion accepts (``"Bob <bob@example.com>"``), so ``message.to == ["bob@example.com"]``
    and ``"bob@example.com" in message.to`` hold. Against another ``Address`` or a
    ``(name, address)`` pair, both parts count (the address ignoring case). The hash is that of
    the lower-case address, so sets and dicts agree with ``==``.
    """

    name: str
    address: str

    def _spellings(self) -> tuple[str, ...]:
        forms = [self.address, str(self)]
        if self.name:
            forms.append(f"{self.name} <{self.address}>")
        return tuple(f.casefold() for f in forms)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other.casefold() in self._spellings()
        if isinstance(other, tuple) and len(other) == 2:
            name, address = other
            return (
                isinstance(name, str)
                and isinstance(address, str)
                and name == self.name
                and address.casefold() == self.address.casefold()
            )
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self.address.lower())

    def __str__(self) -> str:
        """``Name <address>``, the name quoted only where RFC 5322 needs it; or the address."""
        if not self.name:
            return self.address
        if _NEEDS_QUOTES.search(self.name):
            quoted = self.name.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{quoted}" <{self.address}>'
        return f"{self.name} <{self.address}>"


@dataclass(frozen=True)
class Attachment:
    """A non-body MIME part: a file attachment or an inline image (``multipart/related``)."""

    index: int
    """Position of the part among the message's leaf parts (stable; used to serve it)."""
    filename: str | None
    content_type: str
    content_id: str | None
    disposition: str | None
    content: bytes = field(repr=False)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def is_inline(self) -> bool:
        return self.disposition == "inline" or (
            self.disposition is None and self.content_id is not None
        )


class Headers(Mapping[str, str]):
    """Every header of a message, in order, with case-insensitive look-up.

    ``headers["Subject"]`` is the first value; :meth:`get_all` returns every value of a repeated
    header (``Received``) in the order they appear. Values are unfolded and decoded (RFC 2047,
    and raw UTF-8 per RFC 6532).
    """

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = list(items)
        self._index: dict[str, list[str]] = {}
        for name, value in self._items:
            self._index.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def get_all(self, name: str) -> list[str]:
        """Every value of header *name*, in message order (``[]`` if absent)."""
        return list(self._index.get(name.lower(), ()))

    def items_all(self) -> list[tuple[str, str]]:
        """All ``(name, value)`` pairs in message order, repeated headers included."""
        return list(self._items)

    def as_dict(self) -> dict[str, list[str]]:
        """``{"Name": [values...]}`` as Mailpit's API returns it, names as first spelled."""
        out: dict[str, list[str]] = {}
        for name, value in self._items:
            key = next((k for k in out if k.lower() == name.lower()), name)
            out.setdefault(key, []).append(value)
        return out

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def new_id() -> str:
    """A random version 4 UUID as 32 hex digits (what ``uuid.uuid4().hex`` gives).

    Built from :func:`os.urandom` directly: ``uuid.UUID`` validates and converts through an
    int, four times the cost, and every connection and message needs one.
    """
    octets = bytearray(os.urandom(16))
    octets[6] = octets[6] & 0x0F | 0x40  # version 4
    octets[8] = octets[8] & 0x3F | 0x80  # the RFC 4122 variant
    return octets.hex()


def _to_text(value: str) -> tuple[str, bool]:
    """Turn a header value as the byte parser gave it (ASCII + surrogate escapes) into text.

    Returns the text and whether the raw bytes were not valid UTF-8.
    """
    try:
        raw = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already real text (parsed from str)
        return value, False
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("latin-1"), True


def _unix_newlines(text: str) -> str:
    """Bodies are text: SMTP's CRLF line ends read as ``\n`` (``raw`` keeps the bytes)."""
    return text.replace("\r\n", "\n")


def _parse_addresses(values: tuple[str, ...]) -> list[Address]:
    """The mailboxes of these header values (:func:`email.utils.getaddresses`, names decoded).

    Short headers are remembered (:func:`_remembered_addresses`): the same few ``From:`` and
    ``To:`` values come back message after message, and parsing one costs ~15 us (the
    stdlib's strict parser reads each value twice). Long lists are parsed every time, so the
    cache stays within a few hundred KiB.
    """
    if sum(map(len, values)) <= _REMEMBERED_LENGTH:
        return list(_remembered_addresses(values))
    return list(_addresses_of(values))


def _addresses_of(values: tuple[str, ...]) -> tuple[Address, ...]:
    return tuple(Address(_decode_words(n), a) for n, a in getaddresses(values) if n or a)


_remembered_addresses = functools.lru_cache(maxsize=512)(_addresses_of)  # thread-safe
_REMEMBERED_LENGTH = 512  # characters of header values, at most, for the cache


def _decode_words(value: str, defects: list[str] | None = None, where: str = "") -> str:
    """Decode RFC 2047 encoded words; leave the text as it is if that fails (and say so in
    *defects*, naming *where* the value came from)."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeError, AssertionError, TypeError) as exc:
        if defects is not None:
            defects.append(
                f"undecodable encoded word in {where or 'a header'} "
                f"({type(exc).__name__}: {exc}); kept as sent"
            )
        return value


class _Links(html.parser.HTMLParser):
    """Collects ``href`` targets and the URLs written in the text, both with entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "area"):
            for key, val in attrs:
                if key == "href" and val and val.strip():
                    self.links.append(val.strip())

    def handle_data(self, data: str) -> None:
        self.links.extend(_bare_urls(data))


def _bare_urls(text: str) -> list[str]:
    return [m.group(0).rstrip(_URL_TRAILING) for m in _URL.finditer(text)]


class Message:
    """One message as received: the raw bytes, the envelope, and parsed views of both.

    Only :attr:`raw` and the envelope are stored; every parsed attribute is computed from
    :attr:`raw` on first access and cached. Message objects are safe to share across threads.
    """

    def __init__(
        self,
        raw: bytes,
        *,
        mail_from: str = "",
        rcpt_tos: Sequence[str] = (),
        peer: tuple[str, int] | None = None,
        helo: str | None = None,
        received_at: _dt.datetime | None = None,
        tls: bool = False,
        tls_version: str | None = None,
        auth_user: str | None = None,
        mail_options: Sequence[str] = (),
        rcpt_options: Mapping[str, Sequence[str]] | None = None,
        smtputf8: bool = False,
        session_id: str | None = None,
        id: str | None = None,
        mailbox: str = "default",
    ) -> None:
        self.raw: bytes = bytes(raw)
        """The exact bytes of the message as received, after SMTP dot-unstuffing."""
        self.id: str = id or new_id()
        """A unique, opaque identifier."""
        self.seq: int = 0
        """Arrival order within its store (set when stored, increasing from 1)."""
        # aiosmtpd reports the null reverse-path as "<>"; the documented value is "".
        self.mail_from: str = "" if mail_from == "<>" else mail_from
        """The envelope sender (``MAIL FROM``); ``""`` for the null reverse-path ``<>``."""
        self.rcpt_tos: tuple[str, ...] = tuple(rcpt_tos)
        """The envelope recipients (``RCPT TO``), in order."""
        self.peer: tuple[str, int] | None = peer
        """The client's address."""
        self.helo: str | None = helo
        """The name the client gave in ``HELO``/``EHLO``."""
        self.received_at: _dt.datetime = received_at or _dt.datetime.now(_dt.timezone.utc)
        """When the end of data was received (UTC)."""
        self.tls: bool = tls
        """Whether the message came over TLS (STARTTLS or implicit)."""
        self.tls_version: str | None = tls_version
        self.auth_user: str | None = auth_user
        """The user the client authenticated as, if it did."""
        self.mail_options: tuple[str, ...] = tuple(mail_options)
        """``MAIL FROM`` parameters as sent (``BODY=8BITMIME``, ``SMTPUTF8``, ``RET=HDRS`` ...)."""
        self.rcpt_options: dict[str, tuple[str, ...]] = {
            k: tuple(v) for k, v in (rcpt_options or {}).items()
        }
        """``RCPT TO`` parameters per recipient (``NOTIFY=...``, ``ORCPT=...``)."""
        self.smtputf8: bool = smtputf8
        self.session_id: str | None = session_id
        """The SMTP session that delivered this message (see transcripts)."""
        self.mailbox: str = mailbox
        """The mailbox the message was delivered to (chosen by the server's mailbox rules;
        ``"default"`` when none matched)."""
        self.transcript: Transcript | None = None
        """The SMTP conversation that delivered this message (set by the server that received
        it; ``None`` for messages built by hand). It keeps growing until that session ends."""
        self._extra_defects: list[str] = []
        self._address_cache: dict[str, list[Address]] = {}

    # ----------------------------------------------------------------- parsing

    @cached_property
    def email(self) -> EmailMessage:
        """The message parsed by :mod:`email` with ``policy.default``.

        If the MIME structure is too deep for the standard library's recursive parser, this holds
        the headers only (with the body as a single text payload) and :attr:`defects` says so.
        """
        try:
            parsed = _PARSER.parsebytes(self.raw)
        except RecursionError:
            self._extra_defects.append(
                "MIME structure nested too deeply to parse; only the headers were parsed"
            )
            parsed = _HEADERS_PARSER.parsebytes(self.raw, headersonly=True)
            self._flat = True
        except Exception as exc:  # pragma: no cover - the parser is documented not to raise
            self._extra_defects.append(f"parser failed: {type(exc).__name__}: {exc}")
            parsed = EmailMessage(policy=policy.default)
            self._flat = True
        assert isinstance(parsed, EmailMessage)
        return parsed

    _flat = False

    @cached_property
    def headers(self) -> Headers:
        """All headers, decoded, in order; see :class:`Headers`."""
        items: list[tuple[str, str]] = []
        bad_8bit = False
        for name, value in self.email.raw_items():
            text, bad = _to_text(_FOLD.sub("", str(value)))
            bad_8bit = bad_8bit or bad
            items.append((name, _decode_words(text, self._extra_defects, f"the {name} header")))
        if bad_8bit:
            self._extra_defects.append("8-bit header bytes that are not UTF-8, read as Latin-1")
        return Headers(items)

    @property
    def subject(self) -> str:
        """The decoded subject (``""`` if there is none)."""
        return self.headers.get("subject", "")

    def _addresses(self, *names: str) -> list[Address]:
        out: list[Address] = []
        for name in names:
            out.extend(self._header_addresses(name))
        return out

    def _header_addresses(self, name: str) -> list[Address]:
        """The mailboxes of every *name* header, parsed once (``bcc`` reuses ``to``/``cc``)."""
        cached = self._address_cache.get(name)
        if cached is not None:
            return cached
        values = self.headers.get_all(name)
        out: list[Address] = []
        if values:
            try:
                out = _parse_addresses(tuple(values))
            except Exception as exc:  # stdlib bugs on hostile input must not escape
                self._extra_defects.append(f"unparsable {name} header: {type(exc).__name__}")
        self._address_cache[name] = out
        return out

    @cached_property
    def from_(self) -> Address | None:
        """The first ``From:`` mailbox."""
        found = self._addresses("from")
        return found[0] if found else None

    @cached_property
    def to(self) -> list[Address]:
        """The ``To:`` mailboxes."""
        return self._addresses("to")

    @cached_property
    def cc(self) -> list[Address]:
        """The ``Cc:`` mailboxes."""
        return self._addresses("cc")

    @cached_property
    def reply_to(self) -> list[Address]:
        """The ``Reply-To:`` mailboxes."""
        return self._addresses("reply-to")

    @cached_property
    def bcc(self) -> list[str]:
        """Envelope recipients named in no ``To:``, ``Cc:`` or ``Bcc:`` header: the blind copies."""
        seen = {a.address.lower() for a in self._addresses("to", "cc", "bcc")}
        return [r for r in self.rcpt_tos if r.lower() not in seen]

    @property
    def recipients(self) -> tuple[str, ...]:
        """The envelope recipients (same as :attr:`rcpt_tos`)."""
        return self.rcpt_tos

    @property
    def message_id(self) -> str | None:
        value = self.headers.get("message-id")
        return value.strip() if value else None

    @cached_property
    def date(self) -> _dt.datetime | None:
        """The ``Date:`` header as a datetime, or ``None`` if absent or unparsable."""
        value = self.headers.get("date")
        if not value:
            return None
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            self._extra_defects.append(f"unparsable Date header: {value!r}")
            return None

    @property
    def size(self) -> int:
        return len(self.raw)

    # ----------------------------------------------------------------- bodies

    def _leaves(self) -> list[_StdMessage]:
        msg = self.email
        if self._flat:
            return [msg]
        try:
            return [p for p in msg.walk() if not p.is_multipart()]
        except RecursionError:
            self._extra_defects.append("MIME structure nested too deeply to walk")
            return []

    def _content(self, part: _StdMessage) -> str:
        if self._flat:
            _, _, body = self.raw.partition(b"\r\n\r\n")
            if not body and b"\n\n" in self.raw:
                body = self.raw.partition(b"\n\n")[2]
            return _unix_newlines(body.decode("utf-8", "replace"))
        try:
            content = part.get_content()  # type: ignore[attr-defined]
        except (LookupError, UnicodeError) as exc:
            self._extra_defects.append(
                f"undecodable {part.get_content_type()} part ({type(exc).__name__}: {exc}); "
                "read as UTF-8 with replacement characters"
            )
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                return ""
            return _unix_newlines(payload.decode("utf-8", "replace"))
        except Exception as exc:
            self._extra_defects.append(f"unreadable part: {type(exc).__name__}: {exc}")
            return ""
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        elif not isinstance(content, str):
            content = str(content)
        return _unix_newlines(content)

    @cached_property
    def _bodies(self) -> tuple[_StdMessage | None, _StdMessage | None]:
        msg = self.email
        if self._flat:
            kind = msg.get_content_type() if msg.get("content-type") else "text/plain"
            if kind == "text/html":
                return None, msg
            return msg, None
        try:
            text = msg.get_body(preferencelist=("plain",))
            html_part = msg.get_body(preferencelist=("html",))
        except RecursionError:
            self._extra_defects.append("MIME structure nested too deeply to find the body")
            return None, None
        except Exception as exc:
            self._extra_defects.append(f"body lookup failed: {type(exc).__name__}: {exc}")
            return None, None
        return text, html_part

    @cached_property
    def text(self) -> str | None:
        """The ``text/plain`` body, decoded, with ``\n`` line ends; ``None`` if there is none."""
        part = self._bodies[0]
        return None if part is None else self._content(part)

    @cached_property
    def html(self) -> str | None:
        """The ``text/html`` body, decoded, with ``\n`` line ends; ``None`` if there is none."""
        part = self._bodies[1]
        return None if part is None else self._content(part)

    @property
    def body(self) -> str:
        """The text body if there is one, else the HTML body, else ``""``."""
        if self.text is not None:
            return self.text
        return self.html or ""

    @cached_property
    def attachments(self) -> list[Attachment]:
        """Every leaf part that is not the text or HTML body, inline images included."""
        bodies = {id(p) for p in self._bodies if p is not None}
        out: list[Attachment] = []
        if self._flat:
            return out
        for index, part in enumerate(self._leaves()):
            if id(part) in bodies:
                continue
            out.append(self._attachment(index, part))
        return out

    def _attachment(self, index: int, part: _StdMessage) -> Attachment:
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        try:
            payload = part.get_payload(decode=True)
        except Exception as exc:
            self._extra_defects.append(f"undecodable attachment payload: {type(exc).__name__}")
            payload = None
        if not isinstance(payload, bytes):
            raw_payload = part.get_payload()
            payload = (
                raw_payload.encode("utf-8", "surrogateescape")
                if isinstance(raw_payload, str)
                else b""
            )
        cid = part.get("content-id")
        content_id = str(cid).strip().strip("<>").strip() if cid else None
        try:
            disposition = part.get_content_disposition()
        except Exception:
            disposition = None
        return Attachment(
            index=index,
            filename=_decode_words(str(filename)) if filename else None,
            content_type=part.get_content_type(),
            content_id=content_id or None,
            disposition=disposition,
            content=payload,
        )

    def part(self, index: int) -> Attachment:
        """The leaf part at *index* (as numbered by :attr:`Attachment.index`)."""
        leaves = self._leaves()
        if not 0 <= index < len(leaves):
            raise IndexError(f"message {self.id} has {len(leaves)} parts, not {index + 1}")
        return self._attachment(index, leaves[index])

    @cached_property
    def links(self) -> list[str]:
        """URLs found in the bodies: ``href`` targets in HTML, bare URLs in text, in order."""
        found: list[str] = []
        if self.html:
            parser = _Links()
            try:
                parser.feed(self.html)
                parser.close()
            except Exception:  # HTMLParser is lenient, but never let a body break this
                pass
            found.extend(parser.links)
        if self.text:
            found.extend(_bare_urls(self.text))
        return list(dict.fromkeys(found))

    @property
    def defects(self) -> list[str]:
        """What is wrong with the message, as human-readable strings (``[]`` if nothing)."""
        out: list[str] = []
        msg = self.email
        parts: list[Any]
        try:
            parts = [msg] if self._flat else list(msg.walk())
        except RecursionError:
            parts = [msg]
        # Touch the lazy accessors so that their fallbacks are reported too.
        _ = (self.headers, self.date, self.text, self.html, self.attachments)
        for part in parts:
            for defect in getattr(part, "defects", ()):
                text = type(defect).__name__
                detail = str(defect)
                out.append(f"{text}: {detail}" if detail else text)
        if not self.raw.strip():
            out.append("empty message")
        elif not msg.keys():
            out.append("no headers")
        out.extend(self._extra_defects)
        return list(dict.fromkeys(out))

    # ----------------------------------------------------------------- helpers

    def as_text(self) -> str:
        """The raw message as text (UTF-8, undecodable bytes replaced), line ends untouched."""
        return self.raw.decode("utf-8", "replace")

    def summary(self) -> str:
        """One line for diagnostics: time, sender, recipients, subject."""
        when = self.received_at.strftime("%H:%M:%S.%f")[:-3]
        rcpts = ", ".join(self.rcpt_tos[:3]) + (
            f" (+{len(self.rcpt_tos) - 3})" if len(self.rcpt_tos) > 3 else ""
        )
        return f"[{when}] from <{self.mail_from}> to {rcpts} subject {self.subject!r}"

    def __repr__(self) -> str:
        return (
            f"<Message {self.id[:8]} from={self.mail_from!r} to={list(self.rcpt_tos)!r} "
            f"subject={self.subject!r} size={self.size}>"
        )
