"""Small real data sets, made locally (nothing is downloaded): numpy only, no torch.

* digits: scikit-learn's bundled 8x8 handwritten digits, read as a sequence of T=16 steps
  of I=4 pixels (each image row in two halves), scaled to [0, 1]; 10 classes.
* char LM: English text that ships with Python itself (the help topics of `pydoc_data`),
  lower-cased onto a 32-symbol alphabet, one-hot inputs, next-symbol targets.
* speech commands: ten spoken keywords synthesized with espeak-ng in 40 voices, as
  TIMIT-style features (40 log-mel filterbank energies, 25 ms windows every 10 ms,
  per-utterance normalisation), T=50 frames; the voices are held out between the splits.
  The features are frozen in ``hwgen/data/speech_commands.npz``, written once by
  ``scripts/make_speech_data.py`` (which needs espeak-ng; loading them needs numpy only).
* word LM: the same frozen text cut into words (`word_tokens`), the 255 most frequent words
  of the train split and ``<unk>`` (`word_vocab`); token-id inputs (N, T, 1) for a model
  with an embedding, next-word targets.

The help topics change with every Python release, so the encoded corpus is frozen in
``hwgen/data/charlm_corpus.npz`` (written by ``python -m hwgen.data``); the char LM splits,
the bundled models' metrics and the generated test vectors do not depend on the Python
version in use.
"""
from __future__ import annotations

from collections import Counter
import hashlib
import re
import sys
from pathlib import Path

import numpy as np

SPLITS = ("train", "valid", "test")
DIGITS_STEPS, DIGITS_FEATURES = 16, 4
DIGITS_CLASSES = 10
VOCAB = list("abcdefghijklmnopqrstuvwxyz") + [" ", ".", ",", "\n", "0", "?"]
OTHER = VOCAB.index("?")    # every symbol outside the alphabet
DIGIT = VOCAB.index("0")    # every decimal digit
LM_SEQ_LEN = 50
LM_TEST_SEQUENCES = 300
CORPUS_FILE = Path(__file__).parent / "data" / "charlm_corpus.npz"
SPEECH_FILE = Path(__file__).parent / "data" / "speech_commands.npz"
SPEECH_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SPEECH_RATE = 16000          # Hz, as TIMIT
SPEECH_MELS = 40             # log-mel filterbank energies per frame
SPEECH_WIN, SPEECH_HOP = 400, 160   # 25 ms windows every 10 ms at 16 kHz
SPEECH_STEPS = 50            # frames per utterance: 0.515 s of signal
SPEECH_FMIN = 20.0           # Hz, the lowest filter's lower edge (as Kaldi's default)
WORD_VOCAB_SIZE = 256     # 255 words and <unk> (id 0): an 8-bit token id
WORD_SEQ_LEN = 35         # as PyTorch's word_language_model
WORD_TEST_SEQUENCES = 100


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


