"""Is a change faster? smtpmock at another commit and as the work tree is, side by side.

::

    python benchmarks/compare.py                         # HEAD against the work tree
    python benchmarks/compare.py --base HEAD~3 --store sqlite --shape single --rounds 15

Both servers run ``baselines/smtpmock_inproc.py`` (in-process; ``--store sqlite`` stores as
``smtpmock serve`` does), the base one with ``PYTHONPATH`` at a ``git worktree`` of *base* in
``benchmarks/.work/``, and stdlib ``smtpd`` beside them where a Python that has it is found. The
runs are interleaved as in ``ingest.py`` (each round runs the shape once against each server,
in a rotating order), so the slow and fast spells of a shared machine fall on every server
alike: on this 2-CPU VM one server's rate moves by a third within minutes, more than most
changes are worth, and two runs one after the other cannot tell a 5% change from noise.

Prints each server's median rate and server CPU per message, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import HERE, REPO, VENV_PYTHON, WORK, ServerProcess
from ingest import (
    SHAPES,
    SmtpdTarget,
    Target,
    have_smtp_source,
    loadgen,
    measure_side_by_side,
    smtp_source,
)


class TreeTarget(Target):
    """``baselines/smtpmock_inproc.py`` with smtpmock imported from *src* (``None``: the
    installed work tree)."""

    def __init__(self, name: str, src: Path | None, store: str) -> None:
        self.name = name
        self.src = src
        self.store = store

    def start(self) -> ServerProcess:
        argv = [VENV_PYTHON, str(HERE / "baselines" / "smtpmock_inproc.py"), "--store", self.store]
        env = None if self.src is None else {**os.environ, "PYTHONPATH": str(self.src)}
        return ServerProcess(argv, env=env).start()


def worktree(rev: str) -> Path:
    """A checkout of *rev* under ``benchmarks/.work/`` (made once, moved to *rev* each time)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    path = WORK / "compare-base"
    if not (path / ".git").exists():
        WORK.mkdir(exist_ok=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, check=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-f", str(path), commit],
            cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
    else:
        subprocess.run(["git", "checkout", "-q", "--detach", commit], cwd=path, check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the commit to compare with [HEAD]")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--shape", choices=[s.key for s in SHAPES], default="single")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--scale", choices=("small", "full"), default="full")
    args = parser.parse_args()
    base = worktree(args.base)
    shape = next(s for s in SHAPES if s.key == args.shape)
    smtpd = SmtpdTarget()
    targets: list[Target] = [
        TreeTarget(f"base ({args.base})", base / "src", args.store),
        TreeTarget("work tree", None, args.store),
    ]
    if smtpd.available() is None:
        targets.append(smtpd)
    client = smtp_source if have_smtp_source() else loadgen
    results = measure_side_by_side(
        targets, shape, scale=args.scale, repeat=args.rounds, client=client, run_timeout=20.0
    )
    print(f"{shape.title}, store {args.store}, {args.rounds} rounds of "
          f"{shape.messages(args.scale)} messages, interleaved")  # fmt: skip
    for name, result in results.items():
        rate = f"{result.rate:8.0f} msg/s" if result.rate else "       - msg/s"
        cpu = f"{result.cpu_us:6.0f} us" if result.cpu_us else "     - us"
        print(f"  {name:24} {rate}   server CPU per message {cpu}   {result.note or ''}")
    work, old = targets[1].name, targets[0].name
    pairs = [(work, old)] + ([(work, smtpd.name), (old, smtpd.name)] if len(targets) > 2 else [])
    for a, b in pairs:
        ra, rb = results[a], results[b]
        if ra.rate and rb.rate:
            line = f"  {a} / {b}: rate {ra.rate / rb.rate:.3f}x"
            if ra.cpu_us and rb.cpu_us:
                line += f", CPU per message {rb.cpu_us / ra.cpu_us:.3f}x (>1: {a} uses less)"
            print(line)


if __name__ == "__main__":
    main()
