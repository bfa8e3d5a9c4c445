"""Per-word bitmaps over blocks of messages: the free-text index's answer to dense needles.

A substring needle such as ``tovu`` stands for every stored word containing it (see
``_sqlite.py``), and a short needle can stand for a hundred words that are together in nearly
every message. Through FTS5 such a search costs time in proportion to the postings of all
those words (several per message); through bitmaps it costs a few hundred bytes per word and
block: the messages are cut into blocks of ``size`` consecutive ``seq`` numbers, and each word
has, per block it occurs in, the set of the block's messages containing it. A search ORs its
words' sets and counts bits.

A word's set in a block is stored as a bitmap (``size // 8`` bytes) or, when it holds fewer
than ``size // 64`` messages, as their offsets (two bytes each, so at most a quarter of the
bitmap): the rare words of real text cost no more than their postings, and the offsets, which
Python turns into a set one by one, stay few.

This module is the pure part (no SQL); ``SQLiteStore`` keeps the blocks in the tables
``bitblocks`` and ``wordbits`` and the block being filled in memory.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .._search import tokens

__all__ = ["BlockBits", "decode", "encode", "page", "range_mask"]


def encode(bits: int, size: int) -> bytes:
    """*bits* (bit i: message ``block * size + i``) as stored in `wordbits`."""
    if bits.bit_count() >= size // 64:
        return bits.to_bytes(size // 8, "little")
    offsets = array("H", _ascending(bits))
    if sys.byteorder == "big":
        offsets.byteswap()
    return offsets.tobytes()


def decode(blob: bytes, size: int) -> int:
    """The inverse of :func:`encode`."""
    if len(blob) == size // 8:
        return int.from_bytes(blob, "little")
    offsets = array("H")
    offsets.frombytes(blob)
    if sys.byteorder == "big":
        offsets.byteswap()
    bitmap = bytearray(size // 8)
    for offset in offsets:
        bitmap[offset >> 3] |= 1 << (offset & 7)
    return int.from_bytes(bitmap, "little")


def _ascending(bits: int) -> Iterator[int]:
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def _descending(bits: int) -> Iterator[int]:
    while bits:
        high = bits.bit_length() - 1
        yield high
        bits ^= 1 << high


def range_mask(block: int, size: int, after: int, until: int | None) -> int:
    """The bits of *block* for messages with ``after < seq <= until`` (``None``: no bound)."""
    first = block * size
    low = max(0, after + 1 - first)
    high = size if until is None else min(size, until + 1 - first)
    if high <= low:
        return 0
    return ((1 << high) - 1) ^ ((1 << low) - 1)


def page(
    blocks: dict[int, int], size: int, start: int, limit: int | None, descending: bool
) -> list[int]:
    """The seqs ``[start : start + limit]`` of the matches *blocks* holds, in seq order or its
    reverse; whole blocks before the page are skipped by their bit counts."""
    seqs: list[int] = []
    skip = start
    for block in sorted(blocks, reverse=descending):
        if limit is not None and len(seqs) >= limit:
            break
        bits = blocks[block]
        count = bits.bit_count()
        if skip >= count:
            skip -= count
            continue
        first = block * size
        for offset in (_descending if descending else _ascending)(bits):
            if skip:
                skip -= 1
                continue
            seqs.append(first + offset)
            if limit is not None and len(seqs) >= limit:
                break
    return seqs


@dataclass
class BlockBits:
    """The bitmaps of one block: which of its messages are indexed (``alive``), and for each
    word which of them contain it."""

    block: int
    size: int
    alive: int = 0
    words: dict[str, int] = field(default_factory=dict)

    def add_many(self, messages: Sequence[tuple[int, str | Iterable[str]]]) -> None:
        """Add messages of this block, in seq order, each with its distinct words (or those
        words in one string, space-separated: split one message at a time, so that a batch's
        hundreds of thousands of words never exist as objects at once).

        The bits are first set in ints that span only these messages (a few bytes, cheap to
        OR once per word of each message), then shifted into place once per word.
        """
        if not messages:
            return
        base = messages[0][0] - self.block * self.size
        local: dict[str, int] = {}
        alive = 0
        for seq, words in messages:
            bit = 1 << (seq - self.block * self.size - base)
            alive |= bit
            for word in words.split() if isinstance(words, str) else words:
                local[word] = local.get(word, 0) | bit
        found = self.words
        for word, bits in local.items():
            found[word] = found.get(word, 0) | (bits << base)
        self.alive |= alive << base

    def merge(self, other: BlockBits) -> None:
        """Add the messages of *other*, bitmaps of the same block."""
        self.alive |= other.alive
        found = self.words
        for word, bits in other.words.items():
            found[word] = found.get(word, 0) | bits

    def add_texts(self, messages: Iterable[tuple[int, str]]) -> None:
        """Add messages from their free text (as `texts` holds it), tokenized as indexed."""
        self.add_many([(seq, set(tokens(free_text))) for seq, free_text in messages])

    def rows(self) -> list[tuple[str, int, bytes]]:
        """``(term, block, blob)`` for `wordbits`, in key order, for the words still in a
        message that is alive."""
        alive = self.alive
        rows = []
        for word in sorted(self.words):
            bits = self.words[word] & alive
            if bits:
                rows.append((word, self.block, encode(bits, self.size)))
        return rows
