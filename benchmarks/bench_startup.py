"""What smtpmock adds to the start of every pytest run: importing it, and the plugin.

::

    python benchmarks/bench_startup.py                       # the work tree
    python benchmarks/bench_startup.py --base HEAD~1         # and another commit beside it

pytest loads the plugin through its ``pytest11`` entry point in every run of an environment
where smtpmock is installed; the plugin starts the session server (on the memory store) at the
first test that uses it (before conftest files only when asked), so a run that uses none of
its fixtures pays for the plugin's import alone; each xdist worker does the same. Measured,
median of ``--rounds`` runs, each a fresh interpreter, the variants interleaved so that a slow
spell of a shared machine falls on all of them:

- ``import smtpmock``: ``python -c "import smtpmock"`` minus ``python -c "pass"``;
- ``pytest, plugin``: ``pytest`` on one empty test minus the same run with ``-p no:smtpmock``
  (the plugin's import, its hooks, and the session server's start and stop).

With ``--base REV`` the same is measured for a checkout of *REV* (a ``git worktree`` in
``benchmarks/.work/``, put first on ``PYTHONPATH``), beside the work tree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import VENV_PYTHON
from compare import worktree


def wall(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", help="a commit to measure beside the work tree")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    trees: dict[str, str | None] = {"work tree": None}
    if args.base:
        trees = {f"base ({args.base})": str(worktree(args.base) / "src"), **trees}
    # Bytecode as an installed package has it (this machine may set PYTHONDONTWRITEBYTECODE).
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_empty.py").write_text("def test_empty():\n    pass\n")
        pytest = [VENV_PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_empty.py"]
        commands = {
            "python": [VENV_PYTHON, "-c", "pass"],
            "import": [VENV_PYTHON, "-c", "import smtpmock"],
            "pytest without": [*pytest, "-p", "no:smtpmock"],
            "pytest with": pytest,
        }
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds + 1):  # the first round warms the caches and is dropped
            for tree, src in trees.items():
                env = dict(base_env)
                if src is not None:
                    env["PYTHONPATH"] = src
                for name, argv in commands.items():
                    times.setdefault((tree, name), []).append(wall(argv, env, project))
    print(f"median of {args.rounds} interleaved runs, ms (Python {sys.version.split()[0]})")
    print(f"{'':24} {'import smtpmock':>16} {'pytest, plugin':>16} {'pytest run':>12}")
    for tree in trees:

        def ms(name: str, tree: str = tree) -> float:
            return 1000 * statistics.median(times[(tree, name)][1:])

        print(
            f"{tree:24} {ms('import') - ms('python'):16.0f} "
            f"{ms('pytest with') - ms('pytest without'):16.0f} {ms('pytest with'):12.0f}"
        )


if __name__ == "__main__":
    main()
