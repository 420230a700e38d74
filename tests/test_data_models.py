"""The bundled data sets (hwgen.data) and trained models (hwgen.models)."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from hwgen import data
from hwgen.models import HERE as MODELS_DIR
from hwgen.models import list_models, load_model, load_task_data

BUNDLED = ["charlm_gru128", "charlm_gru2", "charlm_lstm", "digits_gru", "digits_ligru",
           "digits_lstm", "digits_sru", "speech_gru", "speech_gru256", "speech_ligru",
           "speech_lstm", "speech_sru", "wordlm_gru"]
# hidden size: the throughput table's large design, and the char LM large enough for a 2-level
# ternary model at 80 % within 0.05 bits per character of float (docs/ternary.md)
LARGE = {"speech_gru256": 256, "charlm_gru128": 128}


def test_data_module_is_torch_free():
    code = ("import sys, hwgen.data as d; d.load_digits_sequences('test'); "
            "d.char_lm_sequences('test'); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("split,n", [("train", 1257), ("valid", 179), ("test", 361)])
def test_digits_shapes_and_dtypes(split, n):
    x, y = data.load_digits_sequences(split)
    assert x.shape == (n, 16, 4) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.shape[1] != x.shape[2]
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
    assert set(np.unique(y)) == set(range(10))


def test_digits_are_image_half_rows_and_splits_partition():
    from sklearn.datasets import load_digits
    images = load_digits().images / 16.0
    seen = []
    for split in data.SPLITS:
        x, _ = data.load_digits_sequences(split)
        seen.append(x.reshape(len(x), 8, 8))
    allx = np.concatenate(seen)
    assert len(allx) == len(images)
    # every image appears exactly once, row t//2 half t%2 at step t
    def key(a):
        return sorted(map(bytes, np.rint(a * 16).astype(np.uint8).reshape(len(a), -1)))
    assert key(allx) == key(images)


@pytest.mark.parametrize("loader", [data.load_digits_sequences, data.char_lm_sequences])
def test_splits_are_deterministic(loader):
    for split in data.SPLITS:
        (x1, y1), (x2, y2) = loader(split), loader(split)
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


def test_vocabulary_and_encoding():
    assert len(data.VOCAB) == 32 == len(set(data.VOCAB))
    got = data.encode_text("Ab 9,\n.é!")
    want = [data.VOCAB.index(c) for c in "ab 0,\n.??"]
    assert got.tolist() == want


@pytest.mark.parametrize("split", data.SPLITS)
def test_char_lm_shapes_one_hot_and_next_symbol(split):
    x, y = data.char_lm_sequences(split)
    v = len(data.VOCAB)
    assert x.ndim == 3 and x.shape[1:] == (data.LM_SEQ_LEN, v) and x.dtype == np.float32
    assert y.shape == x.shape[:2] and y.dtype == np.int64
    assert np.all(x.sum(-1) == 1.0) and set(np.unique(x)) == {0.0, 1.0}
    assert y.min() >= 0 and y.max() < v
    assert np.array_equal(x[:, 1:].argmax(-1), y[:, :-1])   # targets are the next inputs
    if split == "test":
        assert len(x) == data.LM_TEST_SEQUENCES


def test_char_lm_splits_are_consecutive_parts_of_the_corpus():
    codes = data.corpus_codes()
    n = len(codes)
    for split, start in [("train", 0), ("valid", int(0.8 * n)), ("test", int(0.9 * n))]:
        x, y = data.char_lm_sequences(split, seq_len=7, max_sequences=5)
        assert np.array_equal(x.argmax(-1).ravel(), codes[start:start + 35])
        assert np.array_equal(y.ravel(), codes[start + 1:start + 36])


def test_corpus_snapshot_matches_this_python_when_text_is_the_same():
    with np.load(data.CORPUS_FILE) as f:
        codes, sha = f["codes"], str(f["sha256"])
    text = data.load_text_corpus()
    if hashlib.sha256(text.encode()).hexdigest() != sha:
        pytest.skip("this Python's help topics differ from the frozen corpus")
    assert np.array_equal(codes, data.encode_text(text))


@pytest.mark.parametrize("fn", [data.load_digits_sequences, data.char_lm_sequences,
                                lambda s: load_task_data({"task": "digits"}, s),
                                lambda s: load_task_data({"task": "char_lm"}, s)])
@pytest.mark.parametrize("bad", ["Train", "validation", ""])
def test_bad_split_raises(fn, bad):
    with pytest.raises(ValueError, match="split"):
        fn(bad)


def test_bundled_models_listed_and_small():
    assert list_models() == BUNDLED
    total = sum(p.stat().st_size for p in MODELS_DIR.iterdir()
                if p.is_file() and p.stem not in LARGE)
    assert total < 1_000_000
    for name in LARGE:   # a float32 state_dict, nothing else
        assert (MODELS_DIR / f"{name}.pt").stat().st_size < 1_000_000


def test_unknown_model_error_lists_names():
    with pytest.raises(KeyError, match="digits_lstm"):
        load_model("no_such_model")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_reaches_recorded_metric(name):
    from hwgen import train
    model, meta = load_model(name)
    assert not model.training and meta["name"] == name
    assert model.config() == meta["config"]
    assert meta == json.loads((MODELS_DIR / f"{name}.json").read_text())
    x, y = load_task_data(meta, "test")
    m = meta["metrics"]
    if meta["task"] in ("digits", "speech"):
        digits = meta["task"] == "digits"
        assert meta["config"]["head_mode"] == "last"
        assert meta["config"]["hidden_size"] <= LARGE.get(name, 32 if digits else 64)
        acc = train.accuracy(model, x, y)
        assert acc == pytest.approx(m["test_accuracy"], rel=1e-6)
        assert acc >= (90.0 if digits else 80.0)    # speech: voices never heard in training
    elif meta["task"] == "word_lm":
        assert meta["config"]["head_mode"] == "every"
        assert meta["config"]["embedding"] == data.WORD_VOCAB_SIZE > x.max()
        bpw = train.bits_per_char(model, x, y)   # cross-entropy in bits, per word here
        assert bpw == pytest.approx(m["test_bpw"], rel=1e-6)
        assert 2 ** bpw == pytest.approx(m["test_perplexity"], rel=1e-6)
        assert bpw < m["unigram_bpw"] - 0.8   # clearly better than no context
    else:
        assert meta["task"] == "char_lm" and meta["config"]["head_mode"] == "every"
        assert meta["config"]["hidden_size"] <= LARGE.get(name, 64)
        bpc = train.bits_per_char(model, x, y)
        assert bpc == pytest.approx(m["test_bpc"], rel=1e-6)
        assert 2 ** bpc == pytest.approx(m["test_perplexity"], rel=1e-6)
        assert bpc < data.unigram_entropy_bits() - 1.0   # clearly better than no context


def test_metrics_of_an_untrained_model():
    import torch

    from hwgen import train
    from hwgen.nn import RecurrentClassifier
    torch.manual_seed(0)
    model = RecurrentClassifier("gru", 32, 8, 32, head_mode="every").eval()
    x, y = data.char_lm_sequences("test", max_sequences=20)
    assert abs(train.bits_per_char(model, x, y) - 5.0) < 0.2       # about log2(32)
    clf = RecurrentClassifier("lstm", 4, 8, 10).eval()
    xd, yd = data.load_digits_sequences("test")
    with torch.no_grad():
        pred = clf(torch.from_numpy(xd)).argmax(-1).numpy()
    assert train.accuracy(clf, xd, pred) == 100.0 and train.accuracy(clf, xd, (pred + 1) % 10) == 0
