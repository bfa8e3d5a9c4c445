"""The search-string language: one meaning as a predicate and as SQL."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage

import pytest

from smtpmock import Message
from smtpmock._search import SearchError, parse
from smtpmock.store import SQLiteStore


def _mail(
    subject: str,
    *,
    sender: str = "alice@example.com",
    to: str = "bob@example.com",
    cc: str | None = None,
    rcpts: tuple[str, ...] = (),
    body: str = "hello",
    html: str | None = None,
    attach: str | None = None,
    inline: bool = False,
    days_ago: int = 0,
) -> Message:
    msg = EmailMessage(policy=policy.SMTPUTF8)
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.com>"
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    if attach:
        msg.add_attachment(
            b"%PDF-1.4 data",
            maintype="application",
            subtype="pdf",
            filename=attach,
            disposition="inline" if inline else "attachment",
        )
    when = _dt.datetime(2024, 6, 15, tzinfo=_dt.timezone.utc) - _dt.timedelta(days=days_ago)
    return Message(msg.as_bytes(), mail_from=sender, rcpt_tos=[to, *rcpts], received_at=when)


CORPUS = [
    _mail("Your order 100", to="Bob Smith <bob@example.com>", body="Thanks for order 100"),
    _mail("Invoice", sender="billing@shop.test", attach="invoice-100.pdf", days_ago=10),
    _mail("Newsletter", html="<p>Big <b>sale</b> today</p>", rcpts=("hidden@example.com",)),
    _mail("Réunion demain", to="chloé@exemple.fr", cc="dave@example.com", body="À demain"),
    _mail("Logo", attach="logo.png", inline=True, body="see logo"),
    _mail("50% off_now", body="percent % and under_score"),
]

QUERIES = {
    "": [0, 1, 2, 3, 4, 5],
    "order": [0],
    "ORDER 100": [0],
    '"order 100"': [0],
    "-order": [1, 2, 3, 4, 5],
    "!order": [1, 2, 3, 4, 5],
    "from:billing": [1],
    "from:shop.test": [1],
    "to:bob smith": [0],  # two terms: to:bob AND free text smith
    'to:"bob smith"': [0],
    "to:chloé": [3],
    "cc:dave": [3],
    "bcc:hidden": [2],
    "addressed:hidden": [2],
    "addressed:dave@example.com": [3],
    "subject:réunion": [3],
    "subject:RÉUNION": [3],
    "message-id:invoice@": [1],
    "has:attachment": [1],
    "-has:attachment": [0, 2, 3, 4, 5],
    "has:inline": [4],
    "sale": [2],
    "invoice-100.pdf": [1],
    "50%": [5],
    "_": [5],
    "f_now": [5],
    "%": [5],
    "before:2024-06-10": [1],
    "after:2024-06-10": [0, 2, 3, 4, 5],
    "after:2024-06-15T00:00:00Z": [0, 2, 3, 4, 5],
    "larger:100000": [],
    "smaller:100000": [0, 1, 2, 3, 4, 5],
    "larger:0.1KB smaller:1MiB": [0, 1, 2, 3, 4, 5],
    "demain to:chloé -cc:nobody": [3],
}


@pytest.fixture(scope="module")
def store() -> Iterator[SQLiteStore]:
    store = SQLiteStore()
    for message in CORPUS:
        store.add(message)
    yield store
    store.close()


@pytest.mark.parametrize(("query", "expected"), list(QUERIES.items()))
def test_predicate_and_sql_agree(store: SQLiteStore, query: str, expected: list[int]) -> None:
    search = parse(query)
    want = [CORPUS[i].id for i in expected]
    assert [m.id for m in CORPUS if search.matches(m)] == want
    assert [m.id for m in search.criteria().filter(CORPUS)] == want
    assert [m.id for m in store.search(search)] == want
    found = store.page(search, limit=None, newest_first=False)
    total, summaries = found.total, found.summaries
    assert total == len(want)
    assert [s.id for s in summaries] == want


def test_size_filter_counts_bytes(store: SQLiteStore) -> None:
    size = CORPUS[0].size
    assert [m.id for m in store.search(parse(f"larger:{size - 1} smaller:{size + 1}"))] == [
        CORPUS[0].id
    ]


@pytest.mark.parametrize(
    ("query", "hint"),
    [
        ("is:starred", "is:read, is:unread, is:tagged"),
        ('tag:""', "tag: needs a tag name"),
        ("colour:red", "unknown search filter"),
        ("has:wings", "has:attachment"),
        ("larger:big", "not a size"),
        ("after:yesterday", "not a date"),
        ('"unterminated', "unterminated quote"),
        ("x " * 100, "more than 64"),
    ],
)
def test_bad_queries_are_refused_with_a_reason(query: str, hint: str) -> None:
    with pytest.raises(SearchError, match=hint):
        parse(query)


def test_criteria_describes_terms() -> None:
    crit = parse('subject:"big sale" -from:bob').criteria()
    assert 'subject:"big sale"' in crit.describe()
    assert "-from:bob" in crit.describe()
