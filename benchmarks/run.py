"""The one benchmark command: every scenario, smtpmock beside its peers, one table.

::

    python benchmarks/run.py                  # full scale, under 10 minutes on 2 cores
    python benchmarks/run.py --scale small    # a quick smoke run (a few hundred messages)
    python benchmarks/run.py --only ingest    # one part (see PARTS)
    python benchmarks/run.py --out benchmarks/RESULTS.md
    python benchmarks/run.py --scale small --check   # CI: exit 1 if a part broke

Scenarios (issue 7):

1. SMTP ingest of 1 KiB messages in three shapes (``ingest.py``) against smtpmock in-process,
   ``smtpmock serve``, aiosmtpd with a do-nothing handler, the stdlib ``smtpd`` and Postfix's
   ``smtp-sink``, driven by Postfix's ``smtp-source`` (else ``loadgen.py``).
2. ``wait_for`` wake-up latency and start/stop cost (``bench_core.py``); fault injection:
   a throttled send against the time its rate implies, rule overhead, a delayed connection
   not holding others up (``bench_faults.py``: a throttle that stops working fails the part).
3. Per-test overhead of the pytest fixture beside smtpdfix and pytest-localserver
   (``bench_fixture.py``).
4. ``smtpmock serve`` with 10k and 100k stored 10 KiB messages: search p50/p99, resident memory,
   time to be ready (``search.py``).
5. Pathological messages (issue 23): CPU per kB of opening each shape from 10 kB to the size
   limit, which must stay flat, and peak memory over message size (``pathological.py``; it
   exits 1, so ``--check`` fails, when a shape's cost per kB grows more than 4x).
6. ``smtpmock serve`` on PostgreSQL beside ``serve`` on SQLite: ingest, two instances on one
   database, cross-instance wait wake-up, search at scale (``postgres.py``; skipped with a note
   without PostgreSQL, a failure under ``--check`` when ``SMTPMOCK_REQUIRE_POSTGRES=1``). It
   runs after the 10-minute budget of the others (up to ``BUDGET["postgres"]`` more).

Every figure in a row is measured in the same run, so the ratios compare like with like on
whatever machine runs this. A part that cannot run here (a missing tool, ``serve`` not built)
is listed as skipped with the reason; the others still run.

Other scripts join the table through a small convention: run with ``--json``, a script prints
as its last line ``{"rows": [{"scenario": ..., "unit": ..., "figures": {"smtpmock": 1.2,
"smtpdfix": 9.9}, "higher_is_better": false, "notes": [...]}]}``. A script that does not
support ``--json`` has its own output appended below the table (so does the text a
``--json`` script prints before its JSON line). ``SMTPMOCK_BENCH_SCALE`` (``small``/``full``)
tells it how hard to work.

``--check`` (what CI runs, at small scale) exits with status 1 when a part failed (a script
that exited with an error, ran out of time or printed no readable rows) or left smtpmock
without a figure in a row; a baseline that cannot run here is still only a note. The figures
themselves are not judged: CI machines are too noisy for that, and performance is read from
the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import HERE, REPO, SMTP_SINK, SMTP_SOURCE, VENV_PYTHON, Row, render_table
from ingest import run_ingest

PARTS = ("ingest", "core", "faults", "fixture", "search", "pathological", "postgres")
# Options that make another script's run short, passed at small scale when it accepts them.
SMALL_OPTIONS = (["--quick"], ["--tests", "200"], ["--repeat", "1"])
# Wall-clock budgets (seconds) per part at full scale. The whole run stays under 10 minutes:
# each part after ingest gets at most what is left of TOTAL_BUDGET, and search, last, gets the
# rest (up to its 400 s: filling and indexing 100k messages of 10 KiB is the longest step).
BUDGET = {
    "ingest": 200.0,
    "core": 60.0,
    "faults": 60.0,
    "fixture": 90.0,
    "search": 400.0,
    "pathological": 300.0,
    "postgres": 420.0,
}
TOTAL_BUDGET = 570.0
# The fixture part keeps the best of 2 runs (one run: about FIXTURE_RUN s) when search still
# has SEARCH_FLOOR s after it, else it runs once.
FIXTURE_RUN = 30.0
SEARCH_FLOOR = 300.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    tools = [t for t in (SMTP_SOURCE, SMTP_SINK) if os.access(t, os.X_OK)]
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}; "
        f"Python {platform.python_version()}; load average before the run {load}; "
        f"tools: {', '.join(Path(t).name for t in tools) or 'no Postfix tools'}"
    )


def external(
    script: str, scale: str, timeout: float, extra: list[str] | None = None
) -> tuple[list[Row], str, bool]:
    """Run another benchmark script: ``(rows, text, ok)``, its rows if it speaks ``--json``,
    and its text output (or why it failed: then *ok* is false).

    *extra*: options passed when the script accepts them (at full scale; small scale passes
    :data:`SMALL_OPTIONS`)."""
    path = HERE / script
    if not path.exists():
        return [], f"{script}: not written yet, skipped", False
    text = path.read_text()
    wants_json = "--json" in text
    argv = [VENV_PYTHON, str(path), *(["--json"] if wants_json else [])]
    options = list(SMALL_OPTIONS) if scale == "small" else [extra or []]
    for option in options:  # the ones the script accepts
        if option and option[0] in text:
            argv += option
    env = {**os.environ, "SMTPMOCK_BENCH_SCALE": scale}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return [], f"{script}: stopped after its {timeout:g} s budget", False
    if done.returncode != 0:
        return [], f"{script}: exited {done.returncode}: {done.stderr.strip()[-400:]}", False
    out = done.stdout.strip()
    if wants_json and out:
        text, _, last = out.rpartition("\n")
        try:
            data = json.loads(last)
            rows = [
                Row(
                    r["scenario"],
                    r.get("unit", ""),
                    {k: (None if v is None else float(v)) for k, v in r["figures"].items()},
                    bool(r.get("higher_is_better", False)),
                    tuple(r.get("subjects", ("smtpmock", "smtpmock serve"))),
                    list(r.get("notes", [])),
                )
                for r in data["rows"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            return [], f"{script}: unreadable --json output ({exc}):\n{out[-2000:]}", False
        return rows, f"{script} output:\n{text}" if text.strip() else "", bool(rows)
    return [], f"{script} output:\n{out}", not wants_json


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so every server process is stopped by its ``with`` block.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    parser.add_argument("--only", help=f"comma-separated parts to run, of: {', '.join(PARTS)}")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) to this file")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a part failed or smtpmock has no figure in a row (CI's smoke run)",
    )
    args = parser.parse_args()
    parts = args.only.split(",") if args.only else list(PARTS)
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    factor = 1.0 if args.scale == "full" else 0.5

    started = time.monotonic()
    total = TOTAL_BUDGET * factor

    def budget(part: str) -> float:
        """The part's own budget, cut to what is left of the total (at least 20 s)."""
        left = total - (time.monotonic() - started) - 10.0
        return max(20.0, min(BUDGET[part] * factor, left))

    header = machine()
    rows: list[Row] = []
    appendix: list[str] = []
    failed: list[str] = []
    if "ingest" in parts:
        log("ingest: SMTP messages/s, 3 shapes x 5 servers")
        rows += run_ingest(args.scale, budget=BUDGET["ingest"] * factor, log=log)
    if "core" in parts:
        log("core: start/stop and wait_for latency (bench_core.py)")
        got, text, ok = external("bench_core.py", args.scale, budget("core"))
        rows += got
        appendix += [text] if text else []
        if not ok:
            failed.append("core (bench_core.py)")
    if "faults" in parts:
        log("faults: throttle accuracy, rule overhead, isolation (bench_faults.py)")
        got, text, ok = external("bench_faults.py", args.scale, budget("faults"))
        rows += got
        appendix += [text] if text else []
        if not ok:
            failed.append("faults (bench_faults.py)")
    if "fixture" in parts:
        left = total - (time.monotonic() - started) - 10.0
        fits = left - 2 * FIXTURE_RUN >= SEARCH_FLOOR
        repeat = 2 if args.scale == "full" and fits else 1
        log(f"fixture: per-test overhead (bench_fixture.py), best of {repeat}")
        got, text, ok = external(
            "bench_fixture.py", args.scale, budget("fixture"), ["--repeat", str(repeat)]
        )
        rows += got
        appendix += [text] if text else []
        if not ok:
            failed.append("fixture (bench_fixture.py)")
    if "search" in parts:
        log("search: serve with 10k/100k stored messages (search.py)")
        from search import run_search

        rows += run_search(args.scale, budget=budget("search"), log=log)
    if "pathological" in parts:
        # Its own budget, after the 570 s of the others: CPU-bound and single-threaded, about
        # 2 minutes at full scale (to the 32 MiB size limit), 10 s at small scale.
        log("pathological: cost per kB of hostile message shapes (pathological.py)")
        got, text, ok = external("pathological.py", args.scale, BUDGET["pathological"] * factor)
        rows += got
        appendix += [text] if text else []
        if not ok:
            failed.append("pathological (pathological.py)")
    if "postgres" in parts:
        log("postgres: serve on PostgreSQL beside serve on SQLite (postgres.py)")
        from postgres import run_postgres

        pg_rows, skipped = run_postgres(args.scale, budget=BUDGET["postgres"] * factor, log=log)
        rows += pg_rows
        if skipped is not None:
            rows.append(Row("PostgreSQL", "", {}, notes=[f"skipped: {skipped}"]))
            if os.environ.get("SMTPMOCK_REQUIRE_POSTGRES") == "1":
                failed.append(f"postgres (postgres.py): {skipped}")
    elapsed = time.monotonic() - started

    command = "python benchmarks/run.py" + ("" if args.scale == "full" else " --scale small")
    if args.only:
        command += f" --only {args.only}"
    report = "\n".join(
        [
            f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {args.scale} scale, "
            f"{elapsed:.0f} s: `{command}`",
            f"Machine: {header}",
            "",
            render_table(rows),
            *(["", "Other output:", "", *appendix] if appendix else []),
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    if args.check:
        failed += [
            f"{row.scenario}: no figure for {subject}"
            for row in rows
            for subject in row.subjects
            if subject in row.figures and row.figures[subject] is None
        ]
        if failed:
            print("\nrun.py --check: " + "; ".join(failed), file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