def load_digits_sequences(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits as sequences of half-rows, with a fixed 70/10/20 split.

    Parameters
    ----------
    split : {"train", "valid", "test"}
        1257, 179 and 361 of the 1797 images, drawn by a permutation with seed 0.

    Returns
    -------
    X : ndarray of float32, shape (N, 16, 4)
        Pixel intensities in [0, 1]; step t holds half ``t % 2`` of image row ``t // 2``.
    y : ndarray of int64, shape (N,)
        The digit, 0 to 9.

    Raises
    ------
    ValueError
        For an unknown split name.
    """
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
    """The raw text: Python's help topics (`pydoc_data.topics`), values in sorted-key order.

    Returns
    -------
    str
        About 465 000 characters on Python 3.11; it differs between Python versions
        (see `corpus_codes` for the frozen, encoded copy the char LM uses).
    """
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))


def encode_text(text: str) -> np.ndarray:
    """Map text onto the `VOCAB` indices.

    Parameters
    ----------
    text : str
        Any text; it is lower-cased, decimal digits fold to ``"0"``, every other symbol
        outside the alphabet (including all non-ASCII characters) to ``"?"``.

    Returns
    -------
    ndarray of int64, shape (len(text),)
    """
    table = np.full(128, OTHER, dtype=np.int64)
    for i, ch in enumerate(VOCAB):
        table[ord(ch)] = i
    table[ord("0"):ord("9") + 1] = DIGIT
    codes = np.frombuffer(text.lower().encode("ascii", "replace"), dtype=np.uint8)
    return table[np.minimum(codes, 127)]


def write_corpus_snapshot(path: Path = CORPUS_FILE) -> Path:
    """Freeze the encoded text of the running Python in `path` (compressed npz).

    The file holds ``codes`` (uint8 `VOCAB` indices), ``sha256`` (of the raw text) and
    ``python`` (the version it came from).
    """
    text = load_text_corpus()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, codes=encode_text(text).astype(np.uint8),
                        sha256=hashlib.sha256(text.encode()).hexdigest(),
                        python=sys.version.split()[0])
    return path


def corpus_codes() -> np.ndarray:
    """The encoded char LM corpus: the frozen snapshot, else the running Python's text.

    Returns
    -------
    ndarray of int64, shape (n,)
        `VOCAB` indices.
    """
    if CORPUS_FILE.exists():
        with np.load(CORPUS_FILE) as f:
            return f["codes"].astype(np.int64)
    return encode_text(load_text_corpus())


def char_lm_sequences(split: str, seq_len: int = LM_SEQ_LEN,
                      max_sequences: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping next-symbol sequences of the corpus, split 80/10/10 by position.

    Parameters
    ----------
    split : {"train", "valid", "test"}
        The first 80 % of the corpus, the next 10 %, the last 10 %.
    seq_len : int
        Steps per sequence.
    max_sequences : int, optional
        Keep only the first ones. The test split is cut to `LM_TEST_SEQUENCES` by default
        to keep evaluation (and simulation) fast; pass a large number for all of it.

    Returns
    -------
    X : ndarray of float32, shape (N, seq_len, len(VOCAB))
        One-hot symbols.
    Y : ndarray of int64, shape (N, seq_len)
        The symbol following each input symbol.

    Raises
    ------
    ValueError
        For an unknown split name.
    """
    _check_split(split)
    codes = corpus_codes()
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


def word_tokens(codes: np.ndarray) -> list[str]:
    """The words of encoded text: runs of letters; a run of digits is "0", a run of other
    symbols "?"; "." and "," are words; spaces and line breaks separate them."""
    text = "".join(VOCAB[c] for c in codes)
    return [w[0] if w[0] in "0?" else w for w in re.findall(r"[a-z]+|0+|\?+|[.,]", text)]


def _corpus_part(split: str) -> np.ndarray:
    """The encoded corpus's split: the first 80 %, the next 10 %, the last 10 %."""
    _check_split(split)
    codes = corpus_codes()
    n = len(codes)
    bounds = {"train": (0, int(0.8 * n)), "valid": (int(0.8 * n), int(0.9 * n)),
              "test": (int(0.9 * n), n)}
    lo, hi = bounds[split]
    return codes[lo:hi]


def word_vocab() -> list[str]:
    """``<unk>`` then the WORD_VOCAB_SIZE - 1 most frequent train words (ties by word)."""
    counts = Counter(word_tokens(_corpus_part("train")))
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return ["<unk>"] + ranked[:WORD_VOCAB_SIZE - 1]


def word_lm_sequences(split: str, seq_len: int = WORD_SEQ_LEN,
                      max_sequences: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping next-word sequences of a split (see `char_lm_sequences`).

    Returns
    -------
    X : ndarray of float32, shape (N, seq_len, 1)
        Token ids (`word_vocab` indices; 0 is ``<unk>``), what a model with an embedding
        takes.
    Y : ndarray of int64, shape (N, seq_len)
        The id of the following word. The test split keeps its first WORD_TEST_SEQUENCES
        by default.
    """
    index = {w: i for i, w in enumerate(word_vocab())}
    ids = np.array([index.get(w, 0) for w in word_tokens(_corpus_part(split))],
                   dtype=np.int64)
    count = (len(ids) - 1) // seq_len
    if max_sequences is None and split == "test":
        max_sequences = WORD_TEST_SEQUENCES
    if max_sequences is not None:
        count = min(count, max_sequences)
    idx = np.arange(count)[:, None] * seq_len + np.arange(seq_len)[None, :]
    return ids[idx][..., None].astype(np.float32), ids[idx + 1]


def unigram_entropy_bits(split: str = "train") -> float:
    """Entropy of the symbol frequencies of a split, in bits.

    The bits per character of the best model without context: a char LM must beat it.
    """
    _, y = char_lm_sequences(split, max_sequences=10**9)
    p = np.bincount(y.ravel(), minlength=len(VOCAB)) / y.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())



# --- speech: TIMIT-style features (numpy only) and the frozen keyword utterances ---------

def hz_to_mel(f):
    """The HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def _fft_size(win: int) -> int:
    return 1 << int(np.ceil(np.log2(win)))


def mel_band_centers(n_mels: int = SPEECH_MELS, rate: int = SPEECH_RATE,
                     fmin: float = SPEECH_FMIN, fmax: float | None = None) -> np.ndarray:
    """Centre frequencies in Hz of the `mel_filterbank` triangles, shape (n_mels,)."""
    fmax = rate / 2 if fmax is None else fmax
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    return mel_to_hz(edges[1:-1])


def mel_filterbank(n_mels: int = SPEECH_MELS, n_fft: int = 512, rate: int = SPEECH_RATE,
                   fmin: float = SPEECH_FMIN, fmax: float | None = None) -> np.ndarray:
    """Triangular filters equally spaced on the mel scale (as Kaldi and HTK).

    Each triangle rises from its lower neighbour's centre to its own and falls to its upper
    neighbour's, linearly in mel, evaluated at the FFT bin frequencies; peak weight 1.

    Returns
    -------
    ndarray of float64, shape (n_mels, n_fft // 2 + 1)
    """
    fmax = rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= rate/2, not fmin={fmin}, fmax={fmax}")
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    bins = hz_to_mel(np.arange(n_fft // 2 + 1) * rate / n_fft)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None, :] - lo) / (mid - lo)
    down = (hi - bins[None, :]) / (hi - mid)
    return np.clip(np.minimum(up, down), 0.0, None)


def log_mel_features(signal, rate: int = SPEECH_RATE, n_mels: int = SPEECH_MELS,
                     win: int = SPEECH_WIN, hop: int = SPEECH_HOP,
                     preemphasis: float = 0.97) -> np.ndarray:
    """Log mel filterbank energies of a mono signal (not normalised).

    Frames of `win` samples every `hop` (25 ms / 10 ms at 16 kHz), each with its mean
    removed, pre-emphasised, Hamming-windowed and zero-padded to the next power of two;
    the power spectrum through `mel_filterbank` (`n_mels` bands from 20 Hz to rate/2),
    natural log with a floor of 1e-10.

    Parameters
    ----------
    signal : 1-D array of floats (any scale; e.g. in [-1, 1]), at least `win` samples.

    Returns
    -------
    ndarray of float64, shape (1 + (len(signal) - win) // hop, n_mels)
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1 or len(x) < win:
        raise ValueError(f"need a 1-D signal of at least {win} samples, not shape {x.shape}")
    n = 1 + (len(x) - win) // hop
    frames = x[np.arange(n)[:, None] * hop + np.arange(win)[None, :]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - preemphasis),
                             frames[:, 1:] - preemphasis * frames[:, :-1]], axis=1)
    n_fft = _fft_size(win)
    power = np.abs(np.fft.rfft(frames * np.hamming(win), n_fft)) ** 2
    energies = power @ mel_filterbank(n_mels, n_fft, rate).T
    return np.log(np.maximum(energies, 1e-10))


def normalize_utterance(features) -> np.ndarray:
    """Per-utterance mean and variance normalisation: each band (column) of one utterance's
    (frames, bands) features to zero mean and unit variance; a constant band becomes 0."""
    f = np.asarray(features, dtype=np.float64)
    std = f.std(axis=0, keepdims=True)
    return (f - f.mean(axis=0, keepdims=True)) / np.where(std > 1e-8, std, 1.0)


def _speech_file():
    if not SPEECH_FILE.exists():
        raise FileNotFoundError(f"{SPEECH_FILE} is missing: it ships with hwgen (written by "
                                f"scripts/make_speech_data.py)")
    return np.load(SPEECH_FILE)


def load_speech_commands(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Spoken keywords (`SPEECH_WORDS`) as normalised log-mel features, voices held out.

    Each voice (an espeak-ng voice variant with its own accent and base pitch) appears in one
    split only: 24 voices train, 6 valid, 10 test; within a voice, words vary in speed,
    pitch, time offset, added noise (5-30 dB SNR) and gain (see scripts/make_speech_data.py).

    Parameters
    ----------
    split : {"train", "valid", "test"}
        480, 120 and 300 utterances (2, 2 and 3 of each word per voice).

    Returns
    -------
    X : ndarray of float32, shape (N, 50, 40)
        Frame t, band b: `normalize_utterance(log_mel_features(signal))`, stored as int8
        codes of 1/16 (so within 1/32 of the computed value).
    y : ndarray of int64, shape (N,)
        Index into `SPEECH_WORDS`.

    Raises
    ------
    ValueError
        For an unknown split name.
    """
    _check_split(split)
    with _speech_file() as f:
        keep = f["voice_split"][f["voice"]] == split
        x = f["x"][keep].astype(np.float32) * np.float32(f["scale"])
        return x, f["y"][keep].astype(np.int64)


def speech_voices(split: str) -> np.ndarray:
    """The voice of each utterance of `load_speech_commands(split)`, as names
    (``variant/accent/p<pitch>``), shape (N,)."""
    _check_split(split)
    with _speech_file() as f:
        keep = f["voice_split"][f["voice"]] == split
        return f["voices"][f["voice"][keep]]

if __name__ == "__main__":
    print(f"wrote {write_corpus_snapshot()}")
