"""Item embeddings and co-watch neighbours learned from a cell's watch events.

Embeddings are a truncated SVD of the user x video matrix of log(1 + capped watch ratio): the
right singular vectors scaled by their singular values, then normalised, so that inner product
is cosine similarity and videos watched by the same people lie close. Co-watch neighbours are
each video's most frequent companions in users' histories (counts of X^T X, binary X)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

DIM = 32
COWATCH_K = 20
RATIO_CAP = 2.0


@dataclass(frozen=True)
class Interactions:
    """Watch events as a sparse user x video matrix, with the video ids of its columns."""

    matrix: sp.csr_matrix
    video_ids: list[str]

    @classmethod
    def build(cls, users: Sequence[str], videos: Sequence[str], ratios: np.ndarray) -> Interactions:
        user_ix: dict[str, int] = {}
        video_ix: dict[str, int] = {}
        rows = np.fromiter((user_ix.setdefault(u, len(user_ix)) for u in users), np.int64)
        cols = np.fromiter((video_ix.setdefault(v, len(video_ix)) for v in videos), np.int64)
        values = np.log1p(np.minimum(np.asarray(ratios, dtype=np.float64), RATIO_CAP))
        matrix = sp.csr_matrix(
            (values.astype(np.float32), (rows, cols)), shape=(len(user_ix), len(video_ix))
        )
        matrix.sum_duplicates()
        return cls(matrix, list(video_ix))


def fit_embeddings(data: Interactions, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Unit-norm float32 vectors, one row per video of `data` (fewer dims on tiny data)."""
    n_users, n_videos = data.matrix.shape
    k = min(dim, min(n_users, n_videos) - 1)
    if k < 1:
        return np.zeros((n_videos, 0), dtype=np.float32)
    rng = np.random.default_rng(seed)
    v0 = rng.uniform(-1.0, 1.0, size=min(n_users, n_videos))
    _u, s, vt = svds(data.matrix.astype(np.float64), k=k, v0=v0, random_state=seed)
    vectors = (vt.T * np.sqrt(s)).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = vectors / norms
    return out


def cowatch(data: Interactions, k: int = COWATCH_K) -> np.ndarray:
    """Each video's k most co-watched other videos, as column indices (-1 pads a short row)."""
    binary = data.matrix.copy()
    binary.data[:] = 1.0
    co = (binary.T @ binary).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    out = np.full((co.shape[0], k), -1, dtype=np.int32)
    for i in range(co.shape[0]):
        start, end = co.indptr[i], co.indptr[i + 1]
        if start == end:
            continue
        cols, counts = co.indices[start:end], co.data[start:end]
        # Most co-watched first; ties by column so that the artefact is deterministic.
        order = np.lexsort((cols, -counts))[:k]
        out[i, : len(order)] = cols[order]
    return out
