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
        if len(queries) == 0 or self.size == 0:
            return []
        # The whole batch at once: a handful of numpy calls per chunk instead of a Python loop
        # per query and probe (a 60-frame video is one batch).
        qchunks = _chunks(queries)
        probes = qchunks[:, :, None] ^ _FLIPS[None, None, :]  # (queries, chunks, 17)
        query_of = np.repeat(np.arange(len(queries)), len(_FLIPS))
        parts_q: list[npt.NDArray[np.int64]] = []
        parts_row: list[npt.NDArray[np.int32]] = []
        for k in range(CHUNKS):
            wanted = probes[:, k, :].ravel()
            lo = np.searchsorted(self._sorted[k], wanted, side="left")
            hi = np.searchsorted(self._sorted[k], wanted, side="right")
            counts = hi - lo
            if not counts.any():
                continue
            # Every bucket's slice of the sorted order, laid end to end.
            starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
            positions = starts + np.arange(int(counts.sum()))
            parts_row.append(self._order[k][positions])
            parts_q.append(np.repeat(query_of, counts))
        if not parts_row:
            return []
        q_all = np.concatenate(parts_q)
        rows_all = np.concatenate(parts_row)
        # Distances of every candidate, duplicates included: deduplicating the few hits is
        # far cheaper than deduplicating ~250k candidates of a 60-frame batch at 1M hashes.
        counts_all = np.bitwise_count(self.codes[rows_all] ^ queries[q_all])
        near = np.flatnonzero(counts_all.sum(axis=1, dtype=np.uint16) <= radius)
        pairs = np.unique(q_all[near] * self.size + rows_all[near].astype(np.int64))
        q_idx, rows = np.divmod(pairs, self.size)
        dist = np.bitwise_count(self.codes[rows] ^ queries[q_idx]).sum(axis=1, dtype=np.uint16)
        keep = np.arange(len(pairs))
        return [Hit(int(q_idx[i]), int(rows[i]), int(dist[i])) for i in keep]


def build_index(codes: U64) -> HashIndex:
    return MultiIndex(codes) if len(codes) >= MULTI_INDEX_FROM else LinearIndex(codes)
