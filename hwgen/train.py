"""Train the bundled models (`python -m hwgen.train [NAME ...]`): small, deterministic, CPU only.

Each model is saved in `hwgen/models/` as ``<name>.pt`` (the state_dict) and ``<name>.json``
(the `RecurrentClassifier` config, the task, the float metrics on the test split, the
training time). Training is seeded and runs on 2 threads (the speech models and charlm_gru128
on one); rerunning it reproduces the files bit for bit with the same torch build.
"""
from __future__ import annotations

from contextlib import contextmanager
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data
from .nn import RecurrentClassifier

MODELS_DIR = Path(__file__).parent / "models"


def accuracy(model: RecurrentClassifier, x: np.ndarray, y: np.ndarray) -> float:
    """Classification accuracy in percent.

    Parameters
    ----------
    model : RecurrentClassifier
        With head_mode "last".
    x : ndarray, shape (N, T, I)
    y : ndarray of int, shape (N,)

    Returns
    -------
    float
        Percent of sequences whose argmax output is the label.
    """
    with torch.no_grad():
        out = model(torch.from_numpy(np.asarray(x, dtype=np.float32)))
    return float(100.0 * (out.argmax(-1).numpy() == y).mean())


def bits_per_char(model: RecurrentClassifier, x: np.ndarray, y: np.ndarray) -> float:
    """Mean next-symbol cross-entropy in bits per character (perplexity = 2 ** bpc).

    Parameters
    ----------
    model : RecurrentClassifier
        With head_mode "every".
    x : ndarray, shape (N, T, V)
        One-hot inputs.
    y : ndarray of int, shape (N, T)
        Next-symbol targets.

    Returns
    -------
    float
    """
    with torch.no_grad():
        out = model(torch.from_numpy(np.asarray(x, dtype=np.float32)))
        loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]),
                                           torch.from_numpy(y).reshape(-1))
    return float(loss / np.log(2))


def optimizer_step(model, opt, out, target) -> None:
    """One step: cross-entropy of logits `out` against `target`, gradient norm clipped to 1."""
    loss_step(model, opt,
              nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1)))


def loss_step(model, opt, loss) -> None:
    """One optimizer step on `loss`, the gradient norm clipped to 1."""
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _fit(model, x, y, epochs: int, lr: float, batch: int, seed: int, augment=None) -> None:
    """Adam with a cosine schedule, cross-entropy, gradient norm clipped to 1.

    `augment(xb, generator)`, if given, transforms each input batch (seeded by `seed` too).
    """
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            xb = xt[idx] if augment is None else augment(xt[idx], gen)
            optimizer_step(model, opt, model(xb), yt[idx])
        sched.step()
    model.eval()


