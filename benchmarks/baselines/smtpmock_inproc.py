"""smtpmock in-process, as a benchmark target: ``SMTPMock()`` on 127.0.0.1 and a free port.

Prints ``PORT <n>``; then answers ``count`` on stdin with ``COUNT <n>`` (messages stored) and
stops the server on end of input. ``--profile PATH`` runs cProfile inside the server's loop
thread for the whole run and writes the stats to PATH on exit (see ``benchmarks/PROFILE.md``).
"""

from __future__ import annotations

import argparse
import cProfile
import sys

from smtpmock import SMTPMock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", help="write cProfile stats of the server thread here")
    args = parser.parse_args()
    with SMTPMock() as mock:
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:

            async def enable() -> None:  # cProfile profiles the thread that enables it
                profiler.enable()

            mock.run_in_loop(enable)
        print(f"PORT {mock.port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "count":
                print(f"COUNT {len(mock.store)}", flush=True)
        if profiler is not None:

            async def disable() -> None:
                profiler.disable()

            mock.run_in_loop(disable)
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
