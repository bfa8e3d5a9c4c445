"""Mailpit's read state and tags over HTTP (issue 27), on ``smtpmock serve`` with each backend
(SQLite file, PostgreSQL), driven with httpx over real sockets: ``PUT /api/v1/messages``,
unread counts, ``Read``/``Tags`` in summaries and detail, ``GET /api/v1/message/{ID}`` marking
read while smtpmock's own reads do not, the tag routes, tag validation, the event stream, and
two instances on one PostgreSQL seeing each other's changes."""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smtpmock import Client

from .served import Served

pytest.importorskip("fastapi")


def _raw(subject: str, to: str = "bob@example.org") -> bytes:
    return f"From: ann@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    if request.param == "postgresql":
        location = str(request.getfixturevalue("pg_url"))
    else:
        location = str(tmp_path / "mail.db")
    with Served("--db", location) as process:
        yield process


@pytest.fixture
def api(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        yield http


def _deliver(served: Served, api: httpx.Client, *subjects: str) -> dict[str, str]:
    """Send one message per subject; ``{subject: id}`` once all are stored."""
    after = api.get("/api/v1/info").json()["LastSeq"]
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client:
        for subject in subjects:
            client.sendmail("ann@example.com", ["bob@example.org"], _raw(subject))
    params = {"count": len(subjects), "timeout": 30, "after": after}
    found = api.get("/api/v1/wait", params=params).json()["messages"]
    return {m["Subject"]: m["ID"] for m in found}


def _read(api: httpx.Client) -> dict[str, bool]:
    return {m["Subject"]: m["Read"] for m in api.get("/api/v1/messages").json()["messages"]}


def test_read_state_over_http(served: Served, api: httpx.Client) -> None:
    ids = _deliver(served, api, "one", "two", "three")
    listing = api.get("/api/v1/messages").json()
    assert (listing["total"], listing["unread"], listing["messages_unread"]) == (3, 3, 3)
    # smtpmock's own reads leave read state alone: the wait above, export, Client.
    assert api.get("/api/v1/export").status_code == 200
    with Client(served.url) as client:
        assert len(client.messages) == 3
    assert _read(api) == {"one": False, "two": False, "three": False}
    # Mailpit's read status, by ids.
    reply = api.put("/api/v1/messages", json={"IDs": [ids["one"]], "Read": True})
    assert (reply.status_code, reply.text) == (200, "ok")
    assert _read(api) == {"one": True, "two": False, "three": False}
    info = api.get("/api/v1/info").json()
    assert (info["Messages"], info["Unread"]) == (3, 2)
    # By search; and messages_unread counts within the search.
    assert api.put("/api/v1/messages", json={"Search": "subject:two", "Read": True}).text == "ok"
    found = api.get("/api/v1/search", params={"query": "subject:t"}).json()
    assert (found["messages_count"], found["messages_unread"], found["unread"]) == (2, 1, 1)
    assert [m["Subject"] for m in api.get("/api/v1/search?query=is:unread").json()["messages"]] == [
        "three"
    ]
    assert api.get("/api/v1/search", params={"query": "is:read"}).json()["messages_count"] == 2
    # Neither: every message; Read left out means unread (Mailpit's default).
    assert api.put("/api/v1/messages", json={}).text == "ok"
    assert _read(api) == {"one": False, "two": False, "three": False}
    assert api.put("/api/v1/messages", json={"Read": True}).text == "ok"
    assert api.get("/api/v1/messages").json()["unread"] == 0
    # PyPI mailpit-api-client sends a form.
    form = api.put("/api/v1/messages", data={"ids": [ids["two"]], "Read": "False"})
    assert form.status_code == 200
    assert _read(api)["two"] is False
    # GET /api/v1/message/{ID} marks read, as Mailpit does.
    detail = api.get(f"/api/v1/message/{ids['two']}").json()
    assert detail["Read"] is True
    assert _read(api)["two"] is True
    # Refused, and nothing changed.
    api.put("/api/v1/messages", json={"Read": False, "IDs": [ids["one"]]})
    for bad in (
        {"IDs": [ids["one"]], "Search": "subject:one", "Read": True},
        {"Read": "yes"},
        {"Search": "colour:red", "Read": True},
        [1, 2],
    ):
        assert api.put("/api/v1/messages", json=bad).status_code == 400
    assert api.put("/api/v1/messages", content=b"{not json").status_code == 400
    assert _read(api) == {"one": False, "two": True, "three": True}


def test_tags_over_http(served: Served, api: httpx.Client) -> None:
    ids = _deliver(served, api, "one", "two", "three")
    assert api.get("/api/v1/tags").json() == []
    body = {"IDs": [ids["one"], ids["two"]], "Tags": ["Invoices", "to do!", "invoices", "x:y"]}
    reply = api.put("/api/v1/tags", json=body)
    assert (reply.status_code, reply.text) == (200, "ok")
    assert api.get("/api/v1/tags").json() == ["Invoices", "to do", "x y"]
    summaries = {m["Subject"]: m["Tags"] for m in api.get("/api/v1/messages").json()["messages"]}
    assert summaries == {
        "one": ["Invoices", "to do", "x y"],
        "two": ["Invoices", "to do", "x y"],
        "three": [],
    }
    assert api.get("/api/v1/messages").json()["tags"] == ["Invoices", "to do", "x y"]
    assert api.get(f"/api/v1/message/{ids['one']}").json()["Tags"] == [
        "Invoices",
        "to do",
        "x y",
    ]
    search = api.get("/api/v1/search", params={"query": 'tag:"TO DO"'}).json()
    assert sorted(m["Subject"] for m in search["messages"]) == ["one", "two"]
    assert api.get("/api/v1/search", params={"query": "-is:tagged"}).json()["messages_count"] == 1
    info = api.get("/api/v1/info").json()
    assert info["Tags"] == {"Invoices": 2, "to do": 2, "x y": 2}
    # Rename (URL-encoded name, as the clients send it), delete, replace, remove.
    assert api.put("/api/v1/tags/to%20do", json={"Name": "Done"}).text == "ok"
    assert api.get("/api/v1/tags").json() == ["Done", "Invoices", "x y"]
    assert api.put("/api/v1/tags/nothing", json={"Name": "Done"}).status_code == 404
    assert api.put("/api/v1/tags/Done", json={"Name": "!!"}).status_code == 400
    assert api.put("/api/v1/tags/Done", json={"Nom": "x"}).status_code == 400
    assert api.delete("/api/v1/tags/x%20y").text == "ok"
    assert api.get("/api/v1/tags").json() == ["Done", "Invoices"]
    assert api.get("/api/v1/info").json()["Messages"] == 3  # deleting a tag keeps the mail
    assert api.put("/api/v1/tags", json={"IDs": [ids["one"]]}).text == "ok"  # no Tags: none
    summaries = {m["Subject"]: m["Tags"] for m in api.get("/api/v1/messages").json()["messages"]}
    assert summaries["one"] == []
    assert summaries["two"] == ["Done", "Invoices"]
    # Refused: too long, not lists; nothing changed.
    too_long = api.put("/api/v1/tags", json={"IDs": [ids["two"]], "Tags": ["x" * 101]})
    assert too_long.status_code == 400
    assert api.put("/api/v1/tags", json={"IDs": ids["two"], "Tags": ["a"]}).status_code == 400
    assert api.put("/api/v1/tags", content=b"nope").status_code == 400
    assert api.get("/api/v1/tags").json() == ["Done", "Invoices"]
    # Mailpit's send applies Tags.
    sent = api.post(
        "/api/v1/send",
        json={
            "From": {"Email": "a@example.com"},
            "To": [{"Email": "b@example.com"}],
            "Subject": "sent",
            "Text": "x",
            "Tags": ["From API"],
        },
    ).json()
    assert api.get(f"/api/v1/message/{sent['ID']}").json()["Tags"] == ["From API"]


def test_changes_from_a_foreign_origin_are_refused(served: Served, api: httpx.Client) -> None:
    ids = _deliver(served, api, "one")
    evil = {"Origin": "http://evil.example"}
    assert api.put("/api/v1/messages", json={"Read": True}, headers=evil).status_code == 403
    tags = {"IDs": [ids["one"]], "Tags": ["x"]}
    assert api.put("/api/v1/tags", json=tags, headers=evil).status_code == 403
    assert api.get("/api/v1/tags").json() == []
    assert _read(api) == {"one": False}


def test_event_stream_announces_updates(served: Served, api: httpx.Client) -> None:
    ids = _deliver(served, api, "one")
    with api.stream("GET", "/api/v1/events", headers={"Origin": served.url}) as stream:
        lines = (line for line in stream.iter_lines() if line)
        assert next(lines) == ": connected"
        api.put("/api/v1/tags", json={"IDs": [ids["one"]], "Tags": ["x"]})
        assert [next(lines), next(lines)] == ["event: updated", f'data: ["{ids["one"]}"]']
        api.put("/api/v1/messages", json={"Read": True})
        assert [next(lines), next(lines)] == ["event: updated", f'data: ["{ids["one"]}"]']


def test_two_instances_on_one_postgresql_see_each_others_changes(pg_url: str) -> None:
    with (
        Served("--db", pg_url) as a,
        Served("--db", pg_url) as b,
        httpx.Client(base_url=a.url, timeout=30) as api_a,
        httpx.Client(base_url=b.url, timeout=30) as api_b,
    ):
        ids = _deliver(a, api_a, "shared")
        with api_b.stream("GET", "/api/v1/events", headers={"Origin": b.url}) as stream:
            lines = (line for line in stream.iter_lines() if line)
            assert next(lines) == ": connected"
            seen: list[str] = []

            def read_update() -> None:
                # b may announce the message's arrival first (its change feed can deliver a's
                # "added" after the stream opened): skip those, keep the first update.
                for line in lines:
                    if line == "event: updated":
                        seen.extend([line, next(lines)])
                        return
                    if line == "event: added":
                        next(lines)  # its data line

            reader = threading.Thread(target=read_update)
            reader.start()
            api_a.put("/api/v1/tags", json={"IDs": [ids["shared"]], "Tags": ["Team"]})
            reader.join(30)
            assert seen == ["event: updated", f'data: ["{ids["shared"]}"]']
        assert api_b.get("/api/v1/tags").json() == ["Team"]
        api_b.put("/api/v1/messages", json={"IDs": [ids["shared"]], "Read": True})
        assert _read(api_a) == {"shared": True}
        assert json.loads(api_a.get("/api/v1/info").text)["Unread"] == 0
