"""Per-test cost of smtpmock's pytest fixture against smtpdfix's ``smtpd`` and
pytest-localserver's ``smtpserver``.

For each variant it writes a project of N tests (default 1,000) that each send one message with
``smtplib`` and wait for it (smtpmock: ``wait_for(1)``; the peers store the message before they
answer 250, so a length check is the wait), runs ``pytest`` on it in a subprocess, and reports
the run time over an empty-test baseline, divided by N, both as wall-clock time and as CPU time
(user + system, every thread of the run): on a shared machine the second is the steadier one.
Two smtpmock variants separate the cost of the fixture from the cost of the SMTP round trip:

* ``send only``: every test sends to the session server (``smtpmock_server``) with no per-test
  fixture: the SMTP round trip plus pytest's own per-test work;
* ``smtpmock``: the ``smtpmock`` fixture (a clean per-test mailbox) and ``wait_for``.

The peers are benchmark-only dependencies, installed (with this checkout of smtpmock, editable)
in their own virtualenv, ``benchmarks/.work/venv``, created on first run. Runs are interleaved
and each variant's best of ``--repeat`` runs is kept, to damp the noise of a shared machine.

    python benchmarks/bench_fixture.py [--tests 1000] [--repeat 3] [--json]

``--json`` adds, as the last line, the rows ``run.py`` puts in its table: the per-test cost over
the empty test of smtpmock's fixture and of each peer's, wall clock and CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".work" / "venv"
PEERS = ("smtpdfix", "pytest-localserver")

COMMON = """
import smtplib

import pytest

N = {n}
TEXT = "From: a@example.com\\r\\nTo: b@example.com\\r\\nSubject: bench\\r\\n\\r\\nhello\\r\\n"


def send(host, port):
    # local_hostname: skip smtplib's getfqdn() lookup, the same for every variant.
    with smtplib.SMTP(host, port, local_hostname="localhost", timeout=10) as client:
        client.sendmail("a@example.com", ["b@example.com"], TEXT)
"""

VARIANTS: dict[str, str] = {
    "baseline (empty test)": """
@pytest.mark.parametrize("n", range(N))
def test_empty(n):
    pass
""",
    "send only (session server)": """
@pytest.mark.parametrize("n", range(N))
def test_send(smtpmock_server, n):
    send(smtpmock_server.host, smtpmock_server.port)
""",
    "smtpmock (smtpmock fixture)": """
@pytest.mark.parametrize("n", range(N))
def test_send(smtpmock, n):
    send(smtpmock.host, smtpmock.port)
    smtpmock.wait_for(1)
""",
    "smtpdfix (smtpd fixture)": """
@pytest.mark.parametrize("n", range(N))
def test_send(smtpd, n):
    send(smtpd.hostname, smtpd.port)
    assert len(smtpd.messages) == 1
""",
    "pytest-localserver (smtpserver)": """
@pytest.mark.parametrize("n", range(N))
def test_send(smtpserver, n):
    send(*smtpserver.addr)
    assert len(smtpserver.outbox) == 1
""",
}


VARIANTS_OF_PEERS = ("smtpdfix (smtpd fixture)", "pytest-localserver (smtpserver)")


def venv_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} with smtpmock (editable), {', '.join(PEERS)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", str(REPO), "pytest", *PEERS],
            check=True,
        )
    return python


def run_once(python: Path, project: Path) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one pytest run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{project.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, cpu


def main() -> None:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="end with run.py's rows as JSON")
    args = parser.parse_args()
    python = venv_python()
    n = args.tests
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_fixture_") as tmp:
        projects = {}
        for i, (name, body) in enumerate(VARIANTS.items()):
            project = Path(tmp) / f"variant{i}"
            project.mkdir()
            (project / "pytest.ini").write_text("[pytest]\n")
            (project / "test_bench.py").write_text(COMMON.format(n=n) + body)
            projects[name] = project
        for _ in range(args.repeat):  # interleaved, so that load spikes hit every variant
            for name, project in projects.items():
                elapsed, used = run_once(python, project)
                wall[name] = min(wall.get(name, elapsed), elapsed)
                cpu[name] = min(cpu.get(name, used), used)
    version = sys.version.split()[0]
    print(f"{n} tests per run, best of {args.repeat}; Python {version}; load average {load}")
    rows = []
    for label, best in (("wall clock", wall), ("CPU time (user+sys, all threads)", cpu)):
        baseline = best["baseline (empty test)"]
        ours = best["smtpmock (smtpmock fixture)"] - baseline
        send_only = best["send only (session server)"] - baseline
        print(f"\n{label}")
        print(f"{'variant':34} {'run (s)':>8} {'over baseline (ms/test)':>24} {'vs smtpmock':>12}")
        for name, elapsed in best.items():
            over = (elapsed - baseline) / n * 1000
            peer = not name.startswith(("baseline", "send only"))
            ratio = f"{(elapsed - baseline) / ours:.1f}x" if peer else ""
            print(f"{name:34} {elapsed:8.2f} {over:24.3f} {ratio:>12}")
        fixture_only = (ours - send_only) / n * 1000
        print(f"smtpmock fixture alone (smtpmock minus send only): {fixture_only:.3f} ms/test")
        for name in VARIANTS_OF_PEERS:
            peer_only = (best[name] - baseline - send_only) / n * 1000
            print(f"{name} minus send only: {peer_only:.3f} ms/test")
        rows.append(
            {
                "scenario": f"pytest fixture, {n} tests each sending 1 message: per-test cost "
                f"over an empty test ({label.split(' (')[0]})",
                "unit": "ms/test",
                "figures": {
                    "smtpmock": ours / n * 1000,
                    **{
                        peer: (best[name] - baseline) / n * 1000
                        for peer, name in zip(PEERS, VARIANTS_OF_PEERS, strict=True)
                    },
                },
                "higher_is_better": False,
                "subjects": ["smtpmock"],
                "notes": [
                    f"best of {args.repeat} interleaved runs; sending alone (the session "
                    f"server, no fixture) costs {send_only / n * 1000:.2f} ms/test of it"
                ],
            }
        )
    if args.json:
        print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