@contextmanager
def torch_threads(count: int | None):
    """Run the block on `count` torch threads (None: as they are), then restore them: the
    weights depend on the thread count."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_digits(cell: str, hidden: int, layers: int = 1, epochs: int = 60,
                 seed: int = 0) -> tuple[RecurrentClassifier, dict]:
    """Train a sequence classifier on the digits (16 steps of 4 pixels, 10 classes).

    Parameters
    ----------
    cell : a registered cell name (`hwgen.cells.CELLS`)
    hidden, layers : int
        Hidden size and number of recurrent layers.
    epochs : int
        Passes over the training split (Adam, lr 1e-2 with cosine decay, batch 64).
    seed : int

    Returns
    -------
    model : RecurrentClassifier
        In eval mode, head_mode "last".
    meta : dict
        ``{"task": "digits", "metrics": {"test_accuracy": percent}}``.
    """
    torch.manual_seed(seed)
    x, y = data.load_digits_sequences("train")
    model = RecurrentClassifier(cell, data.DIGITS_FEATURES, hidden, 10, layers, "last")
    _fit(model, x, y, epochs, 1e-2, 64, seed)
    xt, yt = data.load_digits_sequences("test")
    return model, {"task": "digits", "metrics": {"test_accuracy": accuracy(model, xt, yt)}}


def train_char_lm(cell: str, hidden: int, layers: int = 1, epochs: int = 8, seed: int = 0,
                  lr: float = 5e-3, threads: int | None = None
                  ) -> tuple[RecurrentClassifier, dict]:
    """Train a character language model on the frozen help-topics corpus.

    Parameters
    ----------
    cell : a registered cell name (`hwgen.cells.CELLS`)
    hidden, layers : int
        Hidden size and number of recurrent layers.
    epochs : int
        Passes over the training split (7440 sequences of 50 symbols; Adam with cosine
        decay, batch 64).
    seed : int
    lr : float
        Initial learning rate.
    threads : torch threads while training (None: as they are; `main` sets 2).

    Returns
    -------
    model : RecurrentClassifier
        In eval mode, head_mode "every", 32 inputs and outputs (one-hot `data.VOCAB`).
    meta : dict
        ``{"task": "char_lm", "metrics": {"test_bpc", "test_perplexity",
        "unigram_bpc"}}``; the unigram entropy of the training text is the baseline.
    """
    torch.manual_seed(seed)
    x, y = data.char_lm_sequences("train")
    vocab = len(data.VOCAB)
    model = RecurrentClassifier(cell, vocab, hidden, vocab, layers, "every")
    with torch_threads(threads):
        _fit(model, x, y, epochs, lr, 64, seed)
    xt, yt = data.char_lm_sequences("test")
    bpc = bits_per_char(model, xt, yt)
    return model, {"task": "char_lm", "metrics": {"test_bpc": bpc, "test_perplexity": 2 ** bpc,
                                                  "unigram_bpc": data.unigram_entropy_bits()}}


def speech_augment(xb: torch.Tensor, gen: torch.Generator, max_shift: int = 2,
                   noise: float = 0.2) -> torch.Tensor:
    """A training batch of speech features (N, T, bands), perturbed per utterance.

    The bands shift by up to `max_shift` up or down (the edge band repeated): a crude
    vocal-tract-length perturbation, since the voices in the test split are never heard in
    training; then Gaussian noise of standard deviation `noise` is added.
    """
    n, t_len, bands = xb.shape
    shift = torch.randint(-max_shift, max_shift + 1, (n,), generator=gen)
    src = (torch.arange(bands)[None, :] - shift[:, None]).clamp(0, bands - 1)
    out = torch.gather(xb, 2, src[:, None, :].expand(n, t_len, bands))
    return out + noise * torch.randn(out.shape, generator=gen)


def train_speech(cell: str, hidden: int, layers: int = 1, epochs: int = 60, seed: int = 0,
                 lr: float = 5e-3) -> tuple[RecurrentClassifier, dict]:
    """Train a keyword spotter on the speech commands (50 frames of 40 log-mel energies).

    Parameters
    ----------
    cell : a registered cell name (`hwgen.cells.CELLS`)
    hidden, layers : int
        Hidden size and number of recurrent layers.
    epochs : int
        Passes over the training split (480 utterances of 24 voices; Adam with cosine
        decay, batch 32, each batch perturbed by `speech_augment`), on one thread.
    seed : int
    lr : float
        Initial learning rate.

    Returns
    -------
    model : RecurrentClassifier
        In eval mode, head_mode "last", 40 inputs, 10 outputs (`data.SPEECH_WORDS`).
    meta : dict
        ``{"task": "speech", "metrics": {"test_accuracy", "valid_accuracy"}}`` in percent;
        the valid and test voices are never heard in training.
    """
    torch.manual_seed(seed)
    x, y = data.load_speech_commands("train")
    model = RecurrentClassifier(cell, data.SPEECH_MELS, hidden, len(data.SPEECH_WORDS),
                                layers, "last")
    with torch_threads(1):    # batches of 32: one thread is many times faster than two
        _fit(model, x, y, epochs, lr, 32, seed, augment=speech_augment)
    xv, yv = data.load_speech_commands("valid")
    xt, yt = data.load_speech_commands("test")
    return model, {"task": "speech", "metrics": {"test_accuracy": accuracy(model, xt, yt),
                                                 "valid_accuracy": accuracy(model, xv, yv)}}


def train_word_lm(cell: str, hidden: int, embedding_dim: int, epochs: int = 12, seed: int = 0,
                  lr: float = 1e-2) -> tuple[RecurrentClassifier, dict]:
    """Train a word language model with an embedding on the frozen corpus's words.

    Parameters
    ----------
    cell : a registered cell name.
    hidden, embedding_dim : int
        Hidden size; width E of the ``nn.Embedding(data.WORD_VOCAB_SIZE, E)`` in front.
    epochs, seed, lr : as `train_char_lm` (sequences of `data.WORD_SEQ_LEN` words).

    Returns
    -------
    model : RecurrentClassifier
        In eval mode, head_mode "every", token-id inputs, WORD_VOCAB_SIZE outputs.
    meta : dict
        ``{"task": "word_lm", "metrics": {"test_bpw", "test_perplexity", "unigram_bpw"}}``.
    """
    torch.manual_seed(seed)
    x, y = data.word_lm_sequences("train")
    vocab = data.WORD_VOCAB_SIZE
    model = RecurrentClassifier(cell, embedding_dim, hidden, vocab, 1, "every", embedding=vocab)
    _fit(model, x, y, epochs, lr, 32, seed)
    xt, yt = data.word_lm_sequences("test")
    bpw = bits_per_char(model, xt, yt)  # cross-entropy in bits: here per word
    p = np.bincount(y.ravel(), minlength=vocab) / y.size
    unigram = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
    return model, {"task": "word_lm", "metrics": {"test_bpw": bpw, "test_perplexity": 2 ** bpw,
                                                  "unigram_bpw": unigram}}


BUNDLED = {
    "digits_gru": lambda: train_digits("gru", 32),
    "digits_lstm": lambda: train_digits("lstm", 32),
    "digits_ligru": lambda: train_digits("ligru", 32),
    "digits_sru": lambda: train_digits("sru", 32, layers=2),
    "charlm_lstm": lambda: train_char_lm("lstm", 64, epochs=12, lr=1e-2),
    "charlm_gru2": lambda: train_char_lm("gru", 32, layers=2),
    # large enough for a 2-level ternary model at 80 % (docs/ternary.md); 10 epochs: its
    # best on the valid split (it over-fits after)
    "charlm_gru128": lambda: train_char_lm("gru", 128, epochs=10, lr=1e-2, threads=1),
    "speech_lstm": lambda: train_speech("lstm", 64),
    "speech_gru": lambda: train_speech("gru", 64),
    "speech_ligru": lambda: train_speech("ligru", 64),
    "speech_sru": lambda: train_speech("sru", 64, layers=2),
    # the large design of the throughput table (bench/speech_big.py): GRU I=40 H=256
    "speech_gru256": lambda: train_speech("gru", 256),
    "wordlm_gru": lambda: train_word_lm("gru", 48, 24),
}


def save(name: str, model: RecurrentClassifier, meta: dict) -> None:
    """Write ``<name>.pt`` (state_dict) and ``<name>.json`` (meta plus config) in MODELS_DIR."""
    MODELS_DIR.mkdir(exist_ok=True)
    torch.save(model.state_dict(), MODELS_DIR / f"{name}.pt")
    meta = dict(meta, name=name, config=model.config())
    (MODELS_DIR / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def main(names=None) -> None:
    """Train and save the named bundled models (all of them by default)."""
    unknown = set(names or ()) - set(BUNDLED)
    if unknown:
        raise SystemExit(f"unknown model(s) {sorted(unknown)}; bundled: {', '.join(BUNDLED)}")
    if not data.CORPUS_FILE.exists():
        data.write_corpus_snapshot()
    torch.set_num_threads(2)
    for name in names or BUNDLED:
        t0, c0 = time.time(), time.process_time()
        model, meta = BUNDLED[name]()
        meta["train_seconds"] = round(time.time() - t0, 1)
        meta["train_cpu_seconds"] = round(time.process_time() - c0, 1)
        save(name, model, meta)
        print(f"{name}: {meta['metrics']} in {meta['train_seconds']} s "
              f"({meta['train_cpu_seconds']} s CPU)", flush=True)
    print(f"unigram entropy of the text: {data.unigram_entropy_bits():.3f} bits/char")


if __name__ == "__main__":
    import sys
    main(sys.argv[1:] or None)
