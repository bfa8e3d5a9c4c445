"""The search-string language (Mailpit's syntax), compiled to a predicate *and* to SQL.

One query string such as ``to:bob@example.com subject:"your order" -has:attachment invoice``
means the same thing everywhere: :func:`parse` turns it into a :class:`Search`, which gives a
:class:`~smtpmock.Criteria` (a predicate over :class:`~smtpmock.Message`, used in-process and by
the memory store) and a SQL ``WHERE`` clause over the columns of :func:`index_fields` (used by the
SQLite store). Both evaluate the same derived fields, computed from a message once by
:func:`index_fields`. Substring terms are turned into SQL by the store (:data:`TextSQL`), which
knows its indexes; :func:`tokens` is the one definition of a word that the store's word index
and its query planner share, and every substring term the planner cannot answer exactly from
the index is checked with ``instr`` against the same text Python's ``in`` reads.

Syntax: space-separated terms are ANDed; ``"quoted phrases"``; a leading ``-`` or ``!`` negates a
term. Filters (all case-insensitive substring matches unless said otherwise):

==================  ===================================================================
``from:``           ``From:`` header (name and address) and the envelope sender
``to:``             ``To:`` header and the envelope recipients
``cc:`` ``bcc:``    ``Cc:`` header; blind copies (envelope recipients in no header)
``reply-to:``       ``Reply-To:`` header
``addressed:``      any recipient: ``to:``, ``cc:`` and ``bcc:`` together
``subject:``        the decoded subject
``message-id:``     the ``Message-ID`` header
``has:attachment``  at least one attachment; ``has:inline``: at least one inline part
``larger:`` / ``smaller:``  size in bytes, with units ``B KB MB GB`` (1000) or ``KiB MiB GiB``
``after:`` / ``before:``    arrival time, ``YYYY-MM-DD`` or an ISO 8601 timestamp (UTC if naive)
``mailbox:``        the mailbox (exact name; see :meth:`smtpmock.store.Store.mailbox`)
anything else       free text over addresses, subject, bodies and attachment names

``is:read``       marked read (Mailpit's read state: :attr:`Message.read`); ``is:unread``
``tag:``           carries this tag (whole name, case-insensitive); ``is:tagged``: any tag
==================  ===================================================================

Read state and tags are not in the message's bytes: the store keeps them, so in SQL they are
turned into conditions by the store too (:data:`StateSQL`), and in Python they read
:attr:`Message.read` and :attr:`Message.tags`.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import MailboxNameError, SearchError
from ._message import Message
from ._query import Criteria

__all__ = [
    "DEFAULT_MAILBOX",
    "IndexFields",
    "Search",
    "SearchError",
    "StateSQL",
    "TextSQL",
    "check_mailbox_name",
    "index_fields",
    "parse",
    "tokens",
]


@dataclass(frozen=True)
class IndexFields:
    """What search needs from a message, computed once (lower-cased text fields)."""

    from_text: str
    to_text: str
    cc_text: str
    bcc_text: str
    reply_to_text: str
    subject: str
    message_id: str
    text: str
    attachments: int
    inline: int
    size: int
    received_at: float
    mailbox: str = "default"

    @property
    def addressed(self) -> str:
        return "\n".join((self.to_text, self.cc_text, self.bcc_text))

    @property
    def free_text(self) -> str:
        return "\n".join(
            (self.from_text, self.addressed, self.reply_to_text, self.subject, self.text)
        )


DEFAULT_MAILBOX = "default"
"""The mailbox of mail that no mailbox rule routes elsewhere."""

_MAILBOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_mailbox_name(name: object) -> str:
    """*name* if it is a valid mailbox name (1 to 64 of ``A-Z a-z 0-9 . _ -``, starting with a
    letter or digit); else :class:`~smtpmock.MailboxNameError`."""
    if not isinstance(name, str) or not _MAILBOX_NAME.fullmatch(name):
        shown = repr(name)[:80]
        raise MailboxNameError(
            f"invalid mailbox name {shown}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


# A word: a run of ASCII letters and digits and of any non-ASCII character. This is exactly what
# SQLite FTS5's ``ascii`` tokenizer calls a token, so the words Python finds in a text are the
# words the store's word index holds for it (the texts are lower-cased before both see them).
_WORD = re.compile(r"[0-9A-Za-z\u0080-\U0010ffff]+")


# For ASCII text the same words come four times faster from str.split(): every ASCII character
# that is not a letter or digit becomes a space. (Not for other text: str.split() also splits at
# non-ASCII spaces, which FTS5's ``ascii`` tokenizer keeps inside words.)
_ASCII_SEPARATORS = {c: " " for c in range(128) if not chr(c).isalnum()}


def tokens(text: str) -> list[str]:
    """The words of *text*, in order, as the store's word index sees them."""
    if text.isascii():
        return text.translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(text)


