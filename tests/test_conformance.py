"""Issue 24 over real sockets: the conformance defects an outside suite found, the STARTTLS
injection split across TCP segments, a throttle that really throttles on both event loops,
AUTH that accepts any credentials, and no import cycle inside smtpmock."""

from __future__ import annotations

import ast
import smtplib
import socket
import time
from pathlib import Path

import pytest

from smtpmock import ServerError, SMTPMock

from .rawsmtp import RawSMTP

LOOPS = ["uvloop", "asyncio"]


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name: str = request.param
    if name == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("SMTPMOCK_EVENT_LOOP", name)
    return name


def test_no_reply_is_longer_than_512_octets(mock: SMTPMock) -> None:
    with RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        for line in ("X" * 600, "VRFY " + "v" * 600, "HELP " + "h" * 600, "EHLO " + "e" * 600):
            code, text = raw.command(line)
            assert 200 <= code < 600
            assert all(len(part.encode()) + 2 <= 512 for part in text.split("\n")), text


def test_rset_before_starttls_when_required_is_530() -> None:
    with SMTPMock(tls="starttls-required") as mock, RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        assert raw.command("EHLO client")[0] == 250
        assert raw.command("RSET")[0] == 530
        assert raw.command("NOOP")[0] == 250


def test_no_reply_in_the_middle_of_data(mock: SMTPMock) -> None:
    # RFC 5321 4.1.1.4 / RFC 1870 6: 552 comes after the final dot, never before.
    with SMTPMock(max_message_size=16_384) as small, RawSMTP(small.host, small.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        raw.command("MAIL FROM:<a@example.com>")
        raw.command("RCPT TO:<b@example.com>")
        raw.command("DATA")
        raw.send(b"x" * 998 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 100)
        raw.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            raw.sock.recv(1)
        raw.sock.settimeout(10)
        raw.send(b".\r\n")
        assert raw.reply()[0] == 552


def test_starttls_injection_in_a_second_segment() -> None:
    with SMTPMock(tls="starttls") as mock, RawSMTP(mock.host, mock.port) as raw:
        raw.reply()
        raw.command("EHLO client")
        raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.send(b"STARTTLS\r\n")
        raw.send(b"NOOP\r\nMAIL FROM:<injected@example.com>\r\n")  # its own segment
        assert raw.reply() == (220, "220 2.0.0 Ready to start TLS")
        # Where the injected segment lands depends on timing: in the session's buffer (read
        # with STARTTLS, then discarded), or still in the kernel once reading paused for the
        # handshake, where the TLS layer reads it as a broken ClientHello and the handshake
        # fails. Either way no injected command runs.
        try:
            raw.starttls(mock.client_ssl_context())
        except OSError:  # ssl.SSLError, or the server's close
            expected = ["EHLO", "STARTTLS"]
        else:
            assert raw.command("MAIL FROM:<a@example.com>")[0] == 503  # EHLO first: fresh
            assert raw.command("QUIT")[0] == 221
            expected = ["EHLO", "STARTTLS", "MAIL", "QUIT"]
    [session] = mock.wait_for_sessions(1)
    assert session.commands == expected
    assert not mock.messages


def test_throttle_slows_both_directions(loop_name: str) -> None:
    rate = 20_000
    body = "Subject: slow\r\n\r\n" + ("z" * 78 + "\r\n") * 400  # 32 kB
    with SMTPMock() as mock:
        mock.faults.throttle(rate)
        started = time.monotonic()
        with smtplib.SMTP(mock.host, mock.port, timeout=30) as client:
            client.sendmail("a@example.com", ["b@example.com"], body)
        elapsed = time.monotonic() - started
        mock.wait_for(1)
    # Every byte in, and every reply out, crosses the link at the rate.
    assert elapsed >= 0.9 * len(body) / rate, f"{elapsed:.2f} s on {loop_name}"


def test_throttle_slows_replies(loop_name: str) -> None:
    with SMTPMock() as mock:
        mock.faults.throttle(200)  # the greeting (~30 octets) alone takes 0.15 s
        started = time.monotonic()
        with RawSMTP(mock.host, mock.port) as raw:
            raw.reply()
            for _ in range(3):
                assert raw.command("NOOP")[0] == 250  # 4 + 15 octets each way
        elapsed = time.monotonic() - started
    assert elapsed >= 0.8 * (30 + 3 * (6 + 15)) / 200, f"{elapsed:.2f} s on {loop_name}"


def test_auth_accept_any_with_smtplib_login(loop_name: str) -> None:
    with SMTPMock(auth_accept_any=True) as mock:
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
            client.login("whoever", "whatever")
            client.sendmail("a@example.com", ["b@example.com"], "Subject: in\r\n\r\nx\r\n")
        [message] = mock.wait_for(1)
        assert message.auth_user == "whoever"
        assert [a.success for a in mock.auth_attempts] == [True]
    for mechanism in ("PLAIN", "LOGIN"):
        with SMTPMock(auth_accept_any=True) as mock:
            with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
                client.ehlo()
                client.esmtp_features["auth"] = mechanism
                assert client.login("u", "p")[0] == 235
            assert mock.auth_attempts[0].mechanism == mechanism


def test_auth_accept_any_and_accounts_are_exclusive() -> None:
    from smtpmock import ConfigurationError

    with pytest.raises(ConfigurationError, match="auth_accept_any"):
        SMTPMock(auth_accept_any=True, auth={"a": "b"}, auth_allow_plaintext=True)


def test_storage_full_is_452_and_nothing_is_acknowledged() -> None:
    from smtpmock import MemoryStore
    from smtpmock._errors import StorageFull, StorageUnavailable

    class Refusing(MemoryStore):
        error: Exception = StorageFull("disk full")

        def add(self, message: object) -> None:  # type: ignore[override]
            raise self.error

    store = Refusing()
    with SMTPMock(store=store) as mock, smtplib.SMTP(mock.host, mock.port, timeout=10) as c:
        c.ehlo()
        for error, code in ((StorageFull("full"), 452), (StorageUnavailable("gone"), 451)):
            store.error = error
            c.mail("a@example.com")
            c.rcpt("b@example.com")
            assert c.data(b"Subject: x\r\n\r\ny\r\n")[0] == code
        assert mock.errors == []


# ------------------------------------------------------------------ the import graph

SRC = Path(__file__).resolve().parent.parent / "src" / "smtpmock"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """The smtpmock modules *path* imports at module level (``TYPE_CHECKING`` blocks and
    imports inside functions, which run later, are not edges of the import-time graph)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.ImportFrom):
                if sub.level:
                    base = package.split(".")
                    base = base[: len(base) - sub.level + 1]
                    target = ".".join([*base, sub.module] if sub.module else base)
                else:
                    target = sub.module or ""
                if target.startswith("smtpmock"):
                    found.add(target)
                    for alias in sub.names:
                        found.add(f"{target}.{alias.name}")
            elif isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names if a.name.startswith("smtpmock")}
    return found


def test_smtpmock_has_no_import_cycle() -> None:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {
        name: {m for m in _imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }
    # A package's __init__ re-exporting its submodules is not a cycle through them.
    for name, edges in graph.items():
        graph[name] = {m for m in edges if not name.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert "smtpmock.smtp._transport" in graph  # the graph was really built


def test_serve_flags_for_accept_any_auth_and_strict_lines() -> None:
    """The new options reach ``smtpmock serve`` as flags (generated from ServerConfig)."""
    from .served import Served

    with (
        Served("--auth-accept-any", "true", "--refuse-long-lines", "true") as served,
        smtplib.SMTP(served.smtp_host, served.smtp_port, timeout=10) as client,
    ):
        client.login("app", "anything")
        client.ehlo()
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        code, _ = client.data(b"Subject: long\r\n\r\n" + b"x" * 1200 + b"\r\n")
        assert code == 500


def test_a_hook_that_answers_true_is_reported_not_ignored() -> None:
    # Hooks used to answer a command themselves and return True; with a read-only view
    # they cannot, so True is a mistake the test must see (451 now, ServerError on check()).
    def old_style(view: object, stage: str, arg: object) -> bool:
        return stage == "NOOP"

    with SMTPMock() as mock:
        mock.add_hook(old_style)  # type: ignore[arg-type]
        with smtplib.SMTP(mock.host, mock.port, timeout=10) as client:
            assert client.noop()[0] == 451
        assert [type(e) for e in mock.errors] == [TypeError]
        with pytest.raises(ServerError, match="HookAction"):
            mock.check()
