"""One received message: the exact bytes, the SMTP envelope, and lazy, never-raising parsing.

The raw bytes are the truth. Everything else is derived from them on first access and cached.
No accessor raises on malformed input: what the parser could not make sense of is reported in
:attr:`Message.defects` and the accessor returns its best effort (``None``, ``""`` or ``[]``).

Why headers are decoded here rather than through ``email.policy.default``'s header objects:

* ``policy.default`` turns raw 8-bit header bytes (SMTPUTF8 mail) into U+FFFD; we decode
  them as UTF-8, which is what RFC 6532 says they are.
* Its address-list parser is quadratic: 20,000 addresses in ``To:`` take ~8 s. We use
  :func:`email.utils.getaddresses`, which takes ~0.2 s for the same header.
* :func:`email.header.decode_header` raises on a malformed encoded word (``HeaderParseError``,
  ``CharsetError``) and its regular expression is quadratic on a line of unterminated words;
  :func:`_decode_words` is our own linear decoder that keeps what it cannot decode as sent.

The MIME structure still comes from :mod:`email`'s parser, through :class:`_SafePolicy`: the
structure headers it reads (``Content-Type``, ``Content-Disposition``...) are read as text
from at most :data:`_STRUCTURED_LIMIT` characters (the stdlib's parameter parser is quadratic
on a long header), and not parsed into ``policy.default``'s header trees that nothing reads
(a new class and ~100 us per header, several times per part: 6,000 parts took seconds).

Every cost here is linear in the size of the message (``benchmarks/pathological.py`` measures
the shapes that used not to be), and what is cut to keep it so is named in :attr:`defects`.
"""

from __future__ import annotations

import binascii
import codecs
import datetime as _dt
import functools
import html as _html
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.feedparser import BufferedSubFile, FeedParser  # type: ignore[attr-defined]
from email.message import EmailMessage
from email.message import Message as _StdMessage
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

if TYPE_CHECKING:
    from ._extract import VerificationCode
    from ._transcript import Transcript

__all__ = ["Address", "Attachment", "Headers", "Message", "new_id"]


# ----------------------------------------------------------------------------- the safe policy

_STRUCTURED_LIMIT = 2048
"""Characters of a MIME structure header that :mod:`email` reads (more only in a hostile
message: RFC 5322 lines stop at 998). Its parameter parser is quadratic, and called several
times per part: bounded, one part's headers cost at most a few milliseconds."""
_LINESEP = re.compile(r"[\r\n]")


@functools.lru_cache(maxsize=512)  # thread-safe; header objects are immutable
def _parsed_header(name: str, value: str) -> Any:
    """*value* as :mod:`email`'s header object for *name*, or the text itself if that fails."""
    try:
        return policy.default.header_factory(name, value)
    except Exception:  # a stdlib parser bug on hostile input must not escape
        return value


class _MIMEHeader(str):
    """A MIME structure header as the parser and :class:`Message` read it: its text.

    :mod:`email.message` reads ``Content-Type``, ``Content-Disposition`` and their parameters
    from the text (``_splitparam``, ``_parseparam``), except :meth:`EmailMessage.is_attachment`,
    which asks for :attr:`content_disposition`. ``policy.default`` parses these headers into a
    tree first (~100 us each, several times per part) that nothing reads; here any other
    attribute (``params``, ``maintype``...) is parsed on first use, for code that asks.
    """

    name: str

    @property
    def content_disposition(self) -> str:
        return self.partition(";")[0].strip().lower()

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") or attribute == "name":
            raise AttributeError(attribute)
        return getattr(_parsed_header(self.name, str(self)), attribute)


_MIME_HEADERS = frozenset(
    ("content-type", "content-disposition", "content-transfer-encoding", "content-id")
)