def index_fields(message: Message) -> IndexFields:
    """Derive the searchable fields of *message* (parses it once; never raises)."""

    def addrs(items: list[tuple[str, str]] | list[str]) -> str:
        out = []
        for item in items:
            out.append(" ".join(item) if isinstance(item, tuple) else item)
        return "\n".join(out).lower()

    from_items: list[str] = [message.mail_from]
    if message.from_ is not None:
        from_items.append(f"{message.from_.name} {message.from_.address}")
    to_items = [f"{a.name} {a.address}" for a in message.to] + list(message.rcpt_tos)
    attachments = message.attachments
    return IndexFields(
        from_text=addrs(from_items),
        to_text=addrs(to_items),
        cc_text=addrs([f"{a.name} {a.address}" for a in message.cc]),
        bcc_text=addrs(message.bcc),
        reply_to_text=addrs([f"{a.name} {a.address}" for a in message.reply_to]),
        subject=message.subject.lower(),
        message_id=(message.message_id or "").lower(),
        text=message._search_text,  # already lower-cased
        attachments=sum(1 for a in attachments if not a.is_inline),
        inline=sum(1 for a in attachments if a.is_inline),
        size=message.size,
        received_at=message.received_at.timestamp(),
        mailbox=message.mailbox,
    )


# ----------------------------------------------------------------------------- parsing

