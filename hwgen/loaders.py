"""Loaders for the data formats users have on disk (numpy only: no torch, no downloads).

* IMDb (`load_imdb`): the ``aclImdb`` folder, ``{train,test}/{neg,pos}/*.txt`` one review a
  file; labels 0 (neg) and 1 (pos). Other files and folders (``unsup/``, ``*.feat``) are
  ignored. Text is tokenised by `tokenize`.
* Penn TreeBank (`load_ptb`): a folder with ``ptb.{train,valid,test}.txt``, words separated by
  spaces, ``<unk>`` already in the text; ``<eos>`` is appended at every line end (blank lines
  too, as PyTorch's word_language_model does); the token stream is cut into sequences of
  ``seq_len`` with next-token targets.
* Speech features (`load_kaldi`, `load_npz`): Kaldi text archives (``copy-feats ark:- ark,t:``
  output: ``utt-id  [`` then one line per frame, the last one closed by ``]``; several
  utterances a file) with a label file of ``utt-id label`` lines; ``.npy`` files (the inputs)
  and ``.npz`` files with arrays ``x`` (inputs, or the file's only array) and optional ``y``
  (integer labels).

Every loader returns a `SequenceData`: batch-major arrays (``x`` (N, T) int64 token ids or
(N, T, F) float64 features; ``y`` (N,) labels, (N, T) per-step targets, or None) with the
vocabulary where there is one and the layout facts. Sequences of different lengths (reviews,
utterances) are padded at the front (ids `Vocab.pad`, feature frames of zeros) so that the
last step is each sequence's own last step; ``max_len`` keeps the last ``max_len`` steps
(the front is cut, as padding is). ``lengths`` holds each sequence's steps before padding.

A missing, unreadable, empty or malformed file is a `DataFormatError` (a ValueError) whose
message names the file and the line or utterance, e.g. ``feats.ark line 7: row has 39
values, expected 40``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import re

import numpy as np

FORMATS = ("imdb", "ptb", "kaldi", "npz")
IMDB_SPLITS = ("train", "test")
IMDB_CLASSES = ("neg", "pos")              # label 0, label 1
IMDB_SPECIALS = ("<pad>", "<unk>")         # ids 0 and 1
PTB_SPLITS = ("train", "valid", "test")
PTB_SPECIALS = ("<unk>", "<eos>")          # ids 0 and 1
PTB_SEQ_LEN = 35                           # the usual truncated-BPTT length for PTB


class DataFormatError(ValueError):
    """A data file or folder that cannot be read as its format; the message names the file
    and, where there is one, the line or utterance."""


# ---------------------------------------------------------------- vocabulary

@dataclass
class Vocab:
    """Tokens by id. ``oov`` is the id every unknown word gets; ``pad`` the padding id (None
    where sequences are never padded, as PTB's)."""

    tokens: list[str]
    oov: int
    pad: int | None = None
    index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.tokens = list(self.tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("a vocabulary's tokens must be distinct")

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, words) -> np.ndarray:
        """Token ids (int64) of `words`; words outside the vocabulary get ``oov``."""
        get, oov = self.index.get, self.oov
        return np.fromiter((get(w, oov) for w in words), dtype=np.int64)

    def decode(self, ids) -> list[str]:
        return [self.tokens[int(i)] for i in np.ravel(ids)]


def build_vocab(counts: Counter, specials: tuple, max_size: int | None = None) -> Vocab:
    """`specials` first (ids 0, 1, ...), then the counted words, most frequent first (ties
    in alphabetical order), ``max_size`` tokens in all (None: every word). ``oov`` is the
    id of ``"<unk>"``, ``pad`` that of ``"<pad>"`` if it is a special."""
    if max_size is not None and max_size <= len(specials):
        raise ValueError(f"max_vocab must exceed the {len(specials)} special tokens "
                         f"{', '.join(specials)}, not {max_size}")
    words = sorted((w for w in counts if w not in specials), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[:max_size - len(specials)]
    tokens = list(specials) + words
    pad = specials.index("<pad>") if "<pad>" in specials else None
    return Vocab(tokens, oov=specials.index("<unk>"), pad=pad)


# ---------------------------------------------------------------- the loaded data

@dataclass
class SequenceData:
    """Sequences read from disk, batch-major.

    Attributes
    ----------
    x : (N, T) int64 token ids, or (N, T, F) float64 features.
    y : (N,) int64 labels (one per sequence), (N, T) int64 targets (one per step), or None.
    format : "imdb", "ptb", "kaldi" or "npz".
    source : the file or folder read.
    vocab : the `Vocab` of token data, else None.
    names : one name per sequence (review file, utterance id), or None.
    lengths : (N,) steps of each sequence before padding, or None (no padding).
    """

    x: np.ndarray
    y: np.ndarray | None
    format: str
    source: str
    vocab: Vocab | None = None
    names: list[str] | None = None
    lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def tokens(self) -> bool:
        """True for token ids (N, T), False for features (N, T, F)."""
        return self.x.ndim == 2

    @property
    def layout(self) -> str:
        """"NT" (token ids) or "NTI" (features): always batch-major."""
        return "NT" if self.tokens else "NTI"

    @property
    def steps(self) -> int:
        return self.x.shape[1]

    @property
    def features(self) -> int | None:
        """Features per step, or None for token ids (see ``vocab``)."""
        return None if self.tokens else self.x.shape[2]

    @property
    def target(self) -> str | None:
        """"sequence" (a label per sequence), "step" (a target per step) or None."""
        return None if self.y is None else ("sequence" if self.y.ndim == 1 else "step")

    def take(self, index) -> "SequenceData":
        """The sequences at `index` (an integer array), as a new SequenceData."""
        index = np.asarray(index, dtype=np.int64)
        return SequenceData(self.x[index], None if self.y is None else self.y[index],
                            self.format, self.source, self.vocab,
                            None if self.names is None else [self.names[i] for i in index],
                            None if self.lengths is None else self.lengths[index])

    def describe(self) -> str:
        what = (f"token ids (vocabulary {len(self.vocab)})" if self.tokens
                else f"{self.features} features")
        labels = {"sequence": "a label per sequence", "step": "a target per step",
                  None: "no labels"}[self.target]
        return f"{self.source} ({self.format}): {len(self)} sequences x {self.steps} steps of " \
               f"{what}, {labels}"


# ---------------------------------------------------------------- helpers

def _read_text(path: Path, binary_ark: bool = False) -> str:
    """A UTF-8 text file; every failure a DataFormatError naming the file (and line)."""
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if binary_ark and b"\0B" in raw[:4096].split(b"\n", 1)[0]:
        raise DataFormatError(f"{path} is a binary Kaldi archive; write it as text "
                              f"(copy-feats ark:{path.name} ark,t:{path.stem}.txt.ark)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(f"{path} line {line}: not UTF-8 text") from None


def _folder(path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such directory")
    return path


def _natural(path: Path) -> list:
    """Sort key: digits compare as numbers ("9_1.txt" before "10_1.txt")."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _pad_front(seqs: list, max_len: int | None, fill, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Sequences (arrays of (T_i,) or (T_i, F)) -> (N, T, ...) padded at the front with
    `fill`, the last `max_len` steps of longer ones kept; and the lengths kept."""
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be a positive integer, not {max_len!r}")
    lengths = np.array([len(s) if max_len is None else min(len(s), max_len) for s in seqs],
                       dtype=np.int64)
    steps = int(lengths.max())
    out = np.full((len(seqs), steps) + np.shape(seqs[0])[1:], fill, dtype=dtype)
    for i, (s, n) in enumerate(zip(seqs, lengths)):
        out[i, steps - n:] = s[len(s) - n:]
    return out, lengths


# ---------------------------------------------------------------- IMDb

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def tokenize(text: str) -> list[str]:
    """IMDb's tokenisation: lower-case; ``<br />`` line breaks become spaces; a token is a
    run of letters (any alphabet) with single apostrophes inside it ("don't", "o'brien";
    the typographic ’ counts as '). Digits, punctuation and every other character separate
    tokens and are dropped, as are apostrophes at a word's ends ("'hello'" -> "hello")."""
    return _WORD.findall(_BREAK.sub(" ", text.lower()).replace("\u2019", "'"))


def _imdb_reviews(root, split: str) -> list[tuple[list[str], int, str]]:
    """(tokens, label, file name) of every review of `split`: neg first, then pos."""
    if split not in IMDB_SPLITS:
        raise ValueError(f"split must be one of {IMDB_SPLITS}, not {split!r}")
    root = _folder(root)
    reviews = []
    for label, name in enumerate(IMDB_CLASSES):
        folder = root / split / name
        if not folder.is_dir():
            raise DataFormatError(f"{folder}: no such directory (an IMDb folder holds "
                                  f"{{train,test}}/{{neg,pos}}/*.txt)")
        files = sorted(folder.glob("*.txt"), key=_natural)
        if not files:
            raise DataFormatError(f"{folder} has no .txt files")
        for path in files:
            text = _read_text(path)
            words = tokenize(text)
            if not words:
                raise DataFormatError(f"{path} is empty" if not text.strip() else
                                      f"{path} has no words (tokens are runs of letters)")
            reviews.append((words, label, f"{split}/{name}/{path.name}"))
    return reviews


def load_imdb(root, split: str = "train", vocab: Vocab | None = None,
              max_vocab: int | None = None, max_len: int | None = None) -> SequenceData:
    """An IMDb split as token ids with labels (0 neg, 1 pos).

    Parameters
    ----------
    root : the ``aclImdb`` folder.
    split : "train" or "test"; reviews in order neg then pos, files in numeric order.
    vocab : the vocabulary to use; None builds it from the train split (pass the train
        split's ``vocab`` when loading test, or train is read again).
    max_vocab : vocabulary size with ``<pad>`` (id 0) and ``<unk>`` (id 1, the OOV id);
        None keeps every train word. Words are ranked by train count, ties alphabetically.
    max_len : keep each review's last `max_len` tokens; None: T is the longest review.

    Returns
    -------
    SequenceData
        x (N, T) int64, padded at the front with id 0; y (N,) int64; names
        "split/neg/123_4.txt"; lengths.
    """
    reviews = _imdb_reviews(root, split)
    if vocab is None:
        train = reviews if split == "train" else _imdb_reviews(root, "train")
        vocab = build_vocab(Counter(w for words, _, _ in train for w in words),
                            IMDB_SPECIALS, max_vocab)
    pad = 0 if vocab.pad is None else vocab.pad
    x, lengths = _pad_front([vocab.encode(words) for words, _, _ in reviews], max_len, pad,
                            np.int64)
    y = np.array([label for _, label, _ in reviews], dtype=np.int64)
    return SequenceData(x, y, "imdb", str(root), vocab, [n for _, _, n in reviews], lengths)


# ---------------------------------------------------------------- Penn TreeBank

def ptb_words(path) -> list[str]:
    """The words of a PTB file: each line's words, then ``<eos>``."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise DataFormatError(f"{path} is empty")
    return [w for line in text.splitlines() for w in line.split() + ["<eos>"]]


def load_ptb(root, split: str = "test", seq_len: int = PTB_SEQ_LEN, vocab: Vocab | None = None,
             max_vocab: int | None = None) -> SequenceData:
    """A Penn TreeBank split as token-id sequences with next-token targets.

    Parameters
    ----------
    root : the folder holding ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``.
    split : "train", "valid" or "test".
    seq_len : steps per sequence. The split's token stream s is cut into
        N = (len(s) - 1) // seq_len sequences x[i] = s[i*L:(i+1)*L], targets
        y[i] = s[i*L+1:(i+1)*L+1]; the tail that fills no sequence is dropped.
    vocab : None builds it from ptb.train.txt.
    max_vocab : vocabulary size with ``<unk>`` (id 0, also the id of words outside the
        vocabulary) and ``<eos>`` (id 1); None keeps every train word.

    Returns
    -------
    SequenceData
        x, y (N, seq_len) int64; no padding.
    """
    if split not in PTB_SPLITS:
        raise ValueError(f"split must be one of {PTB_SPLITS}, not {split!r}")
    if not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, not {seq_len!r}")
    root = _folder(root)
    path = root / f"ptb.{split}.txt"
    words = ptb_words(path)
    if vocab is None:
        train = words if split == "train" else ptb_words(root / "ptb.train.txt")
        vocab = build_vocab(Counter(train), PTB_SPECIALS, max_vocab)
    ids = vocab.encode(words)
    n = (len(ids) - 1) // seq_len
    if n == 0:
        raise DataFormatError(f"{path}: {len(ids)} tokens with <eos>, too few for one sequence "
                              f"of {seq_len} with next-token targets")
    x = ids[:n * seq_len].reshape(n, seq_len)
    y = ids[1:n * seq_len + 1].reshape(n, seq_len)
    return SequenceData(x, y, "ptb", str(path), vocab)


# ---------------------------------------------------------------- Kaldi text archives

def read_ark(path) -> dict[str, np.ndarray]:
    """The matrices of a Kaldi text archive, by utterance id in file order, float64 (frames,
    features). Every matrix has the same number of features; rows are whitespace-separated
    numbers; ``utt-id [ ... ]`` on one line (a one-frame matrix) is accepted too."""
    path = Path(path)
    text = _read_text(path, binary_ark=True)
    mats: dict[str, np.ndarray] = {}
    utt, start, rows, width = None, 0, [], None
    for n, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        if utt is None:
            if len(tokens) < 2 or tokens[1] != "[":
                raise DataFormatError(f"{path} line {n}: expected 'utt-id [' to start a "
                                      f"matrix, got {line.strip()[:40]!r}")
            utt, start, rows, tokens = tokens[0], n, [], tokens[2:]
            if utt in mats:
                raise DataFormatError(f"{path} line {n}: utterance {utt} appears twice")
        closed = bool(tokens) and tokens[-1].endswith("]")
        if closed:
            tokens = [t for t in tokens[:-1] + [tokens[-1][:-1]] if t]
        if tokens:
            bad = next((t for t in tokens if not _is_number(t)), None)
            if bad is not None:
                raise DataFormatError(f"{path} line {n}: {bad!r} is not a number "
                                      f"(utterance {utt})")
            row = [float(t) for t in tokens]
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise DataFormatError(f"{path} line {n}: row has {len(row)} values, "
                                      f"expected {width}")
            if not all(np.isfinite(row)):
                raise DataFormatError(f"{path} line {n}: NaN or infinite value "
                                      f"(utterance {utt})")
            rows.append(row)
        if closed:
            if not rows:
                raise DataFormatError(f"{path} line {n}: utterance {utt} has no rows")
            mats[utt] = np.array(rows, dtype=np.float64)
            utt = None
    if utt is not None:
        raise DataFormatError(f"{path} line {start}: utterance {utt} has no closing ']'")
    if not mats:
        raise DataFormatError(f"{path} is empty")
    return mats


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_labels(path) -> dict[str, int]:
    """A label file: one ``utt-id label`` line per utterance, the label a class number
    (an integer >= 0); blank lines are skipped."""
    path = Path(path)
    text = _read_text(path)
    labels: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataFormatError(f"{path} line {n}: expected 'utt-id label', got "
                                  f"{line.strip()[:40]!r}")
        utt, label = parts
        if not label.isdigit():
            raise DataFormatError(f"{path} line {n}: label {label!r} of {utt} is not a class "
                                  f"number (an integer >= 0)")
        if utt in labels:
            raise DataFormatError(f"{path} line {n}: utterance {utt} is labelled twice")
        labels[utt] = int(label)
    if not labels:
        raise DataFormatError(f"{path} is empty")
    return labels


def load_kaldi(path, labels=None, max_len: int | None = None) -> SequenceData:
    """The utterances of a Kaldi text archive as padded feature sequences.

    Parameters
    ----------
    path : the text ``.ark`` file.
    labels : an ``utt-id label`` file (`read_labels`); every utterance of the archive needs
        a label (labels of other utterances are ignored). None: y is None.
    max_len : keep each utterance's last `max_len` frames; None: T is the longest one.

    Returns
    -------
    SequenceData
        x (N, T, F) float64, shorter utterances padded at the front with frames of zeros;
        y (N,) int64 or None; names the utterance ids in file order; lengths in frames.
    """
    mats = read_ark(path)
    names = list(mats)
    y = None
    if labels is not None:
        table = read_labels(labels)
        missing = next((u for u in names if u not in table), None)
        if missing is not None:
            raise DataFormatError(f"utterance {missing} of {path} has no label in {labels}")
        y = np.array([table[u] for u in names], dtype=np.int64)
    x, lengths = _pad_front([mats[u] for u in names], max_len, 0.0, np.float64)
    return SequenceData(x, y, "kaldi", str(path), None, names, lengths)


# ---------------------------------------------------------------- .npy / .npz

def load_npz(path, layout: str = "NTI", labels: bool = True) -> SequenceData:
    """Feature sequences from an ``.npz`` (arrays ``x``, or its only array, and optional
    ``y``) or an ``.npy`` file (the inputs ``x`` alone).

    Parameters
    ----------
    path : the file.
    layout : the arrays' layout in the file: "NTI" ((N, T, F) inputs, y (N,) or (N, T)) or
        "TNI" (time-major: (T, N, F), y (N,) or (T, N)); the result is batch-major.
    labels : False ignores ``y`` (calibration data).

    Returns
    -------
    SequenceData
        x (N, T, F) float64; y (N,) or (N, T) int64, or None.
    """
    if layout not in ("NTI", "TNI"):
        raise ValueError(f"layout must be 'NTI' or 'TNI', not {layout!r}")
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            arrays = {"x": data}
        else:
            with data:
                arrays = {k: data[k] for k in data.files}
    except Exception:  # zipfile.BadZipFile, ValueError (pickled objects), EOFError, OSError
        raise DataFormatError(f"{path}: not a readable .npy or .npz file") from None
    if "x" not in arrays and len(arrays) == 1:
        arrays = {"x": next(iter(arrays.values()))}
    if "x" not in arrays:
        raise DataFormatError(f"{path}: no array 'x' (arrays: {', '.join(arrays) or 'none'})")
    x = arrays["x"]
    shape = f"({', '.join(layout[:2])}, features)"
    if x.ndim != 3 or 0 in x.shape or x.dtype.kind not in "iuf":
        raise DataFormatError(f"{path}: array 'x' is {x.dtype} {x.shape}; expected numbers "
                              f"{shape} (layout {layout})")
    if not np.all(np.isfinite(x)):
        raise DataFormatError(f"{path}: array 'x' holds NaN or infinite values")
    nt = x.shape[:2]
    x = np.asarray(x, dtype=np.float64)
    if layout == "TNI":
        x = np.ascontiguousarray(x.swapaxes(0, 1))
    y = arrays.get("y") if labels else None
    if y is not None:
        n = nt[layout.index("N")]
        if y.dtype.kind not in "iu" or y.shape not in ((n,), nt) or (y.size and y.min() < 0):
            raise DataFormatError(f"{path}: array 'y' is {y.dtype} {y.shape}; expected "
                                  f"integer labels >= 0 of shape ({n},), one per sequence, "
                                  f"or {nt}, one per step (layout {layout})")
        y = y.astype(np.int64)
        if y.ndim == 2 and layout == "TNI":
            y = np.ascontiguousarray(y.T)
    return SequenceData(x, y, "npz", str(path))
