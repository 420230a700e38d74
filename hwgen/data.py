"""Small real data sets, made locally (nothing is downloaded): numpy only.

* digits: scikit-learn's bundled 8x8 handwritten digits, read as a sequence of T=16 steps
  of I=4 pixels (each image row in two halves), scaled to [0, 1]; 10 classes.
* char LM: English text that ships with Python itself (the help topics of `pydoc_data`),
  lower-cased onto a 32-symbol alphabet, one-hot inputs, next-character targets.
"""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "valid", "test")
DIGITS_STEPS, DIGITS_FEATURES = 16, 4
VOCAB = list("abcdefghijklmnopqrstuvwxyz") + [" ", ".", ",", "\n", "0", "?"]
OTHER = VOCAB.index("?")    # every symbol outside the alphabet
DIGIT = VOCAB.index("0")    # every decimal digit
LM_SEQ_LEN = 50
LM_TEST_SEQUENCES = 300


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


def load_digits_sequences(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(X (N, 16, 4) float32 in [0, 1], y (N,) int64); a fixed 70/10/20 split."""
    _check_split(split)
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32).reshape(-1, DIGITS_STEPS, DIGITS_FEATURES)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    n_train, n_valid = int(0.7 * len(y)), int(0.1 * len(y))
    parts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
             "test": order[n_train + n_valid:]}
    return x[parts[split]], y[parts[split]]


def load_text_corpus() -> str:
    """The text of Python's help topics, keys in sorted order."""
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))


def encode_text(text: str) -> np.ndarray:
    """Symbols of the 32-letter alphabet (digits fold to '0', the rest to '?')."""
    table = np.full(128, OTHER, dtype=np.int64)
    for i, ch in enumerate(VOCAB):
        table[ord(ch)] = i
    table[ord("0"):ord("9") + 1] = DIGIT
    codes = np.frombuffer(text.lower().encode("ascii", "replace"), dtype=np.uint8)
    return table[np.minimum(codes, 127)]


def char_lm_sequences(split: str, seq_len: int = LM_SEQ_LEN,
                      max_sequences: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(X (N, T, 32) one-hot float32, Y (N, T) int64 next symbols); split 80/10/10 by position.

    The test split is cut to `LM_TEST_SEQUENCES` sequences by default to keep evaluation fast.
    """
    _check_split(split)
    codes = encode_text(load_text_corpus())
    n = len(codes)
    bounds = {"train": (0, int(0.8 * n)), "valid": (int(0.8 * n), int(0.9 * n)),
              "test": (int(0.9 * n), n)}
    lo, hi = bounds[split]
    part = codes[lo:hi]
    count = (len(part) - 1) // seq_len
    if max_sequences is None and split == "test":
        max_sequences = LM_TEST_SEQUENCES
    if max_sequences is not None:
        count = min(count, max_sequences)
    idx = np.arange(count)[:, None] * seq_len + np.arange(seq_len)[None, :]
    x = np.eye(len(VOCAB), dtype=np.float32)[part[idx]]
    return x, part[idx + 1]


def unigram_entropy_bits(split: str = "train") -> float:
    """Entropy of the symbol frequencies: the bits/char of a model without context."""
    _, y = char_lm_sequences(split, max_sequences=10**9)
    p = np.bincount(y.ravel(), minlength=len(VOCAB)) / y.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())
