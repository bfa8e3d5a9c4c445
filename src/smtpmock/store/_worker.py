"""A child process that runs one operation on batches of work: the SQLite store's index parser.

``concurrent.futures.ProcessPoolExecutor`` would do the same with more parts: with the
``spawn`` start method (the only safe one in a process that has threads) it re-imports the
parent's ``__main__`` in the child (so a script needs an ``if __name__ == "__main__":`` guard),
starts multiprocessing's resource tracker as a third process (12 MiB resident), and does not
notice a parent killed with SIGKILL. This worker is ``python -c`` with two pipes:

* requests go down the child's stdin and replies come up its stdout, each one pickle with an
  8-byte length in front, in order; a thread in the parent reads the replies as they come, so
  neither side can block the other on a full pipe;
* the child ends when its stdin closes: when the parent calls :meth:`ParseWorker.shutdown`,
  exits, or is killed;
* a child that dies fails the pending futures with :class:`WorkerGone` (the store then parses
  in its own process).

The pipes are private to the two processes, so unpickling what comes through them is safe.
A request names its operation in a fixed table (:data:`OPERATIONS`); the child never imports or
calls anything by a name it is sent.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import IO, Any

__all__ = ["OPERATIONS", "ParseWorker", "WorkerGone", "release_free_memory"]

_HEADER = struct.Struct("<Q")

# The child: the parent's sys.path first (smtpmock may be importable only through it), then
# the loop of main().
_BOOTSTRAP = (
    "import sys; sys.path[:0] = sys.argv[1:]; from smtpmock.store._worker import main; main()"
)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where there is none (macOS, Windows, musl)."""
    try:
        import ctypes

        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except Exception:
        return None
    return trim


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the OS (``malloc_trim``; elsewhere a no-op).

    Indexing a batch allocates tens of MB for a moment (the parsed texts, their words, the
    pickles between the processes, FTS5's pending index), much of it in threads' malloc
    arenas; glibc keeps freed arena memory resident, so a server's memory would stay at its
    highest point. Trimming takes about 2 ms at 100k messages and releases the GIL (ctypes);
    measured in ``benchmarks/PROFILE.md`` ("Resident memory").
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class WorkerGone(Exception):
    """The worker process has ended (or could not start); the work was not done."""


def _write(stream: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next value, or raise ``EOFError`` at the end of the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _prepare_rows(rows: Any) -> Any:
    from ._sqlite_index import _prepare_rows as prepare  # (imported when first asked)

    return prepare(rows)


def _echo(value: Any) -> Any:
    return value


OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "prepare_rows": _prepare_rows,  # parse stored rows for the search index
    "echo": _echo,  # the argument back (the pipes' own tests)
}
"""What a worker can be asked to run, by name: nothing else."""


def main() -> None:
    """The child's loop: read ``(operation, argument)``, answer ``(ok, value)``."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() must not corrupt the reply stream
    # Ctrl-C in a terminal reaches the whole process group: the parent decides, and the
    # child ends when the parent closes its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            name, argument = _read(requests)
        except EOFError:
            return
        operation = OPERATIONS.get(name) if isinstance(name, str) else None
        try:
            if operation is None:
                raise ValueError(f"the index worker has no operation {name!r}")
            result = (True, operation(argument))
        except Exception as exc:
            result = (False, exc)
        try:
            _write(replies, result)
        except Exception as exc:  # the result would not pickle: say so instead
            _write(replies, (False, WorkerGone(f"unpicklable result: {exc!r}")))
        del result, argument
        release_free_memory()  # a batch of parsed mail was just let go


def _settle(future: concurrent.futures.Future[Any], ok: bool, value: Any) -> None:
    """Give *future* its result (*ok*) or exception, unless it was cancelled meanwhile."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class ParseWorker(concurrent.futures.Executor):
    """One child process running operations of :data:`OPERATIONS` on picklable arguments, in
    order. ``submit("prepare_rows", rows)`` returns a future."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, *[p for p in sys.path if p]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        # Futures in the order of their requests; the reader pops them without a lock (deque's
        # append and popleft are atomic), so a writer blocked on a full pipe never stops the
        # reader that lets the child go on.
        self._pending: deque[concurrent.futures.Future[Any]] = deque()
        self._write_lock = threading.Lock()  # one request at a time, in _pending's order
        self._gone = False
        self._reader = threading.Thread(
            target=self._read_replies, name="smtpmock-index-worker-replies", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def submit(  # type: ignore[override]
        self, operation: str, argument: Any, /
    ) -> concurrent.futures.Future[Any]:
        if operation not in OPERATIONS:
            raise ValueError(f"the index worker has no operation {operation!r}")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._write_lock:
            if self._gone:
                raise WorkerGone("the index worker process has ended")
            self._pending.append(future)
            try:
                assert self._proc.stdin is not None
                _write(self._proc.stdin, (operation, argument))
            except (OSError, ValueError) as exc:  # the child is gone (EPIPE) or shut down
                with contextlib.suppress(ValueError):  # unless the reader failed it already
                    self._pending.remove(future)
                raise WorkerGone(f"the index worker process has ended: {exc}") from exc
        return future

    def _read_replies(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        while True:
            try:
                ok, value = _read(stdout)
            except Exception:  # EOF, or a torn reply from a child that died mid-write
                break
            try:
                future = self._pending.popleft()
            except IndexError:  # not expected: a reply nobody asked for
                break
            _settle(future, ok, value)
        with self._write_lock:  # no request can be added now
            self._gone = True
            pending, self._pending = list(self._pending), deque()
        code = self._proc.poll()
        for future in pending:
            _settle(future, False, WorkerGone(f"the index worker process ended (exit code {code})"))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Close the child's stdin (it ends when it has answered what it has read), and with
        *wait* wait for it; a child that does not end within 10 s is killed."""
        with self._write_lock:
            self._gone = True
            if cancel_futures:
                # A copy: the reader pops futures without the lock, while cancel() runs.
                for future in list(self._pending):
                    future.cancel()
            with contextlib.suppress(OSError, ValueError):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
        if not wait:
            return
        try:
            self._proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