class _SafePolicy(EmailPolicy):
    """``policy.default``, with :meth:`header_fetch_parse` bounded, cheap and never raising.

    The MIME structure headers are read as text (:class:`_MIMEHeader`) from at most
    :data:`_STRUCTURED_LIMIT` characters; any other header (asked for only by code using
    :attr:`Message.email`) is ``policy.default``'s header object, or its text if the stdlib's
    parser fails on it. One instance per message: it remembers what it made (the stdlib asks
    for each part's ``Content-Type`` several times, and a message may have thousands of parts).
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        object.__setattr__(self, "_seen", {})  # policies are read-only once built

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):
            return value
        seen: dict[tuple[str, str], Any] = self._seen  # type: ignore[attr-defined]
        key = (name, value)
        found = seen.get(key)
        if found is None:
            text = _LINESEP.sub("", value)
            if name.lower() in _MIME_HEADERS:
                if len(text) > _STRUCTURED_LIMIT:
                    cut = text.rfind(";", 0, _STRUCTURED_LIMIT)
                    text = text[: cut if cut > 0 else _STRUCTURED_LIMIT]
                found = _MIMEHeader(text)
                found.name = name
            else:
                found = _parsed_header(name, text)
            seen[key] = found
        return found


MAX_MIME_DEPTH = 64
"""Multiparts nested deeper than this are not parsed: the message is read as its headers and
one text body, and :attr:`Message.defects` says so (real mail nests a handful deep)."""


MAX_MIME_PARTS = 20_000
"""Messages with more MIME parts than this are not split into parts: the message is read as
its headers and one text body, and :attr:`Message.defects` says so. Each part costs the
parser about 2 kB of Python objects, whatever its size: 300,000 parts of 100 bytes (a 32 MB
message) took 550 MB."""


class _TooDeep(Exception):
    pass


class _TooMany(Exception):
    pass


# The end of the expression FeedParser builds for a boundary line, after the boundary itself.
_BOUNDARY_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _separator_of(matcher: Any) -> str | None:
    """The ``--boundary`` a FeedParser end-of-part matcher looks for, or ``None`` if it is
    not one (then it is asked about every line, as the stdlib does)."""
    code = getattr(matcher, "__code__", None)
    if code is not None and "separator" in code.co_freevars and matcher.__closure__:
        # Python 3.13+: a closure over the separator (``line.startswith(separator)`` first).
        value = matcher.__closure__[code.co_freevars.index("separator")].cell_contents
        return value if isinstance(value, str) and matcher(value + "\n") else None
    pattern = getattr(matcher, "__self__", None)  # up to 3.12: a compiled expression's match
    if not isinstance(pattern, re.Pattern) or not isinstance(pattern.pattern, str):
        return None
    source = pattern.pattern
    if not (source.startswith("(?P<sep>") and source.endswith(_BOUNDARY_TAIL)):
        return None
    separator = _UNESCAPE.sub(r"\1", source[len("(?P<sep>") : -len(_BOUNDARY_TAIL)])
    return separator if pattern.match(separator + "\n") else None


class _BoundaryInput(BufferedSubFile):  # type: ignore[misc]  # typeshed omits it
    """FeedParser's line buffer, with end-of-part checks that cost the same at any depth.

    The stdlib asks every matcher on its stack about every line: lines x depth, so a few
    hundred nested multiparts over megabytes of text took minutes. A line can only end a part
    if it is ``--`` + a boundary on the stack (+ ``--``, blanks, line end): only such a line is
    put to the matchers, with the stdlib's own code, so what ends a part is unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self._separators: dict[str, int] = {}
        self._keys: list[str | None] = []
        self._opaque = 0  # matchers that are not boundaries: every line goes to the stack

    def push_eof_matcher(self, pred: Any) -> None:
        if len(self._keys) >= MAX_MIME_DEPTH:
            raise _TooDeep
        key = _separator_of(pred)
        self._keys.append(key)
        if key is None:
            self._opaque += 1
        else:
            self._separators[key] = self._separators.get(key, 0) + 1
        super().push_eof_matcher(pred)

    def pop_eof_matcher(self) -> Any:
        key = self._keys.pop()
        if key is None:
            self._opaque -= 1
        elif self._separators[key] == 1:
            del self._separators[key]
        else:
            self._separators[key] -= 1
        return super().pop_eof_matcher()

    def readline(self) -> Any:
        lines = self._lines
        if self._opaque or not lines:
            return super().readline()
        line = lines.popleft()
        if line[:2] == "--":
            candidate = line.rstrip("\r\n").rstrip(" \t")
            if candidate in self._separators or (
                candidate[-2:] == "--" and candidate[:-2] in self._separators
            ):
                lines.appendleft(line)
                return super().readline()
        return line


_FEED_CHUNK = 1 << 16


