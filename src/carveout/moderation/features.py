"""Text to features: normalised, then hashed word and character n-grams weighted by TF-IDF."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

# Hashing needs no vocabulary: the model is plain arrays (no pickle), any script is accepted.
N_FEATURES = 2**18
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_SPACE = re.compile(r"\s+")
_WORDS = HashingVectorizer(
    n_features=N_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm=None
)
_CHARS = HashingVectorizer(
    n_features=N_FEATURES,
    analyzer="char_wb",
    ngram_range=(2, 5),
    alternate_sign=False,
    norm=None,
)


def normalise(text: str) -> str:
    """NFKC, control and bidi characters removed, links and mentions replaced by tokens."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    text = _URL.sub(" xurlx ", text)
    text = _MENTION.sub(" xmentionx ", text)
    return _SPACE.sub(" ", text).strip().lower()


def counts(texts: Sequence[str]) -> sp.csr_matrix:
    clean = [normalise(t) for t in texts]
    return sp.hstack([_WORDS.transform(clean), _CHARS.transform(clean)], format="csr")


def idf_of(matrix: sp.csr_matrix) -> npt.NDArray[np.float32]:
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf: npt.NDArray[np.float32] = (np.log((1 + matrix.shape[0]) / (1 + df)) + 1).astype(np.float32)
    return idf


def weigh(matrix: sp.csr_matrix, idf: npt.NDArray[np.float32]) -> sp.csr_matrix:
    """Sublinear term frequency times IDF, rows scaled to unit length."""
    out = matrix.astype(np.float32)
    out.data = np.log1p(out.data)
    out = out.multiply(idf).tocsr()
    norms = np.sqrt(np.asarray(out.multiply(out).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ out)
