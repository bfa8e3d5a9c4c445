"""Mailboxes over HTTP: ``/m/{mailbox}/...`` scopes every route (smtpmock's, Mailpit's and
MailHog's), ``X-Smtpmock-Mailbox`` does the same, ``GET /api/v1/mailboxes``; ``Client(url,
mailbox=...)``; and per-mailbox tokens, tried against every route of the app (iterated, so a new
route cannot be forgotten), on every store backend."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from smtpmock import Client, SMTPMock
from smtpmock._http import ApiSettings, create_app, wrap
from tests.conftest import StoreFactory
from tests.mail import send
from tests.served import Served

TOKEN_A, TOKEN_B, ADMIN = "token-of-a-1234", "token-of-b-5678", "admin-9999"


@contextmanager
def _http_server(mock: SMTPMock, settings: ApiSettings) -> Iterator[tuple[object, str]]:
    """The HTTP API of *mock* served by uvicorn in a thread, on a port of its own."""
    import uvicorn

    app = create_app(mock, settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(wrap(app), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _routes(app: object) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves."""
    out = []
    for route in app.routes:  # type: ignore[attr-defined]
        methods = getattr(route, "methods", None) or {"GET"}
        path = getattr(route, "path", None)
        if path is None:
            continue
        out += [(m, path) for m in sorted(methods) if m not in ("HEAD", "OPTIONS")]
    return out


def _fill(path: str, message_id: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name in ("id", "ID"):
            return message_id
        if name in ("index", "part", "partID"):
            return "0"
        return "x"

    return re.sub(r"\{(\w+)(?::[^}]*)?\}", value, path)


def test_scoped_api_and_client_over_the_cli(tmp_path: Path) -> None:
    """serve --mailbox-rule plus-tag: mail lands in its mailbox; each prefix sees its own."""
    with Served("--mailbox-rule", "plus-tag", "--db", str(tmp_path / "m.db")) as served:
        for box in ("ci-1", "ci-2", "ci-1"):
            send(served.smtp_host, served.smtp_port, to=[f"app+{box}@x.test"], subject=box)
        send(served.smtp_host, served.smtp_port, to=["plain@x.test"], subject="plain")
        one = Client(served.url, mailbox="ci-1")
        two = Client(served.url, mailbox="ci-2")
        everything = Client(served.url)
        try:
            assert [m.subject for m in one.wait_for(2, timeout=30)] == ["ci-1", "ci-1"]
            assert [m.subject for m in two.wait_for(1, timeout=30)] == ["ci-2"]
            everything.wait_for(4, timeout=30)
            assert everything.mailboxes() == {"ci-1": 2, "ci-2": 1, "default": 1}
            assert one.mailboxes() == {"ci-1": 2}
            assert len(one) == 2
            assert len(everything) == 4
            with httpx.Client(base_url=served.url, timeout=30) as http:
                listing = http.get("/m/ci-1/api/v1/messages").json()
                assert listing["total"] == 2
                assert {m["Subject"] for m in listing["messages"]} == {"ci-1"}
                by_header = http.get(
                    "/api/v1/search",
                    params={"query": "subject:ci"},
                    headers={"X-Smtpmock-Mailbox": "ci-2"},
                ).json()
                assert [m["Subject"] for m in by_header["messages"]] == ["ci-2"]
                # Mailpit's and MailHog's routes too, with the prefix as their base URL
                assert http.get("/m/ci-2/api/v1/info").json()["Messages"] == 1
                assert http.get("/m/ci-2/api/v2/messages").json()["total"] == 1
                # a message of another mailbox is not there
                other = listing["messages"][0]["ID"]
                assert http.get(f"/m/ci-2/api/v1/message/{other}").status_code == 404
                assert http.get(f"/m/ci-2/api/v1/message/{other}/raw").status_code == 404
                # bad names: 400 with the reason
                assert (
                    http.get("/m/a%2Fb/api/v1/messages").status_code == 404
                )  # mailbox a, no route
                for bad in ("%2e%2e", "-x", "a" * 65, "a%00", "a%20b", "%C3%A9"):
                    response = http.get(f"/m/{bad}/api/v1/messages")
                    assert response.status_code == 400, bad
                    assert "mailbox name" in response.text
                bad_header = http.get("/api/v1/messages", headers={"X-Smtpmock-Mailbox": "a b"})
                assert bad_header.status_code == 400
                # delete-all in one mailbox touches no other (Mailpit's delete without body)
                assert http.delete("/m/ci-1/api/v1/messages").status_code == 200
            assert len(one) == 0
            assert everything.mailboxes() == {"ci-2": 1, "default": 1}
            two.reset()
            assert everything.mailboxes() == {"default": 1}
        finally:
            for client in (one, two, everything):
                client.close()


def test_events_of_one_mailbox_only() -> None:
    with (
        SMTPMock(mailbox_rules=["plus-tag"]) as mock,
        _http_server(mock, ApiSettings()) as (_, url),
        httpx.Client(base_url=url, timeout=30) as http,
        http.stream("GET", "/m/ci-1/api/v1/events") as stream,
    ):
        assert stream.status_code == 200
        lines = (line for line in stream.iter_lines() if line)
        assert next(lines) == ": connected"
        send(mock.host, mock.port, to=["a+ci-2@x.test"], subject="not yours")
        send(mock.host, mock.port, to=["a+ci-1@x.test"], subject="yours")
        assert next(lines) == "event: added"
        assert json.loads(next(lines).removeprefix("data: "))["Subject"] == "yours"


def test_tokens_over_the_cli_from_env_and_files(tmp_path: Path) -> None:
    admin_file = tmp_path / "admin"
    admin_file.write_text(ADMIN + "\n")
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"# mailbox=token\nci-b={TOKEN_B}\n")
    with Served(
        "--mailbox-rule",
        "plus-tag",
        "--mailbox-token",
        f"ci-a={TOKEN_A}",
        "--mailbox-tokens-file",
        str(tokens_file),
        env={"SMTPMOCK_ADMIN_TOKEN_FILE": str(admin_file)},
    ) as served:
        send(served.smtp_host, served.smtp_port, to=["x+ci-a@x.test"], subject="for a")
        send(served.smtp_host, served.smtp_port, to=["x+ci-b@x.test"], subject="for b")
        admin = Client(served.url, token=ADMIN)
        a = Client(served.url, mailbox="ci-a", token=TOKEN_A)
        a_on_b = Client(served.url, mailbox="ci-b", token=TOKEN_A)
        try:
            admin.wait_for(2, timeout=30)
            assert admin.mailboxes() == {"ci-a": 1, "ci-b": 1}
            assert [m.subject for m in a.messages] == ["for a"]
            assert a.mailboxes() == {"ci-a": 1}
            with pytest.raises(Exception, match="404"):
                _ = a_on_b.messages
            with httpx.Client(base_url=served.url, timeout=30) as http:
                assert http.get("/livez").status_code == 200
                assert http.get("/api/v1/messages").status_code == 401
                assert http.get("/m/ci-a/api/v1/messages").status_code == 401
                wrong = {"Authorization": "Bearer nope"}
                assert http.get("/m/ci-a/api/v1/messages", headers=wrong).status_code == 401
        finally:
            for client in (admin, a, a_on_b):
                client.close()