def _parse(raw: bytes, *, headersonly: bool = False) -> Any:
    """What ``BytesParser(policy=...).parsebytes(raw)`` gives, with the bounded policy and
    line buffer (:class:`_SafePolicy`, :class:`_BoundaryInput`). The bytes are decoded and fed
    a chunk at a time (ASCII with surrogate escapes decodes byte by byte, so any cut is safe):
    the stdlib decodes the whole message into one more string first."""
    made = 0

    def part(policy: Any) -> EmailMessage:
        nonlocal made
        made += 1
        if made > MAX_MIME_PARTS + 1:  # the parser makes one to try the factory
            raise _TooMany
        return EmailMessage(policy=policy)

    parser = FeedParser(part, policy=_SafePolicy())  # type: ignore[arg-type]
    parser._input = _BoundaryInput()  # type: ignore[attr-defined]
    if headersonly:
        parser._set_headersonly()  # type: ignore[attr-defined]
    view = memoryview(raw)
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(str(view[start : start + _FEED_CHUNK], "ascii", "surrogateescape"))
    return parser.close()


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


_T = TypeVar("_T")


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

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str | _T) -> str | _T: ...
    def get(self, name: str, default: object = None) -> object:
        # Mapping.get through __getitem__ raises and catches a KeyError for each absent header
        # (a message without a Subject: three look-ups per message indexed).
        values = self._index.get(name.lower())
        return values[0] if values else default

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
        spelled: dict[str, str] = {}  # lower-cased name -> first spelling (linear in the count)
        for name, value in self._items:
            key = spelled.setdefault(name.lower(), name)
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


_CLEAN_BASE64 = re.compile(rb"[A-Za-z0-9+/\r\n]*=*[\r\n]*")


def _decoded_payload(part: _StdMessage) -> Any:
    """``part.get_payload(decode=True)``, without the stdlib's copies for clean base64.

    The stdlib splits a base64 payload into lines and joins them before decoding: about four
    times the part's size at once. Base64 with nothing but the alphabet and line ends (what
    every mailer writes) is decoded here directly, to the same bytes; anything else (where the
    stdlib records defects) goes to the stdlib.
    """
    payload = part.get_payload()
    if (
        isinstance(payload, str)
        and str(part.get("content-transfer-encoding", "")).strip().lower() == "base64"
    ):
        try:
            data = payload.encode("ascii")
            if _CLEAN_BASE64.fullmatch(data):
                return binascii.a2b_base64(data)
        except (UnicodeEncodeError, binascii.Error):
            pass
    return part.get_payload(decode=True)


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


# An RFC 2047 encoded word: =?charset?B|Q?text?= (charset may carry an RFC 2231 *language).
# Linear: neither part can contain "?", so a failed attempt scans only to the next "?", and
# every "?" is scanned by at most three attempts.
_ENCODED_WORD = re.compile(r"=\?([^?]*)\?([bBqQ])\?([^?]*)\?=")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*")
_BETWEEN_WORDS = re.compile(r"[ \t\r\n]*")
# Codecs that decode bytes but are no charset, or whose decoder is not linear (punycode).
_NOT_CHARSETS = frozenset(("idna", "punycode", "raw-unicode-escape", "unicode-escape"))


@functools.lru_cache(maxsize=1)
def _codec_names() -> frozenset[str]:
    """Every name the standard library's codec search knows (aliases and modules).

    Names are checked here before :func:`codecs.lookup`, which remembers every name it did not
    find: a stream of invented charset names would otherwise grow that cache without end.
    """
    import encodings
    import encodings.aliases
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    return frozenset({*encodings.aliases.aliases, *encodings.aliases.aliases.values(), *modules})


@functools.lru_cache(maxsize=256)
def _charset_codec(charset: str) -> str | None:
    """The Python codec of a MIME charset name, or ``None`` if it names none we decode with."""
    import encodings

    name = charset.partition("*")[0].strip().lower()
    if not name or not name.isascii() or len(name) > 64:
        return None
    normal = encodings.normalize_encoding(name)
    if normal not in _codec_names() and normal.replace(".", "_") not in _codec_names():
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if info.name in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The bytes an encoded word's text stands for, or ``None`` if they cannot be decoded."""
    data = text.encode("utf-8", "surrogateescape")
    try:
        if encoding in "bB":
            data = b"".join(data.split()).rstrip(b"=")
            if len(data) % 4 == 1 or not _BASE64.fullmatch(data):
                return None
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        return binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return None


