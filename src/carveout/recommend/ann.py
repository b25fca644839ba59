"""Approximate nearest neighbours over item embeddings (usearch HNSW, inner product).

usearch was chosen by measurement against hnswlib and faiss (docs/recommender.md): on this
2-core machine it built the same HNSW graph about 4x faster than hnswlib, with a lower query p99
at equal recall. Keys are row numbers of the model's video id list; `ExactIndex` is the
brute-force baseline that the feed bench measures recall and speed against."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from usearch.index import Index

# Chosen at 1M synthetic videos (bench-like taste-vector queries, recall@100 against exact
# search, this 2-core machine at load ~3.5): f32 with 16 links built in 396 s and reached 0.921
# / 0.959 at expansion 256 / 512; half-precision vectors with 32 links built in 392 s and reached
# 0.952 / 0.968. Half precision halves the memory each hop reads, which pays for the doubled
# links; the search expansion that clears 0.95 with a margin at 1M costs ~1.9 ms a query.
DTYPE = "f16"
CONNECTIVITY = 32
EXPANSION_ADD = 128
EXPANSION_SEARCH = 512


class NearestSearch(Protocol):
    def __len__(self) -> int: ...

    def search(self, vector: np.ndarray, k: int) -> np.ndarray: ...


class AnnIndex:
    """An HNSW graph over unit vectors; search returns row numbers, nearest first."""

    def __init__(self, index: Index, expansion_search: int = EXPANSION_SEARCH) -> None:
        self._index = index
        self._index.expansion_search = expansion_search  # type: ignore[misc]  # stub lacks setter

    @classmethod
    def build(cls, vectors: np.ndarray, threads: int = 0) -> AnnIndex:
        index = Index(
            ndim=int(vectors.shape[1]),
            metric="ip",
            dtype=DTYPE,
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )
        keys = np.arange(vectors.shape[0], dtype=np.uint64)
        index.add(keys, np.ascontiguousarray(vectors, dtype=np.float32), threads=threads)
        return cls(index)

    @classmethod
    def load(cls, path: Path, ndim: int) -> AnnIndex:
        # The file's own header sets the scalar type and links: an index saved with other
        # settings (an older version) still loads as it was built. Memory-mapped, not copied:
        # a copying load is one call that holds the interpreter's lock throughout (96 ms at
        # 60k vectors, 10 ms mapped), stalling every feed request while a new version loads
        # in the background; a version folder never changes once saved, and a mapped file
        # deleted by a purge stays readable until it is unmapped.
        index = Index(ndim=ndim, metric="ip", dtype=DTYPE, connectivity=CONNECTIVITY)
        index.view(str(path))
        if index.ndim != ndim:
            raise ValueError(f"the ANN index has {index.ndim} dimensions, the embeddings {ndim}")
        return cls(index)

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    def __len__(self) -> int:
        return len(self._index)

    @property
    def expansion_search(self) -> int:
        return int(self._index.expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._index.expansion_search = value  # type: ignore[misc]

    def search(self, vector: np.ndarray, k: int) -> np.ndarray:
        found = self._index.search(np.asarray(vector, dtype=np.float32), k, threads=1)
        keys: np.ndarray = np.asarray(found.keys, dtype=np.int64)
        return keys


class ExactIndex:
    """Brute force: every inner product, then the top k (the baseline a user would pick)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, vector: np.ndarray, k: int) -> np.ndarray:
        scores = self.vectors @ np.asarray(vector, dtype=np.float32)
        k = min(k, scores.shape[0])
        top = np.argpartition(-scores, k - 1)[:k]
        out: np.ndarray = top[np.argsort(-scores[top], kind="stable")].astype(np.int64)
        return out
