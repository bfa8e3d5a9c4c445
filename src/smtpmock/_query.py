"""The one criteria language: which messages a filter, wait or assertion is about.

A :class:`Criteria` is built from keyword arguments (``to=``, ``subject=``, ...) and is a
predicate over :class:`~smtpmock.Message`. It knows nothing of SMTP, HTTP or storage. It also
explains itself: :meth:`Criteria.mismatches` says which of its terms a message fails, which is how
failed waits list the closest messages first.

Matching rules, the same for every term:

* a ``str`` matches exactly, ignoring case for addresses and header names;
* an :class:`re.Pattern` is searched (``pattern.search``) anywhere in the value;
* for ``body`` and ``text``/``html``, a ``str`` is a substring (bodies are never compared whole).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from ._errors import ConfigurationError
from ._message import Address, Message

__all__ = ["Criteria", "Matcher", "Predicate"]

Matcher = Union[str, "re.Pattern[str]"]
Predicate = Callable[[Message], bool]

CRITERIA_NAMES = (
    "to",
    "sender",
    "from_",
    "subject",
    "body",
    "text",
    "html",
    "headers",
    "has_attachment",
    "attachment",
    "where",
)


def _describe(value: Any) -> str:
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/"
    return repr(value)


def _match_exact(matcher: Matcher, value: str, *, fold: bool) -> bool:
    if isinstance(matcher, re.Pattern):
        return matcher.search(value) is not None
    if fold:
        return matcher.casefold() == value.casefold()
    return matcher == value


def _match_sub(matcher: Matcher, value: str | None) -> bool:
    if value is None:
        return False
    if isinstance(matcher, re.Pattern):
        return matcher.search(value) is not None
    return matcher in value


def _check_matcher(name: str, value: object) -> None:
    __tracebackhide__ = True
    if not isinstance(value, (str, re.Pattern)):
        raise ConfigurationError(
            f"{name}= takes a str or a compiled re.Pattern, not {type(value).__name__}"
        )


@dataclass(frozen=True)
class Term:
    """One condition; ``describe`` is how it reads in a failure message."""

    describe: str
    test: Predicate = field(compare=False)


class Criteria:
    """A conjunction of terms. An empty ``Criteria`` matches every message."""

    def __init__(
        self,
        *predicates: Predicate,
        to: Matcher | None = None,
        sender: Matcher | None = None,
        from_: Matcher | None = None,
        subject: Matcher | None = None,
        body: Matcher | None = None,
        text: Matcher | None = None,
        html: Matcher | None = None,
        headers: Mapping[str, Matcher | bool] | None = None,
        has_attachment: bool | None = None,
        attachment: Matcher | None = None,
        where: Predicate | None = None,
    ) -> None:
        __tracebackhide__ = True  # a bad criterion is reported at the test's line
        terms: list[Term] = []
        if to is not None:
            _check_matcher("to", to)
            terms.append(Term(f"to={_describe(to)}", lambda m: _recipient(m, to)))
        if sender is not None:
            _check_matcher("sender", sender)
            terms.append(Term(f"sender={_describe(sender)}", lambda m: _sender(m, sender)))
        if from_ is not None:
            _check_matcher("from_", from_)
            terms.append(Term(f"from_={_describe(from_)}", lambda m: _from_header(m, from_)))
        if subject is not None:
            _check_matcher("subject", subject)
            terms.append(
                Term(
                    f"subject={_describe(subject)}",
                    lambda m: _match_exact(subject, m.subject, fold=False),
                )
            )
        if body is not None:
            _check_matcher("body", body)
            terms.append(
                Term(
                    f"body={_describe(body)}",
                    lambda m: _match_sub(body, m.text) or _match_sub(body, m.html),
                )
            )
        if text is not None:
            _check_matcher("text", text)
            terms.append(Term(f"text={_describe(text)}", lambda m: _match_sub(text, m.text)))
        if html is not None:
            _check_matcher("html", html)
            terms.append(Term(f"html={_describe(html)}", lambda m: _match_sub(html, m.html)))
        for name, want in (headers or {}).items():
            if not isinstance(want, bool):
                _check_matcher(f"headers[{name!r}]", want)
            terms.append(Term(f"headers[{name!r}]={_describe(want)}", _header_test(name, want)))
        if has_attachment is not None:
            terms.append(
                Term(
                    f"has_attachment={has_attachment!r}",
                    lambda m: bool(m.attachments) == has_attachment,
                )
            )
        if attachment is not None:
            _check_matcher("attachment", attachment)
            terms.append(
                Term(
                    f"attachment={_describe(attachment)}",
                    lambda m: any(
                        a.filename is not None and _match_exact(attachment, a.filename, fold=True)
                        for a in m.attachments
                    ),
                )
            )
        for pred in (*predicates, *((where,) if where is not None else ())):
            if not callable(pred):
                raise ConfigurationError(f"a predicate must be callable, not {pred!r}")
            name = getattr(pred, "__name__", None) or repr(pred)
            terms.append(Term(f"where={name}", pred))
        self.terms: tuple[Term, ...] = tuple(terms)

    @classmethod
    def build(cls, *predicates: Predicate, **criteria: Any) -> Criteria:
        """Build from keyword arguments, refusing unknown names with the list of known ones."""
        __tracebackhide__ = True  # a bad criterion is reported at the test's line
        unknown = sorted(set(criteria) - set(CRITERIA_NAMES))
        if unknown:
            raise ConfigurationError(
                f"unknown criteria {', '.join(unknown)}; known: {', '.join(CRITERIA_NAMES)}"
            )
        return cls(*predicates, **criteria)

    def __call__(self, message: Message) -> bool:
        return self.matches(message)

    def matches(self, message: Message) -> bool:
        return all(_safe(term, message) for term in self.terms)

    def mismatches(self, message: Message) -> list[str]:
        """The terms *message* fails, as they read in a failure message."""
        return [term.describe for term in self.terms if not _safe(term, message)]

    def filter(self, messages: Iterable[Message]) -> list[Message]:
        return [m for m in messages if self.matches(m)]

    def describe(self) -> str:
        return ", ".join(t.describe for t in self.terms) or "any message"

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __repr__(self) -> str:
        return f"Criteria({self.describe()})"


def _safe(term: Term, message: Message) -> bool:
    # A user's predicate may raise on an unexpected message; that is a mismatch for this
    # message, not a crash of the whole wait. Errors in our own matchers would be bugs, but
    # they too must not hide the messages that did arrive.
    try:
        return bool(term.test(message))
    except Exception:
        return False


def _forms(address: Address) -> list[str]:
    """The spellings a test may use for a header mailbox: bare, as formatted, name unquoted."""
    forms = [address.address, str(address)]
    if address.name:
        forms.append(f"{address.name} <{address.address}>")
    return forms


def _recipient(message: Message, matcher: Matcher) -> bool:
    candidates = list(message.rcpt_tos)
    for address in (*message.to, *message.cc):
        candidates.extend(_forms(address))
    return any(_match_exact(matcher, c, fold=True) for c in candidates)


def _sender(message: Message, matcher: Matcher) -> bool:
    candidates = [message.mail_from]
    if message.from_ is not None:
        candidates += _forms(message.from_)
    return any(_match_exact(matcher, c, fold=True) for c in candidates)


def _from_header(message: Message, matcher: Matcher) -> bool:
    if message.from_ is None:
        return False
    return any(_match_exact(matcher, c, fold=True) for c in _forms(message.from_))


def _header_test(name: str, want: Matcher | bool) -> Predicate:
    def test(message: Message) -> bool:
        values = message.headers.get_all(name)
        if isinstance(want, bool):
            return bool(values) == want
        return any(_match_exact(want, v, fold=False) for v in values)

    return test