def _decode_words(value: str, defects: list[str] | None = None, where: str = "") -> str:
    """Decode the RFC 2047 encoded words of a header value; never raises, linear in its length.

    A word that cannot be decoded (an unknown or non-ASCII charset, broken base64) is kept as
    sent, and *defects* (if given) says so, naming *where* the value came from. Bytes that are
    not valid in their charset are replaced by U+FFFD (and said too). Adjacent words in one
    charset are decoded together (a character may be split across two words) and the
    whitespace between encoded words is dropped, as RFC 2047 says.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    problems: list[str] = []
    pending: list[bytes] = []  # bytes of adjacent words in one charset, decoded together
    pending_codec = ""
    pos = 0

    def flush() -> None:
        if pending:
            data = b"".join(pending)
            try:
                out.append(data.decode(pending_codec))
            except UnicodeDecodeError:
                out.append(data.decode(pending_codec, "replace"))
                problems.append(f"bytes not valid {pending_codec} replaced")
            except Exception as exc:  # a codec's own failure: keep the bytes readable
                out.append(data.decode("latin-1"))
                problems.append(f"{pending_codec} failed ({type(exc).__name__}), read as Latin-1")
            pending.clear()

    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        charset, encoding, text = match.groups()
        codec = _charset_codec(charset)
        data = _word_bytes(encoding, text) if codec is not None else None
        if not (data is not None and pending and _BETWEEN_WORDS.fullmatch(gap)):
            flush()
            out.append(gap)
        if codec is None or data is None:
            flush()
            out.append(match.group(0))
            problems.append(
                f"unknown charset {charset[:40]!r}" if codec is None else f"bad {encoding} encoding"
            )
        else:
            if pending and codec != pending_codec:
                flush()
            pending_codec = codec
            pending.append(data)
        pos = match.end()
    flush()
    out.append(value[pos:])
    if problems and defects is not None:
        defects.append(
            f"undecodable encoded word in {where or 'a header'} "
            f"({'; '.join(dict.fromkeys(problems))}); kept as sent"
        )
    return "".join(out)


# ----------------------------------------------------------------------------- HTML, linearly

# One piece of markup, found by a single forward scan. No alternative can fail once it has
# started (every closing delimiter is optional at the end of the text), so the engine never
# backtracks over what it read and every piece costs its length: an unclosed tag or comment
# runs to the end of the text, as in a browser. (The stdlib's ``html.parser`` rescans an unclosed
# tag at every ``<`` that follows: quadratic, CVE-2025-6069.)
_MARKUP = re.compile(
    r"""<!--.*?(?:-->|\Z)"""  # a comment
    r"""|<([A-Za-z][^\s/>]*)((?:[^>"']+|"[^"]*"?|'[^']*'?)*)>?"""  # a start tag: name, attributes
    r"""|<[/!?][^>]*>?""",  # an end tag, a declaration, a processing instruction
    re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""([^\s/>"'=]+)(?:\s*=\s*("[^"]*"?|'[^']*'?|[^\s>]*))?""")
_LINK_TAGS = frozenset(("a", "area"))
_SCAN_CHECK = 1024  # pieces of markup between two looks at the clock
LINK_TIME_LIMIT = 2.0
"""Seconds of link extraction per message; what is left after it is not read (and
:attr:`Message.defects` says so). Extraction is linear (about 20 MB/s), so only messages of
tens of megabytes get near it."""
SEARCH_TEXT_LIMIT = 16 * 1024 * 1024
"""Characters of body text per message that search reads (:func:`smtpmock._search.index_fields`);
text beyond it is not searchable, and :attr:`Message.defects` says so."""


def _hrefs(attributes: str) -> list[str]:
    """The ``href`` values among a tag's attributes, entities decoded (as ``html.parser``)."""
    out = []
    for match in _ATTRIBUTE.finditer(attributes):
        if match.group(1).lower() == "href" and match.group(2):
            value = match.group(2)
            if value[:1] in "\"'":
                value = value[1:-1] if len(value) > 1 and value[-1] == value[0] else value[1:]
            value = _html.unescape(value).strip()
            if value:
                out.append(value)
    return out


def _html_links(html: str, deadline: float) -> tuple[list[str], bool]:
    """``href`` targets of ``<a>``/``<area>`` and URLs written in the text, in order.

    Returns the links and whether the scan stopped at *deadline* (a :func:`time.monotonic`).
    """
    links: list[str] = []
    pos = 0
    for count, match in enumerate(_MARKUP.finditer(html), 1):
        if match.start() > pos:
            links.extend(_text_urls(html[pos : match.start()]))
        name = match.group(1)
        if name is not None and name.lower() in _LINK_TAGS:
            links.extend(_hrefs(match.group(2)))
        pos = match.end()
        if count % _SCAN_CHECK == 0 and time.monotonic() > deadline:
            return links, True
    links.extend(_text_urls(html[pos:]))
    return links, False


def _text_urls(text: str) -> list[str]:
    return _bare_urls(_html.unescape(text) if "&" in text else text)


def _bare_urls(text: str) -> list[str]:
    return [m.group(0).rstrip(_URL_TRAILING) for m in _URL.finditer(text)]


def _longest_line(raw: bytes) -> int:
    """Octets of the longest line of *raw*, its line end (CRLF or LF) not counted."""
    if len(raw) <= 998:
        return 0
    return max(len(line.rstrip(b"\r")) for line in raw.split(b"\n"))


_TAG = re.compile(r"<[^>]*>")


def _html_text(html: str) -> str:
    """The text of an HTML body for search: every ``<...>`` replaced by a space, entities
    decoded. Linear: ``<[^>]*>`` alone is quadratic on a run of ``<`` with no ``>`` after them
    (each one scans to the end), so it only runs up to the last ``>``; the text after that has
    no tag to take out, and the result is what the expression gives on the whole text."""
    end = html.rfind(">") + 1
    if html.find("<", end) < 0:  # no "<" without a ">" after it: the expression is linear
        text = _TAG.sub(" ", html)
    else:
        text = _TAG.sub(" ", html[:end]) + html[end:]
    return _html.unescape(text) if "&" in text else text


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
        self.read: bool = False
        """Whether the message was marked read (Mailpit's read state: set through the HTTP API,
        never by smtpmock's own reads; the store keeps it)."""
        self.tags: tuple[str, ...] = ()
        """Mailpit-style tags set on the message through the HTTP API (the store keeps them)."""
        self._address_cache: dict[str, list[Address]] = {}  # an empty dict: not GC-tracked

    # ----------------------------------------------------------------- parsing

    @cached_property
    def _extra_defects(self) -> list[str]:
        """Defects found while reading the message, beside the parser's own.

        Made on first use, not in ``__init__``: a list is always tracked by the cyclic garbage
        collector, and the memory store keeps every message, so an empty list per message was
        one more object for every full collection to walk.
        """
        return []

    @cached_property
    def email(self) -> EmailMessage:
        """The message parsed by :mod:`email` with ``policy.default`` (made bounded: see the
        module's docstring; ``Content-*`` headers read from it are their text, with
        ``policy.default``'s attributes such as ``.params`` parsed on first use).

        If the MIME structure is nested deeper than :data:`MAX_MIME_DEPTH` (or too deep for the
        standard library's recursive parser), this holds the headers only (with the body as a
        single text payload) and :attr:`defects` says so.
        """
        try:
            parsed = _parse(self.raw)
        except (RecursionError, _TooDeep, _TooMany) as exc:
            self._extra_defects.append(
                f"more than {MAX_MIME_PARTS:,} MIME parts; only the headers were parsed"
                if isinstance(exc, _TooMany)
                else f"MIME structure nested too deeply to parse (the limit is {MAX_MIME_DEPTH}); "
                "only the headers were parsed"
            )
            parsed = _parse(self.raw, headersonly=True)
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
        return self._leaf_parts

    @cached_property
    def _leaf_parts(self) -> list[_StdMessage]:
        """The leaf parts, walked once (:meth:`part` is called once per part by the API)."""
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
            payload = _decoded_payload(part)
        except Exception as exc:
            self._extra_defects.append(f"undecodable attachment payload: {type(exc).__name__}")
            payload = None
        if not isinstance(payload, bytes):
            try:
                raw_payload = part.get_payload()
            except Exception:
                raw_payload = ""
            payload = (
                raw_payload.encode("utf-8", "surrogateescape")
                if isinstance(raw_payload, str)
                else b""
            )
        try:
            cid = part.get("content-id")
            content_id = str(cid).strip().strip("<>").strip() if cid else None
        except Exception:
            content_id = None
        try:
            disposition = part.get_content_disposition()
        except Exception:
            disposition = None
        try:
            content_type = part.get_content_type()
        except Exception:
            content_type = "application/octet-stream"
        return Attachment(
            index=index,
            filename=_decode_words(str(filename)) if filename else None,
            content_type=content_type,
            content_id=content_id or None,
            disposition=disposition,
            content=payload,
        )

    def part(self, index: int) -> Attachment:
        """The leaf part at *index* (as numbered by :attr:`Attachment.index`)."""
        leaves = self._leaves()
        if not 0 <= index < len(leaves):
            raise IndexError(f"message {self.id} has {len(leaves)} parts, not {index + 1}")
        known = self._attachments_by_index.get(index)
        return known if known is not None else self._attachment(index, leaves[index])

    @cached_property
    def _attachments_by_index(self) -> dict[int, Attachment]:
        return {a.index: a for a in self.attachments}

    @cached_property
    def links(self) -> list[str]:
        """URLs found in the bodies: ``href`` targets in HTML, bare URLs in text, in order.

        Linear in the size of the bodies, and bounded by :data:`LINK_TIME_LIMIT` seconds: a
        body not read to its end is named in :attr:`defects`.
        """
        found: list[str] = []
        deadline = time.monotonic() + LINK_TIME_LIMIT
        if self.html:
            links, cut = _html_links(self.html, deadline)
            found.extend(links)
            if cut:
                self._extra_defects.append(
                    f"links: the HTML body was read for {LINK_TIME_LIMIT:g} s, not to its end"
                )
        if self.text:
            found.extend(_bare_urls(self.text))
        return list(dict.fromkeys(found))

    @cached_property
    def verification_code(self) -> VerificationCode | None:
        """The one-time code the mail gives (subject, text, then HTML), with the phrase that
        introduced it; ``None`` when no code phrase introduces one, never a guess. Rules:
        :mod:`smtpmock._extract` and docs/mcp.md."""
        from ._extract import find_code  # its patterns compile on first use, not on import

        return find_code(self.subject, self.text, self.html)

    @cached_property
    def magic_link(self) -> str | None:
        """The link most likely to be the call to action (sign in, verify, confirm, reset,
        accept an invitation), never an unsubscribe, social or logo link; ``None`` if no link
        says so. Every link is in :attr:`links`."""
        from ._extract import find_magic_link

        return find_magic_link(self.text, self.html)

    @cached_property
    def _search_text(self) -> str:
        """The bodies as search reads them, lower-cased: the text body, then the HTML body's
        text (tags taken out, entities decoded), then attachment names; at most
        :data:`SEARCH_TEXT_LIMIT` characters (a cut is named in :attr:`defects`). Built with
        as few copies of a large body as it takes (one at a time beside the body)."""
        bodies = [self.text or ""]
        if self.html:
            bodies.append(_html_text(self.html))
        bodies.extend(a.filename for a in self.attachments if a.filename)
        text = "\n".join(bodies)
        del bodies
        if len(text) > SEARCH_TEXT_LIMIT:
            self._extra_defects.append(
                f"search reads the first {SEARCH_TEXT_LIMIT:,} characters of the bodies, "
                f"not all {len(text):,}"
            )
            text = text[:SEARCH_TEXT_LIMIT]
        return text.lower()

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
        _ = (self.from_, self.to, self.cc, self.reply_to, self.links, self._search_text)
        for part in parts:
            for defect in getattr(part, "defects", ()):
                text = type(defect).__name__
                detail = str(defect)
                out.append(f"{text}: {detail}" if detail else text)
            for name, value in part.raw_items():
                if len(value) > _STRUCTURED_LIMIT and name.lower() in _MIME_HEADERS:
                    out.append(
                        f"{name} header of {len(value):,} characters: only its first "
                        f"{_STRUCTURED_LIMIT:,} were read"
                    )
        if not self.raw.strip():
            out.append("empty message")
        elif not msg.keys():
            out.append("no headers")
        longest = _longest_line(self.raw)
        if longest > 998:
            out.append(f"a line of {longest} octets, over RFC 5321's 998 (4.5.3.1.6)")
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