def test_a_token_for_one_mailbox_opens_nothing_of_another(store_factory: StoreFactory) -> None:
    """Every route of the app, with mailbox A's token, aimed at mailbox B (prefix and header),
    at the unscoped server, and at A with B's message id: never B's data, B left intact."""
    settings = ApiSettings(mailbox_tokens={"ci-a": TOKEN_A, "ci-b": TOKEN_B}, admin_tokens=(ADMIN,))
    store = store_factory()
    with (
        SMTPMock(store=store, mailbox_rules=["plus-tag"]) as mock,
        _http_server(mock, settings) as (app, url),
    ):
        send(mock.host, mock.port, to=["x+ci-a@x.test"], subject="visible-to-a")
        send(mock.host, mock.port, to=["x+ci-b@x.test"], subject="secret-of-b")
        mock.wait_for(2, timeout=30)
        [b_message] = store.mailbox("ci-b").messages()
        b_id = b_message.id
        a_auth = {"Authorization": f"Bearer {TOKEN_A}"}
        routes = _routes(app)
        assert len(routes) > 30  # smtpmock's, Mailpit's, MailHog's, the UI's, mailboxes
        with httpx.Client(base_url=url, timeout=30) as http:
            # positive control: A's token opens A
            own = http.get("/m/ci-a/api/v1/messages", headers=a_auth)
            assert own.status_code == 200
            assert [m["Subject"] for m in own.json()["messages"]] == ["visible-to-a"]
            for method, template in routes:
                path = _fill(template, b_id)
                params = {"timeout": "0", "count": "1"}
                # A's token on mailbox B: 404, whether B exists or not
                for target, headers in (
                    (f"/m/ci-b{path}", a_auth),
                    (path, {**a_auth, "X-Smtpmock-Mailbox": "ci-b"}),
                    (f"/m/no-such{path}", a_auth),
                ):
                    response = http.request(method, target, headers=headers, params=params)
                    assert response.status_code == 404, (method, target, response.text)
                    assert "secret-of-b" not in response.text
                # A's token on the unscoped server: 403 (but health, and its own listing)
                response = http.request(method, path, headers=a_auth, params=params)
                if path in ("/livez", "/readyz"):
                    assert response.status_code in (200, 503)
                elif path == "/api/v1/mailboxes":
                    # (the count may be 0: A's own deletes ran earlier in this loop)
                    assert [m["Name"] for m in response.json()["mailboxes"]] == ["ci-a"]
                else:
                    assert response.status_code == 403, (method, path, response.text)
                # no token at all: 401
                if path not in ("/livez", "/readyz"):
                    assert http.request(method, path, params=params).status_code == 401
                # A's own mailbox with B's message id: nothing of B
                if path == "/api/v1/events":
                    continue  # a stream: tested in test_events_of_one_mailbox_only
                response = http.request(method, f"/m/ci-a{path}", headers=a_auth, params=params)
                assert "secret-of-b" not in response.text, (method, path)
                if b_id in path:
                    assert response.status_code in (400, 404, 405, 422), (method, path)
        # B is intact, and A's token changed nothing server-wide
        assert [m.id for m in store.mailbox("ci-b").messages()] == [b_id]
        assert mock.faults.rules == []
        with httpx.Client(base_url=url, timeout=30) as http:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            names = http.get("/api/v1/mailboxes", headers=admin).json()["mailboxes"]
            assert "ci-b" in [m["Name"] for m in names]  # (A emptied its own mailbox above)
            assert http.get(f"/m/ci-b/api/v1/message/{b_id}", headers=admin).status_code == 200
            b_auth = {"Authorization": f"Bearer {TOKEN_B}"}
            assert http.get(f"/m/ci-b/api/v1/message/{b_id}/raw", headers=b_auth).status_code == 200


