"""The word bitmaps (``smtpmock/store/_bits.py``, Python ints) beside ``pyroaring``.

Issue 25 asks to use a well-kept library where it does part of the search engine as fast. This
measures the bitmaps' hot path, what ``SQLiteStore._bits_matches`` does for a short needle that
stands for hundreds of words: per block of 4,096 messages, decode every word's stored set, OR
them, count. The same sets go through ``_bits.encode``/``decode`` and through
``pyroaring.BitMap.serialize``/``deserialize`` + ``union``; sizes are the stored bytes.

    python benchmarks/bits_vs_roaring.py          # needs: pip install pyroaring

Not part of ``run.py``: pyroaring is not a dependency. Measured on the 2-core dev box (loaded):
_bits.py 87 ms CPU, 3.66 MB stored; pyroaring 72 ms CPU, 7.18 MB stored (a block of 4,096 seqs
is a sixteenth of a roaring container, so its dense sets cost it twice the bytes).
"""

from __future__ import annotations

import importlib
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from smtpmock.store._bits import decode, encode

SIZE = 4096
BLOCKS = 100
WORDS = 300


def _sets() -> list[list[set[int]]]:
    """Per word, per block, its messages: a few dense words, more medium, most rare."""
    rng = random.Random(1)
    words = []
    for w in range(WORDS):
        density = 0.5 if w < 10 else (0.05 if w < 60 else 0.003)
        words.append([{o for o in range(SIZE) if rng.random() < density} for _ in range(BLOCKS)])
    return words


def _cpu_ms(fn: Callable[[], int], rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def main() -> None:
    roaring: Any = importlib.import_module("pyroaring")
    words = _sets()
    ints = [[encode(sum(1 << o for o in s), SIZE) for s in blocks] for blocks in words]
    roars = [[roaring.BitMap(s).serialize() for s in blocks] for blocks in words]

    def with_ints() -> int:
        total = 0
        for b in range(BLOCKS):
            acc = 0
            for w in range(WORDS):
                acc |= decode(ints[w][b], SIZE)
            total += acc.bit_count()
        return total

    def with_roaring() -> int:
        total = 0
        for b in range(BLOCKS):
            bitmaps = (roaring.BitMap.deserialize(roars[w][b]) for w in range(WORDS))
            total += len(roaring.BitMap.union(*bitmaps))
        return total

    assert with_ints() == with_roaring()
    print(f"{BLOCKS} blocks x {WORDS} words (decode + OR + count), median CPU of 7:")
    for name, fn, blobs in (("_bits.py", with_ints, ints), ("pyroaring", with_roaring, roars)):
        stored = sum(len(b) for row in blobs for b in row)
        print(f"  {name:10s} {_cpu_ms(fn):7.1f} ms   stored {stored / 1e6:5.2f} MB")


if __name__ == "__main__":
    main()
