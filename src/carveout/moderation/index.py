"""Hamming-radius search over PDQ hashes: brute-force popcount and exact multi-index hashing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from carveout.moderation.pdq import MATCH_DISTANCE

U64 = npt.NDArray[np.uint64]
CHUNKS = 16  # 16 chunks of 16 bits: a distance <= 31 leaves some chunk with <= 1 differing bit
CHUNK_BITS = 16
# Below this many hashes a linear scan is as fast as probing (measured by `bench moderation`).
MULTI_INDEX_FROM = 20_000


@dataclass(frozen=True)
class Hit:
    query: int  # index into the queries
    row: int  # index into the indexed hashes
    distance: int


def pack(hexes: Sequence[str]) -> U64:
    """Hex hashes -> an (n, 4) uint64 array, most significant word first."""
    if not hexes:
        return np.zeros((0, 4), dtype=np.uint64)
    raw = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8")
    return raw.reshape(-1, 4).astype(np.uint64)


class HashIndex(Protocol):
    size: int

    def search(self, queries: U64, radius: int = MATCH_DISTANCE) -> list[Hit]: ...


def _distances(codes: U64, query: U64) -> npt.NDArray[np.uint16]:
    counts = np.bitwise_count(codes ^ query)
    total: npt.NDArray[np.uint16] = counts[:, 0].astype(np.uint16)
    for word in range(1, 4):
        total += counts[:, word]
    return total


class LinearIndex:
    """Every query compared with every hash: XOR and popcount over packed 64-bit words."""

    def __init__(self, codes: U64) -> None:
        self.codes = codes
        self.size = len(codes)

    def search(self, queries: U64, radius: int = MATCH_DISTANCE) -> list[Hit]:
        hits: list[Hit] = []
        for q, query in enumerate(queries):
            dist = _distances(self.codes, query)
            for row in np.flatnonzero(dist <= radius):
                hits.append(Hit(q, int(row), int(dist[row])))
        return hits


def _chunks(codes: U64) -> npt.NDArray[np.uint16]:
    """(n, 16) uint16: the hash cut into 16-bit pieces, most significant first."""
    cols = []
    for k in range(CHUNKS):
        shift = np.uint64(48 - CHUNK_BITS * (k % 4))
        cols.append(((codes[:, k // 4] >> shift) & np.uint64(0xFFFF)).astype(np.uint16))
    return np.stack(cols, axis=1) if cols else np.zeros((0, CHUNKS), dtype=np.uint16)


_FLIPS = np.array([0] + [1 << b for b in range(CHUNK_BITS)], dtype=np.uint16)


class MultiIndex:
    """Exact search for radius <= 31 (Norouzi et al.'s multi-index hashing): any hash within
    31 bits agrees with the query on some 16-bit chunk up to one bit, so probing each chunk's
    sorted table with the chunk and its 16 one-bit neighbours finds every candidate; candidates
    are then checked with the full popcount."""

    def __init__(self, codes: U64) -> None:
        self.codes = codes
        self.size = len(codes)
        chunks = _chunks(codes)
        self._order = [np.argsort(chunks[:, k], kind="stable").astype(np.int32) for k in range(16)]
        self._sorted = [chunks[self._order[k], k] for k in range(CHUNKS)]

    @property
    def nbytes(self) -> int:
        """Memory the index holds: the packed hashes and the 16 sorted chunk tables."""
        tables = sum(a.nbytes for a in self._order) + sum(a.nbytes for a in self._sorted)
        return int(self.codes.nbytes + tables)

    def search(self, queries: U64, radius: int = MATCH_DISTANCE) -> list[Hit]:
        if radius > 2 * CHUNKS - 1:
            raise ValueError(f"multi-index search is exact only for radius <= {2 * CHUNKS - 1}")
        hits: list[Hit] = []
        qchunks = _chunks(queries)
        for q in range(len(queries)):
            found: list[npt.NDArray[np.int32]] = []
            for k in range(CHUNKS):
                probes = np.unique(qchunks[q, k] ^ _FLIPS)
                lo = np.searchsorted(self._sorted[k], probes, side="left")
                hi = np.searchsorted(self._sorted[k], probes, side="right")
                for a, b in zip(lo, hi, strict=True):
                    if b > a:
                        found.append(self._order[k][a:b])
            if not found:
                continue
            rows = np.unique(np.concatenate(found))
            dist = _distances(self.codes[rows], queries[q])
            for i in np.flatnonzero(dist <= radius):
                hits.append(Hit(q, int(rows[i]), int(dist[i])))
        return hits


def build_index(codes: U64) -> HashIndex:
    return MultiIndex(codes) if len(codes) >= MULTI_INDEX_FROM else LinearIndex(codes)