def test_a_mailbox_wait_ends_on_shutdown_and_errors_have_the_api_shape() -> None:
    """A wait under /m/{mailbox}/ is answered 503 at once when serve stops (the mailbox's app
    shares the root's shutdown); mailbox refusals are the API's JSON errors; the MCP tools
    (server-wide fault rules among them) are at the root only."""
    with Served("--mailbox-rule", "plus-tag") as served:
        with httpx.Client(base_url=served.url, timeout=30) as http:
            bad = http.get("/m/-x/api/v1/messages")
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/json"
            assert bad.json()["status"] == 400
            assert "mailbox name" in bad.json()["error"]
            assert http.get("/m/ci-1/mcp").status_code == 404
            assert http.get("/m/ci-1/mcp").json()["status"] == 404
            assert http.post("/mcp", json={}).status_code != 404  # there, at the root
        got: dict[str, httpx.Response] = {}
        sent = threading.Event()

        def wait() -> None:
            with httpx.Client(timeout=60) as http:
                sent.set()
                got["wait"] = http.get(
                    served.url + "/m/ci-1/api/v1/wait", params={"count": 3, "timeout": 60}
                )

        thread = threading.Thread(target=wait)
        thread.start()
        assert sent.wait(30)
        send(served.smtp_host, served.smtp_port, to=["app+ci-1@x.test"], subject="one")
        # answered once the message is in: the first wait (sent earlier) has counted it too
        httpx.get(served.url + "/m/ci-1/api/v1/wait", params={"timeout": 30}).raise_for_status()
        assert served.stop() == 0
        thread.join(30)
        answer = got["wait"]
        assert answer.status_code == 503
        body = answer.json()
        assert (body["Status"], body["Count"], body["Wanted"]) == ("shutdown", 1, 3)


def test_read_state_and_tags_over_a_mailbox_token_stay_in_the_mailbox(
    store_factory: StoreFactory,
) -> None:
    """Mailpit's read and tag routes under ``/m/ci-a`` with A's token: B's messages are never
    marked or tagged, even named by id, and the tag list and unread count are A's."""
    settings = ApiSettings(mailbox_tokens={"ci-a": TOKEN_A, "ci-b": TOKEN_B})
    store = store_factory()
    with (
        SMTPMock(store=store, mailbox_rules=["plus-tag"]) as mock,
        _http_server(mock, settings) as (_app, url),
    ):
        send(mock.host, mock.port, to=["x+ci-a@x.test"], subject="of-a")
        send(mock.host, mock.port, to=["x+ci-b@x.test"], subject="of-b")
        mock.wait_for(2, timeout=30)
        [a_id] = [m.id for m in store.mailbox("ci-a").messages()]
        [b_id] = [m.id for m in store.mailbox("ci-b").messages()]
        store.set_tags([b_id], ["b-tag"])
        a_auth = {"Authorization": f"Bearer {TOKEN_A}"}
        with httpx.Client(base_url=f"{url}/m/ci-a", headers=a_auth, timeout=30) as http:
            put = http.put("/api/v1/messages", json={"IDs": [a_id, b_id], "Read": True})
            assert put.status_code == 200, put.text
            put = http.put("/api/v1/tags", json={"IDs": [a_id, b_id], "Tags": ["a-tag"]})
            assert put.status_code == 200, put.text
            assert http.get("/api/v1/tags").json() == ["a-tag"]
            assert http.put("/api/v1/tags/b-tag", json={"Name": "taken"}).status_code == 404
            assert http.delete("/api/v1/tags/b-tag").status_code == 200
            assert http.put("/api/v1/messages", json={"Read": True}).status_code == 200
            listing = http.get("/api/v1/messages").json()
            assert listing["unread"] == 0
            assert [(m["ID"], m["Read"], m["Tags"]) for m in listing["messages"]] == [
                (a_id, True, ["a-tag"])
            ]
        b_message = store.get(b_id)
        assert b_message is not None
        assert (b_message.read, b_message.tags) == (False, ("b-tag",))
        assert store.mailbox("ci-b").unread_count() == 1
        assert store.tags() == ["a-tag", "b-tag"]
