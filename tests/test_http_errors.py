"""Bad HTTP input against a real ``smtpmock serve``: one JSON error shape, never a 500.

Each case is what an outside fuzzing run found (integers past 2**63, JSON nested 100k deep,
fault rules with NaN or Infinity, bad regular expressions, bad throttles): the answer is a 4xx
``{"error": ..., "status": ...}`` and nothing is stored.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from smtpmock._version import smtpmock_version
from tests.served import Served

BIG = str(2**63)
HUGE = "9" * 400


@pytest.fixture
def api(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as http:
        http.request("DELETE", "/api/v1/messages", json={"All": True}).raise_for_status()
        http.delete("/api/v1/faults").raise_for_status()
        yield http
        http.delete("/api/v1/faults").raise_for_status()


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert set(body) == {"error", "status"}, body
    assert body["status"] == status
    assert isinstance(body["error"], str)
    assert body["error"]
    assert "Traceback" not in body["error"]
    text: str = body["error"]
    return text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/messages", {"start": BIG}),
        ("/api/v1/messages", {"start": HUGE}),
        ("/api/v1/messages", {"start": "-1"}),
        ("/api/v1/messages", {"limit": "0"}),
        ("/api/v1/messages", {"limit": "many"}),
        ("/api/v1/search", {"query": "x", "start": BIG}),
        ("/api/v1/search", {"query": f"larger:{BIG}"}),
        ("/api/v1/search", {"query": f"larger:{HUGE}"}),
        ("/api/v1/search", {"query": f"smaller:{HUGE}GB"}),
        ("/api/v1/search", {"query": "nosuchfilter:x"}),
        ("/api/v1/export", {"after": BIG}),
        ("/api/v1/export", {"before": BIG}),
        ("/api/v1/wait", {"after": BIG, "timeout": "0"}),
        ("/api/v1/wait", {"before": BIG, "timeout": "0"}),
        ("/api/v1/wait", {"generation": BIG, "timeout": "0"}),
        ("/api/v1/wait", {"timeout": "nan"}),
        ("/api/v1/wait", {"timeout": "inf"}),
        ("/api/v1/wait", {"count": "0"}),
        ("/api/v1/message/latest/part/" + BIG, {}),
    ],
)
def test_out_of_range_query_is_a_json_400(
    api: httpx.Client, path: str, params: dict[str, str]
) -> None:
    _error(api.get(path, params=params), 400)


def test_the_message_says_which_parameter(api: httpx.Client) -> None:
    text = _error(api.get("/api/v1/messages", params={"start": BIG}), 400)
    assert "start" in text
    assert "less than or equal to" in text


def test_deeply_nested_json_is_a_400(api: httpx.Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for method, path in (
        ("DELETE", "/api/v1/messages"),
        ("POST", "/api/v1/faults"),
        ("PUT", "/api/v1/chaos"),
    ):
        response = api.request(
            method, path, content=deep, headers={"Content-Type": "application/json"}
        )
        _error(response, 400)
    assert api.get("/livez").text == "ok"


def test_unknown_route_and_method_take_the_same_shape(api: httpx.Client) -> None:
    _error(api.get("/api/v1/nothing-here"), 404)
    _error(api.get("/api/v1/message/nope"), 404)
    _error(api.put("/api/v1/nothing/nope"), 404)
    _error(api.put("/api/v1/messages/nope"), 405)  # MailHog's GET/DELETE /api/v1/messages/{id}
    _error(api.request("PATCH", "/api/v1/faults"), 405)


def test_middleware_refusals_take_the_same_shape(served: Served, api: httpx.Client) -> None:
    _error(api.post("/api/v1/faults", content=b"x" * 2_000_000), 413)
    _error(api.get("/api/v1/messages", headers={"Host": "evil.example"}), 421)
    foreign = {"Origin": "http://evil.example"}
    _error(api.request("DELETE", "/api/v1/messages", json={"All": True}, headers=foreign), 403)


@pytest.mark.parametrize(
    "rule",
    [
        {"stage": "RCPT", "code": 451, "delay": "NaN"},
        {"stage": "RCPT", "code": 451, "delay": "Infinity"},
        {"stage": "RCPT", "code": 451, "delay": -1},
        {"stage": "RCPT", "code": 451, "delay": 1e300},
        {"stage": "RCPT", "code": 451, "probability": "NaN"},
        {"stage": "RCPT", "code": 451, "probability": 2},
        {"stage": "RCPT", "greylist": "Infinity", "code": 451},
        {"stage": "RCPT", "throttle": "Infinity"},
        {"stage": "RCPT", "throttle": 0},
        {"stage": "RCPT", "throttle": []},
        {"stage": "RCPT", "throttle": [1, 2, 3]},
        {"stage": "RCPT", "throttle": [5, 1]},
        {"stage": "RCPT", "code": 451, "recipient": {"regex": "("}},
        {"stage": "RCPT", "code": 451, "recipient": {"regex": "x", "flags": -1}},
        {"stage": "RCPT", "code": 250},
        {"stage": "RCPT", "code": 451, "times": 0},
        {"stage": "RCPT", "code": 451, "times": 2**63},
        {"stage": "RCPT", "code": 451, "seed": 2**64},
        {"stage": "NOSUCHSTAGE", "code": 451},
        {"stage": "RCPT"},
        {"code": 451},
        {"chaos": "Recipient:550:100", "code": 451},
        {"chaos": "Nonsense:1:2"},
        [],
        "rule",
        None,
    ],
)
def test_bad_fault_rule_is_a_400_and_nothing_is_stored(api: httpx.Client, rule: Any) -> None:
    # The raw JSON text carries NaN/Infinity as JavaScript writes them (Python's json too).
    import json

    content = json.dumps(rule).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity")
    response = api.post(
        "/api/v1/faults", content=content, headers={"Content-Type": "application/json"}
    )
    _error(response, 400)
    assert api.get("/api/v1/faults").json()["rules"] == []


def test_nan_rule_cannot_break_delivery(served: Served, api: httpx.Client) -> None:
    bad = '{"stage": "RCPT", "code": 451, "probability": NaN}'
    api.post("/api/v1/faults", content=bad, headers={"Content-Type": "application/json"})
    message = EmailMessage()
    message["Subject"] = "after a refused rule"
    message.set_content("x")
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
        assert smtp.send_message(message, "a@x.org", ["b@x.org"]) == {}
    found = api.get("/api/v1/wait", params={"query": 'subject:"after a refused"', "timeout": 30})
    assert found.status_code == 200


def test_good_fault_rules_still_work(api: httpx.Client) -> None:
    rule = {
        "stages": ["RCPT"],
        "code": 451,
        "recipient": {"regex": "^slow@", "flags": 2},
        "delay": 0.5,
        "times": 2,
        "probability": 0.5,
        "seed": 7,
    }
    added = api.post("/api/v1/faults", json=rule)
    assert added.status_code == 200, added.text
    back = added.json()
    assert back["recipient"] == {"regex": "^slow@", "flags": 2}
    assert (back["delay"], back["times"], back["probability"]) == (0.5, 2, 0.5)
    # What GET returns can be posted back (the counters are read-only and ignored).
    api.delete("/api/v1/faults")
    again = api.post("/api/v1/faults", json={**back, "id": "again"})
    assert again.status_code == 200, again.text
    chaos = api.post("/api/v1/faults", json={"chaos": "Recipient:550:100"})
    assert chaos.status_code == 200, chaos.text
    throttled = api.post("/api/v1/faults", json={"stage": "DATA", "throttle": [100, 200]})
    assert throttled.json()["throttle"] == [100.0, 200.0]


def test_openapi_lists_the_error_answers(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["error", "status"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    paths = schema["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "422" not in codes, (method, path)
            assert "421" in codes, (method, path)
            for code in codes - {"200"}:
                content = operation["responses"][code]["content"]
                assert content["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (method, path, code)
    assert {"400", "409", "503"} <= set(paths["/api/v1/wait"]["get"]["responses"])
    assert {"400", "404"} <= set(paths["/api/v1/message/{id}/part/{index}"]["get"]["responses"])
    assert {"400", "403", "413"} <= set(paths["/api/v1/faults"]["post"]["responses"])
    assert "404" in paths["/api/v1/faults/{rule_id}"]["delete"]["responses"]
    assert schema["info"]["version"] == smtpmock_version()


def test_info_reports_the_package_version(api: httpx.Client) -> None:
    version = api.get("/api/v1/info").json()["Version"]
    assert version == smtpmock_version()
    assert version[0].isdigit()


def test_non_ascii_attachment_name_downloads_by_rfc_6266(served: Served, api: httpx.Client) -> None:
    message = EmailMessage()
    message["Subject"] = "facture"
    message.set_content("see attached")
    message.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="facture é/../ü.pdf"
    )
    with smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=30) as smtp:
        smtp.send_message(message, "a@x.org", ["b@x.org"])
    found = api.get("/api/v1/wait", params={"query": "subject:facture", "timeout": 30}).json()
    detail = api.get(f"/api/v1/message/{found['messages'][0]['ID']}").json()
    part = detail["Attachments"][0]
    response = api.get(f"/api/v1/message/{detail['ID']}/part/{part['PartID']}")
    disposition = response.headers["content-disposition"]
    assert disposition == "attachment; filename=\"_.pdf\"; filename*=UTF-8''%C3%BC.pdf"
    assert response.content == b"%PDF-1.4"