_TOKEN = re.compile(r'\s*([-!]?)(?:([a-zA-Z-]+):)?(?:"((?:[^"\\]|\\.)*)"|(\S+))')
_TEXT_FIELDS = {
    "from": "from_text",
    "to": "to_text",
    "cc": "cc_text",
    "bcc": "bcc_text",
    "reply-to": "reply_to_text",
    "subject": "subject",
    "message-id": "message_id",
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


@dataclass(frozen=True)
class Term:
    """One parsed term: ``field`` (``""`` for free text), its value and whether it is negated."""

    field: str
    value: str
    negated: bool

    def __str__(self) -> str:
        sign = "-" if self.negated else ""
        value = f'"{self.value}"' if (" " in self.value or not self.value) else self.value
        return f"{sign}{self.field}:{value}" if self.field else f"{sign}{value}"


def _size(value: str) -> int:
    match = _SIZE.match(value.strip())
    if not match:
        raise SearchError(f"not a size: {value!r} (use e.g. 1500, 250KB, 1.5MB, 2MiB)")
    number, unit = match.groups()
    unit = (unit or "").lower()
    factor = 1024 ** "kmg".index(unit[0]) * 1024 if "i" in unit else _UNITS[unit[:1]]
    size = float(number) * factor
    if not size < 2**63:  # SQLite's integers (and inf, nan)
        raise SearchError(f"size out of range: {value!r}")
    return int(size)


def _date(value: str) -> float:
    try:
        when = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SearchError(f"not a date: {value!r} (use YYYY-MM-DD or ISO 8601)") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


TextSQL = Callable[[str, str], tuple[str, list[object]]]
"""``text_sql(field, needle) -> (sql, params)``: SQL for "the lower-cased *needle* is a substring
of *field*", where *field* is a column of :class:`IndexFields` (``from_text``, ``subject``, ...),
``"addressed"`` (``to_text``, ``cc_text`` and ``bcc_text`` joined by newlines) or ``"free"``
(:attr:`IndexFields.free_text`). Supplied by the store that runs the query."""


StateSQL = Callable[[str, str], tuple[str, list[object]]]
"""``state_sql(kind, value) -> (sql, params)``: SQL for a read-state or tag term, *kind* one of
``"read"``, ``"unread"``, ``"tagged"`` and ``"tag"`` (*value*: the tag name as written; tags
match whole and case-insensitively). Supplied by the store, which keeps that state."""

_FieldTest = Callable[[IndexFields], bool]
_STATE_KINDS = {"read", "unread", "tagged"}


def _state_test(kind: str, value: str) -> Callable[[Message], bool]:
    if kind == "read":
        return lambda m: m.read
    if kind == "unread":
        return lambda m: not m.read
    if kind == "tagged":
        return lambda m: bool(m.tags)
    wanted = value.casefold()
    return lambda m: any(t.casefold() == wanted for t in m.tags)


def _never(_fields: IndexFields) -> bool:  # pragma: no cover - state terms test messages
    raise SearchError("read state and tags are tested on a message, not on its index fields")


@dataclass(frozen=True)
class _Compiled:
    test: _FieldTest
    sql: str = ""
    params: tuple[object, ...] = ()
    text: tuple[str, str] | None = None  # (field, lower-cased needle): SQL from the store
    state: tuple[str, str] | None = None  # (kind, value): read state or tags, from the store


def _compile(term: Term) -> _Compiled:
    field, value = term.field.lower(), term.value
    if field in _TEXT_FIELDS:
        column = _TEXT_FIELDS[field]
        needle = value.lower()
        return _Compiled(lambda f: needle in getattr(f, column), text=(column, needle))
    if field == "addressed":
        needle = value.lower()
        return _Compiled(lambda f: needle in f.addressed, text=("addressed", needle))
    if field == "has":
        kind = value.lower()
        if kind in ("attachment", "attachments"):
            return _Compiled(lambda f: f.attachments > 0, "attachments > 0", ())
        if kind == "inline":
            return _Compiled(lambda f: f.inline > 0, "inline > 0", ())
        raise SearchError(f"unknown has:{value} (known: has:attachment, has:inline)")
    if field in ("larger", "smaller"):
        limit = _size(value)
        if field == "larger":
            return _Compiled(lambda f: f.size > limit, "size > ?", (limit,))
        return _Compiled(lambda f: f.size < limit, "size < ?", (limit,))
    if field in ("after", "before"):
        when = _date(value)
        if field == "after":
            return _Compiled(lambda f: f.received_at >= when, "received_at >= ?", (when,))
        return _Compiled(lambda f: f.received_at < when, "received_at < ?", (when,))
    if field == "mailbox":
        name = check_mailbox_name(value)
        # Exact (names are case-sensitive); over the stores' ``mailbox`` column.
        return _Compiled(lambda f: f.mailbox == name, "mailbox = ?", (name,))
    if field == "is":
        kind = value.lower()
        if kind not in _STATE_KINDS:
            raise SearchError(f"unknown is:{value} (known: is:read, is:unread, is:tagged)")
        return _Compiled(_never, state=(kind, ""))
    if field == "tag":
        if not value.strip():
            raise SearchError("tag: needs a tag name")
        return _Compiled(_never, state=("tag", value.strip()))
    if field:
        known = ", ".join(
            [
                *_TEXT_FIELDS,
                *("addressed", "has", "larger", "smaller", "after", "before", "mailbox"),
                *("is", "tag"),
            ]
        )
        raise SearchError(f"unknown search filter {field}: (known: {known})")
    needle = value.lower()
    return _Compiled(lambda f: needle in f.free_text, text=("free", needle))


@dataclass(frozen=True)
class Search:
    """A parsed search string: the conjunction of its terms."""

    query: str
    terms: tuple[Term, ...]

    def __bool__(self) -> bool:
        return bool(self.terms)

    def _compiled(self) -> list[tuple[Term, _Compiled]]:
        return [(t, _compile(t)) for t in self.terms]

    def test_fields(self, fields: IndexFields) -> bool:
        """Whether already-derived fields match every term (a search with read-state or tag
        terms is tested with :meth:`matches`, on the message)."""
        return all(c.test(fields) != t.negated for t, c in self._compiled())

    def matches(self, message: Message) -> bool:
        compiled = self._compiled()
        for term, c in compiled:
            if c.state is not None and _state_test(*c.state)(message) == term.negated:
                return False
        fields = [(t, c) for t, c in compiled if c.state is None]
        if not fields:
            return True
        found = index_fields(message)
        return all(c.test(found) != t.negated for t, c in fields)

    def criteria(self) -> Criteria:
        """This search as a :class:`~smtpmock.Criteria` (one predicate per term)."""
        predicates = []
        for term, compiled in self._compiled():

            def predicate(m: Message, _c: _Compiled = compiled, _neg: bool = term.negated) -> bool:
                if _c.state is not None:
                    return _state_test(*_c.state)(m) != _neg
                return _c.test(index_fields(m)) != _neg

            predicate.__name__ = str(term)
            predicates.append(predicate)
        return Criteria(*predicates)

    def sql(self, text_sql: TextSQL, state_sql: StateSQL | None = None) -> tuple[str, list[object]]:
        """A SQL condition over the SQLite store's tables, and its parameters; substring terms
        are turned into SQL by *text_sql*, read-state and tag terms by *state_sql* (without
        one, such a term is a :class:`SearchError`)."""
        if not self.terms:
            return "1", []
        clauses: list[str] = []
        params: list[object] = []
        for term, compiled in self._compiled():
            if compiled.state is not None:
                if state_sql is None:
                    raise SearchError(f"{term}: this store keeps no read state or tags")
                sql, term_params = state_sql(*compiled.state)
                params.extend(term_params)
            elif compiled.text is not None:
                sql, term_params = text_sql(*compiled.text)
                params.extend(term_params)
            else:
                sql = compiled.sql
                params.extend(compiled.params)
            clauses.append(f"NOT ({sql})" if term.negated else f"({sql})")
        return " AND ".join(clauses), params


def in_mailbox(search: Search | None, name: str) -> Search:
    """*search* (``None``: everything) narrowed to mailbox *name*."""
    if search is None or not search.terms:
        return Search(f"mailbox:{name}", (Term("mailbox", name, False),))
    return Search(f"{search.query} mailbox:{name}", (*search.terms, Term("mailbox", name, False)))


def unread_among(search: Search) -> Search:
    """*search* and ``is:unread`` (Mailpit's ``messages_unread`` of a search)."""
    return Search(f"{search.query} is:unread", (*search.terms, Term("is", "unread", False)))


def parse(query: str | None) -> Search:
    """Parse a search string; raise :class:`SearchError` when it cannot be understood.

    An empty or blank string is the empty search, which matches every message.
    """
    text = (query or "").strip()
    if len(text) > 4096:
        raise SearchError("search string longer than 4096 characters")
    terms: list[Term] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise SearchError(f"cannot parse the search string at {text[pos:]!r}")
        pos = match.end()
        sign, field, quoted, bare = match.groups()
        value = quoted.replace('\\"', '"').replace("\\\\", "\\") if quoted is not None else bare
        if bare is not None and bare.startswith('"'):
            raise SearchError(f"unterminated quote; cannot parse {bare!r}")
        if field and bare is not None and bare.startswith(":"):
            raise SearchError(f"cannot parse the search term {match.group(0).strip()!r}")
        terms.append(Term((field or "").lower(), value, bool(sign)))
        if len(terms) > 64:
            raise SearchError("more than 64 search terms")
    for term in terms:
        _compile(term)  # validate now: a bad filter is an error before any search runs
    return Search(text, tuple(terms))
