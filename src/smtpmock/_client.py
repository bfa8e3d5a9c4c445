"""``Client``: the inspection API of :class:`~smtpmock.SMTPMock`, over the HTTP API of
``smtpmock serve``.

``messages``, ``filter``, ``wait_for``, ``assert_sent``, ``assert_not_sent``, ``capture`` and
``reset`` behave as they do in-process (they are :class:`~smtpmock.Mailbox`'s, over a store that
reads through HTTP). Messages are rebuilt from their exact bytes and envelope, so every parsed
accessor gives the same answer as in-process.

``wait_for`` uses the server-side long-poll (``GET /api/v1/wait``): criteria that can be said in
the search language narrow the server-side wait, and the exact criteria (regular expressions and
Python predicates included) are then applied here; the wait goes on server-side until enough
messages match exactly or the time is up. It never polls on a timer.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._errors import ConfigurationError, ServerError, WaitTimeout
from ._faults import FaultEvent, FaultRule
from ._http._wire import decode_export
from ._inspect import DEFAULT_TIMEOUT, Mailbox
from ._message import Message
from ._query import Criteria
from ._search import check_mailbox_name
from .store import Store

if TYPE_CHECKING:
    from ._search import Search

__all__ = ["Client", "RemoteFaults"]

_INSTALL_HINT = "smtpmock.Client needs httpx: pip install 'smtpmock[server]'"
_BARE = frozenset('"\\<>')


def _import_httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(_INSTALL_HINT) from exc
    return httpx


def _decode(entries: Iterable[dict[str, Any]]) -> list[Message]:
    return [decode_export(e) for e in entries]


class _RemoteStore(Store):
    """A read-through view of the server's store (no local copy, no local notification)."""

    def __init__(self, http: Any) -> None:
        super().__init__()
        self.http = http

    def _get(self, path: str, **params: Any) -> Any:
        response = _call(
            self.http, "GET", path, params={k: v for k, v in params.items() if v is not None}
        )
        _raise_for(response)
        return response.json()

    def _insert(self, message: Message) -> list[Message]:
        raise ConfigurationError("a Client cannot add messages: send them over SMTP")

    def messages(self) -> list[Message]:
        return self.since(0)

    def since(self, seq: int) -> list[Message]:
        return _decode(self._get("/api/v1/export", after=seq)["messages"])

    def get(self, id: str) -> Message | None:
        # Two small requests for one message (its envelope, then its bytes), never the mailbox.
        path = f"/api/v1/message/{quote(id, safe='')}"
        detail = _call(self.http, "GET", path)
        if detail.status_code == 404:
            return None
        _raise_for(detail)
        raw = _call(self.http, "GET", path + "/raw")
        if raw.status_code == 404:
            return None  # deleted between the two requests
        _raise_for(raw)
        data = detail.json()
        return decode_export(
            {
                "Envelope": data["Envelope"],
                "Raw": base64.b64encode(raw.content).decode(),
                "Transcript": data.get("Transcript"),
            }
        )

    def count(
        self, query: Search | None = None, *, after: int = 0, before: int | None = None
    ) -> int:
        """How many messages have a seq in (*after*, *before*], without reading them."""
        if query:
            # A parsed query has no wire form: count what matches from the messages themselves.
            return len(self.search(query, after=after, before=before))
        if after == 0 and before is None:
            return len(self)
        # A wait that cannot be met answers at once with its count; summaries only, no bytes.
        params: dict[str, Any] = {"count": 100_000, "timeout": 0, "after": after}
        if before is not None:
            params["before"] = before
        response = _call(self.http, "GET", "/api/v1/wait", params=params)
        body = _json_or_none(response)
        if body is None or "Count" not in body:
            _raise_for(response)
            raise ServerError(f"GET /api/v1/wait answered {response.text[:500]!r}")
        return int(body["Count"])

    def _remove(self, ids: Iterable[str]) -> list[str]:
        wanted = list(ids)
        if not wanted:
            return []
        present = {m.id for m in self.messages()}
        response = _call(self.http, "DELETE", "/api/v1/messages", json={"IDs": wanted})
        _raise_for(response)
        return [i for i in wanted if i in present]

    def _remove_all(self) -> int:
        response = _call(self.http, "DELETE", "/api/v1/messages", json={"All": True})
        _raise_for(response)
        return int(response.json()["deleted"])

    def __len__(self) -> int:
        return int(self._get("/api/v1/info")["Messages"])

    @property
    def last_seq(self) -> int:
        return int(self._get("/api/v1/info")["LastSeq"])


def _call(http: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request; a server that cannot be reached is a :class:`~smtpmock.ServerError`."""
    httpx = _import_httpx()
    try:
        return http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise ServerError(
            f"cannot reach the smtpmock server at {http.base_url}: {type(exc).__name__}: {exc}"
        ) from exc


def _json_or_none(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _raise_for(response: Any) -> None:
    if response.status_code >= 400:
        raise ServerError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )


def _term(field: str, value: Any) -> str | None:
    """A search term that every message matching ``field=value`` also matches, or ``None``."""
    if not isinstance(value, str) or not value or _BARE & set(value):
        return None
    return f'{field}:"{value}"' if field else f'"{value}"'


def server_query(criteria: dict[str, Any]) -> str:
    """The search string that narrows a server-side wait for keyword *criteria*.

    Only terms that are implied by the exact criteria are sent (a superset of the matches);
    the exact test is always made client-side afterwards.
    """
    terms: list[str | None] = []
    if "to" in criteria and " " not in str(criteria["to"]):
        terms.append(_term("addressed", criteria["to"]))
    for name in ("sender", "from_"):
        if name in criteria and " " not in str(criteria[name]):
            terms.append(_term("from", criteria[name]))
    if "subject" in criteria:
        terms.append(_term("subject", criteria["subject"]))
    if "text" in criteria:
        terms.append(_term("", criteria["text"]))
    if criteria.get("has_attachment") is True:
        terms.append("has:attachment")
    return " ".join(t for t in terms if t)


class RemoteFaults:
    """The fault rules of a remote server, with the core of :class:`~smtpmock.FaultSet`'s API.

    Rules go over the wire in their dict form, so a rule with a Python predicate cannot be sent.
    """

    def __init__(self, http: Any) -> None:
        self._http = http

    def _get(self) -> dict[str, Any]:
        response = _call(self._http, "GET", "/api/v1/faults")
        _raise_for(response)
        data: dict[str, Any] = response.json()
        return data

    def add(self, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        """Add a rule (a :class:`~smtpmock.FaultRule` or its dict form); return it as added."""
        data = rule.to_dict() if isinstance(rule, FaultRule) else dict(rule)
        response = _call(self._http, "POST", "/api/v1/faults", json=data)
        _raise_for(response)
        return FaultRule.from_dict(_without_counters(response.json()))

    def rule(self, stage: str | Iterable[str], **kwargs: Any) -> FaultRule:
        """``faults.rule("MAIL", code=451)`` is ``faults.add(FaultRule("MAIL", code=451))``."""
        return self.add(FaultRule(stage, **kwargs))

    def chaos(self, triggers: str) -> list[FaultRule]:
        """Add rules from Mailpit chaos triggers (``"Recipient:550:100"``)."""
        response = _call(self._http, "POST", "/api/v1/faults", json={"chaos": triggers})
        _raise_for(response)
        return [FaultRule.from_dict(_without_counters(r)) for r in response.json()["rules"]]

    def clear(self) -> None:
        """Remove every rule."""
        _raise_for(_call(self._http, "DELETE", "/api/v1/faults"))

    @property
    def rules(self) -> list[FaultRule]:
        """The rules now in force (counters as the server last saw them are not kept)."""
        return [FaultRule.from_dict(_without_counters(r)) for r in self._get()["rules"]]

    @property
    def log(self) -> list[FaultEvent]:
        """Every firing the server has logged, oldest first."""
        return [FaultEvent.from_dict(e) for e in self._get()["log"]]

    def __len__(self) -> int:
        return len(self._get()["rules"])


def _without_counters(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("seen", "fired")}


class Client(Mailbox):
    """The inspection API of a running ``smtpmock serve``, over HTTP.

    ::

        client = smtpmock.Client("http://127.0.0.1:8025")
        app.send_welcome(smtp_host=client.host, smtp_port=client.port)
        [message] = client.wait_for(1, to="bob@example.com")

    *auth* is ``(user, password)`` for a server started with ``--http-auth``. *mailbox*: work
    in that one mailbox of a shared server (every read, wait, delete and :meth:`reset`; the
    requests go to ``{url}/m/{mailbox}/...``); *token*: the bearer token of a server started
    with ``--mailbox-token`` / ``--admin-token``.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8025",
        *,
        auth: tuple[str, str] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        http_timeout: float = 30.0,
        mailbox: str | None = None,
        token: str | None = None,
    ) -> None:
        httpx = _import_httpx()
        self.server_url = url.rstrip("/")
        self.mailbox = None if mailbox is None else check_mailbox_name(mailbox)
        """The mailbox this client works in (``None``: the whole server)."""
        self.url = self.server_url if mailbox is None else f"{self.server_url}/m/{mailbox}"
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.Client(
            base_url=self.url, auth=auth, timeout=http_timeout, headers=headers
        )
        super().__init__(_RemoteStore(self._http), default_timeout=default_timeout)
        self._smtp: tuple[str, int] | None = None

    def mailboxes(self) -> dict[str, int]:
        """The server's mailboxes this client may see, with their message counts (a mailbox
        client sees its own)."""
        response = _call(self._http, "GET", "/api/v1/mailboxes")
        _raise_for(response)
        return {str(m["Name"]): int(m["Messages"]) for m in response.json()["mailboxes"]}

    @classmethod
    def _view(cls, parent: Client, floor: int) -> Client:
        view = cls.__new__(cls)
        Mailbox.__init__(view, parent._store, floor=floor, default_timeout=parent.default_timeout)
        view.url, view._http, view._smtp = parent.url, parent._http, parent._smtp
        view.server_url, view.mailbox = parent.server_url, parent.mailbox
        return view

    # ------------------------------------------------------------------ the server

    def _info(self) -> dict[str, Any]:
        response = _call(self._http, "GET", "/api/v1/info")
        _raise_for(response)
        info: dict[str, Any] = response.json()
        return info

    @property
    def host(self) -> str:
        """The SMTP host of the server (where to send mail)."""
        if self._smtp is None:
            smtp = self._info()["SMTP"]
            self._smtp = (str(smtp["Host"]), int(smtp["Port"]))
        return self._smtp[0]

    @property
    def port(self) -> int:
        """The SMTP port of the server."""
        _ = self.host
        assert self._smtp is not None
        return self._smtp[1]

    def reset(self) -> None:
        """Delete every message on the server (a mailbox client: every message of its mailbox)."""
        self._store.clear()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        """The number of messages, counted by the server (nothing is downloaded)."""
        store = self._store
        assert isinstance(store, _RemoteStore)
        return store.count(after=self._floor, before=self._ceiling)

    # ------------------------------------------------------------------ faults

    @property
    def faults(self) -> RemoteFaults:
        """The server's fault rules: ``client.faults.rule("RCPT", code=550)``, ``.add``,
        ``.chaos``, ``.clear``, ``.rules``, ``.log`` (as on ``SMTPMock.faults``)."""
        return RemoteFaults(self._http)

    # ------------------------------------------------------------------ waiting

    def wait_for(
        self,
        count: int = 1,
        timeout: float | None = None,
        **criteria: Any,
    ) -> list[Message]:
        """Block until *count* messages matching *criteria* are on the server; return them all.

        The same contract as :meth:`SMTPMock.wait_for <smtpmock.Mailbox.wait_for>`; the waiting
        happens server-side (a long-poll), woken by each arrival.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not ours
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        limit = self.default_timeout if timeout is None else timeout
        crit = Criteria.build(**criteria)
        query = server_query(criteria)
        deadline = time.monotonic() + limit
        # The first request does not wait: like the in-process wait, the criteria (predicates
        # included) see the messages already there before anything new arrives.
        wanted = count
        generation: int | None = None
        first = True
        while True:
            remaining = 0.0 if first else max(0.0, deadline - time.monotonic())
            params: dict[str, Any] = {
                "query": query,
                "count": wanted,
                "timeout": f"{min(remaining, 300.0):.3f}",
                "after": self._floor,
                "raw": "true",
            }
            if self._ceiling is not None:
                params["before"] = self._ceiling
            if generation is not None:
                params["generation"] = generation
            response = _call(
                self._http,
                "GET",
                "/api/v1/wait",
                params=params,
                timeout=remaining + self._http.timeout.read,
            )
            body = _json_or_none(response)
            if body is None or "messages" not in body:
                _raise_for(response)  # a wait answers JSON with its status, even on timeout
                raise ServerError(f"GET /api/v1/wait answered {response.text[:500]!r}")
            if body.get("Status") == "shutdown":  # the server is stopping: no more mail
                raise ServerError(str(body.get("error") or "the smtpmock server is shutting down"))
            # {"Status": "timeout"}: 409 from this version of serve, 408 from older ones.
            timed_out = body.get("Status") == "timeout" or response.status_code in (408, 409)
            if body.get("Generation") is not None:
                generation = int(body["Generation"])
            candidates = _decode(body["messages"])
            matched = crit.filter(candidates)
            if len(matched) >= count:
                return matched[:count]
            if not first and (timed_out or remaining <= 0):
                raise WaitTimeout(self._explain_timeout(count, limit, crit, matched))
            # Not enough exact matches among the candidates: wait for one more candidate.
            wanted = len(candidates) + 1
            first = False

    @contextmanager
    def capture(self) -> Iterator[Mailbox]:
        """Collect the messages that arrive on the server while the ``with`` block runs."""
        box = Client._view(self, self._store.last_seq)
        try:
            yield box
        finally:
            box._ceiling = self._store.last_seq

    def __repr__(self) -> str:
        return f"<smtpmock.Client {self.url}>"
